"""Phase retrieval's state-evolution integrals as one-dimensional integrals over ``z`` (docs/amp.md §4.2).

Given the teacher's preactivation ``z`` (take ``z > 0``: the channel is even), the estimate
``omega`` is Gaussian around ``m z / rho`` and everything the channel needs is a function of
``b = z sqrt(m / (rho V))`` only:

- ``S(b) = E_t sech^2(b^2 + b t)`` and ``T(b) = 1 - S(b)`` (the Fisher information ``H``),
- ``L(b) = E_t log1p(exp(-2 |b^2 + b t|))`` (the free entropy ``Psi_out``).

They are universal, so they are tabulated once, at import, as piecewise Chebyshev series
(:data:`PANELS` panels of :data:`NODES` nodes on ``[0, B_MAX]``; ``T`` as ``b^2 R(b)`` on
``[0, 1]`` to keep its relative accuracy as ``b -> 0``) from the adaptive integrals of
:mod:`~kernels.singlelayer.amp.integrands`; the tests check them against those integrals
at other points (agreement ~1e-15). What is left is one adaptive integral over ``z`` per
quantity, with breakpoints at the scale ``sqrt(rho V / m)`` where the integrands change
(docs/amp.md §5, pitfall 1). This took ``H`` from ~1 ms (nested adaptive integrals) to
~10 us.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels.singlelayer.amp import integrands as q
from kernels.singlelayer.amp.quadrature import MAX_PANELS, feature_breaks, nodes, panel

B_MAX = 10.0  # S(b), L(b) < 1e-22 beyond: taken as 0
PANELS = 40
NODES = 18
R_MAX = 1.0  # T(b) = b^2 R(b) is tabulated on [0, R_MAX]; beyond, T = 1 - S
TABLE_TOL = 1e-16  # the adaptive integrals then stop at their round-off floor

Z_SECH2, Z_TANH2, Z_LOG1P = 0, 1, 2


def _chebyshev_table(function, lo: float, hi: float, panels: int) -> np.ndarray:
    """``(panels, NODES)`` Chebyshev coefficients of ``function`` on equal panels of [lo, hi]."""
    k = np.arange(NODES)
    x = np.cos(np.pi * (k + 0.5) / NODES)  # first-kind nodes on [-1, 1]
    width = (hi - lo) / panels
    table = np.empty((panels, NODES))
    for p in range(panels):
        centre = lo + (p + 0.5) * width
        values = np.array([function(centre + 0.5 * width * xi) for xi in x])
        for j in range(NODES):
            table[p, j] = (2.0 / NODES) * np.sum(values * np.cos(j * np.pi * (k + 0.5) / NODES))
        table[p, 0] *= 0.5
    return table


def _direct_sech2(b: float) -> float:
    lo = max(-q.GAUSS_CUT, (-q.SECH_CUT - b * b) / b)
    hi = min(q.GAUSS_CUT, (q.SECH_CUT - b * b) / b)
    if hi <= lo:
        return 0.0
    return q.adaptive_leaf(
        q.ABS_SECH2, np.array([b]), feature_breaks(-b, min(1.0, 1.0 / b), lo, hi), TABLE_TOL
    )


def _direct_tanh2(b: float) -> float:
    breaks = feature_breaks(-b, min(1.0, 1.0 / b), -q.GAUSS_CUT, q.GAUSS_CUT)
    return q.adaptive_leaf(q.ABS_TANH2, np.array([b]), breaks, TABLE_TOL * b * b)


def _direct_log1p(b: float) -> float:
    breaks = feature_breaks(-b, min(1.0, 1.0 / b), -q.GAUSS_CUT, q.GAUSS_CUT)
    return q.adaptive_leaf(q.ABS_LOG1P, np.array([b]), breaks, TABLE_TOL)


direct = {"S": _direct_sech2, "T": _direct_tanh2, "L": _direct_log1p}  # the reference the tables come from

_S = _chebyshev_table(_direct_sech2, 0.0, B_MAX, PANELS)
_R = _chebyshev_table(lambda b: _direct_tanh2(b) / (b * b), 0.0, R_MAX, 4)
_L = _chebyshev_table(_direct_log1p, 0.0, B_MAX, PANELS)


@njit(cache=True)
def _clenshaw(table, lo, hi, b):
    panels = table.shape[0]
    width = (hi - lo) / panels
    p = min(int((b - lo) / width), panels - 1)
    x = 2.0 * (b - lo - p * width) / width - 1.0
    c = table[p]
    b1 = 0.0
    b2 = 0.0
    for j in range(c.shape[0] - 1, 0, -1):
        b1, b2 = 2.0 * x * b1 - b2 + c[j], b1
    return x * b1 - b2 + c[0]


@njit(cache=True)
def sech2_mean(b):
    """``S(b) = E_t sech^2(b^2 + b t)``, ``b >= 0``."""
    return _clenshaw(_S, 0.0, B_MAX, b) if b < B_MAX else 0.0


@njit(cache=True)
def tanh2_mean(b):
    """``T(b) = 1 - S(b)``, to full relative accuracy as ``b -> 0``."""
    if b < R_MAX:
        return b * b * _clenshaw(_R, 0.0, R_MAX, b)
    return 1.0 - sech2_mean(b)


@njit(cache=True)
def log1p_mean(b):
    """``L(b) = E_t log1p(exp(-2 |b^2 + b t|))``, ``b >= 0``."""
    return _clenshaw(_L, 0.0, B_MAX, b) if b < B_MAX else 0.0


@njit(cache=True)
def integrand(kind, z, k, rho):
    """``phi_rho(z)`` times ``z^2 S(k z)``, ``z^2 T(k z)`` or ``L(k z)``."""
    weight = math.exp(-0.5 * z * z / rho) / math.sqrt(2.0 * math.pi * rho)
    b = k * z
    if kind == Z_SECH2:
        return weight * z * z * sech2_mean(b)
    if kind == Z_TANH2:
        return weight * z * z * tanh2_mean(b)
    return weight * log1p_mean(b)


@njit(cache=True)
def adaptive_abs(kind, k, rho, breaks, tol):
    """:func:`kernels.singlelayer.amp.integrands.adaptive_leaf` for :func:`integrand`."""
    total_length = breaks[-1] - breaks[0]
    if total_length <= 0.0:
        return 0.0
    stack_lo = np.empty(MAX_PANELS)
    stack_hi = np.empty(MAX_PANELS)
    top = 0
    for i in range(len(breaks) - 1, 0, -1):
        if breaks[i] > breaks[i - 1]:
            stack_lo[top] = breaks[i - 1]
            stack_hi[top] = breaks[i]
            top += 1
    values = np.empty(15)
    xs = np.empty(15)
    total = 0.0
    used = top
    while top > 0:
        top -= 1
        lo, hi = stack_lo[top], stack_hi[top]
        half = nodes(lo, hi, xs)
        for j in range(15):
            values[j] = integrand(kind, xs[j], k, rho)
        value, err, floor = panel(values, half)
        if err <= max(tol * (hi - lo) / total_length, floor) or used + 2 > MAX_PANELS:
            total += value
        else:
            mid = 0.5 * (lo + hi)
            stack_lo[top], stack_hi[top] = mid, hi
            stack_lo[top + 1], stack_hi[top + 1] = lo, mid
            top += 2
            used += 2
    return total


@njit(cache=True)
def fisher(m, V, rho, tol):
    """``H(m)`` of ``y = |z|``: ``H V = 1 - E[z^2 S] / V = (E[z^2 T] - m) / V``, whichever cancels less."""
    if m <= 0.0:
        return 0.0
    k = math.sqrt(m / (rho * V))
    scale = min(math.sqrt(rho), 1.0 / k)
    if m < 0.5 * rho:
        breaks = feature_breaks(0.0, scale, 0.0, q.GAUSS_CUT * math.sqrt(rho))
        e = 2.0 * adaptive_abs(Z_TANH2, k, rho, breaks, tol * m)
        return (e - m) / (V * V)
    breaks = feature_breaks(0.0, scale, 0.0, min(q.GAUSS_CUT * math.sqrt(rho), B_MAX / k))
    e = 2.0 * adaptive_abs(Z_SECH2, k, rho, breaks, tol * scale**3)
    return (1.0 - e / V) / V


@njit(cache=True)
def psi_out(m, V, rho, tol):
    """``Psi_out(m) = -ln(2 pi V) / 2 - E(|z| - |omega|)^2 / 2V + E L(b)`` (docs/amp.md §4.2)."""
    if m <= 0.0:  # y = |z| says nothing about w: minus the entropy of y
        return math.log(2.0) - 0.5 * math.log(2.0 * math.pi * rho) - 0.5
    c = math.sqrt(m / rho)
    s = math.sqrt(V / rho)
    # E(|z| - |omega|)^2 = V - (4 rho c / pi) (s - c arcsin s), from E|z omega| of a Gaussian pair;
    # s - c arcsin s = s^3 / (1 + c) - c (arcsin s - s), the last term by its series for small s
    if s < 1e-3:
        asin_minus = s**3 / 6.0 + 3.0 * s**5 / 40.0 + 15.0 * s**7 / 336.0
    else:
        asin_minus = math.asin(s) - s
    gap = V - (4.0 * rho * c / math.pi) * (s**3 / (1.0 + c) - c * asin_minus)
    k = math.sqrt(m / (rho * V))
    breaks = feature_breaks(
        0.0, min(math.sqrt(rho), 1.0 / k), 0.0, min(q.GAUSS_CUT * math.sqrt(rho), B_MAX / k)
    )
    return (
        -0.5 * math.log(2.0 * math.pi * V)
        - gap / (2.0 * V)
        + 2.0 * adaptive_abs(Z_LOG1P, k, rho, breaks, tol)
    )
