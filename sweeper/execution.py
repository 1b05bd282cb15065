"""Where a submission's blocks run, and the lifetime of what runs them.

A grid that asks for nothing else (no worker count, address or time limit) first runs
a pilot in this process; a small one stays here, a larger one goes to Ray
(:meth:`Execution.small_or_ray`). The executors, the private Ray's session and the
progress bar of one submission are closed together, whatever way it ends: the
private Ray is shut down and its folder removed (kept, and named, if the submission
failed), or kept warm for the next submission of an interactive session.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from sweeper import scheduler
from sweeper.cluster import close_warm, connect_ray, keep_warm
from sweeper.errors import SweeperError
from sweeper.executors import Executor, InProcessExecutor, RayExecutor
from sweeper.parts import Parts
from sweeper.progress import in_jupyter, interactive
from sweeper.scheduler import Summary
from sweeper.spec import GridSpec
from sweeper.store import Store

# Seconds of compute below which a grid runs in this process: a private Ray takes about 7 s to
# start and stop on 2 idle cores (5.5-6.3 s `ray.init`, 1.3-1.5 s `ray.shutdown`), 10 s loaded.
IN_PROCESS_BELOW = 5.0


def in_process_first(spec: GridSpec, address: str | None, took_over: str | None) -> bool:
    """Whether a pilot here decides between this process and Ray (:meth:`Execution.small_or_ray`).

    Only when that is safe and Ray is not free: no worker count, address or time limit
    asked for (in-process has no time limit), no Ray already running in this process, and
    the store's last driver did not die (it may have been killed by a point: then the
    points run in Ray workers, where a crash is a worker's, not the driver's).
    """
    ray = sys.modules.get("ray")
    return (
        spec.options.workers is None
        and address is None
        and spec.options.time_limit is None
        and took_over is None
        and spec.refine is None  # its points are planned as results come: no pilot ends to take
        and not (ray is not None and ray.is_initialized())
    )


class Execution:
    """The executors of one submission, its private Ray (if any) and its progress bar."""

    def __init__(
        self,
        spec: GridSpec,
        address: str | None,
        verbose: bool,
        note: Callable[[str], None],
        retry_failed: bool = False,
    ):
        self.spec, self.address, self.verbose, self.note = spec, address, verbose, note
        self.retry_failed = retry_failed  # what a refined grid's decisions start from
        self.executors: list[Executor] = []
        self.session = None
        self.bar = None
        # the parts of points held across this submission's sweeps (a pilot's, then the rest's)
        kernel_class = spec.kernel_class()
        has_parts = Parts.declared(kernel_class)
        self.parts = Parts(kernel_class, spec.fixed, spec.options.outputs) if has_parts else None

    def start_ray(self) -> Executor:
        executor, self.session = make_executor(self.spec, self.address, self.verbose)
        self.executors.append(executor)
        return executor

    def sweep(
        self,
        target: Store,
        todo: scheduler.Plan,
        executor: Executor | None = None,
        on_part: Callable[[Any], None] | None = None,
        only_part: int | None = None,
    ) -> Summary:
        executor = executor or self.executors[-1]

        def each_part(result) -> None:  # a part's result: the caller's hook, then the bar
            if on_part is not None:
                on_part(result)
            if self.bar is not None:
                self.bar.update_parts(*self.parts.progress())

        summary = scheduler.sweep(
            self.spec,
            target,
            executor,
            on_result=None if self.bar is None else self.bar.update_block,
            todo=todo,
            retry_failed=self.retry_failed,
            on_more=None if self.bar is None or self.spec.refine is None else self.bar.expect,
            parts=self.parts,
            only_part=only_part,
            on_part=each_part,
        )
        summary.warm_up = tuple(getattr(executor, "warm_ups", list)())
        return summary

    def small_or_ray(self, target: Store, todo: scheduler.Plan) -> Summary:
        """A pilot (the first and last points to do) in this process, then the rest here or on Ray.

        The rest stays here if it would take less than ``IN_PROCESS_BELOW`` seconds at the
        pilot's dearest point (a pessimistic guess: a wrong "here" costs parallelism).
        """
        spec = self.spec
        here = InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs)
        self.executors.append(here)
        if self.parts is not None:
            return self._part_pilot(target, todo, here)
        pilot = todo.ends()
        costs: list[float] = []
        bar = self.bar
        self.bar = _Tee(bar, lambda result: costs.extend(result.wall_time.tolist()))
        summary = self.sweep(target, todo.only(pilot), here)
        summary.skipped = todo.skipped
        self.bar = bar
        rest = todo.without(pilot)
        if rest.n_todo == 0:
            summary.note = "in this process"
            return summary
        estimate = rest.n_todo * float(np.nanmax(costs)) if np.isfinite(costs).any() else math.inf
        if estimate < IN_PROCESS_BELOW:
            summary.add(self.sweep(target, rest, here))
            summary.note = _here(estimate)
            return summary
        summary.add(self.sweep(target, rest, self.start_ray()))
        return summary

    def _part_pilot(self, target: Store, todo: scheduler.Plan, here: Executor) -> Summary:
        """The pilot of a kernel with parts: the first part of the first point, so that one
        expensive point still spreads its parts over Ray's workers. The part is kept."""
        if todo.n_todo == 0:
            return self.sweep(target, todo, here)
        seconds: list[float] = []
        first = todo.ends()[:1]
        pilot = self.sweep(target, todo.only(first), here, lambda r: seconds.extend(r.wall_time.tolist()), 0)
        per_point = self.parts.count(self.spec.point(tuple(first[0]))[0])  # the first point's parts
        cost = float(np.nanmax(seconds)) if np.isfinite(seconds).any() else 0.0
        rest = todo.without(first) if pilot.computed else todo  # a point of one part is done
        estimate = (todo.n_todo * per_point - 1) * cost
        if estimate < IN_PROCESS_BELOW:
            pilot.add(self.sweep(target, rest, here))
            pilot.note = _here(estimate)
        else:
            pilot.add(self.sweep(target, rest, self.start_ray()))
        pilot.skipped = todo.skipped
        return pilot

    def close(self, failed: bool) -> None:
        for executor in self.executors:
            executor.close()
        self.executors = []
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.session is not None:
            session, self.session = self.session, None
            if session.local and not failed and interactive():  # a notebook: the next submit starts at once
                keep_warm(session)
                _close_before_the_kernel()
                return
            kept = session.close(failed=failed)
            if kept is not None:
                self.note(f"Ray's logs are kept in {kept} (driver.log, session_*/logs); remove it when done.")


def _here(estimate: float) -> str:
    return f"in this process: about {estimate:.1f} s of work, less than a private Ray's start-up"


class _Tee:
    """A progress bar that also hands every result to ``also``."""

    def __init__(self, bar, also):
        self.bar, self.also = bar, also

    def update_block(self, result) -> None:
        self.also(result)
        if self.bar is not None:
            self.bar.update_block(result)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def make_executor(spec: GridSpec, address: str | None, verbose: bool = False) -> tuple[Executor, Any]:
    """In-process for ``workers = 0``, else warm Ray actors; returns (executor, Ray session or None)."""
    kernel_class = spec.kernel_class()
    if spec.options.workers == 0:
        if address is not None:
            raise SweeperError("--workers 0 runs in this process; it cannot be combined with --address.")
        return InProcessExecutor(kernel_class, spec.fixed, spec.options.outputs), None
    workers, session = connect_ray(address, spec.options.workers, verbose)
    try:
        executor = RayExecutor(
            kernel_class,
            spec.fixed,
            spec.options.outputs,
            workers=workers,
            max_attempts=spec.options.max_attempts,
            time_limit=spec.options.time_limit,
            grow=address is not None and spec.options.workers is None,  # follow an autoscaling cluster
        )
    except BaseException:
        if session is not None:
            session.close(failed=True)
        raise
    return executor, session


def _close_before_the_kernel() -> None:
    """In a Jupyter kernel, shut the warm Ray down when the kernel is asked to shut down.

    At exit is too late there: ipykernel first sends SIGTERM to its child processes (Ray's
    own among them), and the Ray shutdown that follows can outlast the grace Jupyter gives.
    """
    if not in_jupyter():
        return
    kernel = getattr(sys.modules["IPython"].get_ipython(), "kernel", None)
    shutdown = getattr(kernel, "do_shutdown", None)
    if shutdown is None or getattr(shutdown, "closes_warm_ray", False):
        return

    def do_shutdown(restart):
        close_warm()
        return shutdown(restart)

    do_shutdown.closes_warm_ray = True
    kernel.do_shutdown = do_shutdown
