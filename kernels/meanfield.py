"""The ``meanfield`` kernel: mean-field particle flow of a wide two-layer erf network.

Two discretisations of one Wasserstein gradient flow (Mei, Montanari & Nguyen, PNAS 2018,
eq. 7 and its noisy version eq. 12; Chizat & Bach, NeurIPS 2018):

``method = "particles"``
    the ``p = K`` particles ``theta_j = (a_j, w_j)`` in ``R^(d+1)`` follow the population
    velocity field of ode_meanfield.md §7.2 (closed form for erf), explicit Euler, optional
    Langevin noise at ``temperature`` (MMN eq. 12) and L2 confinement ``weight_decay``.
    At finite ``p`` and ``d`` this is *exactly* the gradient-flow part of the overlap ODE
    (§3.3 with the learning-rate-squared terms off) for the same ``K`` units.
``method = "reduced"`` / ``"reduced_dinf"``
    the per-unit overlaps ``(m_j, q_perp_j)`` of Arnaboldi et al. (COLT 2023,
    arXiv:2302.05882; ode_meanfield.md §7.4) with every pair averaged over the angle ``Z`` of
    the orthogonal components (finite ``d``), or ``Z = 0`` (``d -> infinity``). Started from
    the same ``K`` initial units, so a reduced point and a particle point with the same seed
    start from the same overlaps.

Only ``activation = "erf"`` is implemented: for ReLU the pair velocity needs ``I3`` and ``I2``
with a kink (ode_meanfield.md §4) and there was no time to validate it; asking for it raises
a ParameterError.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from kernels.base import Kernel, NumericalFailure, Output, ParameterError, Seed, check, rng
from kernels.meanfield_particles import TWO_OVER_PI, velocity
from kernels.meanfield_reduced import angle_nodes, reduced_velocity
from kernels.timegrid import TIME_GRID_PARAMS, TimeGridParams, save_steps, saved_times


@dataclass(frozen=True, kw_only=True)
class MeanFieldParams(TimeGridParams):
    """Parameters of the ``meanfield`` kernel (``K`` = p particles, ``M`` = k teacher units)."""

    d: int = 100
    K: int = 1000
    M: int = 1
    activation: Literal["erf"] = "erf"
    train_second_layer: bool = False
    lr: float = 1.0
    lr_v: float = 1.0
    weight_decay: float = 0.0
    init_scale: float = 1.0
    method: Literal["particles", "reduced", "reduced_dinf"] = "particles"
    dt: float = 0.01
    temperature: float = 0.0
    n_angle: int = 16
    save_particles: int = 0
    histograms: bool = True
    hist_m: tuple[float, float, int] = (-1.5, 1.5, 61)
    hist_q: tuple[float, float, int] = (0.0, 3.0, 61)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.d >= 1, "d", f"must be positive, got {self.d!r}.")
        check(self.K >= 1, "K", f"must be positive, got {self.K!r}.")
        check(self.M >= 1, "M", f"must be positive, got {self.M!r}.")
        check(self.dt > 0, "dt", f"must be positive, got {self.dt!r}.")
        check(self.dt <= self.t_max, "dt", f"must not exceed t_max={self.t_max!r}, got {self.dt!r}.")
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


class MeanFieldKernel(Kernel):
    """Mean-field particle PDE and its reduced ``(m, q_perp)`` dynamics; see the module docstring."""

    name = "meanfield"
    version = "0.1"
    Params = MeanFieldParams
    shape_params = TIME_GRID_PARAMS | {"M", "save_particles", "histograms", "hist_m", "hist_q"}
    example = {"d": 10, "K": 50, "M": 2, "t_max": 1.0, "n_times": 3, "dt": 0.1, "save_particles": 3}

    # -- schema -------------------------------------------------------------
    def outputs(self, params: MeanFieldParams) -> dict[str, Output]:
        out = {
            "risk": Output(
                ("time",),
                "population risk",
                description="0.5 E[(f*(x) - f(x))^2] with f = (1/K) sum_j a_j erf(w_j.x/sqrt(2d)); "
                "excludes the label-noise floor Delta/2",
            )
        }
        if params.histograms:
            out["density"] = Output(
                ("time", "teacher", "m_bin", "q_bin"),
                "density of units over (m, q)",
                description="histogram of (m_jr, q_j) over units j, normalised to a density "
                "(fraction of units per unit area); mass outside the bins is dropped",
            )
        if params.save_particles:
            out["m"] = Output(("time", "unit", "teacher"), "teacher overlap m_jr = w_j.w*_r/d")
            out["q"] = Output(("time", "unit"), "self overlap q_j = |w_j|^2/d")
            out["a"] = Output(("time", "unit"), "second-layer weight a_j")
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
            "time": {"long_name": "time", "units": "nu * lr / (K d) (one-pass SGD steps nu)"},
            "m_bin": {"long_name": "centre of the m bin"},
            "q_bin": {"long_name": "centre of the q bin"},
        }

    def attrs(self, params: MeanFieldParams) -> dict[str, str]:
        return {
            "time_units": "t = nu * lr / (K d): gradient-flow time in which dM/dt = Psi(Omega) "
            "(Arnaboldi et al. 2023); one Euler step of size dt",
            "risk_convention": "risk excludes Delta/2; committee = mean (1/K, 1/M)",
        }

    # -- running ------------------------------------------------------------
    def _run(self, params: MeanFieldParams, seed: Seed) -> Mapping[str, np.ndarray]:
        if params.activation != "erf":
            raise ParameterError(f"activation: only 'erf' is implemented, got {params.activation!r}.")
        W, W_star, a, a_star = _initial_weights(params, seed)
        if params.method == "particles":
            return _run_particles(params, seed, W, W_star, a, a_star)
        return _run_reduced(params, seed, W, W_star, a, a_star)


# -- helpers --------------------------------------------------------------------------


def _bin_centres(spec: tuple[float, float, int]) -> np.ndarray:
    lo, hi, n = spec
    edges = np.linspace(lo, hi, int(n) + 1)
    return 0.5 * (edges[1:] + edges[:-1])


def _initial_weights(params: MeanFieldParams, seed: Seed):
    """PROVISIONAL until kernels/twolayer.py lands: i.i.d. N(0, init_scale^2) student rows,
    orthonormal teacher rows times sqrt(d) (P = I), a = a* = 1."""
    g = rng(seed, "init")
    W_star = np.linalg.qr(g.standard_normal((params.d, params.M)))[0].T * np.sqrt(params.d)
    W = params.init_scale * g.standard_normal((params.K, params.d))
    return W, W_star, np.ones(params.K), np.ones(params.M)


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
            self.out["a"][i] = a[:n]


def _teacher_terms(W_star: np.ndarray, a_star: np.ndarray, d: int):
    P = W_star @ W_star.T / d
    dP = np.sqrt(1.0 + np.diag(P))
    U_star = TWO_OVER_PI * np.arcsin(P / np.outer(dP, dP))
    k = len(a_star)
    risk_tt = a_star @ U_star @ a_star / k**2
    return P, risk_tt


def _cross_risk(m: np.ndarray, q: np.ndarray, a: np.ndarray, P: np.ndarray, a_star: np.ndarray) -> float:
    """``(1/(pk)) sum_jr a_j a*_r U(w_j, w*_r)`` from the overlaps."""
    U = TWO_OVER_PI * np.arcsin(m / np.sqrt(np.outer(1.0 + q, 1.0 + np.diag(P))))
    return float(a @ U @ a_star) / (len(a) * len(a_star))


def _schedule(params: MeanFieldParams) -> tuple[int, np.ndarray]:
    steps = save_steps(saved_times(params), params.dt)
    return int(steps[-1]), steps


def _run_particles(params, seed, W, W_star, a, a_star):
    p, d = W.shape
    P, risk_tt = _teacher_terms(W_star, a_star, d)
    n_steps, steps = _schedule(params)
    save_at = {}
    for i, s in enumerate(steps):
        save_at.setdefault(int(s), []).append(i)
    rec = _Recorder(params)
    dt = params.dt
    noise = math.sqrt(2.0 * params.temperature * dt) if params.temperature > 0 else 0.0
    g = rng(seed, "langevin")
    decay = params.weight_decay
    W = W.copy()
    a = a.copy()
    for n in range(n_steps + 1):
        saving = n in save_at
        with_u = saving or params.train_second_layer
        V, Va, M, q = velocity(W, a, W_star, a_star, with_u=with_u)
        if saving:
            # a . Va = p * cross - p * (student term), so the risk needs no extra pair pass
            cross = _cross_risk(M, q, a, P, a_star)
            student = cross - float(a @ Va) / p
            risk = 0.5 * (risk_tt - 2.0 * cross + student)
            for i in save_at[n]:
                rec.record(i, risk, M, q, a)
            if not np.isfinite(risk):
                raise NumericalFailure(f"risk is not finite at t={n * dt:g}", rec.out)
        if n == n_steps:
            break
        if decay:
            V -= decay * W
        W += dt * V
        if noise:
            W += noise * g.standard_normal(W.shape)
        if params.train_second_layer:
            a += dt * (params.lr_v / params.lr * Va - decay * a)
    return rec.out


def _run_reduced(params, seed, W, W_star, a, a_star):
    p, d = W.shape
    k = W_star.shape[0]
    P, risk_tt = _teacher_terms(W_star, a_star, d)
    Pinv = np.linalg.inv(P)
    m = W @ W_star.T / d
    q0 = np.einsum("ij,ij->i", W, W) / d
    qp = q0 - np.einsum("ij,jk,ik->i", m, Pinv, m)
    finite_d = params.method == "reduced"
    z, wz = angle_nodes(d if finite_d else 0, k, params.n_angle)
    n_steps, steps = _schedule(params)
    save_at = {}
    for i, s in enumerate(steps):
        save_at.setdefault(int(s), []).append(i)
    rec = _Recorder(params)
    dt = params.dt
    T = params.temperature
    decay = params.weight_decay
    g = rng(seed, "langevin")
    a = a.copy()
    dm = np.empty_like(m)
    dqp = np.empty_like(qp)
    ua = np.empty_like(a)
    sqrtP = np.linalg.cholesky(P)
    for n in range(n_steps + 1):
        saving = n in save_at
        with_u = saving or params.train_second_layer
        reduced_velocity(m, qp, a, P, Pinv, a_star, z, wz, with_u, dm, dqp, ua)
        q = np.einsum("ij,jk,ik->i", m, Pinv, m) + qp
        if saving:
            cross = _cross_risk(m, q, a, P, a_star)
            student = cross - float(a @ ua) / p
            risk = 0.5 * (risk_tt - 2.0 * cross + student)
            for i in save_at[n]:
                rec.record(i, risk, m, q, a)
            if not np.isfinite(risk):
                raise NumericalFailure(f"risk is not finite at t={n * dt:g}", rec.out)
        if n == n_steps:
            break
        m_new = m + dt * (dm - decay * m)
        qp_new = qp + dt * (dqp - 2.0 * decay * qp)
        if T > 0:
            # Ito drift and martingale parts of |w_perp|^2/d and w.w*_r/d under sqrt(2T) dB
            if finite_d:
                qp_new += dt * 2.0 * T * (d - k) / d
                qp_new += 2.0 * np.sqrt(2.0 * T * np.maximum(qp, 0.0) * dt / d) * g.standard_normal(p)
                m_new += math.sqrt(2.0 * T * dt / d) * g.standard_normal((p, k)) @ sqrtP.T
            else:
                qp_new += dt * 2.0 * T
        if params.train_second_layer:
            a = a + dt * (params.lr_v / params.lr * ua - decay * a)
        m, qp = m_new, np.maximum(qp_new, 0.0)
    return rec.out
