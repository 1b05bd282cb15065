"""Over-parametrised phase retrieval in `sgd_multipass` (``hidden = K > 1``, docs/singlelayer.md §12).

The K-unit quadratic student is checked against things it did not produce: finite
differences of its loss, the single-layer phase-retrieval simulator at K = 1, a Monte-Carlo
test error on fresh samples, the K-independence of the dynamics of S = W^T W / K, and the
landscape result of Sarao Mannelli, Vanden-Eijnden & Zdeborova (2020) at d = 40.
"""

from __future__ import annotations

import numpy as np
import pytest

from kernels.base import ParameterError
from kernels.singlelayer.sgd_multipass import SGDMultipassKernel
from kernels.singlelayer.sgd_multipass import committee as committee_module
from kernels.singlelayer.sgd_multipass.committee import committee_gradient, simulate_committee
from kernels.singlelayer.sgd_multipass.kernel import rank_one_matrix_error
from kernels.singlelayer.sgd_multipass.simulation import simulate

KERNEL = SGDMultipassKernel()
PHASE = dict(teacher="abs", loss="phase", loss_scale=0.25)


def run(seed=0, **kw):
    result = KERNEL.run(KERNEL.make_params(**kw), seed)
    assert result.ok, result.message
    return result.outputs


def test_gradient_matches_finite_differences():
    # G must be K times the gradient in W of  weight * sum_mu scale (y_mu^2 - f_mu)^2,
    # f = (1/K) sum_k (w_k.x/sqrt(d))^2. Central differences at h = 1e-5: truncation
    # ~h^2 |L'''| ~ 1e-9 and round-off ~1e-16 |L| / h ~ 1e-10 on entries of O(1); 1e-6 relative.
    gen = np.random.default_rng(3)
    K, d, n, weight, scale = 3, 7, 20, 1.7, 0.25
    W, X, y2 = gen.standard_normal((K, d)), gen.standard_normal((n, d)), gen.standard_normal(n) ** 2

    def loss(W):
        f = ((X @ W.T / np.sqrt(d)) ** 2).mean(1)
        return weight * scale * ((y2 - f) ** 2).sum()

    G, wg = committee_gradient(W, X, y2, weight, scale)
    numeric = np.zeros_like(W)
    h = 1e-5
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = h
        numeric[idx] = (loss(W + E) - loss(W - E)) / (2 * h)
    np.testing.assert_allclose(G, K * numeric, rtol=1e-6, atol=1e-8)
    # sum_k w_k.g_k / K, the Lagrange multiplier's input
    assert wg == pytest.approx((W * G).sum() / K, rel=1e-12)


@pytest.mark.parametrize(
    "kw",
    [
        dict(init="random", q0=1.0),
        dict(algorithm="psgd", b=0.5, tau=0.5, spherical="projection", q0=1.0, init="random"),
        dict(algorithm="sgd", b=0.3, spherical="lagrange", temperature=0.01, ridge=0.1),
        dict(noise=0.1, ridge=0.2, m0=0.3, q0=1.2),
    ],
)
def test_one_unit_is_the_single_layer_phase_retrieval(kw):
    # f = r^2 at K = 1: the BLAS committee and the fused numba loop of the single-layer
    # kernel run the same algorithm on the same streams; m differs in sign only (the
    # committee reports sqrt(v^T S v)/d). Measured agreement 2e-15; 1e-12 is round-off.
    p = KERNEL.make_params(d=60, alpha=3.0, lr=0.01, t_max=2.0, n_times=5, **PHASE, **kw)
    single, one_unit = simulate(p, 60, (0, 3)), simulate_committee(p, 60, 1, (0, 3))
    assert np.abs(single["m"][-1]) > 0.05  # the runs really moved
    for name, value in single.items():
        value = np.abs(value) if name == "m" else value
        np.testing.assert_allclose(one_unit[name], value, rtol=1e-12, atol=1e-14, err_msg=name)


def test_dynamics_of_S_do_not_depend_on_K(monkeypatch):
    # The update is lr K times the gradient, so S = W^T W / K obeys one equation at every K
    # (docs/singlelayer.md §12.1): K units and the same units twice (2K) give the same run.
    # With the plain gradient the 2K run would be twice slower.
    p = KERNEL.make_params(d=20, alpha=4.0, lr=0.02, t_max=2.0, n_times=5, init="random", q0=1.0, **PHASE)
    W0 = np.random.default_rng(1).standard_normal((3, 20))
    monkeypatch.setattr(committee_module, "committee_weights", lambda p, v, K, seed: W0.copy())
    three = simulate_committee(p, 20, 3, 0)
    monkeypatch.setattr(committee_module, "committee_weights", lambda p, v, K, seed: np.vstack([W0, W0]))
    six = simulate_committee(p, 20, 6, 0)
    assert abs(three["matrix_error"][-1] - three["matrix_error"][0]) > 0.1
    for name in three:
        np.testing.assert_allclose(six[name], three[name], rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("hidden", [1, 5])
def test_test_error_and_matrix_error_against_fresh_samples(hidden):
    # test_error = E[(u^2 - f)^2] / 4 in closed form from S against 40 000 fresh samples, and
    # matrix_error against the d x d matrices written out; 5 standard errors of the mean.
    d, n_test = 30, 40_000
    p = KERNEL.make_params(
        d=d, alpha=3.0, lr=0.02, t_max=1.0, n_times=2, init="random", q0=1.0, hidden=hidden,
        student_matrix=True, **PHASE,
    )  # fmt: skip
    state = {}
    if hidden == 1:
        out = simulate(p, d, 7, state=state)
        out["matrix_error"] = rank_one_matrix_error(out["m"], out["Q"])  # what the kernel returns
        W, v = state["w"][None, :], state["v"]
    else:
        out = simulate_committee(p, d, hidden, 7, state=state)  # matrix_error by default
        W, v = state["W"], state["v"]
    S, S_star = W.T @ W / hidden, np.outer(v, v)
    assert out["matrix_error"][-1] == pytest.approx(
        np.linalg.norm(S - S_star) / np.linalg.norm(S_star), rel=1e-9
    )
    X = np.random.default_rng(0).standard_normal((n_test, d))
    f = ((X @ W.T) ** 2).mean(1) / d
    errs = 0.25 * ((X @ v) ** 2 / d - f) ** 2
    assert abs(errs.mean() - out["test_error"][-1]) < 5 * errs.std() / np.sqrt(n_test)
    assert 0.01 < out["test_error"][-1] < 2


def test_hidden_units_need_phase_retrieval():
    with pytest.raises(
        ParameterError, match=r'^hidden: 4 hidden units need phase retrieval: set `model = "glm"`'
    ):
        KERNEL.make_params(hidden=4)
    with pytest.raises(ParameterError, match=r"^two_time: is not measured with hidden units"):
        KERNEL.make_params(hidden=4, two_time=True, **PHASE)
    with pytest.raises(ParameterError, match=r"^hidden: must be a positive integer, got 0"):
        KERNEL.make_params(hidden=0)


def test_default_outputs_are_unchanged_and_matrix_error_is_opt_in():
    # stores made before `hidden` existed hold exactly these outputs (docs/singlelayer.md §12)
    base = dict(d=50, t_max=1.0, n_times=3, **PHASE)
    assert sorted(run(0, **base)) == ["Q", "m", "test_error", "train_error", "train_loss"]
    assert sorted(run(0, hidden=3, **base)) == ["Q", "m", "test_error", "train_error", "train_loss"]
    assert "matrix_error" in run(0, hidden=3, student_matrix=True, **base)


@pytest.mark.parametrize("student_matrix", [False, True])
def test_divergence_with_hidden_units_is_a_failed_result(student_matrix):
    p = KERNEL.make_params(
        d=20, alpha=3.0, lr=1.0, t_max=20.0, n_times=3, hidden=4, student_matrix=student_matrix, **PHASE
    )
    result = KERNEL.run(p, 0)
    assert not result.ok and "diverged" in result.message
    assert np.isfinite(result.outputs["Q"][0]) and np.isnan(result.outputs["Q"][-1])


# -- the landscape result: width lowers the sample complexity of GD --------------------------------


@pytest.mark.slow
def test_wide_students_recover_the_signal_where_one_unit_fails():
    # Sarao Mannelli, Vanden-Eijnden & Zdeborova 2020 (docs/singlelayer.md §12.3): with K >= d
    # GD reaches a global minimum, which is w* w*^T alone for alpha > 2; one unit gets stuck in
    # spurious minima. d = 40, GD from a random start, lr 0.02, t = 50. Success: matrix_error
    # < 0.2; the errors of K = d decay like 1/t (§12.3) while the spurious minima of K = 1 sit
    # above 1. Measured over seeds 0..9 (load ~6): K = d, alpha = 4: 10/10 succeed (max 0.076);
    # K = 1, alpha = 4: 6/10 (seeds 0..7: 4/8, failures at 1.26-1.79); K = d, alpha = 1: 0/10
    # (min 0.85: an interpolating minimum other than w* w*^T).
    common = dict(d=40, lr=0.02, t_max=50.0, n_times=2, init="random", q0=1.0, student_matrix=True, **PHASE)
    seeds = range(8)
    wide = [run((0, s), alpha=4.0, hidden=40, **common)["matrix_error"][-1] for s in seeds]
    narrow = [run((0, s), alpha=4.0, hidden=1, **common)["matrix_error"][-1] for s in seeds]
    few = [run((0, s), alpha=1.0, hidden=40, **common)["matrix_error"][-1] for s in seeds]
    assert all(e < 0.2 for e in wide), wide
    assert sum(e > 1.0 for e in narrow) >= 2, narrow
    assert all(e > 0.5 for e in few), few
