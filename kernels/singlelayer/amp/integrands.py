"""The Gaussian integrals of state evolution, and the adaptive loops that integrate them.

Each integrand is selected by an integer ``kind`` (numba cannot cache a function that takes
a jitted function as an argument); its parameters come in the float array ``args``. The
formulas are those of docs/amp.md §4 (channels) and §3 (the ±1 prior), written so that
every integrand is smooth on each panel the caller's breakpoints make:

- ``SIGN_H``: the sign channel's ``H`` after the Gaussian change of variable (docs/amp.md §4.1);
- ``SIGN_PSI``: ``Phi(u) ln Phi(u)`` under ``N(0, a^2)`` (``Psi_out`` of the sign channel);
- ``ABS_SECH2``, ``ABS_TANH2``: ``S(b) = E_t sech^2(b^2 + b t)`` and ``T(b) = 1 - S(b)``, the
  inner integrals of phase retrieval's ``H`` (docs/amp.md §4.2);
- ``ABS_LOG1P``: ``L(b) = E_t log1p(exp(-2 |b^2 + b t|))``, the non-closed part of phase
  retrieval's ``Psi_out`` (docs/amp.md §4.2);
- ``ABS_LABEL``: the squared posterior-mean label of phase retrieval (its test error);
- ``RADEMACHER_MSE``, ``RADEMACHER_PSI``: the ±1 prior's ``1 - G`` and the non-closed part of
  ``Psi_w`` (docs/amp.md §3).

``S``, ``T`` and ``L`` are functions of one variable: :mod:`kernels.singlelayer.amp.abs_channel`
tabulates them once from these integrands.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels.singlelayer.amp.quadrature import MAX_PANELS, feature_breaks, nodes, panel

__all__ = ["adaptive_leaf", "feature_breaks", "leaf"]

SIGN_H, SIGN_PSI, ABS_SECH2, ABS_TANH2, ABS_LOG1P, ABS_LABEL, RADEMACHER_MSE, RADEMACHER_PSI = range(8)

GAUSS_CUT = 12.0  # |t| beyond this carries Gaussian weight < 1e-31
SECH_CUT = 25.0  # sech^2(x) < 1e-21 for |x| beyond this
LOG_CUT = 37.0  # Phi(u) ln Phi(u) < 1e-295 for |u| beyond this
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SQRT_HALF = math.sqrt(0.5)


@njit(cache=True)
def normal_pdf(x):
    return INV_SQRT_2PI * math.exp(-0.5 * x * x)


@njit(cache=True)
def normal_cdf(x):
    """Phi(x), accurate in both tails (erfc of the far side)."""
    return 0.5 * math.erfc(-x * SQRT_HALF)


@njit(cache=True)
def sech2(x):
    e = math.exp(-2.0 * abs(x))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


# -- leaf integrands: closed forms -------------------------------------------------------------


@njit(cache=True)
def leaf(kind, x, args):
    if kind == SIGN_H:
        # phi(t) exp(-mu t^2/2) / (Phi(sqrt(mu) t) Phi(-sqrt(mu) t)), even in t
        mu = args[0]
        s = math.sqrt(mu) * abs(x)
        tail = 0.5 * math.erfc(s * SQRT_HALF)
        return normal_pdf(x) * math.exp(-0.5 * mu * x * x) / ((1.0 - tail) * tail)
    if kind == SIGN_PSI:
        # Phi(u) ln Phi(u) under u ~ N(0, a^2)
        a = args[0]
        p = normal_cdf(x)
        return p * math.log(p) * normal_pdf(x / a) / a
    if kind == ABS_SECH2:
        b = args[0]
        return normal_pdf(x) * sech2(b * (b + x))
    if kind == ABS_TANH2:
        b = args[0]
        th = math.tanh(b * (b + x))
        return normal_pdf(x) * th * th
    if kind == ABS_LOG1P:
        b = args[0]
        return normal_pdf(x) * math.log1p(math.exp(-2.0 * abs(b * (b + x))))
    if kind == ABS_LABEL:
        # (E_z |omega + sqrt(V) z|)^2 at omega = sqrt(m) v
        m, V = args[0], args[1]
        om = math.sqrt(m) * x
        g = om * math.erf(om / math.sqrt(2.0 * V)) + math.sqrt(2.0 * V / math.pi) * math.exp(
            -om * om / (2.0 * V)
        )
        return normal_pdf(x) * g * g
    if kind == RADEMACHER_MSE:
        # 1 - tanh(h) = 2 / (1 + exp(2 h)), h = mhat + sqrt(mhat) xi
        mh = args[0]
        h = mh + math.sqrt(mh) * x
        if h > 0:
            e = math.exp(-2.0 * h)
            return normal_pdf(x) * 2.0 * e / (1.0 + e)
        return normal_pdf(x) * 2.0 / (1.0 + math.exp(2.0 * h))
    # RADEMACHER_PSI: log1p(exp(-2|h|)), the part of ln cosh h beyond |h| - ln 2
    mh = args[0]
    h = mh + math.sqrt(mh) * x
    return normal_pdf(x) * math.log1p(math.exp(-2.0 * abs(h)))


@njit(cache=True)
def adaptive_leaf(kind, args, breaks, tol):
    """Integral of ``leaf(kind, ., args)`` over [breaks[0], breaks[-1]], estimated error <= tol."""
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
            values[j] = leaf(kind, xs[j], args)
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
