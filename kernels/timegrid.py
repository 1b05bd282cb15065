"""The saved time grid shared by every time-dependent kernel.

Every kernel that outputs trajectories inherits :class:`TimeGridParams`, so a
theory kernel and its simulation counterpart save at the same ``time``
coordinates. The grid depends only on these fixed parameters (they are shape
parameters: they cannot be swept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from kernels.base import check

TIME_GRID_PARAMS = frozenset({"t_max", "n_times", "time_spacing", "t_min"})


@dataclass(frozen=True, kw_only=True)
class TimeGridParams:
    """Saved times: ``t = 0`` followed by ``n_times - 1`` points up to ``t_max``.

    ``time_spacing="linear"`` spaces them evenly; ``"log"`` spaces them
    logarithmically from ``t_min`` to ``t_max``.
    """

    t_max: float = 100.0
    n_times: int = 101
    time_spacing: Literal["linear", "log"] = "linear"
    t_min: float = 0.01

    def __post_init__(self) -> None:
        check(self.t_max > 0, "t_max", f"must be positive, got {self.t_max!r}.")
        check(self.n_times >= 2, "n_times", f"must be at least 2, got {self.n_times!r}.")
        if self.time_spacing == "log":
            check(
                0 < self.t_min < self.t_max,
                "t_min",
                f"must satisfy 0 < t_min < t_max for a log grid, got t_min={self.t_min!r}, "
                f"t_max={self.t_max!r}.",
            )


def saved_times(p: TimeGridParams) -> np.ndarray:
    """The saved time coordinates, always starting at t = 0."""
    if p.time_spacing == "linear":
        return np.linspace(0.0, p.t_max, p.n_times)
    return np.concatenate([[0.0], np.geomspace(p.t_min, p.t_max, p.n_times - 1)])


def save_steps(times: np.ndarray, dt: float) -> np.ndarray:
    """Index of the step nearest each saved time (step k is at k*dt).

    For a discrete process whose step is ``dt``; it is off the saved time by up to ``dt/2``
    (see :func:`substeps` for a continuous-time equation).
    """
    return np.rint(np.asarray(times) / dt).astype(np.int64)


def substeps(times: np.ndarray, dt: float) -> np.ndarray:
    """Equal integration steps from each saved time to the next, none longer than ``dt``.

    Entry ``j`` is ``ceil((times[j] - times[j-1]) / dt)`` (entry 0, at ``t = 0``, is 0): an
    integrator that takes that many steps of ``(times[j] - times[j-1]) / n`` lands exactly
    on every saved time. Use it for the discretisation of a continuous-time equation; a
    discrete process whose step *is* ``dt`` saves at :func:`save_steps` instead.

    A ratio within ``1e-9`` (relative) of an integer counts as that integer, so that a linear
    grid whose spacing is a multiple of ``dt`` takes exactly ``spacing / dt`` steps of ``dt``
    despite the round-off of ``linspace``.
    """
    times = np.asarray(times, dtype=float)
    intervals = np.diff(times, prepend=times[:1])
    n = np.ceil(intervals / dt * (1.0 - 1e-9)).astype(np.int64)
    return np.where(intervals > 0, np.maximum(n, 1), 0)
