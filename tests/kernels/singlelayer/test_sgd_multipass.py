"""The `sgd_multipass` kernel: finite-N simulations checked against closed forms, exact
linear algebra and the statistics of the selection chain.

Tolerances are stated next to each check. Fluctuations of finite-N observables
are O(d^-1/2): e.g. the training loss at t = 0 is a mean over n = alpha d
samples of a chi-square variable, so its relative standard deviation is
sqrt(2 / n).
"""

from __future__ import annotations

import numpy as np
import pytest

from kernels.base import ParameterError
from kernels.registry import get_kernel
from kernels.singlelayer.sgd_multipass import SGDMultipassKernel
from kernels.singlelayer.sgd_multipass.simulation import (
    draw_problem,
    initial_weights,
    selection_path,
    simulate,
)

KERNEL = SGDMultipassKernel()


def run(seed=0, **kw):
    result = KERNEL.run(KERNEL.make_params(**kw), seed)
    assert result.ok, result.message
    return result.outputs


# -- closed form of ridge regression (docs/singlelayer.md §9.1) --------------------------------------------


def marchenko_pastur(alpha: float, n_nodes: int = 4000):
    """Nodes and weights of E_a[f(a)] over the spectrum of X^T X / d (alpha > 1)."""
    c, h = alpha + 1.0, 2.0 * np.sqrt(alpha)
    theta = (np.arange(n_nodes) + 0.5) * np.pi / n_nodes
    a = c + h * np.cos(theta)
    return a, (h * np.sin(theta)) ** 2 / (2.0 * np.pi * a) * (np.pi / n_nodes)


def ridge_gd(alpha, ridge, lr, m0, steps):
    a, wt = marchenko_pastur(alpha)
    p = (1.0 - lr * (ridge + a)) ** np.asarray(steps)[:, None]
    f = a / (ridge + a)
    m = (wt * (f + p * (m0 - f))).sum(1)
    loss = (wt * (a * (p * (m0 - f) - ridge / (ridge + a)) ** 2 + a * p**2)).sum(1) / (2 * alpha)
    Q = (wt * ((p * (m0 - f) + f) ** 2 + p**2)).sum(1)
    return {"m": m, "train_loss": loss, "Q": Q}


RIDGE = dict(alpha=2.0, ridge=0.5, lr=0.1, m0=0.2, q0=1.04, t_max=5.0, n_times=51)


@pytest.mark.parametrize("d", [500, 2000])
def test_ridge_gd_matches_marchenko_pastur(d):
    # w0 = m0 w* + z with |z|^2 = d (q0 = 1 + m0^2), as in docs/singlelayer.md §9.1.
    out = run(d=d, **RIDGE)
    exact = ridge_gd(2.0, 0.5, 0.1, 0.2, np.arange(51))
    # Finite-d deviations are O(d^-1/2); the largest is the t = 0 training loss,
    # std = L0 sqrt(2/n) = 0.82 sqrt(1/d) at alpha = 2. Over 5 seeds x 2 sizes the
    # worst sqrt(d) * max_t |error| seen was 1.2; 4/sqrt(d) is ~5 standard deviations.
    for key in ("m", "train_loss", "Q"):
        err = np.abs(out[key] - exact[key]).max()
        assert err < 4.0 / np.sqrt(d), (key, err)


def test_ridge_gd_equals_exact_linear_algebra():
    # The simulator against a dense numpy iteration of the same discrete GD on the same
    # data: agreement to round-off (the fused numba loop sums in a different order).
    d, steps = 300, 40
    p = KERNEL.make_params(d=d, **{**RIDGE, "t_max": steps * 0.1, "n_times": steps + 1})
    v, X, y = draw_problem(p, d, 3)
    w = initial_weights(p, v, 3)
    A, bvec = X.T @ X / d, X.T @ y / np.sqrt(d)
    ms = [w @ v / d]
    for _ in range(steps):
        w = w - 0.1 * (0.5 * w + A @ w - bvec)
        ms.append(w @ v / d)
    np.testing.assert_allclose(run(3, d=d, **{**RIDGE, "t_max": 4.0, "n_times": 41})["m"], ms, atol=1e-12)


def test_sgd_mean_overlap_follows_gd():
    # Linear model, s_hat = s / b: E_batches[w] follows GD exactly (docs/singlelayer.md §9.1), so for
    # the same data and start (same seed) m_sgd - m_gd has mean zero over batch noise.
    d, seeds = 400, range(6)
    common = dict(d=d, **{**RIDGE, "t_max": 3.0, "n_times": 31})
    diffs = np.array([run(s, algorithm="sgd", b=0.3, **common)["m"] - run(s, **common)["m"] for s in seeds])
    assert np.abs(diffs).max() > 1e-4  # batches really are random
    mean, sem = diffs.mean(0), diffs.std(0, ddof=1) / np.sqrt(len(diffs))
    # 4 standard errors at every time (31 times: a false alarm has probability < 2e-3)
    assert np.all(np.abs(mean) <= 4 * sem + 1e-12)
    # ... and the batch noise on m is itself small: O(lr sqrt((1-b)/b) / sqrt(d))
    assert np.abs(diffs).max() < 0.05


# -- selection chain (docs/singlelayer.md §4) -----------------------------------------------------------


def test_persistent_chain_mean_and_correlation_time():
    b, tau, lr = 0.3, 1.0, 0.05
    p = KERNEL.make_params(algorithm="psgd", b=b, tau=tau, lr=lr)
    n, steps = 2000, 600
    s = selection_path(p, n, steps, 11)
    # stationary from the start: mean b at every step; 1.2e6 Bernoulli draws,
    # std of the grand mean ~ sqrt(b(1-b)/n * 2 b tau/lr) = 2.5e-3 (correlated in time)
    assert abs(s.mean() - b) < 0.01
    # autocorrelation b(1-b) lam^k with lam = 1 - lr/(b tau), i.e. exp(-t / (b tau))
    x = s - b
    lags = np.array([1, 3, 6, 12, 24])
    acf = np.array([(x[:-k] * x[k:]).mean() for k in lags]) / (b * (1 - b))
    lam = 1.0 - lr / (b * tau)
    # per-lag standard error ~ sqrt(2 b tau / lr / (n steps)) ~ 2e-3; tolerance 0.02
    np.testing.assert_allclose(acf, lam**lags, atol=0.02)
    # correlation time in time units from the measured decay: b tau = 0.3
    fit = -lags * lr / np.log(np.clip(acf, 1e-9, None))
    np.testing.assert_allclose(np.median(fit), b * tau, rtol=0.1)


def test_persistent_chain_with_tau_lr_over_b_is_iid_sgd():
    b, lr = 0.4, 0.05
    psgd = KERNEL.make_params(algorithm="psgd", b=b, tau=lr / b, lr=lr)
    sgd = KERNEL.make_params(algorithm="sgd", b=b, lr=lr)
    s_p, s_s = selection_path(psgd, 3000, 200, 5), selection_path(sgd, 3000, 200, 5)
    # same uniforms, thresholds b in both states: the same batches (distribution and sample)
    np.testing.assert_array_equal(s_p, s_s)
    x = s_s - b
    assert abs((x[:-1] * x[1:]).mean()) < 0.01  # no memory; std of the estimate ~ 3e-3
    common = dict(d=200, alpha=2.0, ridge=0.1, loss="logcosh", lr=lr, b=b, t_max=1.0, n_times=6)
    a = run(2, algorithm="psgd", tau=lr / b, **common)
    c = run(2, algorithm="sgd", **common)
    for key in a:
        np.testing.assert_allclose(a[key], c[key], rtol=1e-12, atol=1e-14)


# -- two-time functions ------------------------------------------------------------------------


def test_two_time_ridge_response_matches_marchenko_pastur():
    # Linear dynamics: R(t, t') = h.(1 - lr(ridge + A))^(k-k') h / d -> E_a[(1 - lr(ridge+a))^(k-k')].
    d = 800
    out = run(1, d=d, two_time=True, **{**RIDGE, "t_max": 2.0, "n_times": 11})
    np.testing.assert_allclose(np.diag(out["C"]), out["Q"], rtol=1e-12)
    np.testing.assert_allclose(np.diag(out["R"]), 1.0)
    assert np.all(np.triu(out["R"], 1) == 0)  # causal
    a, wt = marchenko_pastur(2.0)
    i, j = np.tril_indices(11, -1)
    lag_steps = (i - j) * 2  # saved every 0.2 = 2 steps
    exact = (wt * (1 - 0.1 * (0.5 + a)) ** lag_steps[:, None]).sum(1)
    # quadratic form with a random +-1 vector: std sqrt(2 tr(P^2))/d ~ 1.4/sqrt(d) = 0.05 at
    # worst; the spectrum itself converges faster. 0.15 is 3 standard deviations.
    np.testing.assert_allclose(out["R"][i, j], exact, atol=0.15)


# -- constraints, determinism, contract ---------------------------------------------------------


def test_spherical_forms_keep_the_norm():
    common = dict(
        d=300, alpha=3.0, teacher="abs", loss="phase", q0=1.0, init="random", t_max=2.0, n_times=5
    )  # fmt: skip
    proj = run(0, spherical="projection", lr=0.001, **common)
    np.testing.assert_allclose(proj["Q"], 1.0, rtol=1e-12)
    # The multiplier keeps dQ/dt = 0 in continuous time only: Q drifts by O(lr^2) per step,
    # O(lr) at fixed t. Measured 0.0199 / 0.0098 at lr = 0.002 / 0.001 (first-order).
    drift = [np.abs(run(0, spherical="lagrange", lr=lr, **common)["Q"] - 1).max() for lr in (0.002, 0.001)]
    assert drift[1] < 0.015
    assert 1.6 < drift[0] / drift[1] < 2.4
    lag = run(0, spherical="lagrange", lr=0.001, **common)
    np.testing.assert_allclose(lag["m"], proj["m"], atol=0.01)


@pytest.mark.parametrize(
    "kw",
    [
        dict(d=150, algorithm="psgd", b=0.5, tau=0.5, loss="logcosh", temperature=0.01, two_time=True),
        dict(d=150, model="mixture2", noise=0.5, loss="logistic", algorithm="sgd", b=0.3),
    ],
)
def test_deterministic(kw):
    kw = {**kw, "t_max": 1.0, "n_times": 6}
    a, b = run(4, **kw), run(4, **kw)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    c = run(5, **kw)
    assert not np.array_equal(a["m"], c["m"])


def test_registry_and_unknown_parameter():
    assert get_kernel("sgd_multipass") is SGDMultipassKernel
    message = r"Unknown parameter 'eta' for kernel 'sgd_multipass'\. Known parameters: .*'lr'"
    with pytest.raises(ParameterError, match=message):
        SGDMultipassKernel.make_params(eta=0.1)


def test_invalid_parameters_name_the_field():
    with pytest.raises(ParameterError, match=r"^loss: `hinge` needs labels \+-1"):
        SGDMultipassKernel.make_params(loss="hinge")
    with pytest.raises(ParameterError, match=r"^tau: the selection chain needs lr/tau <= 1"):
        SGDMultipassKernel.make_params(algorithm="psgd", b=0.5, tau=0.01, lr=0.1)
    with pytest.raises(ParameterError, match=r"^b: must be in \(0, 1\], got 0.0"):
        SGDMultipassKernel.make_params(b=0.0)


def test_gd_ignores_b():
    # a grid may sweep `algorithm` with b fixed: gd then uses every sample with weight 1
    common = dict(d=100, t_max=1.0, n_times=3)
    assert np.array_equal(run(0, b=0.5, **common)["m"], run(0, **common)["m"])


def test_divergence_is_a_failed_result():
    p = SGDMultipassKernel.make_params(d=100, lr=2.0, t_max=40.0, n_times=3)
    result = KERNEL.run(p, 0)
    assert not result.ok and "diverged" in result.message


# -- phase retrieval: p-SGD recovers where GD gets stuck (seed talks 000, 001, 004) -------------


@pytest.mark.slow
def test_phase_retrieval_psgd_beats_gd():
    # docs/singlelayer.md §10.2 setting: spherical (projection), random start, (y^2 - r^2)^2, lr 0.01,
    # alpha = 3, d = 1000; p-SGD with b = 0.5, tau = 2. Recovery: |m| > 0.99.
    common = dict(
        d=1000, alpha=3.0, teacher="abs", loss="phase", spherical="projection", q0=1.0,
        init="random", lr=0.01, n_times=4,
    )  # fmt: skip
    psgd = [abs(run(s, algorithm="psgd", b=0.5, tau=2.0, t_max=150.0, **common)["m"][-1]) for s in range(3)]
    # GD settles in a spurious minimum by t ~ 20 (m constant afterwards at d = 500 and 1000);
    # t_max = 50 keeps the full-batch runs, the costliest per step, short
    gd = [abs(run(s, t_max=50.0, **common)["m"][-1]) for s in range(2)]
    assert sum(m > 0.99 for m in psgd) >= 2, psgd
    assert all(m < 0.5 for m in gd), gd


@pytest.mark.parametrize(
    "kw",
    [
        dict(teacher="sign", loss="logistic"),
        dict(teacher="abs", loss="phase", spherical="projection", q0=1.0, lr=0.01),
        dict(model="mixture2", noise=0.3, loss="hinge"),
        dict(model="mixture3", noise=0.1, rho=0.4, loss="logistic"),
    ],
)
def test_test_error_from_overlaps_matches_fresh_samples(kw):
    # test_error from (m, Q) against the error of the trained weights on 40 000 fresh samples
    # from the same teacher (the data model written out independently here)
    from kernels.singlelayer.model import MIXTURE3_THRESHOLD, test_error

    d, n = 300, 40_000
    p = KERNEL.make_params(
        d=d, alpha=2.0, t_max=2.0, n_times=2, **{"lr": 0.05, "algorithm": "sgd", "b": 0.5, **kw}
    )
    state = {}
    out = simulate(p, d, 7, state=state)
    w, v = state["w"], state["v"]
    gen = np.random.default_rng(0)
    if p.model == "glm":
        Xt = gen.standard_normal((n, d))
        u = Xt @ v / np.sqrt(d)
        yt = np.where(u >= 0, 1.0, -1.0) if p.teacher == "sign" else np.abs(u)
    else:
        weights = [0.5, 0.0, 0.5] if p.model == "mixture2" else [(1 - p.rho) / 2, p.rho, (1 - p.rho) / 2]
        c = gen.choice([-1.0, 0.0, 1.0], size=n, p=weights)
        yt = c if p.model == "mixture2" else np.where(c == 0, -1.0, 1.0)
        Xt = np.outer(c, v / np.sqrt(d)) + np.sqrt(p.noise) * gen.standard_normal((n, d))
    r = Xt @ w / np.sqrt(d)
    if p.teacher == "abs" and p.model == "glm":
        errs = 0.25 * (yt**2 - r**2) ** 2
    else:
        score = r**2 - MIXTURE3_THRESHOLD if p.model == "mixture3" else r
        errs = (np.where(score >= 0, 1.0, -1.0) != yt).astype(float)
    # 5 standard errors of the test-set mean
    assert abs(errs.mean() - out["test_error"][-1]) < 5 * errs.std() / np.sqrt(n)
    assert out["test_error"][-1] == test_error(p, w @ v / d, w @ w / d)
    assert 0 < out["test_error"][-1] < 1.0


def test_langevin_stationary_norm():
    # Without data (n = 1 sample at d = 2000), discrete Langevin on the ridge is an OU process
    # per coordinate: w <- (1 - lr ridge) w + sqrt(2 T lr) zeta, stationary variance
    # 2 T lr / (1 - (1 - lr ridge)^2) = 2 T / (ridge (2 - lr ridge)). Averaged over the last
    # 10 saved times (correlated), the relative error of Q is ~ sqrt(2/d) = 3%; 10% tolerance.
    T, ridge, lr = 0.5, 1.0, 0.1
    out = run(0, d=2000, alpha=0.0005, ridge=ridge, temperature=T, lr=lr, t_max=30.0, n_times=31)
    np.testing.assert_allclose(out["Q"][-10:].mean(), 2 * T / (ridge * (2 - lr * ridge)), rtol=0.1)


# -- the saved time grid: each state is stored under its own time (kernels.timegrid) ------------------


def test_multipass_refuses_a_grid_off_the_steps_of_lr():
    # a log grid from t_min < lr saved the step nearest each time: t = 0.01 got the state at 0
    with pytest.raises(
        ParameterError, match=r"^t_min: saved times must be whole steps of lr = 0\.1 .*`t_min >= 50`"
    ):
        KERNEL.make_params(time_spacing="log", t_min=0.01, t_max=5.0, n_times=21)
    with pytest.raises(
        ParameterError, match=r"^n_times: .* but t = 1 is 3\.333 steps: its state would be the one"
    ):
        KERNEL.make_params(lr=0.3, t_max=10.0, n_times=11)


def test_multipass_log_grid_saves_the_state_at_its_time():
    # the grid only selects steps: a log grid on whole steps of lr (t_min = 500 lr) is the fine
    # linear run at those steps, for the same seed
    common = dict(d=50, **{**RIDGE, "lr": 0.01, "t_max": 20.0})
    del common["n_times"]
    log = KERNEL.make_params(**common, time_spacing="log", t_min=5.0, n_times=9)
    out = run(2, **common, time_spacing="log", t_min=5.0, n_times=9)
    fine = run(2, **common, n_times=2001)
    times = KERNEL.schema(log).coords["time"]
    steps = np.rint(times / 0.01).astype(int)
    assert np.all(np.abs(steps * 0.01 - times) <= 1e-3 * times) and np.all(np.diff(steps) > 0)
    for name in ("m", "Q", "train_loss"):
        np.testing.assert_allclose(out[name], fine[name][steps], rtol=1e-12, err_msg=name)


# -- a teacher held fixed across seeds (teacher_seed, docs/singlelayer.md §11.1) --------------------


def test_teacher_seed_shares_the_teacher_and_not_the_data():
    p = KERNEL.make_params(d=50, teacher_seed=7)
    default = KERNEL.make_params(d=50)
    (v1, X1, _), (v2, X2, _) = draw_problem(p, 50, (0, 1)), draw_problem(p, 50, (0, 2))
    assert np.array_equal(v1, v2) and not np.array_equal(X1, X2)
    # the data stream is the point's, as without teacher_seed
    assert np.array_equal(X1, draw_problem(default, 50, (0, 1))[1])
    # teacher_seed = k gives the teacher the point of seed k draws by default
    assert np.array_equal(v1, draw_problem(default, 50, (0, 7))[0])
    # another teacher_seed, or another grid seed, another teacher
    other = KERNEL.make_params(d=50, teacher_seed=8)
    assert not np.allclose(v1, draw_problem(other, 50, (0, 1))[0])
    assert not np.allclose(v1, draw_problem(p, 50, (1, 1))[0])
    # a plain integer seed is replaced whole
    assert np.array_equal(draw_problem(p, 50, 3)[0], draw_problem(default, 50, 7)[0])
    # the simulator draws through draw_problem: two seeds of a run share v and differ in the result
    states = [{}, {}]
    runs = [simulate(KERNEL.make_params(d=50, teacher_seed=7, t_max=0.5, n_times=2), 50, (0, s), state=st)
            for s, st in zip((1, 2), states)]  # fmt: skip
    assert np.array_equal(states[0]["v"], states[1]["v"]) and runs[0]["m"][-1] != runs[1]["m"][-1]


def test_teacher_seed_default_is_the_points_seed():
    # -1 (the default) draws v from the point's "teacher" stream exactly as before teacher_seed
    # existed (tests/golden holds the whole runs bit for bit)
    from kernels.base import rng

    v, _, _ = draw_problem(KERNEL.make_params(d=40), 40, (0, 5))
    z = rng((0, 5), "teacher").standard_normal(40)
    assert np.array_equal(v, z * (np.sqrt(40) / np.linalg.norm(z)))
    a = run((0, 5), d=40, t_max=1.0, n_times=3)
    b = run((0, 5), d=40, t_max=1.0, n_times=3, teacher_seed=5)
    for key in a:  # teacher_seed = the point's own seed: the same run
        assert np.array_equal(a[key], b[key]), key
    with pytest.raises(
        ParameterError, match=r"^teacher_seed: must be -1 \(the point's seed\) or a seed >= 0, got -2"
    ):
        KERNEL.make_params(teacher_seed=-2)
