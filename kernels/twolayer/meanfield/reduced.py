"""Reduced mean-field dynamics of the per-unit overlaps ``(m_j, q_perp_j)``.

Arnaboldi, Stephan, Krzakala & Loureiro (COLT 2023, arXiv:2302.05882) reduce the mean-field
flow of a wide two-layer network to the density of each unit's overlaps with the teacher,
``m_j = W* w_j / d`` in R^k, and of its squared norm orthogonal to the teacher subspace,
``q_perp_j = q_j - m_j P^{-1} m_j`` (docs/meanfield.md §4). If the initial particle law is
invariant under rotations that fix the teacher subspace (true for an isotropic Gaussian init),
the flow keeps it invariant, and every pair interaction depends on the orthogonal parts only
through the cosine ``Z`` of the angle between ``w_perp_j`` and ``w_perp_l``::

    Q_jl = m_j P^{-1} m_l + sqrt(q_perp_j q_perp_l) Z,
    Z ~ density prop. to (1 - z^2)^((d-k-3)/2) on [-1, 1]   (two independent uniform directions in R^(d-k)).

The density ``rho_t(m, q_perp)`` then obeys a closed continuity equation; we discretise it by
the particles' own ``(m_j, q_perp_j)`` and average **every** pair over Z, the self pair
included (§7.3 pitfall: treating the self pair exactly gives an O(1/p) bias; §7.4 caveat:
``cov(lambda_perp_j, lambda_l) = sqrt(q_perp_j q_perp_l) Z`` must be kept at finite d, dropping it
biases the risk by ~20% at d = 10). ``d -> infinity`` is the single node ``Z = 0``.

With ``I3`` of docs/twolayer.md §6 (arguments ``C11, C12, C13; C23, C33``), in flow time
``t = nu gamma / (p d)`` and ``a = a* = 1`` (the code carries general ``a``)::

    dm_jr/dt     = (1/k) sum_s I3(q_j, m_jr, m_js; P_rs, P_ss)
                 - (1/p) sum_l E_Z I3(q_j, m_jr, Q_jl; m_lr, q_l)
    dq_perp_j/dt = 2 [ (1/k) sum_r I3(q_j, q_perp_j, m_jr; 0, P_rr)
                     - (1/p) sum_l E_Z I3(q_j, q_perp_j, Q_jl; sqrt(q_perp_j q_perp_l) Z, q_l) ]

The Z-average uses Gauss-Jacobi quadrature with weight ``(1-z^2)^alpha``, ``alpha = (d-k-3)/2``;
the integrand is smooth (``L >= 1 + q_j + q_l``), so a dozen nodes reach double precision.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import roots_jacobi

from kernels.twolayer.meanfield.particles import TWO_OVER_PI


def angle_nodes(d: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) for the average over ``Z``.

    ``Z`` is the cosine between two independent uniform unit vectors in ``R^(d-k)``, with
    density proportional to ``(1-z^2)^((d-k-3)/2)``. ``d = 0`` means ``d -> infinity``
    (``Z = 0``); ``d - k = 1`` gives ``Z = +-1``.
    """
    if d == 0:
        return np.zeros(1), np.ones(1)
    dim = d - k
    if dim < 1:
        raise ValueError(f"the reduced dynamics needs d > k, got d={d}, k={k}")
    if dim == 1:
        return np.array([-1.0, 1.0]), np.array([0.5, 0.5])
    alpha = 0.5 * (dim - 3)
    z, w = roots_jacobi(n, alpha, alpha)
    return z, w / w.sum()


_jit = numba.njit(cache=True, fastmath=True, error_model="numpy")


@_jit
def reduced_velocity(m, qp, a, P, Pinv, a_star, z, wz, with_u, dm, dqp, ua):
    """Velocity of the reduced particles, in flow time.

    Parameters
    ----------
    m : (p, k) array
        Teacher overlaps ``m_jr``.
    qp : (p,) array
        Orthogonal norms ``q_perp_j``.
    a : (p,) array
        Second-layer weights.
    P, Pinv : (k, k) arrays
        Teacher Gram matrix ``W* W*^T / d`` and its inverse.
    a_star : (k,) array
        Teacher second layer.
    z, wz : arrays
        Angle nodes and weights (:func:`angle_nodes`).
    with_u : bool
        Also fill ``ua`` (costs an ``asin`` per pair and node).
    dm, dqp : arrays, output
        ``dm_jr/dt`` and ``dq_perp_j/dt``.
    ua : (p,) array, output
        ``(1/k) sum_r a*_r U_jr - (1/p) sum_l a_l E_Z U_jl`` with ``U = (2/pi) asin(.)``: the
        second-layer force, and (through ``a . ua``) the risk's student-student term.
    """
    p, k = m.shape
    nz = z.shape[0]
    mt = m @ Pinv
    q = np.empty(p)
    for j in range(p):
        s = qp[j]
        for r in range(k):
            s += mt[j, r] * m[j, r]
        q[j] = s
    base = np.empty(p)
    c = np.empty(p)
    dd = np.empty(p)
    e_r = np.empty(p)
    e_qr = np.empty(p)
    e_zr = np.empty(p)
    for j in range(p):
        dj = 1.0 + q[j]
        # teacher terms: exact, no angle average (the teacher lies in the reduced subspace)
        tq = 0.0
        tu = 0.0
        for r in range(k):
            tm = 0.0
            for s in range(k):
                rs = 1.0 / math.sqrt(dj * (1.0 + P[s, s]) - m[j, s] ** 2)
                tm += a_star[s] * (P[r, s] * dj - m[j, s] * m[j, r]) * rs
            dm[j, r] = tm / (k * dj)
            rr = 1.0 / math.sqrt(dj * (1.0 + P[r, r]) - m[j, r] ** 2)
            tq -= a_star[r] * m[j, r] * qp[j] * rr
            if with_u:
                tu += a_star[r] * math.asin(m[j, r] / math.sqrt(dj * (1.0 + P[r, r])))
        tq /= k * dj
        # student terms: every pair, the self pair included, averaged over Z. The node loop is
        # outside so that the inner loop runs over l and vectorises.
        for l in range(p):
            b = 0.0
            for r in range(k):
                b += mt[j, r] * m[l, r]
            base[l] = b
            c[l] = math.sqrt(qp[j] * qp[l])
            dd[l] = dj * (1.0 + q[l])
            e_r[l] = 0.0
            e_qr[l] = 0.0
            e_zr[l] = 0.0
        for n in range(nz):
            zn = z[n]
            wn = wz[n]
            for l in range(p):
                Q = base[l] + c[l] * zn
                r_ = wn / math.sqrt(dd[l] - Q * Q)
                e_r[l] += r_
                e_qr[l] += Q * r_
                e_zr[l] += zn * r_
        acc_s = 0.0
        acc_z = 0.0
        for l in range(p):
            acc_s += a[l] * e_qr[l]
            acc_z += a[l] * c[l] * e_zr[l]
        pref = TWO_OVER_PI * a[j]
        for r in range(k):
            acc_m = 0.0
            for l in range(p):
                acc_m += a[l] * e_r[l] * m[l, r]
            dm[j, r] = pref * (dm[j, r] - (acc_m - m[j, r] * acc_s / dj) / p)
        dqp[j] = 2.0 * pref * (tq - (acc_z - qp[j] * acc_s / dj) / p)
        if with_u:
            acc_u = 0.0
            for n in range(nz):
                for l in range(p):
                    Q = base[l] + c[l] * z[n]
                    acc_u += wz[n] * a[l] * math.asin(Q / math.sqrt(dd[l]))
            ua[j] = TWO_OVER_PI * (tu / k - acc_u / p)
