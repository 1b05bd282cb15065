"""Validation ladder of the `dmft` kernel (issue rungs 1-7; docs/dmft.md §7).

Every rung compares the discrete-time DMFT (docs/dmft.md §3) with an independent
reference: the Marchenko-Pastur closed form (kernels.singlelayer.closed_forms), exact
identities, or finite-d simulations of the `sgd_multipass` kernel (which shares the
parameter names and definitions through kernels.singlelayer.model).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from kernels.base import ParameterError
from kernels.registry import get_kernel
from kernels.singlelayer.closed_forms import ridge_gd_curves
from kernels.singlelayer.dmft import DMFTKernel
from sweeper.errors import SpecError
from sweeper.grid_file import parse_spec
from tests.kernels.singlelayer.test_dmft_mixture import MIXTURE as TWO_CLUSTERS

RIDGE = {"alpha": 3.0, "ridge": 0.5, "m0": 0.2, "q0": 1.04, "loss": "square", "teacher": "linear"}


def run_dmft(seed=0, **values):
    kernel = DMFTKernel()
    result = kernel.run(kernel.make_params(**values), seed=seed)
    assert result.ok, result.message
    return result.outputs


def simulate(n_seeds: int, d: int, **values) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Finite-d runs of the `sgd_multipass` kernel (same parameter names): mean and standard error per output."""
    kernel = get_kernel("sgd_multipass")()
    params = kernel.make_params(d=d, **values)
    runs = []
    for seed in range(n_seeds):
        result = kernel.run(params, seed=seed)
        assert result.ok, result.message
        runs.append(result.outputs)
    return {
        key: (
            np.mean([r[key] for r in runs], 0),
            np.std([r[key] for r in runs], 0, ddof=1) / np.sqrt(n_seeds),
        )
        for key in ("m", "Q", "train_loss", "train_error")
    }


def assert_agrees(theory, theory_err, sim, key, n_sigma=4.0, rel=0.0):
    """``|theory - sim| <= n_sigma * sqrt(se_sim^2 + se_theory^2) + rel |sim|`` at every saved time."""
    mean, se = sim[key]
    bound = n_sigma * np.sqrt(se**2 + theory_err**2) + rel * np.abs(mean)
    worst = np.max(np.abs(theory - mean) - bound)
    assert worst <= 0, f"{key}: theory {theory} vs simulation {mean} +- {se} exceeds the bound by {worst}"


# -- rung 1: ridge regression, square loss, GD = closed-form Marchenko-Pastur ----------------------


def test_registered():
    assert get_kernel("dmft") is DMFTKernel


def test_ridge_gd_discrete_equals_marchenko_pastur():
    """Exact discrete GD (step lr = 0.1): m, Q, train loss within 1e-3 of docs/singlelayer.md §9.1.

    With moment matching the ridge effective process is linear in orthonormalised
    Gaussians, so the agreement is to round-off; 1e-3 is the issue's tolerance.
    """
    times = np.linspace(0.0, 5.0, 51)
    out = run_dmft(**RIDGE, lr=0.1, t_max=5.0, n_times=51, n_traj=1000, n_blocks=1)
    exact = ridge_gd_curves(3.0, 0.5, 0.2, times, lr=0.1)
    for key in ("m", "Q", "train_loss"):
        np.testing.assert_allclose(out[key], exact[key], atol=1e-3, rtol=0, err_msg=key)
    # the public reference value m(step 49) = 0.8138 (reference_timings.md)
    assert abs(exact["m"][49] - 0.8138) < 1e-4
    assert np.max(np.abs(out["m"] - exact["m"])) < 1e-9


def test_ridge_gd_without_moment_matching_within_monte_carlo_error():
    """Plain Monte Carlo: the error is O(n^-1/2) and the block estimate covers it."""
    times = np.linspace(0.0, 5.0, 51)
    out = run_dmft(**RIDGE, lr=0.1, t_max=5.0, n_times=51, n_traj=5000, n_blocks=4, moment_matching=False)
    exact = ridge_gd_curves(3.0, 0.5, 0.2, times, lr=0.1)
    err = np.max(np.abs(out["m"] - exact["m"]))
    assert err < 5 * out["m_mc_error"] + 1e-3, (err, out["m_mc_error"])
    assert 0 < out["m_mc_error"] < 0.01


def test_global_iterations_average_the_monte_carlo_noise():
    """Eight damped passes (running mean, `mixing = 0`) without moment matching: the kernels and
    outputs average the noise of all passes, so the block errors fall towards the 1/sqrt(8) = 0.35
    of a single pass at the same `n_traj` (ratios 0.26-0.51 over seeds 0-3, for m and the train
    loss; eight times the trajectories in one pass gives about the same), and m stays within its
    Monte-Carlo error of the closed form."""
    times = np.linspace(0.0, 5.0, 11)
    exact = ridge_gd_curves(3.0, 0.5, 0.2, times, lr=0.1)
    common = dict(RIDGE, lr=0.1, t_max=5.0, n_times=11, n_traj=500, n_blocks=16, moment_matching=False)
    one = run_dmft(**common)
    eight = run_dmft(**common, iterations=8)
    assert one["passes"] == 1 and np.isnan(one["residual"])
    assert eight["passes"] == 8 and 0 < eight["residual"] < 0.05
    assert eight["train_loss_mc_error"] < 0.6 * one["train_loss_mc_error"]
    assert eight["m_mc_error"] < 0.6 * one["m_mc_error"]
    err = np.max(np.abs(eight["m"] - exact["m"]))
    assert err < 4 * eight["m_mc_error"] + 1e-3, (err, eight["m_mc_error"])


def test_iterations_stop_at_the_tolerance_or_fail_with_the_residual():
    """With moment matching the ridge pass is exact, so the second pass changes nothing (round-off)
    and iterating stops there; a tolerance below the Monte-Carlo noise fails the point instead."""
    exact = run_dmft(
        **RIDGE, lr=0.1, t_max=2.0, n_times=5, n_traj=500, n_blocks=2, iterations=10, tolerance=1e-9
    )
    assert exact["passes"] == 2 and exact["residual"] < 1e-12
    kernel = DMFTKernel()
    params = kernel.make_params(
        **RIDGE, lr=0.1, t_max=2.0, n_times=5, n_traj=500, moment_matching=False, iterations=3, tolerance=1e-6
    )
    result = kernel.run(params)
    assert not result.ok
    assert re.search(
        r"not converged after 3 passes in block 0: residual [0-9.e-]+ > tolerance 1e-06", result.message
    )


def test_ridge_flow_limit_matches_gradient_flow():
    """Flow limit (dt -> 0): Richardson extrapolation of dt = 0.02, 0.01 within 1e-3 of exp(-(l+a)t)."""
    times = np.linspace(0.0, 3.0, 16)
    exact = ridge_gd_curves(3.0, 0.5, 0.2, times, lr=None)
    runs = {
        dt: run_dmft(**RIDGE, dt=dt, t_max=3.0, n_times=16, n_traj=800, n_blocks=1) for dt in (0.02, 0.01)
    }
    for key in ("m", "Q", "train_loss"):
        euler = runs[0.01][key]
        extrapolated = 2.0 * runs[0.01][key] - runs[0.02][key]
        assert np.max(np.abs(euler - exact[key])) < 0.01, key  # first order in dt
        np.testing.assert_allclose(extrapolated, exact[key], atol=1e-3, rtol=0, err_msg=key)


def test_semi_implicit_flow_limit_matches_gradient_flow():
    """The semi-implicit step is a first-order scheme for the same flow: Richardson extrapolation
    of dt = 0.02, 0.01 lands within 1e-3 of exp(-(l+a)t) (measured 2e-4)."""
    times = np.linspace(0.0, 3.0, 16)
    exact = ridge_gd_curves(3.0, 0.5, 0.2, times, lr=None)
    common = dict(RIDGE, t_max=3.0, n_times=16, n_traj=800, n_blocks=1, integrator="semi-implicit")
    runs = {dt: run_dmft(**common, dt=dt) for dt in (0.02, 0.01)}
    for key in ("m", "Q", "train_loss"):
        assert np.max(np.abs(runs[0.01][key] - exact[key])) < 0.01, key
        extrapolated = 2.0 * runs[0.01][key] - runs[0.02][key]
        np.testing.assert_allclose(extrapolated, exact[key], atol=1e-3, rtol=0, err_msg=key)


def test_semi_implicit_and_explicit_steps_converge_together_on_phase_retrieval():
    """Same trajectories (same seed and step count), two integrators: on phase retrieval (l'' ~ 3 r^2)
    their train losses differ by O(dt) -- measured 0.026 / 0.013 / 0.0064 at dt = 0.025 / 0.0125 /
    0.00625 up to t = 1 -- so the difference must halve with dt."""
    common = dict(PHASE, t_max=1.0, n_times=11, spherical="projection", n_traj=4000, n_resp=1000, n_blocks=1)
    gap = {}
    for dt in (0.025, 0.0125):
        explicit = run_dmft(**dict(common, lr=dt), dt=dt)
        semi = run_dmft(**dict(common, lr=dt), dt=dt, integrator="semi-implicit")
        gap[dt] = np.max(np.abs(explicit["train_loss"] - semi["train_loss"]))
    assert 1.6 < gap[0.025] / gap[0.0125] < 2.5, gap
    assert gap[0.0125] < 0.02, gap


@pytest.mark.parametrize("seed", [1, 3])
def test_semi_implicit_step_keeps_psgd_phase_retrieval_stable(seed):
    """p-SGD phase retrieval in the flow limit at dt = 0.08: selected trajectories with large |r|
    have dt * s_hat * l'' > 2 and the explicit step overshoots until the process diverges (these
    seeds: at t = 0.64 and t = 1.04; seeds 0-3 all diverge by t = 6); the semi-implicit step runs
    to t = 20, stays on the sphere and recovers the signal (m -> 1, train loss -> 0).
    At dt = 0.05 the explicit step's divergence is chaotic: it diverged for these seeds on one
    machine (t = 14.65 and 4.35) and survived seed 1 on another, so the test keeps a margin."""
    common = dict(
        PHASE, spherical="projection", algorithm="psgd", b=0.5, tau=1.0, lr=0.08, dt=0.08
    )  # PHASE: below
    common |= dict(t_max=20.0, n_times=11, n_traj=1000, n_resp=250, n_blocks=1)
    kernel = DMFTKernel()
    explicit = kernel.run(kernel.make_params(**common), seed=seed)
    assert not explicit.ok and "diverged" in explicit.message
    out = run_dmft(seed=seed, **common, integrator="semi-implicit")
    assert out["m"][-1] > 0.99 and out["train_loss"][-1] < 1e-3
    np.testing.assert_allclose(out["Q"], 1.0, atol=1e-6)


def test_first_lag_memory_kernel_is_alpha():
    """docs/dmft.md §3 analytic check: M_R(1, 0) = alpha for square loss GD (not alpha (1 - lr nut))."""
    out = run_dmft(**RIDGE, lr=0.1, t_max=0.5, n_times=6, n_traj=400, n_blocks=1, two_time=True)
    assert out["M_R"][1, 0] == pytest.approx(3.0, abs=1e-12)
    assert np.all(np.triu(out["M_R"]) == 0)  # causal: strictly lower triangular
    np.testing.assert_allclose(out["M_C"], out["M_C"].T)
    # weight response: R(j+1, j) = 1, then one step of (1 - lr nut) with nut = ridge + alpha
    assert out["R"][1, 0] == pytest.approx(1.0)
    assert out["R"][2, 0] == pytest.approx(1.0 - 0.1 * (0.5 + 3.0))


def test_parameter_errors_are_explained():
    with pytest.raises(ParameterError, match="i.i.d. SGD has no flow limit"):
        DMFTKernel.make_params(algorithm="sgd", b=0.5, dt=0.01)
    with pytest.raises(ParameterError, match="n_resp"):
        DMFTKernel.make_params(n_traj=100, n_resp=200)
    with pytest.raises(ParameterError, match="iterations"):
        DMFTKernel.make_params(iterations=0)
    with pytest.raises(ParameterError, match="mixing"):
        DMFTKernel.make_params(mixing=1.5)
    with pytest.raises(ParameterError, match="tolerance: needs `iterations` >= 2"):
        DMFTKernel.make_params(tolerance=1e-3)
    with pytest.raises(ParameterError, match="integrator"):
        DMFTKernel.make_params(integrator="semi-implicit")  # dt = 0: discrete SGD is explicit
    with pytest.raises(ParameterError, match="max_memory_gb"):
        DMFTKernel().run(DMFTKernel.make_params(n_traj=10**6, t_max=100.0, lr=0.01, max_memory_gb=0.1))


def test_gd_ignores_b_as_the_simulator_does():
    """`gd` selects every sample from step 0 whatever `b` says (kernels.singlelayer.model.batch_fraction,
    as in the `sgd_multipass` kernel), so a grid can sweep `algorithm` with `b` fixed. Before, the initial
    selection s(0) ~ Bern(b) was drawn for gd too and its first step was a partial one."""
    common = dict(RIDGE, lr=0.1, t_max=1.0, n_times=11, n_traj=1000, n_blocks=1, algorithm="gd")
    full, half = run_dmft(**common, b=1.0), run_dmft(**common, b=0.5)
    for key in ("m", "Q", "train_loss"):
        np.testing.assert_array_equal(half[key], full[key], err_msg=key)


HINGE_MESSAGE = (
    "loss: `hinge` is not supported by the `dmft` kernel. Its second derivative is a delta function "
    "at the margin y r = 1, but the effective process only sees l'' = 0 (true almost everywhere), so "
    "the kink drops out of nu-tilde and of the memory kernel M_R (which carries s_hat l'' at both "
    "times) and the theory is wrong: on the two-cluster mixture with GD it gives Q and the train "
    "loss off by factors of about 2 and 6 against `sgd_multipass` simulations. Use a smooth loss (`logistic`, "
    "`logcosh` or `square`), or the `sgd_multipass` kernel, which simulates hinge exactly."
)


@pytest.mark.parametrize(
    "labels", [dict(model="mixture2", noise=0.5), dict(teacher="sign"), dict(teacher="linear")]
)
def test_hinge_is_refused_with_the_reason_and_the_alternatives(labels):
    """Issue 5: l'' of the hinge is a delta at the margin, which the effective process drops
    (l'' = 0 a.e. in kernels.singlelayer.losses). The whole message is pinned, wrapped literals included;
    the refusal comes before the shared label check, so it is the error whatever the labels."""
    with pytest.raises(ParameterError, match="^" + re.escape(HINGE_MESSAGE) + "$"):
        DMFTKernel.make_params(loss="hinge", **labels)


def test_hinge_refusal_is_specific_to_dmft_and_fails_a_grid_before_running():
    # the parameter classes are shared (kernels.singlelayer.model): the simulator still takes hinge
    sgd = get_kernel("sgd_multipass").make_params(loss="hinge", model="mixture2", noise=0.5)
    assert sgd.loss == "hinge"
    assert DMFTKernel.make_params(loss="logistic", model="mixture2", noise=0.5).loss == "logistic"
    grid = """
kernel = "dmft"
[params]
model = "mixture2"
noise = 0.5
[sweep]
loss = ["logistic", "hinge"]
"""
    with pytest.raises(SpecError, match=r"^<string>: sweep\.loss\[1\]: loss: `hinge` is not supported"):
        parse_spec(grid)


# -- rung 2: same model, i.i.d. SGD at b = 0.5 -------------------------------------------------------


@pytest.mark.slow  # a physics check against simulation (quick loop under 3 min)
def test_ridge_sgd_overlap_follows_gd_and_loss_matches_simulation():
    """m(t) of SGD equals GD (E[w] follows GD in the linear model, docs/singlelayer.md §9.1); the train loss
    carries the SGD noise and matches finite-d `sgd` runs (checks batch normalisation and the
    alpha (not alpha/b) prefactor of M_R, docs/dmft.md §4.3 item 2)."""
    common = dict(RIDGE, lr=0.1, t_max=5.0, n_times=26)
    out = run_dmft(**common, algorithm="sgd", b=0.5, n_traj=20000, n_blocks=4)
    exact = ridge_gd_curves(3.0, 0.5, 0.2, np.linspace(0.0, 5.0, 26), lr=0.1)
    assert np.max(np.abs(out["m"] - exact["m"])) < 4 * out["m_mc_error"] + 1e-4
    sim = simulate(10, 1000, **common, algorithm="sgd", b=0.5)
    # finite-d corrections are O(1/d); allow 2% on top of the statistical errors
    assert_agrees(out["train_loss"], out["train_loss_mc_error"], sim, "train_loss", rel=0.02)
    assert_agrees(out["m"], out["m_mc_error"], sim, "m", rel=0.005)
    assert_agrees(out["Q"], out["Q_mc_error"], sim, "Q", rel=0.01)
    # and the SGD plateau is visibly above the GD one: the comparison has teeth
    late = slice(10, None)
    assert np.all(out["train_loss"][late] > exact["train_loss"][late] * 1.04)


# -- rung 3: log-cosh loss, GD (docs/singlelayer.md §10.1) ----------------------------------------------------------

LOGCOSH = {"alpha": 2.0, "ridge": 0.1, "m0": 0.2, "q0": 1.04, "lr": 0.1, "loss": "logcosh", "t_max": 10.0}


@pytest.fixture(scope="module")
def logcosh_simulation():
    return simulate(8, 2000, **LOGCOSH, n_times=21)


@pytest.mark.slow  # a physics check against simulation (quick loop under 3 min)
def test_logcosh_gd_matches_simulation(logcosh_simulation):
    out = run_dmft(**LOGCOSH, n_times=21, n_traj=20000, n_resp=5000, n_blocks=4)
    assert_agrees(out["train_loss"], out["train_loss_mc_error"], logcosh_simulation, "train_loss", rel=0.01)
    assert_agrees(out["m"], out["m_mc_error"], logcosh_simulation, "m", rel=0.002)
    assert_agrees(out["Q"], out["Q_mc_error"], logcosh_simulation, "Q", rel=0.002)


def test_logcosh_catches_missing_second_factor_in_memory_kernel(logcosh_simulation, monkeypatch):
    """The 2022 public-code bug (M_R without s_hat l''(t'), docs/dmft.md §4.3 item 1) fails the same check."""
    from numba import njit

    import kernels.singlelayer.dmft.numerics as solver

    @njit
    def contract_without_second_factor(k, j0, A, Y, out):
        for j in range(j0, k):
            out[j] = np.mean(A[k] * Y[j + 1])

    monkeypatch.setattr(solver, "_contract", contract_without_second_factor)
    out = run_dmft(**LOGCOSH, n_times=21, n_traj=10000, n_resp=2000, n_blocks=2)
    mean, se = logcosh_simulation["train_loss"]
    assert np.max(np.abs(out["train_loss"] / mean - 1)) > 0.2


# -- rung 4: persistent SGD --------------------------------------------------------------------------


def test_selection_chain_has_mean_b_and_correlation_time_b_tau():
    """docs/singlelayer.md §4: stationary P(s = 1) = b, lag-k correlation (1 - step/(b tau))^k."""
    from kernels.base import rng
    from kernels.singlelayer.dmft.process import update_selection

    b, tau, step, n = 0.3, 0.5, 0.05, 200000
    p01, p10 = step / tau, (1 - b) * step / (b * tau)
    gen = rng(0, "chain-test")
    s = (gen.random(n) < b).astype(np.float64)
    s0 = s.copy()
    for _ in range(10):
        update_selection(s, gen.random(n), p01, p10)
    assert s.mean() == pytest.approx(b, abs=4 * np.sqrt(b * (1 - b) / n))
    corr = np.mean((s - b) * (s0 - b)) / (b * (1 - b))
    assert corr == pytest.approx((1 - step / (b * tau)) ** 10, abs=0.01)


@pytest.mark.slow
def test_psgd_tends_to_gd_as_tau_vanishes():
    """Flow limit (dt = 0.01) at b = 0.5: the distance to GD shrinks with tau and is within
    Monte-Carlo error at tau = 2 dt."""
    common = dict(RIDGE, lr=0.01, dt=0.01, t_max=2.0, n_times=21, n_traj=4000, n_resp=1000, n_blocks=2)
    gd = run_dmft(**common)
    dist = {}
    for tau in (0.5, 0.1, 0.02):
        out = run_dmft(**common, algorithm="psgd", b=0.5, tau=tau)
        dist[tau] = np.max(np.abs(out["train_loss"] / gd["train_loss"] - 1))
        if tau == 0.02:
            assert np.max(np.abs(out["m"] - gd["m"])) < 4 * out["m_mc_error"]
    assert dist[0.5] > 3 * dist[0.1] > 9 * dist[0.02]
    assert dist[0.02] < 0.02


def test_psgd_with_tau_lr_over_b_is_iid_sgd():
    """tau = lr / b makes the chain memoryless: p-SGD and SGD are the same process."""
    common = dict(RIDGE, lr=0.1, t_max=2.0, n_times=11, n_traj=2000, n_blocks=2, b=0.5)
    sgd = run_dmft(**common, algorithm="sgd")
    psgd = run_dmft(**common, algorithm="psgd", tau=0.2)
    for key in ("m", "Q", "train_loss"):
        np.testing.assert_allclose(psgd[key], sgd[key], rtol=1e-12, err_msg=key)


@pytest.mark.slow  # a physics check against simulation (quick loop under 3 min)
def test_psgd_logcosh_matches_simulation():
    """Persistent SGD (b = 0.5, tau = 1, finite lr = 0.1) against finite-d p-SGD runs."""
    common = dict(LOGCOSH, algorithm="psgd", b=0.5, tau=1.0, n_times=21)
    out = run_dmft(**common, n_traj=10000, n_resp=2500, n_blocks=4)
    sim = simulate(10, 1000, **common)
    assert_agrees(out["train_loss"], out["train_loss_mc_error"], sim, "train_loss", rel=0.02)
    assert_agrees(out["m"], out["m_mc_error"], sim, "m", rel=0.003)
    assert_agrees(out["Q"], out["Q_mc_error"], sim, "Q", rel=0.005)


# -- rung 5: phase retrieval on the sphere (MUZ 2021) ----------------------------------------------------

PHASE = {
    "alpha": 3.0,
    "teacher": "abs",
    "loss": "phase",
    "loss_scale": 0.25,
    "m0": 0.2,
    "q0": 1.0,
    "lr": 0.01,
    "t_max": 0.5,
    "n_times": 6,
}


@pytest.mark.slow
def test_phase_retrieval_sphere_short_times_matches_projected_simulation():
    """GD with the plain Lagrange multiplier nu(t) (docs/dmft.md §2) against finite-d runs projected on
    the sphere after every step, at small lr (they agree to O(lr), docs/dmft.md §3), up to t = 0.5.

    Plain `lagrange` lets Q drift at O(lr) and blows up past t ~ 1 on this problem (kernel
    docstring); `projection` (next test) is the mode to use for long runs.
    """
    out = run_dmft(**PHASE, spherical="lagrange", n_traj=20000, n_resp=5000, n_blocks=4)
    sim = simulate(8, 2000, **PHASE, spherical="projection")
    assert_agrees(out["m"], out["m_mc_error"], sim, "m", rel=0.01)
    assert_agrees(out["train_loss"], out["train_loss_mc_error"], sim, "train_loss", rel=0.02)
    assert np.max(np.abs(out["Q"] - 1.0)) < 0.03  # the multiplier holds Q = 1 to O(lr)
    assert out["nu"][0] < -5  # the unconstrained flow would shrink |w| at first


@pytest.mark.slow
def test_phase_retrieval_projection_matches_projected_simulation():
    """`projection` (multiplier with the first-order pull back to Q = 1) up to t = 1.5."""
    params = dict(PHASE, t_max=1.5, spherical="projection")
    out = run_dmft(**params, n_traj=8000, n_resp=2000, n_blocks=4)
    sim = simulate(8, 1000, **params)
    assert_agrees(out["m"], out["m_mc_error"], sim, "m", rel=0.01)
    assert_agrees(out["train_loss"], out["train_loss_mc_error"], sim, "train_loss", rel=0.03)
    assert np.max(np.abs(out["Q"] - 1.0)) < 0.01


@pytest.mark.slow
def test_phase_retrieval_psgd_recovers_where_gd_stalls():
    """MUZ 2021 at alpha = 3: persistent SGD (b = 0.5, tau = 1) reaches m = 1 by t = 50 while GD
    stalls near m ~ 0.65 (lr = 0.025, 2000 steps; finite-d projected runs at d = 1000, lr = 0.05
    give GD 0.62-0.75 and p-SGD 0.96-0.99 at t = 50). At lr = 0.05 the selected samples with
    large |r| (curvature 2 l''(r) ~ 6 r^2) make the explicit step overshoot and the effective
    process diverges, hence the smaller step. The memory is truncated at a lag of 5 (M_R falls
    below 1e-4 of its first lag within 5 time units; test_dmft_memory.py shows a lag of 5 moves
    m by < 5e-3): the whole memory took 4 minutes, the truncated one about one."""
    params = dict(PHASE, lr=0.025, t_max=50.0, n_times=11, spherical="projection")
    params |= dict(n_traj=3000, n_resp=500, n_blocks=1, memory_lag=5.0)
    gd = run_dmft(**params)
    psgd = run_dmft(**params, algorithm="psgd", b=0.5, tau=1.0)
    assert psgd["m"][-1] > 0.99
    assert psgd["train_loss"][-1] < 1e-3
    assert 0.5 < gd["m"][-1] < 0.8
    assert gd["train_loss"][-1] > 0.05
    for out in (gd, psgd):
        np.testing.assert_allclose(out["Q"], 1.0, atol=1e-6)


@pytest.mark.slow
def test_phase_retrieval_psgd_matches_simulation_before_the_escape():
    """p-SGD (b = 0.5, tau = 1, lr = 0.025) from m0 = 0.2 at alpha = 3, the gallery's setting, up to
    t = 3: the DMFT (4 x 4000, lag 5) against 16 runs at d = 1000, within 4 sigma of both errors.

    Measured (docs/dmft.md §8): m(0.5 .. 3) = 0.342, 0.383, 0.419, 0.439 (DMFT, 8 x 4000) against
    0.343, 0.378, 0.414, 0.434 (32 runs at d = 1000) and 0.352, 0.384, 0.417, 0.437 (24 at d = 2000).
    The two part after t ~ 5 (the DMFT escapes the plateau at t ~ 20, the runs at t ~ 40), which
    this test does not cover. The block error of m is its largest over time (0.03 here, 4 blocks), so
    the bound is loose (about 0.13); teeth: the GD theory lies 0.06-0.11 above the p-SGD runs at
    t = 0.5 and 1 (measured 0.075, 0.063 with these 2 blocks, 0.10, 0.11 with 4 x 8000), and must
    stay at least 0.04 above them.
    """
    params = dict(PHASE, lr=0.025, t_max=3.0, n_times=7, spherical="projection", b=0.5, tau=1.0)
    psgd = run_dmft(**params, algorithm="psgd", n_traj=4000, n_blocks=4, memory_lag=5.0)
    gd = run_dmft(**params, algorithm="gd", n_traj=4000, n_blocks=2, memory_lag=5.0)
    sim = simulate(16, 1000, **params, algorithm="psgd")
    assert_agrees(psgd["m"], psgd["m_mc_error"], sim, "m")
    assert_agrees(psgd["train_loss"], psgd["train_loss_mc_error"], sim, "train_loss", rel=0.05)
    assert np.all(gd["m"][1:3] - sim["m"][0][1:3] > 0.04), (gd["m"], sim["m"][0])


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="open (docs/dmft.md §8): the DMFT's weights follow a heavy-tailed response and forget w(0) too fast",
)
def test_phase_retrieval_psgd_weights_remember_their_start_as_in_the_simulations():
    """The DMFT's C_theta(t, 0) = C(t, 0) - m(t) m(0) against the simulations', in the setting of the
    test above, at t = 3 and 4 where m(t) still agrees.

    Known to fail today (strict xfail: once the DMFT is fixed the test passes, the xfail turns into a
    failure, and the marker must go): simulations 0.31, 0.27 at t = 3, 4 at d = 500, 1000 and 2000
    alike (errors 0.006-0.009); DMFT 0.22, 0.16 (16 x 1000), 0.23, 0.19 (8 x 4000), here 0.22, 0.15
    (4 x 4000). The tolerance, 0.04, is twice the combined error of the two means (DMFT block error
    0.01-0.02 with 4 blocks, simulation 0.01 with 8 seeds at d = 1000) plus the O(1/sqrt(d)) finite-size
    bias seen between d = 500 and 2000 (below 0.01).
    """
    params = dict(PHASE, lr=0.025, t_max=4.0, n_times=5, spherical="projection", b=0.5, tau=1.0)
    params |= dict(algorithm="psgd", two_time=True)
    out = run_dmft(**params, n_traj=4000, n_blocks=4, memory_lag=5.0)
    kernel = get_kernel("sgd_multipass")()
    sim = []
    for seed in range(8):
        result = kernel.run(kernel.make_params(d=1000, **params), seed=seed)
        assert result.ok, result.message
        sim.append(result.outputs["C"][:, 0] - result.outputs["m"] * result.outputs["m"][0])
    sim_theta = np.mean(sim, axis=0)
    dmft_theta = out["C"][:, 0] - out["m"] * out["m"][0]
    assert np.all(np.abs(sim_theta[3:] - dmft_theta[3:]) < 0.04), (sim_theta, dmft_theta)


# -- rung 6: equilibrium, fluctuation-dissipation ------------------------------------------------------


def test_langevin_ridge_satisfies_fdt_at_long_times():
    """Langevin at T = 0.5 on the (convex) ridge problem, stationary after t ~ 5:
    chi(t, t - s) = lr sum R = (C(t, t) - C(t, t - s)) / T for lags s = 0.5 .. 4.

    Euler-Maruyama breaks FDT at O(lr) (its stationary law is not exactly Gibbs), so we
    check first-order convergence in lr and the Richardson extrapolation (|error| < 0.5%),
    plus the stationary Q against the Gibbs value of kernels.singlelayer.closed_forms."""
    from kernels.singlelayer.closed_forms import ridge_langevin_stationary_q

    temperature, deviation, q_end = 0.5, {}, {}
    for lr in (0.05, 0.025):
        steps = int(round(10.0 / lr))
        out = run_dmft(
            **RIDGE,
            lr=lr,
            t_max=10.0,
            n_times=steps + 1,
            temperature=temperature,
            n_traj=2000,
            n_resp=200,
            n_blocks=1,
            two_time=True,
        )
        C, R = out["C"], out["R"]
        ratios = []
        for t_end in (steps, steps - int(round(2.0 / lr))):
            for lag in (0.5, 1.0, 2.0, 4.0):
                start = t_end - int(round(lag / lr))
                chi = lr * R[t_end, start:t_end].sum()
                ratios.append(chi * temperature / (C[t_end, t_end] - C[t_end, start]) - 1)
        deviation[lr] = np.array(ratios)
        q_end[lr] = out["Q"][-1]
    assert np.all(np.abs(deviation[0.05]) < 0.1)
    np.testing.assert_allclose(deviation[0.05] / deviation[0.025], 2.0, rtol=0.15)  # first order in lr
    assert np.all(np.abs(2 * deviation[0.025] - deviation[0.05]) < 0.005)
    q_gibbs = ridge_langevin_stationary_q(3.0, 0.5, temperature)
    assert abs(2 * q_end[0.025] - q_end[0.05] - q_gibbs) < 2e-3


# -- rung 7: two-cluster Gaussian mixture (Mignacco et al. 2020) --------------------------------------

MIXTURE = dict(TWO_CLUSTERS, alpha=2.0, b=0.3)  # logistic loss, SGD, lr 0.2 to t = 20


# the two-cluster SGD curves at three (alpha, b), test_error included: tests/kernels/singlelayer/test_dmft_mixture.py


@pytest.mark.slow  # a physics check against simulation (quick loop under 3 min)
def test_mixture3_sgd_matches_simulation():
    """Three-cluster variant (non-convex effective loss on the score r^2 - 1/2, kernels.singlelayer.model)."""
    params = dict(MIXTURE, model="mixture3", noise=0.3, rho=0.5, alpha=3.0, ridge=0.05, m0=0.3, q0=0.2)
    params |= dict(lr=0.1, t_max=10.0)
    out = run_dmft(**params, n_traj=10000, n_resp=2500, n_blocks=4)
    sim = simulate(10, 1000, **params)
    assert_agrees(out["train_loss"], out["train_loss_mc_error"], sim, "train_loss", rel=0.01)
    assert_agrees(out["m"], out["m_mc_error"], sim, "m", rel=0.01)
    assert_agrees(out["Q"], out["Q_mc_error"], sim, "Q", rel=0.02)


def test_flow_limit_chain_is_checked_with_dt_not_lr():
    # in the flow limit lr plays no part: tau = 0.05 with dt = 0.01 is a valid chain whatever lr is
    DMFTKernel.make_params(algorithm="psgd", b=0.5, tau=0.05, dt=0.01, lr=0.1, t_max=1.0, n_times=3)
    with pytest.raises(ParameterError, match=r"^tau: the selection chain needs dt/tau <= 1 .* got dt=0\.01"):
        DMFTKernel.make_params(algorithm="psgd", b=0.5, tau=0.005, dt=0.01, t_max=1.0, n_times=3)
