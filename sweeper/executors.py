"""Executors: where blocks run. One interface, two pools under one dispatch policy.

An executor is a :class:`~sweeper.dispatch.Pool` (the mechanics) driven by a
:class:`~sweeper.dispatch.Dispatch` (the policy: readiness, bounded calls in
flight, results in completion order, retries, splitting, time limits, growth).

``InProcessExecutor`` is this process as a pool of one worker that runs each
block when it is submitted (unit tests, ``--workers 0`` debugging): it never
dies and is never timed out. ``RayExecutor`` keeps warm Ray actors, each owning
one kernel instance; Ray restarts an actor whose process or node died.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from kernels.base import Kernel
from sweeper.blocks import BlockResult, BlockTask
from sweeper.dispatch import CallFailed, Dispatch, Pool, WorkerDied
from sweeper.runner import BlockRunner


class Executor(Protocol):
    def map(self, tasks: Iterable[BlockTask]) -> Iterator[BlockResult]:
        """Run every task; yield results in completion order."""

    def close(self) -> None: ...


class PoolExecutor:
    """A pool of workers under the dispatch policy."""

    def __init__(self, pool: Pool, **policy: Any):
        self.pool = pool
        self.dispatch = Dispatch(pool, **policy)

    @property
    def placement(self) -> dict[int, Any]:
        """Worker index -> where it runs (``{"pid", "node", "warm_up"}``), for every worker seen ready."""
        return self.dispatch.placement

    def warm_ups(self) -> list[float]:
        """Seconds each worker seen ready spent warming its kernel up (compilation), apart from any point."""
        return [p["warm_up"] for p in self.placement.values() if isinstance(p, dict) and "warm_up" in p]

    def map(self, tasks: Iterable[BlockTask]) -> Iterator[BlockResult]:
        return self.dispatch.map(tasks)

    def idle_fraction(self) -> float | None:
        """Of the time the workers were ready in the last map, the fraction they had no block."""
        return self.dispatch.idle_fraction()

    def close(self) -> None:
        self.pool.close()


class InProcessExecutor(PoolExecutor):
    def __init__(self, kernel_class: type[Kernel], fixed: Mapping[str, Any], outputs: Sequence[str]):
        super().__init__(InProcessPool(kernel_class, fixed, outputs), in_flight_per_worker=1)

    @property
    def runner(self) -> BlockRunner:
        return self.pool.runner


class RayExecutor(PoolExecutor):
    """Warm actors over a Ray cluster (started or joined by :func:`sweeper.cluster.connect_ray`).

    ``time_limit`` (seconds a point) restarts the actor of a block that overruns
    it; with ``grow=True`` the pool adds actors as CPUs join the cluster. See
    :mod:`sweeper.dispatch` for the whole policy.
    """

    def __init__(
        self,
        kernel_class: type[Kernel],
        fixed: Mapping[str, Any],
        outputs: Sequence[str],
        workers: int,
        max_attempts: int = 3,
        in_flight_per_worker: int = 2,
        time_limit: float | None = None,
        grow: bool = False,
        start_timeout: float = 600.0,
    ):
        super().__init__(
            RayPool(kernel_class, fixed, outputs, workers),
            max_attempts=max_attempts,
            in_flight_per_worker=in_flight_per_worker,
            time_limit=time_limit,
            grow=grow,
            start_timeout=start_timeout,
        )

    def wait_ready(self) -> None:
        """Block until every actor is up (benchmarks time the steady state after this)."""
        self.pool.wait_ready()


# -- the pools -----------------------------------------------------------------------------


class InProcessPool:
    """This process as one worker: a block runs when it is submitted, and it never dies."""

    def __init__(self, kernel_class: type[Kernel], fixed: Mapping[str, Any], outputs: Sequence[str]):
        self.runner = BlockRunner(kernel_class, fixed, outputs)
        self._handles = itertools.count()
        self._done: dict[int, tuple[Any, Exception | None]] = {}

    def __len__(self) -> int:
        return 1

    def add_worker(self) -> None:
        raise NotImplementedError("an in-process pool has one worker")

    def submit(self, worker: int, task: BlockTask) -> Hashable:
        handle = next(self._handles)
        try:
            self._done[handle] = (self.runner.run(task), None)
        except Exception as exc:  # noqa: BLE001 - reported as the block's failure, as a Ray worker's
            self._done[handle] = (None, exc)
        return handle

    def ping(self, worker: int) -> Hashable:
        handle = next(self._handles)
        warm_up = self.runner.warm_up()  # at the first map, before the first block, as a Ray worker's
        self._done[handle] = ({"pid": os.getpid(), "node": "this process", "warm_up": warm_up}, None)
        return handle

    def wait(self, handles: Sequence[Hashable], timeout: float | None) -> Hashable | None:
        return handles[0] if handles else None  # every call finished when it was submitted

    def result(self, handle: Hashable) -> Any:
        value, exc = self._done.pop(handle)
        if exc is not None:
            raise CallFailed(exc)
        return value

    def restart(self, worker: int) -> None:
        raise NotImplementedError("an in-process pool has no time limit")

    def cpus(self) -> float:
        return 1.0

    def close(self) -> None:
        self._done.clear()


# One actor per CPU: a BLAS or OpenMP pool inside each actor would oversubscribe the cores.
ONE_THREAD = {
    name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
}


class RayPool:
    """Warm Ray actors, numbered in the order they were started."""

    def __init__(
        self, kernel_class: type[Kernel], fixed: Mapping[str, Any], outputs: Sequence[str], workers: int
    ):
        import ray

        from sweeper.actor import BlockActor

        self.ray = ray
        # Ray restarts a dead actor; a call that was running on it fails and the dispatch resubmits it.
        self._options = BlockActor.options(
            max_restarts=-1,
            max_task_retries=0,
            scheduling_strategy="SPREAD",
            runtime_env={"env_vars": ONE_THREAD},
        )
        self._args = (kernel_class, dict(fixed), tuple(outputs))
        self._died = (
            ray.exceptions.RayActorError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.ObjectLostError,
            ray.exceptions.NodeDiedError,
        )
        self.actors: list[Any] = [self._options.remote(*self._args) for _ in range(workers)]

    def __len__(self) -> int:
        return len(self.actors)

    def add_worker(self) -> None:
        self.actors.append(self._options.remote(*self._args))

    def submit(self, worker: int, task: BlockTask) -> Hashable:
        return self.actors[worker].run.remote(task)

    def ping(self, worker: int) -> Hashable:
        return self.actors[worker].ready.remote()

    def wait(self, handles: Sequence[Hashable], timeout: float | None) -> Hashable | None:
        if not handles:  # every actor is waiting to be pinged again
            time.sleep(timeout or 0.0)
            return None
        done, _ = self.ray.wait(list(handles), num_returns=1, timeout=timeout)
        return done[0] if done else None

    def result(self, handle: Hashable) -> Any:
        try:
            return self.ray.get(handle)
        except self._died as exc:
            raise WorkerDied(type(exc).__name__, _last_line(exc)) from None
        except self.ray.exceptions.RayTaskError as exc:
            raise CallFailed(exc.cause) from None

    def restart(self, worker: int) -> None:
        self.ray.kill(self.actors[worker], no_restart=False)

    def cpus(self) -> float:
        return self.ray.cluster_resources().get("CPU", 0)

    def wait_ready(self) -> None:
        self.ray.get([actor.ready.remote() for actor in self.actors])

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []


def _last_line(exc: Exception) -> str:
    """The exception line at the bottom of a Ray error's remote traceback."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
