"""The right-hand side of the overlap ODEs (numba), shared by every integrator.

The equations are those of :mod:`kernels.twolayer.ode.kernel` (``docs/ode.md``): the
learning terms ``I3`` (closed form for erf, generic otherwise), the quadratic terms
``I4`` (closed form for erf, quadrature for ReLU) and the noise term ``J2``.

The state is one flat vector ``y = [Q (K*K, row-major), M (K*Mt, row-major), v (K)]``;
:func:`derivative` writes ``dy/dt`` for it, using scratch arrays made once per point by
:func:`workspace`. Both integrators (:mod:`kernels.twolayer.ode.euler`,
:mod:`kernels.twolayer.ode.adaptive`) call exactly this function.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels.twolayer.gaussian import (
    ERF,
    FASTMATH,
    LIN,
    fast_asin,
    i2,
    i3,
    i4_quadrature,
    j2,
    risk_overlaps,
)

_TWO_OVER_PI = 2.0 / math.pi
_FOUR_OVER_PI2 = 4.0 / math.pi**2


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _learning_erf(K, n, Om, c, F, r, s):
    """``F[i, b] = sum_A c_A I3(i, b, A)`` for erf, in ``O(K n^2)`` multiply-adds.

    ``I3(i, b, A) = (2/pi) (Om_bA u_i - Om_ib Om_iA) / (u_i sqrt(u_i u_A - Om_iA^2))``: the
    factor ``r_iA`` does not depend on ``b``, so the sum splits into two contractions.
    """
    for i in range(K):
        ui = 1.0 + Om[i, i]
        t = 0.0
        for a in range(n):
            ra = c[a] * _TWO_OVER_PI / (ui * math.sqrt(ui * (1.0 + Om[a, a]) - Om[i, a] * Om[i, a]))
            r[a] = ra
            t += ra * Om[i, a]
        s[i] = t
        for b in range(n):
            acc = 0.0
            for a in range(n):
                acc += r[a] * Om[b, a]
            F[i, b] = ui * acc - Om[i, b] * t


@njit(cache=True)
def _learning_generic(code, K, n, Om, c, F):
    for i in range(K):
        for b in range(n):
            acc = 0.0
            for a in range(n):
                acc += c[a] * i3(code, Om[i, i], Om[i, b], Om[i, a], Om[b, a], Om[a, a])
            F[i, b] = acc


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _quadratic_erf(K, n, Om, c, noise, G, w, x, y, buf, coef):
    """``G[i, k] = sum_AB c_A c_B I4(i, k, A, B) + noise J2(i, k)`` for erf, ``i <= k``.

    Uses both symmetries of I4: only ``i <= k`` and ``A <= B`` are evaluated (off-diagonal
    ``A < B`` counted twice through ``coef``). ``Lambda_4`` depends on ``(i, k)`` only and
    ``Lambda_1``, ``Lambda_2`` on ``(i, k, A)``, so they are hoisted; ``Lambda_0`` is a rank-2
    update of ``Omega`` (rows ``x = Omega_i.``, ``y = Omega_k.``). The arcsine arguments of one
    ``(i, k)`` go to a flat buffer, and a single branch-free pass (:func:`fast_asin`) over it
    vectorises; libm's ``asin`` would be an opaque call per element.
    """
    m = 0
    for a in range(n):
        for b in range(a, n):
            coef[m] = (1.0 if a == b else 2.0) * c[a] * c[b]
            m += 1
    n_pairs = m
    for i in range(K):
        ui = 1.0 + Om[i, i]
        for k in range(i, K):
            uk = 1.0 + Om[k, k]
            oik = Om[i, k]
            l4 = ui * uk - oik * oik
            for a in range(n):
                x[a] = Om[i, a]
                y[a] = Om[k, a]
            for a in range(n):
                l1 = l4 * (1.0 + Om[a, a]) - y[a] * y[a] * ui - x[a] * x[a] * uk + 2.0 * oik * x[a] * y[a]
                w[a] = 1.0 / math.sqrt(l1)
            m = 0
            for a in range(n):
                # Lambda_0 = l4 Om_ab - ui y_a y_b - uk x_a x_b + oik (x_a y_b + x_b y_a)
                xa = x[a] * uk - oik * y[a]
                ya = y[a] * ui - oik * x[a]
                wa = w[a]
                for b in range(a, n):
                    buf[m + b - a] = (l4 * Om[a, b] - ya * y[b] - xa * x[b]) * wa * w[b]
                m += n - a
            acc = 0.0
            for j in range(n_pairs):
                acc += coef[j] * fast_asin(buf[j])
            inv = 1.0 / math.sqrt(l4)
            G[i, k] = _FOUR_OVER_PI2 * inv * acc + noise * _TWO_OVER_PI * inv
            G[k, i] = G[i, k]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _quadratic_erf_wide(K, n, Om, c, noise, G, X, Y, Xa, Ya, W, l4, acc):
    """Same sum as :func:`_quadratic_erf`, vectorised over the ``(i, k)`` pairs instead.

    For ``K >= 3`` there are at least 6 pairs: the per-pair quantities are laid out as
    ``(A, pair)`` arrays and, for each ``A <= B``, one contiguous branch-free loop over the
    pairs evaluates the arcsines. Twice as fast as the per-pair layout at p=8, k=4 (rows
    are short there), slower at ``K = 2`` where there are only 3 pairs.
    """
    j = 0
    for i in range(K):
        ui = 1.0 + Om[i, i]
        for k in range(i, K):
            uk = 1.0 + Om[k, k]
            oik = Om[i, k]
            lam4 = ui * uk - oik * oik
            l4[j] = lam4
            for a in range(n):
                x = Om[i, a]
                y = Om[k, a]
                X[a, j] = x
                Y[a, j] = y
                Xa[a, j] = x * uk - oik * y
                Ya[a, j] = y * ui - oik * x
                lam1 = lam4 * (1.0 + Om[a, a]) - y * y * ui - x * x * uk + 2.0 * oik * x * y
                W[a, j] = 1.0 / math.sqrt(lam1)
            acc[j] = 0.0
            j += 1
    n_pairs = j
    for a in range(n):
        xa_row, ya_row, wa_row = Xa[a], Ya[a], W[a]
        for b in range(a, n):
            cab = (1.0 if a == b else 2.0) * c[a] * c[b]
            om = Om[a, b]
            xb_row, yb_row, wb_row = X[b], Y[b], W[b]
            for q in range(n_pairs):
                l0 = l4[q] * om - ya_row[q] * yb_row[q] - xa_row[q] * xb_row[q]
                acc[q] += cab * fast_asin(l0 * wa_row[q] * wb_row[q])
    j = 0
    for i in range(K):
        for k in range(i, K):
            inv = 1.0 / math.sqrt(l4[j])
            G[i, k] = _FOUR_OVER_PI2 * inv * acc[j] + noise * _TWO_OVER_PI * inv
            G[k, i] = G[i, k]
            j += 1


@njit(cache=True)
def _quadratic_generic(code, K, n, Om, c, noise, G, z, cov, chol):
    for i in range(K):
        for k in range(i, K):
            acc = 0.0
            for a in range(n):
                for b in range(a, n):
                    if code == LIN:
                        val = Om[a, b]
                    else:
                        idx = (i, k, a, b)
                        for p in range(4):
                            for q in range(4):
                                cov[p, q] = Om[idx[p], idx[q]]
                        val = i4_quadrature(code, cov, z, chol)
                    acc += (1.0 if a == b else 2.0) * c[a] * c[b] * val
            G[i, k] = acc + noise * j2(code, Om[i, i], Om[i, k], Om[k, k])
            G[k, i] = G[i, k]


@njit(cache=True)
def _noise_only(code, K, Om, noise, G):
    """``G[i, k] = noise J2(i, k)``: the label-noise part of the quadratic term without ``I4``."""
    for i in range(K):
        for k in range(i, K):
            G[i, k] = noise * j2(code, Om[i, i], Om[i, k], Om[k, k])
            G[k, i] = G[i, k]


@njit(cache=True)
def workspace(K, Mt, P, vs):
    """Scratch arrays of :func:`derivative` for ``K`` students and ``Mt`` teachers.

    ``Om`` and ``c`` carry the fixed teacher block ``P`` and ``v*`` from here on.
    """
    n = K + Mt
    n_pairs = K * (K + 1) // 2
    Om = np.empty((n, n))
    c = np.empty(n)
    for p in range(Mt):
        for q in range(Mt):
            Om[K + p, K + q] = P[p, q]
        c[K + p] = vs[p]
    return (
        Om, c, np.zeros((K, n)), np.zeros((K, K)), np.zeros(K),
        np.empty(n), np.empty(K), np.empty(n), np.empty(n), np.empty(n),
        np.empty(n * (n + 1) // 2), np.empty(n * (n + 1) // 2),
        np.empty((n, n_pairs)), np.empty((n, n_pairs)), np.empty((n, n_pairs)),
        np.empty((n, n_pairs)), np.empty((n, n_pairs)), np.empty(n_pairs), np.empty(n_pairs),
        np.empty((4, 4)), np.zeros((4, 4)),
    )  # fmt: skip


@njit(cache=True)
def derivative(code, K, Mt, y, dy, a1, a2, av, wd, wv, noise, i4, z, work):
    """``dy/dt`` of the overlap ODEs at the state ``y`` (layout in the module doc).

    Parameters
    ----------
    code
        Activation code (:mod:`kernels.twolayer.gaussian`).
    K, Mt
        Student and teacher widths.
    y, dy
        State and its time derivative (written).
    a1, a2, av, wd, wv
        Rates of the learning (``I3``), quadratic (``I4`` and noise ``J2``), second-layer,
        weight-decay (of ``Q``, ``M``) and second-layer decay terms (zero switches a term off).
    noise
        Label-noise variance of the ``J2`` term (0 drops it).
    i4
        Keep the ``I4`` part of the quadratic term.
    z
        ``(n, 3)`` normal points for the ReLU ``I4`` (unused otherwise).
    work
        :func:`workspace`.

    Every entry of ``dy`` is computed from ``y`` alone (no entry sees a partly updated
    state); ``dQ`` is computed on ``i <= k`` and mirrored, so a symmetric ``Q`` stays so.
    """
    Om, c, F, G, h, r, s, w, x, yy, buf, coef, wX, wY, wXa, wYa, wW, wl4, wacc, cov, chol = work
    n = K + Mt
    oM = K * K
    ov = oM + K * Mt
    for p in range(K):
        c[p] = -y[ov + p]
        for q in range(K):
            Om[p, q] = y[p * K + q]
        for q in range(Mt):
            Om[p, K + q] = y[oM + p * Mt + q]
            Om[K + q, p] = y[oM + p * Mt + q]
    if a1 != 0.0:
        if code == ERF:
            _learning_erf(K, n, Om, c, F, r, s)
        else:
            _learning_generic(code, K, n, Om, c, F)
    if a2 != 0.0:
        if not i4:
            _noise_only(code, K, Om, noise, G)
        elif code == ERF and K >= 3:
            _quadratic_erf_wide(K, n, Om, c, noise, G, wX, wY, wXa, wYa, wW, wl4, wacc)
        elif code == ERF:
            _quadratic_erf(K, n, Om, c, noise, G, w, x, yy, buf, coef)
        else:
            _quadratic_generic(code, K, n, Om, c, noise, G, z, cov, chol)
    if av != 0.0:  # otherwise h stays 0
        for p in range(K):
            acc = 0.0
            for a in range(n):
                acc += c[a] * i2(code, Om[p, p], Om[p, a], Om[a, a])
            h[p] = acc
    for p in range(K):
        vp = y[ov + p]
        for q in range(p, K):
            vq = y[ov + q]
            dq = a1 * (vp * F[p, q] + vq * F[q, p]) + a2 * vp * vq * G[p, q] - 2.0 * wd * y[p * K + q]
            dy[p * K + q] = dq
            dy[q * K + p] = dq
        for q in range(Mt):
            dy[oM + p * Mt + q] = a1 * vp * F[p, K + q] - wd * y[oM + p * Mt + q]
        dy[ov + p] = av * h[p] - wv * vp


@njit(cache=True)
def pack(Q, M, v):
    """The flat state ``[Q, M, v]`` of :func:`derivative`."""
    K, Mt = M.shape
    y = np.empty(K * K + K * Mt + K)
    y[: K * K] = Q.ravel()
    y[K * K : K * K + K * Mt] = M.ravel()
    y[K * K + K * Mt :] = v
    return y


@njit(cache=True)
def save(code, K, Mt, y, P, vs, j, out_Q, out_M, out_v, out_risk):
    """Record the state ``y`` as saved time ``j`` (overlaps and the risk from them)."""
    oM = K * K
    ov = oM + K * Mt
    for p in range(K):
        for q in range(K):
            out_Q[j, p, q] = y[p * K + q]
        for q in range(Mt):
            out_M[j, p, q] = y[oM + p * Mt + q]
        out_v[j, p] = y[ov + p]
    out_risk[j] = risk_overlaps(code, out_Q[j], out_M[j], P, out_v[j], vs)


@njit(cache=True)
def diverged(y, blowup):
    """An entry of the state is non-finite or beyond ``blowup`` in absolute value."""
    for i in range(y.shape[0]):
        if not abs(y[i]) <= blowup:  # also catches NaN
            return True
    return False
