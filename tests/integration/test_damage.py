"""Damage to a finished store: found, marked pending, recomputed, and never reported as complete.

Each test finishes the fault grid in process, damages one block's chunk (an output,
``status``, or the block's integrity record) the way a disk, a bad copy or a stray
script would, then holds the store to the guarantees of
:mod:`tests.integration.faults`: `status` says "damaged" before the repair, the
next submit recomputes exactly the damaged block's points (the kernel's trace) and
writes no other point, and the store ends bit-equal to an undisturbed run. Each
prints one ``faults:`` line (run with ``-s`` to see them).
"""

from collections import Counter
from pathlib import Path

import fsspec
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from sweeper import api, checks, integrity
from sweeper.blocks import OK
from sweeper.cli import main
from sweeper.creation import quiet
from sweeper.store import Store
from tests.integration.faults import (
    GRID,
    N_POINTS,
    assert_same_results,
    computations,
    fault_spec,
    undisturbed,
)

BLOCK = (2, 1, 0)  # rate[2], x0[1], the 4 seeds: all ok
BLOCK_POINTS = {(2, 1, s) for s in range(4)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return undisturbed(tmp_path_factory.mktemp("reference"))


def finished(tmp_path: Path, name: str):
    """The fault grid computed in process; returns (spec, grid file)."""
    spec = fault_spec(tmp_path, name, delay=0.0).with_options(workers=0)
    grid = tmp_path / f"{name}.toml"
    grid.write_text(spec.text)
    api.sweep(spec, progress=False)
    assert sum(computations(spec).values()) == N_POINTS
    return spec, grid


def chunk(store: str | Path, name: str, block=BLOCK) -> Path:
    """The file of ``block``'s chunk of array ``name`` (default chunk key encoding)."""
    s = Store.open(store, mode="r")
    if name == "records":
        arr = s.group[integrity.GROUP][integrity.RECORDS]
    else:
        arr = s.group[name]
    key = arr.metadata.encode_chunk_key(tuple(block) + (0,) * (arr.ndim - len(block)))
    return Path(store) / arr.store_path.path / key


def garbage(n: int) -> bytes:
    return np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()


def delete(path: Path) -> None:
    path.unlink()


def overwrite(path: Path) -> None:
    path.write_bytes(garbage(path.stat().st_size + 17))


def overwrite_same_size(path: Path) -> None:
    path.write_bytes(garbage(path.stat().st_size))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def written_points(monkeypatch) -> Counter:
    """Counts every grid point written to any store from now on."""
    writes: Counter = Counter()
    write = Store.write

    def counting(self, result):
        writes.update(tuple(int(i) for i in index) for index in result.indices)
        write(self, result)

    monkeypatch.setattr(Store, "write", counting)
    return writes


def report(fault: str, injected: int, lost: int, recomputed: int, wrong: int) -> None:
    print(
        f"\nfaults: {fault}: injected {injected}, points lost {lost}, "
        f"points recomputed {recomputed}, silently wrong {wrong}"
    )


FAULTS = [
    ("x", delete, "x chunk missing"),
    ("modes", overwrite, r"modes chunk has \d+ bytes, \d+ were written"),
    ("x", overwrite_same_size, "x chunk does not match its record"),
    ("final", truncate, r"final chunk has \d+ bytes, \d+ were written"),
    ("wall_time", delete, "wall_time chunk missing"),
    ("status", overwrite, "status chunk cannot be decoded"),
    ("status", truncate, "status chunk cannot be decoded"),
    ("records", overwrite, "its record cannot be decoded"),
    ("records", delete, "no record of its write"),
    ("records", overwrite_same_size, r"chunk has \d+ bytes, -?\d+ were written|does not match its record"),
]


@pytest.mark.parametrize(
    ("array", "fault", "reason"), FAULTS, ids=[f"{a}-{f.__name__}" for a, f, _ in FAULTS]
)
def test_damage_is_reported_verified_and_recomputed(tmp_path, reference, monkeypatch, array, fault, reason):
    spec, grid = finished(tmp_path, f"{array}-{fault.__name__}")
    store = spec.options.store
    fault(chunk(store, array))
    runner = CliRunner()

    shown = runner.invoke(main, ["status", store])
    assert shown.exit_code == 0, shown.output
    assert "damaged   1 of 12 blocks damaged" in shown.output and "complete" not in shown.output
    assert "run `sweeper verify" in shown.output and "block (2, 1, 0)" in shown.output

    checked = runner.invoke(main, ["verify", store])
    assert checked.exit_code == 1, checked.output
    lines = checked.output.splitlines()
    assert len(lines) == 2, checked.output
    assert lines[0].startswith("damaged: block (2, 1, 0) (rate[2], x0[1], seed[0:4]; 4 points")
    assert __import__("re").search(reason, lines[0]), lines[0]
    assert "1 of 12 blocks damaged" in lines[1] and "4 points to recompute" in lines[1]
    assert "`sweeper submit` recomputes them" in lines[1]
    again = runner.invoke(main, ["verify", store])  # the repair holds: nothing left to find
    assert again.exit_code == 0 and "no damage" in again.output, again.output

    writes = written_points(monkeypatch)
    resumed = runner.invoke(main, ["submit", str(grid), "--workers", "0", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert "computed 4 points (ok 4, failed 0), 44 already done" in resumed.output
    assert set(writes) == BLOCK_POINTS and max(writes.values()) == 1
    counts = computations(spec)
    twice = {k for k, v in counts.items() if v == 2}
    assert len(counts) == N_POINTS and len(twice) == 4 and max(counts.values()) == 2
    assert_same_results(store, reference)
    assert "complete" in runner.invoke(main, ["status", store]).output
    report(f"{array} chunk {fault.__name__}", 1, 0, len(twice), 0)


def test_the_check_at_resubmit_catches_a_deleted_chunk_without_verify(
    tmp_path, reference, monkeypatch, capsys
):
    spec, grid = finished(tmp_path, "resubmit")
    chunk(spec.options.store, "x").unlink()
    chunk(spec.options.store, "final", block=(5, 0, 0)).unlink()
    writes = written_points(monkeypatch)
    summary = api.sweep(spec, progress=False)[1]
    said = capsys.readouterr().err.splitlines()
    assert said[0].startswith("damaged: block (2, 1, 0)") and said[0].endswith("x chunk missing")
    assert said[1].startswith("damaged: block (5, 0, 0)") and said[1].endswith("final chunk missing")
    assert "2 of 12 blocks damaged" in said[2] and "computing them again now" in said[2]
    assert (summary.computed, summary.skipped) == (8, 40)
    assert max(writes.values()) == 1 and len(writes) == 8
    assert sum(computations(spec).values()) == N_POINTS + 8
    assert_same_results(spec.options.store, reference)
    report("x and final chunks deleted, resubmit only", 2, 0, 8, 0)


def test_a_corrupt_status_chunk_is_one_line_everywhere(tmp_path):
    spec, grid = finished(tmp_path, "status-lines")
    store = spec.options.store
    overwrite(chunk(store, "status"))
    runner = CliRunner()
    dry = runner.invoke(main, ["submit", str(grid), "--dry-run"])
    assert (
        dry.exit_code == 0 and "existing  " in dry.output and "status chunk cannot be decoded" in dry.output
    )
    assert "Traceback" not in dry.output
    shown = runner.invoke(main, ["status", store])
    assert shown.exit_code == 0 and "status chunk cannot be decoded" in shown.output
    assert "points    48: ok 44, failed 0, pending 4" in shown.output
    looked = runner.invoke(main, ["verify", "--dry-run", store])
    assert looked.exit_code == 1 and "nothing changed (--dry-run)" in looked.output
    assert runner.invoke(main, ["verify", "--dry-run", store]).exit_code == 1  # still there


def test_garbage_where_no_chunk_was_written_is_found(tmp_path, reference):
    """An all-ok block's `message` chunk is only the fill value: zarr wrote none, and none may appear."""
    spec, grid = finished(tmp_path, "stray")
    path = chunk(spec.options.store, "message")
    assert not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(garbage(40))
    damage = api.verify(spec.options.store)
    assert damage.lines()[0].endswith("message chunk present where none was written (40 bytes)")
    api.sweep(spec, progress=False)
    assert_same_results(spec.options.store, reference)


def test_chunks_of_pending_blocks_only_need_to_decode(tmp_path):
    """A block with nothing finished loses nothing: an undecodable chunk there is just removed."""
    spec = fault_spec(tmp_path, "pending", delay=0.0).with_options(workers=0)
    store = api.open_store(spec, api.prepare(spec)[1])
    path = chunk(spec.options.store, "x")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(garbage(50))
    damage = api.verify(spec.options.store)
    assert damage.lines() == [
        "block (2, 1, 0) (rate[2], x0[1], seed[0:4]; 4 points, 0 finished): x chunk cannot be decoded"
    ]
    assert not path.exists() and np.isnan(xr.open_zarr(spec.options.store).x.values).all()
    assert not api.verify(store.path)


def test_verify_on_an_fsspec_url_store(tmp_path, reference):
    url = f"memory://sweeper-tests/{tmp_path.name}/damaged.zarr"
    spec = fault_spec(tmp_path, "url", delay=0.0).with_options(workers=0, store=url)
    api.sweep(spec, progress=False)
    fs, root = fsspec.core.url_to_fs(url)
    fs.rm(f"{root}/x/c/2/1/0/0")
    fs.pipe(f"{root}/status/c/4/0/0", garbage(30))
    assert "damaged   2 of 12 blocks damaged" in api.describe_status(url)
    damage = api.verify(url)
    assert [line.split(":")[-1].strip() for line in damage.lines()] == [
        "x chunk missing",
        "status chunk cannot be decoded",
    ]
    assert damage.points == 8 and not api.verify(url)
    summary = api.sweep(spec, progress=False)[1]
    assert (summary.computed, summary.skipped) == (8, 40)
    ours = xr.open_zarr(url).load()
    for name in ("x", "modes", "final", "status", "message"):
        np.testing.assert_array_equal(ours[name].values, reference[name].values, err_msg=name)


def test_records_follow_a_grid_growing_its_seeds(tmp_path, reference):
    small = fault_spec(tmp_path, "grow", delay=0.0, text=GRID.replace("seeds = 4", "seeds = 3"))
    api.sweep(small.with_options(workers=0), progress=False)  # chunks of 3 seeds
    big = fault_spec(tmp_path, "grow", delay=0.0).with_options(workers=0)
    api.sweep(big, progress=False)  # seed 3 in new blocks
    store = Store.open(big.options.store, mode="r")
    assert store.layout.grid == (6, 2, 2)
    assert store.group["_integrity/records"].shape[:3] == (6, 2, 2)
    assert not checks.check(store, full=True)
    chunk(big.options.store, "x", block=(2, 1, 1)).unlink()
    assert list(api.verify(big.options.store).blocks) == [(2, 1, 1)]
    assert api.sweep(big, progress=False)[1].computed == 1
    assert_same_results(big.options.store, reference)


def test_a_store_made_before_records_gets_the_decoding_checks(tmp_path):
    import shutil

    import zarr

    spec, grid = finished(tmp_path, "legacy")
    store = spec.options.store
    shutil.rmtree(Path(store) / integrity.GROUP)
    with quiet():
        zarr.consolidate_metadata(store)
    assert Store.open(store).records is None
    overwrite(chunk(store, "modes"))
    damage = api.verify(store)
    assert list(damage.blocks) == [BLOCK] and "modes chunk cannot be decoded" in damage.lines()[0]
    assert "predates integrity records" in damage.summary()
    assert api.sweep(spec, progress=False)[1].computed == 4


CAMPAIGN = GRID.replace("rate = {{linspace = [0.1, 2, 6]}}", "rate = [-1, 0, 0.5, 1, 1.5, 2]")
ARRAYS = ("x", "modes", "final", "wall_time", "finished_at", "message", "status", "records")
KINDS = (delete, overwrite, overwrite_same_size, truncate)


@pytest.mark.slow
def test_random_damage_campaign(tmp_path):
    """Rounds of 1 to 3 random faults on random blocks (failed ones included) of a finished store."""
    reference = undisturbed(tmp_path, text=CAMPAIGN)
    rng = np.random.default_rng(13)
    injected = lost = recomputed = wrong = 0
    for round_ in range(12):
        spec = fault_spec(tmp_path, f"campaign{round_}", delay=0.0, text=CAMPAIGN).with_options(workers=0)
        api.sweep(spec, progress=False)
        store = spec.options.store
        hit = set()
        for _ in range(rng.integers(1, 4)):
            block = (int(rng.integers(6)), int(rng.integers(2)), 0)
            array, kind = ARRAYS[rng.integers(len(ARRAYS))], KINDS[rng.integers(len(KINDS))]
            path = chunk(store, array, block)
            if not path.exists():  # a chunk zarr never wrote (all fill value): only garbage can appear
                kind = overwrite
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")
            kind(path)
            hit.add(block)
            injected += 1
        assert api.describe_status(store).count("complete") == 0
        damage = api.verify(store)
        deleted_status = hit - set(damage.blocks)  # a status chunk deleted with no block index to tell
        assert set(damage.blocks) <= hit
        assert all(not chunk(store, "status", b).exists() for b in deleted_status)
        before = Counter(computations(spec))
        summary = api.sweep(spec, progress=False)[1]
        again = computations(spec) - before
        points = {(b[0], b[1], s) for b in hit for s in range(4)}
        assert summary.computed == len(points) == sum(again.values()) and max(again.values()) == 1
        ds = xr.open_zarr(store).load()
        for name in ("x", "modes", "final", "status", "message"):
            wrong += int((~_same(ds[name].values, reference[name].values)).sum())
        lost += int((ds.status != reference.status).sum())
        recomputed += summary.computed
    assert wrong == 0 and lost == 0
    report("random chunk faults on 12 finished stores", injected, lost, recomputed, wrong)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise bit-equality, NaN equal to NaN."""
    if a.dtype.kind == "f":
        return (a == b) | (np.isnan(a) & np.isnan(b))
    return a == b


def test_a_write_cut_before_status_leaves_the_block_pending_not_damaged(tmp_path, reference):
    """Data and record on disk, status not: the block reads pending, verify finds nothing to repair."""
    from sweeper import scheduler

    spec = fault_spec(tmp_path, "cut", delay=0.0).with_options(workers=0)
    store = api.open_store(spec, api.prepare(spec)[1])
    runner = api.InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs).runner
    tasks = scheduler.tasks(spec, store)
    for task in tasks[:5]:
        store.write(runner.run(task))

    class Cut:
        shape = store._array("status").shape

        async def setitem(self, *args):
            raise OSError("the driver died here")

    store._arrays["status"] = Cut()
    with pytest.raises(OSError):
        store.write(runner.run(tasks[5]))
    assert chunk(spec.options.store, "x", tasks[5].block_id).exists()
    assert not api.verify(spec.options.store)
    summary = api.sweep(spec, progress=False)[1]
    assert (summary.computed, summary.skipped) == (N_POINTS - 20, 20)
    assert_same_results(spec.options.store, reference)


def test_verify_repairs_nothing_while_a_driver_holds_the_store(tmp_path):
    from sweeper.lease import Lease

    spec, grid = finished(tmp_path, "leased")
    store = spec.options.store
    delete(chunk(store, "x"))
    driver = Lease(store, grid="faults")
    driver.take()
    try:
        refused = CliRunner().invoke(main, ["verify", store])
        assert refused.exit_code == 1 and refused.output.count("\n") == 1, refused.output
        assert refused.output.startswith("error: ") and "pid" in refused.output
        assert (Store.open(store, mode="r").status() == OK).all()  # nothing marked pending
        looked = CliRunner().invoke(main, ["verify", "--dry-run", store])  # reading is allowed
        assert looked.exit_code == 1 and "x chunk missing" in looked.output
    finally:
        driver.release()
    assert list(api.verify(store).blocks) == [BLOCK]


def test_a_large_store_trusts_its_block_index_for_ok_status_chunks(tmp_path, monkeypatch, reference):
    """Past FULL_READ_BUDGET blocks, the check of every resubmit does not decode the status chunks
    the block index says are all ok (4e4 of them cost a second at 1e7 points): it checks they
    exist. A deleted one is still damage; garbage in one is left to `sweeper verify`."""
    monkeypatch.setattr(checks, "FULL_READ_BUDGET", (4, 32 * 2**20))  # this store counts as large
    spec, _ = finished(tmp_path, "large")
    store = spec.options.store
    assert not checks.check(Store.open(store, mode="r"), full=None)
    overwrite(chunk(store, "status"))
    assert not checks.check(Store.open(store, mode="r"), full=None)  # trusted: not decoded
    assert BLOCK in checks.check(Store.open(store, mode="r"), full=True).blocks  # verify reads it
    delete(chunk(store, "status"))
    damage = checks.check(Store.open(store, mode="r"), full=None)
    assert list(damage.blocks) == [BLOCK] and "status chunk missing" in damage.lines()[0]
    api.sweep(spec, progress=False)  # the resubmit repairs and recomputes that block only
    assert_same_results(store, reference)
