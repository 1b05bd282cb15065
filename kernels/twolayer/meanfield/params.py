"""Parameters of the `meanfield` kernel and the rates they set (``docs/meanfield.md §5``).

:func:`flow_rate` converts the kernel's ``time`` into mean-field flow time;
:func:`second_layer_rate` is the second layer's rate in flow time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kernels.base import check
from kernels.timegrid import check_step_count
from kernels.twolayer.model import TwoLayerParams, learning_rates, steps_per_time


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
    integrator
        Integrator of the deterministic flow, ``adaptive`` (Dormand-Prince 5(4) with error
        control to ``rtol``/``atol``, the `ode` kernel's) or ``euler`` (explicit Euler at step
        ``dt``), while with ``temperature > 0`` either value means Euler-Maruyama at step ``dt``.
        The rule is fixed by the two stored values, so a store says which scheme made each
        point; the value is never rewritten, because a grid records the parameters of its
        first point only (docs/meanfield.md §3.1).
    rtol, atol, max_steps
        Tolerances and step budget of ``adaptive`` at ``temperature = 0``.
    dt
        Step in *flow* time, whatever ``time_unit``, of ``euler`` and of Euler-Maruyama
        (``temperature > 0``); its stability limit does not depend on K or lr, and 0.02-0.1
        is stable for erf (docs/meanfield.md §3).
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
    integrator: Literal["adaptive", "euler"] = "adaptive"
    rtol: float = 1e-8
    atol: float = 1e-10
    max_steps: int = 10_000_000
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
        check(1e-13 <= self.rtol < 1, "rtol", f"must be in [1e-13, 1), got {self.rtol!r}.")
        check(self.atol > 0, "atol", f"must be positive, got {self.atol!r}.")
        check(self.max_steps >= 1, "max_steps", f"must be a positive integer, got {self.max_steps!r}.")
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


def fixed_steps(p: MeanFieldParams) -> bool:
    """Does ``p`` take fixed steps of ``dt``: explicit Euler, or Euler-Maruyama because
    Langevin noise makes the flow an SDE (an error-controlled step would need an SDE
    method); otherwise Dormand-Prince 5(4) (docs/meanfield.md §3.1)."""
    return p.integrator == "euler" or p.temperature > 0


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
