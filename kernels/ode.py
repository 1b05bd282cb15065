"""The ``ode`` kernel: overlap ODEs of one-pass SGD in two-layer teacher-student networks.

Integrates the deterministic limit of online SGD (Saad & Solla, PRE 52, 4225 (1995);
Biehl & Schwarze 1995; Goldt et al., NeurIPS 2019, arXiv:1906.08632, eqs. 7-9; Veiga et al.,
NeurIPS 2022, arXiv:2202.00293, eqs. 9-10) in the general form of ode_meanfield.md §3.1.
With ``c = (-v_1..-v_K, v*_1..v*_M)`` and ``h ~ N(0, Omega)``, ``Omega = [[Q, M], [M^T, P]]``,
in the time unit of :func:`kernels.twolayer.steps_per_time` (``s`` steps per unit)::

    dM_in/dt = a1 v_i sum_A c_A I3(i, n, A)                                   - wd M_in
    dQ_ik/dt = a1 [v_i sum_A c_A I3(i, k, A) + v_k sum_A c_A I3(k, i, A)]
             + a2 v_i v_k [sum_AB c_A c_B I4(i, k, A, B) + noise J2(i, k)]    - 2 wd Q_ik
    dv_i/dt  = av sum_A c_A I2(i, A)                                          - wd v_i

with ``a1 = s lr_eff / d``, ``a2 = s lr_eff^2 / d``, ``av = s lr_v_eff / d`` (exactly Goldt's
``eta``, ``eta^2``, ``eta_v`` when ``s = d``, i.e. without scalings). These are the expected
one-step changes of the overlaps of the SGD of :mod:`kernels.twolayer` times ``s``, so the
finite-d prefactors are kept. With ``region_terms`` and the (kappa, delta) scalings set, the
terms are those of Veiga et al.'s regions (ode_meanfield.md §1.2, §6.6): green keeps only the
``I3`` (learning) terms, blue keeps all, orange (and red) keeps only the ``a2`` terms with
``M`` and ``v`` frozen up to weight decay. ``P`` and ``v*`` never move. ``v`` moves only with
``train_second_layer``, and then it decays (``- wd v_i``) even where ``av = 0`` (``lr_v = 0``,
orange, red), as in the `sgd` kernel.

Explicit Euler (as every public code, ode_meanfield.md §3.5) with all increments computed
from the same old state; between consecutive saved times it takes equal steps of at most
``dt`` (:func:`kernels.timegrid.substeps`), so every saved state is at its ``time``
coordinate, also on a log grid with ``t_min < dt``. The whole time loop runs in numba
(:func:`integrate`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from kernels.base import Kernel, NumericalFailure, Output, Seed, check, rng
from kernels.gaussian import (
    ERF,
    FASTMATH,
    LIN,
    fast_asin,
    i2,
    i3,
    i4_quadrature,
    j2,
    risk_overlaps,
    sobol_normals,
)
from kernels.timegrid import TIME_GRID_PARAMS, saved_times, substeps
from kernels.twolayer import (
    REGIONS,
    TwoLayerParams,
    activation_code,
    draw_weights,
    explicit_overlaps,
    learning_rates,
    overlaps,
    region,
    second_layers,
    steps_per_time,
    time_unit,
)

_TWO_OVER_PI = 2.0 / math.pi
_FOUR_OVER_PI2 = 4.0 / math.pi**2


@dataclass(frozen=True, kw_only=True)
class ODEParams(TwoLayerParams):
    """Parameters of the ``ode`` kernel.

    The shared names are documented in :class:`kernels.twolayer.TwoLayerParams`; the
    integration-only ones:

    Parameters
    ----------
    dt
        Largest Euler step, in units of ``time``: between consecutive saved times the
        integration takes ``ceil(interval / dt)`` equal steps.
    quadratic_terms
        Keep the learning-rate-squared term ``a2 v_i v_k (I4 + noise J2)`` of ``dQ/dt``
        (``False`` is the small-learning-rate limit, Arnaboldi's default).
    region_terms
        With ``kappa``/``delta`` set, keep only the terms of the leading order in each region
        (Veiga et al.); ``False`` keeps every term with its finite-d prefactor.
    n_quad
        Quasi-Monte Carlo points of the ReLU ``I4`` (a power of two).
    blowup
        An overlap or second-layer weight larger than this in absolute value counts as a
        diverging integration.
    """

    dt: float = 0.01
    quadratic_terms: bool = True
    region_terms: bool = True
    n_quad: int = 1024
    blowup: float = 1e6

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.dt > 0, "dt", f"must be positive, got {self.dt!r}.")
        check(self.dt <= self.t_max, "dt", f"must not exceed t_max={self.t_max!r}, got {self.dt!r}.")
        check(
            self.n_quad >= 16 and (self.n_quad & (self.n_quad - 1)) == 0,
            "n_quad",
            f"must be a power of two >= 16 (Sobol points), got {self.n_quad!r}.",
        )
        check(self.blowup > 0, "blowup", f"must be positive, got {self.blowup!r}.")


# -- the hot loop ----------------------------------------------------------------------------


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
        Activation code (:mod:`kernels.gaussian`).
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


# -- the kernel ------------------------------------------------------------------------------


def initial_state(p: ODEParams, seed: Seed) -> tuple[np.ndarray, ...]:
    """``(Q, M, P, v, v*)`` at ``t = 0`` for the three ``init`` modes."""
    if p.init == "random":
        W, W_star, v, vs = draw_weights(p, seed)
        Q, M, P = overlaps(W, W_star)
        return Q, M, P, v, vs
    v, vs = second_layers(p)
    if p.init == "explicit":
        Q, M, P = explicit_overlaps(p)
        return Q.copy(), M.copy(), P.copy(), v, vs
    # Saad-Solla symmetric small start: Q = init_scale^2 I exactly, P = I, and a tiny random
    # student-teacher overlap of the size a finite-d draw would give; it only breaks the
    # permutation symmetry (with M = 0 exactly the student never leaves the plateau).
    g = rng(seed, "init")
    M = p.init_scale * g.standard_normal((p.K, p.M)) / math.sqrt(p.d)
    return p.init_scale**2 * np.eye(p.K), M, np.eye(p.M), v, vs


def rates(p: ODEParams) -> tuple[float, float, float, float, float]:
    """``(a1, a2, av, wd, wv)``: rates of the learning, quadratic, second-layer, decay terms.

    ``wv`` is the decay of ``v``: ``weight_decay`` whenever the second layer is trained, even
    where its learning term is zero (``lr_v = 0``, or dropped in the orange and red regions),
    as in the `sgd` kernel (:mod:`kernels.twolayer`).
    """
    s = steps_per_time(p)
    lr, lr_v = learning_rates(p)
    a1, a2 = s * lr / p.d, s * lr * lr / p.d
    av = s * lr_v / p.d if p.train_second_layer else 0.0
    wd = p.weight_decay
    r = region(p)
    if p.region_terms and r == "green":
        a2 = 0.0
    if p.region_terms and r in ("orange", "red"):
        a1, av = 0.0, 0.0
    if not p.quadratic_terms:
        a2 = 0.0
    wv = wd if p.train_second_layer else 0.0
    return a1, a2, av, wd, wv


_DIMS_Q = ("time", "student", "student2")


class ODEKernel(Kernel):
    """Overlap ODEs of online SGD in a two-layer teacher-student network (see module doc)."""

    name = "ode"
    version = "1"
    Params = ODEParams
    shape_params = frozenset({"K", "M"} | TIME_GRID_PARAMS)
    example: dict[str, Any] = {"K": 2, "M": 2, "d": 100, "lr": 0.5, "t_max": 5.0, "n_times": 11}

    def outputs(self, params: ODEParams) -> dict[str, Output]:
        return {
            "risk": Output(
                ("time",),
                "population risk E[(f* - f)^2]/2",
                description="closed form from the overlaps; excludes the label-noise floor noise/2",
            ),
            "Q": Output(_DIMS_Q, "student-student overlap Q = W W^T / d"),
            "M": Output(("time", "student", "teacher"), "student-teacher overlap M = W W*^T / d (Goldt's R)"),
            "P": Output(("teacher", "teacher2"), "teacher-teacher overlap P = W* W*^T / d (Goldt's T)"),
            "v": Output(("time", "student"), "student second-layer weights"),
            "region": Output(
                (),
                "region of the (kappa, delta) phase diagram",
                description="0 none (no scalings), 1 green, 2 blue, 3 orange, 4 red (Veiga et al. 2022)",
            ),
            "steps_per_time": Output((), "SGD steps per unit of time", units="steps"),
        }

    def coords(self, params: ODEParams) -> dict[str, np.ndarray]:
        return {
            "time": saved_times(params),
            "student": np.arange(params.K),
            "student2": np.arange(params.K),
            "teacher": np.arange(params.M),
            "teacher2": np.arange(params.M),
        }

    def coord_attrs(self, params: ODEParams) -> dict[str, dict[str, str]]:
        return {
            "time": {"long_name": "time", "units": time_unit(params)},
            "student": {"long_name": "student hidden unit"},
            "student2": {"long_name": "student hidden unit"},
            "teacher": {"long_name": "teacher hidden unit"},
            "teacher2": {"long_name": "teacher hidden unit"},
        }

    def attrs(self, params: ODEParams) -> dict[str, Any]:
        return {
            "equations": "overlap ODEs of ode_meanfield.md §3.1 (Goldt et al. 2019 eqs. 7-9), explicit Euler",
            "committee": params.committee,
            "second_layer": "v = v* = 1" if params.committee == "saad_solla" else "v = 1/K, v* = 1/M",
            "time_units": (
                "t = steps / d without scalings; with (kappa, delta): t = steps / d^(1+kappa+delta) "
                "where kappa + delta >= 0 (green, blue) and t = steps / d^(1+2(kappa+delta)) where "
                "kappa + delta < 0 (orange, red); per-point value in `steps_per_time`"
            ),
            "learning_rate": (
                "per SGD step: lr without scalings; lr * d^(-delta) * K / d^kappa with them "
                "(gamma/K = lr d^-(kappa+delta)); same for lr_v"
            ),
            "regions": (
                "green kappa+delta > 0: I3 terms only; blue kappa+delta = 0: I3 + I4 + noise; "
                "orange kappa < -delta < (kappa+1)/2: I4 + noise only, M and v frozen; red beyond: "
                "outside the ODE description, integrated with the orange rule"
                + ("" if params.region_terms else " (region_terms = false: every term kept)")
            ),
            "risk": "E[(f* - f)^2]/2 against the noiseless teacher; the noise floor noise/2 is NOT included",
            "noise": "label-noise variance Delta",
        }

    def _run(self, params: ODEParams, seed: Seed) -> Mapping[str, np.ndarray]:
        code = activation_code(params)
        Q, M, P, v, vs = (np.ascontiguousarray(a, dtype=float) for a in initial_state(params, seed))
        a1, a2, av, wd, wv = rates(params)
        times = saved_times(params)
        n_sub = substeps(times, params.dt)
        z = sobol_normals(params.n_quad) if params.activation == "relu" and a2 != 0.0 else np.zeros((1, 3))
        nt, K, Mt = len(times), params.K, params.M
        out_Q = np.full((nt, K, K), np.nan)
        out_M = np.full((nt, K, Mt), np.nan)
        out_v = np.full((nt, K), np.nan)
        out_risk = np.full(nt, np.nan)
        fail = integrate(
            code, Q, M, P, v, vs, a1, a2, av, wd, wv, params.noise, times, n_sub, z,
            out_Q, out_M, out_v, out_risk, params.blowup,
        )  # fmt: skip
        outputs = {
            "risk": out_risk,
            "Q": out_Q,
            "M": out_M,
            "P": P,
            "v": out_v,
            "region": np.float64(REGIONS[region(params)]),
            "steps_per_time": np.float64(steps_per_time(params)),
        }
        if fail >= 0:
            raise NumericalFailure(
                f"overlaps diverged (non-finite or |.| > blowup={params.blowup:g}) at time "
                f"t = {fail:g}; lower `lr` or `dt`.",
                outputs,
            )
        return outputs
