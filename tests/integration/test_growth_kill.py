"""A driver SIGKILLed while it grows a store, or sweeps the grown one; the next submit ends the job.

Real drivers in subprocesses (`sweeper submit ... --workers 0`): one is killed from
outside in the middle of the sweep that follows a growth; others kill themselves at a
chosen moment of the growth (a hook in this file's launcher wraps `Store.put` or
`os.rename`: no hook in the engine). Each time the next submit finishes or discards
the half-done growth, and the store ends equal bit for bit to the grown grid computed
in one go, with no stored point computed again.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zarr

from sweeper import api
from sweeper.blocks import OK
from sweeper.grid_file import load_spec
from tests.integration.faults import GRID, assert_same_results, computations, fault_spec, undisturbed

ROOT = Path(__file__).resolve().parents[2]
SMALL = GRID.replace("x0 = [0.5, 1.0]", "x0 = [1.0]")  # 24 points
GROWN = GRID.replace("x0 = [0.5, 1.0]", "x0 = [0.5, 1.0, 2.0]")  # 72 points: 48 new, one of them in front
# The launcher: registers the test kernel, and with KILL_AT set, SIGKILLs itself at that moment
# of a growth: "copy:N" after N blocks copied into the new store, "aside" once the old store is
# renamed aside (before the new one is in place), "swapped" once the new store is in place.
LAUNCH = """
import os, signal
from tests.sweeper import relaxation
from kernels.registry import register
register(relaxation.Relaxation)
kill_at = os.environ.get("KILL_AT", "")
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if kill_at.startswith("copy:"):
    from sweeper.store import Store
    put, copied = Store.put, []
    async def counting_put(self, *args):
        await put(self, *args)
        if ".growing-" in str(self.path):
            copied.append(1)
            if len(copied) == int(kill_at[5:]):
                die()
    Store.put = counting_put
elif kill_at:
    rename = os.rename
    def renaming(src, dst):
        rename(src, dst)
        if (kill_at == "aside" and ".grown-" in str(dst)) or (kill_at == "swapped" and ".growing-" in str(src)):
            die()
    os.rename = renaming
from sweeper.cli import main
main()
"""


def submit(grid: Path, kill_at: str = "") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KILL_AT": kill_at}
    command = [sys.executable, "-c", LAUNCH, "submit", str(grid), "--workers", "0", "--quiet"]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def small_store(tmp_path: Path, delay: float) -> tuple[Path, Path]:
    """The small grid, computed in this process; returns (the grown grid's file, the store)."""
    small = fault_spec(tmp_path, "grow", delay=delay, text=SMALL).with_options(workers=0)
    api.sweep(small, progress=False)
    grown = fault_spec(tmp_path, "grow", delay=delay, text=GROWN)
    grid = tmp_path / "grown.toml"
    grid.write_text(grown.text)
    return grid, Path(grown.options.store)


def resubmit(grid: Path):
    """The next submit, in this process (the killed driver's lease is taken over)."""
    return api.sweep(str(grid), workers=0, progress=False)


def assert_no_stored_point_recomputed(grid: Path, allowed: int = 0) -> None:
    counts = computations(load_spec(grid))
    assert len(counts) == 72, len(counts)
    assert sum(counts.values()) - len(counts) <= allowed, counts
    old = {k: n for k, n in counts.items() if k[1] == "1.0"}
    assert len(old) == 24 and set(old.values()) == {1}, old  # stored before the growth: computed once


@pytest.mark.slow
def test_grow_then_kill_the_driver_mid_sweep_then_resume(tmp_path):
    reference = undisturbed(tmp_path, text=GROWN)
    grid, store = small_store(tmp_path, delay=0.05)
    driver = submit(grid)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            if (store / "zarr.json").exists() and ok_points(store) >= 24 + 8:  # grown, and 8 new points done
                break
            time.sleep(0.02)
        assert driver.poll() is None, driver.communicate()
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    done = ok_points(store)
    assert 32 <= done < 72
    _, summary = resubmit(grid)
    assert (summary.computed, summary.skipped) == (72 - done, done)
    assert_same_results(store, reference)
    assert_no_stored_point_recomputed(grid, allowed=4)  # the block in flight when it died


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["copy:2", "aside", "swapped"])
def test_a_driver_killed_while_growing_the_store_is_recovered_by_the_next_submit(tmp_path, kill_at):
    reference = undisturbed(tmp_path, text=GROWN)
    grid, store = small_store(tmp_path, delay=0.0)
    driver = submit(grid, kill_at=kill_at)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == -signal.SIGKILL, (out, err)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".grow.zarr."))
    assert leftovers and all(name.endswith(f"-{driver.pid}") for name in leftovers), leftovers
    assert store.exists() == (kill_at != "aside")  # between the renames: nothing in place
    _, summary = resubmit(grid)
    assert (summary.computed, summary.skipped) == (48, 24)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert_same_results(store, reference)
    assert_no_stored_point_recomputed(grid)


def ok_points(store: Path) -> int:
    try:
        return int((zarr.open_group(str(store), mode="r")["status"][...] == OK).sum())
    except (FileNotFoundError, KeyError):  # mid-swap for an instant
        return 0
