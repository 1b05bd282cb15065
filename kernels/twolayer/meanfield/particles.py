"""Particle discretisation of the mean-field PDE of a wide two-layer network (erf, ReLU).

The population gradient flow of ``f(x) = (1/p) sum_j a_j sigma(w_j . x / sqrt(d))``,
``sigma(z) = erf(z / sqrt(2))``, learning ``f*(x) = (1/k) sum_r a*_r sigma(w*_r . x / sqrt(d))``
under the square loss is the Wasserstein gradient flow ``d_t rho = div(rho grad Psi(theta; rho))``
of Mei, Montanari & Nguyen (PNAS 2018, eq. 7) and Chizat & Bach (NeurIPS 2018), discretised with
the ``p`` particles themselves (docs/meanfield.md §2-§3). Everything here is written in the
*flow time* ``t = nu gamma / (p d)`` of Arnaboldi et al. (COLT 2023, arXiv:2302.05882), in which the
overlaps obey exactly the I3 equations of §3.3 (no ``d -> infinity`` needed for population
gradient flow). The kernel converts to its own time unit with one scalar factor.

Velocity of particle ``j`` (docs/meanfield.md §2, with ``grad_w U`` in overlap units, ``Q = w.w'/d``)::

    dw_j/dt = (2/pi) a_j [ (1/k) sum_r a*_r (w*_r - M_jr w_j / (1+q_j)) / sqrt(L_jr)
                          - (1/p) sum_l a_l  (w_l  - Q_jl w_j / (1+q_j)) / sqrt(L_jl) ]
    L_jl    = (1+q_j)(1+q_l) - Q_jl^2,    L_jr = (1+q_j)(1+P_rr) - M_jr^2

Projecting on ``w*_r / d`` gives ``dM_jr/dt = a_j [(1/k) sum_s a*_s I3(j,r,s) - (1/p) sum_l a_l I3(j,r,l)]``.

Cost
----
The pair matrix ``R_jl = 1/sqrt(L_jl)`` is symmetric, so the step is done in square tiles
``I <= J`` of the particle index: one Gram tile ``W_I W_J^T`` (BLAS-3), an elementwise pass
(numba) turning it into ``R_IJ`` in place while accumulating the row and column sums the
diagonal terms need, and the products ``R_IJ (aW)_J`` and ``R_IJ^T (aW)_I`` (BLAS-3). This
computes half of the Gram matrix, never holds the ``p x p`` matrix in memory, and keeps every
tile in cache for the elementwise pass. ReLU (:func:`relu_pair_sums`) has the same
structure with ``J_jl = E[theta theta]`` in place of ``R_jl`` and ``S_jl = sqrt(q_j q_l - Q_jl^2)``
in the diagonal term; its tiles run in numpy because ``arcsin`` is SIMD-vectorised there.
"""

from __future__ import annotations

import math

import numba
import numpy as np

TWO_OVER_PI = 2.0 / math.pi

#: Side of the square tiles of the pair matrix. 512 keeps a tile (2 MB) in L2/L3 while the
#: BLAS calls on (512 x d) panels still run near peak for d >= 50.
TILE = 512


# error_model="numpy": without it numba guards every division against zero (Python semantics),
# which blocks SIMD vectorisation of the pair loop (measured 2x slower). Not parallel=True: the
# pass is ~10% of the step, and numba's OpenMP threads spinning between tiles starve OpenBLAS's
# (the step ran 2x slower with 2 BLAS + 2 numba threads on 2 cores).
_jit = numba.njit(cache=True, fastmath=True, error_model="numpy")


@_jit
def _rsqrt(x):
    """``1/sqrt(x)`` to about one ulp for ``1 <= x < 3e38``: a single-precision estimate (SIMD
    sqrt and division at twice the width) and two Newton steps (24 -> 48 -> 53 bits); measured
    1.6x faster than the double division. The pair terms have ``L >= 1 + q_j + q_l >= 1``
    (Cauchy-Schwarz); NaN stays NaN."""
    r = np.float64(np.float32(1.0) / math.sqrt(np.float32(x)))
    h = 0.5 * x
    r = r * (1.5 - h * r * r)
    return r * (1.5 - h * r * r)


@_jit
def _tile_diag(G, inv_d, q, a, s):
    """Diagonal tile: ``G = W_I W_I^T`` -> ``R = 1/sqrt(L)`` in place, ``s_i += sum_l a_l Q_il R_il``."""
    n = G.shape[0]
    for i in range(n):
        di = 1.0 + q[i]
        g_row = G[i]  # a 1-D row view: the loop vectorises (2-D indexing in the loop may not)
        acc = 0.0
        for l in range(n):
            Q = g_row[l] * inv_d
            r = _rsqrt(di * (1.0 + q[l]) - Q * Q)
            g_row[l] = r
            acc += a[l] * Q * r
        s[i] += acc


@_jit
def _tile_off(G, inv_d, q_i, q_j, a_i, a_j, s_i, s_j):
    """Off-diagonal tile: as :func:`_tile_diag`, plus the column sums into ``s_j`` (symmetry)."""
    n_i, n_j = G.shape
    for i in range(n_i):
        di = 1.0 + q_i[i]
        ai = a_i[i]
        g_row = G[i]
        acc = 0.0
        for l in range(n_j):
            Q = g_row[l] * inv_d
            r = _rsqrt(di * (1.0 + q_j[l]) - Q * Q)
            g_row[l] = r
            qr = Q * r
            acc += a_j[l] * qr
            s_j[l] += ai * qr
        s_i[i] += acc


@_jit
def _assemble(V, W, Y, diag, f, inv_p):
    """``V_j <- f_j (V_j - diag_j W_j - Y_j inv_p)`` in place, one pass and no temporaries."""
    p, d = V.shape
    for j in range(p):
        v_row, w_row, y_row = V[j], W[j], Y[j]
        dj, fj = diag[j], f[j]
        for l in range(d):
            v_row[l] = fj * (v_row[l] - dj * w_row[l] - inv_p * y_row[l])


def pair_sums(W, a, with_u=False, tile=TILE):
    """Pair interactions of the particles, tile by tile.

    Parameters
    ----------
    W : (p, d) array
        Particle first-layer weights.
    a : (p,) array
        Second-layer weights.
    with_u : bool
        Also return ``u_j = sum_l a_l U(w_j, w_l)`` (without the 2/pi), needed for the
        second-layer velocity and the risk.

    Returns
    -------
    Y : (p, d) array
        ``sum_l R_jl a_l w_l``.
    s : (p,) array
        ``sum_l a_l Q_jl R_jl``.
    u : (p,) array or None
        ``sum_l a_l asin(Q_jl / sqrt((1+q_j)(1+q_l)))``.
    q : (p,) array
        ``|w_j|^2 / d``.
    """
    p, d = W.shape
    inv_d = 1.0 / d
    W = np.ascontiguousarray(W, dtype=float)
    q = np.einsum("ij,ij->i", W, W) * inv_d
    aW = a[:, None] * W
    Y = np.zeros_like(W)
    s = np.zeros(p)
    u = np.zeros(p) if with_u else np.zeros(0)
    # equal tiles, and each tile a contiguous view of one flat buffer: a strided slice of a
    # 2-D buffer sends np.matmul(out=...) off the BLAS path and numba to the slow 'A' layout
    n_tiles = -(-p // tile)
    tile = -(-p // n_tiles)
    starts = list(range(0, p, tile))
    sq = np.sqrt(1.0 + q)
    flat = np.empty(tile * tile)
    # products into one preallocated Fortran-ordered panel (gemm writing a column-major
    # (n, d) result is 5-10% faster here). All BLAS calls are numpy's: scipy's dsyrk/dsymm and
    # dgemm(beta=1) would save the panel and half the diagonal Gram, but they run on a second
    # OpenBLAS whose spinning thread pool fights numpy's (the step ran 2x slower on 2 threads)
    panel = np.empty(tile * d)
    for bi, i0 in enumerate(starts):
        i1 = min(i0 + tile, p)
        Wi = W[i0:i1]
        for j0 in starts[bi:]:
            j1 = min(j0 + tile, p)
            diagonal = i0 == j0
            G = flat[: (i1 - i0) * (j1 - j0)].reshape(i1 - i0, j1 - j0)
            np.matmul(Wi, W[j0:j1].T, out=G)
            if with_u:
                # numpy's arcsin is SIMD-vectorised (SVML), numba's math.asin is scalar libm
                T = G * (inv_d / np.outer(sq[i0:i1], sq[j0:j1]))
                np.arcsin(T, out=T)
                u[i0:i1] += T @ a[j0:j1]
                if not diagonal:
                    u[j0:j1] += T.T @ a[i0:i1]
            if diagonal:
                _tile_diag(G, inv_d, q[i0:i1], a[i0:i1], s[i0:i1])
            else:
                _tile_off(G, inv_d, q[i0:i1], q[j0:j1], a[i0:i1], a[j0:j1], s[i0:i1], s[j0:j1])
            out = panel[: (i1 - i0) * d].reshape(d, i1 - i0).T
            Y[i0:i1] += np.matmul(G, aW[j0:j1], out=out)
            if not diagonal:
                out = panel[: (j1 - j0) * d].reshape(d, j1 - j0).T
                Y[j0:j1] += np.matmul(G.T, aW[i0:i1], out=out)
    return Y, s, (u if with_u else None), q


def relu_pair_terms(Q, q_i, q_j):
    """ReLU pair functions of docs/twolayer.md §6.3 on a block of overlaps ``Q``.

    Returns ``J = E[theta(h_i) theta(h_l)] = 1/4 + asin(rho)/(2 pi)`` (= dI2/dC12),
    ``S = sqrt(q_i q_l - Q^2)`` (``S / (4 pi q_i)`` = dI2/dC11) and
    ``I2 = E[relu(h_i) relu(h_l)] = (S + Q (pi/2 + asin(rho))) / (2 pi)``.
    """
    norm = np.sqrt(np.outer(q_i, q_j))
    rho = np.clip(Q / np.where(norm > 0, norm, 1.0), -1.0, 1.0)
    A = np.arcsin(rho)
    S = np.sqrt(np.maximum(norm * norm - Q * Q, 0.0))  # the self pair is 0 up to rounding
    return 0.25 + A / (2 * math.pi), S, (S + Q * (0.5 * math.pi + A)) / (2 * math.pi)


def relu_pair_sums(W, a, with_u=False, tile=TILE):
    """:func:`pair_sums` for ReLU units, in numpy tiles (``arcsin`` per pair is SIMD there).

    Returns ``Y_j = sum_l J_jl a_l w_l``, ``s_j = sum_l a_l S_jl``,
    ``u_j = sum_l a_l I2_jl`` (or None) and ``q``, with :func:`relu_pair_terms`.
    """
    p, d = W.shape
    q = np.einsum("ij,ij->i", W, W) / d
    aW = a[:, None] * W
    Y = np.zeros_like(W)
    s = np.zeros(p)
    u = np.zeros(p) if with_u else None
    n_tiles = -(-p // tile)
    tile = -(-p // n_tiles)
    starts = list(range(0, p, tile))
    for bi, i0 in enumerate(starts):
        i1 = min(i0 + tile, p)
        for j0 in starts[bi:]:
            j1 = min(j0 + tile, p)
            J, S, I2 = relu_pair_terms(W[i0:i1] @ W[j0:j1].T / d, q[i0:i1], q[j0:j1])
            Y[i0:i1] += J @ aW[j0:j1]
            s[i0:i1] += S @ a[j0:j1]
            if with_u:
                u[i0:i1] += I2 @ a[j0:j1]
            if j0 != i0:
                Y[j0:j1] += J.T @ aW[i0:i1]
                s[j0:j1] += S.T @ a[i0:i1]
                if with_u:
                    u[j0:j1] += I2.T @ a[i0:i1]
    return Y, s, u, q


def _relu_velocity(W, a, W_star, a_star, with_u, tile):
    """ReLU version of :func:`velocity`: ``grad_w U(w, b) = (J b + S w / (2 pi q_w)) / d``
    (Price's theorem on the closed-form I2 of docs/twolayer.md §6.3), so in flow time
    ``dw_j/dt = a_j [(1/k) sum_r a*_r (J_jr w*_r + S_jr w_j/(2 pi q_j))
                     - (1/p) sum_l a_l (J_jl w_l + S_jl w_j/(2 pi q_j))]``."""
    p, d = W.shape
    k = W_star.shape[0]
    Y, s, u, q = relu_pair_sums(W, a, with_u=with_u, tile=tile)
    M = W @ W_star.T * (1.0 / d)
    P_diag = np.einsum("ij,ij->i", W_star, W_star) / d
    Jt, St, It = relu_pair_terms(M, q, P_diag)
    coef_t = (a_star / k) * Jt
    diag = ((St * (a_star / k)).sum(axis=1) - s / p) / (2 * math.pi * q)
    V = coef_t @ W_star
    V += diag[:, None] * W
    V -= Y * (1.0 / p)
    V *= a[:, None]
    Va = It @ a_star / k - u / p if with_u else None
    return V, Va, M, q


def velocity(W, a, W_star, a_star, with_u=False, tile=TILE, activation="erf"):
    """Population gradient-flow velocity of every particle, in flow time.

    Parameters
    ----------
    W : (p, d) array
        First-layer weights of the particles.
    a : (p,) array
        Second-layer weights.
    W_star : (k, d) array
        Teacher first layer.
    a_star : (k,) array
        Teacher second layer.
    with_u : bool
        Also compute the second-layer force (needed to train ``a`` and for the risk).
    activation : {"erf", "relu"}
        ``erf(z / sqrt 2)`` (numba pair pass) or ``relu`` (numpy tiles, closed forms of
        docs/twolayer.md §6.3).

    Returns
    -------
    V : (p, d) array
        ``dw_j/dt`` (module docstring).
    Va : (p,) array or None
        ``(1/k) sum_r a*_r U_jr - (1/p) sum_l a_l U_jl`` with ``U`` of docs/meanfield.md §2;
        ``da_j/dt`` is this times the second-layer rate.
    M : (p, k) array
        Teacher overlaps ``w_j . w*_r / d``.
    q : (p,) array
        Self overlaps ``|w_j|^2 / d``.
    """
    if activation == "relu":
        return _relu_velocity(W, a, W_star, a_star, with_u, tile)
    p, d = W.shape
    k = W_star.shape[0]
    Y, s, u, q = pair_sums(W, a, with_u=with_u, tile=tile)
    M = W @ W_star.T * (1.0 / d)
    Dq = 1.0 + q
    dP = 1.0 + np.einsum("ij,ij->i", W_star, W_star) / d
    coef_t = (a_star / k) / np.sqrt(np.outer(Dq, dP) - M**2)  # teacher pairs, (p, k)
    # V_j = (2/pi) a_j [sum_r c_jr w*_r - (sum_r c_jr M_jr) w_j/(1+q_j) - (Y_j - s_j w_j/(1+q_j))/p]
    diag = (np.sum(coef_t * M, axis=1) - s / p) / Dq
    V = coef_t @ W_star
    _assemble(V, W, Y, diag, TWO_OVER_PI * a, 1.0 / p)
    Va = None
    if with_u:
        Ut = TWO_OVER_PI * np.arcsin(M / np.sqrt(np.outer(Dq, dP)))
        Va = Ut @ a_star / k - TWO_OVER_PI * u / p
    return V, Va, M, q
