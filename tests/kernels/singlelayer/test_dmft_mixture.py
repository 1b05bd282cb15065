"""Rung 7 of the `dmft` validation ladder, widened: SGD on the two-cluster Gaussian mixture.

Mignacco, Krzakala, Urbani & Zdeborova 2020 (arXiv 2006.06098; docs/singlelayer.md §2, §10.3, docs/dmft.md §7) compare
the DMFT of SGD with finite-d simulations for the train loss, train error and test error against
time at a few (alpha, b). Here three (alpha, b) are compared (the three-cluster variant is in
tests/kernels/singlelayer/test_dmft.py), on
every saved time, for all five outputs of the pair: ``m``, ``Q``, ``train_loss``,
``train_error`` and ``test_error``.

Setting: ``x = c v / sqrt(d) + sqrt(noise) z``, ``y = c = +-1``, noise (cluster variance) 0.5,
logistic loss, ridge 0.1, warm start ``m0 = 0.1``, ``q0 = 0.02``, i.i.d. SGD with
``s_hat = s / b``, ``lr = 0.2`` up to ``t = 20`` (100 steps), 11 saved times.

What ``test_error`` is
----------------------
Both kernels compute it with the same closed form, :func:`kernels.singlelayer.model.test_error`,
``erfc(m / sqrt(2 noise Q)) / 2`` for `mixture2`: the `sgd_multipass` kernel from each run's own
``(m, Q)`` (kernels/singlelayer/sgd_multipass/simulation.py, ``simulate``), the `dmft` kernel from its block-mean
``(m, Q)`` (kernels/singlelayer/dmft/kernel.py, ``_run``). For a fixed ``w`` the formula is the exact population
error (``r = c m + sqrt(noise) z.w / sqrt(d)`` with ``z.w / sqrt(d) ~ N(0, Q)``), so comparing the
two kernels' ``test_error`` tests ``m`` and ``Q`` once more through a nonlinear map. To check the
formula itself (prediction ``sign(r)``, the ``noise`` and ``sqrt(2)`` factors),
:func:`test_mixture2_test_error_is_the_population_0_1_error` counts the 0-1 error of each
simulated run's final weights on fresh d-dimensional samples.

Errors and tolerances
---------------------
- Theory: ``N_BLOCKS`` single-block `dmft` runs (seeds 0..3), i.e. the kernel's ``n_blocks = 4``
  estimate, but with the standard error over blocks of *every* output at *every* time (the kernel
  itself reports only the largest-over-time error of ``m`` and ``train_loss``).
- Simulation: ``N_SEEDS`` `sgd` runs (mode multipass, same parameter names) at ``d = D``; standard
  error over seeds.
- Check: ``|theory - sim| <= N_SIGMA sqrt(se_theory^2 + se_sim^2) + REL[key] |sim| + 1e-12`` at
  every saved time (the absolute 1e-12 covers t = 0, where both have exactly ``m0`` and ``q0``).
  The theory error is 0.25-0.7 of the simulation's, so the 3-dof block estimate matters little.
  ``N_SIGMA = 4`` over 11 times x 5 outputs x 3 settings (165 correlated comparisons). The
  relative terms are a margin for O(1/d) finite-size effects, which were not detectable: a scan
  at d = 250, 500, 1000, 2000 (40, 20, 12 and 6 seeds, against 4 x 20000 trajectories) at
  (alpha, b) = (1, 0.1) and (2, 0.3) showed differences of both signs within the statistical
  errors, with no trend in d.
- Measured worst deviations, max over the saved times in units of the combined standard error
  (at the committed seeds): see each test's docstring; the largest is 2.9 sigma (train_error).
- Teeth: :func:`test_gd_theory_fails_the_sgd_simulation`. Checked once by hand (not committed):
  the theory at ``alpha -> 0.95 alpha`` or ``1.05 alpha`` fails ``m`` and ``Q`` in all three
  settings (7-16 sigma); at ``b -> 0.8 b`` or ``1.25 b`` it fails at (1, 0.1) only (test_error
  5.8 and 4.8 sigma, train_error 8.4 sigma at 1.25 b): at b >= 0.2 a 20% change of b moves the
  curves by less than the tolerances (at most 5 sigma on Q, which has 1% relative margin).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kernels.base import rng
from kernels.registry import get_kernel
from kernels.singlelayer.dmft import DMFTKernel
from kernels.singlelayer.model import test_error as closed_form_test_error
from kernels.singlelayer.sgd_multipass import simulation as sgd_multipass

MIXTURE = {
    "model": "mixture2",
    "noise": 0.5,
    "ridge": 0.1,
    "m0": 0.1,
    "q0": 0.02,
    "loss": "logistic",
    "lr": 0.2,
    "t_max": 20.0,
    "n_times": 11,
    "algorithm": "sgd",
}

# (alpha, b): a small data set with small batches, the setting of the first rung-7 test, a large data
# set. At b = 0.5 SGD is hard to tell from GD at this lr (Q within 1%, the train loss within 0.3%:
# within the tolerances), hence b = 0.2 at alpha = 4 (test_gd_theory_fails_the_sgd_simulation).
SETTINGS = [(1.0, 0.1), (2.0, 0.3), (4.0, 0.2)]

N_TRAJ, N_RESP, N_BLOCKS = 10000, 2500, 4
D, N_SEEDS = 1000, 10
N_FRESH = 10000  # fresh samples per simulated run for the 0-1 test error

KEYS = ("m", "Q", "train_loss", "train_error", "test_error")
N_SIGMA = 4.0
REL = {"m": 0.005, "Q": 0.01, "train_loss": 0.01, "train_error": 0.05, "test_error": 0.005}


def mean_and_se(runs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    values = np.array([r[key] for r in runs])
    return values.mean(0), values.std(0, ddof=1) / math.sqrt(len(runs))


def run_theory(values: dict) -> list[dict]:
    """``N_BLOCKS`` independent single-block `dmft` runs (the blocks of one n_blocks = 4 run)."""
    kernel = DMFTKernel()
    params = kernel.make_params(**values, n_traj=N_TRAJ, n_resp=N_RESP, n_blocks=1)
    runs = []
    for seed in range(N_BLOCKS):
        result = kernel.run(params, seed=seed)
        assert result.ok, result.message
        runs.append(result.outputs)
    return runs


def fresh_error(p, w: np.ndarray, v: np.ndarray, seed: int) -> float:
    """0-1 error of ``sign(w.x / sqrt(d))`` on ``N_FRESH`` fresh samples of the mixture."""
    d = len(w)
    gen = rng(seed, "test/fresh-samples")
    wrong, chunk = 0, 2500
    for start in range(0, N_FRESH, chunk):
        n = min(chunk, N_FRESH - start)
        c = np.where(gen.random(n) < 0.5, -1.0, 1.0)
        x = gen.standard_normal((n, d))
        x *= math.sqrt(p.noise)
        x += np.outer(c, v / math.sqrt(d))
        r = x @ w / math.sqrt(d)
        wrong += int(np.sum(np.where(r >= 0, 1.0, -1.0) != c))
    return wrong / N_FRESH


def run_simulation(values: dict) -> tuple[list[dict], np.ndarray]:
    """``N_SEEDS`` `sgd` (multipass) runs at ``d = D`` and each run's final fresh-sample error.

    Calls :func:`kernels.singlelayer.sgd_multipass.simulation.simulate` as ``SGDMultipassKernel._run`` does, plus ``state`` for
    the final weights; the outputs are those of ``get_kernel("sgd_multipass")().run(params, seed)``.
    """
    p = get_kernel("sgd_multipass").make_params(d=D, **values)
    runs, fresh = [], []
    for seed in range(N_SEEDS):
        state: dict = {}
        runs.append(sgd_multipass.simulate(p, D, seed, state=state))
        fresh.append(fresh_error(p, state["w"], state["v"], seed))
    return runs, np.array(fresh)


@pytest.fixture(scope="module", params=SETTINGS, ids=[f"alpha{a:g}-b{b:g}" for a, b in SETTINGS])
def pair(request):
    alpha, b = request.param
    values = dict(MIXTURE, alpha=alpha, b=b)
    theory = run_theory(values)
    sim, fresh = run_simulation(values)
    return values, theory, sim, fresh


def deviations(theory: list[dict], sim: list[dict]) -> dict[str, tuple[float, float]]:
    """Per output: (worst |theory - sim| / combined se, worst excess over the bound)."""
    out = {}
    for key in KEYS:
        th, th_se = mean_and_se(theory, key)
        mean, se = mean_and_se(sim, key)
        combined = np.sqrt(th_se**2 + se**2)
        diff = np.abs(th - mean)
        sigma = np.where(combined > 1e-12, diff / np.maximum(combined, 1e-300), 0.0)
        bound = N_SIGMA * combined + REL[key] * np.abs(mean) + 1e-12
        out[key] = (float(sigma.max()), float(np.max(diff - bound)))
    return out


def closed_form_test_error_of(values: dict, run: dict) -> np.ndarray:
    p = DMFTKernel.make_params(**values)
    return closed_form_test_error(p, run["m"], run["Q"])


@pytest.mark.slow  # a physics check against simulation (quick loop under 3 min)
def test_mixture2_sgd_curves_match_simulation(pair):
    """Train loss, train error, test error, m and Q of DMFT against d = 1000 `sgd` runs.

    Worst deviation over the 11 saved times, in combined standard errors (committed seeds):

    ============== ===== ===== =========== =========== ==========
    (alpha, b)       m     Q   train_loss  train_error test_error
    ============== ===== ===== =========== =========== ==========
    (1, 0.1)        1.1   1.9     2.1         2.9         1.0
    (2, 0.3)        2.1   1.9     2.1         2.0         0.7
    (4, 0.2)        1.1   1.5     0.9         1.1         1.8
    ============== ===== ===== =========== =========== ==========
    """
    values, theory, sim, _ = pair
    # both kernels' test_error is the closed form of kernels.singlelayer.model at their own (m, Q)
    for run in theory + sim:
        np.testing.assert_allclose(
            run["test_error"], closed_form_test_error_of(values, run), rtol=1e-12, atol=0
        )
    found = deviations(theory, sim)
    report = ", ".join(f"{key} {sig:.2f} sigma" for key, (sig, _) in found.items())
    failed = [key for key, (_, excess) in found.items() if excess > 0]
    assert not failed, f"alpha={values['alpha']}, b={values['b']}: {failed} outside the bound ({report})"


@pytest.mark.slow  # its fixture runs the simulations (quick loop under 3 min)
def test_mixture2_test_error_is_the_population_0_1_error(pair):
    """The closed-form ``test_error`` against the 0-1 error on fresh samples, at t = 20.

    Each simulated run's final weights classify ``N_FRESH = 10^4`` fresh d-dimensional samples
    of its own mixture. (1) Paired with the same run's closed form, the difference is binomial
    noise only: standard error ``sqrt(sum_s e_s (1 - e_s) / N_FRESH) / N_SEEDS``. (2) The
    DMFT ``test_error`` against the mean fresh error, with the seed-to-seed spread.

    Measured (committed seeds and fresh-sample stream), in standard errors, for (alpha, b) =
    (1, 0.1), (2, 0.3), (4, 0.2): paired -0.6, -1.6, -1.7 (fresh minus closed form); DMFT against
    fresh 1.0, 1.9, 3.1. The paired values share a sign because every setting classifies the same
    fresh samples with correlated weights (same data seeds); other fresh streams at 10^5 samples
    per run give +2.0, -1.0, +0.5 at (4, 0.2): noise, as it must be, since for a fixed w the
    closed form is exact. The 3.1 at (4, 0.2) is that shared fresh-sample draw (-1.7) on top of
    the DMFT-simulation difference of test_error at t = 20 (+1.3); both are in the combined error.
    """
    values, theory, sim, fresh = pair
    closed = np.array([run["test_error"][-1] for run in sim])
    paired_se = math.sqrt(np.sum(closed * (1 - closed)) / N_FRESH) / N_SEEDS
    paired = abs(fresh.mean() - closed.mean())
    assert paired <= N_SIGMA * paired_se, (fresh, closed, paired / paired_se)

    th, th_se = mean_and_se(theory, "test_error")
    fresh_se = fresh.std(ddof=1) / math.sqrt(N_SEEDS)
    combined = math.sqrt(th_se[-1] ** 2 + fresh_se**2)
    gap = abs(th[-1] - fresh.mean())
    assert gap <= N_SIGMA * combined + REL["test_error"] * fresh.mean(), (th[-1], fresh, gap / combined)


@pytest.mark.slow  # a physics check against simulation (quick loop under 3 min)
def test_gd_theory_fails_the_sgd_simulation(pair):
    """The check has teeth: the same comparison with the theory of GD (b = 1) in place of SGD
    at the simulated b fails on Q and test_error, i.e. the simulations resolve the SGD noise.

    Measured for (alpha, b) = (1, 0.1), (2, 0.3), (4, 0.2): Q off by 20.6, 7.7, 15.8 and
    test_error by 24.9, 10.2, 18.3 combined standard errors. (A 20% error in b, b -> 0.8 b,
    also fails at (1, 0.1) (Q 5.8, test_error 5.8 sigma) but not at the two larger b.)
    """
    values, _, sim, _ = pair
    gd = run_theory(dict(values, algorithm="gd", b=1.0))
    found = deviations(gd, sim)
    for key in ("Q", "test_error"):
        assert found[key][1] > 0, (key, found[key])
