"""The library functions behind the CLI; notebooks call them directly."""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from sweeper import checks, costs, rawread, scheduler
from sweeper.blocks import FAILED, NOT_NEEDED, OK, PENDING
from sweeper.creation import StoreTaken, is_url, store_exists
from sweeper.disk import format_bytes
from sweeper.errors import SweeperError
from sweeper.estimate import describe_estimate
from sweeper.execution import Execution, in_process_first
from sweeper.executors import Executor, InProcessExecutor, RayExecutor  # noqa: F401 - reached as api.*
from sweeper.fingerprint import fingerprint
from sweeper.grid_file import load_spec
from sweeper.lease import Lease, read_holder
from sweeper.parser import MAX_POINTS
from sweeper.progress import ProgressBar, format_seconds
from sweeper.scheduler import Summary
from sweeper.spec import GridSpec
from sweeper.store import Store
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


def open_store(
    spec: GridSpec, template: Template, overwrite: bool = False, lease: Lease | None = None
) -> Store:
    """Create the store, or reopen it for this grid (growing it if the grid adds values, cases or seeds).

    With a ``lease``, a new store holds it from its first moment; an existing store's
    lease must have been taken already.
    """
    where = spec.options.store
    if overwrite or not store_exists(where):
        try:
            return Store.create(where, template, overwrite=overwrite, lease=lease)
        except StoreTaken:  # another driver created it first: resume it if that one is done
            if lease is not None:
                _note(lease.take())
    return Store.open_for(where, spec, template=template, lease=lease, repair=repair_damage)


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
    verbose: bool = False,
):
    """Run a grid (only what its store lacks) and return the store as :func:`sweeper.open` gives it."""
    from sweeper.dataset import open as open_dataset

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
        verbose=verbose,
    )
    return open_dataset(spec.options.store)


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
    verbose: bool = False,
) -> tuple[GridSpec, Summary]:
    """Run a grid (only what its store lacks): what `sweeper submit` does; returns (spec, summary).

    Ray's own lines go to a log file (``verbose`` shows them); its path is printed only
    if the submission fails. A small grid may run in this process
    (:func:`sweeper.execution.in_process_first`).
    """
    spec, template = prepare(
        spec_or_path, store=store, workers=workers, block_size=block_size, time_limit=time_limit
    )
    lease = Lease(spec.options.store, grid=spec.name)
    lease.refuse_if_held()  # first: a store another driver is writing is refused, whatever else
    Store.preflight(spec.options.store, spec, template, overwrite=overwrite)  # before Ray starts
    if not overwrite:
        done = _nothing_to_do(spec, retry_failed)
        if done is not None:  # a finished, undamaged store: answered without the lease or Ray
            return spec, done
    resumed = store_exists(spec.options.store) and not overwrite
    run = Execution(spec, address, verbose, note=_note, retry_failed=retry_failed)
    start = time.perf_counter()
    try:  # the lease is given back on any way out, Ctrl-C included; a killed driver's is taken over
        took_over = lease.take() if store_exists(spec.options.store) else None
        _note(took_over)  # before Ray starts, too
        auto = in_process_first(spec, address, took_over)
        if not auto:
            run.start_ray()  # before the store: a bad address writes nothing
        target = open_store(spec, template, overwrite=overwrite, lease=lease)
        if resumed:
            repair_damage(target)
        todo = (
            scheduler.refined_plan(spec, target, retry_failed)
            if spec.refine is not None
            else scheduler.plan(target, retry_failed)
        )
        run.bar = ProgressBar(spec, todo, workers=spec.options.workers) if progress else None
        summary = run.small_or_ray(target, todo) if auto else run.sweep(target, todo)
        summary.seconds = time.perf_counter() - start  # the whole submission: Ray's start-up included
        _record_warm_up(target, summary)
    except KeyboardInterrupt:
        run.close(failed=False)
        raise
    except BaseException:
        run.close(failed=True)
        raise
    finally:
        lease.release()
    run.close(failed=False)
    return spec, summary


def _record_warm_up(target: Store, summary: Summary) -> None:
    """The warm-up per worker goes in the store's attrs, where `sweeper status` reads it."""
    if summary.warm_up:
        target.group.attrs.update(
            {
                "warm_up_seconds": round(float(np.median(summary.warm_up)), 3),
                "warm_up_workers": len(summary.warm_up),
            }
        )


def describe_summary(spec: GridSpec, summary: Summary) -> str:
    """The line `sweeper submit` ends with: what was computed, how long, the warm-up apart."""
    line = (
        f"{spec.options.store}: computed {summary.computed} points "
        f"(ok {summary.ok}, failed {summary.failed}), "
        f"{summary.skipped} already done, in {summary.seconds:.1f} s"
    )
    if summary.warm_up:
        line += f"; warm-up {np.median(summary.warm_up):.1f} s per worker (compilation, not in wall_time)"
    if summary.compile_time >= 0.05:
        line += f", {summary.compile_time:.1f} s compiling inside points"
    if spec.refine is not None:
        line += f"; {summary.not_needed} marked not needed by refinement"
        if summary.idle_fraction is not None:
            line += f", workers idle {100 * summary.idle_fraction:.0f} % of the time"
    if summary.note:
        line += f" ({summary.note})"
    return line


def verify(path: str | os.PathLike, repair: bool = True) -> checks.Damage:
    """What `sweeper verify` does: read every recorded chunk, mark the points of damaged blocks pending."""
    store = Store.open(path, mode="r+" if repair else "r")
    if not repair:
        return checks.check(store, full=True)
    lease = Lease(store.path, grid=str(store.attrs.get("grid_name")))
    lease.refuse_if_held()  # a driver writing the store is refused: repairs would race its writes
    try:
        _note(lease.take())
        damage = checks.check(store, full=True)
        checks.repair(store, damage)
    finally:
        lease.release()
    return damage


def repair_damage(store: Store, say=None) -> checks.Damage:
    """The check of every resubmission: damaged blocks are marked pending, one line each on stderr.

    Chunk sizes against the records (every byte when the store is small), and ``status`` decoded.
    """
    damage = checks.check(store, full=None)
    if damage:
        checks.repair(store, damage)
        say = say or (lambda line: print(line, file=sys.stderr))
        for line in damage.lines()[:MAX_LINES]:
            say(f"damaged: {line}")
        if len(damage.blocks) > MAX_LINES:
            say(f"damaged: ... and {len(damage.blocks) - MAX_LINES} more blocks")
        say(f"damaged: {damage.summary()}; marked pending, computing them again now.")
    return damage


MAX_LINES = 20  # damaged blocks named one per line; the rest are counted


def _note(message: str | None) -> None:
    if message:
        print(f"note: {message}", file=sys.stderr, flush=True)


def refuse_volatile(grid: str | os.PathLike, store: str | os.PathLike | None = None) -> None:
    """The CLI's rule: a store must outlive the command (`memory://` does not; the library allows it)."""
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    where = str(store) if store is not None else load_spec(grid).options.store
    if not is_url(where):
        return
    for part in where.split("::"):  # a chained URL: `simplecache::memory://...`
        protocol = fsspec.core.split_protocol(part)[0]
        try:
            volatile = protocol is not None and issubclass(
                fsspec.get_filesystem_class(protocol), MemoryFileSystem
            )
        except (ValueError, ImportError):  # unknown protocol: opening the store says so
            volatile = False
        if volatile:
            raise SweeperError(
                f"{where}: a `{protocol}://` store vanishes when this command ends; write to a "
                f"path or a persistent URL instead (`--store results/NAME.zarr`)."
            )


def _nothing_to_do(spec: GridSpec, retry_failed: bool) -> Summary | None:
    """The summary of a submission with nothing to compute, read-only; None if there is work."""
    if not store_exists(spec.options.store):
        return None
    start = time.perf_counter()
    store = Store.open(spec.options.store, mode="r")
    if (
        store.layout.shape != spec.shape
        or "fingerprint" not in store.attrs
        or fingerprint(store.recorded(spec)) != spec.fingerprint()
    ):
        return None  # the grid grows the store, or is another grid: the full path says which
    not_needed = 0
    if spec.refine is not None:
        todo = scheduler.refined_plan(spec, store, retry_failed)
        status = store.status()
        if (status == PENDING).any():  # decided not needed, but not written so yet
            return None
        not_needed = int((status == NOT_NEEDED).sum())
    else:
        todo = scheduler.plan(store, retry_failed)
    if todo.n_todo or checks.check(store, full=None):  # damage found: the full path repairs it
        return None
    # "already done": computed points; a refined grid's not-needed ones are not among them
    return Summary(skipped=todo.skipped - not_needed, seconds=time.perf_counter() - start)


# -- descriptions for the CLI ---------------------------------------------------------------


def describe_plan(spec: GridSpec, template: Template, estimate: bool = False) -> str:
    """What `submit --dry-run` prints: dims, points, blocks, outputs, store size (and ``estimate``)."""
    layout = spec.layout
    lines = [
        f"grid      {spec.name} ({spec.source})",
        f"kernel    {spec.kernel} v{spec.kernel_class().version}",
        "dims      " + ", ".join(f"{d}: {n}" for d, n in zip(spec.dims, spec.shape)),
        *([f"refine    {spec.refine.describe()}"] if spec.refine is not None else []),
        f"points    {spec.n_points} (a grid may hold up to {MAX_POINTS:.0e})",
        f"blocks    {layout.n_blocks} of up to {math.prod(layout.chunks)} points (chunk {layout.chunks})",
        "outputs   "
        + ", ".join(f"{k}({', '.join(spec.dims + o.dims)})" for k, o in template.outputs.items()),
        f"store     {spec.options.store} (at most {format_bytes(template.nbytes())} uncompressed)",
    ]
    if store_exists(spec.options.store):
        try:
            existing = Store.open(spec.options.store, mode="r")
            counts = existing.counts()
            lines.append("existing  " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            growth = existing.growth_for(spec)  # or the refusal, as `existing  ...`
            if growth is not None:
                lines.append(f"grows     {growth.describe()}")
            damage = checks.check(existing, full=None)  # what the submit would repair first
            if damage:
                lines.append(f"damaged   {damage.summary()}; the submit computes them again")
                lines.extend(f"  {line}" for line in damage.lines()[:MAX_LINES])
        except SweeperError as exc:
            lines.append(f"existing  {exc}")
        lines.append(f"driver    {describe_driver(spec.options.store)}")
    if estimate:
        lines.extend(describe_estimate(spec))
    return "\n".join(lines)


def describe_driver(path: str | os.PathLike) -> str:
    """Whether a driver is writing the store now: "running (host, pid, since)" or "not running"."""
    holder = read_holder(path)
    if holder is None:
        return "not running"
    why = holder.gone()
    if why is not None:
        return f"not running (its last driver is gone: {why}; a submit takes over)"
    return f"running ({holder.describe()}; heartbeat {max(0.0, time.time() - holder.heartbeat):.0f} s ago)"


def describe_status(path: str | os.PathLike, max_failures: int = 10) -> str:
    """Counts by status, failures with their messages, rate and ETA."""
    store = Store.open(path, mode="r")
    damage = checks.check(store, full=None)  # sizes against the records; every byte if few
    status = damage.status
    codes = {"pending": PENDING, "ok": OK, "failed": FAILED, "not_needed": NOT_NEEDED}
    counts = {name: int((status == code).sum()) for name, code in codes.items()}
    total = status.size
    skipped = f", not needed {counts['not_needed']} (refinement)" if counts["not_needed"] else ""
    lines = [
        f"store     {path}",
        f"grid      {store.attrs.get('grid_name')} (kernel {store.attrs.get('kernel')})",
        f"points    {total}: ok {counts['ok']}, failed {counts['failed']}, pending {counts['pending']}"
        + skipped,
    ]
    driver = describe_driver(path)
    lines.append(f"driver    {driver}")
    finished = rawread.read_lenient(store, "finished_at")
    done_times = np.sort(finished[np.isfinite(finished)])
    if done_times.size:
        wall = rawread.read_lenient(store, "wall_time")
        if driver.startswith("running") and counts["pending"]:
            rate = _rate_and_eta(status, wall, finished, time.time())
            if rate and _is_refined(store):  # most pending points will never be computed
                rate = [rate[0].split("; ETA")[0] + "; no ETA: refinement decides as results come"]
            lines.extend(rate)
        lines.append(f"compute   {np.nansum(wall):.3g} s in points, median {np.nanmedian(wall):.3g} s/point")
    warm_up = store.attrs.get("warm_up_seconds")
    if warm_up is not None:
        lines.append(
            f"warm-up   {warm_up:.3g} s per worker (compilation, on the kernel's example; not in wall_time)"
        )
    if counts["failed"]:
        messages = rawread.read_lenient(store, "message")
        dims = store.dims
        coords = {d: store.group[d][...] for d in dims}
        failed = np.argwhere(status == FAILED)
        lines.append(f"failures  (first {min(max_failures, len(failed))} of {len(failed)})")
        for index in failed[:max_failures]:
            at = ", ".join(f"{d}={coords[d][i]}" for d, i in zip(dims, index))
            lines.append(f"  [{at}] {messages[tuple(index)]}")
    if damage:
        lines.append(f"damaged   {damage.summary()}; run `sweeper verify {path}` to mark them pending")
        lines.extend(f"  {line}" for line in damage.lines()[:MAX_LINES])
    elif counts["ok"] + counts["not_needed"] == total:
        lines.append("complete")
    return "\n".join(lines)


def _is_refined(store: Store) -> bool:
    """Whether the grid that wrote ``store`` has a ``[refine]`` table."""
    import tomllib

    try:
        return "refine" in tomllib.loads(str(store.attrs.get("grid_text", "")))
    except tomllib.TOMLDecodeError:
        return False


RATE_WINDOW = 600.0  # seconds: the rate is measured over the points finished this recently


def _rate_and_eta(status: np.ndarray, wall: np.ndarray, finished: np.ndarray, now: float) -> list[str]:
    """The rate of the last minutes, and the ETA with the pending points weighted by their cost."""
    recent = np.isfinite(finished) & (finished > now - RATE_WINDOW)
    times = finished[recent]
    if np.unique(times).size < 2:
        return []
    span = max(now - times.min(), 1e-9)
    done = np.isfinite(wall) & (status != PENDING)
    cost = costs.remaining_cost(np.argwhere(done), wall[done], costs.per_axis(status == PENDING))
    eta = costs.time_left(cost, costs.throughput(times, wall[recent], now))
    return [
        f"rate      {times.size / span:.3g} points/s over the last {span:.0f} s; "
        f"ETA {format_seconds(eta)} (pending points weighted by what their values cost)"
    ]


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
