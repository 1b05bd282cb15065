"""State evolution and free entropy of the `amp` kernel against closed forms, finite
differences and the thresholds of the literature (docs/amp.md §2, §4, §7).

Literature values: phase retrieval with a Gaussian prior, weak recovery at alpha = 1/2 and
perfect recovery at alpha_IT = 1 (both exact), AMP at alpha ~ 1.13 (Barbier, Krzakala,
Macris, Miolane & Zdeborova, PNAS 2019); the ±1 perceptron's first-order transition at
alpha_IT ~ 1.245 (Gyorgyi 1990; 1.249 in BKMMZ 2019: the quotes differ in the third digit)
and AMP's spinodal at ~1.493 (BKMMZ 2019).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kernels.base import ParameterError
from kernels.singlelayer.amp import AMPKernel, channels, priors
from kernels.singlelayer.amp import state_evolution as se
from kernels.singlelayer.amp import thresholds as th
from kernels.singlelayer.model import ABS, LINEAR, SIGN

KERNEL = AMPKernel()
TOL = se.QUADRATURE_TOL


def run(**kw):
    result = KERNEL.run(KERNEL.make_params(**kw))
    assert result.ok, result.message
    return result.outputs


@pytest.mark.parametrize("alpha, noise", [(0.5, 0.1), (2.0, 0.01), (1.0, 0.5), (3.0, 1.0)])
def test_linear_gaussian_fixed_point_is_the_closed_form(alpha, noise):
    # E^2 + (Delta + alpha - 1) E - Delta = 0 (docs/amp.md §4.3); one fixed point, so AMP = Bayes
    c = noise + alpha - 1
    closed = 0.5 * (-c + math.sqrt(c * c + 4 * noise))
    out = run(teacher="linear", alpha=alpha, noise=noise, tolerance=1e-13)
    # the relative stopping criterion leaves |error| <= tolerance E / (1 - rate): 1e-10 relative
    assert out["mse_amp"] == pytest.approx(closed, rel=1e-10)
    assert out["mse_bayes"] == pytest.approx(closed, rel=1e-10)
    assert out["test_error_bayes"] == pytest.approx(closed / 2, rel=1e-10)


def test_path_is_the_se_map_and_q_equals_m():
    out = run(teacher="sign", alpha=2.0, m0=0.2, iterations=6)
    m = out["m"]
    assert m[0] == 0.2
    for t in range(6):  # m^{t+1} = G(alpha H(m^t)), with G(mhat) = mhat / (1 + mhat) for the N(0, 1) prior
        mhat = 2.0 * channels.fisher(SIGN, m[t], 1 - m[t], 0.0, 1.0, TOL)
        assert m[t + 1] == pytest.approx(mhat / (1 + mhat), rel=1e-14)
    np.testing.assert_array_equal(out["q"], m)
    np.testing.assert_allclose(out["mse"], 1 - m, rtol=1e-15)


@pytest.mark.parametrize(
    "channel, prior, m, noise",
    [
        (SIGN, priors.GAUSSIAN, 0.4, 0.0),
        (SIGN, priors.RADEMACHER, 0.9, 0.1),
        (ABS, priors.GAUSSIAN, 0.3, 0.0),
        (ABS, priors.RADEMACHER, 0.97, 0.0),
        (LINEAR, priors.GAUSSIAN, 0.5, 0.2),
    ],
)
def test_derivatives_of_the_free_entropy_are_the_se_functions(channel, prior, m, noise):
    # 2 dPsi_out/dm = H(m) and 2 dPsi_w/dmhat = rho - mmse(mhat) (docs/amp.md §2.2), by central
    # differences with one Richardson step: truncation ~h^4 f^(5) (f^(5) ~ (1 - m)^-5 near m = 1:
    # ~1e-9 at m = 0.97, h = 1e-3) and round-off ~1e-12 / h ~ 1e-9; compared at 1e-7
    def slope(f, x, h=1e-3):
        def central(step):
            return (f(x + step) - f(x - step)) / (2 * step)

        return (4 * central(h / 2) - central(h)) / 3

    def psi(x):
        return channels.psi_out(channel, x, 1 - x, noise, 1.0, TOL)

    assert 2 * slope(psi, m) == pytest.approx(channels.fisher(channel, m, 1 - m, noise, 1.0, TOL), rel=1e-7)

    def psi_w(x):
        return priors.psi_w(prior, x, TOL)

    mhat = 1.3
    assert 2 * slope(psi_w, mhat) == pytest.approx(1 - priors.mmse(prior, mhat, TOL), rel=1e-7)


def test_free_entropy_is_stationary_at_the_fixed_points():
    # f_RS(m) = inf_mhat f_RS(m, mhat) has zero slope at every fixed point (docs/amp.md §2.3): the
    # +-1 perceptron at alpha = 1.3 has AMP's imperfect one; slope by central differences
    alpha, h = 1.3, 1e-4
    found = se.fixed_points(SIGN, priors.RADEMACHER, alpha, 0.0, 1e-12, 10000, TOL)
    V = found.mse_amp

    def f(v):
        return se.free_entropy(SIGN, priors.RADEMACHER, alpha, 0.0, v, priors.conjugate(1, v, TOL), TOL)

    assert 0 < V < 1
    assert abs(f(V + h) - f(V - h)) / (2 * h) < 1e-7
    # and away from it the slope is what docs/amp.md §2.3 says: (H/2)(alpha - alpha(m)), not 0
    Vo = V + 0.1
    mhat = priors.conjugate(priors.RADEMACHER, Vo, TOL)
    slope_in_m = -(f(Vo + h) - f(Vo - h)) / (2 * h)
    assert slope_in_m == pytest.approx(
        0.5 * (alpha * channels.fisher(SIGN, 1 - Vo, Vo, 0, 1, TOL) - mhat), rel=1e-5
    )


def test_rademacher_perceptron_perfect_recovery_has_free_entropy_minus_ln2():
    # docs/amp.md §4.1: f_RS(m = 1) = -ln 2 exactly; the limit is approached continuously
    out = run(teacher="sign", prior="rademacher", alpha=1.4)
    assert out["m_fixed"][1] == 1.0 and out["free_entropy_fixed"][1] == -math.log(2)
    V = 1e-9
    near = se.free_entropy(SIGN, 1, 1.4, 0.0, V, priors.conjugate(1, V, TOL), TOL)
    assert near == pytest.approx(-math.log(2), abs=1e-3)


def test_gaussian_perceptron_amp_is_bayes_optimal():
    # a single fixed point for every alpha (docs/amp.md §4.1): both starts meet, f equal
    for alpha in (0.5, 2.0, 6.0):
        out = run(teacher="sign", alpha=alpha)
        assert out["m_fixed"][0] == pytest.approx(out["m_fixed"][1], abs=1e-7)
        assert out["mse_amp"] == pytest.approx(out["mse_bayes"], abs=1e-7)
        assert out["test_error_amp"] == pytest.approx(math.acos(math.sqrt(out["m_fixed"][0])) / math.pi)


def test_bisect_alpha_finds_a_step_and_refuses_a_bad_bracket():
    assert th.bisect_alpha(lambda a: a > 0.7345, 0.0, 2.0, tol=1e-6) == pytest.approx(0.7345, abs=1e-6)
    with pytest.raises(ValueError, match=r"must be False at lo = 0\.8 and True at hi = 2\.0; got True"):
        th.bisect_alpha(lambda a: a > 0.7345, 0.8, 2.0)


def test_phase_retrieval_weak_recovery_at_one_half():
    # m = 0 loses stability at alpha = 1/2 exactly; the one-step test is exact up to O(m0) = 1e-7
    assert th.bisect_alpha(lambda a: th.weak_recovery("abs", "gaussian", a), 0.3, 0.8, 1e-6) == pytest.approx(
        0.5, abs=2e-6
    )


def test_phase_retrieval_perfect_recovery_thresholds():
    # IT at alpha = 1 exactly (docs/amp.md §4.2): near 1 the approach to m = 1 is geometric with
    # rate 1/alpha, so the bracket is kept to +-0.02 and the bisection to 2e-3
    it = th.bisect_alpha(lambda a: th.bayes_recovers("abs", "gaussian", a), 0.98, 1.02, 2e-3)
    assert it == pytest.approx(1.0, abs=2e-3)
    amp = th.bisect_alpha(lambda a: th.amp_recovers("abs", "gaussian", a), 1.05, 1.25, 1e-4)
    assert amp == pytest.approx(1.13, abs=5e-3)  # the literature's two digits
    # the same threshold without iterating: the maximum of the fixed-point curve (1e-4: the bisection)
    assert amp == pytest.approx(th.spinodal_from_curve("abs", "gaussian", bracket=(0.3, 3.0, 30.0)), abs=1e-4)


def test_rademacher_perceptron_thresholds():
    it = th.bisect_alpha(lambda a: th.bayes_recovers("sign", "rademacher", a), 1.1, 1.4, 1e-4)
    assert it == pytest.approx(1.245, abs=5e-3)
    alg = th.bisect_alpha(lambda a: th.amp_recovers("sign", "rademacher", a), 1.3, 1.7, 1e-4)
    assert alg == pytest.approx(1.493, abs=1e-3)
    assert alg == pytest.approx(th.spinodal_from_curve("sign", "rademacher"), abs=1e-4)
    # between the two, the kernel reports AMP stuck and Bayes perfect
    out = run(teacher="sign", prior="rademacher", alpha=1.4)
    assert out["mse_amp"] > 0.1 and out["mse_bayes"] == 0.0 and out["test_error_bayes"] == 0.0


def test_free_entropy_of_the_perceptron_against_gauss_hermite():
    # f_RS at AMP's fixed point for alpha = 1.3, its parts recomputed by dense Gauss-Hermite
    # (smooth integrands at this m: converged to ~1e-12 with 200 nodes)
    from scipy.special import log_ndtr, ndtr, roots_hermitenorm

    alpha = 1.3
    found = se.fixed_points(SIGN, priors.RADEMACHER, alpha, 0.0, 1e-12, 10000, TOL)
    V, mhat = found.mse_amp, found.mhat[0]
    m = 1 - V
    t, w = roots_hermitenorm(200)
    w = w / w.sum()
    h = mhat + math.sqrt(mhat) * t
    psi_w = w @ np.log(np.cosh(h)) - mhat / 2
    a = math.sqrt(m / V)
    psi_out = 2 * w @ (ndtr(a * t) * log_ndtr(a * t))
    assert found.free_entropy[0] == pytest.approx(psi_w - m * mhat / 2 + alpha * psi_out, abs=1e-10)
    assert found.mhat[0] == pytest.approx(alpha * channels.fisher(SIGN, m, V, 0.0, 1.0, TOL), rel=1e-8)


def test_parameters_are_checked_with_their_names():
    with pytest.raises(ParameterError, match=r'^noise: `teacher = "abs"` is noiseless here'):
        KERNEL.make_params(teacher="abs", noise=0.1)
    with pytest.raises(ParameterError, match=r"^m0: must be in \[0, 1\)"):
        KERNEL.make_params(m0=1.0)
    with pytest.raises(
        ParameterError, match=r"^prior: expected one of 'gaussian', 'rademacher', got 'ising'"
    ):
        KERNEL.make_params(prior="ising")


def test_non_convergence_is_a_failed_result_with_the_path():
    result = KERNEL.run(KERNEL.make_params(**AMPKernel.failing_example))
    assert not result.ok
    assert "did not reach a fixed point in 20 steps" in result.message and "max_iterations" in result.message
    assert np.all(np.isfinite(result.outputs["m"]))
