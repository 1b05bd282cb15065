"""Gaussian integrals of kernels/twolayer/gaussian.py against Monte Carlo and against each other.

Tolerances: a Monte-Carlo estimate from N samples has standard error s / sqrt(N) with s the
sample standard deviation of the integrand; a closed form must agree within 5 standard errors
(a false alarm once in ~3.5 million comparisons). The quasi-Monte Carlo I4 adds its own
deterministic error, measured against the erf closed form below.
"""

import numpy as np
import pytest

from kernels.twolayer.gaussian import (
    ERF,
    LIN,
    RELU,
    i2,
    i3,
    i4_erf,
    i4_quadrature,
    j2,
    sobol_normals,
)

N_MC = 1_000_000


def _g(code, x):
    if code == ERF:
        from scipy.special import erf

        return erf(x / np.sqrt(2.0))
    if code == RELU:
        return np.maximum(x, 0.0)
    return x


def _dg(code, x):
    if code == ERF:
        return np.sqrt(2.0 / np.pi) * np.exp(-0.5 * x * x)
    if code == RELU:
        return (x > 0).astype(float)
    return np.ones_like(x)


def _random_cov(rs, singular=False):
    """A random 4x4 covariance with variances of order 0.3-2; ``singular``: h_1 = h_2 = h_3."""
    A = rs.standard_normal((4, 6))
    C = A @ A.T / 6 * rs.uniform(0.3, 2.0)
    if singular:
        # repeated fields, as in I4(i, i, i, A) of the ODE
        T = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]])
        C = T @ C @ T.T
    return C


def _samples(C, seed):
    rs = np.random.default_rng(seed)
    evals, evecs = np.linalg.eigh(C)
    root = evecs * np.sqrt(np.clip(evals, 0, None))
    return rs.standard_normal((N_MC, 4)) @ root.T


def _i4(code, C, z):
    if code == ERF:
        return i4_erf(
            C[0, 0], C[0, 1], C[0, 2], C[0, 3], C[1, 1], C[1, 2], C[1, 3], C[2, 2], C[2, 3], C[3, 3]
        )
    if code == LIN:
        return C[2, 3]
    return i4_quadrature(code, C, z, np.zeros((4, 4)))


def _check(name, exact, values, extra=0.0):
    mean = values.mean()
    se = values.std() / np.sqrt(values.size)
    assert abs(exact - mean) <= 5 * se + extra + 1e-12, f"{name}: {exact} vs MC {mean} +- {se}"


@pytest.mark.parametrize("code", [ERF, RELU, LIN], ids=["erf", "relu", "linear"])
@pytest.mark.parametrize("case", range(3))
def test_integrals_match_monte_carlo(code, case):
    rs = np.random.default_rng(100 + case)
    C = _random_cov(rs, singular=case == 2)
    h = _samples(C, seed=case)
    g = [_g(code, h[:, a]) for a in range(4)]
    dg = [_dg(code, h[:, a]) for a in range(4)]
    _check("I2", i2(code, C[0, 0], C[0, 3], C[3, 3]), g[0] * g[3])
    _check("I2 same field", i2(code, C[1, 1], C[1, 1], C[1, 1]), g[1] * g[1])
    _check("J2", j2(code, C[0, 0], C[0, 3], C[3, 3]), dg[0] * dg[3])
    _check("I3", i3(code, C[0, 0], C[0, 1], C[0, 3], C[1, 3], C[3, 3]), dg[0] * h[:, 1] * g[3])
    _check("I3 (a, a, c)", i3(code, C[0, 0], C[0, 0], C[0, 3], C[0, 3], C[3, 3]), dg[0] * h[:, 0] * g[3])
    # QMC error at 2^14 points is below 2e-5 (erf, vs the closed form) and ~1e-3 x scale
    # (relu, vs 2^20 points), see test_quadrature_* below; 2e-3 * scale covers it.
    scale = np.sqrt(C[2, 2] * C[3, 3]) if code == RELU else 0.0
    z = sobol_normals(2**14)
    _check("I4", _i4(code, C, z), dg[0] * dg[1] * g[2] * g[3], extra=2e-3 * scale)


def test_quadrature_reproduces_erf_closed_form():
    # The QMC integrator is generic in g: with g = erf it must reproduce the closed form.
    # Measured worst absolute errors over random covariances: 4e-4 (2^10 points), 1.3e-5 (2^14).
    rs = np.random.default_rng(7)
    z10, z14 = sobol_normals(2**10), sobol_normals(2**14)
    chol = np.zeros((4, 4))
    for _ in range(20):
        C = _random_cov(rs)
        exact = _i4(ERF, C, None)
        assert abs(i4_quadrature(ERF, C, z10, chol) - exact) < 1e-3
        assert abs(i4_quadrature(ERF, C, z14, chol) - exact) < 5e-5


def test_quadrature_relu_converges():
    # Successive refinements shrink: 2^10 -> 2^14 points against a 2^18-point reference.
    rs = np.random.default_rng(8)
    ref_z = sobol_normals(2**18, seed=3)
    chol = np.zeros((4, 4))
    err10, err14 = [], []
    for _ in range(5):
        C = _random_cov(rs)
        ref = i4_quadrature(RELU, C, ref_z, chol)
        scale = np.sqrt(C[2, 2] * C[3, 3])
        err10.append(abs(i4_quadrature(RELU, C, sobol_normals(2**10), chol) - ref) / scale)
        err14.append(abs(i4_quadrature(RELU, C, sobol_normals(2**14), chol) - ref) / scale)
    assert max(err10) < 5e-3
    assert np.median(err14) < np.median(err10)


def test_relu_closed_forms_limits():
    # rho = 1 (same field): I2 = C/2, J2 = 1/2; rho = 0: I2 = sqrt(C11 C22)/(2 pi), J2 = 1/4.
    assert i2(RELU, 2.0, 2.0, 2.0) == pytest.approx(1.0)
    assert j2(RELU, 2.0, 2.0, 2.0) == pytest.approx(0.5)
    assert i2(RELU, 2.0, 0.0, 0.5) == pytest.approx(1.0 / (2 * np.pi))
    assert j2(RELU, 2.0, 0.0, 0.5) == pytest.approx(0.25)
    # a unit with no weights contributes nothing
    assert i3(RELU, 0.0, 0.0, 0.0, 0.3, 1.0) == 0.0


def test_fast_asin_matches_numpy():
    # the vectorisable arcsine of the erf I4 hot loop: within 2 ulp of libm on [-1, 1]
    from numba import njit

    from kernels.twolayer.gaussian import fast_asin

    @njit
    def apply(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = fast_asin(x[i])
        return out

    tails = 1 - np.logspace(-16, 0, 500)
    x = np.concatenate([np.linspace(-1, 1, 200_001), tails, -tails, [0.5, -0.5, 1.0, -1.0]])
    np.testing.assert_allclose(apply(x), np.arcsin(x), rtol=0, atol=5e-16)
