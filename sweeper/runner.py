"""Running one block of points with a warm kernel: what a worker does.

Knows the kernel contract and the block types, nothing of Ray or zarr. Every
exception raised by a point is caught and recorded as that point's failure, so
one bad point never takes its block down.

Before its first block a worker warms its kernel up (:meth:`BlockRunner.warm_up`):
one run of the kernel's ``example``, so that numba compiles (or loads from its
cache) what the grid's points call. Its time is the worker's warm-up, reported
apart: a point's ``wall_time`` is the cost of that point alone.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kernels.base import Kernel
from sweeper.blocks import FAILED, OK, BlockResult, BlockTask


class BlockRunner:
    """Owns one warm kernel instance and runs blocks of points through it."""

    def __init__(self, kernel_class: type[Kernel], fixed: Mapping[str, Any], outputs: Sequence[str]):
        self.kernel = kernel_class()
        self.fixed = dict(fixed)
        self.output_names = tuple(outputs)
        self._base = None
        self.warm_up_seconds: float | None = None  # None until warm_up has run
        self.compiler = COMPILER

    def warm_up(self) -> float:
        """Run the kernel's example once (compilation); its seconds. Only the first call runs it.

        Never raises: a warm-up that fails leaves the failure to the points.
        """
        if self.warm_up_seconds is None:
            start = time.perf_counter()
            try:
                self.kernel.run(self.kernel.make_params(**self.kernel.example), 0)
            except Exception:  # noqa: BLE001 - the points report what is wrong, with their messages
                pass
            self.warm_up_seconds = time.perf_counter() - start
        return self.warm_up_seconds

    def params(self, swept: Mapping[str, Any]) -> Any:
        """The kernel's parameters at a point of the block (the fixed ones and ``swept``)."""
        # Coerce once, then `replace` per point: the spec already coerced swept values.
        if self._base is None:
            self._base = self.kernel.make_params(**self.fixed, **swept)
            return self._base
        return dataclasses.replace(self._base, **swept)

    def run(self, task: BlockTask) -> BlockResult:
        if task.part is not None:
            return self.run_part(task)
        n = len(task.swept)
        outputs: dict[str, np.ndarray] = {}
        status = np.full(n, FAILED, dtype=np.int8)
        messages = [""] * n
        wall = np.full(n, np.nan)
        compiled = 0.0
        for i, (swept, seed) in enumerate(zip(task.swept, task.seeds)):
            start = time.perf_counter()
            compiling = self.compiler.seconds()
            try:
                params = self.params(swept)
                result = self.kernel.run(params, seed)
                put_outputs(outputs, self.output_names, n, i, result.outputs)
                status[i] = OK if result.ok else FAILED
                messages[i] = result.message
            except Exception as exc:  # noqa: BLE001 - a point's failure is data, not a crash
                messages[i] = describe(exc)
            compiling = self.compiler.seconds() - compiling  # a switch the example did not take
            compiled += compiling
            wall[i] = time.perf_counter() - start - compiling
        return BlockResult(
            task.block_id, task.indices, outputs, status, messages, wall, compile_time=compiled
        )

    def run_part(self, task: BlockTask) -> BlockResult:
        """Part ``task.part`` of each point (``kernels.base.Part``); ``sweeper.parts`` combines them."""
        n = len(task.swept)
        status = np.full(n, FAILED, dtype=np.int8)
        messages = [""] * n
        wall = np.full(n, np.nan)
        parts: list[Any] = [None] * n
        compiled = 0.0
        for i, (swept, seed) in enumerate(zip(task.swept, task.seeds)):
            start = time.perf_counter()
            compiling = self.compiler.seconds()
            try:
                part = self.kernel.run_part(self.params(swept), seed, task.part)
                parts[i] = part
                status[i] = OK if part.ok else FAILED
                messages[i] = part.message
            except Exception as exc:  # noqa: BLE001 - a point's failure is data, not a crash
                messages[i] = describe(exc)
            compiling = self.compiler.seconds() - compiling
            compiled += compiling
            wall[i] = time.perf_counter() - start - compiling
        return BlockResult(
            task.block_id, task.indices, {}, status, messages, wall, compiled, part=task.part, parts=parts
        )


def put_outputs(
    outputs: dict[str, np.ndarray], names: Sequence[str], n: int, i: int, values: Mapping
) -> None:
    """Point ``i`` of ``n`` into the block's stacked ``outputs`` (NaN where a point has none)."""
    for name in names:
        value = values.get(name)
        if value is None:
            continue
        if name not in outputs:
            outputs[name] = np.full((n, *np.shape(value)), np.nan)
        outputs[name][i] = value


class CompilerClock:
    """Seconds this process spent in numba's compiler (compiling, or loading its cache).

    Listens to numba's own event for its compiler lock (nested compilations count
    once), from the first reading after the kernel imported numba; one clock a process.
    """

    def __init__(self):
        self._total = 0.0
        self._depth = 0
        self._began = 0.0
        self._listening = False

    def seconds(self) -> float:
        if not self._listening and "numba" in sys.modules:
            from numba.core import event

            clock = self

            class Listener(event.Listener):
                def on_start(self, _event) -> None:
                    if clock._depth == 0:
                        clock._began = time.perf_counter()
                    clock._depth += 1

                def on_end(self, _event) -> None:
                    clock._depth -= 1
                    if clock._depth == 0:
                        clock._total += time.perf_counter() - clock._began

            event.register("numba:compiler_lock", Listener())
            self._listening = True
        return self._total


COMPILER = CompilerClock()


def describe(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"
