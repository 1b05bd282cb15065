"""The `sgd_online` kernel: one-pass SGD of a two-layer network at finite d.

The ground truth of the `ode` and `meanfield` kernels (Saad & Solla 1995; Goldt et al.
2019, arXiv 1906.08632; Veiga et al. 2022, arXiv 2202.00293): the same parameter names
(the shared :class:`kernels.twolayer.model.TwoLayerParams`), the same outputs, on the
same saved times in the same time unit (``docs/twolayer.md``). The simulator is
:mod:`kernels.twolayer.sgd_online.simulation`.

Random streams (:func:`kernels.base.rng`): ``"teacher"`` and ``"init"`` (through
:func:`kernels.twolayer.model.draw_weights`, as the theory kernels), ``"data"``,
``"label_noise"``, ``"test"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from kernels.base import Kernel, Seed, check
from kernels.schema import Output, pick
from kernels.timegrid import TIME_GRID_PARAMS, check_step_count, saved_times
from kernels.twolayer import schema as family
from kernels.twolayer.model import TwoLayerParams, steps_at, steps_per_time
from kernels.twolayer.sgd_online.simulation import simulate


@dataclass(frozen=True, kw_only=True)
class OnlineParams(TwoLayerParams):
    """The shared two-layer parameters plus the simulation's own.

    Parameters
    ----------
    n_test
        If > 0, also output ``risk_test``, the risk on a fixed test set of this many
        noiseless samples (a check of the closed form; ReLU included).
    save_particles
        Output the per-unit overlaps ``m``, ``q``, ``a`` of the first ``save_particles``
        student units (as the `meanfield` kernel does).
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
        check_step_count(
            self.t_max * steps_per_time(self), "t_max", "t_max * steps_per_time", "lower `t_max` or `d`"
        )
        steps = steps_at(self, saved_times(self))
        same = np.flatnonzero(np.diff(steps) == 0)
        check(
            same.size == 0,
            "t_min" if self.time_spacing == "log" else "n_times",
            f"saved times {saved_times(self)[same[0]]:g} and {saved_times(self)[same[0] + 1]:g} fall on the "
            f"same SGD step ({steps_per_time(self):g} steps per unit time): one state would be stored "
            f"under two times. Raise `t_min` or lower `n_times`."
            if same.size
            else "",
        )


class SGDOnlineKernel(Kernel):
    """One-pass SGD of a two-layer teacher-student network at finite d."""

    name = "sgd_online"
    version = "1"
    Params = OnlineParams
    shape_params = TIME_GRID_PARAMS | {"K", "M", "n_test", "save_particles"}
    example = {"d": 50, "K": 2, "M": 2, "t_max": 1.0, "n_times": 3}
    failing_example = {"d": 50, "K": 2, "M": 2, "activation": "linear", "lr": 5.0, "t_max": 5.0, "n_times": 3}

    dims = family.DIMS
    outputs = pick(family.OUTPUTS, "risk", "Q", "M", "P", "v", "m", "q", "a") | {
        "risk_test": Output(
            ("time",),
            "population risk on a fixed test set",
            description="mean over n_test noiseless samples of (f* - f)^2 / 2",
            when="n_test",
        ),
    }
    attrs = family.ATTRS | {
        "time_units": "t = steps / d without scalings; steps / d^(1+kappa+delta) or "
        "steps / d^(1+2(kappa+delta)) with them (docs/twolayer.md)",
    }

    def _run(self, params: OnlineParams, seed: Seed) -> Mapping[str, np.ndarray]:
        return simulate(params, seed)
