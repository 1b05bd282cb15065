"""A point computed as independent parts on several workers, combined when its last part arrives.

A kernel may declare that each of its points is a combination of independent parts
(``Kernel.parts`` names the int parameter that counts them: the DMFT's blocks of
trajectories, each with its own random streams). Then :meth:`Parts.split` cuts every block
task into one task per part, so that one expensive point spreads over as many workers as it
has parts, and :meth:`Parts.assemble` keeps each point's parts until the last one arrives,
combines them with the kernel (``Kernel.combine``: the numbers of ``Kernel.run``, bit for
bit) and hands on a result of the points it finished, as a whole-point task would have.

Parts wait in the driver's memory, never in the store: a point is written whole or not at
all, so a submission killed half-way leaves it pending and the next computes it again. A
failed part fails its point with the part's message (the first failed part, in part order,
as ``Kernel.run`` reports it). Knows the kernel contract and the block types only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kernels.base import Kernel, Result
from sweeper.blocks import FAILED, OK, BlockResult, BlockTask
from sweeper.runner import BlockRunner, describe, put_outputs


@dataclass
class _Waiting:
    """One point whose parts are still arriving."""

    swept: Mapping[str, Any]
    seed: Any
    count: int
    parts: dict[int, tuple[Any, int, str]] = field(default_factory=dict)  # part -> (Part, status, message)
    wall: float = 0.0


class Parts:
    """Splits the tasks of a kernel with parts, and assembles their results into whole points."""

    def __init__(self, kernel_class: type[Kernel], fixed: Mapping[str, Any], outputs: Sequence[str]):
        self.runner = BlockRunner(kernel_class, fixed, outputs)  # its kernel and parameters, here
        self.waiting: dict[tuple[int, ...], _Waiting] = {}
        self._compile_time = 0.0  # of part results, handed on with the next finished points

    @staticmethod
    def declared(kernel_class: type[Kernel]) -> bool:
        return kernel_class.parts is not None

    def count(self, swept: Mapping[str, Any]) -> int:
        """How many parts the point of ``swept`` has (1 if its parameters are refused: it fails)."""
        try:
            return max(1, self.runner.kernel.n_parts(self.runner.params(swept)))
        except Exception:  # noqa: BLE001 - the worker reports what is wrong with the point
            return 1

    def split(self, tasks: Iterable[BlockTask | None], only: int | None = None) -> Iterator[BlockTask | None]:
        """Each task as one task per part still to compute (``only``: that part alone).

        A point with fewer parts is left out of the later ones; a part already held (from
        an earlier sweep of the same submission, e.g. the pilot's) is not computed again.
        """
        for task in tasks:
            if task is None:  # a refined grid waiting for results: pass it on
                yield None
                continue
            points = []
            for k, (swept, seed) in enumerate(zip(task.swept, task.seeds)):
                key = tuple(int(i) for i in task.indices[k])
                points.append(self.waiting.setdefault(key, _Waiting(swept, seed, self.count(swept))))
            for part in range(max(p.count for p in points)) if only is None else [only]:
                keep = [k for k, p in enumerate(points) if p.count > part and part not in p.parts]
                if not keep:
                    continue
                yield BlockTask(
                    task.block_id,
                    task.indices[keep],
                    [task.swept[k] for k in keep],
                    [task.seeds[k] for k in keep],
                    attempt=task.attempt,
                    part=part,
                )

    def progress(self) -> tuple[int, int]:
        """Parts held and parts in all, over the points still waiting for some."""
        return sum(len(p.parts) for p in self.waiting.values()), sum(p.count for p in self.waiting.values())

    def assemble(
        self, results: Iterable[BlockResult], on_part: Callable[[BlockResult], None] | None = None
    ) -> Iterator[BlockResult]:
        """Whole-point results: each point once its last part has arrived (``on_part``: every part result)."""
        for result in results:
            if result.part is None:
                yield result
                continue
            self._compile_time += result.compile_time
            finished = []
            for k, index in enumerate(result.indices):
                key = tuple(int(i) for i in index)
                point = self.waiting[key]
                part = result.parts[k] if result.parts is not None else None
                point.parts[result.part] = (part, int(result.status[k]), result.messages[k])
                if np.isfinite(result.wall_time[k]):
                    point.wall += float(result.wall_time[k])
                if len(point.parts) == point.count:
                    finished.append((key, self.waiting.pop(key)))
            if on_part is not None:
                on_part(result)
            if finished:
                yield self._whole(result.block_id, finished)

    def _whole(
        self, block_id: tuple[int, ...], finished: list[tuple[tuple[int, ...], _Waiting]]
    ) -> BlockResult:
        n = len(finished)
        outputs: dict[str, np.ndarray] = {}
        status = np.full(n, FAILED, dtype=np.int8)
        messages = [""] * n
        for k, (_, point) in enumerate(finished):
            try:
                combined = self._combine(point)
            except Exception as exc:  # noqa: BLE001 - a point's failure is data, not a crash
                messages[k] = describe(exc)
                continue
            put_outputs(outputs, self.runner.output_names, n, k, combined.outputs)
            status[k] = OK if combined.ok else FAILED
            messages[k] = combined.message
        indices = np.array([key for key, _ in finished], dtype=np.int64)
        wall = np.array([point.wall for _, point in finished])
        compile_time, self._compile_time = self._compile_time, 0.0
        return BlockResult(block_id, indices, outputs, status, messages, wall, compile_time=compile_time)

    def _combine(self, point: _Waiting) -> Result:
        """The point from its parts; the first part that failed (in part order) fails it."""
        parts = []
        for index in range(point.count):
            part, _, message = point.parts[index]
            if part is None or not part.ok:  # failed in the kernel, outside it, or its worker died
                return Result(ok=False, outputs={}, message=message or f"part {index} failed")
            parts.append(part)
        return self.runner.kernel.combine(self.runner.params(point.swept), parts)
