"""Finite-d GD / SGD / persistent SGD of K quadratic hidden units: over-parametrised phase retrieval.

The student is ``f(x) = (1/K) sum_k r_k^2`` with ``r_k = w_k . x / sqrt(d)``, i.e.
``f(x) = x^T S x / d`` with ``S = W^T W / K``; the teacher is ``y^2 = u^2`` with
``u = v . x / sqrt(d)`` (``teacher = "abs"``), and the loss is the ``phase`` loss
``loss_scale (y^2 - f)^2`` (docs/singlelayer.md §12). Each unit moves by the update of
the single-layer kernel with ``l'(r)`` replaced by ``2 r_k dl/df``:

    w_k <- w_k - lr [ (ridge + nu) w_k + sum_mu s_hat_mu dl/df_mu 2 r_k,mu x_mu / sqrt(d) ]
           + sqrt(2 temperature lr) zeta_k,

which is ``lr K`` times the gradient of ``sum_mu s_hat l(y, f) + (ridge / 2) tr S``, so
that ``S`` follows the same equation at every ``K`` (docs/singlelayer.md §12.1) and at
``K = 1`` this is the single-layer update of
:mod:`kernels.singlelayer.sgd_multipass.simulation` with the phase loss. Data, teacher,
selection chain, Langevin normals (one per weight), projection and Lagrange multiplier
(both on ``Q = tr S / d``) come from the same streams and rules as there.

Numerics
--------
One step is two BLAS products over the selected rows ``X_b`` of the data:
``R = X_b W^T`` and ``G = (c R)^T X_b`` (``2 n_b d K`` multiply-adds each), plus one
copy of the selected rows for SGD. Observables at the saved steps use the ``K x K`` or
``d x d`` Gram matrix of ``W``, whichever is smaller. The products are small and many,
so they run on one BLAS thread (:mod:`kernels._blas`): with threaded OpenBLAS on the
shared 2-core machine (load 6.7) a run at d = 60, K = 60, n = 180, 2500 steps took 9 s
instead of 0.43 s.
"""

from __future__ import annotations

import math

import numpy as np

from kernels._blas import single_threaded_blas
from kernels.base import NumericalFailure, rng
from kernels.singlelayer.model import DIVERGED, SingleLayerParams, sample_weight, selection_probabilities
from kernels.singlelayer.sgd_multipass.simulation import (
    _BLOCK_DOUBLES,
    SPHERE_CODES,
    SPHERE_LAGRANGE,
    SPHERE_PROJECTION,
    draw_problem,
    update_selection,
)
from kernels.timegrid import save_steps, saved_times


def committee_weights(p: SingleLayerParams, v: np.ndarray, hidden: int, seed) -> np.ndarray:
    """``W(0)`` ``(hidden, d)``: each unit as the single-layer start (``warm`` or ``random``).

    The ``"init"`` stream is read row by row, so unit 0 is the single-layer ``w(0)``.
    """
    d = len(v)
    Z = rng(seed, "init").standard_normal((hidden, d))
    if p.init == "random":
        return Z * (math.sqrt(p.q0 * d) / np.linalg.norm(Z, axis=1))[:, None]
    Z -= np.outer(Z @ v / d, v)
    Z *= (math.sqrt((p.q0 - p.m0**2) * d) / np.maximum(np.linalg.norm(Z, axis=1), 1e-300))[:, None]
    return p.m0 * v + Z


def committee_gradient(
    W: np.ndarray, X: np.ndarray, y2: np.ndarray, weight: float, scale: float
) -> tuple[np.ndarray, float]:
    """The update direction ``G`` (``K x d``) of the selected rows ``X`` and ``sum_k w_k.g_k / K``.

    ``G_k = sum_mu weight dl/df_mu 2 r_k,mu x_mu / sqrt(d)`` with
    ``dl/df = -2 scale (y^2 - f)``: ``K`` times the gradient of
    ``weight sum_mu scale (y_mu^2 - f_mu)^2`` in ``w_k`` (tested against finite differences).
    """
    K, d = W.shape
    inv_sqrt_d = 1.0 / math.sqrt(d)
    R = X @ W.T
    R *= inv_sqrt_d
    f = np.einsum("nk,nk->n", R, R) / K
    c = (-2.0 * scale * weight) * (y2 - f)
    G = (c[:, None] * R).T @ X
    G *= 2.0 * inv_sqrt_d
    return G, 2.0 * float(c @ f)


def committee_observables(
    W: np.ndarray, v: np.ndarray, X: np.ndarray, y2: np.ndarray, scale: float
) -> dict[str, float]:
    """Overlaps, training loss and error, and the closed-form test error of ``S = W^T W / K``.

    With ``A = S / d`` and ``A* = v v^T / d`` (trace 1) and ``D = A* - A``, a fresh
    ``x ~ N(0, I)`` gives ``E[(u^2 - f)^2] = (tr D)^2 + 2 |D|_F^2``, so
    ``test_error = ((1 - Q)^2 + 2 |D|_F^2) / 4`` exactly (docs/singlelayer.md §12.2),
    with ``|D|_F^2 = 1 - 2 m^2 + |A|_F^2`` and ``matrix_error = |D|_F = |S - S*|_F / |S*|_F``.
    """
    K, d = W.shape
    R = X @ W.T / math.sqrt(d)
    f = np.einsum("nk,nk->n", R, R) / K
    diff = y2 - f
    Wv = W @ v
    m2 = float(Wv @ Wv) / (K * d * d)
    gram = W @ W.T if K <= d else W.T @ W  # same Frobenius norm; the smaller one
    frob2 = float(np.einsum("ij,ij->", gram, gram)) / (K * d) ** 2
    Q = float(np.einsum("ij,ij->", W, W)) / (K * d)
    # |D|^2 is a difference of O(1) terms: its round-off (~1e-16) floors matrix_error at ~1e-8
    D2 = max(1.0 - 2.0 * m2 + frob2, 0.0)
    return {
        "m": math.sqrt(m2),
        "Q": Q,
        "train_loss": scale * float(diff @ diff) / len(y2),
        "train_error": 0.25 * float(diff @ diff) / len(y2),
        "test_error": 0.25 * ((1.0 - Q) ** 2 + 2.0 * D2),
        "matrix_error": math.sqrt(D2),
    }


def simulate_committee(
    p: SingleLayerParams,
    d: int,
    hidden: int,
    seed,
    matrix_error: bool = True,
    state: dict | None = None,
):
    """Run one trajectory of the ``hidden``-unit quadratic student; outputs on the saved grid.

    Parameters
    ----------
    p
        Shared single-layer parameters (``glm``, ``teacher = "abs"``, ``loss = "phase"``).
    d, hidden
        Dimension and number of hidden units ``K``.
    seed
        Point seed, used through :func:`kernels.base.rng`.
    matrix_error
        Also return ``matrix_error`` (on failure too).
    state
        If given, receives the final weights ``"W"`` and the special direction ``"v"``.

    Returns
    -------
    dict
        ``m, Q, train_loss, train_error, test_error`` (and ``matrix_error``), each ``(n_times,)``;
        ``m = sqrt(v^T S v) / d`` is the root mean square of the units' overlaps
        ``w_k . v / d`` and ``Q = tr S / d`` their mean ``|w_k|^2 / d``.

    Raises
    ------
    NumericalFailure
        If the weights diverge; carries the outputs up to the divergence (NaN after).
    """
    with single_threaded_blas():
        return _simulate(p, d, hidden, seed, matrix_error, state)


def _simulate(p: SingleLayerParams, d: int, hidden: int, seed, matrix_error: bool, state: dict | None):
    times = saved_times(p)
    steps = save_steps(p, p.lr)
    v, X, y = draw_problem(p, d, seed)
    y2 = y * y
    n = X.shape[0]
    W = committee_weights(p, v, hidden, seed)
    scale, weight = float(p.loss_scale), sample_weight(p)
    sphere = SPHERE_CODES[p.spherical]

    p_enter, p_leave = selection_probabilities(p)
    batches = rng(seed, "batches")
    gd = p.algorithm == "gd"
    s = np.ones(n) if gd else (batches.random(n) < p.b).astype(np.float64)
    langevin = rng(seed, "langevin")
    noise_amp = math.sqrt(2.0 * p.temperature * p.lr)

    names = ("m", "Q", "train_loss", "train_error", "test_error") + (
        ("matrix_error",) if matrix_error else ()
    )
    out = {k: np.full(len(times), np.nan) for k in names}
    block = max(1, _BLOCK_DOUBLES // max(n, hidden * d))
    step = 0
    for i, target in enumerate(steps):
        while step < target:
            k_block = min(block, target - step)
            uniforms = None if gd else batches.random((k_block, n))
            noise = langevin.standard_normal((k_block, hidden, d)) if p.temperature > 0 else None
            for k in range(k_block):
                rows = np.flatnonzero(s)
                Xb, y2b = (X, y2) if gd else (X[rows], y2[rows])
                G, wg = committee_gradient(W, Xb, y2b, weight, scale)
                decay = p.ridge
                if sphere == SPHERE_LAGRANGE:
                    decay = (p.temperature - wg / d) / (np.einsum("ij,ij->", W, W) / (hidden * d))
                W *= 1.0 - p.lr * decay
                W -= p.lr * G
                if noise is not None:
                    W += noise_amp * noise[k]
                if sphere == SPHERE_PROJECTION:
                    W *= math.sqrt(p.q0 * hidden * d / np.einsum("ij,ij->", W, W))
                step += 1
                # Q beyond DIVERGED (or NaN) has no meaningful dynamics left: report failure
                if not np.einsum("ij,ij->", W, W) < DIVERGED * hidden * d:
                    raise NumericalFailure(f"weights diverged before t = {step * p.lr:g}", out)
                if uniforms is not None:
                    update_selection(s, uniforms[k], 1.0 - p_leave, p_enter)
        observed = committee_observables(W, v, X, y2, scale)
        for name in names:
            out[name][i] = observed[name]
    if state is not None:
        state.update(W=W.copy(), v=v)
    return out
