"""The saved time grid shared by every time-dependent kernel.

Every kernel that outputs trajectories inherits :class:`TimeGridParams`, so a
theory kernel and its simulation counterpart save at the same ``time``
coordinates. The grid depends only on these fixed parameters (they are shape
parameters: they cannot be swept).

A continuous-time equation integrates onto every saved time exactly (:func:`substeps`). A
discrete process, whose step *is* its time unit, can only save at whole steps: its parameters
call :func:`check_steps`, which refuses a grid with a saved time off its step (beyond
:data:`STEP_RTOL`) or two saved times on one step, and it saves at :func:`save_steps`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from kernels.base import ParameterError, check

TIME_GRID_PARAMS = frozenset({"t_max", "n_times", "time_spacing", "t_min"})

# Steps one point may take. The cheapest step of any kernel costs ~10 ns, so this is hours of
# compute; beyond it a step count is a typo (dt = 1e-300) or overflows the integer counters.
MAX_STEPS = 1e12


@dataclass(frozen=True, kw_only=True)
class TimeGridParams:
    """Saved times: ``t = 0`` followed by ``n_times - 1`` points up to ``t_max``.

    Parameters
    ----------
    t_max
        Last saved time, in the kernel's time unit.
    n_times
        Number of saved times, ``t = 0`` included.
    time_spacing
        ``linear``: evenly spaced; ``log``: logarithmically from ``t_min`` to ``t_max``.
    t_min
        First saved time after ``t = 0`` of a ``log`` grid (unused by ``linear``).
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


def check_step_count(steps: float, name: str, what: str, fix: str) -> None:
    """Refuse a point of more than :data:`MAX_STEPS` steps, naming the figure and the field."""
    check(
        steps <= MAX_STEPS,
        name,
        f"{what} is {steps:.3g} steps, more than the {MAX_STEPS:.0e} one point may take; {fix}.",
    )


def saved_times(p: TimeGridParams) -> np.ndarray:
    """The saved time coordinates, always starting at t = 0."""
    if p.time_spacing == "linear":
        return np.linspace(0.0, p.t_max, p.n_times)
    return np.concatenate([[0.0], np.geomspace(p.t_min, p.t_max, p.n_times - 1)])


# A discrete process can only save at a step k * step; a saved time may sit at most this far
# from its step, relative to the time (0.1%: far below the Monte-Carlo and finite-d errors of
# the observables, and the same for a theory and a simulation on the same step).
STEP_RTOL = 1e-3


def check_steps(grid: TimeGridParams, step: float, step_name: str = "lr") -> None:
    """Refuse a time grid a discrete process with step ``step`` cannot save on.

    The rule: every saved time ``t`` is within :data:`STEP_RTOL` (relative) of a step
    ``k * step``, and no two saved times share a step. Then the state stored under ``time = t``
    is the state at ``t`` (to 0.1%), never a neighbouring or repeated one, and two discrete
    kernels on the same grid and step save at the same steps. The coordinates themselves are
    never moved onto the steps: they may depend only on the grid parameters (``step`` can be
    swept), and a theory and a simulation with different steps must share them.

    Call it from the ``__post_init__`` of a discrete-time kernel's parameters, so that a bad
    grid file fails before anything runs.

    Raises
    ------
    ParameterError
        Naming ``n_times`` (linear grid) or ``t_min`` (log grid), with the fix.
    """
    times = saved_times(grid)
    k = np.rint(times / step)
    field = "t_min" if grid.time_spacing == "log" else "n_times"
    unit = f"{step_name} = {step:g}"
    off = np.flatnonzero(np.abs(k * step - times) > STEP_RTOL * times)
    if off.size:
        t, saved = times[off[0]], k[off[0]] * step
        raise ParameterError(
            f"{field}: saved times must be whole steps of {unit} (within {STEP_RTOL:.1%} of t), but "
            f"t = {t:g} is {t / step:.4g} steps: its state would be the one at t = {saved:g}. "
            + _fix(grid, step, step_name)
        )
    same = np.flatnonzero(np.diff(k) == 0)
    if same.size:
        i = same[0]
        raise ParameterError(
            f"{field}: saved times t = {times[i]:g} and t = {times[i + 1]:g} fall on the same step "
            f"of {unit} (step {int(k[i])}): the state would be saved twice. " + _fix(grid, step, step_name)
        )


def _fix(grid: TimeGridParams, step: float, step_name: str) -> str:
    """How to change the grid so that :func:`check_steps` accepts it."""
    if grid.time_spacing == "log":
        return (
            f"On a log grid use `t_min >= {step / (2 * STEP_RTOL):g}` ({1 / (2 * STEP_RTOL):g} steps: "
            f"every saved time is then within {STEP_RTOL:.1%} of its step) and few enough `n_times` "
            f"that consecutive saved times are at least one step apart, or a linear grid."
        )
    spacing = grid.t_max / (grid.n_times - 1)
    fix = f"The spacing t_max/(n_times - 1) = {spacing:g} must be a multiple of {step_name}"
    total = round(grid.t_max / step)
    if total >= 1 and abs(total * step - grid.t_max) <= 1e-9 * grid.t_max:
        # intervals that divide the whole run, nearest the requested n_times
        divisors = [n for n in range(1, math.isqrt(total) + 1) if total % n == 0]
        divisors += [total // n for n in divisors]
        best = min(divisors, key=lambda n: (abs(n - (grid.n_times - 1)), n))
        fix += f": e.g. `n_times = {best + 1}`."
    else:
        fix += f", and `t_max` ({grid.t_max:g}, {grid.t_max / step:.4g} steps) a whole number of steps."
    return fix


def save_steps(grid: TimeGridParams, step: float, step_name: str = "lr") -> np.ndarray:
    """Index of the step at each saved time (step k is at ``k * step``), for a discrete process.

    The grid must pass :func:`check_steps` (it raises otherwise): each saved time is then its
    step to :data:`STEP_RTOL`, and the indices are strictly increasing. A continuous-time
    equation lands exactly on every saved time with :func:`substeps` instead.
    """
    check_steps(grid, step, step_name)
    return np.rint(saved_times(grid) / step).astype(np.int64)


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
