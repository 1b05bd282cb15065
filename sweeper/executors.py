"""Executors: where blocks run. One interface, two implementations.

``InProcessExecutor`` runs blocks one after the other in this process (unit
tests, ``--workers 0`` debugging). ``RayExecutor`` keeps a fixed set of warm Ray
actors, each owning one kernel instance, with a bounded number of blocks in
flight per actor; results come back in completion order, and a block whose
actor died is resubmitted until its attempts run out, then reported failed.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from kernels.base import Kernel
from sweeper.blocks import BlockResult, BlockTask, failed_block, single
from sweeper.errors import SweeperError
from sweeper.runner import BlockRunner


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


class RayExecutor:
    """Warm actors over a Ray cluster (started or joined by :func:`connect_ray`).

    An actor gets calls only once a ``ready`` ping says it is placed and warm: an
    actor still waiting for a node (autoscaling), or restarting after its worker or
    node died, holds no work the others could do. With ``grow=True`` the pool adds
    actors as CPUs join the cluster. ``time_limit`` (seconds a point) kills the
    actor of a block that overruns it; the block is split into single points, and
    a point that overruns alone is reported failed.
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
        import ray

        from sweeper.actor import BlockActor

        self.ray = ray
        self.max_attempts = max_attempts
        self.in_flight_per_worker = in_flight_per_worker
        self.time_limit = time_limit
        self.grow = grow
        self.start_timeout = start_timeout
        # Ray restarts a dead actor; a call that was running on it fails and we resubmit it.
        self._options = BlockActor.options(
            max_restarts=-1,
            max_task_retries=0,
            scheduling_strategy="SPREAD",
            runtime_env={"env_vars": ONE_THREAD},
        )
        self._args = (kernel_class, dict(fixed), tuple(outputs))
        self.actors: list[Any] = []
        self.placement: dict[int, dict[str, Any]] = {}  # actor index -> {"pid", "node"} once ready
        for _ in range(workers):
            self.actors.append(self._options.remote(*self._args))

    def map(self, tasks: Iterable[BlockTask]) -> Iterator[BlockResult]:
        pool = _Dispatch(self, deque(tasks))
        while pool.queue or pool.running:
            pool.tick()
            refs = [*pool.running, *pool.pings]
            if refs:
                done, _ = self.ray.wait(refs, num_returns=1, timeout=pool.timeout())
            else:  # every actor is waiting to be pinged again
                time.sleep(pool.timeout() or 0.0)
                done = []
            if not done:
                pool.on_timeout()
            elif done[0] in pool.pings:
                pool.on_ping(done[0])
            else:
                yield from pool.on_result(done[0])

    def _after_death(
        self, task: BlockTask, was_running: bool, exc: Exception
    ) -> tuple[list[BlockTask], list[BlockResult]]:
        """What to resubmit, and what to give up, after ``task``'s actor died.

        A task that was only queued behind the one that killed the actor is not
        charged an attempt. A block that used up its attempts is split into single
        points with one last attempt each, so a poison point fails alone.
        """
        if not was_running:
            return [task], []
        task.attempt += 1
        if task.attempt <= self.max_attempts:
            return [task], []
        if len(task.swept) == 1:
            message = f"worker died {task.attempt - 1} times running this point: {type(exc).__name__}"
            return [], [failed_block(task, message)]
        return [single(task, k, attempt=self.max_attempts) for k in range(len(task.swept))], []

    def _after_timeout(self, task: BlockTask) -> tuple[list[BlockTask], list[BlockResult]]:
        """A block that overran: its points one by one; a single point that overran fails."""
        if len(task.swept) == 1:
            message = f"exceeded the time limit of {self.time_limit:g} s a point (`run.time_limit`)"
            return [], [failed_block(task, message)]
        return [single(task, k, attempt=task.attempt) for k in range(len(task.swept))], []

    def wait_ready(self) -> None:
        """Block until every actor is up (benchmarks time the steady state after this)."""
        self.ray.get([actor.ready.remote() for actor in self.actors])

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []


class _Dispatch:
    """The bookkeeping of one :meth:`RayExecutor.map`: who runs what, who is ready."""

    GROWTH_PERIOD = 5.0  # seconds between looks at the cluster's CPU count

    def __init__(self, executor: RayExecutor, queue: deque):
        ray = executor.ray
        self.ex = executor
        self.queue = queue
        self.actor_errors = (
            ray.exceptions.RayActorError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.ObjectLostError,
            ray.exceptions.NodeDiedError,
        )
        # Per actor, its calls in submission order: an actor runs them one at a time, so
        # the oldest is the one running and the only one to blame if the actor dies.
        self.calls: list[deque] = []
        self.started: list[float] = []  # when calls[i][0] began running
        self.ping_failures: list[int] = []
        self.running: dict[Any, tuple[int, BlockTask]] = {}
        self.pings: dict[Any, int] = {}
        self.reping: list[tuple[float, int]] = []  # (when, actor): ping again after a refusal
        self.available: set[int] = set()
        self.expired: set[Any] = set()  # calls whose actor was killed for overrunning
        self.last_ready = time.monotonic()
        self.next_growth = time.monotonic() if executor.grow else math.inf
        for i in range(len(executor.actors)):
            self._track(i)

    def _track(self, i: int) -> None:
        self.calls.append(deque())
        self.started.append(0.0)
        self.ping_failures.append(0)
        self._ping(i)

    def _ping(self, i: int) -> None:
        self.available.discard(i)
        self.pings[self.ex.actors[i].ready.remote()] = i

    # -- each turn of the loop ---------------------------------------------------------------
    def tick(self) -> None:
        """Grow the pool, ping again where due, and fill every ready actor's slots."""
        now = time.monotonic()
        if now >= self.next_growth:
            self.next_growth = now + self.GROWTH_PERIOD
            cpus = int(self.ex.ray.cluster_resources().get("CPU", 0))
            while len(self.ex.actors) < cpus:
                self.ex.actors.append(self.ex._options.remote(*self.ex._args))
                self._track(len(self.ex.actors) - 1)
        for entry in [r for r in self.reping if r[0] <= now]:
            self.reping.remove(entry)
            self._ping(entry[1])
        while self.queue and (i := self._free_actor()) is not None:
            task = self.queue.popleft()
            ref = self.ex.actors[i].run.remote(task)
            self.running[ref] = (i, task)
            if not self.calls[i]:
                self.started[i] = time.monotonic()
            self.calls[i].append(ref)

    def _free_actor(self) -> int | None:
        free = [i for i in self.available if len(self.calls[i]) < self.ex.in_flight_per_worker]
        return min(free, key=lambda i: len(self.calls[i])) if free else None

    def _deadlines(self) -> dict[int, float]:
        """Per actor with a running call not yet expired: when that call overruns."""
        if self.ex.time_limit is None:
            return {}
        return {
            i: self.started[i] + self.ex.time_limit * len(self.running[c[0]][1].swept) + 1.0
            for i, c in enumerate(self.calls)
            if c and c[0] not in self.expired
        }

    def _stalled(self) -> bool:
        return not self.available and not self.running

    def timeout(self) -> float | None:
        """How long ``ray.wait`` may block before something here falls due."""
        wake = [when for when, _ in self.reping] + list(self._deadlines().values()) + [self.next_growth]
        if self._stalled():
            wake.append(self.last_ready + self.ex.start_timeout)
        soonest = min(wake)
        return None if soonest == math.inf else max(0.0, soonest - time.monotonic())

    # -- what ray.wait returned ----------------------------------------------------------------
    def on_timeout(self) -> None:
        now = time.monotonic()
        if self._stalled() and now >= self.last_ready + self.ex.start_timeout:
            cpus = self.ex.ray.cluster_resources().get("CPU", 0)
            raise SweeperError(
                f"no worker became ready within {self.ex.start_timeout:.0f} s: the cluster has "
                f"{cpus:g} CPUs free for workers and each worker needs 1."
            )
        for i, due in self._deadlines().items():
            if now >= due:  # kill the overrunning actor; Ray restarts it
                self.expired.add(self.calls[i][0])
                self.ex.ray.kill(self.ex.actors[i], no_restart=False)
                self._ping(i)

    def on_ping(self, ref: Any) -> None:
        i = self.pings.pop(ref)
        try:
            self.ex.placement[i] = self.ex.ray.get(ref)
        except self.actor_errors as exc:
            self.ping_failures[i] += 1
            if self.ping_failures[i] >= 20 and not self.available and not self.ex.placement:
                raise SweeperError(f"no worker could start the kernel: {_last_line(exc)}") from None
            # A restarting actor refuses calls for a moment: ask again a little later.
            self.reping.append((time.monotonic() + min(1.0, 0.05 * self.ping_failures[i]), i))
            return
        self.available.add(i)
        self.ping_failures[i] = 0
        self.last_ready = time.monotonic()

    def on_result(self, ref: Any) -> Iterator[BlockResult]:
        i, task = self.running.pop(ref)
        was_running = self.calls[i][0] == ref
        self.calls[i].remove(ref)
        if was_running:
            self.started[i] = time.monotonic()
        try:
            result = self.ex.ray.get(ref)
        except self.actor_errors as exc:
            if i in self.available:
                self._ping(i)
            if ref in self.expired:
                self.expired.discard(ref)
                again, given_up = self.ex._after_timeout(task)
            else:
                again, given_up = self.ex._after_death(task, was_running, exc)
            self.queue.extendleft(reversed(again))
            yield from given_up
        except self.ex.ray.exceptions.RayTaskError as exc:
            yield failed_block(task, f"block failed outside the kernel: {exc.cause!r}")
        else:
            yield result


def _last_line(exc: Exception) -> str:
    """The exception line at the bottom of a Ray error's remote traceback."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


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
