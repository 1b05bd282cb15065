"""The ``[run]`` table of a grid file: where the store goes and how the sweep runs.

None of these options changes a result, except ``outputs`` (which variables are
stored); CLI flags may override the others.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweeper.axes import Fail, is_int, is_number

RUN_KEYS = ("store", "block_size", "workers", "outputs", "max_attempts", "time_limit")
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class RunOptions:
    store: str
    block_size: int
    workers: int | None
    outputs: tuple[str, ...]
    max_attempts: int
    time_limit: float | None = None  # seconds a point may take (Ray workers only)


def parse_options(
    run: Mapping[str, Any], name: str, kernel: str, declared: Sequence[str], n_points: int, fail: Fail
) -> RunOptions:
    """Validate the ``[run]`` table of grid ``name``; ``declared`` are the kernel's outputs."""
    unknown = [k for k in run if k not in RUN_KEYS]
    if unknown:
        raise fail(f"run.{unknown[0]}", f"unknown key. Known keys: {', '.join(RUN_KEYS)}.")
    store = run.get("store", f"results/{name}.zarr")
    if not isinstance(store, str) or not store:
        raise fail("run.store", f"expected a path, got {store!r}.")
    block_size = run.get("block_size", default_block_size(n_points))
    if not is_int(block_size) or block_size < 1:
        raise fail("run.block_size", f"expected a positive integer, got {block_size!r}.")
    workers = run.get("workers")
    if workers is not None and (not is_int(workers) or workers < 0):
        raise fail("run.workers", f"expected a non-negative integer (0 = in-process), got {workers!r}.")
    max_attempts = run.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if not is_int(max_attempts) or max_attempts < 1:
        raise fail("run.max_attempts", f"expected a positive integer, got {max_attempts!r}.")
    time_limit = run.get("time_limit")
    if time_limit is not None and (not is_number(time_limit) or not 0 < time_limit < math.inf):
        raise fail("run.time_limit", f"expected a positive number of seconds, got {time_limit!r}.")
    outputs = run.get("outputs", list(declared))
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        raise fail("run.outputs", f"expected a non-empty list of output names, got {outputs!r}.")
    for o in outputs:
        if o not in declared:
            raise fail(
                "run.outputs",
                f"unknown output {o!r}. Outputs of '{kernel}' here: {', '.join(declared)}.",
            )
    return RunOptions(
        store,
        int(block_size),
        workers,
        tuple(outputs),
        int(max_attempts),
        None if time_limit is None else float(time_limit),
    )


def default_block_size(n_points: int) -> int:
    """About 64 blocks per grid, at most 256 points a block."""
    return max(1, min(256, math.ceil(n_points / 64)))
