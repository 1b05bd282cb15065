"""One driver per store, and an `--overwrite` that only ever removes a sweeper store.

Real drivers in subprocesses (`sweeper submit ... --workers 0`: in-process, no Ray,
which is all ownership needs) race for one store, are SIGKILLed, lose their lease,
or are asked to overwrite what is not theirs. Each test holds the outcome to the
guarantees of :mod:`tests.integration.faults`: the final store equals an
undisturbed run bit for bit, no point is lost, and no finished point is computed
again. Each prints one ``faults:`` line (run with ``-s`` to see them).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from sweeper import api
from sweeper.blocks import OK
from sweeper.cli import main
from sweeper.grid_file import load_spec
from sweeper.lease import LEASE, STALE, read_holder
from tests.integration.faults import (
    GRID,
    N_POINTS,
    assert_same_results,
    computations,
    fault_spec,
    undisturbed,
)

ROOT = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()
BLOCK = 4  # points per block in GRID
# The same shape, other numbers: a second grid that must never land in the first one's store.
OTHER = GRID.replace('name = "faults"', 'name = "other"').replace("x0 = [0.5, 1.0]", "x0 = [0.25, 2.0]")
LAUNCH = (
    "from tests.sweeper import relaxation; from kernels.registry import register; "
    "register(relaxation.Relaxation); from sweeper.cli import main; main()"
)


def report(fault: str, injected: int, lost: int, recomputed: int, wrong: int = 0) -> None:
    print(
        f"\nfaults: {fault}: injected {injected}, points lost {lost}, points recomputed {recomputed}, "
        f"silently wrong {wrong}"
    )


def grid_file(tmp_path: Path, name: str, store: Path | str, text: str = GRID, delay: float = 0.1) -> Path:
    """A grid file writing to ``store`` and tracing its computations to ``NAME-trace``."""
    trace = tmp_path / f"{name}-trace"
    trace.mkdir(exist_ok=True)
    path = tmp_path / f"{name}.toml"
    path.write_text(text.format(delay=delay, trace=trace, store=store))
    return path


def driver(*args: str, cwd: Path = ROOT) -> subprocess.Popen:
    """`sweeper ARGS` in its own process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def submit(grid: Path, *args: str) -> subprocess.Popen:
    return driver("submit", str(grid), "--workers", "0", "--quiet", *args)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def status_of(store: Path) -> np.ndarray:
    """The status array, read as a notebook would while a driver writes."""
    return zarr.open_group(str(store), mode="r")["status"][...]


def ok_points(store: Path) -> int:
    return int((status_of(store) == OK).sum()) if (store / "zarr.json").exists() else 0


def keys_of(store: Path, mask: np.ndarray) -> set[tuple[str, str, str]]:
    """The trace keys ("rate x0 seed" as the kernel logs them) of the points in ``mask``."""
    ds = xr.open_zarr(store)
    return {
        (repr(float(ds.rate[i])), repr(float(ds.x0[j])), str(int(ds.seed[k])))
        for i, j, k in np.argwhere(mask)
    }


def reference(tmp_path: Path, text: str, name: str) -> xr.Dataset:
    spec = fault_spec(tmp_path, name, delay=0.0, text=text).with_options(workers=0)
    api.sweep(spec, progress=False)
    return xr.open_zarr(spec.options.store).load()


def refusal(store: Path, holder: subprocess.Popen, grid: str) -> str:
    return (
        f"error: {store} is being written by another driver (host {HOST}, pid {holder.pid}, since "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(read_holder(store).since))}, grid {grid!r}); "
        f"wait for it to finish, or if that process is gone, submit again: the store of a dead "
        f"driver is taken over automatically.\n"
    )


def assert_each_point_computed_once(grid: Path) -> None:
    counts = computations(load_spec(grid))
    assert len(counts) == N_POINTS and max(counts.values()) == 1, counts


# -- two drivers, one store ------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_driver_with_another_grid_is_refused_and_the_first_completes(tmp_path):
    reference_ = undisturbed(tmp_path)
    store = tmp_path / "shared.zarr"
    first, second = grid_file(tmp_path, "first", store), grid_file(tmp_path, "second", store, OTHER)
    a = submit(first)
    try:
        wait_for(lambda: (store / LEASE).exists())
        expected = refusal(store, a, "faults")
        rc, out, err = finish(submit(second))
        assert a.poll() is None, "the first driver must still be running"
        assert (rc, out, err) == (1, "", expected)
    finally:
        rc, out, err = finish(a)
    assert rc == 0 and f"computed {N_POINTS} points (ok {N_POINTS}, failed 0), 0 already done" in out, err
    assert_same_results(store, reference_)
    assert computations(load_spec(second)) == {}
    assert_each_point_computed_once(first)
    assert xr.open_zarr(store).attrs["grid_name"] == "faults"
    report("another grid's driver mid-run", 1, 0, 0)


@pytest.mark.slow
def test_two_grids_submitted_at_the_same_moment_one_wins_whole(tmp_path):
    references = {"faults": undisturbed(tmp_path), "other": reference(tmp_path, OTHER, "reference-other")}
    store = tmp_path / "shared.zarr"
    grids = {
        "faults": grid_file(tmp_path, "first", store),
        "other": grid_file(tmp_path, "second", store, OTHER),
    }
    procs = {name: submit(grid) for name, grid in grids.items()}  # on a store that does not exist yet
    results = {name: finish(proc) for name, proc in procs.items()}
    winners = [name for name, (rc, _, _) in results.items() if rc == 0]
    assert len(winners) == 1, results
    (winner,) = winners
    (loser,) = set(grids) - {winner}
    rc, out, err = results[loser]
    assert (rc, out, err.count("\n")) == (1, "", 1), results
    assert f"is being written by another driver (host {HOST}, pid {procs[winner].pid}" in err
    assert f"grid {winner!r})" in err
    assert_same_results(store, references[winner])
    assert xr.open_zarr(store).attrs["grid_name"] == winner
    assert computations(load_spec(grids[loser])) == {}
    assert_each_point_computed_once(grids[winner])
    report(f"two grids at once ({winner} won)", 1, 0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("when", ["at once", "mid-run"])
def test_the_same_grid_twice_computes_no_point_twice(tmp_path, when):
    reference_ = undisturbed(tmp_path)
    store = tmp_path / "twice.zarr"
    grid = grid_file(tmp_path, "twice", store, delay=0.05)
    first = submit(grid)
    if when == "mid-run":
        wait_for(lambda: ok_points(store) >= BLOCK)
    second = submit(grid)
    results = [finish(first), finish(second)]
    assert sorted(rc for rc, _, _ in results) == [0, 1], results
    (rc, out, err), (_, lost_out, lost_err) = sorted(results)
    assert f"computed {N_POINTS} points (ok {N_POINTS}, failed 0), 0 already done" in out, err
    assert lost_out == "" and lost_err.count("\n") == 1
    assert "is being written by another driver" in lost_err and "grid 'faults'" in lost_err
    assert_same_results(store, reference_)
    assert_each_point_computed_once(grid)
    report(f"same grid twice, {when}", 1, 0, 0)


# -- a driver that dies, or loses its lease ---------------------------------------------------


@pytest.mark.slow
def test_a_sigkilled_driver_is_taken_over_and_nothing_finished_is_recomputed(tmp_path):
    reference_ = undisturbed(tmp_path)
    store = tmp_path / "killed.zarr"
    grid = grid_file(tmp_path, "killed", store)
    dead = submit(grid)
    try:
        wait_for(lambda: ok_points(store) >= N_POINTS // 4)
    finally:
        dead.send_signal(signal.SIGKILL)
        dead.wait()
    finished = status_of(store) == OK
    done = int(finished.sum())
    assert N_POINTS // 4 <= done < N_POINTS and read_holder(store).pid == dead.pid  # the lease stays behind
    status = CliRunner().invoke(main, ["status", str(store)]).output
    assert (
        f"driver    not running (its last driver is gone: pid {dead.pid} is not running; a submit takes over)"
        in (status)
    )
    assert "rate" not in status and "ETA" not in status
    rc, out, err = finish(submit(grid))
    assert rc == 0, err
    assert err.startswith(
        f"note: {store}: took over the store from a driver that is gone (host {HOST}, pid {dead.pid}, since "
    )
    assert err.endswith(f"grid 'faults': pid {dead.pid} is not running); computing what it left.\n")
    left = N_POINTS - done
    assert f"computed {left} points (ok {left}, failed 0), {done} already done" in out
    assert_same_results(store, reference_)
    counts = computations(load_spec(grid))
    assert all(counts[key] == 1 for key in keys_of(store, finished)), "a finished point was recomputed"
    recomputed = sum(counts.values()) - len(counts)
    assert recomputed <= BLOCK  # at most the block the dead driver was computing
    assert not (store / LEASE).exists()
    report("driver SIGKILL holding the lease", 1, 0, recomputed)


@pytest.mark.slow
def test_a_driver_that_lost_its_lease_stops_writing(tmp_path):
    """Another host took the store (this driver's heartbeat looked stale): it stops at once."""
    reference_ = undisturbed(tmp_path)
    store = tmp_path / "lost.zarr"
    grid = grid_file(tmp_path, "lost", store)
    victim = submit(grid)
    wait_for(lambda: ok_points(store) >= 2 * BLOCK)
    now = time.time()
    thief = {"host": "elsewhere", "pid": 1, "started": None, "since": now, "heartbeat": now, "grid": "faults"}
    (store / "thief").write_text(json.dumps({**thief, "token": "0123456789abcdef"}))
    os.replace(store / "thief", store / LEASE)
    at_theft = status_of(store) == OK
    rc, out, err = finish(victim)
    written = status_of(store) == OK
    assert (rc, out) == (1, "") and err.count("\n") == 1
    assert err.startswith(
        f"error: {store}: this driver lost the store (now held by host elsewhere, pid 1, since "
    )
    assert err.endswith("and stopped, writing nothing more; the points it wrote are safe.\n")
    assert int(written.sum()) - int(at_theft.sum()) <= BLOCK  # at most the block being written then
    # The thief is gone too (its heartbeat is old): a resubmit takes over and completes.
    old = now - STALE - 10
    (store / LEASE).write_text(json.dumps({**thief, "heartbeat": old, "token": "0123456789abcdef"}))
    rc, out, err = finish(submit(grid))
    assert rc == 0 and "took over the store from a driver that is gone (host elsewhere, pid 1" in err, err
    assert_same_results(store, reference_)
    counts = computations(load_spec(grid))
    assert all(counts[key] == 1 for key in keys_of(store, written)), "a finished point was recomputed"
    recomputed = sum(counts.values()) - len(counts)
    assert recomputed <= BLOCK
    report("lease lost mid-run", 1, 0, recomputed)


@pytest.mark.slow
def test_ctrl_c_gives_the_lease_back(tmp_path):
    reference_ = undisturbed(tmp_path)
    store = tmp_path / "interrupted.zarr"
    grid = grid_file(tmp_path, "interrupted", store)
    interrupted = submit(grid)
    wait_for(lambda: ok_points(store) >= BLOCK)
    interrupted.send_signal(signal.SIGINT)
    rc, _, err = finish(interrupted)
    assert rc != 0 and not (store / LEASE).exists(), err
    done = ok_points(store)
    rc, out, err = finish(submit(grid))
    assert rc == 0 and err == "" and f"{done} already done" in out, err
    assert_same_results(store, reference_)
    counts = computations(load_spec(grid))
    report("Ctrl-C", 1, 0, sum(counts.values()) - len(counts))


# -- status ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_status_says_running_with_rate_and_eta_only_while_a_driver_runs(tmp_path):
    store = tmp_path / "status.zarr"
    grid = grid_file(tmp_path, "status", store)
    running = submit(grid)
    try:
        wait_for(lambda: ok_points(store) >= 2 * BLOCK)
        result = CliRunner().invoke(main, ["status", str(store)])
        assert running.poll() is None
    finally:
        rc, _, err = finish(running)
    assert rc == 0, err
    assert result.exit_code == 0
    assert f"driver    running (host {HOST}, pid {running.pid}, since " in result.output
    assert "grid 'faults'; heartbeat " in result.output
    assert "rate      " in result.output and "ETA" in result.output
    after = CliRunner().invoke(main, ["status", str(store)]).output
    assert "driver    not running\n" in after and "rate" not in after and "ETA" not in after
    assert after.endswith("complete\n")


# -- what --overwrite may remove ---------------------------------------------------------------


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


@pytest.mark.parametrize(
    "layout, cwd, store, message",
    [
        ({"precious/notes.txt": "years of work"}, ".", "precious", "precious: not a sweeper store"),
        ({"a/b/c/keep.txt": "x", "a/b/other.txt": "y"}, "a/b/c", "..", "..: refusing to remove it"),
        ({"a/b/c/keep.txt": "x"}, "a/b/c", ".", ".: refusing to remove it"),
        ({"a/b/c/keep.txt": "x"}, "a/b/c", "../..", "../..: refusing to remove it"),
        (
            {"notes.txt": "x"},
            ".",
            "grid.toml",
            "grid.toml: refusing to remove it with `--overwrite`: it is the grid file",
        ),
    ],
    ids=["a folder with a file", "parent of the cwd", "the cwd", "grandparent of the cwd", "the grid file"],
)
def test_overwrite_refuses_what_is_not_a_sweeper_store(tmp_path, monkeypatch, layout, cwd, store, message):
    for name, text in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    work = tmp_path / cwd
    grid = grid_file(work, "grid", Path("unused.zarr"), delay=0.0)
    before = snapshot(tmp_path)
    monkeypatch.chdir(work)
    result = CliRunner().invoke(
        main, ["submit", "grid.toml", "--store", store, "--overwrite", "--workers", "0"]
    )
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"error: {message}"), result.output
    assert snapshot(tmp_path) == before
    assert computations(load_spec(grid)) == {}
    report(f"--overwrite on {store!r}", 1, 0, 0)


def test_overwrite_refuses_a_store_holding_a_users_file_and_replaces_a_clean_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "mine.zarr"
    grid = grid_file(tmp_path, "mine", store, delay=0.0)
    args = ["submit", str(grid), "--workers", "0", "--quiet"]
    assert CliRunner().invoke(main, args).exit_code == 0
    (store / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, [*args, "--overwrite"])
    assert result.exit_code == 1
    assert result.output == (
        f"error: {store}: holds 'notes.txt', which sweeper did not write; `--overwrite` would delete it. "
        f"Move it out of the store first.\n"
    )
    assert snapshot(tmp_path) == before
    (store / "notes.txt").unlink()
    result = CliRunner().invoke(main, [*args, "--overwrite"])
    assert result.exit_code == 0 and f"computed {N_POINTS} points" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine-trace", "mine.toml", "mine.zarr"]
    assert not (store / LEASE).exists()
    assert not any(t.name == "sweeper-lease" for t in threading.enumerate())  # one heartbeat, stopped


@pytest.mark.slow
def test_overwrite_while_another_driver_runs_is_refused(tmp_path):
    reference_ = undisturbed(tmp_path)
    store = tmp_path / "busy.zarr"
    grid = grid_file(tmp_path, "busy", store)
    running = submit(grid)
    try:
        wait_for(lambda: ok_points(store) >= BLOCK)
        expected = refusal(store, running, "faults")
        rc, out, err = finish(submit(grid, "--overwrite"))
        assert running.poll() is None
        assert (rc, out, err) == (1, "", expected)
    finally:
        rc, out, err = finish(running)
    assert rc == 0 and f"computed {N_POINTS} points (ok {N_POINTS}, failed 0), 0 already done" in out, err
    assert_same_results(store, reference_)
    assert_each_point_computed_once(grid)
    report("--overwrite while a driver runs", 1, 0, 0)


# -- stores that vanish, and leftovers --------------------------------------------------------


def test_the_cli_refuses_a_memory_store_and_the_library_allows_it(tmp_path):
    grid = grid_file(tmp_path, "volatile", "memory://sweeper-test/v.zarr", delay=0.0)
    for args in ([], ["--store", "memory://sweeper-test/w.zarr"]):
        result = CliRunner().invoke(main, ["submit", str(grid), "--workers", "0", *args])
        assert result.exit_code == 1 and result.output.count("\n") == 1
        assert "store vanishes when this command ends; write to a path or a persistent URL" in result.output
        assert result.output.startswith("error: memory://sweeper-test/")
    spec, summary = api.sweep(grid, workers=0, progress=False)
    assert summary.ok == N_POINTS
    assert read_holder(spec.options.store) is None  # released
    import fsspec

    fsspec.filesystem("memory").rm("/sweeper-test", recursive=True)


def test_a_dead_drivers_half_made_store_is_cleaned_up(tmp_path):
    store = tmp_path / "half.zarr"
    grid = grid_file(tmp_path, "half", store, delay=0.0)
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    staging = tmp_path / f".half.zarr.creating-{finished.pid}"
    staging.mkdir()
    lease = {"host": HOST, "pid": finished.pid, "started": None, "since": 0, "heartbeat": 0, "grid": "half"}
    (staging / LEASE).write_text(json.dumps({**lease, "token": "0" * 16}))
    result = CliRunner().invoke(main, ["submit", str(grid), "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half-trace", "half.toml", "half.zarr"]
