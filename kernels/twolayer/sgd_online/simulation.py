"""Finite-d one-pass SGD of two-layer networks: the simulation of the `ode` and `meanfield` kernels.

Model, update rule, committee conventions, (kappa, delta) scalings, time unit and
initial weights are those of :mod:`kernels.twolayer.model` (docs/twolayer.md §1, §7;
docs/ode.md §1):
one fresh Gaussian sample per step,

    e   = y - f(x),  y = sum_n v*_n g(w*_n.x / sqrt d) + sqrt(noise) zeta
    w_i <- (1 - weight_decay / steps_per_time) w_i + (lr_eff / sqrt d) v_i g'(lambda_i) e x
    v_i <- (1 - weight_decay / steps_per_time) v_i + (lr_v_eff / d) g(lambda_i) e

(second line, decay included, only with ``train_second_layer``), all from the same old
state. The
initial weights come from :func:`kernels.twolayer.model.draw_weights` (streams ``"teacher"``
and ``"init"``), so an `sgd` point and an `ode` point with the same seed start from the
same overlaps; the overlaps at ``t = 0`` are the first saved values.

Observables on the saved grid, in the ODE's time unit (:func:`kernels.twolayer.model.steps_at`):
``Q``, ``M``, ``P``, ``v`` and ``risk`` from the overlaps by the closed form of
:func:`kernels.twolayer.model.risk` (erf, ReLU, linear; label-noise floor excluded).
Optionally ``risk_test`` on a fixed test set of ``n_test`` noiseless samples (stream
``"test"``), and per-unit overlaps of the first ``save_particles`` units under the
`meanfield` kernel's names ``m``, ``q``, ``a`` (large K with ``committee = "mean"`` is the
mean-field regime).

Numerics: a numba loop over steps that draws each input ``x`` in place and updates ``W``
in place. The inputs and the label noise come from two xoshiro256+ generators whose
states are seeded from the streams ``"data"`` and ``"label_noise"`` of
:func:`kernels.base.rng`, turned into normals by the Marsaglia-Tsang ziggurat
(:func:`kernels.twolayer.sgd_online.normals.fill_normals`, ~7 ns per normal against ~25 ns
for numpy's generator on this machine class: at d = 1000 drawing ``x`` is most of a step). So a point is
bit-reproducible from ``(params, seed)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels.base import NumericalFailure, rng
from kernels.timegrid import saved_times
from kernels.twolayer.gaussian import FASTMATH, act, dact
from kernels.twolayer.model import (
    BLOWUP,
    TwoLayerParams,
    activation_code,
    draw_weights,
    learning_rates,
    overlaps,
    risk,
    steps_at,
    steps_per_time,
)
from kernels.twolayer.sgd_online.normals import ZIGGURAT, fill_normals, generator_state


@njit(cache=True, fastmath=FASTMATH)  # no no-NaN assumption: the finiteness check must stay
def online_steps(
    n_steps, W, v, Wt, vt, x_state, noise_state, noise_amp, code, step_w, train_v, step_v, decay, lam, x, zig
):
    """``n_steps`` one-pass SGD steps in place, one fresh sample per step.

    Parameters
    ----------
    n_steps
        Number of steps.
    W, v
        Student first layer ``(K, d)`` and second layer ``(K,)``, updated in place.
    Wt, vt
        Teacher ``(M, d)`` and ``(M,)``.
    x_state, noise_state
        xoshiro256+ states of the inputs and of the label noise (advanced in place).
    noise_amp
        ``sqrt(noise)``; 0 draws no label noise.
    code
        Activation code of both networks (:data:`kernels.twolayer.gaussian.ACTIVATION_CODES`).
    step_w
        ``lr_eff / sqrt(d)``.
    train_v, step_v
        Whether the second layer is trained (and decays), and ``lr_v_eff / d``.
    decay
        Weight decay per step, ``weight_decay / steps_per_time``.
    lam, x
        Scratch ``(K,)`` and ``(d,)``.
    zig
        :data:`ZIGGURAT` tables.

    Returns
    -------
    bool
        False if the error signal became non-finite.
    """
    K, d = W.shape
    M = Wt.shape[0]
    kn, wn, fn = zig
    inv_sqrt_d = 1.0 / math.sqrt(d)
    shrink = 1.0 - decay
    zeta = np.zeros(1)
    for _ in range(n_steps):
        fill_normals(x_state, x, kn, wn, fn)
        y = 0.0
        if noise_amp > 0.0:
            fill_normals(noise_state, zeta, kn, wn, fn)
            y = noise_amp * zeta[0]
        for n in range(M):
            acc = 0.0
            for j in range(d):
                acc += Wt[n, j] * x[j]
            y += vt[n] * act(code, acc * inv_sqrt_d)
        f = 0.0
        for i in range(K):
            acc = 0.0
            for j in range(d):
                acc += W[i, j] * x[j]
            lam[i] = acc * inv_sqrt_d
            f += v[i] * act(code, lam[i])
        e = y - f
        if not math.isfinite(e):
            return False
        for i in range(K):
            c = step_w * v[i] * dact(code, lam[i]) * e
            for j in range(d):
                W[i, j] = shrink * W[i, j] + c * x[j]
        if train_v:
            for i in range(K):
                v[i] = shrink * v[i] + step_v * act(code, lam[i]) * e
    return True


@njit(cache=True, fastmath=True)
def test_risk(W, v, Wt, vt, X, code):
    """``mean (f*(x) - f(x))^2 / 2`` over the rows of ``X`` (noiseless labels)."""
    K, d = W.shape
    M = Wt.shape[0]
    inv_sqrt_d = 1.0 / math.sqrt(d)
    total = 0.0
    for mu in range(X.shape[0]):
        diff = 0.0
        for n in range(M):
            acc = 0.0
            for j in range(d):
                acc += Wt[n, j] * X[mu, j]
            diff += vt[n] * act(code, acc * inv_sqrt_d)
        for i in range(K):
            acc = 0.0
            for j in range(d):
                acc += W[i, j] * X[mu, j]
            diff -= v[i] * act(code, acc * inv_sqrt_d)
        total += 0.5 * diff * diff
    return total / X.shape[0]


test_risk.__test__ = False  # not a pytest test despite the name


def run_steps(p: TwoLayerParams, W, v, Wt, vt, n_steps: int, x_state, noise_state, lam, x) -> bool:
    """Advance ``(W, v)`` in place by ``n_steps`` with the conventions of ``p``."""
    lr_w, lr_v = learning_rates(p)
    d = W.shape[1]
    step_w = lr_w / math.sqrt(d)
    step_v = lr_v / d
    decay = p.weight_decay / steps_per_time(p)
    return online_steps(
        n_steps, W, v, Wt, vt, x_state, noise_state, math.sqrt(p.noise), activation_code(p),
        step_w, p.train_second_layer, step_v, decay, lam, x, ZIGGURAT,
    )  # fmt: skip


def simulate(p: TwoLayerParams, seed) -> dict[str, np.ndarray]:
    """Run one online trajectory; returns the outputs on the saved grid.

    Raises
    ------
    NumericalFailure
        If the weights diverge; carries the outputs up to then (NaN after).
    """
    times = saved_times(p)
    steps = steps_at(p, times)
    W, Wt, v, vt = draw_weights(p, seed)
    W = np.ascontiguousarray(W, dtype=np.float64)
    Wt = np.ascontiguousarray(Wt, dtype=np.float64)
    v = np.array(v, dtype=np.float64)
    vt = np.ascontiguousarray(vt, dtype=np.float64)
    x_state = generator_state(rng(seed, "data"))
    noise_state = generator_state(rng(seed, "label_noise"))
    x = np.empty(p.d)
    X_test = rng(seed, "test").standard_normal((p.n_test, p.d)) if p.n_test else None
    lam = np.zeros(p.K)
    code = activation_code(p)

    n_t, K, M, S = len(times), p.K, p.M, p.save_particles
    out = {
        "risk": np.full(n_t, np.nan),
        "Q": np.full((n_t, K, K), np.nan),
        "M": np.full((n_t, K, M), np.nan),
        "P": overlaps(Wt[:1], Wt)[2],
        "v": np.full((n_t, K), np.nan),
    }
    if p.n_test:
        out["risk_test"] = np.full(n_t, np.nan)
    if S:
        out["m"] = np.full((n_t, S, M), np.nan)
        out["q"] = np.full((n_t, S), np.nan)
        out["a"] = np.full((n_t, S), np.nan)
    done = 0
    for i, target in enumerate(steps):
        if not run_steps(p, W, v, Wt, vt, int(target - done), x_state, noise_state, lam, x):
            raise NumericalFailure(f"SGD diverged before t = {times[i]:g}", out)
        done = target
        with np.errstate(over="ignore", invalid="ignore"):
            Q, Mo, P = overlaps(W, Wt)
        if not np.all(np.abs(Q) <= BLOWUP):  # as the ode kernel's default `blowup`; NaN fails too
            raise NumericalFailure(
                f"SGD diverged before t = {times[i]:g}: overlaps non-finite or |Q| > {BLOWUP:g}", out
            )
        out["Q"][i], out["M"][i], out["v"][i] = Q, Mo, v
        out["risk"][i] = risk(p, Q, Mo, P, v, vt)
        if p.n_test:
            out["risk_test"][i] = test_risk(W, v, Wt, vt, X_test, code)
        if S:
            out["m"][i], out["q"][i], out["a"][i] = Mo[:S], np.diag(Q)[:S], v[:S]
    return out
