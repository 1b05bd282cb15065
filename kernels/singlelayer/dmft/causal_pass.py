"""One causal forward pass of the discrete-time DMFT (docs/dmft.md §3, §4.2) on one block of trajectories.

:func:`solve_block` is the Python loop over *time steps* (never over
trajectories); each step calls the numba functions of :mod:`kernels.singlelayer.dmft.numerics`
and :mod:`kernels.singlelayer.dmft.process`. Order of operations at step ``k`` (every
quantity uses only steps ``<= k``, which is what makes one pass exact):

1. ``r[k] = m[k] u + rho[k]``; losses and derivatives; sample means.
2. ``nu[k]`` (spherical multiplier), ``nut[k]``, ``mu[k]``.
3. Row ``k`` of ``M_C`` and of ``M_R`` (adjoint response solve).
4. Noise ``xi[k]`` from the Gram-Schmidt factor of the ``f`` rows (a Cholesky factor of ``M_C``).
5. ``rho[k+1]``, ``m[k+1]``; selection chain ``s[k+1]``.

Global iterations (docs/dmft.md §4.4, "optional refinement"). Given the previous
iterate ``prev`` and a weight ``w``, every row a step uses is the damped mix
``(1 - w) prev + w new`` of the previous iterate's row and the estimate from
this pass's fresh trajectories: the sample means (``nu-tilde``, ``mu``, the
multiplier, the losses), ``M_R``, and ``M_C`` through its factor (the stacked
Gram-Schmidt of :func:`kernels.singlelayer.dmft.numerics.qr_row`). The pass stays causal, so
iterating averages the Monte-Carlo noise of the kernels over iterations while
each trajectory is driven by the averaged kernels.

Memory per block (bytes): ``8 (K+1) (3 n + 2 n_resp)`` for the per-trajectory
histories ``rho``, the orthonormalised ``f = s_hat l'`` rows, the fixed normals
``z``, ``a = s_hat l''`` and the adjoint workspace, plus ``8 (K+1)^2 x 6`` for
``M_C``, ``M_R`` (and its transpose), the factor ``R`` and the weight-side
resolvent and correlation.
:func:`block_memory` states it before anything is allocated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kernels.singlelayer.dmft.numerics import (
    advance,
    orthonormalize_row,
    qr_row,
    response_row,
    weight_commit,
    weight_prepare,
)
from kernels.singlelayer.dmft.process import (
    N_SUMS,
    S_A,
    S_BLOSS,
    S_ERR,
    S_LOSS,
    S_RF,
    S_UF,
    evaluate,
    update_selection,
)


@dataclass(frozen=True)
class Problem:
    """Everything one forward pass needs, in the units of docs/dmft.md §2-§3.

    ``sample(gen, g)`` returns ``(u, y)`` for ``n`` trajectories given a
    standard normal vector ``g`` (the Gaussian part of ``u``);
    ``sig2`` is the variance of the data orthogonal to the special direction
    (1 for teacher-student, ``Delta`` for the Gaussian mixture).
    """

    alpha: float
    sig2: float
    ridge: float
    spherical: str  # "none", "lagrange" or "projection"
    temperature: float
    eta: float
    n_steps: int
    shat: float  # s_hat = shat * s   (1/b with batch normalisation, else 1)
    b: float
    p01: float  # P(s: 0 -> 1) per step
    p10: float  # P(s: 1 -> 0) per step
    loss_code: int
    model_code: int
    loss_scale: float
    err_kind: int
    m0: float
    q0: float
    sample: Callable[[np.random.Generator, np.ndarray], tuple[np.ndarray, np.ndarray]]
    n_traj: int
    n_resp: int
    moment_matching: bool = True
    # flow limit only: divide each trajectory's step by 1 + eta sig2 max(s_hat l'', 0)
    semi_implicit: bool = False


def block_memory(p: Problem, iterating: bool = False) -> int:
    """Peak bytes of the arrays allocated by :func:`solve_block` (``iterating``: with ``prev``)."""
    k1 = p.n_steps + 1
    per_step = 2 if p.temperature > 0 else 1
    stacked = 8 * k1 * (k1 + p.n_traj) + 8 * 5 * k1 * k1 if iterating else 0  # + prev's kernels
    resp = (3 if p.semi_implicit else 2) * p.n_resp  # a, the adjoint (and 1/D)
    return 8 * k1 * ((2 + per_step) * p.n_traj + resp) + 8 * 3 * p.n_traj + 8 * 6 * k1 * k1 + stacked


def solve_block(
    p: Problem,
    gens: dict[str, np.random.Generator],
    prev: dict[str, np.ndarray] | None = None,
    weight: float = 1.0,
) -> dict[str, np.ndarray]:
    """Run one causal pass; returns per-step arrays (length ``K+1``) and ``M_C``, ``M_R``.

    ``gens`` holds the generators of the streams ``init``, ``noise``, ``batch``
    and ``langevin`` for this block. With ``prev`` (the result of the previous
    pass of this block) every kernel row used is ``(1 - weight) prev + weight new``.
    """
    n, nr, K, eta = p.n_traj, p.n_resp, p.n_steps, p.eta
    k1 = K + 1
    # normals: row 0 constant, row 1 the Gaussian part of u, row 2 rho(0), rows 3.. noise z[k]
    # with Langevin noise, its normals zeta[k] interleave with z[k] (rows 3 + 2k and 4 + 2k)
    per_step = 2 if p.temperature > 0 else 1
    basis = np.empty((per_step * k1 + 3, n))
    basis[0] = 1.0
    basis[1:3] = gens["init"].standard_normal((2, n))
    n_orth = min(per_step * k1 + 3, n // 2) if p.moment_matching else 0
    for j in range(1, min(3, n_orth)):
        orthonormalize_row(basis, j)
    Z = basis[3::per_step]
    u, y = p.sample(gens["init"], basis[1])
    u = np.ascontiguousarray(u, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    rho = np.empty((k1, n))
    rho[0] = np.sqrt(max(p.sig2 * (p.q0 - p.m0**2), 0.0)) * basis[2]
    F = np.empty((k1, n))
    A = np.empty((k1, nr))
    Y = np.empty((k1, nr))  # adjoint workspace
    MC = np.zeros((k1, k1))
    MR = np.zeros((k1, k1))
    MRT = np.zeros((k1, k1))
    R = np.zeros((k1, k1))  # Gram-Schmidt factor of the f rows: M_C = a4 R R^T
    res = np.zeros((k1, k1))  # weight-side resolvent
    ct = np.zeros((k1, k1))  # weight-side correlation E[theta theta]
    res[0, 0] = 1.0
    ct[0, 0] = p.sig2 * (p.q0 - p.m0**2)
    q = np.zeros(k1)
    s = (gens["batch"].random(n) < p.b).astype(np.float64)
    m = np.zeros(k1)
    nu = np.zeros(k1)
    nut = np.zeros(k1)
    loss = np.zeros(k1)
    err = np.zeros(k1)
    batch_loss = np.zeros(k1)
    m[0] = p.m0
    row = np.zeros(k1)
    sums_used = np.zeros((k1, N_SUMS))
    stiff = eta * p.sig2 if p.semi_implicit else 0.0
    dinv = np.ones(n)
    DINV = np.empty((k1, nr)) if p.semi_implicit else None
    w = 1.0 if prev is None else weight
    if prev is not None:
        # rows [sqrt((1 - w) n) R_prev[k], sqrt(w) f[k]]: their Gram matrix / n is the damped M_C / a4
        stacked = np.zeros((k1, k1 + n))
        stacked[:, :k1] = np.sqrt((1.0 - w) * n) * prev["noise_factor"]
    a4 = p.alpha * p.sig2 * p.sig2
    sqa4 = np.sqrt(a4)
    lang = np.sqrt(2.0 * p.temperature * p.sig2 * eta)
    for k in range(k1):
        sums = (
            evaluate(
                k, m[k], u, y, rho, s, p.shat, p.loss_code, p.model_code, p.loss_scale, p.err_kind, F, A, nr,
                stiff, dinv,
            )
            / n
        )
        if prev is not None:
            sums = (1.0 - w) * prev["sums"][k] + w * sums
        sums_used[k] = sums
        loss[k], err[k], batch_loss[k] = sums[S_LOSS], sums[S_ERR], sums[S_BLOSS]
        q[k] = m[k] ** 2 + ct[k, k] / p.sig2
        if p.spherical != "none":
            # d/dt Q = -2 (ridge + nu) Q - 2 alpha E[s_hat r l'] + 2 T = 0 (docs/dmft.md §2), at the current Q
            nu[k] = (p.temperature - p.alpha * sums[S_RF]) / q[k] - p.ridge
            if p.spherical == "projection":
                # plus the pull back to the sphere that "step, then rescale to Q = q0" applies
                # (first order in eta; refined below to Q(k+1) = q0 exactly): without it the
                # discrete multiplier lets Q drift, and on phase retrieval the drift feeds back
                # through nu into a blow-up
                nu[k] += (q[k] - p.q0) / (2.0 * eta * q[k])
        nut[k] = p.ridge + nu[k] + p.alpha * p.sig2 * sums[S_A]
        fk = F[k].copy()
        if prev is None:
            R[k, : k + 1] = qr_row(F, k)  # F[k] becomes the k-th orthonormal direction
        else:
            stacked[k, k1:] = np.sqrt(w) * fk
            R[k, : k + 1] = qr_row(stacked, k, n)
        MC[k, : k + 1] = a4 * (R[: k + 1, : k + 1] @ R[k, : k + 1])
        MC[: k + 1, k] = MC[k, : k + 1]
        if k > 0:
            response_row(k, A, nut, MRT, eta, p.sig2, Y, row, DINV)
            MR[k, :k] = a4 * row[:k]
            if prev is not None:
                MR[k, :k] = (1.0 - w) * prev["M_R"][k, :k] + w * MR[k, :k]
            MRT[:k, k] = MR[k, :k]
        if k == K:
            break
        prep = weight_prepare(k, MR, MC, res, ct, eta)
        if p.spherical == "projection":
            # refine nu[k] so that the weight-side Q(k+1) equals q0 exactly (a quadratic in nu[k])
            base = nut[k] - nu[k]
            nu[k] = _project_multiplier(p, nu[k], base, m[k], sums[S_UF], prep)
            nut[k] = base + nu[k]
        row_z = 3 + per_step * k
        basis[row_z] = gens["noise"].standard_normal(n)
        if row_z < n_orth:
            orthonormalize_row(basis, row_z)
        zeta = Z[k]
        if p.temperature > 0:
            basis[row_z + 1] = gens["langevin"].standard_normal(n)
            if row_z + 1 < n_orth:
                orthonormalize_row(basis, row_z + 1)
            zeta = basis[row_z + 1]
        if DINV is not None:
            DINV[k] = dinv[:nr]
        advance(k, rho, fk, Z, sqa4 * R[k], MR[k], nut[k], eta, p.sig2, lang, zeta, p.semi_implicit, dinv)
        m[k + 1] = m[k] - eta * ((p.ridge + nu[k]) * m[k] + p.alpha * sums[S_UF])
        weight_commit(k, 1.0 - eta * nut[k], prep, res, ct, lang * lang)
        if p.b < 1.0:
            update_selection(s, gens["batch"].random(n), p.p01, p.p10)
        if not np.isfinite(m[k + 1]) or not np.all(np.isfinite(rho[k + 1, :CHECK])):
            raise FloatingPointError(f"effective process diverged at step {k + 1} (t = {(k + 1) * eta:g})")
    return {
        "m": m,
        "nu": nu,
        "nut": nut,
        "train_loss": loss,
        "train_error": err,
        "batch_loss": batch_loss,
        "M_C": MC,
        "M_R": MR,
        "noise_factor": R,
        "sums": sums_used,
        "Q": q,
        "C_theta": ct,
        "R": np.concatenate([res[:, 1:], np.zeros((k1, 1))], axis=1),
    }


def _project_multiplier(p: Problem, nu0: float, base: float, mk: float, uf: float, prep) -> float:
    """``nu[k]`` with ``Q(k+1) = q0`` on the weight side: the real root nearest ``nu0``.

    ``m(k+1) = a + b nu`` and the weight-side diagonal is quadratic in
    ``g = 1 - eta (base + nu)`` (:func:`kernels.singlelayer.dmft.numerics.weight_prepare`), so
    ``Q(k+1)`` is a quadratic in ``nu``. Without a real root (never seen) keep ``nu0``.
    """
    eta = p.eta
    c2, c1, c0 = prep[4]
    c0 = c0 + 2.0 * p.temperature * p.sig2 * eta
    g0 = 1.0 - eta * base
    a = mk - eta * (p.ridge * mk + p.alpha * uf)
    b = -eta * mk
    qa = b * b + c2 * eta * eta / p.sig2
    qb = 2.0 * a * b - (2.0 * c2 * g0 + c1) * eta / p.sig2
    qc = a * a + ((c2 * g0 + c1) * g0 + c0) / p.sig2 - p.q0
    disc = qb * qb - 4.0 * qa * qc
    if qa == 0.0 or disc < 0.0 or not np.isfinite(disc):
        return nu0
    root = np.sqrt(disc)
    roots = ((-qb + root) / (2.0 * qa), (-qb - root) / (2.0 * qa))
    return min(roots, key=lambda r: abs(r - nu0))


CHECK = 256  # trajectories checked for finiteness each step (a blow-up spreads through the kernels)
__all__ = ["N_SUMS", "Problem", "block_memory", "solve_block"]
