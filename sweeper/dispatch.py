"""The dispatch policy: which worker runs which block, and what to do when one goes wrong.

Policy apart from mechanism, as Ray's ``ActorPool`` keeps its narrow contract:
a :class:`Dispatch` drives a :class:`Pool` of numbered workers (submit a block
to worker ``i``, wait for the first of some handles, read a handle's result,
restart a worker, ping it, count the cluster's CPUs) and knows nothing of Ray,
so the whole policy is tested against a fake pool and a fake clock.

The policy, for one :meth:`Dispatch.map`:

- A worker gets calls only once a ping says it is ready (placed and warm). A
  worker that refuses pings (restarting) is asked again a little later; if no
  worker was ever ready and one keeps refusing, the kernel cannot start: an error.
- At most ``in_flight_per_worker`` calls a worker; results in completion order.
- A worker runs its calls one at a time in submission order, so its oldest call
  is the one running. If the worker dies, only that call is charged an attempt;
  the calls queued behind it are resubmitted uncharged.
- A block whose attempts ran out is split into single points with one last
  attempt each: a poison point then fails alone, with its message.
- With ``time_limit`` (seconds a point), a call running longer than the limit
  times its points (plus a second) has its worker restarted; the block is split
  into single points, and a single point that overruns is failed.
- With ``grow``, the pool adds workers as the cluster gains CPUs.
- Tasks are taken from the source as workers free up; a source may yield ``None`` (a
  refined grid whose next points wait for results in flight): the dispatch then waits for
  a result and asks again. The time each ready worker held no call is measured
  (:meth:`Dispatch.idle_fraction`).
- If no worker is ready and nothing runs for ``start_timeout`` seconds, the
  cluster has no room for the workers: an error.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from sweeper.blocks import BlockResult, BlockTask, failed_block, single
from sweeper.errors import SweeperError


class WorkerDied(Exception):
    """The worker (its process or its node) died while it held the call, or refused a ping.

    ``kind`` names what the pool saw (e.g. ``RayActorError``); the message is
    the last line of its report.
    """

    def __init__(self, kind: str, message: str = ""):
        super().__init__(message or kind)
        self.kind = kind


class CallFailed(Exception):
    """The call raised in the worker; ``cause`` is the exception it raised."""

    def __init__(self, cause: BaseException):
        super().__init__(repr(cause))
        self.cause = cause


class Pool(Protocol):
    """Numbered workers, each running its calls one at a time in submission order."""

    def __len__(self) -> int:
        """How many workers the pool has (they are numbered 0..n-1)."""

    def add_worker(self) -> None:
        """Start one more worker, numbered ``len(pool)``."""

    def submit(self, worker: int, task: BlockTask) -> Hashable:
        """Queue ``task`` on ``worker``; a handle to its result."""

    def ping(self, worker: int) -> Hashable:
        """A handle that finishes once ``worker`` is up: its result says where it runs."""

    def wait(self, handles: Sequence[Hashable], timeout: float | None) -> Hashable | None:
        """The first of ``handles`` to finish within ``timeout`` seconds (None: no limit), or None."""

    def result(self, handle: Hashable) -> Any:
        """The finished call's value; raises :class:`WorkerDied` or :class:`CallFailed`."""

    def restart(self, worker: int) -> None:
        """Kill ``worker`` (its calls fail with :class:`WorkerDied`); it comes back by itself."""

    def cpus(self) -> float:
        """CPUs the cluster has for workers (each needs one)."""


_END = object()  # the task source is exhausted


class Dispatch:
    """Runs blocks on a :class:`Pool` under the policy in this module's docstring."""

    GROWTH_PERIOD = 5.0  # seconds between looks at the cluster's CPU count
    PING_ATTEMPTS = 20  # refusals of a worker before "the kernel cannot start", if none ever started

    def __init__(
        self,
        pool: Pool,
        *,
        max_attempts: int = 3,
        in_flight_per_worker: int = 2,
        time_limit: float | None = None,
        grow: bool = False,
        start_timeout: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.pool = pool
        self.max_attempts = max_attempts
        self.in_flight_per_worker = in_flight_per_worker
        self.time_limit = time_limit
        self.grow = grow
        self.start_timeout = start_timeout
        self.clock = clock
        self.placement: dict[int, Any] = {}  # worker -> its answer to the last ping, once ready

    def map(self, tasks: Iterable[BlockTask]) -> Iterator[BlockResult]:
        """Run every task; yield results in completion order."""
        self._begin(tasks)
        while self.queue or self.running or not self.exhausted:
            self._tick()
            if not (self.queue or self.running or not self.exhausted):
                break
            done = self.pool.wait([*self.running, *self.pings], self._timeout())
            if done is None:
                self._on_timeout()
            elif done in self.pings:
                self._on_ping(done)
            else:
                yield from self._on_result(done)

    # -- bookkeeping of one map ---------------------------------------------------------------
    def _begin(self, tasks: Iterable[BlockTask]) -> None:
        now = self.clock()
        # Tasks are taken from `tasks` one at a time, as workers free up (the scheduler
        # builds each when it is taken); the queue holds one ahead, and retries.
        self.source = iter(tasks)
        self.exhausted = False
        self.queue: deque[BlockTask] = deque()
        # Per worker, its calls in submission order: the oldest is the one running.
        self.calls: list[deque[Hashable]] = []
        self.started: list[float] = []  # when calls[i][0] began running
        self.ping_failures: list[int] = []
        self.running: dict[Hashable, tuple[int, BlockTask]] = {}
        self.pings: dict[Hashable, int] = {}
        self.reping: list[tuple[float, int]] = []  # (when, worker): ping again after a refusal
        self.available: set[int] = set()
        self.expired: set[Hashable] = set()  # calls whose worker was restarted for overrunning
        self.bystanders: set[Hashable] = set()  # calls queued on a worker that died running another
        self.last_ready = now
        self.next_growth = now if self.grow else math.inf
        # Idle time: per worker ready, the seconds it held no call (waiting for tasks)
        self.idle: list[float] = []
        self.idle_since: list[float | None] = []
        self.ready_since: list[float | None] = []
        for i in range(len(self.pool)):
            self._track(i)
        self._refill()

    def idle_fraction(self) -> float | None:
        """Of the time workers were ready during the last map, the fraction they held no call."""
        now = self.clock()
        idle = sum(t + (now - s if s is not None else 0.0) for t, s in zip(self.idle, self.idle_since))
        ready = sum(now - s for s in self.ready_since if s is not None)
        return idle / ready if ready > 0 else None

    def _track(self, i: int) -> None:
        self.calls.append(deque())
        self.started.append(0.0)
        self.ping_failures.append(0)
        self.idle.append(0.0)
        self.idle_since.append(None)
        self.ready_since.append(None)
        self._ping(i)

    def _ping(self, i: int) -> None:
        self.available.discard(i)
        self.pings[self.pool.ping(i)] = i

    def _tick(self) -> None:
        """Grow the pool, ping again where due, and fill every ready worker's slots."""
        self._refill()
        now = self.clock()
        if now >= self.next_growth:
            self.next_growth = now + self.GROWTH_PERIOD
            while len(self.pool) < int(self.pool.cpus()):
                self.pool.add_worker()
                self._track(len(self.pool) - 1)
        for entry in [r for r in self.reping if r[0] <= now]:
            self.reping.remove(entry)
            self._ping(entry[1])
        while self.queue and (i := self._free_worker()) is not None:
            task = self.queue.popleft()
            handle = self.pool.submit(i, task)
            self.running[handle] = (i, task)
            self._refill()
            if not self.calls[i]:
                self.started[i] = now
                if self.idle_since[i] is not None:
                    self.idle[i] += now - self.idle_since[i]
                    self.idle_since[i] = None
            self.calls[i].append(handle)

    def _refill(self) -> None:
        """Take the next task; a source may yield None: nothing yet, ask again after a result."""
        if self.queue or self.exhausted:
            return
        task = next(self.source, _END)
        if task is _END:
            self.exhausted = True
        elif task is not None:
            self.queue.append(task)
        elif not self.running:
            raise SweeperError("the task source waits for results, but none is in flight")

    def _free_worker(self) -> int | None:
        free = [i for i in self.available if len(self.calls[i]) < self.in_flight_per_worker]
        return min(free, key=lambda i: (len(self.calls[i]), i)) if free else None

    def _deadlines(self) -> dict[int, float]:
        """Per worker with a running call not yet expired: when that call overruns."""
        if self.time_limit is None:
            return {}
        return {
            i: self.started[i] + self.time_limit * len(self.running[c[0]][1].swept) + 1.0
            for i, c in enumerate(self.calls)
            if c and c[0] not in self.expired
        }

    def _stalled(self) -> bool:
        return not self.available and not self.running

    def _timeout(self) -> float | None:
        """How long to wait for a handle before something here falls due."""
        wake = [when for when, _ in self.reping] + list(self._deadlines().values()) + [self.next_growth]
        if self._stalled():
            wake.append(self.last_ready + self.start_timeout)
        soonest = min(wake)
        return None if soonest == math.inf else max(0.0, soonest - self.clock())

    # -- what the wait returned ---------------------------------------------------------------
    def _on_timeout(self) -> None:
        now = self.clock()
        if self._stalled() and now >= self.last_ready + self.start_timeout:
            raise SweeperError(
                f"no worker became ready within {self.start_timeout:.0f} s: the cluster has "
                f"{self.pool.cpus():g} CPUs free for workers and each worker needs 1."
            )
        for i, due in self._deadlines().items():
            if now >= due:  # restart the overrunning worker
                self.expired.add(self.calls[i][0])
                self.pool.restart(i)
                self._ping(i)

    def _on_ping(self, handle: Hashable) -> None:
        i = self.pings.pop(handle)
        try:
            self.placement[i] = self.pool.result(handle)
        except WorkerDied as exc:
            self.ping_failures[i] += 1
            if self.ping_failures[i] >= self.PING_ATTEMPTS and not self.available and not self.placement:
                raise SweeperError(f"no worker could start the kernel: {exc}") from None
            # A restarting worker refuses calls for a moment: ask again a little later.
            self.reping.append((self.clock() + min(1.0, 0.05 * self.ping_failures[i]), i))
            return
        self.available.add(i)
        self.ping_failures[i] = 0
        self.last_ready = self.clock()
        if self.ready_since[i] is None:
            self.ready_since[i] = self.last_ready
        if not self.calls[i] and self.idle_since[i] is None:
            self.idle_since[i] = self.last_ready

    def _on_result(self, handle: Hashable) -> Iterator[BlockResult]:
        i, task = self.running.pop(handle)
        was_running = self.calls[i][0] == handle
        self.calls[i].remove(handle)
        if was_running:
            self.started[i] = self.clock()
        if not self.calls[i] and i in self.available:
            self.idle_since[i] = self.clock()
        charged = was_running and handle not in self.bystanders
        overran = handle in self.expired
        self.bystanders.discard(handle)
        self.expired.discard(handle)
        try:
            result = self.pool.result(handle)
        except WorkerDied as exc:
            yield from self._after_death(i, task, charged, overran, exc)
        except CallFailed as exc:
            yield failed_block(task, f"block failed outside the kernel: {exc.cause!r}")
        else:
            yield result

    def _after_death(
        self, i: int, task: BlockTask, charged: bool, overran: bool, exc: WorkerDied
    ) -> Iterator[BlockResult]:
        """Resubmit ``task`` (charged an attempt if it was the one running), split it, or give it up."""
        if i in self.available:
            self._ping(i)
        if charged or overran:  # the calls still queued on the worker went down with it
            self.bystanders.update(self.calls[i])
        if overran:
            again, given_up = self._after_overrun(task)
        elif charged:
            again, given_up = self._after_charge(task, exc)
        else:
            again, given_up = [task], []
        self.queue.extendleft(reversed(again))
        yield from given_up

    def _after_charge(self, task: BlockTask, exc: WorkerDied) -> tuple[list[BlockTask], list[BlockResult]]:
        """A block whose worker died running it: again, or split once its attempts ran out."""
        task.attempt += 1
        if task.attempt <= self.max_attempts:
            return [task], []
        if len(task.swept) == 1:
            message = f"worker died {task.attempt - 1} times running this point: {exc.kind}"
            return [], [failed_block(task, message)]
        return [single(task, k, attempt=self.max_attempts) for k in range(len(task.swept))], []

    def _after_overrun(self, task: BlockTask) -> tuple[list[BlockTask], list[BlockResult]]:
        """A block that overran: its points one by one; a single point that overran fails."""
        if len(task.swept) == 1:
            message = f"exceeded the time limit of {self.time_limit:g} s a point (`run.time_limit`)"
            return [], [failed_block(task, message)]
        return [single(task, k, attempt=task.attempt) for k in range(len(task.swept))], []
