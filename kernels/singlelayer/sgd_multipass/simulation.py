"""Finite-N multi-pass GD / SGD / persistent SGD of a single-layer model on a fixed data set.

The simulation counterpart of the `dmft` kernel (docs/dmft.md
§1): ``n = alpha d`` samples drawn once, then the update of §1.3,

    w <- w - lr [ (ridge + nu) w + sum_mu s_hat_mu l'(y_mu, r_mu) x_mu / sqrt(d) ]
           + sqrt(2 temperature lr) zeta,

with the selection chain ``s`` of §1.3, followed by a projection onto
``|w|^2 = q0 d`` if ``spherical = "projection"``. ``nu = 0`` unless
``spherical = "lagrange"``, where ``ridge + nu = (temperature - w.g / d) / Q`` keeps
``Q`` constant in continuous time (the form the DMFT uses; in discrete time ``Q``
drifts at O(lr)). Definitions of the data models, losses, labels and errors are
those of :mod:`kernels.singlelayer.model`. Time is ``t = step * lr``.

Numerics
--------
One step costs one pass over the rows of ``X`` that are in the batch: for each
selected sample the row (contiguous, float64) is read once for ``r = x.w`` and
reused from L1 cache for ``g += c x``. For GD this is the memory traffic of one
of the two BLAS matvecs ``X w`` and ``X^T c``; for SGD at batch fraction ``b``
it is ``b`` times that. Training observables need all ``r`` and are computed only
at the saved steps.

Random numbers come from :func:`kernels.base.rng` streams ``"teacher"``,
``"data"``, ``"init"``, ``"batches"`` (selection chain) and ``"langevin"``,
drawn in blocks of steps outside the jitted loop (no numba RNG), so a point is
bit-reproducible from ``(params, seed)``.

Two-time functions (``two_time = True``)
----------------------------------------
``C(t, t') = w(t).w(t') / d``. ``R(t, t') = (1/d) sum_j dw_j(t)/dH_j(t')`` is
measured by a small field: for every saved ``t'`` a replica receives the kick
``w += response_field * h`` (``h_j = +-1``) at ``t'`` and then shares data,
batches and Langevin noise with the unperturbed run (common random numbers), so
``R(t, t') = h.(w_rep(t) - w(t)) / (response_field d)`` for ``t >= t'`` (0 before;
``R(t', t') = 1``). Replicas share each row read, so the cost grows with the number
of active replicas in arithmetic, not in memory traffic.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels.base import NumericalFailure, rng
from kernels.singlelayer.losses import LOSS_CODES
from kernels.singlelayer.model import (
    DIVERGED,
    MODEL_CODES,
    SingleLayerParams,
    draw_clusters,
    error_kind,
    labels,
    pointwise,
    sample_error,
    sample_weight,
    selection_probabilities,
    test_error,
)
from kernels.timegrid import save_steps, saved_times

SPHERE_NONE, SPHERE_PROJECTION, SPHERE_LAGRANGE = 0, 1, 2
SPHERE_CODES = {"none": SPHERE_NONE, "projection": SPHERE_PROJECTION, "lagrange": SPHERE_LAGRANGE}


# random numbers drawn per block of steps: at most this many doubles per stream
_BLOCK_DOUBLES = 1 << 20


@njit(cache=True, fastmath=True)
def advance(
    n_steps,
    X,
    y,
    W,
    n_active,
    s,
    uniforms,
    langevin,
    p_stay,
    p_enter,
    s_hat,
    lr,
    ridge,
    temperature,
    sphere,
    q_sphere,
    loss,
    model,
    scale,
    G,
):
    """Advance the replicas ``W[:n_active]`` by ``n_steps`` steps in place.

    Parameters
    ----------
    n_steps
        Number of steps.
    X, y
        Data ``(n, d)`` C-contiguous and labels ``(n,)``.
    W
        Weights ``(replicas, d)``; row 0 is the unperturbed run.
    s
        Selection state ``(n,)`` in {0, 1}, updated in place.
    uniforms
        ``(steps, n)`` uniforms for the chain, or ``(0, 0)`` for GD (always selected).
    langevin
        ``(steps, d)`` standard normals, or ``(0, 0)`` at zero temperature.
    p_stay, p_enter
        ``P(1 -> 1)`` and ``P(0 -> 1)`` of the chain.
    G
        Scratch ``(replicas, d)`` for the gradients.

    Returns
    -------
    bool
        False if a weight became non-finite.
    """
    n, d = X.shape
    inv_sqrt_d = 1.0 / math.sqrt(d)
    noise_amp = math.sqrt(2.0 * temperature * lr)
    wg = np.zeros(n_active)
    for k in range(n_steps):
        G[:n_active, :] = 0.0
        wg[:] = 0.0
        for mu in range(n):
            if s[mu] == 0.0:
                continue
            for a in range(n_active):
                acc = 0.0
                for j in range(d):
                    acc += X[mu, j] * W[a, j]
                r = acc * inv_sqrt_d
                _, d1, _ = pointwise(loss, model, y[mu], r, scale)
                c = s_hat * d1
                wg[a] += c * r
                c *= inv_sqrt_d
                for j in range(d):
                    G[a, j] += c * X[mu, j]
        for a in range(n_active):
            decay = ridge
            if sphere == SPHERE_LAGRANGE:
                qq = 0.0
                for j in range(d):
                    qq += W[a, j] * W[a, j]
                decay = (temperature - wg[a] / d) / (qq / d)
            shrink = 1.0 - lr * decay
            for j in range(d):
                W[a, j] = shrink * W[a, j] - lr * G[a, j]
            if noise_amp > 0.0:
                for j in range(d):
                    W[a, j] += noise_amp * langevin[k, j]
            if sphere == SPHERE_PROJECTION:
                qq = 0.0
                for j in range(d):
                    qq += W[a, j] * W[a, j]
                f = math.sqrt(q_sphere * d / qq)
                for j in range(d):
                    W[a, j] *= f
            qq = 0.0
            for j in range(d):
                qq += W[a, j] * W[a, j]
            # Q beyond DIVERGED (or NaN) has no meaningful dynamics left: report failure
            if not qq < DIVERGED * d:
                return False
        if uniforms.shape[1] > 0:
            update_selection(s, uniforms[k], p_stay, p_enter)
    return True


@njit(cache=True)
def update_selection(s, uniforms, p_stay, p_enter):
    """One step of the per-sample chain (docs/singlelayer.md §4), in place.

    ``s`` becomes 1 with probability ``p_stay`` if it is 1 and ``p_enter`` if it
    is 0. With ``p_stay = p_enter = b`` (``sgd``, or ``psgd`` with ``tau = lr/b``)
    the same uniforms give the same i.i.d. Bernoulli(b) batch.
    """
    for mu in range(s.shape[0]):
        threshold = p_stay if s[mu] != 0.0 else p_enter
        s[mu] = 1.0 if uniforms[mu] < threshold else 0.0


def selection_path(p: SingleLayerParams, n: int, n_steps: int, seed) -> np.ndarray:
    """``(n_steps + 1, n)`` selection states as the simulator draws them (for tests)."""
    p_enter, p_leave = selection_probabilities(p)
    batches = rng(seed, "batches")
    path = np.empty((n_steps + 1, n))
    path[0] = np.ones(n) if p.algorithm == "gd" else (batches.random(n) < p.b)
    for k in range(n_steps):
        path[k + 1] = path[k]
        if p.algorithm != "gd":
            update_selection(path[k + 1], batches.random(n), 1.0 - p_leave, p_enter)
    return path


@njit(cache=True, fastmath=True)
def observe(X, y, w, loss, model, scale, kind):
    """Training-set mean loss and mean per-sample error at weights ``w``."""
    n, d = X.shape
    inv_sqrt_d = 1.0 / math.sqrt(d)
    total_loss = 0.0
    total_err = 0.0
    for mu in range(n):
        acc = 0.0
        for j in range(d):
            acc += X[mu, j] * w[j]
        r = acc * inv_sqrt_d
        ell, _, _ = pointwise(loss, model, y[mu], r, scale)
        total_loss += ell
        total_err += sample_error(kind, model, y[mu], r)
    return total_loss / n, total_err / n


def teacher_seed_of(seed, teacher_seed: int):
    """The seed of the ``"teacher"`` stream: the point's, or ``teacher_seed`` in its place.

    ``teacher_seed < 0`` keeps the point's seed. Otherwise ``teacher_seed`` replaces the
    point's own seed, the last entry of ``(grid_seed, point_seed)`` (or the whole of an
    integer seed): every point then draws the teacher that the point of seed
    ``teacher_seed`` draws by default, and the grid seed still sets it apart from other
    grids (docs/singlelayer.md §11.1).
    """
    if teacher_seed < 0:
        return seed
    if np.isscalar(seed):
        return int(teacher_seed)
    return (*(int(s) for s in seed[:-1]), int(teacher_seed))


def draw_problem(p: SingleLayerParams, d: int, seed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Special direction ``v`` (``|v|^2 = d``), data ``X`` ``(n, d)`` and labels ``y``.

    ``v`` comes from the ``"teacher"`` stream of :func:`teacher_seed_of` (``p.teacher_seed``
    where ``p`` has that field, else the point's seed); ``X`` and the labels from ``"data"``.
    """
    n = max(1, int(round(p.alpha * d)))
    v = rng(teacher_seed_of(seed, getattr(p, "teacher_seed", -1)), "teacher").standard_normal(d)
    v *= math.sqrt(d) / np.linalg.norm(v)
    gen = rng(seed, "data")
    if p.model == "glm":
        X = gen.standard_normal((n, d))
        u = X @ v / math.sqrt(d)
        return v, X, labels(p, u, None, gen)
    c = draw_clusters(p, gen, n)
    X = gen.standard_normal((n, d))
    X *= math.sqrt(p.noise)
    X += np.outer(c, v / math.sqrt(d))
    return v, X, labels(p, None, c, gen)


def initial_weights(p: SingleLayerParams, v: np.ndarray, seed) -> np.ndarray:
    """``w(0)``: warm start with ``m = m0``, ``Q = q0`` exactly, or random with ``Q = q0``."""
    d = len(v)
    z = rng(seed, "init").standard_normal(d)
    if p.init == "random":
        return z * math.sqrt(p.q0 * d) / np.linalg.norm(z)
    z -= (z @ v / d) * v
    z *= math.sqrt((p.q0 - p.m0**2) * d) / max(np.linalg.norm(z), 1e-300)
    return p.m0 * v + z


def simulate(
    p: SingleLayerParams,
    d: int,
    seed,
    two_time: bool = False,
    response_field: float = 1e-4,
    state: dict | None = None,
):
    """Run one multi-pass trajectory; returns the outputs on the saved grid.

    Parameters
    ----------
    p
        Shared single-layer parameters (any subclass).
    d
        Dimension.
    seed
        Point seed, used through :func:`kernels.base.rng`.
    two_time, response_field
        Also measure ``C`` and ``R`` (see the module docstring).
    state
        If given, receives the final weights ``"w"`` and the special direction ``"v"``.

    Returns
    -------
    dict
        ``m, Q, train_loss, train_error, test_error`` of shape ``(n_times,)`` and,
        with ``two_time``, ``C`` and ``R`` of shape ``(n_times, n_times)``.

    Raises
    ------
    NumericalFailure
        If the weights diverge; carries the outputs up to the divergence (NaN after).
    """
    times = saved_times(p)
    steps = save_steps(p, p.lr)
    v, X, y = draw_problem(p, d, seed)
    n = X.shape[0]
    w0 = initial_weights(p, v, seed)
    n_rep = 1 + (len(times) if two_time else 0)
    W = np.zeros((n_rep, d))
    W[0] = w0
    G = np.empty_like(W)
    h = np.where(rng(seed, "response").random(d) < 0.5, -1.0, 1.0) if two_time else None

    p_enter, p_leave = selection_probabilities(p)
    batches = rng(seed, "batches")
    if p.algorithm == "gd":
        s = np.ones(n)
    else:
        s = (batches.random(n) < p.b).astype(np.float64)
    langevin = rng(seed, "langevin")
    codes = (LOSS_CODES[p.loss], MODEL_CODES[p.model], float(p.loss_scale))
    kind = error_kind(p)
    sphere = SPHERE_CODES[p.spherical]
    empty = np.zeros((0, 0))

    n_t = len(times)
    out = {k: np.full(n_t, np.nan) for k in ("m", "Q", "train_loss", "train_error")}
    snapshots = np.full((n_t, d), np.nan) if two_time else None
    R = np.zeros((n_t, n_t)) if two_time else None
    block = max(1, _BLOCK_DOUBLES // max(n, d))
    step, n_active = 0, 1
    for i, target in enumerate(steps):
        while step < target:
            k = min(block, target - step)
            uniforms = batches.random((k, n)) if p.algorithm != "gd" else empty
            noise = langevin.standard_normal((k, d)) if p.temperature > 0 else empty
            ok = advance(
                k, X, y, W, n_active, s, uniforms, noise, 1.0 - p_leave, p_enter, sample_weight(p),
                p.lr, p.ridge, p.temperature, sphere, p.q0, *codes, G,
            )  # fmt: skip
            step += k
            if not ok:
                out["test_error"] = test_error(p, out["m"], out["Q"])
                raise NumericalFailure(f"weights diverged before t = {step * p.lr:g}", out)
        w = W[0]
        out["m"][i] = w @ v / d
        out["Q"][i] = w @ w / d
        out["train_loss"][i], out["train_error"][i] = observe(X, y, w, *codes, kind)
        if two_time:
            snapshots[i] = w
            R[i, : n_active - 1] = (W[1:n_active] - w) @ h / (response_field * d)
            if n_active < n_rep:
                W[n_active] = w + response_field * h
                R[i, n_active - 1] = 1.0
                n_active += 1
    out["test_error"] = test_error(p, out["m"], out["Q"])
    if state is not None:
        state.update(w=W[0].copy(), v=v)
    if two_time:
        out["C"] = snapshots @ snapshots.T / d
        out["R"] = R
    return out
