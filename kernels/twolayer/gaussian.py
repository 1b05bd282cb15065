"""Gaussian integrals of the two-layer overlap ODEs, for erf, ReLU and linear units.

Every quantity the overlap ODEs need (docs/twolayer.md §6) is an
expectation over a centred Gaussian vector ``h`` whose covariance entries ``C_ab`` are the
overlaps (``Q``, ``M``, ``P``)::

    I2(a, b)       = E[g(h_a) g(h_b)]
    J2(a, b)       = E[g'(h_a) g'(h_b)]
    I3(a, b, c)    = E[g'(h_a) h_b g(h_c)]
    I4(a, b, c, e) = E[g'(h_a) g'(h_b) g(h_c) g(h_e)]

Activation codes (shared with :mod:`kernels.twolayer.sgd_online.simulation`): ``ERF`` is
``g(x) = erf(x / sqrt 2)``, ``RELU`` is ``max(x, 0)`` (``g' = 1[x > 0]``), ``LIN`` is
``g(x) = x``.

Closed forms
------------
erf (Saad & Solla 1995; Goldt et al. 2019; docs/twolayer.md §6), with ``1 + C_aa`` written
``u_a``::

    I2 = (2/pi) asin(C_ab / sqrt(u_a u_b))
    J2 = (2/pi) / sqrt(u_a u_b - C_ab^2)
    I3 = (2/pi) (C_bc u_a - C_ab C_ac) / (u_a sqrt(u_a u_c - C_ac^2))
    I4 = (4/pi^2) asin(L0 / sqrt(L1 L2)) / sqrt(L4)        (Lambda's of §2)

linear: ``I2 = C_ab``, ``J2 = 1``, ``I3 = C_bc``, ``I4 = C_ce``.

ReLU, derived here from the arc-cosine kernels of Cho & Saul (NIPS 2009). With
``rho = C_ab / sqrt(C_aa C_bb)`` and ``theta = arccos(rho)``:

* ``J2 = P(h_a > 0, h_b > 0) = (pi - theta) / (2 pi)`` (Sheppard's orthant formula);
* ``I2 = sqrt(C_aa C_bb) (sin theta + (pi - theta) cos theta) / (2 pi)``, i.e.
  ``(sqrt(C_aa C_bb - C_ab^2) + C_ab (pi - theta)) / (2 pi)`` (the degree-1 arc-cosine kernel);
* ``I3``: Stein's lemma on ``h_b`` gives
  ``C_ab E[delta(h_a) relu(h_c)] + C_bc E[1(h_a > 0) 1(h_c > 0)]``; conditioning on ``h_a = 0``
  leaves ``relu`` of a centred normal of variance ``C_cc - C_ac^2 / C_aa``, hence
  ``I3 = C_ab sqrt(C_aa C_cc - C_ac^2) / (2 pi C_aa) + C_bc (pi - arccos rho_ac) / (2 pi)``.

``I4`` for ReLU has no closed form (docs/twolayer.md §6.3). :func:`i4_quadrature` integrates the
last unit exactly (``E[g(mu + s z)]`` is closed-form for all three activations) and the first
three dimensions with a fixed, scrambled Sobol point set (randomised quasi-Monte Carlo). It is
generic in the activation, so its accuracy is tested against the erf closed form as well as
against plain Monte Carlo (``tests/kernels/twolayer/test_gaussian.py``).

All scalar functions are ``numba.njit(cache=True)`` and take covariance entries, so the ODE hot
loop (:mod:`kernels.twolayer.ode`) can inline them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

ERF, RELU, LIN = 0, 1, 2
ACTIVATION_CODES = {"erf": ERF, "relu": RELU, "linear": LIN}

_TWO_OVER_PI = 2.0 / math.pi
_FOUR_OVER_PI2 = 4.0 / math.pi**2
_INV_2PI = 1.0 / (2.0 * math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
# Variances below this are treated as exactly zero (a unit with no weights, or a repeated
# field in a degenerate covariance); ReLU formulas divide by them.
_TINY = 1e-300


@njit(cache=True)
def _clip(x):
    # Round-off can push a correlation a hair outside [-1, 1] (e.g. I2(a, a)).
    return min(1.0, max(-1.0, x))


# fdlibm's rational approximation of (asin(t) - t) / t^3 in z = t^2, |t| <= 0.5.
_PS = (
    1.66666666666666657415e-01,
    -3.25565818622400915405e-01,
    2.01212532134862925881e-01,
    -4.00555345006794114027e-02,
    7.91534994289814532176e-04,
    3.47933107596021167570e-05,
)
_QS = (
    -2.40339491173441421878e00,
    2.02094576023350569471e00,
    -6.88283971605453293030e-01,
    7.70381505559019352791e-02,
)
_HALF_PI = 0.5 * math.pi
# fastmath without the no-NaN / no-inf assumptions: an overlap matrix that lost positive
# definiteness must produce NaN (and a NumericalFailure), not a silently clipped number.
# Reassociation is what lets reductions over fast_asin vectorise.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


@njit(cache=True, fastmath=FASTMATH, inline="always", error_model="numpy")
def fast_asin(x):
    """``asin(x)`` for ``|x| <= 1`` without branches, so loops over it vectorise.

    libm's ``asin`` is an opaque call that blocks SIMD (numba here has no SVML). Same
    reduction as fdlibm: ``|x| <= 1/2`` uses ``t = |x|``, ``z = t^2``; above,
    ``asin(|x|) = pi/2 - 2 asin(t)`` with ``t = sqrt(z)``, ``z = (1 - |x|)/2``; both share one
    rational approximation, chosen by selects. Tested to ~1e-15 absolute against numpy.
    """
    a = min(abs(x), 1.0)
    small = a <= 0.5
    z = a * a if small else 0.5 * (1.0 - a)
    t = a if small else math.sqrt(z)
    p = z * (_PS[0] + z * (_PS[1] + z * (_PS[2] + z * (_PS[3] + z * (_PS[4] + z * _PS[5])))))
    q = 1.0 + z * (_QS[0] + z * (_QS[1] + z * (_QS[2] + z * _QS[3])))
    r = t + t * p / q
    r = r if small else _HALF_PI - 2.0 * r
    return math.copysign(r, x)


@njit(cache=True)
def act(code, x):
    """The activation ``g(x)``."""
    if code == ERF:
        return math.erf(x * _SQRT_HALF)
    if code == RELU:
        return x if x > 0.0 else 0.0
    return x


@njit(cache=True)
def dact(code, x):
    """The derivative ``g'(x)`` (ReLU: the step function, ``g'(0) = 0``)."""
    if code == ERF:
        return _SQRT_2_OVER_PI * math.exp(-0.5 * x * x)
    if code == RELU:
        return 1.0 if x > 0.0 else 0.0
    return 1.0


@njit(cache=True)
def i2(code, c11, c12, c22):
    """``E[g(h_1) g(h_2)]`` for covariance entries ``c11, c12, c22``."""
    if code == ERF:
        return _TWO_OVER_PI * math.asin(_clip(c12 / math.sqrt((1.0 + c11) * (1.0 + c22))))
    if code == RELU:
        s = math.sqrt(c11 * c22)
        if s < _TINY:
            return 0.0
        perp = math.sqrt(max(c11 * c22 - c12 * c12, 0.0))
        return (perp + c12 * (math.pi - math.acos(_clip(c12 / s)))) * _INV_2PI
    return c12


@njit(cache=True)
def j2(code, c11, c12, c22):
    """``E[g'(h_1) g'(h_2)]``."""
    if code == ERF:
        return _TWO_OVER_PI / math.sqrt((1.0 + c11) * (1.0 + c22) - c12 * c12)
    if code == RELU:
        s = math.sqrt(c11 * c22)
        if s < _TINY:
            return 0.0  # a unit with zero variance sits at 0, where g'(0) = 0 (as in dact and i3)
        return (math.pi - math.acos(_clip(c12 / s))) * _INV_2PI
    return 1.0


@njit(cache=True)
def i3(code, c11, c12, c13, c23, c33):
    """``E[g'(h_1) h_2 g(h_3)]`` (``c22`` does not enter)."""
    if code == ERF:
        u1 = 1.0 + c11
        return _TWO_OVER_PI * (c23 * u1 - c12 * c13) / (u1 * math.sqrt(u1 * (1.0 + c33) - c13 * c13))
    if code == RELU:
        if c11 < _TINY:
            # h_1 = 0 almost surely and g'(0) = 0.
            return 0.0
        s = math.sqrt(c11 * c33)
        perp = math.sqrt(max(c11 * c33 - c13 * c13, 0.0))
        angle = 0.5 if s < _TINY else (math.pi - math.acos(_clip(c13 / s))) * _INV_2PI
        return c12 * perp * _INV_2PI / c11 + c23 * angle
    return c23


@njit(cache=True)
def i4_erf(c11, c12, c13, c14, c22, c23, c24, c33, c34, c44):
    """Closed-form ``E[g'(h_1) g'(h_2) g(h_3) g(h_4)]`` for ``g(x) = erf(x / sqrt 2)`` (§2)."""
    u1 = 1.0 + c11
    u2 = 1.0 + c22
    l4 = u1 * u2 - c12 * c12
    l0 = l4 * c34 - c23 * c24 * u1 - c13 * c14 * u2 + c12 * c13 * c24 + c12 * c14 * c23
    l1 = l4 * (1.0 + c33) - c23 * c23 * u1 - c13 * c13 * u2 + 2.0 * c12 * c13 * c23
    l2 = l4 * (1.0 + c44) - c24 * c24 * u1 - c14 * c14 * u2 + 2.0 * c12 * c14 * c24
    return _FOUR_OVER_PI2 / math.sqrt(l4) * math.asin(_clip(l0 / math.sqrt(l1 * l2)))


@njit(cache=True)
def mean_act_shifted(code, mu, s):
    """``E[g(mu + s z)]`` for ``z ~ N(0, 1)``, in closed form."""
    if code == ERF:
        return math.erf(mu / math.sqrt(2.0 * (1.0 + s * s)))
    if code == RELU:
        if s < 1e-150:
            return mu if mu > 0.0 else 0.0
        r = mu / s
        return mu * 0.5 * math.erfc(-r * _SQRT_HALF) + s * _INV_SQRT_2PI * math.exp(-0.5 * r * r)
    return mu


@njit(cache=True)
def cholesky4(c, out):
    """Lower Cholesky factor of a 4x4 covariance that may be singular.

    A pivot below ``1e-14`` times the diagonal scale is set to zero together with its column:
    repeated fields (``I4(i, i, j, j)``) make the covariance exactly singular, and a clamped
    factor still reproduces it.
    """
    scale = 0.0
    for i in range(4):
        scale = max(scale, c[i, i])
    eps = 1e-14 * scale
    for j in range(4):
        s = c[j, j]
        for k in range(j):
            s -= out[j, k] * out[j, k]
        if s <= eps:
            out[j, j] = 0.0
            for i in range(j + 1, 4):
                out[i, j] = 0.0
            continue
        piv = math.sqrt(s)
        out[j, j] = piv
        for i in range(j + 1, 4):
            s2 = c[i, j]
            for k in range(j):
                s2 -= out[i, k] * out[j, k]
            out[i, j] = s2 / piv
        for i in range(j):
            out[i, j] = 0.0


@njit(cache=True)
def i4_quadrature(code, c, z, chol):
    """``E[g'(h_1) g'(h_2) g(h_3) g(h_4)]`` by conditional quasi-Monte Carlo.

    Parameters
    ----------
    code
        Activation code.
    c
        ``(4, 4)`` covariance of ``(h_1, h_2, h_3, h_4)``.
    z
        ``(n, 3)`` standard normal points (e.g. from :func:`sobol_normals`).
    chol
        ``(4, 4)`` scratch for the Cholesky factor.

    Notes
    -----
    With ``h = L z`` (``L`` lower triangular), ``h_4 = mu(z_0, z_1, z_2) + L_33 z_3``; the
    ``z_3`` average of ``g(h_4)`` is closed-form (:func:`mean_act_shifted`), which removes one
    dimension and smooths the integrand. The remaining 3-d average uses the points ``z``.
    """
    cholesky4(c, chol)
    n = z.shape[0]
    acc = 0.0
    for p in range(n):
        z0 = z[p, 0]
        z1 = z[p, 1]
        z2 = z[p, 2]
        h1 = chol[0, 0] * z0
        f = dact(code, h1)
        if f == 0.0:
            continue
        h2 = chol[1, 0] * z0 + chol[1, 1] * z1
        f *= dact(code, h2)
        if f == 0.0:
            continue
        h3 = chol[2, 0] * z0 + chol[2, 1] * z1 + chol[2, 2] * z2
        f *= act(code, h3)
        if f == 0.0:
            continue
        mu = chol[3, 0] * z0 + chol[3, 1] * z1 + chol[3, 2] * z2
        acc += f * mean_act_shifted(code, mu, chol[3, 3])
    return acc / n


def sobol_normals(n: int, dim: int = 3, seed: int = 0) -> np.ndarray:
    """``n`` scrambled Sobol points mapped to standard normals, shape ``(n, dim)``.

    A fixed ``seed`` makes the quadrature deterministic; ``n`` should be a power of two
    (Sobol balance properties).
    """
    from scipy.stats import norm, qmc

    u = qmc.Sobol(dim, scramble=True, seed=seed).random(n)
    # Scrambled points never hit 0 or 1 exactly, but guard the tails of ppf anyway.
    return np.ascontiguousarray(norm.ppf(np.clip(u, 1e-16, 1.0 - 1e-16)))


@njit(cache=True)
def risk_overlaps(code, Q, M, P, v, vs):
    """Population risk ``E[(f* - f)^2] / 2`` of a two-layer net, noise floor excluded.

    ``f(x) = sum_i v_i g(w_i.x/sqrt d)`` and ``f*`` likewise with ``(w*_n, v*_n)``; ``Q``,
    ``M``, ``P`` are the student-student, student-teacher and teacher-teacher overlaps
    (docs/twolayer.md §4, "generalisation error"). Closed form for every activation here.
    """
    K = Q.shape[0]
    Mt = P.shape[0]
    out = 0.0
    for i in range(K):
        for k in range(K):
            out += 0.5 * v[i] * v[k] * i2(code, Q[i, i], Q[i, k], Q[k, k])
        for n in range(Mt):
            out -= v[i] * vs[n] * i2(code, Q[i, i], M[i, n], P[n, n])
    for n in range(Mt):
        for m in range(Mt):
            out += 0.5 * vs[n] * vs[m] * i2(code, P[n, n], P[n, m], P[m, m])
    return out
