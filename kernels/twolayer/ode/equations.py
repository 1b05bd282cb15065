"""The right-hand side of the overlap ODEs and their Euler integration (numba).

The equations are those of :mod:`kernels.twolayer.ode.kernel` (``docs/ode.md``): the
learning terms ``I3`` (closed form for erf, generic otherwise), the quadratic terms
``I4`` (closed form for erf, quadrature for ReLU) and the noise term ``J2``, integrated
with explicit Euler sub-steps between saved times by :func:`integrate`.
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
def integrate(
    code, Q, M, P, v, vs, a1, a2, av, wd, wv, noise, times, n_sub, z, out_Q, out_M, out_v, out_risk, blowup
):
    """Explicit Euler of the overlap ODEs, landing exactly on every saved time.

    Parameters
    ----------
    code
        Activation code (:mod:`kernels.twolayer.gaussian`).
    Q, M, P, v, vs
        Initial ``Q (K, K)``, ``M (K, Mt)``, fixed ``P (Mt, Mt)``, ``v (K,)``, fixed ``v* (Mt,)``;
        ``Q``, ``M``, ``v`` are overwritten with the final state.
    a1, a2, av, wd, wv
        Rates of the learning (``I3``), quadratic (``I4 + noise J2``), second-layer, weight-decay
        (of ``Q``, ``M``) and second-layer decay terms (zero switches a term off).
    noise
        Label-noise variance.
    times, n_sub
        Sorted saved times (``times[0]`` is the initial state) and the number of equal Euler
        steps from ``times[j-1]`` to ``times[j]`` (:func:`kernels.timegrid.substeps`).
    z
        ``(n, 3)`` normal points for the ReLU ``I4`` (unused otherwise).
    out_Q, out_M, out_v, out_risk
        Records, one row per saved time.
    blowup
        Divergence threshold on ``|Q|``, ``|M|``, ``|v|``.

    Returns
    -------
    float
        ``-1.0`` on success, else the time at which the state became non-finite or exceeded
        ``blowup`` (the records hold what was saved before).
    """
    K = Q.shape[0]
    Mt = P.shape[0]
    n = K + Mt
    Om = np.empty((n, n))
    c = np.empty(n)
    F = np.zeros((K, n))
    G = np.zeros((K, K))
    h = np.zeros(K)
    r = np.empty(n)
    s = np.empty(K)
    w = np.empty(n)
    x = np.empty(n)
    y = np.empty(n)
    buf = np.empty(n * (n + 1) // 2)
    coef = np.empty(n * (n + 1) // 2)
    n_pairs = K * (K + 1) // 2
    wX = np.empty((n, n_pairs))
    wY = np.empty((n, n_pairs))
    wXa = np.empty((n, n_pairs))
    wYa = np.empty((n, n_pairs))
    wW = np.empty((n, n_pairs))
    wl4 = np.empty(n_pairs)
    wacc = np.empty(n_pairs)
    cov = np.empty((4, 4))
    chol = np.zeros((4, 4))
    for p in range(Mt):
        for q in range(Mt):
            Om[K + p, K + q] = P[p, q]
        c[K + p] = vs[p]
    move_v = av != 0.0 or wv != 0.0
    dt = 0.0
    for j in range(times.shape[0]):
        if j > 0 and n_sub[j] > 0:
            dt = (times[j] - times[j - 1]) / n_sub[j]
        for step in range(n_sub[j] if j > 0 else 0):
            for p in range(K):
                c[p] = -v[p]
                for q in range(K):
                    Om[p, q] = Q[p, q]
                for q in range(Mt):
                    Om[p, K + q] = M[p, q]
                    Om[K + q, p] = M[p, q]
            if a1 != 0.0:
                if code == ERF:
                    _learning_erf(K, n, Om, c, F, r, s)
                else:
                    _learning_generic(code, K, n, Om, c, F)
            if a2 != 0.0:
                if code == ERF and K >= 3:
                    _quadratic_erf_wide(K, n, Om, c, noise, G, wX, wY, wXa, wYa, wW, wl4, wacc)
                elif code == ERF:
                    _quadratic_erf(K, n, Om, c, noise, G, w, x, y, buf, coef)
                else:
                    _quadratic_generic(code, K, n, Om, c, noise, G, z, cov, chol)
            if av != 0.0:  # otherwise h stays 0
                for p in range(K):
                    acc = 0.0
                    for a in range(n):
                        acc += c[a] * i2(code, Om[p, p], Om[p, a], Om[a, a])
                    h[p] = acc
            # every increment above used the old state; now apply them
            bad = False
            for p in range(K):
                for q in range(p, K):
                    dq = (
                        a1 * (v[p] * F[p, q] + v[q] * F[q, p])
                        + a2 * v[p] * v[q] * G[p, q]
                        - 2.0 * wd * Q[p, q]
                    )
                    new = Q[p, q] + dt * dq
                    Q[p, q] = new
                    Q[q, p] = new
                    if not abs(new) <= blowup:  # also catches NaN
                        bad = True
                for q in range(Mt):
                    new = M[p, q] + dt * (a1 * v[p] * F[p, K + q] - wd * M[p, q])
                    M[p, q] = new
                    if not abs(new) <= blowup:
                        bad = True
            if move_v:
                for p in range(K):
                    v[p] += dt * (av * h[p] - wv * v[p])
                    if not abs(v[p]) <= blowup:
                        bad = True
            if bad:
                return times[j - 1] + (step + 1) * dt
        out_Q[j] = Q
        out_M[j] = M
        out_v[j] = v
        out_risk[j] = risk_overlaps(code, Q, M, P, v, vs)
    return -1.0
