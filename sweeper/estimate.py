"""`submit --dry-run --estimate`: what a grid will cost, before it runs.

From the finished points of the grid's own store if it has any, else from a few pilot
points run here and written nowhere; the costs weighted as :mod:`sweeper.costs` does.
"""

from __future__ import annotations

import math
import os

import numpy as np

from sweeper import costs, rawread
from sweeper.blocks import PENDING
from sweeper.creation import store_exists
from sweeper.errors import SweeperError
from sweeper.execution import IN_PROCESS_BELOW
from sweeper.progress import format_seconds
from sweeper.spec import GridSpec
from sweeper.store import Store

RAY_START = 7.0  # seconds to start and stop a private local Ray (IN_PROCESS_BELOW says how measured)
PILOT_POINTS = 3  # the first, middle and last points of the grid


def describe_estimate(spec: GridSpec) -> list[str]:
    """`--dry-run --estimate`: the grid's wall time on its workers, from the costs of finished
    points of its store, or else of a few pilot points run here (written nowhere)."""
    known = _store_costs(spec)
    if known is not None:
        indices, walls, pending, warm_up = known
        source = f"the {len(walls)} finished points of the store"
    else:
        indices, walls, warm_up = _pilot(spec)
        pending = np.ones(spec.shape, dtype=bool)
        source = f"{len(walls)} pilot points run here ({_spread(walls)} each)"
    if spec.refine is not None:  # what is known to be needed: the coarse grid's points
        pending = pending & coarse(spec)
    n_todo = int(pending.sum())
    cost = costs.remaining_cost(indices, walls, costs.per_axis(pending))
    if cost is None:
        return [f"estimate  none: no point finished ({source})"]
    workers = spec.options.workers
    lines = [f"estimate  {format_seconds(cost)} of compute for {n_todo} points, from {source}"]
    warm = f"warm-up {warm_up:.1f} s" if warm_up is not None else "warm-up unknown"
    here = workers is None and spec.options.time_limit is None and spec.refine is None  # a pilot decides
    if workers == 0 or (here and cost < IN_PROCESS_BELOW):
        lines.append(f"          about {format_seconds(cost + (warm_up or 0))} in this process ({warm})")
    else:
        workers = workers or os.cpu_count() or 1
        total = cost / workers + (warm_up or 0) + RAY_START
        lines.append(
            f"          about {format_seconds(total)} on {workers} workers ({warm} per worker, "
            f"and about {RAY_START:.0f} s to start a private Ray)"
        )
    if spec.refine is not None:
        lines.append(
            "          for the coarse grid only: refinement adds the points near the boundary as it "
            "goes (one crossing of a 1-D axis: one point a level; docs/refinement.md §2)"
        )
    return lines


def coarse(spec: GridSpec) -> np.ndarray:
    """Grid-shaped: the coarse points of a refined grid (their first ``min_seeds`` seeds)."""
    mask = np.zeros(spec.shape, dtype=bool)
    step = 2**spec.refine.levels
    at = [slice(None, None, step) if d in spec.refine.axes else slice(None) for d in spec.dims[:-1]]
    mask[(*at, slice(0, spec.refine.min_seeds))] = True
    return mask


def _store_costs(spec: GridSpec):
    """(indices, wall times, pending mask, warm-up) of the grid's own store's finished points, or None."""
    if not store_exists(spec.options.store):
        return None
    try:
        store = Store.open(spec.options.store, mode="r")
    except SweeperError:
        return None
    if store.layout.shape != spec.shape:
        return None
    status = rawread.read_lenient(store, "status")
    wall = rawread.read_lenient(store, "wall_time")
    done = (status != PENDING) & np.isfinite(wall)
    if not done.any():
        return None
    return np.argwhere(done), wall[done], status == PENDING, store.attrs.get("warm_up_seconds")


def _pilot(spec: GridSpec) -> tuple[np.ndarray, np.ndarray, float]:
    """Run the first, middle and last points here (the kernel warmed up first): their indices and costs."""
    from sweeper.blocks import BlockTask
    from sweeper.runner import BlockRunner

    runner = BlockRunner(spec.kernel_class(), spec.fixed, spec.options.outputs)
    warm_up = runner.warm_up()
    flat = np.unique(np.linspace(0, spec.n_points - 1, PILOT_POINTS).astype(np.int64))
    indices = np.stack(np.unravel_index(flat, spec.shape), axis=-1)
    points = [spec.point(tuple(int(i) for i in index)) for index in indices]
    result = runner.run(BlockTask((), indices, [p[0] for p in points], [p[1] for p in points]))
    return indices, result.wall_time, warm_up


def _spread(walls: np.ndarray) -> str:
    low, high = float(np.nanmin(walls)), float(np.nanmax(walls))
    return f"{low:.3g} s" if math.isclose(low, high, rel_tol=0.05) else f"{low:.3g}-{high:.3g} s"
