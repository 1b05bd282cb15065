"""The sweep: which blocks to run, and the loop spec -> tasks -> executor -> store.

The store answers which points are pending or failed; the scheduler plans, per
block and vectorised over the status (:class:`Plan`), which blocks hold points
still to compute, builds each block's :class:`BlockTask` (only those points)
when the executor takes it, and writes every result back as it comes, in
completion order. A refined grid's points come from
:class:`~sweeper.refined_sweep.RefinedSweep` instead, as its decisions allow. Knows
the spec, the store and the executor interface; nothing of physics, zarr or Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from sweeper.block_index import ALL_PENDING, SETTLED, UNKNOWN
from sweeper.blocks import FAILED, OK, PENDING, BlockResult, BlockTask
from sweeper.errors import StoreError
from sweeper.executors import Executor
from sweeper.layout import Layout
from sweeper.parts import Parts
from sweeper.refined_sweep import RefinedSweep
from sweeper.spec import GridSpec
from sweeper.store import Store


@dataclass
class Summary:
    """What one submission did."""

    computed: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # already done before this submission
    seconds: float = 0.0
    warm_up: tuple[float, ...] = ()  # seconds each worker spent warming its kernel up (compilation)
    compile_time: float = 0.0  # seconds compiling inside points (switches the example did not take)
    note: str = ""  # how it ran, when that is not the default (e.g. in this process, and why)
    not_needed: int = 0  # points a refined grid decided not to compute (written as such)
    idle_fraction: float | None = None  # of the time workers were ready, the fraction without a block

    def add(self, other: Summary) -> None:
        """Fold in a later part of the same submission (e.g. the rest after a pilot); keeps ``skipped``."""
        self.computed += other.computed
        self.ok += other.ok
        self.failed += other.failed
        self.seconds += other.seconds
        self.warm_up = self.warm_up + other.warm_up
        self.compile_time += other.compile_time
        self.not_needed += other.not_needed


def wanted(status: np.ndarray, retry_failed: bool = False) -> np.ndarray:
    """Which points to compute: the pending ones, and the failed ones if ``retry_failed``."""
    return (status == PENDING) | ((status == FAILED) if retry_failed else False)


@dataclass
class Plan:
    """What a submission has to compute, per block: the resume scan's answer.

    Built without a Python object per point or per block: the store's block index
    settles most blocks, the status of the others is read and reduced as one
    (blocks, points) array. Tasks are built from it one block at a time.
    """

    layout: Layout
    todo: np.ndarray  # flat ids of the blocks with points to compute, ascending
    counts: np.ndarray  # points to compute in each block of `todo`
    read: np.ndarray  # flat ids whose status was read, ascending
    wanted: np.ndarray  # (len(read), points in a chunk): which of their points to compute

    @property
    def n_todo(self) -> int:
        return int(self.counts.sum())

    @property
    def skipped(self) -> int:
        return self.layout.n_points - self.n_todo

    def mask(self) -> np.ndarray:
        """Grid-shaped: True at every point to compute (vectorised over blocks)."""
        layout = self.layout
        rows = layout.per_block(np.ones(layout.shape, dtype=bool), fill=False)  # real points, not padding
        chosen = np.zeros(layout.n_blocks, dtype=bool)
        chosen[self.todo] = True
        rows &= chosen[:, None]
        rows[self.read] &= self.wanted.astype(bool)
        return layout.from_per_block(rows)

    @classmethod
    def from_mask(cls, layout: Layout, mask: np.ndarray) -> Plan:
        """The plan computing the points where the grid-shaped ``mask`` is True."""
        rows = layout.per_block(mask, fill=False)
        counts = rows.sum(axis=1)
        todo = np.flatnonzero(counts)
        return cls(layout, todo, counts[todo], todo, rows[todo])

    def without(self, points: np.ndarray) -> Plan:
        """This plan less ``points`` (grid indices, (n, ndim)): what is left after a pilot."""
        mask = self.mask()
        mask[tuple(np.asarray(points).T)] = False
        return Plan.from_mask(self.layout, mask)

    def ends(self) -> np.ndarray:
        """The first and the last point to compute (grid indices, (n, ndim), n <= 2): a pilot."""
        if self.todo.size == 0:
            return np.zeros((0, len(self.layout.shape)), dtype=np.int64)
        first = self.points(int(self.todo[0]))[:1]
        last = self.points(int(self.todo[-1]))[-1:]
        return first if self.n_todo == 1 else np.concatenate([first, last])

    def only(self, points: np.ndarray) -> Plan:
        """The plan of just ``points`` (grid indices, (n, ndim), all to compute): a pilot."""
        layout = self.layout
        chunks = np.asarray(layout.chunks)
        blocks = np.asarray(points) // chunks
        flats = np.ravel_multi_index(tuple(blocks.T), layout.grid)
        where = np.ravel_multi_index(tuple((np.asarray(points) % chunks).T), layout.chunks)
        todo = np.unique(flats)
        wanted = np.zeros((todo.size, int(np.prod(chunks))), dtype=bool)
        wanted[np.searchsorted(todo, flats), where] = True
        return Plan(layout, todo, wanted.sum(axis=1), todo, wanted)

    def points(self, flat: int) -> np.ndarray:
        """Grid indices of the points to compute in block ``flat``, shape (n, ndim)."""
        block = self.layout.block_id(flat)
        indices = self.layout.block_points(block)
        pos = np.searchsorted(self.read, flat)
        if pos < self.read.size and self.read[pos] == flat:
            indices = indices[self.wanted[pos][self.layout.chunk_mask(block)]]
        return indices


def plan(store: Store, retry_failed: bool = False) -> Plan:
    """The resume scan: which points of ``store`` are still to compute, block by block."""
    layout = store.layout
    states = store.block_states()
    read = np.flatnonzero((states == UNKNOWN) | ((states == SETTLED) & retry_failed))
    want = wanted(store.block_status(read), retry_failed)
    counts = np.where(states == ALL_PENDING, layout.block_sizes(), 0)
    counts[read] = want.sum(axis=1)
    todo = np.flatnonzero(counts)
    return Plan(layout, todo, counts[todo], read, want)


BATCH = 1024  # blocks announced to the store's index at a time


def iter_tasks(spec: GridSpec, store: Store, todo: Plan) -> Iterator[BlockTask]:
    """The tasks of ``todo``, each built only when the executor takes it."""
    for start in range(0, todo.todo.size, BATCH):
        batch = todo.todo[start : start + BATCH]
        store.will_write(batch)
        for flat in batch.tolist():
            indices = todo.points(flat)
            points = [spec.point(tuple(i)) for i in indices]
            block_id = todo.layout.block_id(flat)
            yield BlockTask(block_id, indices, [p[0] for p in points], [p[1] for p in points])


def tasks(spec: GridSpec, store: Store, retry_failed: bool = False) -> list[BlockTask]:
    """The blocks of ``store`` holding points still to compute, each with only those points."""
    return list(iter_tasks(spec, store, plan(store, retry_failed)))


def refined_plan(spec: GridSpec, store: Store, retry_failed: bool = False) -> Plan:
    """A refined grid's first plan: the points its decisions ask for now (more follow)."""
    return Plan.from_mask(store.layout, RefinedSweep(spec, store, retry_failed).to_compute())


def sweep(
    spec: GridSpec,
    store: Store,
    executor: Executor,
    *,
    retry_failed: bool = False,
    on_result: Callable[[BlockResult], None] | None = None,
    todo: Plan | None = None,
    on_more: Callable[[np.ndarray], None] | None = None,
    parts: Parts | None = None,
    only_part: int | None = None,
    on_part: Callable[[BlockResult], None] | None = None,
) -> Summary:
    """Compute every point of ``spec`` that ``store`` does not hold yet (``todo``: its plan).

    A refined grid (``spec.refine``) computes what its decisions ask for, as they come
    (:mod:`sweeper.refined_sweep`): ``todo`` is then only its first plan, and ``on_more``
    is told of the points planned after it. A kernel whose points have parts runs one task per
    part (:mod:`sweeper.parts`): ``parts`` carries the parts held from an earlier sweep of the
    same submission, ``only_part`` computes that part alone (a pilot), and ``on_part`` is told
    of every part result.
    """
    start = time.perf_counter()
    if spec.refine is not None:
        workers = len(getattr(executor, "pool", ()))  # its tasks are cut so that each has some
        refined = RefinedSweep(spec, store, retry_failed, workers=workers)
        refined.on_more = on_more
        summary = Summary(skipped=refined.done_before)
        source, after = refined.tasks(), refined.update
    else:
        if todo is None:
            todo = plan(store, retry_failed=retry_failed)
        summary = Summary(skipped=todo.skipped)
        source, after, refined = iter_tasks(spec, store, todo), None, None
    if Parts.declared(spec.kernel_class()):  # one task per part of each point (sweeper.parts)
        parts = parts or Parts(spec.kernel_class(), spec.fixed, spec.options.outputs)
        results = parts.assemble(executor.map(parts.split(source, only_part)), on_part)
    else:
        results = executor.map(source)
    try:
        _run(store, results, after, summary, on_result)
        if refined is not None:
            summary.not_needed = refined.marked
            summary.idle_fraction = getattr(executor, "idle_fraction", lambda: None)()
    finally:
        try:
            store.flush()
        except OSError:  # the index is only a hint: unflushed blocks read as UNKNOWN next time
            pass
    summary.seconds = time.perf_counter() - start
    return summary


def _run(
    store: Store,
    results: Iterator[BlockResult],
    after: Callable[[BlockResult], None] | None,
    summary: Summary,
    on_result: Callable[[BlockResult], None] | None,
) -> None:
    for result in results:
        try:
            store.write(result)
        except OSError as exc:  # disk full, store removed, ...: finished points are safe on disk
            raise StoreError(
                f"{store.path}: writing block {result.block_id} failed ({exc.strerror or exc}); "
                f"the {summary.computed} points written in this run are safe. Fix the cause and "
                f"submit again to compute the rest."
            ) from None
        if after is not None:
            after(result)
        summary.computed += len(result.status)
        summary.ok += int((result.status == OK).sum())
        summary.failed += int((result.status == FAILED).sum())
        summary.compile_time += result.compile_time
        if on_result is not None:
            on_result(result)
