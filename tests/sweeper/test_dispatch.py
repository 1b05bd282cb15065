"""The dispatch policy against a fake pool: no Ray, no sleeping, a clock the fake moves.

The fake runs each worker's calls one at a time in submission order, as a Ray
actor does. A block's points each take ``POINT`` seconds of fake time; a
point's ``fate`` makes it kill its worker (``"die"``, or ``"die_once"``: only
the first time it runs), hang, or make the whole call raise outside the kernel.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pytest

from sweeper.blocks import FAILED, OK, BlockResult, BlockTask
from sweeper.dispatch import CallFailed, Dispatch, WorkerDied
from sweeper.errors import SweeperError

POINT = 1.0  # fake seconds a point takes
RESTART = 0.5  # fake seconds a dead worker takes to come back


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Call:
    handle: int
    task: BlockTask
    start: float = math.nan  # set once the call is at the head of its worker's queue


@dataclass
class Worker:
    up_at: float  # when it answers a ping (and can start running calls)
    queue: deque = field(default_factory=deque)
    refusals: int = 0  # pings it still refuses


class FakePool:
    """A :class:`sweeper.dispatch.Pool` simulated in fake time."""

    def __init__(self, clock: Clock, workers: int = 1, cpus: float | None = None, start: float = 0.0):
        self.clock = clock
        self.start = start  # seconds a new worker takes to become ready
        self.workers = [Worker(up_at=start) for _ in range(workers)]
        self.available_cpus = float(workers) if cpus is None else cpus
        self.handles = 0
        self.pings: dict[int, tuple[float, object]] = {}  # handle -> (when it answers, answer)
        self.done: dict[int, tuple[float, int, object]] = {}  # handle -> (when, order, value or error)
        self.seen: set = set()  # points that already ran once (for "die_once")
        self.submitted: list[tuple[int, tuple, int, int]] = []  # (worker, block, n points, attempt)
        self.most_in_flight = 0
        self.restarts = 0

    # -- the Pool interface ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.workers)

    def add_worker(self) -> None:
        self.workers.append(Worker(up_at=self.clock.now + self.start))

    def submit(self, worker: int, task: BlockTask) -> int:
        w = self.workers[worker]
        call = Call(self._handle(), task)
        if not w.queue:
            call.start = max(self.clock.now, w.up_at)
        w.queue.append(call)
        self.submitted.append((worker, task.block_id, len(task.swept), task.attempt))
        self.most_in_flight = max(self.most_in_flight, len(w.queue))
        return call.handle

    def ping(self, worker: int) -> int:
        w, handle = self.workers[worker], self._handle()
        if w.refusals:
            w.refusals -= 1
            error = WorkerDied("ActorDied", "RuntimeError: this kernel cannot be built here")
            self.pings[handle] = (self.clock.now, error)
        else:
            self.pings[handle] = (max(self.clock.now, w.up_at), {"worker": worker})
        return handle

    def wait(self, handles, timeout):
        limit = math.inf if timeout is None else self.clock.now + timeout
        while True:
            ready = [(self.done[h][:2], h) for h in handles if h in self.done]
            if ready:
                return min(ready)[1]
            when = self._next_event()
            if when > limit:
                assert limit < math.inf, "the dispatch would wait forever"
                self.clock.now = limit
                return None
            self.clock.now = max(self.clock.now, when)
            self._fire(when)

    def result(self, handle: int):
        _, _, value = self.done.pop(handle)
        if isinstance(value, Exception):
            raise value
        return value

    def restart(self, worker: int) -> None:
        self.restarts += 1
        self._kill(worker, self.clock.now)

    def cpus(self) -> float:
        return self.available_cpus

    # -- the simulation -------------------------------------------------------------------------
    def _handle(self) -> int:
        self.handles += 1
        return self.handles

    def _finish(self, handle: int, when: float, value: object) -> None:
        self.done[handle] = (when, len(self.done), value)

    def _outcome(self, task: BlockTask) -> tuple[float, str]:
        """How long the call runs, and how it ends: "ok", "die", "hang" or "raise"."""
        for k, point in enumerate(task.swept):
            fate = point.get("fate", "ok")
            key = (task.block_id, point["x"])
            if fate == "die" or (fate == "die_once" and key not in self.seen):
                self.seen.add(key)
                return (k + 1) * POINT, "die"
            self.seen.add(key)
            if fate in ("hang", "raise"):
                return (math.inf if fate == "hang" else 0.0), fate
        return len(task.swept) * POINT, "ok"

    def _next_event(self) -> float:
        times = [when for when, _ in self.pings.values()]
        times += [w.queue[0].start + self._outcome_peek(w.queue[0].task) for w in self.workers if w.queue]
        return min(times, default=math.inf)

    def _outcome_peek(self, task: BlockTask) -> float:
        seen = set(self.seen)
        seconds, _ = self._outcome(task)
        self.seen = seen
        return seconds

    def _fire(self, now: float) -> None:
        for handle, (when, answer) in list(self.pings.items()):
            if when <= now:
                del self.pings[handle]
                self._finish(handle, when, answer)
        for i, w in enumerate(self.workers):
            if w.queue and w.queue[0].start + self._outcome_peek(w.queue[0].task) <= now:
                call = w.queue[0]
                _, how = self._outcome(call.task)
                if how == "die":
                    self._kill(i, now)
                    continue
                w.queue.popleft()
                value = CallFailed(ValueError("boom")) if how == "raise" else _ok(call.task, now)
                self._finish(call.handle, now, value)
                if w.queue:
                    w.queue[0].start = now

    def _kill(self, worker: int, now: float) -> None:
        """The worker dies: every call it holds fails, and it is back after RESTART seconds."""
        w = self.workers[worker]
        while w.queue:
            self._finish(w.queue.popleft().handle, now, WorkerDied("ActorDied", "the worker died"))
        w.up_at = now + RESTART


def _ok(task: BlockTask, now: float) -> BlockResult:
    n = len(task.swept)
    x = np.array([float(p["x"]) for p in task.swept])
    return BlockResult(
        task.block_id, task.indices, {"x": x}, np.full(n, OK, np.int8), [""] * n, np.ones(n), now
    )


def block(block_id: int, *fates: str) -> BlockTask:
    """A block of len(fates) points; point k has x = 10 * block_id + k."""
    n = len(fates)
    swept = [{"x": 10 * block_id + k, "fate": fate} for k, fate in enumerate(fates)]
    return BlockTask((block_id,), np.arange(n)[:, None] + 10 * block_id, swept, [(0, k) for k in range(n)])


def sweep(dispatch: Dispatch, tasks: list[BlockTask]) -> dict[int, tuple[int, str]]:
    """Run ``tasks``; point x -> (status, message), checking each point comes back exactly once."""
    points: dict[int, tuple[int, str]] = {}
    for result in dispatch.map(tasks):
        for index, status, message in zip(result.indices, result.status, result.messages):
            x = int(index[0])
            assert x not in points, f"point {x} came back twice"
            points[x] = (int(status), message)
    assert len(points) == sum(len(t.swept) for t in tasks), "a point never came back"
    return points


def setup(workers: int = 1, cpus: float | None = None, start: float = 0.0, **policy):
    clock = Clock()
    pool = FakePool(clock, workers, cpus=cpus, start=start)
    return clock, pool, Dispatch(pool, clock=clock, **policy)


# -- ordering -------------------------------------------------------------------------------------
def test_results_come_in_completion_order_with_bounded_calls_in_flight():
    clock, pool, dispatch = setup(workers=2, in_flight_per_worker=2)
    tasks = [block(0, "ok", "ok", "ok", "ok"), block(1, "ok"), block(2, "ok"), block(3, "ok"), block(4, "ok")]
    order = [(r.block_id[0], r.finished_at) for r in dispatch.map(tasks)]
    # Worker 0 answers its ping first and takes blocks 0 (4 s) and 1; worker 1 takes 2, 3, then 4.
    assert order == [(2, 1.0), (3, 2.0), (4, 3.0), (0, 4.0), (1, 5.0)]
    assert pool.most_in_flight == 2 and clock.now == 5.0


# -- deaths -------------------------------------------------------------------------------------------
def test_a_death_charges_only_the_running_call():
    """The block queued behind the one that killed the worker is resubmitted uncharged."""
    clock, pool, dispatch = setup(workers=1, in_flight_per_worker=2, max_attempts=2)
    points = sweep(dispatch, [block(0, "ok", "die_once"), block(1, "ok")])
    assert all(status == OK for status, _ in points.values())
    attempts = {}
    for _, block_id, _, attempt in pool.submitted:
        attempts.setdefault(block_id[0], []).append(attempt)
    assert attempts == {0: [1, 2], 1: [1, 1]}


def test_a_block_that_keeps_killing_its_worker_is_split_and_the_poison_point_fails_alone():
    clock, pool, dispatch = setup(workers=2, max_attempts=2)
    points = sweep(dispatch, [block(0, "ok", "die", "ok", "ok"), block(1, "ok", "ok")])
    assert points.pop(1) == (FAILED, "worker died 2 times running this point: ActorDied")
    assert all(status == OK for status, _ in points.values())
    sizes = [(block_id[0], n, attempt) for _, block_id, n, attempt in pool.submitted if block_id == (0,)]
    assert sizes[:2] == [(0, 4, 1), (0, 4, 2)]  # the block, then its retry
    # Then its points one by one, on their last attempt (a point queued behind the poison
    # point when it killed the worker again is resubmitted, still uncharged).
    assert set(sizes[2:]) == {(0, 1, 2)} and len(sizes[2:]) >= 4


# -- time limits --------------------------------------------------------------------------------------
def test_a_block_over_the_time_limit_is_split_and_the_point_that_overruns_alone_fails():
    clock, pool, dispatch = setup(workers=1, in_flight_per_worker=2, time_limit=0.5)
    points = sweep(dispatch, [block(0, "ok", "hang", "ok"), block(1, "ok")])
    assert points.pop(1) == (FAILED, "exceeded the time limit of 0.5 s a point (`run.time_limit`)")
    assert all(status == OK for status, _ in points.values())
    assert pool.restarts == 2  # the block of 3, then the hanging point alone
    # The block overran at 3 x 0.5 + 1 s; the point alone at 0.5 + 1 s after it started.
    assert 2.5 + 1.5 <= clock.now < 2.5 + 1.5 + 5 * (POINT + RESTART)
    # Nothing was charged an attempt: not the overrunning block, not the one queued behind it.
    assert {attempt for *_, attempt in pool.submitted} == {1}


def test_without_a_time_limit_nothing_is_restarted():
    clock, pool, dispatch = setup(workers=1)
    sweep(dispatch, [block(0, "ok", "ok", "ok", "ok", "ok", "ok")])
    assert pool.restarts == 0 and clock.now == 6.0


# -- the pool -----------------------------------------------------------------------------------------
def test_the_pool_grows_as_cpus_join():
    clock, pool, dispatch = setup(workers=1, grow=True)
    tasks = [block(b, "ok") for b in range(30)]
    results = dispatch.map(tasks)
    next(results)
    pool.available_cpus = 3  # two nodes joined
    rest = list(results)
    assert len(rest) == 29 and len(pool) == 3
    assert {worker for worker, *_ in pool.submitted} == {0, 1, 2}
    # Grown at the first look after the CPUs joined (every GROWTH_PERIOD s), then 3 blocks/s.
    assert clock.now < Dispatch.GROWTH_PERIOD + 30 / 3 + 1


def test_no_worker_ready_within_the_start_timeout_is_an_error():
    clock, pool, dispatch = setup(workers=2, cpus=0, start=math.inf, start_timeout=600.0)
    message = r"^no worker became ready within 600 s: the cluster has 0 CPUs free for workers and each worker needs 1\.$"
    with pytest.raises(SweeperError, match=message):
        list(dispatch.map([block(0, "ok")]))
    assert clock.now == 600.0


def test_a_worker_that_refuses_pings_is_asked_again_and_then_gets_work():
    clock, pool, dispatch = setup(workers=2)
    pool.workers[1].refusals = 3  # restarting: refuses calls for a moment
    sweep(dispatch, [block(b, "ok") for b in range(6)])
    assert {worker for worker, *_ in pool.submitted} == {0, 1}
    assert dispatch.placement == {0: {"worker": 0}, 1: {"worker": 1}}


def test_workers_that_never_start_are_an_error_with_the_reason():
    clock, pool, dispatch = setup(workers=2)
    for worker in pool.workers:
        worker.refusals = math.inf
    message = r"^no worker could start the kernel: RuntimeError: this kernel cannot be built here$"
    with pytest.raises(SweeperError, match=message):
        list(dispatch.map([block(0, "ok")]))
    assert clock.now < 60  # asked again within a second each time, then given up


# -- failures outside the kernel ---------------------------------------------------------------------
def test_a_block_failing_outside_the_kernel_is_failed_with_its_message_and_not_retried():
    clock, pool, dispatch = setup(workers=1)
    points = sweep(dispatch, [block(0, "ok", "raise"), block(1, "ok")])
    assert points[0] == points[1] == (FAILED, "block failed outside the kernel: ValueError('boom')")
    assert points[10][0] == OK and len(pool.submitted) == 2


def test_in_process_a_block_failing_outside_the_kernel_takes_the_same_path(monkeypatch):
    from sweeper.executors import InProcessExecutor
    from tests.sweeper.relaxation import Relaxation

    executor = InProcessExecutor(Relaxation, {"n_times": 3}, ["x"])

    def broken(task):
        raise ValueError("boom")

    monkeypatch.setattr(executor.runner, "run", broken)
    (result,) = executor.map([block(0, "ok", "ok")])
    assert list(result.status) == [FAILED, FAILED]
    assert result.messages == ["block failed outside the kernel: ValueError('boom')"] * 2


def test_a_source_that_waits_for_results_gets_them_and_idle_time_is_measured():
    """A refined grid's source yields None until the result it decides on is in: the dispatch
    waits for that result (never for nothing), and counts the idle worker's time."""
    clock = Clock()
    pool = FakePool(clock, workers=2)
    dispatch = Dispatch(pool, clock=clock, in_flight_per_worker=1)
    seen: list[int] = []

    def source():
        yield block(0, "ok", "ok")  # 2 s on one worker; the other has nothing to do
        while not seen:
            yield None
        yield block(1, "ok")
        yield block(2, "ok")

    for result in dispatch.map(source()):
        seen.extend(int(i[0]) for i in result.indices)
    assert sorted(seen) == [0, 1, 10, 20] and clock.now == 3.0
    assert dispatch.idle_fraction() == pytest.approx(2.0 / 6.0)  # worker 1 idle 2 s of 2 x 3 s


def test_a_source_waiting_with_nothing_in_flight_is_an_error_not_a_hang():
    dispatch = Dispatch(FakePool(Clock(), workers=1), clock=Clock())
    with pytest.raises(SweeperError, match="waits for results, but none is in flight"):
        list(dispatch.map(iter([None])))
