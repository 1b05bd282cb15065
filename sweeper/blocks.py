"""Blocks of points: the unit of work, of retry and of resume, as plain data.

A :class:`BlockTask` is what a worker is asked to compute (the points of one
block still to do), a :class:`BlockResult` what it sends back, and the status
codes are those the store writes per point. Shared by the scheduler, the
dispatch policy, the workers and the store; imports none of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PENDING, OK, FAILED = 0, 1, 2
NOT_NEEDED = 3  # a point adaptive refinement decided not to compute (sweeper.refinement)


@dataclass
class BlockTask:
    """The points of one block still to compute: grid indices, swept values, seeds."""

    block_id: tuple[int, ...]
    indices: np.ndarray  # (n, ndim) grid indices
    swept: list[dict[str, Any]]
    seeds: list[tuple[int, int]]
    attempt: int = 1
    part: int | None = None  # only this part of each point (kernels that declare parts: sweeper.parts)


@dataclass
class BlockResult:
    block_id: tuple[int, ...]
    indices: np.ndarray
    outputs: dict[str, np.ndarray]  # name -> (n, *shape), NaN where missing
    status: np.ndarray  # (n,) int8
    messages: list[str]
    wall_time: np.ndarray  # (n,) seconds, compilation excluded
    finished_at: float = field(default_factory=time.time)
    compile_time: float = 0.0  # seconds the worker spent compiling inside these points (not in wall_time)
    part: int | None = None  # the task's part: then `parts` holds each point's (kernels.base.Part)
    parts: list[Any] | None = None


def failed_block(task: BlockTask, message: str) -> BlockResult:
    """Every point of ``task`` failed with ``message`` (no outputs)."""
    n = len(task.swept)
    return BlockResult(
        task.block_id,
        task.indices,
        {},
        np.full(n, FAILED, np.int8),
        [message] * n,
        np.full(n, np.nan),
        part=task.part,
        parts=None if task.part is None else [None] * n,
    )


def single(task: BlockTask, k: int, attempt: int) -> BlockTask:
    """The ``k``-th point of ``task`` as a block of its own."""
    return BlockTask(
        task.block_id,
        task.indices[k : k + 1],
        [task.swept[k]],
        [task.seeds[k]],
        attempt=attempt,
        part=task.part,
    )
