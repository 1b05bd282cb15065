"""Priors of the teacher's weights: the scalar denoiser and its SE functions (docs/amp.md §3).

``gaussian`` is ``N(0, 1)``, ``rademacher`` is ±1 with probability 1/2; both have
``rho = E w^2 = 1``. In terms of the scalar channel ``Y = sqrt(mhat) w0 + xi``:

- :func:`mmse` ``rho - G(mhat)``, the MSE of the posterior mean (computed directly, not as
  ``1 - G``: the informed start and perfect recovery need it to full relative precision);
- :func:`psi_w` ``Psi_w(mhat)``;
- :func:`denoise_input` ``f_a(A, B)`` and ``f_v(A, B)`` for GAMP.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels.singlelayer.amp import integrands as q

GAUSSIAN, RADEMACHER = 0, 1
PRIOR_CODES: dict[str, int] = {"gaussian": GAUSSIAN, "rademacher": RADEMACHER}
RHO = 1.0  # E w^2 of both priors


@njit(cache=True)
def mmse(prior, mhat, tol):
    """``rho - G(mhat)``: the MSE of ``E[w0 | sqrt(mhat) w0 + xi]``."""
    if prior == GAUSSIAN:
        return 1.0 / (1.0 + mhat)
    if mhat <= 0.0:
        return 1.0
    # 1 - tanh is a step of width 1/sqrt(mhat) at xi = -sqrt(mhat); its mean is ~ e^{-mhat/2}:
    # ask for that much relative accuracy
    size = min(1.0, math.exp(-0.5 * mhat) / math.sqrt(1.0 + mhat))
    root = math.sqrt(mhat)
    breaks = q.feature_breaks(-root, min(1.0, 1.0 / root), -q.GAUSS_CUT, q.GAUSS_CUT)
    args = np.empty(1)
    args[0] = mhat
    return q.adaptive_leaf(q.RADEMACHER_MSE, args, breaks, tol * size)


@njit(cache=True)
def psi_w(prior, mhat, tol):
    """``Psi_w(mhat) = E ln E_w exp(mhat w w0 + sqrt(mhat) w xi - mhat w^2 / 2)``."""
    if prior == GAUSSIAN:
        return -0.5 * math.log1p(mhat) + 0.5 * mhat
    if mhat <= 0.0:
        return 0.0
    # E ln cosh h - mhat/2, h ~ N(mhat, mhat): ln cosh h = |h| - ln 2 + log1p(e^{-2|h|})
    root = math.sqrt(mhat)
    abs_mean_minus_half = 0.5 * mhat + math.sqrt(2.0 / math.pi) * root * math.exp(-0.5 * mhat)
    abs_mean_minus_half -= mhat * math.erfc(root / math.sqrt(2.0))
    breaks = q.feature_breaks(-root, min(1.0, 1.0 / root), -q.GAUSS_CUT, q.GAUSS_CUT)
    args = np.empty(1)
    args[0] = mhat
    return abs_mean_minus_half - math.log(2.0) + q.adaptive_leaf(q.RADEMACHER_PSI, args, breaks, tol)


@njit(cache=True)
def conjugate(prior, mse, tol):
    """The ``mhat`` with ``mmse(mhat) = mse`` (the infimum over ``mhat`` of ``f_RS(m, mhat)``)."""
    if mse >= RHO:
        return 0.0
    if prior == GAUSSIAN:
        return 1.0 / mse - 1.0
    lo, hi = -40.0, 10.0  # log mhat; mmse(e^10) underflows
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mmse(prior, math.exp(mid), tol) > mse:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-14:
            break
    return math.exp(0.5 * (lo + hi))


@njit(cache=True)
def denoise_input(prior, A, B, a, v):
    """GAMP's input denoiser: posterior mean ``a`` and variance ``v`` under ``P_w(w) e^{-A w^2/2 + B w}``."""
    for i in range(B.shape[0]):
        if prior == GAUSSIAN:
            a[i] = B[i] / (1.0 + A)
            v[i] = 1.0 / (1.0 + A)
        else:
            t = math.tanh(B[i])
            a[i] = t
            v[i] = 1.0 - t * t
