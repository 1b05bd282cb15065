"""The ``meanfield`` kernel: mean-field particle flow of a wide two-layer network.

Two discretisations of one Wasserstein gradient flow ``d_t rho = div(rho grad Psi(theta; rho))``
(Mei, Montanari & Nguyen, PNAS 2018, eq. 7, and its noisy version eq. 12; Chizat & Bach,
NeurIPS 2018) of ``f(x) = (1/p) sum_j a_j g(w_j.x / sqrt d)`` learning
``f*(x) = (1/k) sum_r a*_r g(w*_r.x / sqrt d)`` under the square loss, ``g = erf(. / sqrt 2)``
or ``relu``:

``method = "particles"``
    the ``p = K`` particles ``theta_j = (a_j, w_j)`` in ``R^(d+1)`` follow the population
    velocity field of ode_meanfield.md §7.2 (closed forms; :mod:`kernels.meanfield_particles`),
    explicit Euler, optional Langevin noise at ``temperature`` (MMN eq. 12) and L2
    confinement ``weight_decay``, second layer fixed or trained. At finite ``K`` and ``d``
    this is *exactly* the gradient-flow part of the overlap ODE of the `ode` kernel
    (``quadratic_terms = False``) for the same ``K`` units: the tests check it to 1e-4.
``method = "reduced"`` / ``"reduced_dinf"``
    the per-unit overlaps ``(m_j, q_perp_j)`` of Arnaboldi et al. (COLT 2023,
    arXiv:2302.05882; ode_meanfield.md §7.4; :mod:`kernels.meanfield_reduced`) with every
    pair, the self pair included, averaged over the angle ``Z`` of the orthogonal components
    (finite ``d``), or ``Z = 0`` (``d -> infinity``). Started from the same ``K`` initial units
    as the particles, so the two methods with one seed start from the same overlaps.

Conventions are those of :mod:`kernels.twolayer` (shared with `ode` and `sgd`): the student
is ``sum_j v_j g(.)`` with ``v_j = a_j / K`` (``committee = "mean"``: ``a_j = 1``), the
initial weights come from :func:`kernels.twolayer.draw_weights`, and ``time`` is
``steps / steps_per_time`` of one-pass SGD (``steps / d`` without scalings), in which the
flow runs at rate ``lr / K``; ``time_unit = "flow"`` switches to the K-independent flow time
``steps lr / (K d)`` (Arnaboldi et al. 2023, ode_meanfield.md §1.3). ``risk`` is the closed
form ``E[(f* - f)^2] / 2`` without the label-noise floor, as in `ode`.

Outputs: ``risk`` on the saved times; with ``histograms`` the density of ``(m_jr, q_j)`` on
fixed bins (so ``K`` stays sweepable); with ``save_particles = n`` the overlaps ``m``, ``q``
and second layer ``a`` of the first ``n`` units (names of the `sgd` kernel).

Activations: ``erf`` for every method; ``relu`` for ``method = "particles"`` only, with the
closed forms of ode_meanfield.md §4 (``I2``, ``J2``, and ``dI2/dC11`` by Price's theorem). The
reduced dynamics for ReLU would need the angle average of those kinked functions and is not
implemented (a ParameterError says so). SGD itself, the finite-step counterpart, is the `sgd`
kernel in online mode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from kernels.base import Kernel, NumericalFailure, Output, Seed, check, rng
from kernels.meanfield_particles import TWO_OVER_PI, relu_pair_terms, velocity
from kernels.meanfield_reduced import angle_nodes, reduced_velocity
from kernels.timegrid import TIME_GRID_PARAMS, saved_times
from kernels.twolayer import TwoLayerParams, draw_weights, learning_rates, steps_per_time, time_unit


@dataclass(frozen=True, kw_only=True)
class MeanFieldParams(TwoLayerParams):
    """Parameters of the ``meanfield`` kernel.

    The two-layer names (``d``, ``K`` = p particles, ``M`` = k teacher units, ``committee``,
    ``lr``, ``lr_v``, ``train_second_layer``, ``weight_decay``, ``kappa``, ``delta``, ``init``,
    ``init_scale``, ``teacher``, ``Q0``/``M0``/``P0``/``v0``) mean what they mean for `ode` and
    `sgd` (:class:`kernels.twolayer.TwoLayerParams`). The student is ``f = sum_j v_j g(.)``
    with ``v_j = a_j / K``: ``a_j`` is the mean-field second layer of MMN. ``noise`` (label
    noise) does not enter a gradient flow (only the lr^2 terms of the ODE); it is accepted
    for a shared grid and ignored.

    Parameters
    ----------
    method
        ``particles`` (the flow of the K particles; O(K^2 d) per step, BLAS-3 tiles),
        ``reduced`` (per-unit ``(m, q_perp)`` dynamics at finite d, pairs averaged over the
        angle; O(K^2 n_angle) per step, independent of d), ``reduced_dinf`` (same with Z = 0,
        d -> infinity; O(K^2)).
    time_unit
        ``sgd``: the `ode`/`sgd` time ``t = steps / steps_per_time`` (``steps / d`` without
        scalings), in which the mean-field flow runs at rate ``lr / K``; ``flow``: the
        mean-field time ``t = steps lr_eff / (K d)`` of Arnaboldi et al. 2023, in which the
        flow does not depend on K or lr (use it to compare K). A shape parameter.
    dt
        Euler step in *flow* time whatever ``time_unit`` (its stability limit does not depend
        on K or lr; 0.02-0.1 is stable for erf, ode_meanfield.md §7.3).
    temperature
        Langevin temperature ``1/beta`` per unit of ``time``: ``dw = v dt + sqrt(2 T) dB``
        (MMN eq. 12); with ``weight_decay`` as the L2 confinement.
    n_angle
        Gauss-Jacobi nodes of the angle average of ``method = "reduced"``.
    save_particles
        Record ``m``, ``q``, ``a`` (= ``v_j``, as in `sgd`) of the first ``save_particles``
        units at every saved time (0: none). A shape parameter, so ``K`` itself stays
        sweepable (units are exchangeable: the first n are a random sample); at most K.
    histograms, hist_m, hist_q
        Store the density of ``(m_jr, q_j)`` on fixed bins ``[min, max, bins]``.
    """

    d: int = 100
    K: int = 1000
    M: int = 1
    committee: Literal["saad_solla", "mean"] = "mean"
    method: Literal["particles", "reduced", "reduced_dinf"] = "particles"
    time_unit: Literal["sgd", "flow"] = "sgd"
    dt: float = 0.05
    temperature: float = 0.0
    n_angle: int = 12
    save_particles: int = 0
    histograms: bool = True
    hist_m: tuple[float, float, int] = (-1.5, 1.5, 61)
    hist_q: tuple[float, float, int] = (0.0, 3.0, 61)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.activation == "erf" or (self.activation == "relu" and self.method == "particles"),
            "activation",
            f"`meanfield` has closed-form velocities for 'erf' (every method) and 'relu' (method "
            f"'particles' only), got activation={self.activation!r} with method={self.method!r}.",
        )
        check(self.dt > 0, "dt", f"must be positive, got {self.dt!r}.")
        check(self.temperature >= 0, "temperature", f"must be >= 0, got {self.temperature!r}.")
        check(self.n_angle >= 1, "n_angle", f"must be positive, got {self.n_angle!r}.")
        check(
            0 <= self.save_particles <= self.K,
            "save_particles",
            f"records the first `save_particles` units, so it must lie in [0, K={self.K}], "
            f"got {self.save_particles!r}. To sweep K, keep save_particles <= min(K) or 0 "
            "and use the histograms.",
        )
        if self.method == "reduced":
            check(
                self.d > self.M + 1,
                "d",
                f"the finite-d reduced dynamics needs d - M >= 2 for the angle density, got "
                f'd={self.d}, M={self.M}; use method="reduced_dinf" or more dimensions.',
            )
        for name in ("hist_m", "hist_q"):
            lo, hi, n = getattr(self, name)
            check(
                lo < hi and n >= 1,
                name,
                f"expected [min, max, bins] with min < max, got {getattr(self, name)!r}.",
            )


def flow_rate(p: MeanFieldParams) -> float:
    """Flow time per unit of the kernel's ``time``.

    One SGD step moves ``w_j`` by ``(lr_eff / sqrt d) v_j g' e x`` (kernels/twolayer.py); with
    ``v_j = a_j / K`` the flow time ``lr_eff steps / (K d)`` (Arnaboldi et al. 2023, §1.3) is
    ``steps_per_time * lr_eff / (K d)`` per unit of ``time = steps / steps_per_time``.
    """
    if p.time_unit == "flow":
        return 1.0
    lr, _ = learning_rates(p)
    return steps_per_time(p) * lr / (p.K * p.d)


def second_layer_rate(p: MeanFieldParams) -> float:
    """``da_j / dt_flow`` per unit of the force ``Va`` (``dv/dtime = steps_per_time lr_v_eff/d E[g e]``)."""
    lr, lr_v = learning_rates(p)
    return p.K**2 * lr_v / lr


class MeanFieldKernel(Kernel):
    """Mean-field particle PDE and its reduced ``(m, q_perp)`` dynamics; see the module docstring."""

    name = "meanfield"
    version = "1"
    Params = MeanFieldParams
    shape_params = TIME_GRID_PARAMS | {"M", "time_unit", "save_particles", "histograms", "hist_m", "hist_q"}
    example = {"d": 10, "K": 50, "M": 2, "t_max": 1.0, "n_times": 3, "time_unit": "flow", "save_particles": 3}

    # -- schema -------------------------------------------------------------
    def outputs(self, params: MeanFieldParams) -> dict[str, Output]:
        out = {
            "risk": Output(
                ("time",),
                "population risk",
                description="E[(f*(x) - f(x))^2] / 2 with f = sum_j v_j g(w_j.x / sqrt d), closed form "
                "(erf or relu); excludes the label-noise floor Delta/2",
            )
        }
        if params.histograms:
            out["density"] = Output(
                ("time", "teacher", "m_bin", "q_bin"),
                "density of units over (m, q)",
                description="histogram over units j of (m_jr, q_j), normalised to a density (fraction "
                "of units per unit area of the (m, q) plane); mass outside the bins is dropped",
            )
        if params.save_particles:
            out["m"] = Output(("time", "unit", "teacher"), "teacher overlap m_jr = w_j.w*_r / d")
            out["q"] = Output(("time", "unit"), "self overlap q_j = |w_j|^2 / d")
            out["a"] = Output(
                ("time", "unit"),
                "second-layer weight v_j",
                description="the student's v_j of kernels/twolayer (= a_j / K in the mean-field a_j); "
                "same name and meaning as the `sgd` kernel's per-unit output",
            )
        return out

    def coords(self, params: MeanFieldParams) -> dict[str, np.ndarray]:
        c = {"time": saved_times(params), "teacher": np.arange(params.M)}
        if params.histograms:
            c["m_bin"] = _bin_centres(params.hist_m)
            c["q_bin"] = _bin_centres(params.hist_q)
        if params.save_particles:
            c["unit"] = np.arange(params.save_particles)
        return c

    def coord_attrs(self, params: MeanFieldParams) -> dict[str, dict[str, str]]:
        return {
            "time": {"long_name": "time", "units": _time_units(params)},
            "m_bin": {"long_name": "centre of the m bin (overlap with a teacher unit)"},
            "q_bin": {"long_name": "centre of the q bin (|w|^2 / d)"},
            "unit": {"long_name": "student unit (the first save_particles of K)"},
        }

    def attrs(self, params: MeanFieldParams) -> dict[str, str]:
        return {
            "time_units": _time_units(params),
            "dynamics": "population gradient flow (lr -> 0 at fixed K, d: the I3 part of the overlap "
            "ODE), explicit Euler with step dt in flow time; optional Langevin noise",
            "risk_convention": "E[(f* - f)^2] / 2, label-noise floor Delta/2 excluded",
        }

    # -- running ------------------------------------------------------------
    def _run(self, params: MeanFieldParams, seed: Seed) -> Mapping[str, np.ndarray]:
        W, W_star, v, v_star = draw_weights(params, seed)
        # mean-field second layers: f = (1/K) sum_j a_j g, f* = (1/M) sum_r a*_r g
        a = params.K * np.asarray(v, dtype=float)
        a_star = params.M * np.asarray(v_star, dtype=float)
        steps = _Steps(params)
        if params.method == "particles":
            return _run_particles(params, seed, steps, W, W_star, a, a_star)
        return _run_reduced(params, seed, steps, W, W_star, a, a_star)


# -- helpers --------------------------------------------------------------------------


def _time_units(p: MeanFieldParams) -> str:
    if p.time_unit == "flow":
        return "steps * lr_eff / (K d) (mean-field flow time, Arnaboldi et al. 2023)"
    return time_unit(p)


def _bin_centres(spec: tuple[float, float, int]) -> np.ndarray:
    lo, hi, n = spec
    edges = np.linspace(lo, hi, int(n) + 1)
    return 0.5 * (edges[1:] + edges[:-1])


class _Steps:
    """Euler schedule in flow time, and the rates converted to it.

    Each interval between saved times is cut into the fewest equal steps of at most ``dt``
    (flow time), so every saved time is hit exactly. ``weight_decay`` and ``temperature`` are
    rates per unit of the kernel's ``time``; one unit of ``time`` is ``flow_rate`` units of
    flow time.
    """

    def __init__(self, p: MeanFieldParams):
        c = flow_rate(p)
        flow_times = saved_times(p) * c
        gaps = np.diff(flow_times, prepend=0.0)
        self.counts = np.ceil(gaps / p.dt - 1e-9).astype(np.int64)
        self.sizes = np.divide(gaps, self.counts, out=np.zeros_like(gaps), where=self.counts > 0)
        self.decay = p.weight_decay / c
        self.temperature = p.temperature / c
        self.rate_a = second_layer_rate(p) if p.train_second_layer else 0.0
        self.flow_rate = c
        stiff = max(self.decay, self.rate_a) * p.dt
        if stiff > 0.5:
            which = "weight_decay" if self.decay >= self.rate_a else "the second-layer rate K^2 lr_v / lr"
            raise NumericalFailure(
                f"explicit Euler is unstable: dt * {which} = {stiff:.3g} in flow time (> 0.5). "
                "Reduce `dt`, or lr_v (the second layer of committee='mean' moves K^2 lr_v/lr "
                "times faster than the first; lr_v ~ lr / K^2 balances them)."
            )

    def drive(self, evaluate, advance, record):
        """Run the schedule: ``evaluate(with_u)`` returns the velocity at the current state,
        ``advance(velocity, h)`` does one Euler step, ``record(i, velocity)`` stores saved time
        ``i`` (its velocity carries the second-layer force, needed for the risk). The velocity
        evaluated for a record is reused by the next step."""
        current = None
        for i, (count, h) in enumerate(zip(self.counts, self.sizes, strict=True)):
            for _ in range(count):
                if current is None:
                    current = evaluate(self.rate_a > 0)
                advance(current, h)
                current = None
            if current is None:
                current = evaluate(True)
            record(i, current)


def _histogram(m: np.ndarray, q: np.ndarray, params: MeanFieldParams) -> np.ndarray:
    """Density of (m_jr, q_j) on the fixed bins, one 2-D histogram per teacher unit."""
    (m0, m1, nm), (q0, q1, nq) = params.hist_m, params.hist_q
    area = (m1 - m0) / nm * (q1 - q0) / nq
    out = np.empty((m.shape[1], int(nm), int(nq)))
    for r in range(m.shape[1]):
        h, _, _ = np.histogram2d(m[:, r], q, bins=[int(nm), int(nq)], range=[[m0, m1], [q0, q1]])
        out[r] = h / (len(q) * area)
    return out


class _Recorder:
    """Collects the outputs at the saved steps."""

    def __init__(self, params: MeanFieldParams):
        nt = params.n_times
        self.params = params
        self.out = {"risk": np.full(nt, np.nan)}
        if params.histograms:
            nm, nq = int(params.hist_m[2]), int(params.hist_q[2])
            self.out["density"] = np.full((nt, params.M, nm, nq), np.nan)
        n = params.save_particles
        if n:
            self.out["m"] = np.full((nt, n, params.M), np.nan)
            self.out["q"] = np.full((nt, n), np.nan)
            self.out["a"] = np.full((nt, n), np.nan)

    def record(self, i: int, risk: float, m: np.ndarray, q: np.ndarray, a: np.ndarray) -> None:
        self.out["risk"][i] = risk
        if self.params.histograms:
            self.out["density"][i] = _histogram(m, q, self.params)
        n = self.params.save_particles
        if n:
            self.out["m"][i] = m[:n]
            self.out["q"][i] = q[:n]
            self.out["a"][i] = a[:n] / self.params.K


def _pair_i2(C, c_i, c_j, activation):
    """``U = E[g(h_i) g(h_j)]`` on a block of covariances (ode_meanfield.md §2, §4)."""
    if activation == "relu":
        return relu_pair_terms(C, c_i, c_j)[2]
    return TWO_OVER_PI * np.arcsin(C / np.sqrt(np.outer(1.0 + c_i, 1.0 + c_j)))


def _teacher_terms(W_star: np.ndarray, a_star: np.ndarray, d: int, activation: str = "erf"):
    """``P`` and the teacher-teacher risk term ``(1/k^2) sum_rs a*_r a*_s U(w*_r, w*_s)``."""
    P = W_star @ W_star.T / d
    U_star = _pair_i2(P, np.diag(P), np.diag(P), activation)
    k = len(a_star)
    return P, float(a_star @ U_star @ a_star) / k**2


def _cross_risk(m, q, a, P, a_star, activation: str = "erf") -> float:
    """``(1/(pk)) sum_jr a_j a*_r U(w_j, w*_r)`` from the overlaps."""
    U = _pair_i2(m, q, np.diag(P), activation)
    return float(a @ U @ a_star) / (len(a) * len(a_star))


def _risk(risk_tt: float, cross: float, a: np.ndarray, force: np.ndarray) -> float:
    """``R = (tt - 2 cross + ss) / 2`` (ode_meanfield.md §7.2), with the student-student term
    read off the second-layer force: ``(1/p) a.force = cross - ss``. This is the closed form of
    :func:`kernels.twolayer.risk` evaluated tile by tile, without the p x p overlap matrix
    (tests check the two agree)."""
    student = cross - float(a @ force) / len(a)
    return 0.5 * (risk_tt - 2.0 * cross + student)


def _run_particles(params, seed, steps, W, W_star, a, a_star):
    d = W.shape[1]
    act = params.activation
    P, risk_tt = _teacher_terms(W_star, a_star, d, act)
    rec = _Recorder(params)
    g = rng(seed, "langevin")
    W = np.array(W, dtype=float, order="C")
    a = a.copy()

    def evaluate(with_u):
        return velocity(W, a, W_star, a_star, with_u=with_u, activation=act)

    def advance(vel, h):
        V, Va, _, _ = vel
        if steps.decay:
            V = V - steps.decay * W
        if params.train_second_layer:
            a[:] += h * (steps.rate_a * Va - steps.decay * a)
        W[:] += h * V
        if steps.temperature:
            W[:] += math.sqrt(2.0 * steps.temperature * h) * g.standard_normal(W.shape)

    def record(i, vel):
        _, Va, M, q = vel
        risk = _risk(risk_tt, _cross_risk(M, q, a, P, a_star, act), a, Va)
        rec.record(i, risk, M, q, a)
        if not np.isfinite(risk):
            raise NumericalFailure(f"risk is not finite at saved time index {i}", rec.out)

    steps.drive(evaluate, advance, record)
    return rec.out


def _run_reduced(params, seed, steps, W, W_star, a, a_star):
    p, d = W.shape
    k = W_star.shape[0]
    P, risk_tt = _teacher_terms(W_star, a_star, d)
    try:
        Pinv = np.linalg.inv(P)
        sqrtP = np.linalg.cholesky(P)
    except np.linalg.LinAlgError:
        raise NumericalFailure(
            "the reduced dynamics needs an invertible teacher overlap P (the (m, q_perp) split "
            f"projects on the teacher subspace), got P = {P.tolist()!r}"
        ) from None
    m = W @ W_star.T / d
    qp = np.einsum("ij,ij->i", W, W) / d - np.einsum("ij,jk,ik->i", m, Pinv, m)
    finite_d = params.method == "reduced"
    z, wz = angle_nodes(d if finite_d else 0, k, params.n_angle)
    rec = _Recorder(params)
    T = steps.temperature
    decay = steps.decay
    g = rng(seed, "langevin")
    a = a.copy()

    def evaluate(with_u):
        dm = np.empty_like(m)
        dqp = np.empty_like(qp)
        ua = np.empty_like(a)
        reduced_velocity(m, qp, a, P, Pinv, a_star, z, wz, with_u, dm, dqp, ua)
        return dm, dqp, ua

    def advance(vel, h):
        dm, dqp, ua = vel
        qp_old = qp.copy()
        m[:] += h * (dm - decay * m)
        qp[:] += h * (dqp - 2.0 * decay * qp_old)
        if T > 0:
            # exact Ito terms of w.w*_r/d and |w_perp|^2/d under dw = ... + sqrt(2T) dB: by
            # rotation invariance of dB these are the laws of the particle's own overlaps
            if finite_d:
                qp[:] += h * 2.0 * T * (d - k) / d
                qp[:] += 2.0 * np.sqrt(2.0 * T * np.maximum(qp_old, 0.0) * h / d) * g.standard_normal(p)
                m[:] += math.sqrt(2.0 * T * h / d) * g.standard_normal((p, k)) @ sqrtP.T
            else:
                qp[:] += h * 2.0 * T
        np.maximum(qp, 0.0, out=qp)
        if params.train_second_layer:
            a[:] += h * (steps.rate_a * ua - decay * a)

    def record(i, vel):
        ua = vel[2]
        q = np.einsum("ij,jk,ik->i", m, Pinv, m) + qp
        risk = _risk(risk_tt, _cross_risk(m, q, a, P, a_star), a, ua)
        rec.record(i, risk, m, q, a)
        if not np.isfinite(risk):
            raise NumericalFailure(f"risk is not finite at saved time index {i}", rec.out)

    steps.drive(evaluate, advance, record)
    return rec.out
