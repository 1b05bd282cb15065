"""Per-step evaluation of the effective process: losses, sample means, selection chain.

Companion of :mod:`kernels.singlelayer.dmft.numerics` (docs/dmft.md §2-§3). Every function here is a
module-level numba function on arrays laid out ``[trajectory]`` or
``[time, trajectory]``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from kernels.singlelayer.dmft.numerics import CHUNK
from kernels.singlelayer.model import pointwise, sample_error

# indices of the sums returned by `evaluate`
S_A, S_UF, S_RF, S_LOSS, S_ERR, S_BLOSS = range(6)
N_SUMS = 6


@njit(
    cache=True, fastmath=True, error_model="numpy"
)  # a diverging process gives inf/nan, caught by the driver
def evaluate(k, m, U, Yl, RHO, S, shat, code, model, scale, err_kind, F, A, n_resp, stiff, dinv):
    """Loss derivatives at step ``k`` and the sample means the kernels need.

    Fills ``F[k] = s_hat l'`` (all trajectories) and ``A[k] = s_hat l''`` (the
    first ``n_resp``); with ``stiff = eta sig2 > 0`` also the semi-implicit factor
    ``dinv = 1 / (1 + stiff max(s_hat l'', 0))`` of every trajectory. Returns the sums over trajectories of
    ``s_hat l''``, ``s_hat u l'``, ``s_hat r l'``, ``l``, ``error``, ``s_hat l``.
    Loss and per-sample error are the shared definitions of
    :func:`kernels.singlelayer.model.pointwise` and :func:`kernels.singlelayer.model.sample_error`.
    """
    n = U.shape[0]
    nch = (n + CHUNK - 1) // CHUNK
    part = np.zeros((nch, N_SUMS))
    for c in range(nch):
        i0 = c * CHUNK
        i1 = min(i0 + CHUNK, n)
        p0 = p1 = p2 = p3 = p4 = p5 = 0.0
        for i in range(i0, i1):
            r = m * U[i] + RHO[k, i]
            ell, d1, d2 = pointwise(code, model, Yl[i], r, scale)
            sh = shat * S[i]
            F[k, i] = sh * d1
            if i < n_resp:
                A[k, i] = sh * d2
            if stiff > 0.0:
                dinv[i] = 1.0 / (1.0 + stiff * max(sh * d2, 0.0))
            p0 += sh * d2
            p1 += sh * U[i] * d1
            p2 += sh * r * d1
            p3 += ell
            p5 += sh * ell
            p4 += sample_error(err_kind, model, Yl[i], r)
        part[c, 0] = p0
        part[c, 1] = p1
        part[c, 2] = p2
        part[c, 3] = p3
        part[c, 4] = p4
        part[c, 5] = p5
    out = np.zeros(N_SUMS)
    for c in range(nch):
        for q in range(N_SUMS):
            out[q] += part[c, q]
    return out


@njit(cache=True)
def update_selection(S, uniform, p01, p10):
    """One step of the per-sample two-state chain of docs/singlelayer.md §4."""
    for i in range(S.shape[0]):
        if S[i] > 0.5:
            S[i] = 0.0 if uniform[i] < p10 else 1.0
        else:
            S[i] = 1.0 if uniform[i] < p01 else 0.0
