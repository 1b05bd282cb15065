"""The `ode` kernel: known fixed points, Euler order, risk formula, inits, regions, contract."""

import dataclasses

import numpy as np
import pytest

from kernels.base import ParameterError
from kernels.timegrid import saved_times, substeps
from kernels.twolayer.model import draw_weights, overlaps, region, risk, steps_per_time
from kernels.twolayer.ode.kernel import ODEKernel, rates

KERNEL = ODEKernel()


def run(**values):
    seed = values.pop("seed", 0)
    params = ODEKernel.make_params(**values)
    result = KERNEL.run(params, seed=seed)
    return params, result


def saad_solla_plateau(K):
    """docs/twolayer.md §8: risk of the symmetric fixed point, eta -> 0, K = M, T = I."""
    return K / np.pi * (np.pi / 6 - K * np.arcsin(1 / (2 * K)))


def _symmetric_start(K, breaking=1e-6):
    rs = np.random.default_rng(0)
    return {
        "init": "explicit",
        "Q0": tuple((0.01 * np.eye(K)).ravel()),
        "M0": tuple((breaking * rs.uniform(size=(K, K))).ravel()),
    }


def _plateau(result):
    """Risk, Q, M where the risk is flattest before the escape (risk > 1e-3)."""
    risk_t = result.outputs["risk"]
    slope = np.abs(np.gradient(risk_t))
    slope[risk_t < 1e-3] = np.inf
    slope[:5] = np.inf  # the initial transient
    i = int(np.argmin(slope))
    return risk_t[i], result.outputs["Q"][i], result.outputs["M"][i]


@pytest.mark.parametrize("K", [2, 3])
def test_saad_solla_plateau_small_lr_limit(K):
    # Without the lr^2 term (the lr -> 0 limit in time lr t) the trajectory from a nearly
    # symmetric start passes by the symmetric saddle; its closest approach (1e-6 symmetry
    # breaking) matches the closed form to ~1e-6, so 1e-4 relative is a loose bound.
    _, result = run(
        K=K, M=K, lr=1.0, quadratic_terms=False, t_max=400.0, n_times=401, dt=0.05, **_symmetric_start(K)
    )
    value, Q, M = _plateau(result)
    assert value == pytest.approx(saad_solla_plateau(K), rel=1e-4)
    # The overlaps at the flattest point are ~1% off the fixed point: the risk is stationary
    # to first order along the slow direction through the saddle, the overlaps are not.
    np.testing.assert_allclose(Q, np.full((K, K), 1 / (2 * K - 1)), rtol=3e-2)
    np.testing.assert_allclose(M, np.full((K, K), 1 / np.sqrt(K * (2 * K - 1))), rtol=3e-2)


@pytest.mark.parametrize("K", [2, 3])
def test_saad_solla_plateau_at_small_lr(K):
    # With the lr^2 term on, the plateau sits O(lr) above the limit: at lr = 0.01 the shift
    # is ~1% (measured 0.6% for K=2); the plateau is higher, never lower.
    lr = 0.01
    _, result = run(K=K, M=K, lr=lr, t_max=400.0 / lr, n_times=401, dt=2.0, **_symmetric_start(K))
    value, _, _ = _plateau(result)
    limit = saad_solla_plateau(K)
    assert limit < value < 1.03 * limit


@pytest.mark.parametrize(("Mt", "L", "rtol"), [(1, 0, 5e-3), (2, 1, 1e-2), (1, 2, 1e-2)])
def test_small_noise_asymptotic_error(Mt, L, rtol):
    """eps* = (lr sigma^2 / 2 pi)(L + M / sqrt 3) + O(lr^2 sigma^2), docs/twolayer.md §8.

    Started at the teacher (extra units near zero), run to the fixed point at lr and lr/2 and
    extrapolated linearly to lr -> 0 (Richardson), which removes the O(lr^2) term; measured
    deviations after extrapolation: 0.05% (1, 0), 0.3% (2, 1), 0.4% (1, 2), from the O(lr^3)
    remainder and the slow approach of the extra units.
    """
    K, noise = Mt + L, 0.01
    Q0 = np.zeros((K, K))
    Q0[:Mt, :Mt] = np.eye(Mt)
    Q0[Mt:, Mt:] = 1e-4 * np.eye(L)
    M0 = np.zeros((K, Mt))
    M0[:Mt] = np.eye(Mt)
    scaled = {}
    for lr in (0.1, 0.05):
        _, result = run(
            K=K, M=Mt, lr=lr, noise=noise, init="explicit", Q0=tuple(Q0.ravel()), M0=tuple(M0.ravel()),
            t_max=200 / lr, n_times=11, dt=0.02,
        )  # fmt: skip
        assert result.ok, result.message
        scaled[lr] = result.outputs["risk"][-1] / (lr * noise)
    extrapolated = 2 * scaled[0.05] - scaled[0.1]
    assert extrapolated == pytest.approx((L + Mt / np.sqrt(3)) / (2 * np.pi), rel=rtol)


def test_euler_first_order_in_dt():
    # Explicit Euler: the global error is c dt + O(dt^2), so successive differences at
    # dt, dt/2, dt/4 shrink by 2 (1.9-2.1 leaves room for the O(dt^2) part).
    common = {"K": 3, "M": 2, "d": 100, "lr": 0.8, "noise": 0.1, "t_max": 10.0, "n_times": 11,
              "integrator": "euler"}  # fmt: skip
    outs = [run(dt=dt, **common)[1].outputs for dt in (0.04, 0.02, 0.01)]
    for name in ("risk", "Q", "M"):
        d1 = np.abs(outs[0][name] - outs[1][name]).max()
        d2 = np.abs(outs[1][name] - outs[2][name]).max()
        assert 1.9 < d1 / d2 < 2.1, (name, d1 / d2)


def test_substeps_land_on_saved_times():
    # equal steps of at most dt that add up to each interval; a linear grid whose spacing is
    # a multiple of dt takes exactly spacing / dt steps despite linspace round-off
    log = saved_times(ODEKernel.make_params(time_spacing="log", t_min=0.1, t_max=1000.0, n_times=41))
    n = substeps(log, 0.05)
    assert n[0] == 0 and np.all(n[1:] >= 1)
    h = np.diff(log) / n[1:]
    assert np.all(h <= 0.05 * (1 + 1e-9))
    assert np.all((h > 0.05 / 2) | (n[1:] == 1))  # ceil: never more steps than needed
    np.testing.assert_allclose(np.cumsum(h * n[1:]), log[1:], rtol=1e-12)
    for dt in (0.04, 0.02, 0.01):
        np.testing.assert_array_equal(substeps(np.linspace(0, 10, 11), dt)[1:], round(1 / dt))


def test_log_grid_saves_at_its_times_pure_decay():
    # With lr ~ 0 only weight decay acts: Q(t) = Q(0) exp(-2 wd t). Euler with steps h <= dt
    # gives log Q(t)/Q(0) = sum n log(1 - 2 wd h) = -2 wd t - 2 wd^2 h t (1 + O(wd h)), so the
    # deviation is <= 2 wd^2 dt t (10% margin for the O(wd h) part) at *every* saved time. On
    # this log grid (t_min = dt / 5) saving at the nearest step put early states up to dt/2
    # off their time: a deviation ~2 wd dt/2, 40x this bound at t = t_min.
    wd, dt = 0.5, 0.05
    params, result = run(
        K=2, M=2, lr=1e-12, weight_decay=wd, dt=dt, time_spacing="log", t_min=0.01, t_max=2.0, n_times=21,
        integrator="euler",
    )  # fmt: skip
    t = KERNEL.schema(params).coords["time"]
    q = result.outputs["Q"][:, 0, 0]
    deviation = np.abs(np.log(q / q[0]) + 2 * wd * t)
    assert np.all(deviation <= 1.1 * 2 * wd**2 * dt * t)


def test_log_grid_saves_at_its_times_against_small_dt():
    # The full ODE on a log grid starting below dt against dt / 64. The Euler global error is
    # dt e(t) with e(0) = 0 and e ~ t at early times, so error / (dt t) stays O(1): measured
    # <= 0.11 here. Saving at the nearest step made it ~11 at the first saved times (the
    # state at t = 0 stored as t = 0.01, ...), so 0.5 separates the two by 5x and 20x.
    common = {"K": 3, "M": 2, "d": 100, "lr": 0.8, "noise": 0.1, "time_spacing": "log",
              "t_min": 0.01, "t_max": 2.0, "n_times": 21, "integrator": "euler"}  # fmt: skip
    dt = 0.05
    (params, coarse), (_, fine) = run(dt=dt, **common), run(dt=dt / 64, **common)
    t = KERNEL.schema(params).coords["time"]
    for name in ("risk", "Q", "M"):
        err = np.abs(coarse.outputs[name] - fine.outputs[name]).reshape(len(t), -1).max(axis=1)
        assert err[0] == 0.0
        assert np.all(err[1:] <= 0.5 * dt * t[1:]), (name, (err[1:] / (dt * t[1:])).max())


@pytest.mark.parametrize(
    "scaling",
    [{"lr_v": 0.0}, {"committee": "mean", "K": 4, "kappa": 0.0, "delta": -0.3, "noise": 0.01}],
    ids=["lr_v=0", "orange"],
)
def test_trained_second_layer_decays_without_learning_term(scaling):
    # As in the sgd_online kernel, a trained second layer decays even where its learning term is
    # zero (lr_v = 0, or dropped in the orange region): v(t) = v0 exp(-wd t). Euler with
    # steps h: log v/v0 = -wd t - wd^2 h t / 2 (1 + O(wd h)), hence the bound.
    wd, dt = 0.3, 0.01
    values = {"K": 2, "M": 2, "d": 100, "weight_decay": wd, "dt": dt, "t_max": 5.0, "n_times": 11,
              "integrator": "euler", **scaling}  # fmt: skip
    params, result = run(train_second_layer=True, **values)
    assert rates(params)[2] == 0.0  # no learning term for v
    t = KERNEL.schema(params).coords["time"]
    v = result.outputs["v"]
    v0 = v[0]
    deviation = np.abs(np.log(v / v0) + wd * t[:, None])
    assert np.all(deviation <= 1.1 * wd**2 / 2 * dt * t[:, None])
    # an untrained second layer is fixed, decay or not
    _, fixed = run(**values)
    np.testing.assert_array_equal(fixed.outputs["v"], np.broadcast_to(v0, v.shape))


@pytest.mark.parametrize("activation", ["erf", "relu", "linear"])
def test_risk_from_overlaps_equals_monte_carlo(activation):
    # 1e6 fresh inputs through the actual networks; 5 standard errors of the MC mean.
    params = ODEKernel.make_params(
        d=20, K=3, M=2, activation=activation, teacher="gaussian", v0=(0.7, -1.2, 0.4)
    )
    W, W_star, v, v_star = draw_weights(params, seed=3)
    exact = risk(params, *overlaps(W, W_star), v, v_star)
    from scipy.special import erf

    g = {"erf": lambda x: erf(x / np.sqrt(2)), "relu": lambda x: np.maximum(x, 0), "linear": lambda x: x}[
        activation
    ]
    rs = np.random.default_rng(0)
    losses = []
    for _ in range(10):
        x = rs.standard_normal((100_000, params.d))
        f = g(x @ W.T / np.sqrt(params.d)) @ v
        f_star = g(x @ W_star.T / np.sqrt(params.d)) @ v_star
        losses.append(0.5 * (f_star - f) ** 2)
    losses = np.concatenate(losses)
    se = losses.std() / np.sqrt(losses.size)
    assert abs(losses.mean() - exact) < 5 * se


def test_random_init_shares_sgd_weights():
    # An ode point starts from the overlaps of exactly the weights `draw_weights` gives
    # the sgd_online kernel for the same seed and parameters.
    params, result = run(d=300, K=3, M=2, t_max=1.0, n_times=2, seed=5)
    W, W_star, v, _ = draw_weights(params, seed=5)
    Q, M, P = overlaps(W, W_star)
    np.testing.assert_allclose(result.outputs["Q"][0], Q, atol=1e-14)
    np.testing.assert_allclose(result.outputs["M"][0], M, atol=1e-14)
    np.testing.assert_allclose(result.outputs["P"], P, atol=1e-14)
    np.testing.assert_array_equal(result.outputs["v"][0], v)


def test_explicit_and_small_inits():
    Q0, M0 = (1.0, 0.2, 0.2, 0.5), (0.3, 0.0, 0.1, 0.4)
    _, result = run(K=2, M=2, init="explicit", Q0=Q0, M0=M0, v0=(0.5, 2.0), t_max=1.0, n_times=2)
    np.testing.assert_array_equal(result.outputs["Q"][0].ravel(), Q0)
    np.testing.assert_array_equal(result.outputs["M"][0].ravel(), M0)
    np.testing.assert_array_equal(result.outputs["v"][0], (0.5, 2.0))
    np.testing.assert_array_equal(result.outputs["P"], np.eye(2))
    nested = ODEKernel.make_params(
        K=2, M=2, init="explicit", Q0=[[1.0, 0.2], [0.2, 0.5]], M0=[[0.3, 0], [0.1, 0.4]]
    )
    assert nested.Q0 == Q0 and nested.M0 == M0  # TOML nested arrays are stored flat
    _, small = run(K=3, M=2, init="small", init_scale=0.1, t_max=1.0, n_times=2)
    np.testing.assert_allclose(small.outputs["Q"][0], 0.01 * np.eye(3), atol=0)
    assert 0 < np.abs(small.outputs["M"][0]).max() < 1e-2  # only breaks the symmetry
    # finite-d explicit weights reproduce the explicit overlaps exactly
    params = ODEKernel.make_params(K=2, M=2, d=50, init="explicit", Q0=Q0, M0=M0)
    Q, M, P = overlaps(*draw_weights(params, seed=1)[:2])
    np.testing.assert_allclose(Q.ravel(), Q0, atol=1e-12)
    np.testing.assert_allclose(M.ravel(), M0, atol=1e-12)


def test_explicit_init_validation():
    with pytest.raises(ParameterError, match="Q0: expects 4 values"):
        ODEKernel.make_params(K=2, M=2, init="explicit", Q0=(1.0, 0.0), M0=(0, 0, 0, 0))
    with pytest.raises(ParameterError, match="positive semi-definite"):
        ODEKernel.make_params(K=2, M=2, init="explicit", Q0=(0.1, 0, 0, 0.1), M0=(1, 0, 0, 1))
    with pytest.raises(ParameterError, match='only used with `init = "explicit"`'):
        ODEKernel.make_params(K=2, M=2, Q0=(1, 0, 0, 1))
    with pytest.raises(ParameterError, match="set both `kappa` and `delta`"):
        ODEKernel.make_params(kappa=0.5)


def test_second_layer_and_weight_decay_move_v():
    _, fixed = run(K=2, M=2, d=100, t_max=5.0, n_times=3)
    assert np.all(fixed.outputs["v"] == 1.0)
    _, trained = run(K=2, M=2, d=100, t_max=5.0, n_times=3, train_second_layer=True, lr_v=0.3)
    assert not np.allclose(trained.outputs["v"][-1], 1.0)
    # pure decay (lr tiny): Q decays as exp(-2 wd t), M as exp(-wd t)
    _, decayed = run(K=2, M=2, d=100, lr=1e-12, weight_decay=0.2, t_max=5.0, n_times=3, dt=0.001)
    q, m = decayed.outputs["Q"], decayed.outputs["M"]
    np.testing.assert_allclose(q[-1], q[0] * np.exp(-2.0), rtol=2e-3)
    np.testing.assert_allclose(m[-1], m[0] * np.exp(-1.0), rtol=2e-3)


def test_regions_from_swept_kappa_delta():
    # A (kappa, delta) grid needs no code edits: the region, time unit and kept terms follow
    # from the values, and the output shape does not change.
    cases = {(0.5, 0.0): "green", (0.3, -0.3): "blue", (0.0, -0.3): "orange", (0.0, -0.8): "red"}
    shapes = set()
    for (kappa, delta), expected in cases.items():
        params, result = run(K=4, M=2, committee="mean", d=100, lr=1.0, kappa=kappa, delta=delta,
                             noise=0.01, t_max=2.0, n_times=5)  # fmt: skip
        assert region(params) == expected
        assert result.outputs["region"] == {"green": 1, "blue": 2, "orange": 3, "red": 4}[expected]
        assert result.outputs["steps_per_time"] == pytest.approx(steps_per_time(params))
        a1, a2, _, _, _ = rates(params)
        assert (a1 == 0) == (expected in ("orange", "red"))
        assert (a2 == 0) == (expected == "green")
        if expected in ("orange", "red"):
            np.testing.assert_array_equal(result.outputs["M"][-1], result.outputs["M"][0])  # M frozen
        shapes.add(tuple(v.shape for v in result.outputs.values()))
    assert len(shapes) == 1
    # kappa = delta = 0 (blue) is the unscaled dynamics with gamma = lr K (gamma / K = lr)
    _, plain = run(K=4, M=2, committee="mean", d=100, lr=4.0, t_max=2.0, n_times=5)
    _, blue = run(K=4, M=2, committee="mean", d=100, lr=1.0, t_max=2.0, n_times=5, kappa=0.0, delta=0.0)
    np.testing.assert_allclose(plain.outputs["risk"], blue.outputs["risk"], rtol=1e-12)


def test_divergence_is_a_failed_result_with_time():
    # linear units with a learning rate far above the stability limit grow geometrically
    params, result = run(K=2, M=2, activation="linear", lr=20.0, t_max=100.0, n_times=101)
    assert not result.ok
    assert "diverged" in result.message and "at time t = " in result.message
    risk_t = result.outputs["risk"]
    assert np.isfinite(risk_t[0]) and np.isnan(risk_t[-1])


def test_relu_runs_and_learns():
    _, result = run(K=2, M=2, activation="relu", lr=0.3, t_max=5.0, n_times=3, dt=0.05)
    assert result.ok, result.message
    assert result.outputs["risk"][-1] < result.outputs["risk"][0]


def test_contract_details():
    with pytest.raises(
        ParameterError, match=r"Unknown parameter 'sigma' for kernel 'ode'.*Known parameters: .*'noise'"
    ):
        ODEKernel.make_params(sigma=0.1)
    # shape parameters are exactly those that set dims or coordinates
    base = ODEKernel.make_params(K=3, M=2)
    schema = {n: o.dims for n, o in KERNEL.schema(base).outputs.items()}
    coords = {k: len(v) for k, v in KERNEL.schema(base).coords.items()}
    for name, value in {"d": 37, "lr": 0.1, "noise": 0.3, "kappa": 0.5, "delta": 0.1, "dt": 0.001}.items():
        extra = {"kappa": {"delta": 0.0}, "delta": {"kappa": 0.0}}.get(name, {})
        changed = dataclasses.replace(base, **{name: value, **extra})
        assert {n: o.dims for n, o in KERNEL.schema(changed).outputs.items()} == schema
        assert {k: len(v) for k, v in KERNEL.schema(changed).coords.items()} == coords
        assert name not in ODEKernel.shape_params
    assert {"K", "M", "t_max", "n_times"} <= ODEKernel.shape_params
    for out in KERNEL.schema(base).outputs.values():
        assert out.long_name
    assert "noise/2" in KERNEL.schema(base).attrs["risk"]
    # deterministic, and the seed matters for the random init
    a, b, c = (KERNEL.run(base, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.outputs["risk"], b.outputs["risk"])
    assert not np.array_equal(a.outputs["risk"], c.outputs["risk"])


def test_vectorised_i4_sum_equals_scalar_closed_form():
    # The hot loop's I4 sum (hoisted Lambdas, A <= B, fast arcsine) against the scalar
    # closed form summed over all (A, B); agreement to round-off.
    from kernels.twolayer.gaussian import i4_erf
    from kernels.twolayer.ode.equations import _quadratic_erf, _quadratic_erf_wide

    K, n, noise = 3, 5, 0.2
    rs = np.random.default_rng(4)
    A = rs.standard_normal((n, n + 2))
    Om = A @ A.T / (n + 2)
    c = rs.standard_normal(n)
    G = np.zeros((K, K))
    pairs = n * (n + 1) // 2
    _quadratic_erf(K, n, Om, c, noise, G, *(np.empty(n) for _ in range(3)), np.empty(pairs), np.empty(pairs))
    G_wide = np.zeros((K, K))
    ik = K * (K + 1) // 2
    _quadratic_erf_wide(
        K, n, Om, c, noise, G_wide, *(np.empty((n, ik)) for _ in range(5)), np.empty(ik), np.empty(ik)
    )
    np.testing.assert_allclose(G_wide, G, rtol=1e-13, atol=1e-15)
    for i in range(K):
        for k in range(K):
            ref = 0.0
            for a in range(n):
                for b in range(n):
                    idx = (i, k, a, b)
                    C = Om[np.ix_(idx, idx)]
                    ref += (
                        c[a]
                        * c[b]
                        * i4_erf(
                            *(
                                C[p, q]
                                for p, q in (
                                    (0, 0),
                                    (0, 1),
                                    (0, 2),
                                    (0, 3),
                                    (1, 1),
                                    (1, 2),
                                    (1, 3),
                                    (2, 2),
                                    (2, 3),
                                    (3, 3),
                                )
                            )
                        )
                    )
            ref += noise * 2 / np.pi / np.sqrt((1 + Om[i, i]) * (1 + Om[k, k]) - Om[i, k] ** 2)
            assert G[i, k] == pytest.approx(ref, rel=1e-12, abs=1e-14)
