"""The shipped job script, ``slurm/sweeper.sbatch``, under a real SLURM on this machine.

A two-node SLURM (munged, slurmctld, two slurmd, the second in a network and mount namespace:
``tests/integration/slurm_cluster.py``) runs the job script as a user would: ``sbatch
slurm/sweeper.sbatch GRID --store ...``. The store a job writes is bit-identical to a local
run; jobs stopped mid-sweep lose nothing and the same line submitted again computes only the
rest; jobs sharing a node at once, one of them across both nodes, neither collide nor leave a
process behind.

Where SLURM is not installed the tests skip, saying so (where namespaces are not allowed, the
two-node job is skipped); CI installs SLURM and sets ``SWEEPER_REQUIRE_SLURM=1``, which turns
those skips into failures.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sweeper import api
from sweeper.blocks import OK
from sweeper.lease import read_holder
from tests.integration import slurm_cluster

pytestmark = pytest.mark.slow  # each job starts a Ray; about 30 s on 2 busy cores

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "slurm" / "sweeper.sbatch"
COMPARED = ("status", "risk", "Q", "M")  # what a point computes; times and hosts differ by nature
JOB_TIMEOUT = 240  # s; a job takes about 30 s here, most of it Ray starting

GRID = """\
kernel = "ode"
name = "{name}"
seeds = 2
[params]
K = 2
M = 2
d = 1000
committee = "saad_solla"
init = "small"
init_scale = 0.1
integrator = "euler"  # fixed steps: the point costs what the comment below says
dt = 0.01
t_max = {t_max}
n_times = 11
time_spacing = "log"
t_min = 0.1
[sweep]
lr = {lr}
[run]
block_size = 1
"""
# Three grids: two short ones (12 points, about 0.2 s each) and a longer one (8 points of
# about 1 s) that a test stops twice mid-sweep.
GRIDS = {
    "short": dict(t_max=200.0, lr=[0.2, 0.4, 0.6, 0.8, 1.0, 1.2]),
    "other": dict(t_max=300.0, lr=[0.3, 0.5, 0.7, 0.9, 1.1, 1.3]),
    "long": dict(t_max=10000.0, lr=[0.2, 0.5, 0.8, 1.1]),
}


@pytest.fixture(scope="module")
def slurm():
    """A SLURM for this module, two nodes if this machine can simulate a second host (else one)."""
    absent = slurm_cluster.missing()
    reason = None
    if absent:
        reason = (
            f"SLURM is not installed here ({', '.join(absent)} missing): `apt-get install slurm-wlm munge`"
        )
    elif os.geteuid() != 0:
        reason = "a test SLURM's daemons run as root (slurmd starts jobs as their user)"
    if reason:
        if os.environ.get("SWEEPER_REQUIRE_SLURM"):
            pytest.fail(f"SWEEPER_REQUIRE_SLURM is set but {reason}")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="sw-slurm-"))  # short: munge's and Ray's socket paths
    try:
        cluster = slurm_cluster.start(root, two_nodes=True)
    except RuntimeError as exc:  # no network namespaces here: one node, and the reason
        shutil.rmtree(root, ignore_errors=True)
        root = Path(tempfile.mkdtemp(prefix="sw-slurm-"))
        cluster = slurm_cluster.start(root)
        cluster.one_node_only = str(exc).splitlines()[0]
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def grids(tmp_path_factory):
    """Each grid's file and its reference store, computed in this process (``workers = 0``)."""
    folder = tmp_path_factory.mktemp("grids")
    made = {}
    for name, fields in GRIDS.items():
        path = folder / f"{name}.toml"
        path.write_text(GRID.format(name=name, **fields))
        reference = folder / f"{name}-local.zarr"
        api.sweep(str(path), store=str(reference), workers=0, progress=False)
        made[name] = (path, xr.open_zarr(reference).load())
    return made


def submit(slurm, grid: Path, store: Path, nodes: int = 1) -> int:
    """``sbatch slurm/sweeper.sbatch GRID --store STORE``, as a user would, from the grid's folder.

    One CPU per node; a one-node job runs on the first node, where the test looks for leftovers.
    """
    where = (
        ["--nodes=2", f"--nodelist={slurm.node},{slurm.second}"]
        if nodes == 2
        else [f"--nodelist={slurm.node}"]
    )
    return slurm.sbatch(
        *where,
        "--cpus-per-task=1",
        f"--output={store.parent / (store.stem + '-%j.out')}",
        str(SCRIPT),
        str(grid),
        "--store",
        str(store),
        cwd=grid.parent,
        env={
            "PYTHONPATH": str(REPO),  # this checkout's code on every node
            "SWEEPER_RAY_TMP": str(slurm.tmp),  # node-local: `node/tmp`, another folder on the second
            # With a second host, this machine has two interfaces besides the loopback its hostname
            # resolves to: name the one the nodes share (both ends of the veth pair, as a real
            # cluster's nodes all have an ib0). Without, the job finds the only one itself.
            "SWEEPER_IFACE": slurm_cluster.host_interface(slurm) if slurm.second else "",
        },
    )


def output(store: Path, job: int) -> str:
    return (store.parent / f"{store.stem}-{job}.out").read_text()


def assert_ran_and_left_nothing(slurm, store: Path, job: int, state: str = "COMPLETED") -> str:
    """The job ended in ``state``; no process of its Rays is left, nor their temp dirs; returns its output."""
    log = output(store, job)
    assert slurm.state(job) == state, log
    job_dir = slurm.tmp / f"sweeper-{job}"  # on the second node, the same path names its own disk
    leftovers = _pids_mentioning(str(job_dir))
    assert not leftovers, f"processes of job {job} left behind: {leftovers}\n{log}"
    for node_dir in (job_dir, slurm.root / "node2" / "tmp" / f"sweeper-{job}"):
        assert not node_dir.exists(), f"{node_dir} left behind\n{log}"
    return log


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def assert_same_as(store: Path, reference: xr.Dataset) -> None:
    ds = xr.open_zarr(store).load()
    assert int((ds.status == OK).sum()) == ds.status.size, "store not complete"
    for name in COMPARED:
        np.testing.assert_array_equal(ds[name].values, reference[name].values, err_msg=name)


def ray_head(log: str) -> tuple[str, int]:
    host, port = re.search(r"Ray head at ([\d.]+):(\d+)", log).groups()
    return host, int(port)


def test_stopped_jobs_lose_nothing_and_the_same_line_computes_the_rest(slurm, grids, tmp_path):
    """Stopped twice, as SLURM stops jobs: at the time limit, then by `scancel`; then finished."""
    grid, reference = grids["long"]
    store = tmp_path / "long.zarr"
    n = reference.status.size
    done = 0
    # The time limit's warning (`--signal=B:TERM@90`) reaches only the batch shell: exactly
    # what `scancel --batch --signal=TERM` sends. Then a plain `scancel`, which signals every
    # process of the job at once.
    for stop, state in ((["--batch", "--signal=TERM"], "FAILED"), ([], "CANCELLED")):
        job = submit(slurm, grid, store)
        _wait_for_points(store, at_least=done + 1, timeout=JOB_TIMEOUT, job=job, slurm=slurm)
        # What a login node sees meanwhile: a driver on the node, writing the store.
        assert "driver    running" in api.describe_status(str(store))
        slurm.run("scancel", *stop, str(job))
        slurm.wait(job, JOB_TIMEOUT)
        log = assert_ran_and_left_nothing(slurm, store, job, state=state)
        assert read_holder(str(store)) is None, f"the stopped driver kept the store's lease\n{log}"
        # ... because it stopped as on Ctrl-C: Ray's handler would have aborted it, with a dump.
        assert "SIGTERM received" not in log, log
        kept = xr.open_zarr(store).load()
        ok = kept.status.values == OK
        assert done + 1 <= ok.sum() < n, "the job finished before it was stopped: lengthen the grid"
        for name in COMPARED:  # what the stopped job finished is right
            np.testing.assert_array_equal(kept[name].values[ok], reference[name].values[ok], err_msg=name)
        done = int(ok.sum())
    assert "submit the same line again" in log

    again = submit(slurm, grid, store)
    slurm.wait(again, JOB_TIMEOUT)
    log = assert_ran_and_left_nothing(slurm, store, again)
    # Only the missing points ran: nothing lost, nothing computed twice.
    assert f"computed {n - done} points (ok {n - done}, failed 0), {done} already done" in log
    assert_same_as(store, reference)
    finished = xr.open_zarr(store).finished_at.values
    np.testing.assert_array_equal(finished[ok], kept.finished_at.values[ok])  # kept points untouched


def _wait_for_points(store: Path, at_least: int, timeout: float, job: int, slurm) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.exists():
            try:
                done = int((xr.open_zarr(store).status.values == OK).sum())
            except (OSError, ValueError, KeyError):
                done = 0
            if done >= at_least:
                return done
        if slurm.state(job) not in ("PENDING", "RUNNING"):
            raise AssertionError(f"job {job} ended early: {slurm.state(job)}\n{output(store, job)}")
        time.sleep(0.2)
    raise TimeoutError(f"no {at_least} points in {store} after {timeout} s\n{output(store, job)}")


def test_jobs_sharing_nodes_at_once_each_write_what_a_local_run_writes(slurm, grids, tmp_path):
    """Two one-node jobs on the first node, and (where namespaces allow) one across both nodes."""
    jobs = {name: tmp_path / f"{name}.zarr" for name in ("short", "other")}
    if slurm.second:
        jobs["long"] = tmp_path / "long.zarr"
    ids = {
        name: submit(slurm, grids[name][0], store, nodes=2 if name == "long" else 1)
        for name, store in jobs.items()
    }
    for job in ids.values():
        slurm.wait(job, JOB_TIMEOUT)
    logs = {name: assert_ran_and_left_nothing(slurm, store, ids[name]) for name, store in jobs.items()}
    info = {name: slurm.job(job) for name, job in ids.items()}
    for name, store in jobs.items():
        assert info[name]["ExitCode"] == "0:0", logs[name]
        assert_same_as(store, grids[name][1])
        points = grids[name][1].status.size
        assert f"computed {points} points (ok {points}, failed 0), 0 already done" in logs[name]
        # Ray took exactly the CPUs SLURM granted (1 of each node's 3), on an address other
        # nodes can reach: this machine's hostname resolves to a loopback, which is refused.
        assert "--num-cpus=1 " in logs[name], logs[name]
        assert not ray_head(logs[name])[0].startswith("127."), logs[name]
    a, b = info["short"], info["other"]
    assert a["NodeList"] == b["NodeList"] == slurm.node
    for one, other in itertools.combinations(info.values(), 2):
        assert one["StartTime"] < other["EndTime"] and other["StartTime"] < one["EndTime"], (
            "jobs did not overlap"
        )
    heads = [ray_head(log) for log in logs.values()]
    assert len(set(heads)) == len(heads)  # a Ray per job, each on ports of its own
    if not slurm.second:
        reason = f"only the one-node jobs ran: no second node here ({slurm.one_node_only})"
        if os.environ.get("SWEEPER_REQUIRE_SLURM"):
            pytest.fail(f"SWEEPER_REQUIRE_SLURM is set but {reason}")
        pytest.skip(reason)
    # The job across both nodes: the second joined the head over the named interface, with an
    # address of its own, before the sweep started; both nodes' Rays stopped, and left nothing.
    assert info["long"]["NodeList"] == f"{slurm.node},{slurm.second}"
    assert "sweeper: Ray has 2 of 2 nodes, 2 CPUs" in logs["long"], logs["long"]
    worker = re.search(r"start --block --address=([\d.]+:\d+) --node-ip-address=([\d.]+)", logs["long"])
    assert worker, logs["long"]
    assert worker.group(1) == "{}:{}".format(*ray_head(logs["long"]))
    assert worker.group(2) != ray_head(logs["long"])[0]
