"""The resume scan per block: the block index, the vectorised plan, lazy tasks, no Ray when done."""

import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeper import api, scheduler
from sweeper.block_index import ALL_OK, ALL_PENDING, INDEX, SETTLED, UNKNOWN
from sweeper.blocks import FAILED, OK, PENDING, BlockTask
from sweeper.grid_file import parse_spec
from sweeper.layout import Layout
from sweeper.store import Store

ROOT = Path(__file__).resolve().parents[2]

GRID = """
kernel = "relaxation"
name = "scan"
seeds = {seeds}
[params]
t_max = 1.0
n_times = 2
{cases}
[sweep]
rate = {rates}
x0 = {{linspace = [0, 1, {n_x0}]}}
[run]
block_size = {block_size}
workers = 0
"""

CASES = """
[[cases]]
noise = 0.0
[[cases]]
noise = 0.1
[[cases]]
noise = 0.2
"""


def old_tasks(spec, status, layout, retry_failed=False):
    """The per-point scan this module replaces: the reference result."""
    todo = scheduler.wanted(status, retry_failed)
    out = []
    for block_id in layout.block_ids():
        mask = todo[layout.region(block_id)].ravel()
        if not mask.any():
            continue
        indices = layout.block_points(block_id)[mask]
        points = [spec.point(tuple(i)) for i in indices]
        out.append(BlockTask(block_id, indices, [p[0] for p in points], [p[1] for p in points]))
    return out


def same_tasks(a, b):
    assert [t.block_id for t in a] == [t.block_id for t in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.indices, y.indices)
        assert x.swept == y.swept and x.seeds == y.seeds


def make_store(tmp_path, name, *, seeds=3, cases=False, n_rates=5, n_x0=3, block_size=4):
    rates = [0.5 + k for k in range(n_rates)]
    text = GRID.format(
        seeds=seeds, cases=CASES if cases else "", rates=rates, n_x0=n_x0, block_size=block_size
    )
    spec = parse_spec(text).with_options(store=str(tmp_path / name))
    spec, template = api.prepare(spec)
    return spec, api.open_store(spec, template, overwrite=True)


def set_status(store, status):
    """Edit the status directly (as a test or a repair tool would) and rebuild the index."""
    store.group["status"][...] = status
    store.reindex()


# -- layout ---------------------------------------------------------------------------------


@st.composite
def shapes_and_chunks(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 7)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, s + 2)) for s in shape)
    return shape, chunks


@given(shapes_and_chunks(), st.integers(0, 2**32 - 1))
@settings(max_examples=200, deadline=None)
def test_per_block_equals_a_loop_over_blocks(shape_chunks, seed):
    shape, chunks = shape_chunks
    layout = Layout(shape, chunks)
    values = np.random.default_rng(seed).integers(0, 3, shape).astype(np.int8)
    rows = layout.per_block(values, -1)
    sizes = layout.block_sizes()
    assert rows.shape == (layout.n_blocks, math.prod(chunks))
    for flat, block_id in enumerate(layout.block_ids()):
        assert layout.block_id(flat) == block_id and layout.flat_id(block_id) == flat
        inside = layout.chunk_mask(block_id)
        np.testing.assert_array_equal(rows[flat][inside], values[layout.region(block_id)].ravel())
        assert (rows[flat][~inside] == -1).all()
        assert sizes[flat] == math.prod(layout.block_shape(block_id)) == inside.sum()


# -- the plan equals the per-point scan -----------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        dict(),  # chunk (1, 2, 2) over (5, 3, 3): ragged along two dims
        dict(cases=True, block_size=5),  # four dims with a case dim
        dict(seeds=4, n_x0=1, block_size=3),  # a dim of one
        dict(seeds=7, n_rates=3, n_x0=2, block_size=1),  # blocks of one point
        dict(seeds=2, n_rates=2, n_x0=2, block_size=64),  # one block
    ],
)
def test_plan_equals_the_per_point_scan(tmp_path, kind):
    spec, store = make_store(tmp_path, "s.zarr", **kind)
    layout = store.layout
    rng = np.random.default_rng(7)
    for trial in range(8):
        p = rng.dirichlet([1, 1, 1])
        status = rng.choice([PENDING, OK, FAILED], size=layout.shape, p=p).astype(np.int8)
        if trial == 0:
            status[...] = PENDING
        elif trial == 1:
            status[...] = OK
        set_status(store, status)
        if trial % 3 == 2:  # some codes forgotten (UNKNOWN is always true): they are read
            states = store.block_states()
            states[rng.random(states.size) < 0.5] = UNKNOWN
            store.group[INDEX][...] = states
        for reopen in (False, True):
            target = Store.open(store.path) if reopen else store
            for retry in (False, True):
                expected = old_tasks(spec, status, layout, retry)
                todo = scheduler.plan(target, retry)
                assert todo.n_todo == sum(len(t.swept) for t in expected)
                assert todo.skipped == status.size - todo.n_todo
                same_tasks(list(scheduler.iter_tasks(spec, target, todo)), expected)
                set_status(target, status)  # iter_tasks marked its blocks UNKNOWN: rebuild


@given(st.data())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_plan_equals_the_per_point_scan_property(tmp_path_factory, data):
    kind = data.draw(
        st.fixed_dictionaries(
            dict(
                seeds=st.integers(1, 5),
                cases=st.booleans(),
                n_rates=st.integers(1, 4),
                n_x0=st.integers(1, 3),
                block_size=st.integers(1, 9),
            )
        )
    )
    spec, store = make_store(tmp_path_factory.mktemp("p"), "s.zarr", **kind)
    codes = data.draw(
        st.lists(st.sampled_from([PENDING, OK, FAILED]), min_size=spec.n_points, max_size=spec.n_points)
    )
    status = np.asarray(codes, np.int8).reshape(spec.shape)
    set_status(store, status)
    forget = data.draw(
        st.lists(st.booleans(), min_size=store.layout.n_blocks, max_size=store.layout.n_blocks)
    )
    states = store.block_states()
    states[np.asarray(forget, bool)] = UNKNOWN
    store.group[INDEX][...] = states
    store = Store.open(store.path)
    retry = data.draw(st.booleans())
    same_tasks(scheduler.tasks(spec, store, retry), old_tasks(spec, status, store.layout, retry))


# -- the block index ------------------------------------------------------------------------


def test_index_codes_follow_the_writes_and_survive_a_crash(tmp_path, monkeypatch):
    spec, store = make_store(tmp_path, "s.zarr")
    layout = store.layout
    assert (store.block_states() == ALL_PENDING).all()  # a new store: nothing to read
    runner = api.InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs).runner
    monkeypatch.setattr("sweeper.block_index.INDEX_FLUSH_SECONDS", 1e9)  # refined codes stay in memory
    tasks = scheduler.tasks(spec, store)  # announces every block: UNKNOWN on disk now
    assert (Store.open(store.path, mode="r").block_states() == UNKNOWN).all()
    for task in tasks[:3]:
        store.write(runner.run(task))
    # "Killed" before the flush: the disk still says UNKNOWN for the written blocks, never pending.
    crashed = Store.open(store.path)
    same_tasks(scheduler.tasks(spec, crashed), old_tasks(spec, store.status(), layout))
    store.flush()
    states = Store.open(store.path, mode="r").block_states()
    written = [layout.flat_id(t.block_id) for t in tasks[:3]]
    assert set(states[written]) <= {ALL_OK, SETTLED} and (states[written[0]] == ALL_OK)


def test_a_write_without_announcement_marks_the_index_first(tmp_path, monkeypatch):
    spec, store = make_store(tmp_path, "s.zarr")
    runner = api.InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs).runner
    task = scheduler.tasks(spec, Store.open(store.path, mode="r"))[0]  # read-only: announces nothing
    monkeypatch.setattr("sweeper.block_index.INDEX_FLUSH_SECONDS", 1e9)
    store.write(runner.run(task))
    on_disk = Store.open(store.path, mode="r").block_states()
    assert on_disk[store.layout.flat_id(task.block_id)] == UNKNOWN


def test_counts_from_the_index_equal_the_status(tmp_path):
    spec, store = make_store(tmp_path, "s.zarr", cases=True, block_size=5)
    status = np.random.default_rng(3).choice([0, 1, 2], size=spec.shape).astype(np.int8)
    status[0] = OK  # whole blocks ok
    status[1] = PENDING
    set_status(store, status)
    states = store.block_states()
    assert {ALL_OK, ALL_PENDING} <= set(states.tolist())
    expected = {"pending": (status == 0).sum(), "ok": (status == 1).sum(), "failed": (status == 2).sum()}
    assert Store.open(store.path, mode="r").counts() == expected


def test_a_store_without_index_is_scanned_in_full_and_reindexed(tmp_path):
    spec, store = make_store(tmp_path, "s.zarr")
    status = np.random.default_rng(5).choice([0, 1, 2], size=spec.shape).astype(np.int8)
    store.group["status"][...] = status
    del store.group[INDEX]  # as made before the index existed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's note that consolidated metadata is not in the v3 spec
        zarr.consolidate_metadata(str(store.path))
    old = Store.open(store.path)
    assert (old.block_states() == UNKNOWN).all()
    same_tasks(scheduler.tasks(spec, old), old_tasks(spec, status, old.layout))
    old.reindex()
    assert (Store.open(store.path).block_states() != UNKNOWN).any()
    same_tasks(scheduler.tasks(spec, Store.open(store.path)), old_tasks(spec, status, old.layout))


def test_growing_seeds_into_a_partial_seed_chunk(tmp_path):
    spec, store = make_store(tmp_path, "s.zarr", seeds=3, block_size=2)  # seed chunk 2: 3 = 2 + 1
    assert store.layout.chunks[-1] == 2
    api.sweep(spec, progress=False)
    grown = spec_with_seeds(spec, 5)
    spec2, summary = api.sweep(grown, progress=False)
    assert summary.computed == 5 * 3 * 2 and summary.skipped == 5 * 3 * 3
    store = Store.open(grown.options.store)
    assert (store.status() != PENDING).all()
    assert store.block_states().size == store.layout.n_blocks
    assert set(store.block_states().tolist()) <= {ALL_OK, SETTLED}  # the index followed the growth
    assert api.sweep(grown, progress=False)[1].computed == 0


def test_growing_seeds_carries_the_index_over(tmp_path):
    spec, store = make_store(tmp_path, "s.zarr", seeds=3, block_size=2)
    api.sweep(spec, progress=False)
    before = Store.open(spec.options.store).block_states().reshape(store.layout.grid)
    grown = spec_with_seeds(spec, 6)  # seed blocks [0, 1], [2, (3)] -> [0, 1], [2, 3], [4, 5]
    target = Store.open_for(grown.options.store, grown)
    after = Store.open(grown.options.store, mode="r").block_states().reshape(target.layout.grid)
    np.testing.assert_array_equal(after[..., 0], before[..., 0])  # whole seed chunks keep their codes
    assert (after[..., 1] == UNKNOWN).all()  # the partial one gained pending points: read it
    assert (after[..., 2] == ALL_PENDING).all()  # new seeds: never written
    same_tasks(scheduler.tasks(grown, target), old_tasks(grown, target.status(), target.layout))


def spec_with_seeds(spec, seeds):
    text = spec.text.replace(f"seeds = {len(spec.seeds)}", f"seeds = {seeds}")
    return parse_spec(text).with_options(store=spec.options.store)


# -- lazy tasks -----------------------------------------------------------------------------


def test_tasks_are_built_as_the_executor_takes_them(tmp_path):
    spec, store = make_store(tmp_path, "s.zarr", block_size=1)
    todo = scheduler.plan(store)
    built = []
    original = spec.point

    class Counting:
        def __getattr__(self, name):
            return getattr(spec, name)

        def point(self, index):
            built.append(index)
            return original(index)

    tasks = scheduler.iter_tasks(Counting(), store, todo)
    assert built == []
    next(tasks)
    assert len(built) == 1
    from sweeper.dispatch import Dispatch
    from sweeper.executors import InProcessPool

    pool = InProcessPool(spec.kernel_class(), spec.fixed, spec.options.outputs)
    seen = []
    for result in Dispatch(pool, in_flight_per_worker=1).map(tasks):
        seen.append(len(built))
        store.write(result)
    # One task built ahead of the one running, never the whole grid at once.
    assert all(n <= k + 3 for k, n in enumerate(seen))
    assert len(built) == spec.n_points


# -- a finished store answers without Ray ---------------------------------------------------

ODE = """
kernel = "ode"
name = "done"
seeds = 2
[params]
K = 1
M = 1
n_times = 2
t_max = 1.0
[sweep]
lr = [0.1, 0.2, 0.3]
[run]
outputs = ["risk"]
workers = 0
store = "{store}"
"""


def test_a_finished_store_resubmitted_does_not_start_ray(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(ODE.format(store=tmp_path / "done.zarr"))
    spec, summary = api.sweep(str(grid), progress=False)
    assert summary.computed == 6 and summary.ok == 6
    # Back to Ray workers: the grid file says workers = 0, the flag asks for 2.
    code = textwrap.dedent(
        f"""
        import sys
        from sweeper.cli import main
        for extra in ([], ["--retry-failed"]):
            try:
                main(["submit", {str(grid)!r}, "--workers", "2", "--quiet", *extra])
            except SystemExit as exc:
                assert not exc.code, exc.code
        assert "ray" not in sys.modules, "ray was imported"
        print("no ray")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "no ray"
    assert lines[0].endswith("computed 0 points (ok 0, failed 0), 6 already done, in 0.0 s")
    assert len(lines) == 3


# -- the point limit and the bench ----------------------------------------------------------


def test_the_point_limit_is_the_tested_size():
    from sweeper.errors import SpecError
    from sweeper.parser import MAX_POINTS

    assert MAX_POINTS == 10**7  # what bench/scale.py runs; raise it only with the bench at the new size
    at = "kernel = 'ode'\nseeds = 10\n[sweep]\nlr = {linspace = [0.1, 1, 1000]}\nnoise = {linspace = [0, 1, 1000]}\n"
    assert parse_spec(at).n_points == MAX_POINTS
    with pytest.raises(SpecError, match=r"1\.1e\+07 points is more than the 1e\+07 one grid may hold"):
        parse_spec(at.replace("seeds = 10", "seeds = 11"))


@pytest.mark.slow
def test_bench_scale_quick_runs():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale.py"), "--quick", "--repeat", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    for row in ("resume scan, all done", "finished store resubmitted", "xr.open_zarr", "sweeper status"):
        assert row in out.stdout
