"""A refined grid's sweep: tasks handed out as soon as the decisions allow, points
refinement does not need marked as such (docs/refinement.md §3).

:class:`RefinedSweep` keeps the grid's status and the refined output (reduced to a
number per point) in memory, read once from the store and updated from every result;
:func:`sweeper.refinement.decide` turns them into NEED / SKIP / WAIT per point. Its
:meth:`~RefinedSweep.tasks` is the task source of the dispatch: it yields the points
to compute now (grouped by block, at most a share of them per task so that every
worker gets some), ``None`` while every point left waits for results in flight, and
ends once nothing is left to decide. Points decided SKIP are written with status
NOT_NEEDED at once. Knows the spec, the store's reading and writing, and the block
types; nothing of workers or physics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from sweeper.blocks import FAILED, NOT_NEEDED, PENDING, BlockResult, BlockTask
from sweeper.refine_options import FAILED_OUTPUT
from sweeper.refinement import NEED, SKIP, WAIT, Decisions, Geometry, decide, reduce_output
from sweeper.spec import GridSpec
from sweeper.store import Store

TASKS_PER_WORKER = 2  # the points ready at once are cut into this many tasks a worker (if as many)


class RefinedSweep:
    """The task source of a refined grid, fed back with every result written."""

    def __init__(self, spec: GridSpec, store: Store, retry_failed: bool = False, workers: int = 1):
        self.spec, self.store = spec, store
        self.refine = spec.refine
        self.min_tasks = TASKS_PER_WORKER * max(1, workers)  # every worker gets some, none waits
        self.geometry = Geometry.of(spec.dims, spec.shape, self.refine)
        self.status = np.array(store.status(), dtype=np.int8)
        if retry_failed:
            self.status[self.status == FAILED] = PENDING
        self.reduced = None if self.refine.output == FAILED_OUTPUT else self._read_reduced()
        self.in_flight = np.zeros(self.status.shape, dtype=bool)
        self.done_before = int(((self.status != PENDING) & (self.status != NOT_NEEDED)).sum())
        self.marked = 0  # points written NOT_NEEDED by this sweep
        self.fresh = True  # results came in since the last decisions
        self.on_more: Callable[[np.ndarray], None] | None = None  # told of points beyond the first plan
        self._first = True

    # -- what the store holds ------------------------------------------------------------
    def _read_reduced(self) -> np.ndarray:
        shape = self.status.shape
        if not (self.status != PENDING).any():  # a new store: nothing to read
            return np.full(shape, np.nan)
        arr = self.store.group[self.refine.output]
        how = self.refine.reduce
        if how in ("last", "first"):  # one value per point: read only that
            return np.asarray(arr[(..., -1 if how == "last" else 0)], dtype=np.float64)
        return reduce_output(arr[...], how)

    def update(self, result: BlockResult) -> None:
        """Take in a result just written to the store."""
        at = tuple(np.asarray(result.indices).T)
        self.status[at] = result.status
        self.in_flight[at] = False
        if self.reduced is not None:
            values = result.outputs.get(self.refine.output)
            self.reduced[at] = np.nan if values is None else reduce_output(values, self.refine.reduce)
        self.fresh = True

    def decisions(self) -> Decisions:
        return decide(self.status, self.reduced, self.geometry, self.refine)

    def to_compute(self, decisions: Decisions | None = None) -> np.ndarray:
        """Grid-shaped: the points to hand out now."""
        code = (decisions or self.decisions()).code
        return (code == NEED) & ((self.status == PENDING) | (self.status == NOT_NEEDED)) & ~self.in_flight

    # -- the task source ----------------------------------------------------------------
    def tasks(self) -> Iterator[BlockTask | None]:
        """Tasks as the decisions allow; ``None`` while everything left waits for results in flight."""
        while True:
            if not self.fresh:
                if not self.in_flight.any():
                    return
                yield None
                continue
            self.fresh = False
            decisions = self.decisions()
            self._mark(self._settled_skips(decisions))
            todo = self.to_compute(decisions)
            if not todo.any():
                if not self.in_flight.any():
                    self._check_settled(decisions)
                    return
                yield None
                continue
            indices = np.argwhere(todo)
            if not self._first and self.on_more is not None:
                self.on_more(indices)
            self._first = False
            for task in self._cut(indices):
                self.in_flight[tuple(task.indices.T)] = True
                yield task

    def _cut(self, indices: np.ndarray) -> list[BlockTask]:
        """``indices`` grouped by block, each group in tasks of at most a share of all of them."""
        layout = self.store.layout
        chunks = np.asarray(layout.chunks)
        flats = np.ravel_multi_index(tuple((indices // chunks).T), layout.grid)
        order = np.argsort(flats, kind="stable")
        indices, flats = indices[order], flats[order]
        self.store.will_write(np.unique(flats))
        share = max(1, math.ceil(len(indices) / self.min_tasks))
        out = []
        for flat, group in zip(*_groups(flats, indices)):
            block_id = layout.block_id(int(flat))
            for start in range(0, len(group), share):
                part = group[start : start + share]
                points = [self.spec.point(tuple(i)) for i in part]
                out.append(BlockTask(block_id, part, [p[0] for p in points], [p[1] for p in points]))
        return out

    def _settled_skips(self, decisions: Decisions) -> np.ndarray:
        """The points decided not needed and not written so yet, in blocks with nothing left
        undecided: each block's marks then go out in one write, not one per decision."""
        layout = self.store.layout
        waiting = layout.per_block(decisions.code == WAIT, fill=False).any(axis=1)
        rows = layout.per_block((decisions.code == SKIP) & (self.status == PENDING), fill=False)
        return layout.from_per_block(rows & ~waiting[:, None])

    def _mark(self, skip: np.ndarray) -> None:
        """Write the points of ``skip`` as NOT_NEEDED, one write per block."""
        if not skip.any():
            return
        layout = self.store.layout
        indices = np.argwhere(skip)
        flats = np.ravel_multi_index(tuple((indices // np.asarray(layout.chunks)).T), layout.grid)
        order = np.argsort(flats, kind="stable")
        indices, flats = indices[order], flats[order]
        self.store.will_write(np.unique(flats))
        for flat, group in zip(*_groups(flats, indices)):
            n = len(group)
            result = BlockResult(
                layout.block_id(int(flat)),
                group,
                {},
                np.full(n, NOT_NEEDED, dtype=np.int8),
                [""] * n,
                np.full(n, np.nan),
                finished_at=math.nan,  # decided, not finished: the store reads the same however it ran
            )
            self.store.write(result)
        self.status[skip] = NOT_NEEDED
        self.marked += len(indices)

    def _check_settled(self, decisions: Decisions) -> None:
        waiting = int((decisions.code == WAIT).sum())
        if waiting:  # a decision waits on a point no one computes: a bug in the rules, not the user's
            raise RuntimeError(f"refinement ended with {waiting} points undecided")


def _groups(flats: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sorted ``flats`` and the rows of ``indices`` of each distinct one."""
    unique, starts = np.unique(flats, return_index=True)
    return unique, np.split(indices, starts[1:])
