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
import time
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


# One actor per CPU: a BLAS or OpenMP pool inside each actor would oversubscribe the cores.
ONE_THREAD = {
    name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
}


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
        actor = BlockActor.options(max_restarts=-1, max_task_retries=0, runtime_env={"env_vars": ONE_THREAD})
        self.actors = [actor.remote(kernel_class, dict(fixed), tuple(outputs)) for _ in range(workers)]

    def map(self, tasks: Iterable[BlockTask]) -> Iterator[BlockResult]:
        ray = self.ray
        actor_errors = (
            ray.exceptions.RayActorError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.ObjectLostError,
        )
        queue = deque(tasks)
        # Per actor, its calls in submission order: an actor runs them one at a time, so
        # the oldest is the one running and the only one to blame if the actor dies.
        calls: list[deque] = [deque() for _ in self.actors]
        running: dict[Any, tuple[int, BlockTask]] = {}
        # An actor that died gets no new call until a `ready` ping says Ray restarted it;
        # otherwise calls sent to a restarting actor fail without having run.
        available = set(range(len(self.actors)))
        pings: dict[Any, int] = {}

        def free_actor() -> int | None:
            free = [i for i in available if len(calls[i]) < self.in_flight_per_worker]
            return min(free, key=lambda i: len(calls[i])) if free else None

        while queue or running:
            while queue and (i := free_actor()) is not None:
                task = queue.popleft()
                ref = self.actors[i].run.remote(task)
                running[ref] = (i, task)
                calls[i].append(ref)
            done, _ = ray.wait([*running, *pings], num_returns=1)
            ref = done[0]
            if ref in pings:
                i = pings.pop(ref)
                try:
                    ray.get(ref)
                    available.add(i)
                except actor_errors:
                    time.sleep(0.05)
                    pings[self.actors[i].ready.remote()] = i
                continue
            i, task = running.pop(ref)
            was_running = calls[i][0] == ref
            calls[i].remove(ref)
            try:
                yield ray.get(ref)
            except actor_errors as exc:
                if i in available:
                    available.discard(i)
                    pings[self.actors[i].ready.remote()] = i
                queue.extendleft(reversed(self._after_death(task, was_running, exc)))
                while queue and queue[0].attempt > self.max_attempts:
                    dead = queue.popleft()
                    yield failed_block(
                        dead,
                        f"worker died {dead.attempt - 1} times running this point: {type(exc).__name__}",
                    )
            except ray.exceptions.RayTaskError as exc:
                yield failed_block(task, f"block failed outside the kernel: {exc.cause!r}")

    def _after_death(self, task: BlockTask, was_running: bool, exc: Exception) -> list[BlockTask]:
        """What to resubmit after ``task``'s actor died.

        A task that was only queued behind the one that killed the actor is not
        charged an attempt. A block that used up its attempts is split into single
        points with one last attempt each, so a poison point fails alone.
        """
        if not was_running:
            return [task]
        task.attempt += 1
        if task.attempt <= self.max_attempts:
            return [task]
        if len(task.swept) == 1:
            return [task]  # attempt > max_attempts: reported failed by the caller
        return [
            BlockTask(
                task.block_id,
                task.indices[k : k + 1],
                [task.swept[k]],
                [task.seeds[k]],
                attempt=self.max_attempts,
            )
            for k in range(len(task.swept))
        ]

    def wait_ready(self) -> None:
        """Block until every actor is up (benchmarks time the steady state after this)."""
        self.ray.get([actor.ready.remote() for actor in self.actors])

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
        _probe(address)
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as exc:
            raise SweeperError(f"cannot reach a Ray cluster at {address!r}: {exc}") from None
    return workers or int(ray.cluster_resources().get("CPU", 1)), True


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nobody answers (Ray itself waits minutes)."""
    import socket

    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise SweeperError(
            f"cannot reach a Ray cluster at {address!r} ({exc}); start one with `ray up cluster.yaml` "
            f"or `ray start --head`, or drop `--address` to run on a private local Ray."
        ) from None
