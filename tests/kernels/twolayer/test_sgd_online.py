"""The `sgd_online` kernel: one-pass SGD of two-layer networks at finite d, checked against
closed forms, exact recursions, its own normal generator and the `ode` kernel.
"""

from __future__ import annotations

import numpy as np
import pytest

from kernels.base import ParameterError
from kernels.registry import get_kernel
from kernels.twolayer.sgd_online import SGDOnlineKernel

KERNEL = SGDOnlineKernel()


def online(seed=0, **kw):
    result = KERNEL.run(KERNEL.make_params(**kw), seed)
    assert result.ok, result.message
    return result.outputs


def test_online_starts_from_the_ode_kernels_initial_overlaps():
    # paired `ode` and `sgd` points draw their weights from twolayer.draw_weights: the saved
    # t = 0 overlaps are exactly those of the shared initial weights
    from kernels.twolayer.model import draw_weights, overlaps

    p = KERNEL.make_params(d=200, K=3, M=2, t_max=1.0, n_times=3)
    out = KERNEL.run(p, 9).outputs
    W, Wt, v, vt = draw_weights(p, 9)
    Q, M, P = overlaps(W, Wt)
    np.testing.assert_array_equal(out["Q"][0], Q)
    np.testing.assert_array_equal(out["M"][0], M)
    np.testing.assert_array_equal(out["P"], P)
    np.testing.assert_array_equal(out["v"][0], v)


@pytest.mark.parametrize("activation", ["erf", "relu", "linear"])
def test_online_risk_from_overlaps_equals_test_set(activation):
    # Closed-form risk (kernels.twolayer.model.risk) vs a fixed test set of 20 000 noiseless samples.
    # For a Gaussian-like difference f* - f of variance 2R, (f* - f)^2 / 2 has standard
    # deviation ~ sqrt(2) R: 6 standard errors is 6 sqrt(2/n) R = 0.06 R.
    n = 20_000
    kw = dict(d=100, K=3, M=2, activation=activation, lr=0.2, noise=0.01, n_test=n)
    kw |= dict(committee="mean", train_second_layer=True, t_max=3.0, n_times=4)
    out = online(1, **kw)
    np.testing.assert_allclose(out["risk_test"], out["risk"], rtol=6 * np.sqrt(2 / n))
    assert out["risk"][-1] < out["risk"][0]  # it learns


def test_online_concentrates_with_d():
    # small learning rate: across-seed variance of the overlaps is O(1/d) (docs/twolayer.md
    # §6: deviations from the ODE are O(d^-1/2)). From d = 100 to 1000 the variance should
    # fall ~10x; with 8 seeds, averaged over 5 times and 6 overlap entries, the ratio's
    # sampling spread is well under 2x, so > 3 is a safe threshold.
    def spread(d):
        kw = dict(d=d, K=2, M=2, lr=0.3, t_max=4.0, n_times=5)
        runs = [online(s, **kw) for s in range(8)]
        stack = np.array([np.concatenate([r["Q"][1:].ravel(), r["M"][1:].ravel()]) for r in runs])
        return stack.var(0, ddof=1).mean(), np.array([r["risk"] for r in runs]).var(0, ddof=1)[1:].mean()

    (q100, r100), (q1000, r1000) = spread(100), spread(1000)
    assert q100 / q1000 > 3, (q100, q1000)
    assert r100 / r1000 > 3, (r100, r1000)


def test_online_per_unit_outputs_and_mean_field_scaling():
    out = online(2, d=50, K=40, M=1, committee="mean", lr=1.0, save_particles=5, t_max=2.0, n_times=3)
    np.testing.assert_array_equal(out["m"], out["M"][:, :5])
    np.testing.assert_array_equal(out["q"], np.diagonal(out["Q"], axis1=1, axis2=2)[:, :5])
    np.testing.assert_allclose(out["a"], 1 / 40)
    assert out["risk"][-1] < out["risk"][0]


def test_online_deterministic_and_its_own_parameters():
    kw = dict(d=60, K=2, M=2, noise=0.1, train_second_layer=True, t_max=2.0, n_times=3)
    a, b = online(3, **kw), online(3, **kw)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    # names the two simulators share with different meanings keep each kernel's own default
    p = KERNEL.make_params()
    assert p.lr == 0.5 and p.teacher == "orthogonal" and p.init == "random"
    q = get_kernel("sgd_multipass").make_params()
    assert q.lr == 0.1 and q.teacher == "linear" and q.init == "warm"
    with pytest.raises(ParameterError, match="^teacher: expected one of"):
        KERNEL.make_params(teacher="abs")
    # the other simulator's parameters are refused, not silently dropped
    with pytest.raises(
        ParameterError, match=r"Unknown parameters 'alpha', 'two_time' for kernel 'sgd_online'"
    ):
        KERNEL.make_params(alpha=3.0, two_time=True)
    with pytest.raises(ParameterError, match=r"Unknown parameter 'mode' for kernel 'sgd_online'"):
        KERNEL.make_params(mode="online")


@pytest.mark.parametrize("committee", ["saad_solla", "mean"])
def test_online_linear_mean_overlap_is_exact(committee):
    # Linear units: E[e rho_n | W] = sum_m v*_m P_mn - sum_j v_j M_jn, so given the start the
    # mean of M follows the linear recursion M <- M + (lr/d) v (v*^T P - v^T M) exactly at
    # finite d, whatever Q does. Checks the update rule, the committee's second layers and
    # the time unit (steps = t d). Residuals over 12 seeds: the SGD noise on M is
    # ~ lr sqrt(t/d) |v| per entry; 5 standard errors of the mean.
    d, t, lr = 100, 2.0, 0.5
    kw = dict(d=d, K=2, M=1, activation="linear", committee=committee, lr=lr, t_max=t, n_times=2)
    residuals = []
    for seed in range(12):
        out = online(seed, **kw)
        M, P, v = out["M"][0], out["P"], out["v"][0]
        vt = np.ones(1)  # M = 1: v* = 1 in both committees
        for _ in range(int(t * d)):
            M = M + (lr / d) * np.outer(v, vt @ P - v @ M)
        residuals.append(out["M"][-1] - M)
    residuals = np.array(residuals)
    mean, sem = residuals.mean(0), residuals.std(0, ddof=1) / np.sqrt(len(residuals))
    assert np.all(np.abs(mean) < 5 * sem), (mean, sem)
    assert np.abs(residuals).max() < 0.2


def test_online_normals_are_standard_normal():
    # the in-loop generator (xoshiro256+ and ziggurat) against N(0, 1): 10^6 draws, so
    # moments have standard errors 1e-3 (mean), 1.4e-3 (variance), 1e-2 (4th moment);
    # tail frequencies and a KS test check the ziggurat's wedges and tail
    from scipy import stats

    from kernels.twolayer.sgd_online.normals import generator_state, normals

    z = normals(generator_state(np.random.default_rng(0)), 1_000_000)
    assert abs(z.mean()) < 5e-3 and abs(z.var() - 1) < 7e-3 and abs((z**4).mean() - 3) < 0.05
    for cut in (1.0, 2.5, 3.5):
        expected = 2 * stats.norm.sf(cut)
        assert abs(np.mean(np.abs(z) > cut) - expected) < 5 * np.sqrt(expected / 1e6)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    s = generator_state(np.random.default_rng(0))
    assert np.array_equal(normals(s.copy(), 10), normals(s.copy(), 10))


def test_online_follows_the_ode_kernel():
    # Paired runs: the `ode` kernel at the same (params, seed) starts from the same finite-d
    # overlaps; finite-d SGD then deviates from it by O(d^-1/2) (docs/twolayer.md §8).
    # Measured mean over seeds of max_t |risk_sgd - risk_ode| * sqrt(d): 0.31 (d = 500) and
    # 0.27 (d = 2000), against an initial risk of 0.65; the bound 0.6 / sqrt(d) shrinks with d.
    ode = get_kernel("ode")()
    for d in (500, 2000):
        common = dict(d=d, K=2, M=2, lr=0.5, t_max=10.0, n_times=11)
        gaps = []
        for seed in range(4):
            theory = ode.run(ode.make_params(**common), seed)
            assert theory.ok, theory.message
            gaps.append(np.abs(online(seed, **common)["risk"] - theory.outputs["risk"]).max())
        assert np.mean(gaps) < 0.6 / np.sqrt(d), (d, gaps)


def test_online_time_grid_needs_no_whole_steps_of_lr():
    # online time is steps / d: any saved grid is whole steps at d = 1000 and lr = 0.3
    KERNEL.make_params(lr=0.3, t_max=10.0, n_times=11)


def test_two_saved_times_on_one_step_are_refused():
    # at d = 50 a step is 0.02 time units: a log grid from t_min = 0.001 would store the
    # initial state under several times
    with pytest.raises(ParameterError, match=r"^t_min: saved times .* fall on the same SGD step"):
        KERNEL.make_params(d=50, time_spacing="log", t_min=0.001, t_max=10.0, n_times=21)
    KERNEL.make_params(d=50, time_spacing="log", t_min=0.1, t_max=10.0, n_times=21)
