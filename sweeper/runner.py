"""Running one block of points with a warm kernel: what a worker does.

Knows the kernel contract and the block types, nothing of Ray or zarr. Every
exception raised by a point is caught and recorded as that point's failure, so
one bad point never takes its block down.
"""

from __future__ import annotations

import dataclasses
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

    def _params(self, swept: Mapping[str, Any]) -> Any:
        # Coerce once, then `replace` per point: the spec already coerced swept values.
        if self._base is None:
            self._base = self.kernel.make_params(**self.fixed, **swept)
            return self._base
        return dataclasses.replace(self._base, **swept)

    def run(self, task: BlockTask) -> BlockResult:
        n = len(task.swept)
        outputs: dict[str, np.ndarray] = {}
        status = np.full(n, FAILED, dtype=np.int8)
        messages = [""] * n
        wall = np.full(n, np.nan)
        for i, (swept, seed) in enumerate(zip(task.swept, task.seeds)):
            start = time.perf_counter()
            try:
                params = self._params(swept)
                result = self.kernel.run(params, seed)
                for name in self.output_names:
                    value = result.outputs.get(name)
                    if value is None:
                        continue
                    if name not in outputs:
                        outputs[name] = np.full((n, *np.shape(value)), np.nan)
                    outputs[name][i] = value
                status[i] = OK if result.ok else FAILED
                messages[i] = result.message
            except Exception as exc:  # noqa: BLE001 - a point's failure is data, not a crash
                messages[i] = _describe(exc)
            wall[i] = time.perf_counter() - start
        return BlockResult(task.block_id, task.indices, outputs, status, messages, wall)


def _describe(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"
