"""The lease of a store, and what `--overwrite` may remove: unit tests without a sweep."""

import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeper import lease as lease_module
from sweeper.errors import StoreError
from sweeper.lease import LEASE, STALE, Lease, LeaseHeld, LeaseLost, read_holder
from sweeper.processes import process_started
from sweeper.removal import check_removable, clean_leftovers

HERE = socket.gethostname()


def dead_pid() -> int:
    """The pid of a process that has finished (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def plant(store: Path, **fields) -> dict:
    """Write a lease by hand, as another driver would have."""
    now = time.time()
    record = {
        "host": HERE,
        "pid": os.getpid(),
        "started": process_started(os.getpid()),
        "since": now - 100,
        "heartbeat": now,
        "grid": "other",
        "token": "feedfeedfeedfeed",
        **fields,
    }
    store.mkdir(exist_ok=True)
    (store / LEASE).write_text(json.dumps(record))
    return record


def test_take_writes_who_holds_the_store_and_release_removes_it(tmp_path):
    store = tmp_path / "s.zarr"
    store.mkdir()
    lease = Lease(store, grid="mine")
    assert lease.take() is None
    try:
        holder = read_holder(store)
        assert (holder.host, holder.pid, holder.grid, holder.token) == (
            HERE,
            os.getpid(),
            "mine",
            lease.token,
        )
        assert holder.started == process_started(os.getpid()) and holder.gone() is None
        lease.check()
    finally:
        lease.release()
    assert not (store / LEASE).exists()
    assert sorted(p.name for p in store.iterdir()) == []  # no temporary file left either


def test_a_live_holder_is_refused_with_one_line_naming_it_and_how_to_proceed(tmp_path):
    store = tmp_path / "s.zarr"
    record = plant(store)
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["since"]))
    with pytest.raises(LeaseHeld) as info:
        Lease(store, grid="mine").take()
    assert str(info.value) == (
        f"{store} is being written by another driver (host {HERE}, pid {os.getpid()}, since {since}, "
        f"grid 'other'); wait for it to finish, or if that process is gone, submit again: the store "
        f"of a dead driver is taken over automatically."
    )
    with pytest.raises(LeaseHeld):
        Lease(store, grid="mine").refuse_if_held()
    assert json.loads((store / LEASE).read_text()) == record  # untouched


@pytest.mark.parametrize(
    "fields, why",
    [
        (lambda: {"pid": dead_pid()}, r"pid \d+ is not running"),
        (lambda: {"started": process_started(os.getpid()) - 1000}, r"pid \d+ is now another process"),
        (lambda: {"host": "elsewhere", "heartbeat": time.time() - STALE - 5}, r"no heartbeat for \d+ s"),
    ],
    ids=["dead pid", "reused pid", "stale heartbeat on another host"],
)
def test_a_gone_holder_is_taken_over_with_a_note(tmp_path, fields, why):
    store = tmp_path / "s.zarr"
    plant(store, **fields())
    lease = Lease(store, grid="mine")
    note = lease.take()
    try:
        assert note is not None and "took over the store from a driver that is gone" in note
        assert re.search(why, note), note
        assert read_holder(store).token == lease.token
    finally:
        lease.release()


def test_another_host_with_a_fresh_heartbeat_is_waited_for(tmp_path):
    store = tmp_path / "s.zarr"
    plant(store, host="elsewhere", pid=1)
    with pytest.raises(LeaseHeld, match=rf"on another host: once its heartbeat is {STALE:.0f} s old"):
        Lease(store, grid="mine").take()


def test_an_unreadable_lease_is_held_until_it_is_stale(tmp_path, monkeypatch):
    store = tmp_path / "s.zarr"
    store.mkdir()
    (store / LEASE).write_text("{not json")
    with pytest.raises(LeaseHeld):
        Lease(store, grid="mine").take()
    old = time.time() - STALE - 5
    os.utime(store / LEASE, (old, old))
    lease = Lease(store, grid="mine")
    assert "no heartbeat" in lease.take()
    lease.release()


def test_the_heartbeat_moves_and_a_lost_lease_stops_the_writer(tmp_path):
    store = tmp_path / "s.zarr"
    store.mkdir()
    lease = Lease(store, grid="mine", interval=0.05)
    lease.take()
    try:
        first = read_holder(store).heartbeat
        time.sleep(0.3)
        assert read_holder(store).heartbeat > first
        plant(store, host="elsewhere", pid=1)  # another host took it (our heartbeat looked stale)
        with pytest.raises(
            LeaseLost, match=r"lost the store \(now held by host elsewhere, pid 1, .*\) and stopped"
        ):
            lease.check()
    finally:
        lease.release()
    assert read_holder(store).host == "elsewhere"  # release leaves a lease it does not hold


def test_a_removed_lease_stops_the_writer(tmp_path):
    store = tmp_path / "s.zarr"
    store.mkdir()
    lease = Lease(store, grid="mine")
    lease.take()
    (store / LEASE).unlink()
    with pytest.raises(LeaseLost, match="its lease was removed"):
        lease.check()
    lease.release()


def _contend(store: str, go: float, hold: float, out) -> None:
    time.sleep(max(0.0, go - time.time()))
    lease = Lease(store, grid=f"g{os.getpid()}")
    try:
        note = lease.take()
    except LeaseHeld as exc:
        out.put(("refused", str(exc)))
        return
    out.put(("took", f"grid 'g{os.getpid()}'", note))
    time.sleep(hold)
    lease.release()


@pytest.mark.parametrize("left_by_a_dead_driver", [False, True], ids=["free", "dead holder"])
def test_many_drivers_at_once_exactly_one_takes_the_store(tmp_path, left_by_a_dead_driver):
    store = tmp_path / "s.zarr"
    store.mkdir()
    if left_by_a_dead_driver:
        plant(store, pid=dead_pid())
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    go = time.time() + 0.5
    procs = [ctx.Process(target=_contend, args=(str(store), go, 1.5, out)) for _ in range(6)]
    for p in procs:
        p.start()
    results = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    took = [r for r in results if r[0] == "took"]
    assert len(took) == 1, results
    # Every other driver is refused naming the winner (a dead holder is never named).
    assert all(took[0][1] in r[1] for r in results if r[0] == "refused"), results
    # The note goes to whoever removed the dead lease; another may then take the store first.
    assert took[0][2] is None or "took over the store" in took[0][2]
    assert not (store / LEASE).exists()
    assert [p.name for p in store.iterdir()] == []


def test_a_lease_on_an_object_store(monkeypatch):
    monkeypatch.setattr(lease_module, "SETTLE", 0.01)
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.mkdir("/lease-test.zarr")
    where = "memory://lease-test.zarr"
    first = Lease(where, grid="one")
    first.take()
    try:
        assert read_holder(where).token == first.token
        with pytest.raises(LeaseHeld, match="grid 'one'"):
            Lease(where, grid="two").take()
    finally:
        first.release()
    assert read_holder(where) is None
    fs.rm("/lease-test.zarr", recursive=True)


# -- what `--overwrite` may remove ------------------------------------------------------------


def make_store(path: Path, **attrs) -> Path:
    path.mkdir(parents=True)
    meta = {"zarr_format": 3, "node_type": "group", "attributes": {"store_format": 1, "swept_dims": ["seed"]}}
    meta["attributes"].update(attrs)
    (path / "zarr.json").write_text(json.dumps(meta))
    (path / "status").mkdir()
    (path / "status" / "zarr.json").write_text("{}")
    return path


def test_a_sweeper_store_may_be_removed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_removable(make_store(tmp_path / "s.zarr"), keep=(str(tmp_path / "grid.toml"),))
    plant(tmp_path / "s.zarr")
    check_removable(tmp_path / "s.zarr")  # its lease is its own


@pytest.mark.parametrize(
    "where, message",
    [
        ("/", "refusing to remove the filesystem root"),
        ("~", "refusing to remove the home directory"),
        (".", "refusing to remove it with `--overwrite`: it is the working directory"),
        ("..", "refusing to remove it with `--overwrite`: it contains the working directory"),
        ("../..", "refusing to remove it with `--overwrite`: it contains the working directory"),
    ],
)
def test_places_that_are_never_removed(tmp_path, monkeypatch, where, message):
    home = make_store(tmp_path / "home")  # even a folder that looks like a store
    monkeypatch.setenv("HOME", str(home))
    cwd = make_store(tmp_path / "a" / "b" / "c")
    monkeypatch.chdir(cwd)
    with pytest.raises(StoreError, match=f"^{where}: {message}"):
        check_removable(where)


def test_a_store_holding_the_grid_file_is_not_removed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = make_store(tmp_path / "s.zarr")
    with pytest.raises(StoreError, match="it contains the grid file"):
        check_removable(store, keep=(str(store / "status" / "grid.toml"),))


def test_what_is_not_a_sweeper_store_is_not_removed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("years of work")
    (tmp_path / "a-file").write_text("x")
    other = tmp_path / "other.zarr"
    other.mkdir()
    (other / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    (tmp_path / "link.zarr").symlink_to(make_store(tmp_path / "real.zarr"))
    cases = {
        "precious": r"not a sweeper store \(no sweeper metadata in its `zarr.json`\)",
        "a-file": r"not a sweeper store \(not a directory\)",
        "other.zarr": r"not a sweeper store \(no sweeper metadata",
        "link.zarr": r"not a sweeper store \(a link\)",
    }
    for name, message in cases.items():
        with pytest.raises(StoreError, match=message):
            check_removable(tmp_path / name)
    store = make_store(tmp_path / "mine.zarr")
    (store / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="holds 'notes.txt', which sweeper did not write"):
        check_removable(store)


def test_leftovers_of_dead_drivers_are_cleaned_and_live_ones_kept(tmp_path):
    target = tmp_path / "s.zarr"
    pid = dead_pid()
    dead = tmp_path / f".s.zarr.creating-{pid}"  # its lease names a dead driver
    plant(dead, pid=pid)
    live = tmp_path / f".s.zarr.creating-{os.getpid()}"  # ours: alive
    plant(live)
    fresh = tmp_path / ".s.zarr.removing-1"  # no lease, recent: may belong to a driver elsewhere
    fresh.mkdir()
    old = tmp_path / ".s.zarr.creating-2"  # no lease, untouched for longer than a stale heartbeat
    old.mkdir()
    unrelated = tmp_path / ".t.zarr.creating-3"  # another store's
    unrelated.mkdir()
    for path in (old, unrelated):
        os.utime(path, (time.time() - STALE - 5,) * 2)
    assert sorted(clean_leftovers(target)) == sorted([dead, old])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, fresh, unrelated))
