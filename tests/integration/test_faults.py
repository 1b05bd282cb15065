"""Faults on one machine: a worker SIGKILLed, the driver SIGKILLed, a hanging point, a full disk.

Each test injects its fault into a real sweep and checks the guarantees of
:mod:`tests.integration.faults`: nothing lost, nothing written twice, and the
final dataset equal to an undisturbed run bit for bit. Each prints one
``faults:`` line (run with ``-s`` to see them).
"""

import errno
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import xarray as xr
from click.testing import CliRunner

from sweeper import api, scheduler
from sweeper.blocks import FAILED, OK
from sweeper.cli import main
from sweeper.executors import RayExecutor
from sweeper.store import Store
from tests.integration.faults import (
    GRID,
    N_POINTS,
    WriteCounter,
    assert_same_results,
    computations,
    fault_spec,
    undisturbed,
)

ROOT = Path(__file__).resolve().parents[2]


def report(fault: str, injected: int, lost: int, recomputed: int) -> None:
    print(f"\nfaults: {fault}: injected {injected}, points lost {lost}, points recomputed {recomputed}")


def recomputed(spec) -> int:
    counts = computations(spec)
    return sum(counts.values()) - len(counts)


@pytest.mark.slow
def test_worker_sigkill_mid_sweep_loses_nothing(local_ray, tmp_path):
    reference = undisturbed(tmp_path)
    spec, template = api.prepare(fault_spec(tmp_path, "sigkill").with_options(workers=2))
    store = api.open_store(spec, template)
    executor = RayExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs, workers=2)
    writes, killed = WriteCounter(), []

    def kill_a_worker(result):
        writes(result)
        if writes.blocks in (2, 6):  # two workers, one after the other
            pid = next(p["pid"] for p in executor.placement.values() if p["pid"] not in killed)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    try:
        summary = scheduler.sweep(spec, store, executor, on_result=kill_a_worker)
    finally:
        executor.close()
    assert (summary.ok, summary.failed) == (N_POINTS, 0)
    writes.assert_each_point_written_once()
    assert_same_results(spec.options.store, reference)
    # At most the block running on the killed worker is computed again.
    assert recomputed(spec) <= 2 * spec.options.block_size
    report("worker SIGKILL", 2, 0, recomputed(spec))


@pytest.mark.slow
def test_hanging_point_fails_on_the_time_limit_and_the_sweep_goes_on(local_ray, tmp_path):
    text = GRID.replace("x0 = [0.5, 1.0]\n", "").replace("seeds = 4", "seeds = 2")
    text = text.replace("{{linspace = [0.1, 2, 6]}}", "[0.5, 1.0]")
    text += "time_limit = 0.5\n"
    text += '[[cases]]\nx0 = 0.5\ncrash = "hang"\n[[cases]]\nx0 = 1.0\ncrash = "never"\n'
    spec = fault_spec(tmp_path, "hang", delay=0.0, text=text).with_options(workers=2)
    start = time.monotonic()
    summary = api.sweep(spec, progress=False)[1]
    assert (summary.ok, summary.failed) == (4, 4)
    assert time.monotonic() - start < 60
    ds = xr.open_zarr(spec.options.store)
    assert (ds.status.sel(case=0) == FAILED).all() and (ds.status.sel(case=1) == OK).all()
    message = str(ds.message.values[0, 0, 0])
    assert message == "exceeded the time limit of 0.5 s a point (`run.time_limit`)"
    report("hanging point", 4, 0, recomputed(spec))


LAUNCH = (
    "import ray; from tests.sweeper import relaxation; from kernels.registry import register; "
    "ray.cloudpickle.register_pickle_by_value(relaxation); register(relaxation.Relaxation); "
    "from sweeper.cli import main; main()"
)


def _ok_points(store: Path) -> int:
    """Open the store as a notebook would; it must read as a valid dataset at any moment."""
    ds = xr.open_zarr(store)
    assert set(ds.data_vars) >= {"x", "status", "message"} and ds.x.dims == ("rate", "x0", "seed", "time")
    return int((ds.status == OK).sum())


def _kill_leftovers(marker: str) -> None:
    """Kill what the dead driver's private Ray left behind (found by its temp dir), by PID."""
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(marker in part for part in proc.info["cmdline"] or ()):
            try:
                proc.kill()
            except psutil.Error:
                pass


@pytest.mark.slow
def test_driver_sigkill_then_resubmit_computes_only_the_rest(tmp_path):
    reference = undisturbed(tmp_path)
    spec = fault_spec(tmp_path, "driver", delay=0.1)
    grid = tmp_path / "driver.toml"
    grid.write_text(spec.text)
    store = Path(spec.options.store)
    private = Path(tempfile.mkdtemp(prefix="sw-"))  # short: Ray's socket paths must stay < 108 bytes
    env = {**os.environ, "TMPDIR": str(private), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", LAUNCH, "submit", str(grid), "--workers", "2", "--quiet"]
    driver = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    looks, deadline = 0, time.monotonic() + 120
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            if store.exists():
                looks += 1
                if _ok_points(store) >= N_POINTS // 4:
                    break
            time.sleep(0.02)
        assert driver.poll() is None, driver.communicate()
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        _kill_leftovers(str(private))
    done = _ok_points(store)
    assert N_POINTS // 4 <= done < N_POINTS and looks > 1
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    _kill_leftovers(str(private))
    assert again.returncode == 0, again.stderr
    assert f"computed {N_POINTS - done} points (ok {N_POINTS - done}, failed 0), {done} already done" in (
        again.stdout
    )
    assert_same_results(store, reference)
    # Only the blocks in flight when the driver died were computed twice.
    assert recomputed(spec) <= 2 * 2 * spec.options.block_size
    report("driver SIGKILL", 1, 0, recomputed(spec))


def test_disk_full_mid_sweep_is_one_clear_error_and_resumable(tmp_path, monkeypatch):
    reference = undisturbed(tmp_path)
    spec = fault_spec(tmp_path, "full", delay=0.0)
    grid = tmp_path / "full.toml"
    grid.write_text(spec.text)
    write, calls = Store.write, []

    def full_after_two_blocks(self, result):
        calls.append(result.block_id)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, result)

    monkeypatch.setattr(Store, "write", full_after_two_blocks)
    result = CliRunner().invoke(main, ["submit", str(grid), "--workers", "0", "--quiet"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "writing block (1, 0, 0) failed (No space left on device); the 8 points written" in result.output
    assert _ok_points(spec.options.store) == 8
    monkeypatch.setattr(Store, "write", write)
    resumed = CliRunner().invoke(main, ["submit", str(grid), "--workers", "0", "--quiet"])
    assert resumed.exit_code == 0 and "computed 40 points" in resumed.output
    assert_same_results(spec.options.store, reference)


def test_disk_too_small_is_refused_before_any_compute(tmp_path, monkeypatch):
    spec = fault_spec(tmp_path, "small", delay=0.0)
    grid = tmp_path / "small.toml"
    grid.write_text(spec.text)
    monkeypatch.setattr("sweeper.disk.shutil.disk_usage", lambda path: type("U", (), {"free": 1000})())
    result = CliRunner().invoke(main, ["submit", str(grid), "--workers", "0"])
    assert result.exit_code == 1
    assert "results may need up to" in result.output and "but only 1000 B is free" in result.output
    assert not Path(spec.options.store).exists() and computations(spec) == {}


@pytest.mark.slow
def test_a_kernel_no_worker_can_build_is_a_clear_error_not_a_hang(local_ray, tmp_path):
    from sweeper.blocks import BlockTask
    from sweeper.errors import SweeperError
    from tests.sweeper.relaxation import Unbuildable

    executor = RayExecutor(Unbuildable, {}, ["x"], workers=2)
    task = BlockTask((0,), np.zeros((1, 1), int), [{}], [(0, 0)])
    start = time.monotonic()
    try:
        with pytest.raises(
            SweeperError,
            match=r"^no worker could start the kernel: RuntimeError: this kernel cannot be built here$",
        ):
            list(executor.map([task]))
    finally:
        executor.close()
    assert time.monotonic() - start < 60
