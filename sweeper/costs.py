"""What the points still to compute will cost, from what the finished ones cost.

Points of a grid rarely cost the same: a longer ``t_max``, a larger ``d`` or a
smaller learning rate can make one value of an axis ten times dearer than
another. A rate measured in points per second then lies about the time left
(the ETA jumps as the dear values come up). Here the remaining points are
weighted by what is known of their cost:

- for each grid axis, the median cost of the finished points at each of its
  values (a value not seen yet takes its nearest seen neighbour's);
- the axis whose medians explain most of the spread of the costs (the largest
  sum over its values of count x (median - mean of the medians)^2, a one-way
  analysis of variance on medians) is the one that sets the cost; each remaining
  point is charged the median of its value on that axis;
- with no axis seen at two values, every remaining point costs the overall median.

The time left is that cost over the throughput (compute seconds done per
wall-clock second: it counts the workers, their idle time and the driver's
overhead as they were). Pure numpy: no store, no Ray, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SAMPLE = 100_000  # finished points the medians are taken over, at most (evenly spaced)


def value_medians(indices: np.ndarray, costs: np.ndarray, size: int) -> np.ndarray:
    """The median cost at each of an axis's ``size`` values (NaN where none finished).

    ``indices``: (n,) the axis index of each finished point; ``costs``: (n,) their costs.
    """
    medians = np.full(size, np.nan)
    if indices.size == 0:
        return medians
    order = np.lexsort((costs, indices))
    values, starts, counts = np.unique(indices[order], return_index=True, return_counts=True)
    sorted_costs = costs[order]
    lower = sorted_costs[starts + (counts - 1) // 2]
    upper = sorted_costs[starts + counts // 2]
    medians[values] = (lower + upper) / 2
    return medians


def fill_nearest(medians: np.ndarray) -> np.ndarray:
    """Unseen values (NaN) take the median of the nearest seen value along the axis."""
    seen = np.flatnonzero(np.isfinite(medians))
    if seen.size == 0 or seen.size == medians.size:
        return medians
    positions = np.arange(medians.size)
    right = np.clip(np.searchsorted(seen, positions), 0, seen.size - 1)
    left = np.clip(right - 1, 0, seen.size - 1)
    nearest = np.where(
        np.abs(seen[left] - positions) <= np.abs(seen[right] - positions), seen[left], seen[right]
    )
    return medians[nearest]


def remaining_cost(indices: np.ndarray, costs: np.ndarray, remaining: Sequence[np.ndarray]) -> float | None:
    """Estimated compute seconds of the points still to do; None if nothing finished yet.

    ``indices``: (n, ndim) grid indices of finished points; ``costs``: (n,) their seconds
    (NaN entries are ignored); ``remaining[a][v]``: how many points still to do have
    index ``v`` on axis ``a`` (every axis's counts sum to the same total).
    """
    keep = np.isfinite(costs)
    indices, costs = np.asarray(indices)[keep], np.asarray(costs, dtype=float)[keep]
    total = int(np.sum(remaining[0])) if len(remaining) else 0
    if total == 0:
        return 0.0
    if costs.size == 0:
        return None
    if costs.size > SAMPLE:  # the medians of an even sample: a 10^7-point store costs no more than 10^5
        pick = np.linspace(0, costs.size - 1, SAMPLE).astype(np.int64)
        indices, costs = indices[pick], costs[pick]
    best, spread = None, 0.0
    for axis, counts in enumerate(remaining):
        medians = value_medians(indices[:, axis], costs, len(counts))
        seen = np.flatnonzero(np.isfinite(medians))
        if seen.size < 2:
            continue
        n = np.bincount(indices[:, axis], minlength=len(counts))[seen]
        mean = np.dot(n, medians[seen]) / n.sum()
        explained = float(np.dot(n, (medians[seen] - mean) ** 2))
        if explained > spread:
            best, spread = (axis, fill_nearest(medians)), explained
    if best is None:
        return float(total * np.median(costs))
    axis, medians = best
    return float(np.dot(np.asarray(remaining[axis], dtype=float), medians))


def time_left(cost: float | None, throughput: float | None) -> float | None:
    """Wall seconds to compute ``cost`` compute seconds at ``throughput`` (compute s per wall s)."""
    if cost is None or not throughput or throughput <= 0:
        return None
    return cost / throughput


def throughput(
    finished_at: np.ndarray, costs: np.ndarray, now: float, at_most: float | None = None
) -> float | None:
    """Compute seconds done per wall-clock second, from points finished at ``finished_at``.

    The work of the points finished at the first moment is left out (it began before
    the window), so the first results of several workers do not inflate it; ``at_most``
    caps it (the number of workers: more cannot run at once). None until two moments.
    """
    finished_at = np.asarray(finished_at, dtype=float)
    costs = np.asarray(costs, dtype=float)
    if finished_at.size == 0:
        return None
    first = finished_at.min()
    span = now - first
    later = finished_at > first
    if span <= 0 or not later.any():
        return None
    rate = float(np.nansum(costs[later])) / span
    return min(rate, at_most) if at_most else rate


def per_axis(mask: np.ndarray) -> list[np.ndarray]:
    """How many True entries of a grid-shaped ``mask`` lie at each value of each axis."""
    return [
        mask.sum(axis=tuple(j for j in range(mask.ndim) if j != axis), dtype=np.int64)
        for axis in range(mask.ndim)
    ]
