"""Finite-d one-pass SGD of two-layer networks: the simulation of the `ode` and `meanfield` kernels.

Model, update rule, committee conventions, (kappa, delta) scalings, time unit and
initial weights are those of :mod:`kernels.twolayer` (ode_meanfield.md §1, §3.1, §8):
one fresh Gaussian sample per step,

    e   = y - f(x),  y = sum_n v*_n g(w*_n.x / sqrt d) + sqrt(noise) zeta
    w_i <- (1 - weight_decay / steps_per_time) w_i + (lr_eff / sqrt d) v_i g'(lambda_i) e x
    v_i <- (1 - weight_decay / steps_per_time) v_i + (lr_v_eff / d) g(lambda_i) e

(second line, decay included, only with ``train_second_layer``), all from the same old
state. The
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

Numerics: a numba loop over steps that draws each input ``x`` in place and updates ``W``
in place. The inputs and the label noise come from two xoshiro256+ generators whose
states are seeded from the streams ``"data"`` and ``"label_noise"`` of
:func:`kernels.base.rng`, turned into normals by the Marsaglia-Tsang ziggurat
(:func:`fill_normals`, ~7 ns per normal against ~25 ns for numpy's generator on this
machine class: at d = 1000 drawing ``x`` is most of a step). So a point is
bit-reproducible from ``(params, seed)``.
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

# -- normal random numbers: xoshiro256+ and the Marsaglia-Tsang (2000) ziggurat ------------------


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 128-layer tables of Marsaglia & Tsang's RNOR (J. Stat. Softw. 5, 2000)."""
    m1 = 2147483648.0
    dn = tn = 3.442619855899
    vn = 9.91256303526217e-3
    kn, wn, fn = np.zeros(128, np.int64), np.zeros(128), np.zeros(128)
    q = vn / math.exp(-0.5 * dn * dn)
    kn[0], kn[1] = int(dn / q * m1), 0
    wn[0], wn[127] = q / m1, dn / m1
    fn[0], fn[127] = 1.0, math.exp(-0.5 * dn * dn)
    for i in range(126, 0, -1):
        dn = math.sqrt(-2.0 * math.log(vn / dn + math.exp(-0.5 * dn * dn)))
        kn[i + 1] = int(dn / tn * m1)
        tn = dn
        fn[i] = math.exp(-0.5 * dn * dn)
        wn[i] = dn / m1
    return kn, wn, fn


ZIGGURAT = _ziggurat_tables()
_ZIG_R = 3.442620


def generator_state(gen: np.random.Generator) -> np.ndarray:
    """A xoshiro256+ state (4 uint64, not all zero) seeded from a numpy generator."""
    state = gen.integers(0, 2**64, size=4, dtype=np.uint64, endpoint=False)
    state[0] |= np.uint64(1)
    return state


@njit(cache=True)
def _next(s):
    # xoshiro256+ (Blackman & Vigna 2018); the top bits are the ones used below
    result = s[0] + s[3]
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = (s[3] << np.uint64(45)) | (s[3] >> np.uint64(19))
    return result


@njit(cache=True)
def _uniform(s):
    return (_next(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _normal_slow(s, hz, iz, kn, wn, fn):
    # RNOR's "nfix": the draw (hz, iz) missed the layer's rectangle, so it lies in the
    # wedge or (iz = 0) the tail; test it there, and only on rejection draw afresh
    while True:
        x = hz * wn[iz]
        if iz == 0:
            while True:
                x = -math.log(1.0 - _uniform(s)) / _ZIG_R
                y = -math.log(1.0 - _uniform(s))
                if y + y >= x * x:
                    break
            return _ZIG_R + x if hz > 0 else -_ZIG_R - x
        if fn[iz] + _uniform(s) * (fn[iz - 1] - fn[iz]) < math.exp(-0.5 * x * x):
            return x
        u = _next(s)
        hz = np.int64(u >> np.uint64(32)) - 2147483648
        iz = np.int64(u & np.uint64(127))
        if abs(hz) < kn[iz]:
            return hz * wn[iz]


@njit(cache=True)
def fill_normals(s, out, kn, wn, fn):
    """Fill ``out`` with standard normals from the xoshiro256+ state ``s`` (in place).

    The fast path is written inline: as a separate function call per draw numba's
    version was ~20x slower.
    """
    for i in range(out.shape[0]):
        u = _next(s)
        hz = np.int64(u >> np.uint64(32)) - 2147483648
        iz = np.int64(u & np.uint64(127))
        if abs(hz) < kn[iz]:
            out[i] = hz * wn[iz]
        else:
            out[i] = _normal_slow(s, hz, iz, kn, wn, fn)


def normals(state: np.ndarray, n: int) -> np.ndarray:
    """``n`` standard normals from a xoshiro256+ state (advanced in place); for tests."""
    out = np.empty(n)
    fill_normals(state, out, *ZIGGURAT)
    return out


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
        Activation code of both networks (:data:`kernels.gaussian.ACTIVATION_CODES`).
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
        Q, Mo, P = overlaps(W, Wt)
        if not np.all(np.isfinite(Q)):
            raise NumericalFailure(f"SGD diverged before t = {times[i]:g}", out)
        out["Q"][i], out["M"][i], out["v"][i] = Q, Mo, v
        out["risk"][i] = risk(p, Q, Mo, P, v, vt)
        if p.n_test:
            out["risk_test"][i] = test_risk(W, v, Wt, vt, X_test, code)
        if S:
            out["m"][i], out["q"][i], out["a"][i] = Mo[:S], np.diag(Q)[:S], v[:S]
    return out
