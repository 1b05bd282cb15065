"""Growing a store: values added to axes, cases or seeds compute only the new points.

Each growth ends bit for bit (outputs, status, message) equal to the same grid computed
in one go, with every point computed exactly once over all submits (the kernel's trace).
What a store cannot absorb is refused with one line, and nothing is written. The
states a driver killed mid-growth leaves are built by hand here and ended by the next
submit; tests/integration/test_growth_kill.py kills real drivers.
"""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sweeper import api, scheduler
from sweeper.blocks import FAILED, PENDING
from sweeper.errors import StoreError
from sweeper.grid_file import parse_spec
from sweeper.lease import LEASE, LeaseHeld

GRID = """
kernel = "relaxation"
name = "grow"
seeds = {seeds}
[params]
t_max = 4.0
n_times = 5
{noise}
trace_dir = "{trace}"
[sweep]
rate = {rate}
x0 = {x0}
{cases}
[run]
block_size = 4
workers = 0
"""
COMPARED = ("x", "modes", "final", "status", "message")


def grid(tmp_path, store="s.zarr", rate="[-1, 0.5, 2]", x0="[0.0, 1.0]", seeds="2", cases=None, noise=0.1):
    """The test grid: rate -1 fails (raises), so failed points and their messages are carried too."""
    trace = tmp_path / f"{store}-trace"
    trace.mkdir(exist_ok=True)
    case_text = "".join(f"[[cases]]\nnoise = {c}\n" for c in cases or ())
    text = GRID.format(
        seeds=seeds,
        rate=rate,
        x0=x0,
        trace=trace,
        noise="" if cases else f"noise = {noise}",
        cases=case_text,
    )
    return parse_spec(text).with_options(store=str(tmp_path / store))


def run(spec, **kw):
    return api.sweep(spec, progress=False, **kw)[1]


def computations(spec) -> Counter:
    log = Path(spec.fixed["trace_dir"]) / "trace.log"
    return Counter(tuple(line.split()[1:]) for line in log.read_text().splitlines())


def assert_as_in_one_go(spec, tmp_path):
    """The store of ``spec`` equals ``spec`` run from scratch, and each point was computed once."""
    counts = computations(spec)  # by (rate, x0, seed): each once per case
    assert sum(counts.values()) == spec.n_points and set(counts.values()) == {len(spec.cases) or 1}, counts
    reference = spec.with_options(store=str(tmp_path / "one-go.zarr"))
    run(reference)
    ours, theirs = (xr.open_zarr(s.options.store, chunks=None).load() for s in (spec, reference))
    assert dict(ours.sizes) == dict(theirs.sizes)
    for name in (*COMPARED, *spec.dims):
        np.testing.assert_array_equal(ours[name].values, theirs[name].values, err_msg=name)
    for name in spec.case_coords():
        np.testing.assert_array_equal(ours[name].values, theirs[name].values, err_msg=name)
    assert ours.x.encoding["chunks"] == theirs.x.encoding["chunks"]  # the grown store's own layout
    assert run(spec).computed == 0  # finished: nothing left, the fast path answers
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


@pytest.mark.parametrize(
    "rate",
    ["[-1, 0.5, 1, 2]", "[-1, 0.5, 2, 3]", "[0.25, -1, 0.5, 2, 4]"],
    ids=["middle", "end", "both-ends"],
)
def test_adding_values_to_one_axis_computes_only_the_new_points(tmp_path, rate):
    small = grid(tmp_path)
    assert run(small).computed == 12
    created = xr.open_zarr(small.options.store).attrs["created"]
    grown = grid(tmp_path, rate=rate)
    summary = run(grown)
    assert (summary.computed, summary.skipped) == (grown.n_points - 12, 12)
    ds = xr.open_zarr(grown.options.store)
    assert ds.attrs["grid_text"] == grown.text and ds.attrs["created"] == created
    assert "ValueError: negative rate -1.0" in str(ds.message.sel(rate=-1.0, x0=1.0, seed=1).values)
    assert (ds.status.sel(rate=-1.0) == FAILED).all()
    assert_as_in_one_go(grown, tmp_path)


def test_a_long_axis_grows_too(tmp_path):
    """Past 64 values the fingerprint keeps an axis as a digest: the store's coordinates say what it holds."""
    values = np.linspace(0.1, 2.0, 70).tolist()
    run(grid(tmp_path, rate="{linspace = [0.1, 2.0, 70]}", x0="[1.0]", seeds="1"))
    grown = grid(tmp_path, rate=repr(values[:35] + [1.0123] + values[35:]), x0="[1.0]", seeds="1")
    summary = run(grown)
    assert (summary.computed, summary.skipped) == (1, 70)
    with pytest.raises(StoreError, match=r"sweep\.rate: 1\.0123, 2\.0 are in the store but not in the grid"):
        run(grid(tmp_path, rate=repr(values[:-1] + [3.0, 4.0, 5.0]), x0="[1.0]", seeds="1"))


def test_adding_values_to_two_axes(tmp_path):
    run(grid(tmp_path, x0="[0.0, 1.0, 2.0]"))
    grown = grid(tmp_path, rate="[-1, 0.5, 1, 2]", x0="[-1.0, 0.0, 0.5, 1.0, 2.0, 3.0]")
    summary = run(grown)
    assert (summary.computed, summary.skipped) == (48 - 18, 18)
    assert_as_in_one_go(grown, tmp_path)


def test_adding_cases_in_the_middle_and_at_the_end(tmp_path):
    run(grid(tmp_path, cases=[0.0, 0.2]))
    grown = grid(tmp_path, cases=[0.0, 0.1, 0.2, 0.3])
    summary = run(grown)
    assert (summary.computed, summary.skipped) == (24, 24)
    ds = xr.open_zarr(grown.options.store)
    assert ds.noise.values.tolist() == [0.0, 0.1, 0.2, 0.3]
    assert_as_in_one_go(grown, tmp_path)


def test_growing_an_axis_and_the_seeds_at_once(tmp_path):
    run(grid(tmp_path, seeds="[0, 1]"))
    grown = grid(tmp_path, rate="[-1, 0.5, 1, 2]", seeds="[0, 7, 1, 2]")  # a seed inserted, one appended
    summary = run(grown)
    assert (summary.computed, summary.skipped) == (32 - 12, 12)
    assert xr.open_zarr(grown.options.store).seed.values.tolist() == [0, 7, 1, 2]
    assert_as_in_one_go(grown, tmp_path)


def test_a_partial_store_grows_then_resumes(tmp_path):
    """Blocks done before a "crash", a growth, and a resume: the same store as in one go."""
    small = grid(tmp_path)
    store = api.open_store(small, api.prepare(small)[1])
    runner = api.InProcessExecutor(small.kernel_class(), small.fixed, small.options.outputs).runner
    for task in scheduler.tasks(small, store)[::2]:
        store.write(runner.run(task))
    done = int((store.status() != PENDING).sum())
    assert 0 < done < 12
    grown = grid(tmp_path, rate="[-1, 0.5, 1, 2]", x0="[0.0, 0.5, 1.0]")
    summary = run(grown)
    assert (summary.computed, summary.skipped) == (grown.n_points - done, done)
    assert_as_in_one_go(grown, tmp_path)


def test_grow_then_stop_mid_sweep_then_resume(tmp_path):
    """The sweep after a growth cut short (tests/integration/test_growth_kill.py SIGKILLs it)."""
    run(grid(tmp_path))
    grown = grid(tmp_path, rate="[-1, 0.5, 1, 2]", x0="[0.0, 0.5, 1.0]")
    store = api.open_store(grown, api.prepare(grown)[1])  # grown, nothing new computed yet
    runner = api.InProcessExecutor(grown.kernel_class(), grown.fixed, grown.options.outputs).runner
    for task in scheduler.tasks(grown, store)[::2]:
        store.write(runner.run(task))
    done = int((store.status() != PENDING).sum())
    assert 12 < done < grown.n_points
    summary = run(grown)
    assert (summary.computed, summary.skipped) == (grown.n_points - done, done)
    assert_as_in_one_go(grown, tmp_path)


def test_damage_in_the_store_is_recomputed_not_copied(tmp_path, capsys):
    small = grid(tmp_path)
    run(small)
    chunk = next(p for p in sorted((Path(small.options.store) / "x" / "c").rglob("*")) if p.is_file())
    chunk.write_bytes(b"garbage")  # one block's x chunk: its 4 finished points must be computed again
    grown = grid(tmp_path, rate="[-1, 0.5, 1, 2]")
    summary = run(grown)
    assert (summary.computed, summary.skipped) == (4 + 4, 12 - 4)
    assert (
        "4 points, 4 finished): x chunk has 7 bytes" in capsys.readouterr().err
    )  # said once, before the copy
    reference = grown.with_options(store=str(tmp_path / "one-go.zarr"))
    run(reference)
    ours, theirs = (xr.open_zarr(s.options.store, chunks=None).load() for s in (grown, reference))
    for name in COMPARED:
        np.testing.assert_array_equal(ours[name].values, theirs[name].values, err_msg=name)


def test_a_grown_store_passes_the_integrity_check_and_keeps_an_exact_block_index(tmp_path):
    run(grid(tmp_path))
    grown = grid(tmp_path, rate="[-1, 0.5, 1, 2]")
    target = api.open_store(grown, api.prepare(grown)[1])
    assert not api.checks.check(target, full=True)  # every copied chunk matches its record
    states = target.block_states()
    target.reindex()  # from the status chunks themselves
    np.testing.assert_array_equal(states, target.block_states())


def test_the_dry_run_says_how_the_store_grows(tmp_path):
    run(grid(tmp_path))
    grown = grid(tmp_path, rate="[-1, 0.5, 1, 2]", seeds="3")
    plan = api.describe_plan(*api.prepare(grown))
    assert "grows     rate 3 -> 4 values, seed 2 -> 3 values: 12 new points, 12 kept" in plan
    cases = grid(tmp_path, store="c.zarr", cases=[0.0])
    run(cases)
    plan = api.describe_plan(*api.prepare(grid(tmp_path, store="c.zarr", cases=[0.0, 0.5])))
    assert "grows     cases 1 -> 2: 12 new points, 12 kept" in plan


def store_bytes(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


REFUSALS = [
    (
        {"rate": "[-1, 2, 3, 4]"},
        r"s\.zarr: sweep\.rate: 0\.5 is in the store but not in the grid; removing values is not "
        r"supported: select the values you want in the notebook \(`ds\.sel\(rate=\[\.\.\.\]\)`\), or use "
        r"`--overwrite` to replace the store, or `--store` to write elsewhere\.$",
    ),
    ({"x0": "[2.0]"}, r"sweep\.x0: 0\.0, 1\.0 are in the store but not in the grid; removing values"),
    ({"seeds": "[1, 2]"}, r"seeds: 0 is in the store but not in the grid; removing seeds is not supported"),
    (
        {"rate": "[0.5, -1, 2, 3]"},
        r"sweep\.rate: the grid lists the store's values in another order \(0\.5 before -1\.0\); new "
        r"values may go anywhere, but the stored ones keep their order: list them as in the store "
        r"\(\[-1\.0, 0\.5, 2\.0\]\), or use `--overwrite`",
    ),
    (
        {"noise": 0.2, "rate": "[-1, 0.5, 2, 3]"},
        r"holds results of another grid \(params\.noise 0\.1 -> 0\.2;",
    ),
]


@pytest.mark.parametrize("change, message", REFUSALS, ids=["value", "values", "seed", "order", "other"])
def test_what_a_store_cannot_absorb_is_refused_and_nothing_is_written(tmp_path, change, message):
    small = grid(tmp_path)
    run(small)
    before = store_bytes(Path(small.options.store))
    with pytest.raises(StoreError, match=message):
        run(grid(tmp_path, **change))
    plan = api.describe_plan(*api.prepare(grid(tmp_path, **change)))  # the dry run says so
    assert re.search(message.rstrip("$"), plan.splitlines()[-2]), plan
    assert store_bytes(Path(small.options.store)) == before


def test_a_case_removed_is_refused_naming_it(tmp_path):
    run(grid(tmp_path, cases=[0.0, 0.2]))
    with pytest.raises(
        StoreError, match=r"cases: the store's case \{'noise': 0\.2\} is in the store but not"
    ):
        run(grid(tmp_path, cases=[0.0, 0.1, 0.3]))


def test_a_url_store_grows_seeds_but_refuses_other_growth(tmp_path):
    url = f"memory://sweeper-tests/{tmp_path.name}/remote.zarr"
    run(grid(tmp_path).with_options(store=url))
    assert run(grid(tmp_path, seeds="3").with_options(store=url)).computed == 6  # in place
    with pytest.raises(StoreError, match=r"the grid grows the store \(rate 3 -> 4 values: 6 new points"):
        run(grid(tmp_path, rate="[-1, 0.5, 1, 2]", seeds="3").with_options(store=url))


def test_an_error_in_the_copy_leaves_the_old_store_whole(tmp_path, monkeypatch):
    small = grid(tmp_path)
    run(small)
    before = store_bytes(Path(small.options.store))
    from sweeper import relayout

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(relayout, "swap", fail)
    with pytest.raises(OSError):
        run(grid(tmp_path, rate="[-1, 0.5, 1, 2]"))
    assert store_bytes(Path(small.options.store)) == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


# -- what a killed driver leaves (built by hand), ended by the next submit ---------------------


def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def leave_lease(folder: Path, pid: int) -> None:
    lease = {"host": socket.gethostname(), "pid": pid, "started": None, "since": 0, "heartbeat": 0}
    (folder / LEASE).write_text(json.dumps({**lease, "grid": "grow", "token": f"{pid:016d}"}))


def grown_copy(tmp_path, grown) -> Path:
    """What a growth builds beside the store: the grown store, not yet in place."""
    copy = tmp_path / "copy.zarr"
    shutil.copytree(grown.options.store, copy)
    api.open_store(grown.with_options(store=str(copy)), api.prepare(grown)[1])
    return copy


@pytest.mark.parametrize("when", ["mid-copy", "between-renames", "after-swap"])
def test_the_next_submit_ends_a_growth_a_killed_driver_left(tmp_path, when):
    small = grid(tmp_path)
    run(small)
    grown = grid(tmp_path, rate="[-1, 0.5, 1, 2]")
    store, pid = Path(grown.options.store), dead_pid()
    copy = grown_copy(tmp_path, grown)
    staging, aside = tmp_path / f".s.zarr.growing-{pid}", tmp_path / f".s.zarr.grown-{pid}"
    if when == "mid-copy":  # the old store in place, a half-made copy beside it
        (copy / "x" / "c").rename(tmp_path / "dropped")
        copy.rename(staging)
    elif when == "between-renames":  # nothing in place: the old store aside, the whole new one beside
        store.rename(aside)
        copy.rename(staging)
    else:  # the new store in place, the old one beside it
        store.rename(aside)
        copy.rename(store)
    for folder in (staging, aside, store):
        if folder.exists():
            leave_lease(folder, pid)
    summary = run(grown)
    assert (summary.computed, summary.skipped) == (4, 12)
    assert not staging.exists() and not aside.exists()
    assert_as_in_one_go(grown, tmp_path)


def test_a_live_driver_swapping_the_store_is_not_disturbed(tmp_path):
    small = grid(tmp_path)
    run(small)
    store, pid = Path(small.options.store), os.getpid()  # this process: alive
    aside = tmp_path / f".s.zarr.grown-{pid}"
    store.rename(aside)
    leave_lease(aside, pid)
    with pytest.raises(LeaseHeld, match=r"s\.zarr is being written by another driver \(host"):
        run(small)
    assert aside.exists() and not store.exists()
