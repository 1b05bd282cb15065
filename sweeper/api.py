"""The library functions behind the CLI; notebooks call them directly."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

from sweeper import scheduler
from sweeper.blocks import FAILED
from sweeper.cluster import connect_ray
from sweeper.disk import format_bytes
from sweeper.errors import SweeperError
from sweeper.executors import Executor, InProcessExecutor, RayExecutor
from sweeper.scheduler import Summary
from sweeper.spec import MAX_POINTS, GridSpec, load_spec
from sweeper.store import Store, store_exists
from sweeper.template import Template, make_template


def prepare(
    spec_or_path: GridSpec | str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    workers: int | None = None,
    block_size: int | None = None,
    time_limit: float | None = None,
) -> tuple[GridSpec, Template]:
    """Load the spec, apply overrides, and lay out the store; writes nothing."""
    spec = spec_or_path if isinstance(spec_or_path, GridSpec) else load_spec(spec_or_path)
    if workers is not None and workers < 0:
        raise SweeperError(f"--workers: expected a non-negative integer, got {workers!r}.")
    if block_size is not None and block_size < 1:
        raise SweeperError(f"--block-size: expected a positive integer, got {block_size!r}.")
    if time_limit is not None and not time_limit > 0:
        raise SweeperError(f"--time-limit: expected a positive number of seconds, got {time_limit!r}.")
    spec = spec.with_options(
        store=None if store is None else str(store),
        workers=workers,
        block_size=block_size,
        time_limit=time_limit,
    )
    return spec, make_template(spec)


def open_store(spec: GridSpec, template: Template, overwrite: bool = False) -> Store:
    """Create the store, or reopen it for this grid (growing seeds if the grid added some)."""
    if store_exists(spec.options.store) and not overwrite:
        return Store.open_for(spec.options.store, spec)
    return Store.create(spec.options.store, template, overwrite=overwrite)


def submit(
    spec_or_path: GridSpec | str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    workers: int | None = None,
    address: str | None = None,
    block_size: int | None = None,
    time_limit: float | None = None,
    retry_failed: bool = False,
    overwrite: bool = False,
    progress: bool = True,
):
    """Run a grid (only what its store lacks) and return the store as an xarray Dataset."""
    import xarray as xr

    spec, summary = sweep(
        spec_or_path,
        store=store,
        workers=workers,
        address=address,
        block_size=block_size,
        time_limit=time_limit,
        retry_failed=retry_failed,
        overwrite=overwrite,
        progress=progress,
    )
    return xr.open_zarr(spec.options.store)


def sweep(
    spec_or_path: GridSpec | str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    workers: int | None = None,
    address: str | None = None,
    block_size: int | None = None,
    time_limit: float | None = None,
    retry_failed: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[GridSpec, Summary]:
    """Run a grid (only what its store lacks): what `sweeper submit` does; returns (spec, summary)."""
    spec, template = prepare(
        spec_or_path, store=store, workers=workers, block_size=block_size, time_limit=time_limit
    )
    Store.preflight(spec.options.store, spec, template, overwrite=overwrite)  # before Ray starts
    if not overwrite:
        done = _nothing_to_do(spec, retry_failed)
        if done is not None:  # a finished store: answered without starting Ray
            return spec, done
    executor, shutdown = make_executor(spec, address)  # before the store: a bad address writes nothing
    try:
        target = open_store(spec, template, overwrite=overwrite)
    except BaseException:
        executor.close()
        if shutdown is not None:
            shutdown()
        raise
    try:
        todo = scheduler.plan(target, retry_failed)
    except BaseException:
        executor.close()
        if shutdown is not None:
            shutdown()
        raise
    bar = _progress_bar(spec, todo.n_todo) if progress else None
    try:
        summary = scheduler.sweep(
            spec,
            target,
            executor,
            retry_failed=retry_failed,
            on_result=None if bar is None else bar.update_block,
            todo=todo,
        )
    finally:
        executor.close()
        if bar is not None:
            bar.close()
        if shutdown is not None:
            shutdown()
    return spec, summary


def _nothing_to_do(spec: GridSpec, retry_failed: bool) -> Summary | None:
    """The summary of a submission with nothing to compute, read-only; None if there is work."""
    if not store_exists(spec.options.store):
        return None
    start = time.perf_counter()
    store = Store.open(spec.options.store, mode="r")
    if store.layout.shape != spec.shape:  # the grid adds seeds
        return None
    todo = scheduler.plan(store, retry_failed)
    if todo.n_todo:
        return None
    return Summary(skipped=todo.skipped, seconds=time.perf_counter() - start)


def make_executor(spec: GridSpec, address: str | None) -> tuple[Executor, Any]:
    """In-process for ``workers = 0``, else warm Ray actors; returns (executor, shutdown)."""
    kernel_class = spec.kernel_class()
    if spec.options.workers == 0:
        if address is not None:
            raise SweeperError("--workers 0 runs in this process; it cannot be combined with --address.")
        return InProcessExecutor(kernel_class, spec.fixed, spec.options.outputs), None
    import ray

    workers, started = connect_ray(address, spec.options.workers)
    executor = RayExecutor(
        kernel_class,
        spec.fixed,
        spec.options.outputs,
        workers=workers,
        max_attempts=spec.options.max_attempts,
        time_limit=spec.options.time_limit,
        grow=address is not None and spec.options.workers is None,  # follow an autoscaling cluster
    )
    return executor, (ray.shutdown if started else None)


class _progress_bar:
    """tqdm bar over points: done / failed, rate and ETA."""

    def __init__(self, spec: GridSpec, todo: int):
        from tqdm.auto import tqdm

        self.failed = 0
        self.bar = tqdm(total=todo, unit="pt", desc=spec.name, dynamic_ncols=True, smoothing=0.05)

    def update_block(self, result) -> None:
        self.failed += int((result.status == FAILED).sum())
        self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update(len(result.status))

    def close(self) -> None:
        self.bar.close()


# -- descriptions for the CLI ---------------------------------------------------------------


def describe_plan(spec: GridSpec, template: Template) -> str:
    """What `submit --dry-run` prints: dims, points, blocks, outputs, store size."""
    layout = spec.layout
    lines = [
        f"grid      {spec.name} ({spec.source})",
        f"kernel    {spec.kernel} v{spec.kernel_class().version}",
        "dims      " + ", ".join(f"{d}: {n}" for d, n in zip(spec.dims, spec.shape)),
        f"points    {spec.n_points} (a grid may hold up to {MAX_POINTS:.0e})",
        f"blocks    {layout.n_blocks} of up to {math.prod(layout.chunks)} points (chunk {layout.chunks})",
        "outputs   "
        + ", ".join(f"{k}({', '.join(spec.dims + o.dims)})" for k, o in template.outputs.items()),
        f"store     {spec.options.store} (at most {format_bytes(template.nbytes())} uncompressed)",
    ]
    if store_exists(spec.options.store):
        try:
            counts = Store.open(spec.options.store, mode="r").counts()
            lines.append("existing  " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        except SweeperError as exc:
            lines.append(f"existing  {exc}")
    return "\n".join(lines)


def describe_status(path: str | os.PathLike, max_failures: int = 10) -> str:
    """Counts by status, failures with their messages, rate and ETA."""
    store = Store.open(path, mode="r")
    status = store.status()
    counts = store.counts()
    total = status.size
    lines = [
        f"store     {path}",
        f"grid      {store.attrs.get('grid_name')} (kernel {store.attrs.get('kernel')})",
        f"points    {total}: ok {counts['ok']}, failed {counts['failed']}, pending {counts['pending']}",
    ]
    finished = store.group["finished_at"][...]
    done_times = np.sort(finished[np.isfinite(finished)])
    if done_times.size:
        now = time.time()
        window = done_times[done_times > now - 600]
        if counts["pending"] and window.size >= 2:
            rate = window.size / max(now - window[0], 1e-9)
            lines.append(
                f"rate      {rate:.3g} points/s over the last {now - window[0]:.0f} s; "
                f"ETA {counts['pending'] / rate:.0f} s"
            )
        wall = store.group["wall_time"][...]
        lines.append(f"compute   {np.nansum(wall):.3g} s in points, median {np.nanmedian(wall):.3g} s/point")
    if counts["failed"]:
        messages = store.group["message"][...]
        dims = store.dims
        coords = {d: store.group[d][...] for d in dims}
        failed = np.argwhere(status == FAILED)
        lines.append(f"failures  (first {min(max_failures, len(failed))} of {len(failed)})")
        for index in failed[:max_failures]:
            at = ", ".join(f"{d}={coords[d][i]}" for d, i in zip(dims, index))
            lines.append(f"  [{at}] {messages[tuple(index)]}")
    if counts["ok"] == total:
        lines.append("complete")
    return "\n".join(lines)


def describe_kernels() -> str:
    """Registered kernels: each parameter's meaning, type and default; every output with its dims."""
    from kernels.describe import describe
    from kernels.registry import available, get_kernel

    blocks = []
    for name in available():
        try:
            blocks.append(describe(get_kernel(name)))
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the others
            blocks.append(f"{name}: cannot be imported ({type(exc).__name__}: {exc})")
    return "\n\n".join(blocks) if blocks else "no kernels registered"
