"""Numerical core of the `dmft` kernel: one causal forward pass of the effective process.

Implements the exact discrete-time effective process of
docs/dmft.md §3 (Mignacco, Krzakala, Urbani, Zdeborova 2020,
NeurIPS, arXiv 2006.06098; Mignacco, Urbani, Zdeborova 2021, MLST, arXiv
2103.04902): with step ``eta`` and iteration index ``k``,

    rho[k+1] = rho[k] - eta (nut[k] rho[k] + sig2 f[k]) + eta^2 sum_{j<k} M_R(k,j) rho[j]
               + eta xi[k] (+ sqrt(2 T sig2 eta) zeta[k])
    M_C(k,j) = alpha sig2^2 E[f[k] f[j]],                 f = s_hat l'
    nut[k]   = ridge + nu[k] + alpha sig2 E[s_hat l''[k]]
    M_R(k,j) = alpha sig2^2 E[a[k] G(k,j) a[j]],           a = s_hat l''
    m[k+1]   = m[k] - eta ((ridge + nu[k]) m[k] + alpha E[s_hat u l'[k]])

Solver (docs/dmft.md §4.2, "forward causal pass"): every kernel entry at row ``k``
depends only on the process up to step ``k``, so one sweep over ``k`` solves the
finite-sample self-consistency exactly; there is nothing left to iterate.

Response. Per trajectory, ``G(k, .)`` solves a lower-triangular linear system
(docs/dmft.md §3). We never store ``G`` (that costs ``O(K^2 n)`` memory, 80 GB at
K = 1000, n = 10^4): row ``k`` of ``G`` is the *adjoint* (row) solve of that
triangular system, a backward recursion over ``l = k-1 .. 1`` that only needs
the stored ``a[l]`` and the already-known rows ``< k`` of ``M_R``:

    y[k] = 1,   y[l] = c[l] y[l+1] + eta^2 sum_{m=l+1}^{k-1} M_R(m, l) y[m+1],
    c[l] = 1 - eta (nut[l] + sig2 a[l]),   G(k, j) = y[j+1].

This is exact (no extra variance), costs ``K^3 / 6`` multiply-adds per response
trajectory in total (the same as forward tangent propagation) and only
``O(K n)`` memory. It runs on a subset of ``n_resp`` trajectories; the part of
each row that reaches outside a block of 48 adjoint rows is one BLAS-3 product
over all response trajectories at once (:func:`response_row`).

Noise. ``xi[k] = sum_{j<=k} L(k, j) z[j]`` with a row-by-row (growing)
Cholesky factor ``L`` of ``M_C`` and normals ``z[j]`` fixed per trajectory, so
the path has covariance ``M_C`` at all pairs of times (docs/dmft.md §4.3 item 4).
``L`` comes from Gram-Schmidt on the rows ``f[k]`` (:func:`qr_row`), not from
factorising ``M_C``, which is numerically singular near the flow limit.

All numba functions take arrays laid out ``[time, trajectory]`` and loop with
the trajectory index innermost (contiguous, vectorisable). Everything is
single-threaded on purpose: the scheduler runs one kernel per CPU, and
multi-threaded numba/BLAS regions were measured to be 10-30x slower on a
shared machine (see :mod:`kernels._blas`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

CHUNK = 64  # trajectories per inner loop (cache blocking)


def qr_row(E, k, n=None):
    """Gram-Schmidt step on ``E[k] = f[k]``: returns ``c`` with ``f[k] = sum_{j<=k} c[j] E[j]``.

    Afterwards ``E[k]`` is orthonormal to ``E[:k]`` in the trajectory mean
    (``sum_i E[j, i] E[l, i] / n = delta_jl``, ``n`` the number of trajectories,
    by default the row length), or zero when ``f[k]`` already lies in their span. The
    rows ``c`` form a factor ``R`` with ``R R^T = Gram(f)``,
    i.e. ``M_C = alpha sig^4 R R^T``: a Cholesky factor of the sampled ``M_C``
    obtained without forming ``M_C``. This matters: near the flow limit the
    noise path is smooth, its ``M_C`` has condition number ~ (lr^2 alpha)^-k, and
    a Cholesky factorisation of ``M_C`` itself (which squares the condition
    number of the ``f`` rows) breaks down after a few steps, while two passes
    of classical Gram-Schmidt on the rows stay accurate to round-off.

    A damped kernel ``(1 - w) a4 R' R'^T + w a4 F F^T / n`` is the Gram matrix of
    the stacked rows ``[sqrt((1 - w) n) R'[k], sqrt(w) F[k]]`` (divisor ``n``),
    so the same step on those rows gives its factor (global iterations).
    """
    n = E.shape[1] if n is None else n
    f = E[k]
    c = np.zeros(k + 1)
    norm0 = np.sqrt(f @ f / n)
    if k > 0:
        for _ in range(2):
            proj = (E[:k] @ f) / n
            f -= proj @ E[:k]
            c[:k] += proj
    norm = np.sqrt(f @ f / n)
    if norm > 1e-13 * norm0 and norm > 0.0:
        f /= norm
        c[k] = norm
    else:
        f[:] = 0.0
    return c


@njit(cache=True, fastmath=True)
def advance(k, RHO, fk, Z, Lrow, MRrow, nut_k, eta, sig2, lang, zeta, implicit, dinv):
    """``RHO[k+1]`` from the discrete effective process (docs/dmft.md §3, first line).

    ``implicit``: the whole increment of trajectory ``i`` is divided by
    ``D_i = 1 / dinv[i] = 1 + eta sig2 max(s_hat l''_i, 0)``, a linearly implicit
    (semi-implicit Euler) step on the local curvature, for the flow limit.
    """
    n = RHO.shape[1]
    nch = (n + CHUNK - 1) // CHUNK
    eta2 = eta * eta
    for c in range(nch):
        i0 = c * CHUNK
        i1 = min(i0 + CHUNK, n)
        acc = np.zeros(i1 - i0)
        for j in range(k + 1):
            lj = eta * Lrow[j]
            if lj != 0.0:
                for i in range(i0, i1):
                    acc[i - i0] += lj * Z[j, i]
        for j in range(k):
            mj = eta2 * MRrow[j]
            if mj != 0.0:
                for i in range(i0, i1):
                    acc[i - i0] += mj * RHO[j, i]
        if implicit:
            for i in range(i0, i1):
                step = -eta * (nut_k * RHO[k, i] + sig2 * fk[i]) + acc[i - i0] + lang * zeta[i]
                RHO[k + 1, i] = RHO[k, i] + dinv[i] * step
        else:
            for i in range(i0, i1):
                RHO[k + 1, i] = (
                    RHO[k, i] - eta * (nut_k * RHO[k, i] + sig2 * fk[i]) + acc[i - i0] + lang * zeta[i]
                )


_NO_DINV = np.ones((1, 1))  # placeholder for the explicit step (numba needs an array)
RESP_BLOCK = 48  # rows of the adjoint solved together: the far part of the block is one GEMM


@njit(cache=True, fastmath=True)
def _adjoint_near(lo, hi, acc, Y, A, nut, MRT, eta, sig2, implicit, DINV):
    """Rows ``hi .. lo`` of the adjoint: diagonal step plus the memory terms inside the block.

    ``implicit``: ``Y`` holds the scaled adjoint ``y[l] / D[l-1]`` of the semi-implicit
    step (:func:`response_row`), whose diagonal factor is ``1 - eta (nut + sig2 min(a, 0))``.
    """
    n = Y.shape[1]
    nch = (n + CHUNK - 1) // CHUNK
    eta2 = eta * eta
    for c in range(nch):
        i0 = c * CHUNK
        i1 = min(i0 + CHUNK, n)
        for q in range(hi, lo - 1, -1):
            base = 1.0 - eta * nut[q]
            if implicit:
                for i in range(i0, i1):
                    Y[q, i] = (base - eta * sig2 * min(A[q, i], 0.0)) * Y[q + 1, i] + acc[q - lo, i]
            else:
                for i in range(i0, i1):
                    Y[q, i] = (base - eta * sig2 * A[q, i]) * Y[q + 1, i] + acc[q - lo, i]
            for mm in range(q + 1, hi):
                coef = eta2 * MRT[q, mm]
                for i in range(i0, i1):
                    Y[q, i] += coef * Y[mm + 1, i]
            if implicit:
                for i in range(i0, i1):
                    Y[q, i] *= DINV[q - 1, i]


@njit(cache=True, fastmath=True)
def _contract(k, j0, A, Y, out):
    """``out[j] = mean_i A[k, i] Y[j+1, i] A[j, i]`` for ``j0 <= j < k``."""
    n = Y.shape[1]
    for j in range(j0, k):
        s = 0.0
        for i in range(n):
            s += A[k, i] * Y[j + 1, i] * A[j, i]
        out[j] = s / n


def response_row(k, A, nut, MRT, eta, sig2, Y, out, DINV=None, lag=0):
    """``out[j] = mean_i a_i[k] G_i(k, j) a_i[j]`` for ``j < k`` by the adjoint recursion.

    ``A[l, i] = s_hat l''`` of response trajectory ``i`` at step ``l``;
    ``MRT[l, m] = M_R(m, l)``; ``Y`` is a ``(K+1, n_resp)`` workspace. Rows of
    the adjoint are solved in blocks of :data:`RESP_BLOCK`: the memory terms
    reaching outside a block (most of the work) are one BLAS-3 product
    ``MRT[block, later] @ Y[later]`` over all trajectories at once, the few
    inside it a short numba loop.

    Semi-implicit step (``DINV[l] = 1 / D[l]``, :func:`advance`): its tangent is
    ``G(j+1, j) = 1/D[j]``, ``G(l+1, j) = c[l] G(l, j) + (eta^2 / D[l]) sum_m M_R(l, m) G(m, j)``
    with ``c[l] = 1 - eta (nut[l] + sig2 a[l]) / D[l]`` (the derivative of ``D`` is
    dropped: O(eta^2) a step). ``Y`` then holds ``y[l] / D[l-1]``, which is ``G(k, l-1)``
    and turns the memory sum into the same product as above.

    Memory truncation (``lag > 0``, docs/dmft.md §4.6): only ``G(k, j)`` for ``k - j <= lag``
    is solved and ``out[j] = 0`` below. Because ``M_R`` is then zero beyond the lag too, the
    adjoint rows inside the window need nothing outside it: the row costs ``O(lag^2)``
    instead of ``O(k^2)`` per trajectory.
    """
    implicit = DINV is not None
    Y[k] = DINV[k - 1] if implicit else 1.0
    dinv = DINV if implicit else _NO_DINV
    eta2 = eta * eta
    first = max(1, k - lag + 1) if lag > 0 else 1  # G(k, j) = y[j + 1] for k - j <= lag
    hi = k - 1
    while hi >= first:
        lo = max(first, hi - RESP_BLOCK + 1)
        acc = (eta2 * MRT[lo : hi + 1, hi:k]) @ Y[hi + 1 : k + 1]
        _adjoint_near(lo, hi, acc, Y, A, nut, MRT, eta, sig2, implicit, dinv)
        hi = lo - 1
    out[: first - 1] = 0.0
    _contract(k, first - 1, A, Y, out)


def weight_prepare(k, MR, MC, res, ct, eta):
    """Row ``k+1`` of the weight side as a function of ``g = 1 - eta nut[k]`` (docs/dmft.md §2, discrete).

    The weight coordinate ``theta`` orthogonal to ``v`` (in units of ``rho``) obeys the
    linear recursion ``theta[k+1] = g theta[k] + eta^2 sum_{j<k} M_R(k,j) theta[j]
    + eta xi[k] + sqrt(lang_var) zeta[k]``. ``res[k, l] = d theta[k] / d theta[l]`` and
    ``ct[k, l] = E[theta[k] theta[l]]`` are filled row by row during the causal pass,
    so ``Q(k) = m(k)^2 + ct[k, k] / sig2`` is known when the spherical multiplier is set.
    The new row is affine in ``g`` and its diagonal quadratic; this returns the
    coefficients (``O(k^2)``, BLAS-2) so that the multiplier can be solved for before
    :func:`weight_commit` writes the row.
    """
    mem = eta * eta * MR[k, :k]
    p_row = res[k, : k + 1].copy()
    m_row = mem @ res[:k, : k + 1] if k > 0 else np.zeros(k + 1)
    # x[l] = E[xi[k] theta[l]] = eta sum_{p < l} res[l, p+1] M_C(k, p); l <= k does not involve g
    x = eta * (res[: k + 1, 1 : k + 2] @ MC[k, : k + 1])
    x1 = eta * (p_row[1:] @ MC[k, :k])  # x[k+1] = g x1 + x0
    x0 = eta * (m_row[1:] @ MC[k, :k] + MC[k, k])
    a1 = ct[k, : k + 1].copy()  # crow = g a1 + a0
    a0 = eta * x + (mem @ ct[:k, : k + 1] if k > 0 else 0.0)
    c2 = a1[k]
    c1 = a0[k] + eta * x1 + (mem @ a1[:k] if k > 0 else 0.0)
    c0 = eta * x0 + (mem @ a0[:k] if k > 0 else 0.0)
    return p_row, m_row, a1, a0, (c2, c1, c0)


def weight_commit(k, g, prep, res, ct, lang_var):
    """Write row ``k+1`` of the weight-side resolvent and correlation for a given ``g``."""
    p_row, m_row, a1, a0, (c2, c1, c0) = prep
    res[k + 1, : k + 1] = g * p_row + m_row
    res[k + 1, k + 1] = 1.0
    crow = g * a1 + a0
    ct[k + 1, : k + 1] = crow
    ct[: k + 1, k + 1] = crow
    ct[k + 1, k + 1] = (c2 * g + c1) * g + c0 + lang_var


def orthonormalize_row(B, nb):
    """Make ``B[nb]`` orthogonal to ``B[:nb]`` with squared norm ``n`` (two Gram-Schmidt passes).

    Variance reduction ("moment matching"): the rows of ``B`` are the normals
    that drive the process (a constant row, the initial fields, the noise
    normals of every step). Orthonormalising them makes every sample mean and
    sample covariance of these normals exact, which removes the ``O(n^{-1/2})``
    sampling error of all second moments; each row is still marginally an
    isotropic Gaussian direction (the Q factor of a Gaussian matrix), so the
    estimator stays consistent with ``O(1/n)`` bias.
    """
    n = B.shape[1]
    z = B[nb]
    for _ in range(2):
        z -= ((B[:nb] @ z) / n) @ B[:nb]  # BLAS-2; the rows of B[:nb] have squared norm n
    z *= np.sqrt(n / (z @ z))
