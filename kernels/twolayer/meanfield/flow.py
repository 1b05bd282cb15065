"""The time loop of the `meanfield` kernel: both discretisations, recording, the risk.

:func:`run_particles` moves the ``K`` particles ``(w_j, a_j)`` with the velocity of
:mod:`kernels.twolayer.meanfield.particles`; :func:`run_reduced` moves the per-unit
overlaps ``(m_j, q_perp_j)`` with that of :mod:`kernels.twolayer.meanfield.reduced`.
Both integrate with Dormand-Prince 5(4) (:meth:`Steps.solve`), or with fixed steps of ``dt``
in flow time between the saved times (:meth:`Steps.drive`: explicit Euler, Euler-Maruyama with
Langevin noise; :func:`~kernels.twolayer.meanfield.params.fixed_steps` says which), and record
the same outputs (``docs/meanfield.md``).
"""

from __future__ import annotations

import math

import numpy as np

from kernels.base import NumericalFailure, rng
from kernels.timegrid import saved_times
from kernels.twolayer.meanfield.params import MeanFieldParams, fixed_steps, flow_rate, second_layer_rate
from kernels.twolayer.meanfield.particles import TWO_OVER_PI, relu_pair_terms, velocity
from kernels.twolayer.meanfield.reduced import angle_nodes, reduced_velocity
from kernels.twolayer.ode.adaptive import TOO_MANY_STEPS, dormand_prince


class Steps:
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
        self.flow_times = flow_times
        self.adaptive = not fixed_steps(p)
        stiff = max(self.decay, self.rate_a) * p.dt
        if stiff > 0.5 and not self.adaptive:
            which = "weight_decay" if self.decay >= self.rate_a else "the second-layer rate K^2 lr_v / lr"
            raise NumericalFailure(
                f"explicit Euler is unstable: dt * {which} = {stiff:.3g} in flow time (> 0.5). "
                "Reduce `dt`, or lr_v (the second layer of committee='mean' moves K^2 lr_v/lr "
                "times faster than the first; lr_v ~ lr / K^2 balances them)."
            )

    def second_layer_rate(self, p: MeanFieldParams, force, a: np.ndarray) -> np.ndarray:
        """``da/dt`` in flow time from the second-layer ``force`` (not computed when its rate is 0)."""
        if not p.train_second_layer:
            return np.zeros_like(a)
        return (self.rate_a * force if self.rate_a else 0.0) - self.decay * a

    def solve(self, p: MeanFieldParams, arrays, rates, record, out):
        """Dormand-Prince 5(4) on the state ``arrays`` (updated in place): ``rates()`` returns
        their time derivatives in flow time at the current values, ``record(j)`` stores saved
        time ``j``. A failure raises with the outputs so far."""
        bounds = np.cumsum([0] + [x.size for x in arrays])

        def unpack(y):
            for x, lo, hi in zip(arrays, bounds[:-1], bounds[1:], strict=True):
                x[...] = y[lo:hi].reshape(x.shape)

        def rate(y):
            unpack(y)
            return np.concatenate([np.ravel(r) for r in rates()])

        def save(j, y):
            unpack(y)
            record(j)

        state = np.concatenate([x.ravel() for x in arrays])
        fail, code, _, _ = dormand_prince(rate, state, self.flow_times, p.rtol, p.atol, p.max_steps, save)
        if code == TOO_MANY_STEPS:
            raise NumericalFailure(
                f"the adaptive integrator took max_steps={p.max_steps} steps by flow time {fail:g}; "
                'raise `max_steps` or `rtol`, or use `integrator = "euler"`.',
                out,
            )
        if code:
            raise NumericalFailure(
                f"the adaptive step fell to the round-off of the flow time at {fail:g}: the velocity "
                "is not finite there; lower `lr_v` or `weight_decay`.",
                out,
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
    """``U = E[g(h_i) g(h_j)]`` on a block of covariances (docs/twolayer.md §6, §6.3)."""
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
    """``R = (tt - 2 cross + ss) / 2`` (docs/meanfield.md §2), with the student-student term
    read off the second-layer force: ``(1/p) a.force = cross - ss``. This is the closed form of
    :func:`kernels.twolayer.model.risk` evaluated tile by tile, without the p x p overlap matrix
    (tests check the two agree)."""
    student = cross - float(a @ force) / len(a)
    return 0.5 * (risk_tt - 2.0 * cross + student)


def run_particles(params, seed, steps, W, W_star, a, a_star):
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

    if not steps.adaptive:
        steps.drive(evaluate, advance, record)
        return rec.out

    def rates():
        V, Va, _, _ = evaluate(steps.rate_a > 0)
        return V - steps.decay * W, steps.second_layer_rate(params, Va, a)

    steps.solve(params, [W, a], rates, lambda i: record(i, evaluate(True)), rec.out)
    return rec.out


def run_reduced(params, seed, steps, W, W_star, a, a_star):
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

    if not steps.adaptive:
        steps.drive(evaluate, advance, record)
        return rec.out

    def rates():
        dm, dqp, ua = evaluate(steps.rate_a > 0)
        return dm - decay * m, dqp - 2.0 * decay * qp, steps.second_layer_rate(params, ua, a)

    steps.solve(params, [m, qp, a], rates, lambda i: record(i, evaluate(True)), rec.out)
    return rec.out
