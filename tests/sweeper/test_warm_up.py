"""Honest costs without Ray: the warm-up is kept out of `wall_time`, a small grid runs in
this process after a pilot, and `--dry-run --estimate` prints a wall time."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from kernels import registry
from sweeper import api, execution
from sweeper.blocks import BlockTask
from sweeper.cli import main
from sweeper.executors import InProcessExecutor
from sweeper.grid_file import parse_spec
from sweeper.lease import LEASE
from sweeper.runner import BlockRunner
from tests.sweeper.relaxation import Relaxation, RelaxationParams

FIRST_CALL = 0.6  # seconds the first call of a process sleeps: "compilation"


class SlowStart(Relaxation):
    """Relaxation whose first call in a process is slow, as a numba kernel's (tests only)."""

    name = "slow_start"
    started = False

    def _run(self, p, seed):
        if not SlowStart.started:
            SlowStart.started = True
            import time

            time.sleep(FIRST_CALL)
        return super()._run(p, seed)


@dataclass(frozen=True, kw_only=True)
class JitParams(RelaxationParams):
    """Relaxation with a switch the example does not take.

    Parameters
    ----------
    jit
        Call a numba function (compiled at its first call in a process).
    """

    jit: bool = False


class Jitted(Relaxation):
    """Relaxation that calls a numba function when `jit` is set (tests only)."""

    name = "jitted"
    Params = JitParams
    function = None  # a fresh numba dispatcher per test: compiled at its first call

    def _run(self, p, seed):
        out = super()._run(p, seed)
        if p.jit:
            out["final"] = float(type(self).function(np.asarray(out["x"])))
        return out


GRID = """
kernel = "{kernel}"
name = "warm"
seeds = 3
[params]
n_times = 3
[sweep]
rate = [0.5, 1.0]
[run]
block_size = 2
store = "{store}"
"""


@pytest.fixture
def kernels(monkeypatch):
    SlowStart.started = False
    monkeypatch.setitem(registry._registered, SlowStart.name, SlowStart)
    monkeypatch.setitem(registry._registered, Jitted.name, Jitted)


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if the submission tries to start Ray."""

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(execution, "connect_ray", refuse)


def test_the_first_calls_cost_is_the_warm_up_not_a_points_wall_time(kernels, tmp_path):
    spec = parse_spec(GRID.format(kernel="slow_start", store=tmp_path / "w.zarr")).with_options(workers=0)
    _, summary = api.sweep(spec, progress=False)
    walls = xr.open_zarr(spec.options.store).wall_time.values
    # A point costs microseconds; the first call's sleep would make one point >= FIRST_CALL.
    assert walls.max() < FIRST_CALL / 2, walls
    assert len(summary.warm_up) == 1 and summary.warm_up[0] >= FIRST_CALL
    line = api.describe_summary(spec, summary)
    assert re.search(r"; warm-up 0\.\d s per worker \(compilation, not in wall_time\)$", line), line
    assert xr.open_zarr(spec.options.store).attrs["warm_up_seconds"] >= FIRST_CALL
    status = api.describe_status(spec.options.store)
    assert "warm-up   0." in status and "s per worker (compilation, on the kernel's example" in status


def test_without_the_warm_up_the_first_point_would_carry_the_compilation(kernels):
    """The control: what the test above guards against does happen without a warm-up."""
    runner = BlockRunner(SlowStart, {"n_times": 3}, ["x"])
    task = BlockTask((0,), np.zeros((2, 1), int), [{}, {}], [(0, 0), (0, 1)])
    walls = runner.run(task).wall_time
    assert walls[0] >= FIRST_CALL and walls[1] < FIRST_CALL / 2


def test_numba_compiling_inside_a_point_is_kept_out_of_its_wall_time(kernels, monkeypatch):
    numba = pytest.importorskip("numba")

    @numba.njit
    def total(x):
        s = 0.0
        for v in x:
            s += v
        return s

    monkeypatch.setattr(Jitted, "function", total)
    runner = BlockRunner(Jitted, {"n_times": 3}, ["x", "final"])
    runner.warm_up()  # the example does not set `jit`: `total` is not compiled yet
    task = BlockTask((0,), np.zeros((2, 1), int), [{"jit": True}] * 2, [(0, 0), (0, 1)])
    result = runner.run(task)
    assert result.status.tolist() == [1, 1]
    # Compiling even this function takes tens of ms, the point itself a fraction of a ms: with
    # the compilation in it, the first point's wall_time would exceed the compile time.
    assert result.compile_time > 0.02
    assert result.wall_time[0] < result.compile_time / 2, (result.wall_time, result.compile_time)


def test_a_small_grid_runs_in_this_process_after_a_pilot(kernels, no_ray, tmp_path):
    spec = parse_spec(GRID.format(kernel="relaxation", store=tmp_path / "small.zarr"))
    assert execution.in_process_first(spec, None, None)
    _, summary = api.sweep(spec, progress=False)
    assert (summary.computed, summary.ok, summary.skipped) == (6, 6, 0)
    assert summary.note.startswith("in this process: about ") and "less than a private Ray's start-up" in (
        summary.note
    )
    assert "(in this process: about " in api.describe_summary(spec, summary)


def test_a_grid_the_pilot_finds_large_goes_to_ray(kernels, tmp_path, monkeypatch):
    """Above the threshold the rest runs on the Ray executor (here a stand-in), the pilot's points kept."""
    spec = parse_spec(GRID.format(kernel="relaxation", store=tmp_path / "large.zarr"))
    monkeypatch.setattr(execution, "IN_PROCESS_BELOW", 0.0)
    started = []

    def start_ray(run):
        started.append(InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs))
        run.executors.append(started[-1])
        return started[-1]

    monkeypatch.setattr(execution.Execution, "start_ray", start_ray)
    seen = []
    monkeypatch.setattr(execution.Execution, "sweep", _recording(execution.Execution.sweep, seen))
    _, summary = api.sweep(spec, progress=False)
    assert len(started) == 1 and summary.note == ""
    assert (summary.computed, summary.ok, summary.skipped) == (6, 6, 0)
    assert seen == [2, 4]  # the pilot (first and last point), then the rest
    assert (xr.open_zarr(spec.options.store).status == 1).all()


def _recording(sweep, seen):
    def wrapper(self, target, todo, executor=None):
        seen.append(todo.n_todo)
        return sweep(self, target, todo, executor)

    return wrapper


@pytest.mark.parametrize(
    "change",
    [
        {"workers": 2},
        {"time_limit": 10.0},
        {"address": "auto"},
        {"took_over": "a driver died"},
    ],
)
def test_in_process_only_when_nothing_asks_otherwise(change, tmp_path):
    spec = parse_spec(GRID.format(kernel="relaxation", store=tmp_path / "x.zarr"))
    options = {k: v for k, v in change.items() if k in ("workers", "time_limit")}
    spec = spec.with_options(**options) if options else spec
    assert not execution.in_process_first(spec, change.get("address"), change.get("took_over"))


ESTIMATE_GRID = """
kernel = "relaxation"
name = "estimate"
seeds = 2
[params]
n_times = 3
[sweep]
delay = [0.0, 0.2]
[run]
store = "{store}"
"""


def test_estimate_runs_a_pilot_and_writes_nothing(tmp_path, grid_file):
    store = tmp_path / "estimate.zarr"
    path = grid_file(ESTIMATE_GRID.format(store=store))
    result = CliRunner().invoke(main, ["submit", path, "--dry-run", "--estimate"])
    assert result.exit_code == 0, result.output
    # Pilot: points 0, 1 and 3 of (delay, seed) = (0, 0), (0, 1), (0.2, 1): the `delay` axis
    # explains the spread, so the 4 points cost 2 x 0 + 2 x 0.2 s (a flat median would say 0).
    assert re.search(
        r"^estimate  0\.4\d? s of compute for 4 points, from 3 pilot points run here \(\S+-0\.2\d* s each\)$",
        result.output,
        re.M,
    ), result.output
    assert re.search(r"^          about 0\.4\d? s in this process \(warm-up \d\.\d s\)$", result.output, re.M)
    assert not store.exists()
    workers = CliRunner().invoke(main, ["submit", path, "--dry-run", "--estimate", "--workers", "4"])
    assert re.search(
        r"about 7\.\d s on 4 workers \(warm-up \d\.\d s per worker, and about 7 s to start a private Ray\)",
        workers.output,
    ), workers.output


def test_estimate_reads_the_finished_points_of_the_store(tmp_path, grid_file):
    store = tmp_path / "estimate.zarr"
    path = grid_file(ESTIMATE_GRID.format(store=store))
    assert CliRunner().invoke(main, ["submit", path, "--workers", "0", "--quiet"]).exit_code == 0
    result = CliRunner().invoke(main, ["submit", path, "--dry-run", "--estimate"])
    assert "estimate  0 s of compute for 0 points, from the 4 finished points of the store" in result.output
    refused = CliRunner().invoke(main, ["submit", path, "--estimate"])
    assert refused.exit_code == 1 and "--estimate goes with --dry-run" in refused.output


STATUS_GRID = """
kernel = "relaxation"
name = "status"
seeds = 2
[params]
n_times = 3
[sweep]
delay = [0.0, 0.05, 0.1]
[run]
block_size = 2
store = "{store}"
"""


def write_lease(store, pid: int) -> None:
    now = time.time()
    holder = {"host": socket.gethostname(), "pid": pid, "started": None, "since": now, "heartbeat": now}
    (store / LEASE).write_text(json.dumps({**holder, "grid": "status", "token": "0123456789abcdef"}))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_status_gives_a_weighted_eta_only_while_a_driver_runs(tmp_path, monkeypatch):
    store = tmp_path / "status.zarr"
    spec, template = api.prepare(parse_spec(STATUS_GRID.format(store=store)), workers=0)
    target = api.open_store(spec, template)
    plan = api.scheduler.plan(target)
    cheap = np.argwhere(np.ones(spec.shape, dtype=bool))[:4]  # delay 0 and 0.05, both seeds
    runner = InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs)
    api.scheduler.sweep(spec, target, runner, todo=plan.only(cheap))
    write_lease(store, os.getpid())  # this process: a live driver on this host
    running = api.describe_status(store)
    assert "driver    running (host " in running
    assert re.search(
        r"^rate      \S+ points/s over the last \d+ s; ETA \S+ s \(pending points weighted", running, re.M
    )
    # The 2 points of delay 0.1 left are charged the nearest seen value's median, 0.05 s (the
    # overall median, ~0.025 s, would say 0.05 s in all); at 1 compute s per s, the ETA is 0.1 s.
    monkeypatch.setattr(api.costs, "throughput", lambda *args, **kwargs: 1.0)
    assert re.search(
        r"; ETA 0\.1\d? s \(pending points weighted", api.describe_status(store)
    )  # sleeps overrun
    write_lease(store, dead_pid())
    gone = api.describe_status(store)
    assert "driver    not running (its last driver is gone: pid " in gone
    assert "rate" not in gone and "ETA" not in gone
