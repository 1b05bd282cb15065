"""Executors: where blocks run. One interface, two implementations.

``InProcessExecutor`` runs blocks one after the other in this process (unit
tests, ``--workers 0`` debugging). ``RayExecutor`` keeps a fixed set of warm Ray
actors, each owning one kernel instance, with a bounded number of blocks in
flight per actor; results come back in completion order, and a block whose
actor died is resubmitted until its attempts run out, then reported failed.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from kernels.base import Kernel
from sweeper.errors import SweeperError
from sweeper.runner import FAILED, BlockResult, BlockRunner, BlockTask


class Executor(Protocol):
    def map(self, tasks: Iterable[BlockTask]) -> Iterator[BlockResult]:
        """Run every task; yield results in completion order."""

    def close(self) -> None: ...


class InProcessExecutor:
    def __init__(self, kernel_class: type[Kernel], fixed: Mapping[str, Any], outputs: Sequence[str]):
        self.runner = BlockRunner(kernel_class, fixed, outputs)

    def map(self, tasks: Iterable[BlockTask]) -> Iterator[BlockResult]:
        for task in tasks:
            yield self.runner.run(task)

    def close(self) -> None:
        pass


def failed_block(task: BlockTask, message: str) -> BlockResult:
    n = len(task.swept)
    return BlockResult(
        task.block_id, task.indices, {}, np.full(n, FAILED, np.int8), [message] * n, np.full(n, np.nan)
    )


class RayExecutor:
    """Warm actors over a Ray cluster (started or joined by :func:`connect_ray`)."""

    def __init__(
        self,
        kernel_class: type[Kernel],
        fixed: Mapping[str, Any],
        outputs: Sequence[str],
        workers: int,
        max_attempts: int = 3,
        in_flight_per_worker: int = 2,
    ):
        import ray

        from sweeper.actor import BlockActor

        self.ray = ray
        self.max_attempts = max_attempts
        self.in_flight_per_worker = in_flight_per_worker
        # Ray restarts a dead actor; a call that was running on it fails and we resubmit it.
        actor = BlockActor.options(max_restarts=-1, max_task_retries=0)
        self.actors = [actor.remote(kernel_class, dict(fixed), tuple(outputs)) for _ in range(workers)]

    def map(self, tasks: Iterable[BlockTask]) -> Iterator[BlockResult]:
        ray = self.ray
        queue = deque(tasks)
        load = {i: 0 for i in range(len(self.actors))}
        running: dict[Any, tuple[int, BlockTask]] = {}

        def submit(task: BlockTask) -> None:
            i = min(load, key=load.get)
            running[self.actors[i].run.remote(task)] = (i, task)
            load[i] += 1

        while queue or running:
            while queue and min(load.values()) < self.in_flight_per_worker:
                submit(queue.popleft())
            done, _ = ray.wait(list(running), num_returns=1)
            ref = done[0]
            i, task = running.pop(ref)
            load[i] -= 1
            try:
                yield ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError) as exc:
                if task.attempt >= self.max_attempts:
                    yield failed_block(
                        task, f"worker died {task.attempt} times running this block: {type(exc).__name__}"
                    )
                else:
                    task.attempt += 1
                    queue.appendleft(task)
            except ray.exceptions.RayTaskError as exc:
                yield failed_block(task, f"block failed outside the kernel: {exc.cause!r}")

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []


def connect_ray(address: str | None, workers: int | None) -> tuple[int, bool]:
    """Start a private local Ray (no address) or join a cluster; returns (workers, started).

    A private local Ray never joins a cluster someone else runs on this machine:
    it uses ``address="local"``, its own temp dir and a capped object store.
    """
    import ray

    if ray.is_initialized():
        return workers or int(ray.cluster_resources().get("CPU", 1)), False
    if address is None:
        num_cpus = workers or os.cpu_count() or 1
        ray.init(
            address="local",
            num_cpus=num_cpus,
            _temp_dir=tempfile.mkdtemp(prefix="sweeper-ray-"),
            object_store_memory=min(2 * 1024**3, 256 * 1024**2 * max(1, num_cpus)),
            include_dashboard=False,
            log_to_driver=False,
        )
    else:
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as exc:
            raise SweeperError(f"cannot reach a Ray cluster at {address!r}: {exc}") from None
    return workers or int(ray.cluster_resources().get("CPU", 1)), True

