"""Finite-d one-pass SGD of two-layer networks: the simulation of the `ode` and `meanfield` kernels.

Model, update rule, committee conventions, (kappa, delta) scalings, time unit and
initial weights are those of :mod:`kernels.twolayer` (ode_meanfield.md §1, §3.1, §8):
one fresh Gaussian sample per step,

    e   = y - f(x),  y = sum_n v*_n g(w*_n.x / sqrt d) + sqrt(noise) zeta
    w_i <- (1 - weight_decay / steps_per_time) w_i + (lr_eff / sqrt d) v_i g'(lambda_i) e x
    v_i <- (1 - weight_decay / steps_per_time) v_i + (lr_v_eff / d) g(lambda_i) e

(second line only with ``train_second_layer``), all from the same old state. The
initial weights come from :func:`kernels.twolayer.draw_weights` (streams ``"teacher"``
and ``"init"``), so an `sgd` point and an `ode` point with the same seed start from the
same overlaps; the overlaps at ``t = 0`` are the first saved values.

Observables on the saved grid, in the ODE's time unit (:func:`kernels.twolayer.steps_at`):
``Q``, ``M``, ``P``, ``v`` and ``risk`` from the overlaps by the closed form of
:func:`kernels.twolayer.risk` (erf, ReLU, linear; label-noise floor excluded).
Optionally ``risk_test`` on a fixed test set of ``n_test`` noiseless samples (stream
``"test"``), and per-unit overlaps of the first ``save_particles`` units under the
`meanfield` kernel's names ``m``, ``q``, ``a`` (large K with ``committee = "mean"`` is the
mean-field regime).

Numerics: a numba loop over the steps of a block; the inputs of a block are drawn
beforehand from the stream ``"data"`` and the label noise from ``"label_noise"``
(no numba RNG), so a point is bit-reproducible from ``(params, seed)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from kernels.base import NumericalFailure, check, rng
from kernels.gaussian import act, dact
from kernels.timegrid import saved_times
from kernels.twolayer import (
    TwoLayerParams,
    activation_code,
    draw_weights,
    learning_rates,
    overlaps,
    risk,
    steps_at,
    steps_per_time,
)

# inputs drawn per block: at most this many doubles
_BLOCK_DOUBLES = 1 << 18


@dataclass(frozen=True, kw_only=True)
class OnlineParams(TwoLayerParams):
    """Online mode: the shared two-layer names plus the simulation knobs.

    Parameters
    ----------
    n_test
        If > 0, also output ``risk_test``, the risk on a fixed test set of this
        many noiseless samples (a check of the closed form; ReLU included).
    save_particles
        Output the per-unit overlaps of the first ``save_particles`` student units
        (``m``, ``q``, ``a`` as in the `meanfield` kernel).
    """

    n_test: int = 0
    save_particles: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_test >= 0, "n_test", f"must be >= 0, got {self.n_test!r}.")
        check(
            0 <= self.save_particles <= self.K,
            "save_particles",
            f"records the first `save_particles` units, so it must lie in [0, K={self.K}], "
            f"got {self.save_particles!r}.",
        )


@njit(cache=True, fastmath=True)
def online_steps(W, v, Wt, vt, xs, label_noise, code, step_w, step_v, decay, lam):
    """One-pass SGD steps in place, one fresh sample per row of ``xs``.

    Parameters
    ----------
    W, v
        Student first layer ``(K, d)`` and second layer ``(K,)``, updated in place.
    Wt, vt
        Teacher ``(M, d)`` and ``(M,)``.
    xs
        ``(steps, d)`` standard normal inputs.
    label_noise
        ``(steps,)`` label noise, already scaled by ``sqrt(noise)``.
    code
        Activation code of both networks (:data:`kernels.gaussian.ACTIVATION_CODES`).
    step_w, step_v
        ``lr_eff / sqrt(d)`` and ``lr_v_eff / d`` (0: second layer fixed).
    decay
        Weight decay per step, ``weight_decay / steps_per_time``.
    lam
        Scratch ``(K,)``.

    Returns
    -------
    bool
        False if the error signal became non-finite.
    """
    K, d = W.shape
    M = Wt.shape[0]
    inv_sqrt_d = 1.0 / math.sqrt(d)
    shrink = 1.0 - decay
    for k in range(xs.shape[0]):
        x = xs[k]
        y = label_noise[k]
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
        if step_v != 0.0:
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


def run_steps(p: TwoLayerParams, W, v, Wt, vt, n_steps: int, data, label_noise, lam) -> bool:
    """Advance ``(W, v)`` in place by ``n_steps``, drawing inputs block by block."""
    lr_w, lr_v = learning_rates(p)
    d = W.shape[1]
    step_w = lr_w / math.sqrt(d)
    step_v = lr_v / d if p.train_second_layer else 0.0
    decay = p.weight_decay / steps_per_time(p)
    code = activation_code(p)
    amp = math.sqrt(p.noise)
    block = max(1, _BLOCK_DOUBLES // d)
    done = 0
    while done < n_steps:
        k = min(block, n_steps - done)
        xs = data.standard_normal((k, d))
        zeta = amp * label_noise.standard_normal(k) if p.noise > 0 else np.zeros(k)
        if not online_steps(W, v, Wt, vt, xs, zeta, code, step_w, step_v, decay, lam):
            return False
        done += k
    return True


def simulate(p: OnlineParams, seed) -> dict[str, np.ndarray]:
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
    data, label_noise = rng(seed, "data"), rng(seed, "label_noise")
    X_test = rng(seed, "test").standard_normal((p.n_test, p.d)) if p.n_test else None
    lam = np.zeros(p.K)
    code = activation_code(p)

    n_t, K, M, S = len(times), p.K, p.M, p.save_particles
    out = {
        "risk": np.full(n_t, np.nan),
        "Q": np.full((n_t, K, K), np.nan),
        "M": np.full((n_t, K, M), np.nan),
        "P": np.full((n_t, M, M), np.nan),
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
        if not run_steps(p, W, v, Wt, vt, int(target - done), data, label_noise, lam):
            raise NumericalFailure(f"SGD diverged before t = {times[i]:g}", out)
        done = target
        Q, Mo, P = overlaps(W, Wt)
        if not np.all(np.isfinite(Q)):
            raise NumericalFailure(f"SGD diverged before t = {times[i]:g}", out)
        out["Q"][i], out["M"][i], out["P"][i], out["v"][i] = Q, Mo, P, v
        out["risk"][i] = risk(p, Q, Mo, P, v, vt)
        if p.n_test:
            out["risk_test"][i] = test_risk(W, v, Wt, vt, X_test, code)
        if S:
            out["m"][i], out["q"][i], out["a"][i] = Mo[:S], np.diag(Q)[:S], v[:S]
    return out
