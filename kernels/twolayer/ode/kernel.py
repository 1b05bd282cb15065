"""The ``ode`` kernel: overlap ODEs of one-pass SGD in two-layer teacher-student networks.

Integrates the deterministic limit of online SGD (Saad & Solla, PRE 52, 4225 (1995);
Biehl & Schwarze 1995; Goldt et al., NeurIPS 2019, arXiv:1906.08632, eqs. 7-9; Veiga et al.,
NeurIPS 2022, arXiv:2202.00293, eqs. 9-10) in the general form of docs/ode.md §1.
With ``c = (-v_1..-v_K, v*_1..v*_M)`` and ``h ~ N(0, Omega)``, ``Omega = [[Q, M], [M^T, P]]``,
in the time unit of :func:`kernels.twolayer.model.steps_per_time` (``s`` steps per unit)::

    dM_in/dt = a1 v_i sum_A c_A I3(i, n, A)                                   - wd M_in
    dQ_ik/dt = a1 [v_i sum_A c_A I3(i, k, A) + v_k sum_A c_A I3(k, i, A)]
             + a2 v_i v_k [sum_AB c_A c_B I4(i, k, A, B) + noise J2(i, k)]    - 2 wd Q_ik
    dv_i/dt  = av sum_A c_A I2(i, A)                                          - wd v_i

with ``a1 = s lr_eff / d``, ``a2 = s lr_eff^2 / d``, ``av = s lr_v_eff / d`` (exactly Goldt's
``eta``, ``eta^2``, ``eta_v`` when ``s = d``, i.e. without scalings). These are the expected
one-step changes of the overlaps of the SGD of :mod:`kernels.twolayer.model` times ``s``, so the
finite-d prefactors are kept. With ``region_terms`` and the (kappa, delta) scalings set, the
terms are those of Veiga et al.'s regions (docs/twolayer.md §2.3, docs/ode.md §2): green keeps only the
``I3`` (learning) terms, blue keeps all, orange (and red) keeps only the ``a2`` terms with
``M`` and ``v`` frozen up to weight decay. ``P`` and ``v*`` never move. ``v`` moves only with
``train_second_layer``, and then it decays (``- wd v_i``) even where ``av = 0`` (``lr_v = 0``,
orange, red), as in the `sgd_online` kernel.

Two integrators of the same right-hand side (:func:`kernels.twolayer.ode.equations.derivative`,
docs/ode.md §4): ``integrator = "adaptive"`` (default), Dormand-Prince 5(4) with error
control (:mod:`kernels.twolayer.ode.adaptive`), and ``"euler"``, explicit Euler as every
public code, with equal steps of at most ``dt`` between consecutive saved times
(:mod:`kernels.twolayer.ode.euler`). Both stop exactly at every saved ``time`` coordinate,
also on a log grid with ``t_min < dt``, and run the whole time loop in numba.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from kernels.base import Kernel, NumericalFailure, Seed, check, rng
from kernels.schema import Output, pick
from kernels.timegrid import TIME_GRID_PARAMS, check_step_count, saved_times, substeps
from kernels.twolayer import schema as family
from kernels.twolayer.gaussian import (
    sobol_normals,
)
from kernels.twolayer.model import (
    BLOWUP,
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
)
from kernels.twolayer.ode.adaptive import DIVERGED, STEP_UNDERFLOW, TOO_MANY_STEPS, integrate_adaptive
from kernels.twolayer.ode.equations import pack
from kernels.twolayer.ode.euler import integrate_euler


@dataclass(frozen=True, kw_only=True)
class ODEParams(TwoLayerParams):
    """Parameters of the ``ode`` kernel.

    The shared names are documented in :class:`kernels.twolayer.model.TwoLayerParams`; the
    integration-only ones:

    Parameters
    ----------
    integrator
        ``adaptive``: Dormand-Prince 5(4) with step-size control to ``rtol``/``atol``;
        ``euler``: explicit Euler at fixed step ``dt`` (the public codes' scheme).
    rtol, atol
        Local error tolerances of the ``adaptive`` integrator (relative, absolute); the
        error of the saved overlaps tracks ``rtol`` (docs/ode.md §4.2).
    max_steps
        Steps (accepted and rejected) an ``adaptive`` point may take before it fails.
    dt
        Largest Euler step, in units of ``time`` (``euler`` only): between consecutive saved
        times the integration takes ``ceil(interval / dt)`` equal steps.
    quadratic_terms
        Keep the learning-rate-squared term ``a2 v_i v_k (I4 + noise J2)`` of ``dQ/dt``
        (``False`` drops both of its parts: the small-learning-rate limit).
    i4_term
        Keep the ``I4`` part of the learning-rate-squared term (``False`` with the noise part
        kept is Arnaboldi et al.'s setting).
    noise_term
        Keep the label-noise part ``noise J2`` of the learning-rate-squared term.
    region_terms
        With ``kappa``/``delta`` set, keep only the terms of the leading order in each region
        (Veiga et al.); ``False`` keeps every term with its finite-d prefactor.
    n_quad
        Quasi-Monte Carlo points of the ReLU ``I4`` (a power of two).
    blowup
        An overlap or second-layer weight larger than this in absolute value counts as a
        diverging integration.
    """

    integrator: Literal["adaptive", "euler"] = "adaptive"
    rtol: float = 1e-8
    atol: float = 1e-10
    max_steps: int = 10_000_000
    dt: float = 0.01
    quadratic_terms: bool = True
    i4_term: bool = True
    noise_term: bool = True
    region_terms: bool = True
    n_quad: int = 1024
    blowup: float = BLOWUP

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.dt > 0, "dt", f"must be positive, got {self.dt!r}.")
        check(self.dt <= self.t_max, "dt", f"must not exceed t_max={self.t_max!r}, got {self.dt!r}.")
        check_step_count(self.t_max / self.dt, "dt", "t_max / dt", "raise `dt` or lower `t_max`")
        check(
            self.n_quad >= 16 and (self.n_quad & (self.n_quad - 1)) == 0,
            "n_quad",
            f"must be a power of two >= 16 (Sobol points), got {self.n_quad!r}.",
        )
        check(self.blowup > 0, "blowup", f"must be positive, got {self.blowup!r}.")
        check(1e-13 <= self.rtol < 1, "rtol", f"must be in [1e-13, 1), got {self.rtol!r}.")
        check(self.atol > 0, "atol", f"must be positive, got {self.atol!r}.")
        check(self.max_steps >= 1, "max_steps", f"must be a positive integer, got {self.max_steps!r}.")


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
    as in the `sgd_online` kernel (:mod:`kernels.twolayer.model`).
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
    if not p.quadratic_terms or not (p.i4_term or (p.noise_term and p.noise != 0.0)):
        a2 = 0.0
    wv = wd if p.train_second_layer else 0.0
    return a1, a2, av, wd, wv


class ODEKernel(Kernel):
    """Overlap ODEs of online SGD in a two-layer teacher-student network (see module doc)."""

    name = "ode"
    version = "3"
    Params = ODEParams
    shape_params = frozenset({"K", "M"} | TIME_GRID_PARAMS)
    example: dict[str, Any] = {"K": 2, "M": 2, "d": 100, "lr": 0.5, "t_max": 5.0, "n_times": 11}
    failing_example: dict[str, Any] = {
        "K": 2,
        "M": 2,
        "d": 100,
        "activation": "linear",
        "lr": 5.0,
        "t_max": 5.0,
        "n_times": 3,
    }

    dims = family.DIMS
    outputs = pick(family.OUTPUTS, "risk", "Q", "M", "P", "v", "region") | {
        "steps_per_time": Output((), "SGD steps per unit of time", units="steps"),
        "accepted_steps": Output(
            (), "integration steps taken", description="Euler steps, or accepted adaptive steps"
        ),
        "rejected_steps": Output(
            (), "adaptive steps rejected by the error control", description="always 0 for Euler"
        ),
    }
    attrs = family.ATTRS | {
        "equations": (
            "overlap ODEs of docs/ode.md (Goldt et al. 2019 eqs. 7-9); integrator per point "
            "(`integrator`): Dormand-Prince 5(4) with error control, or explicit Euler"
        ),
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
            "with region_terms = true: green kappa+delta > 0: I3 terms only; blue kappa+delta = 0: "
            "I3 + I4 + noise; orange kappa < -delta < (kappa+1)/2: I4 + noise only, M and v frozen; "
            "red beyond: outside the ODE description, integrated with the orange rule. With "
            "region_terms = false every term is kept"
        ),
    }

    def _run(self, params: ODEParams, seed: Seed) -> Mapping[str, np.ndarray]:
        code = activation_code(params)
        Q, M, P, v, vs = (np.ascontiguousarray(a, dtype=float) for a in initial_state(params, seed))
        y = pack(Q, M, v)
        a1, a2, av, wd, wv = rates(params)
        noise = params.noise if params.noise_term else 0.0
        times = saved_times(params)
        relu_i4 = params.activation == "relu" and a2 != 0.0 and params.i4_term
        z = sobol_normals(params.n_quad) if relu_i4 else np.zeros((1, 3))
        nt, K, Mt = len(times), params.K, params.M
        out_Q = np.full((nt, K, K), np.nan)
        out_M = np.full((nt, K, Mt), np.nan)
        out_v = np.full((nt, K), np.nan)
        out_risk = np.full(nt, np.nan)
        terms = (a1, a2, av, wd, wv, noise, params.i4_term, z, times)
        records = (out_Q, out_M, out_v, out_risk, params.blowup)
        if params.integrator == "euler":
            n_sub = substeps(times, params.dt)
            fail = integrate_euler(code, y, P, vs, *terms, n_sub, *records)
            code_fail = DIVERGED if fail >= 0 else 0
            counts = (int(n_sub.sum()) if fail < 0 else -1, 0)
        else:
            steps = np.zeros(2, dtype=np.int64)
            fail, code_fail = integrate_adaptive(
                code, y, P, vs, *terms, params.rtol, params.atol, params.max_steps, *records, steps
            )
            counts = (int(steps[0]), int(steps[1]))
        outputs = {
            "risk": out_risk,
            "Q": out_Q,
            "M": out_M,
            "P": P,
            "v": out_v,
            "region": np.float64(REGIONS[region(params)]),
            "steps_per_time": np.float64(steps_per_time(params)),
        }
        if counts[0] >= 0:
            outputs["accepted_steps"] = np.float64(counts[0])
            outputs["rejected_steps"] = np.float64(counts[1])
        if code_fail:
            raise NumericalFailure(_failure_message(params, fail, code_fail), outputs)
        return outputs


def _failure_message(p: ODEParams, time: float, code: int) -> str:
    """Why a point failed, at which time, and what to change."""
    if code == DIVERGED:
        fix = "lower `lr` or `dt`" if p.integrator == "euler" else "lower `lr`"
        return f"overlaps diverged (non-finite or |.| > blowup={p.blowup:g}) at time t = {time:g}; {fix}."
    if code == TOO_MANY_STEPS:
        return (
            f"the adaptive integrator took max_steps={p.max_steps} steps by time t = {time:g} "
            "(a stiff or very fast trajectory); raise `max_steps` or `rtol`, or use "
            '`integrator = "euler"`.'
        )
    assert code == STEP_UNDERFLOW
    return (
        f"the adaptive step fell to the round-off of t at time t = {time:g}: the right-hand side "
        "is singular or diverging there (overlaps leaving the positive-definite cone); lower `lr`."
    )
