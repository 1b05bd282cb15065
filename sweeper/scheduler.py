"""The sweep: which blocks to run, and the loop spec -> tasks -> executor -> store.

The store answers which points are pending or failed; the scheduler turns the
blocks holding points still to compute into :class:`BlockTask` s (only those
points), hands them to an executor, and writes every result back as it comes,
in completion order. Knows the spec, the store and the executor interface;
nothing of physics, zarr or Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sweeper.blocks import FAILED, OK, PENDING, BlockResult, BlockTask
from sweeper.errors import StoreError
from sweeper.executors import Executor
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


def wanted(status: np.ndarray, retry_failed: bool = False) -> np.ndarray:
    """Which points to compute: the pending ones, and the failed ones if ``retry_failed``."""
    return (status == PENDING) | ((status == FAILED) if retry_failed else False)


def tasks(spec: GridSpec, store: Store, retry_failed: bool = False) -> list[BlockTask]:
    """The blocks of ``store`` holding points still to compute, each with only those points."""
    layout = store.layout
    todo = wanted(store.status(), retry_failed)
    out = []
    for block_id in layout.block_ids():
        mask = todo[layout.region(block_id)].ravel()
        if not mask.any():
            continue
        indices = layout.block_points(block_id)[mask]
        points = [spec.point(tuple(i)) for i in indices]
        out.append(BlockTask(block_id, indices, [p[0] for p in points], [p[1] for p in points]))
    return out


def sweep(
    spec: GridSpec,
    store: Store,
    executor: Executor,
    *,
    retry_failed: bool = False,
    on_result: Callable[[BlockResult], None] | None = None,
) -> Summary:
    """Compute every point of ``spec`` that ``store`` does not hold yet."""
    start = time.perf_counter()
    todo = tasks(spec, store, retry_failed=retry_failed)
    summary = Summary(skipped=spec.n_points - sum(len(t.swept) for t in todo))
    for result in executor.map(todo):
        try:
            store.write(result)
        except OSError as exc:  # disk full, store removed, ...: finished points are safe on disk
            raise StoreError(
                f"{store.path}: writing block {result.block_id} failed ({exc.strerror or exc}); "
                f"the {summary.computed} points written in this run are safe. Fix the cause and "
                f"submit again to compute the rest."
            ) from None
        summary.computed += len(result.status)
        summary.ok += int((result.status == OK).sum())
        summary.failed += int((result.status == FAILED).sum())
        if on_result is not None:
            on_result(result)
    summary.seconds = time.perf_counter() - start
    return summary
