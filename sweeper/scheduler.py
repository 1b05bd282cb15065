"""The sweep: spec -> blocks still to do -> executor -> store, with progress.

Knows the spec, the store and the executor interface; nothing of physics,
zarr or Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sweeper.blocks import FAILED, OK, BlockResult
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


def run_sweep(
    spec: GridSpec,
    store: Store,
    executor: Executor,
    *,
    retry_failed: bool = False,
    on_result: Callable[[BlockResult], None] | None = None,
) -> Summary:
    """Compute every point of ``spec`` that ``store`` does not hold yet."""
    start = time.perf_counter()
    tasks = store.todo(spec, retry_failed=retry_failed)
    todo = sum(len(t.swept) for t in tasks)
    summary = Summary(skipped=spec.n_points - todo)
    for result in executor.map(tasks):
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
