"""Adaptive refinement's decisions: which points of the finest grid to compute, as a pure
function of the results stored so far (docs/refinement.md).

Everything here takes grid-shaped arrays (the dims of a store, ``seed`` last) of the
points' status and of the refined output reduced to one number per point, and returns
grid-shaped answers; it knows nothing of stores, workers or physics. Because the
decisions depend on nothing else, a driver killed at any moment and started again
takes the same ones (docs/refinement.md §4).

- :func:`per_seed` turns status and reduced output into each point's quantity: a
  success (0 or 1) when a crossing is located, the output itself when a change is.
- :func:`seed_rule` decides, per parameter point, how many of its seeds are needed
  (sequential: rounds of ``min_seeds``, doubled while the success fraction's Wilson
  interval holds the level) and, once that is settled, the point's value.
- :func:`cell_rule` decides, level by level, which cells are refined (active, with
  corners known and in disagreement) and so which parameter points are needed, not
  needed, or not decided yet.
- :func:`decide` combines the two into a code per point: NEED, SKIP or WAIT.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sweeper.blocks import FAILED, OK
from sweeper.refine_options import FAILED_OUTPUT, Refinement

WAIT, NEED, SKIP = 0, 1, 2  # per point: not decided yet / to compute / not needed


@dataclass(frozen=True)
class Geometry:
    """Where the refined axes sit among a grid's dims (``seed`` last)."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    refined: tuple[int, ...]  # positions of the refined axes in ``dims``
    levels: int

    @classmethod
    def of(cls, dims: Sequence[str], shape: Sequence[int], refine: Refinement) -> Geometry:
        return cls(tuple(dims), tuple(shape), tuple(list(dims).index(a) for a in refine.axes), refine.levels)

    @property
    def param_shape(self) -> tuple[int, ...]:
        return self.shape[:-1]

    def _order(self) -> list[int]:
        others = [i for i in range(len(self.param_shape)) if i not in self.refined]
        return others + list(self.refined)

    def canonical(self, params: np.ndarray) -> np.ndarray:
        """A parameter-shaped array as (slices, *refined axes): every other dim is one slice."""
        moved = params.transpose(self._order())
        return moved.reshape(-1, *(self.param_shape[i] for i in self.refined))

    def uncanonical(self, canon: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`canonical`."""
        order = self._order()
        moved = canon.reshape([self.param_shape[i] for i in order])
        return moved.transpose(np.argsort(order))


def reduce_output(values: np.ndarray, how: str | None) -> np.ndarray:
    """An output with (at most) one dim of its own, after the grid dims, reduced to a number."""
    values = np.asarray(values, dtype=np.float64)
    if how is None:
        return values
    with np.errstate(all="ignore"):
        if how == "last":
            return values[..., -1]
        if how == "first":
            return values[..., 0]
        return {"min": np.min, "max": np.max, "mean": np.mean}[how](values, axis=-1)


def per_seed(
    status: np.ndarray, reduced: np.ndarray | None, refine: Refinement
) -> tuple[np.ndarray, np.ndarray]:
    """(done, quantity) per point: whether it finished (ok or failed) and what it says.

    Crossing: 1.0 where the point succeeded (finished ok, with the reduced output below
    ``below`` / above ``above``), else 0.0; a failed point never succeeds. Change: the
    reduced output where the point finished ok, NaN where it failed.
    """
    done = (status == OK) | (status == FAILED)
    ok = status == OK
    if refine.output == FAILED_OUTPUT:
        return done, ok.astype(np.float64)
    with np.errstate(invalid="ignore"):
        if refine.below is not None:
            return done, (ok & (reduced < refine.below)).astype(np.float64)
        if refine.above is not None:
            return done, (ok & (reduced > refine.above)).astype(np.float64)
    return done, np.where(ok, reduced, np.nan)


def seed_rounds(n_seeds: int, min_seeds: int | None) -> list[int]:
    """How many seeds a parameter point has after each round: min_seeds, doubled, ..., all."""
    first = min_seeds or n_seeds
    rounds = [min(first, n_seeds)]
    while rounds[-1] < n_seeds:
        rounds.append(min(2 * rounds[-1], n_seeds))
    return rounds


def wilson(k: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of a binomial fraction k/n at normal quantile ``z``."""
    n = np.asarray(n, dtype=np.float64)
    p = np.asarray(k, dtype=np.float64) / n
    scale = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / scale
    half = z / scale * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


@dataclass
class SeedDecision:
    """Per parameter point (arrays of the grid's shape without ``seed``)."""

    prefix: np.ndarray  # seeds needed so far (the first `prefix` of them)
    settled: np.ndarray  # no more seeds will be needed, and `value` is final
    value: np.ndarray  # success fraction (crossing) or seed mean (change); NaN until settled
    n: np.ndarray  # seeds the value is over


def seed_rule(done: np.ndarray, quantity: np.ndarray, refine: Refinement) -> SeedDecision:
    """How many seeds each parameter point needs, and its value once that is settled."""
    n_seeds = done.shape[-1]
    rounds = seed_rounds(n_seeds, refine.min_seeds)
    params = done.shape[:-1]
    prefix = np.full(params, rounds[0], dtype=np.int64)
    settled = np.zeros(params, dtype=bool)
    value = np.full(params, np.nan)
    n = np.zeros(params, dtype=np.int64)
    for r, following in zip(rounds, rounds[1:] + [None]):
        here = ~settled & (prefix == r)
        finished = done[..., :r].all(axis=-1)
        if refine.crossing:
            k = quantity[..., :r].sum(axis=-1)
            frac = k / r
            lo, hi = wilson(k, r, refine.z)
            certain = (lo > refine.fraction) | (hi < refine.fraction) if following is not None else True
        else:
            with np.errstate(all="ignore"):
                q = quantity[..., :r]
                count = np.isfinite(q).sum(axis=-1)
                frac = np.where(count > 0, np.nansum(q, axis=-1) / np.maximum(count, 1), np.nan)
            certain = True
        stop = here & finished & certain
        settled |= stop
        value[stop] = frac[stop]
        n[stop] = r
        if following is not None:
            prefix[here & finished & ~stop] = following
    return SeedDecision(prefix, settled, value, n)


def sides(decision: SeedDecision, refine: Refinement) -> np.ndarray:
    """What is compared between a cell's corners: the side of the level (crossing) or the value."""
    if refine.crossing:
        return (decision.value >= refine.fraction).astype(np.float64)
    return decision.value


def _differ(corners: np.ndarray, refine: Refinement) -> np.ndarray:
    """Whether the corners (stacked on axis 0) disagree."""
    if refine.crossing:
        return corners.max(axis=0) != corners.min(axis=0)
    nan = np.isnan(corners)
    with np.errstate(all="ignore"):
        spread = np.nanmax(np.where(nan, -np.inf, corners), axis=0) - np.nanmin(
            np.where(nan, np.inf, corners), axis=0
        )
    mixed = nan.any(axis=0) & ~nan.all(axis=0)
    return mixed | (~nan.all(axis=0) & (spread > refine.tolerance))


def cell_rule(
    value: np.ndarray, known: np.ndarray, levels: int, refine: Refinement
) -> tuple[np.ndarray, np.ndarray]:
    """(need, skip) per parameter point, from the canonical (slices, *refined axes) arrays.

    Level 0 is the coarse grid (every ``2**levels``-th finest value): all needed. A cell of
    level m (side ``2**(levels - m)`` finest steps) is active if m = 0 or its parent was
    refined; it is refined once active with its corners known and in disagreement, and
    then every point of the next level in it (its closure: edges and faces too) is
    needed. A point of level m + 1 is not needed once every cell of level m around it is
    settled unrefined (inactive, or active with corners that agree).
    """
    k = value.ndim - 1
    need = np.zeros(value.shape, dtype=bool)
    skip = np.zeros(value.shape, dtype=bool)
    top = 2**levels
    need[(slice(None),) + (slice(None, None, top),) * k] = True
    cells = tuple((n - 1) // top for n in value.shape[1:])
    active = np.ones((value.shape[0], *cells), dtype=bool)
    inactive = np.zeros_like(active)
    for m in range(levels):
        h = 2 ** (levels - m)
        on_grid = (slice(None),) + (slice(None, None, h),) * k
        v, kn = value[on_grid], known[on_grid]
        corner_values, corner_known = [], []
        for offset in itertools.product((0, 1), repeat=k):
            at = (slice(None),) + tuple(slice(o, o + c) for o, c in zip(offset, cells))
            corner_values.append(v[at])
            corner_known.append(kn[at])
        all_known = np.all(corner_known, axis=0)
        disagree = _differ(np.stack(corner_values), refine)
        refined = active & all_known & disagree
        unrefined = inactive | (active & all_known & ~disagree)
        half = h // 2
        fine = (value.shape[0], *(2 * c + 1 for c in cells))
        need_fine = np.zeros(fine, dtype=bool)
        maybe_fine = np.zeros(fine, dtype=bool)
        for offset in itertools.product((0, 1, 2), repeat=k):
            at = (slice(None),) + tuple(slice(o, o + 2 * c, 2) for o, c in zip(offset, cells))
            need_fine[at] |= refined
            maybe_fine[at] |= ~unrefined
        new = np.zeros(fine, dtype=bool)  # the points of level m + 1: an odd index on some axis
        for axis in range(1, k + 1):
            odd = [slice(None)] * (k + 1)
            odd[axis] = slice(1, None, 2)
            new[tuple(odd)] = True
        at_half = (slice(None),) + (slice(None, None, half),) * k
        need[at_half] |= need_fine & new
        skip[at_half] |= ~maybe_fine & new
        for axis in range(1, k + 1):  # each cell's 2^k children
            refined = np.repeat(refined, 2, axis=axis)
            unrefined = np.repeat(unrefined, 2, axis=axis)
        active, inactive = refined, unrefined
        cells = tuple(2 * c for c in cells)
    return need, skip


@dataclass
class Decisions:
    """Per point (grid-shaped): WAIT, NEED or SKIP; and the seed decisions behind them."""

    code: np.ndarray
    seeds: SeedDecision


def decide(
    status: np.ndarray, reduced: np.ndarray | None, geometry: Geometry, refine: Refinement
) -> Decisions:
    """Which points of the grid to compute, which not, and which are not decided yet."""
    done, quantity = per_seed(status, reduced, refine)
    seeds = seed_rule(done, quantity, refine)
    value = geometry.canonical(sides(seeds, refine))
    known = geometry.canonical(seeds.settled)
    need, skip = cell_rule(value, known, geometry.levels, refine)
    need, skip = geometry.uncanonical(need), geometry.uncanonical(skip)
    index = np.arange(status.shape[-1])
    in_prefix = index < seeds.prefix[..., None]
    code = np.full(status.shape, WAIT, dtype=np.int8)
    code[need[..., None] & in_prefix] = NEED
    code[need[..., None] & ~in_prefix & seeds.settled[..., None]] = SKIP
    code[np.broadcast_to(skip[..., None], status.shape)] = SKIP
    return Decisions(code, seeds)
