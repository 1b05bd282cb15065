"""The ``meanfield`` kernel: mean-field particle flow of a wide two-layer network.

Two discretisations of one Wasserstein gradient flow ``d_t rho = div(rho grad Psi(theta; rho))``
(Mei, Montanari & Nguyen, PNAS 2018, eq. 7, and its noisy version eq. 12; Chizat & Bach,
NeurIPS 2018) of ``f(x) = (1/p) sum_j a_j g(w_j.x / sqrt d)`` learning
``f*(x) = (1/k) sum_r a*_r g(w*_r.x / sqrt d)`` under the square loss, ``g = erf(. / sqrt 2)``
or ``relu``:

``method = "particles"``
    the ``p = K`` particles ``theta_j = (a_j, w_j)`` in ``R^(d+1)`` follow the population
    velocity field of docs/meanfield.md §2 (closed forms; :mod:`kernels.twolayer.meanfield.particles`),
    explicit Euler, optional Langevin noise at ``temperature`` (MMN eq. 12) and L2
    confinement ``weight_decay``, second layer fixed or trained. At finite ``K`` and ``d``
    this is *exactly* the gradient-flow part of the overlap ODE of the `ode` kernel
    (``quadratic_terms = False``) for the same ``K`` units: the tests check it to 1e-4.
``method = "reduced"`` / ``"reduced_dinf"``
    the per-unit overlaps ``(m_j, q_perp_j)`` of Arnaboldi et al. (COLT 2023,
    arXiv:2302.05882; docs/meanfield.md §4; :mod:`kernels.twolayer.meanfield.reduced`) with every
    pair, the self pair included, averaged over the angle ``Z`` of the orthogonal components
    (finite ``d``), or ``Z = 0`` (``d -> infinity``). Started from the same ``K`` initial units
    as the particles, so the two methods with one seed start from the same overlaps.

Conventions are those of :mod:`kernels.twolayer.model` (shared with `ode` and `sgd`): the student
is ``sum_j v_j g(.)`` with ``v_j = a_j / K`` (``committee = "mean"``: ``a_j = 1``), the
initial weights come from :func:`kernels.twolayer.model.draw_weights`, and ``time`` is
``steps / steps_per_time`` of one-pass SGD (``steps / d`` without scalings), in which the
flow runs at rate ``lr / K``; ``time_unit = "flow"`` switches to the K-independent flow time
``steps lr / (K d)`` (Arnaboldi et al. 2023, docs/twolayer.md §3.2). ``risk`` is the closed
form ``E[(f* - f)^2] / 2`` without the label-noise floor, as in `ode`.

Outputs: ``risk`` on the saved times; with ``histograms`` the density of ``(m_jr, q_j)`` on
fixed bins (so ``K`` stays sweepable); with ``save_particles = n`` the overlaps ``m``, ``q``
and second layer ``a`` of the first ``n`` units (names of the `sgd_online` kernel).

Activations: ``erf`` for every method; ``relu`` for ``method = "particles"`` only, with the
closed forms of docs/twolayer.md §6.3 (``I2``, ``J2``, and ``dI2/dC11`` by Price's theorem). The
reduced dynamics for ReLU would need the angle average of those kinked functions and is not
implemented (a ParameterError says so). SGD itself, the finite-step counterpart, is the `sgd`
kernel in online mode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from kernels.base import Kernel, Seed, check
from kernels.schema import Dim, Output, pick
from kernels.timegrid import TIME_GRID_PARAMS, check_step_count
from kernels.twolayer import schema as family
from kernels.twolayer.meanfield.flow import Steps, flow_rate, run_particles, run_reduced
from kernels.twolayer.model import TwoLayerParams, draw_weights, time_unit


@dataclass(frozen=True, kw_only=True)
class MeanFieldParams(TwoLayerParams):
    """Parameters of the ``meanfield`` kernel.

    The two-layer names (``d``, ``K`` = p particles, ``M`` = k teacher units, ``committee``,
    ``lr``, ``lr_v``, ``train_second_layer``, ``weight_decay``, ``kappa``, ``delta``, ``init``,
    ``init_scale``, ``teacher``, ``Q0``/``M0``/``P0``/``v0``) mean what they mean for `ode` and
    `sgd` (:class:`kernels.twolayer.model.TwoLayerParams`). The student is ``f = sum_j v_j g(.)``
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
        on K or lr; 0.02-0.1 is stable for erf, docs/meanfield.md §3).
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
        check_step_count(
            self.t_max * flow_rate(self) / self.dt, "dt", "the flow time / dt", "raise `dt` or lower `t_max`"
        )
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


def _time_units(p: MeanFieldParams) -> str:
    if p.time_unit == "flow":
        return "steps * lr_eff / (K d) (mean-field flow time, Arnaboldi et al. 2023)"
    return time_unit(p)


def _bin_centres(spec: tuple[float, float, int]) -> np.ndarray:
    lo, hi, n = spec
    edges = np.linspace(lo, hi, int(n) + 1)
    return 0.5 * (edges[1:] + edges[:-1])


class MeanFieldKernel(Kernel):
    """Mean-field particle PDE and its reduced ``(m, q_perp)`` dynamics; see the module docstring."""

    name = "meanfield"
    version = "1"
    Params = MeanFieldParams
    shape_params = TIME_GRID_PARAMS | {"M", "time_unit", "save_particles", "histograms", "hist_m", "hist_q"}
    example = {"d": 10, "K": 50, "M": 2, "t_max": 1.0, "n_times": 3, "time_unit": "flow", "save_particles": 3}
    failing_example = {"d": 10, "K": 50, "M": 2, "time_unit": "flow", "train_second_layer": True, "lr_v": 1.0}

    dims = family.DIMS | {
        "time": dataclasses.replace(family.DIMS["time"], units=_time_units),
        "m_bin": Dim("centre of the m bin (overlap with a teacher unit)", lambda p: _bin_centres(p.hist_m)),
        "q_bin": Dim("centre of the q bin (|w|^2 / d)", lambda p: _bin_centres(p.hist_q)),
    }
    outputs = (
        pick(family.OUTPUTS, "risk")
        | {
            "density": Output(
                ("time", "teacher", "m_bin", "q_bin"),
                "density of units over (m, q)",
                description="histogram over units j of (m_jr, q_j), normalised to a density (fraction "
                "of units per unit area of the (m, q) plane); mass outside the bins is dropped",
                when="histograms",
            ),
        }
        | pick(family.OUTPUTS, "m", "q", "a")
    )
    attrs = family.ATTRS | {
        "time_units": _time_units,
        "dynamics": "population gradient flow (lr -> 0 at fixed K, d: the I3 part of the overlap "
        "ODE), explicit Euler with step dt in flow time; optional Langevin noise",
    }

    # -- running ------------------------------------------------------------
    def _run(self, params: MeanFieldParams, seed: Seed) -> Mapping[str, np.ndarray]:
        W, W_star, v, v_star = draw_weights(params, seed)
        # mean-field second layers: f = (1/K) sum_j a_j g, f* = (1/M) sum_r a*_r g
        a = params.K * np.asarray(v, dtype=float)
        a_star = params.M * np.asarray(v_star, dtype=float)
        steps = Steps(params)
        if params.method == "particles":
            return run_particles(params, seed, steps, W, W_star, a, a_star)
        return run_reduced(params, seed, steps, W, W_star, a, a_star)


# -- helpers --------------------------------------------------------------------------
