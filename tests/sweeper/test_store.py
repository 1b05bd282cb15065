"""Store and scheduler with the in-process executor: round trip, failures, resume, seeds."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from sweeper import api, scheduler
from sweeper.blocks import FAILED, OK, PENDING
from sweeper.errors import StoreError
from sweeper.grid_file import parse_spec
from sweeper.store import Store

GRID = """
kernel = "relaxation"
name = "relax"
seeds = {seeds}
[params]
t_max = 4.0
n_times = 5
noise = 0.1
[sweep]
rate = [-1, 0, 0.5, 1, 2]
x0 = {{linspace = [0, 1, 3]}}
[run]
block_size = 4
workers = 0
"""


def spec_for(tmp_path, seeds=3, name="s.zarr", **run):
    spec = parse_spec(GRID.format(seeds=seeds))
    return spec.with_options(store=str(tmp_path / name), **run)


def run(spec, **kw):
    return api.sweep(spec, progress=False, **kw)[1]


def test_round_trip_labels_and_failures(tmp_path):
    spec = spec_for(tmp_path)
    summary = run(spec)
    assert (summary.computed, summary.ok, summary.failed) == (45, 27, 18)
    ds = xr.open_zarr(spec.options.store)
    assert dict(ds.sizes) == {"rate": 5, "x0": 3, "seed": 3, "time": 5, "mode": 2}
    assert ds.x.dims == ("rate", "x0", "seed", "time")
    for name in ("x", "modes", "final", "status", "wall_time", "message", "finished_at"):
        assert ds[name].attrs["long_name"]
    assert ds.x.attrs["units"] == "1"
    assert ds.time.attrs["units"] == "1/rate"
    assert ds.attrs["kernel"] == "relaxation" and ds.attrs["kernel_version"] == "1"
    assert ds.attrs["grid_text"] == spec.text
    assert set(ds.attrs["packages"]) >= {"numpy", "zarr", "xarray", "ray"}
    assert ds.attrs["git_commit"]
    # One point raising and one returning NaN: both recorded with their message.
    assert (ds.status.sel(rate=-1.0) == FAILED).all()
    assert "ValueError: negative rate -1.0" in str(ds.message.sel(rate=-1.0, x0=0.0, seed=0).values)
    assert (ds.status.sel(rate=0.0) == FAILED).all()
    assert "non-finite" in str(ds.message.sel(rate=0.0, x0=1.0, seed=2).values)
    assert (ds.status.sel(rate=[0.5, 1.0, 2.0]) == OK).all()
    # Values are the kernel's own, in the right place.
    kernel = spec.kernel_class()()
    direct = kernel.run(kernel.make_params(t_max=4.0, n_times=5, noise=0.1, rate=1.0, x0=0.5), seed=(0, 2))
    np.testing.assert_array_equal(ds.x.sel(rate=1.0, x0=0.5, seed=2).values, direct.outputs["x"])


def test_partial_then_resume_equals_undisturbed_run(tmp_path):
    whole = spec_for(tmp_path, name="whole.zarr")
    run(whole)
    part = spec_for(tmp_path, name="part.zarr")
    template = api.prepare(part)[1]
    store = api.open_store(part, template)
    tasks = scheduler.tasks(part, store)
    runner = api.InProcessExecutor(part.kernel_class(), part.fixed, part.options.outputs)
    for task in tasks[::3]:  # some blocks finished before a "crash"
        store.write(runner.runner.run(task))
    mid = xr.open_zarr(part.options.store)  # readable mid-run; unfinished points are NaN and pending
    assert (mid.status == PENDING).sum() > 0 and np.isnan(mid.x.where(mid.status == PENDING)).all()
    summary = run(part)
    assert summary.skipped == sum(len(t.swept) for t in tasks[::3])
    assert summary.computed == 45 - summary.skipped
    a, b = xr.open_zarr(whole.options.store), xr.open_zarr(part.options.store)
    for name in ("x", "modes", "final", "status", "message"):
        xr.testing.assert_identical(a[name], b[name])
    assert run(part).computed == 0  # nothing left to do


def test_partial_block_is_patched_not_overwritten(tmp_path):
    spec = spec_for(tmp_path)
    template = api.prepare(spec)[1]
    store = api.open_store(spec, template)
    task = scheduler.tasks(spec, store)[0]
    runner = api.InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs).runner
    first = runner.run(task)
    keep = slice(0, 1)
    from sweeper.blocks import BlockResult

    store.write(
        BlockResult(
            task.block_id,
            first.indices[keep],
            {k: v[keep] for k, v in first.outputs.items()},
            first.status[keep],
            first.messages[keep],
            first.wall_time[keep],
        )
    )
    rest = scheduler.tasks(spec, store)[0]
    assert rest.block_id == task.block_id and len(rest.swept) == len(task.swept) - 1
    store.write(runner.run(rest))
    ds = xr.open_zarr(spec.options.store)
    i = tuple(first.indices[0])
    assert ds.status.values[i] == first.status[0]


def test_retry_failed_reruns_only_failed(tmp_path):
    spec = spec_for(tmp_path)
    run(spec)
    assert run(spec).computed == 0
    again = run(spec, retry_failed=True)
    assert again.computed == 18 and again.failed == 18


def test_more_seeds_grow_the_store_and_reuse_results(tmp_path):
    small = spec_for(tmp_path, seeds=2, name="grow.zarr")
    run(small)
    before = xr.open_zarr(small.options.store).load()
    bigger = spec_for(tmp_path, seeds=4, name="grow.zarr")
    summary = run(bigger)
    assert summary.skipped == 30 and summary.computed == 30
    after = xr.open_zarr(bigger.options.store)
    assert list(after.seed.values) == [0, 1, 2, 3]
    xr.testing.assert_identical(after.x.sel(seed=[0, 1]).load(), before.x)
    reference = spec_for(tmp_path, seeds=4, name="ref.zarr")
    run(reference)
    xr.testing.assert_identical(after.x.load(), xr.open_zarr(reference.options.store).x.load())


def test_store_of_another_grid_is_refused(tmp_path):
    spec = spec_for(tmp_path)
    run(spec)
    other = parse_spec(GRID.format(seeds=3).replace("noise = 0.1", "noise = 0.2")).with_options(
        store=spec.options.store, workers=0
    )
    with pytest.raises(StoreError, match=r"holds results of another grid .*`--overwrite`.*`--store`"):
        run(other)
    fewer = spec_for(tmp_path, seeds=2)
    with pytest.raises(StoreError, match=r"seeds: 2 is in the store but not in the grid; removing seeds"):
        run(fewer)
    assert run(other, overwrite=True).computed == 45


def test_a_default_changed_between_submits_is_refused_naming_it(tmp_path, monkeypatch, relaxation_kernel):
    """A kernel upgrade between two submits: half the store must not be completed under another default."""
    spec = spec_for(tmp_path, seeds=1)
    run(spec)

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Upgraded(relaxation_kernel.Params):
        t_min: float = 0.02

    monkeypatch.setattr(relaxation_kernel, "Params", Upgraded)
    monkeypatch.setattr(relaxation_kernel, "version", "2")
    before = sorted(p.name for p in Path(spec.options.store).rglob("*"))
    with pytest.raises(StoreError) as info:
        run(spec_for(tmp_path, seeds=1))
    assert str(info.value) == (
        f"{spec.options.store} holds results of another grid (kernel 'relaxation' version 1 -> 2; "
        "params.t_min 0.01 -> 0.02 (a default changed)); use `--overwrite` to replace it, "
        "or `--store` to write elsewhere."
    )
    assert sorted(p.name for p in Path(spec.options.store).rglob("*")) == before


def test_a_swept_value_changed_is_refused_naming_it(tmp_path):
    spec = spec_for(tmp_path, seeds=1)
    run(spec)
    other = parse_spec(GRID.format(seeds=1).replace("0.5, 1, 2]", "0.5, 1, 3]")).with_options(
        store=spec.options.store
    )
    with pytest.raises(
        StoreError, match=r"another grid \(sweep\.rate\[4\] 2\.0 -> 3\.0\); use `--overwrite`"
    ):
        run(other)


def test_description_block_size_workers_and_seeds_edits_resume_and_update_the_attrs(tmp_path):
    spec = spec_for(tmp_path, seeds=1)
    assert run(spec).computed == 15
    text = GRID.format(seeds=2).replace('name = "relax"', 'name = "relax"\ndescription = "second go"')
    text = text.replace("block_size = 4", "block_size = 9")
    edited = parse_spec(text, source="edited.toml").with_options(store=spec.options.store, workers=0)
    summary = run(edited)
    assert (summary.computed, summary.skipped) == (15, 15)  # only the new seed
    ds = xr.open_zarr(spec.options.store)  # the consolidated metadata, as readers see it
    assert ds.attrs["grid_text"] == text and ds.attrs["title"] == "second go"
    assert ds.attrs["grid_file"] == "edited.toml"
    assert Store.open(spec.options.store).attrs["grid_text"] == text


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_a_store_of_an_older_sweeper_is_refused(tmp_path):
    spec = spec_for(tmp_path, seeds=1)
    run(spec)
    store = Store.open(spec.options.store)
    del store.group.attrs["fingerprint"]  # as written before the fingerprint's components were stored
    zarr.consolidate_metadata(spec.options.store)
    with pytest.raises(
        StoreError, match=r"was written by an older sweeper .*; use `--overwrite` to replace it"
    ):
        run(spec)


def test_not_a_store(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(StoreError, match=r"not a sweeper store"):
        Store.open(tmp_path / "junk")
    with pytest.raises(StoreError, match=r"no such store"):
        Store.open(tmp_path / "nothing")


def test_unwritable_store_path_fails_before_compute(tmp_path):
    (tmp_path / "file").write_text("")
    spec = spec_for(tmp_path, name="file/inside.zarr")
    with pytest.raises(StoreError, match=r"is a file, not a directory"):
        run(spec)


def test_outputs_selection(tmp_path):
    spec = parse_spec(GRID.format(seeds=1) + 'outputs = ["final"]\n').with_options(
        store=str(tmp_path / "o.zarr")
    )
    run(spec)
    ds = xr.open_zarr(spec.options.store)
    assert "final" in ds and "x" not in ds and "time" not in ds.dims


def test_python_api_returns_the_dataset(tmp_path):
    import sweeper

    ds = sweeper.submit(spec_for(tmp_path, seeds=1), progress=False)
    assert isinstance(ds, xr.Dataset)
    assert int((ds.status == OK).sum()) == 9 and ds.x.dims == ("rate", "x0", "seed", "time")


def test_an_fsspec_url_store_round_trips_and_resumes(tmp_path):
    """A store under a URL (here fsspec's in-memory filesystem, as s3:// would be) works like a path."""
    local = spec_for(tmp_path, seeds=2, name="local.zarr")
    run(local)
    url = f"memory://sweeper-tests/{tmp_path.name}/remote.zarr"
    remote = spec_for(tmp_path, seeds=1).with_options(store=url)
    assert run(remote).computed == 15
    grown = spec_for(tmp_path, seeds=2).with_options(store=url)
    summary = run(grown)
    assert (summary.computed, summary.skipped) == (15, 15)  # only the new seed
    assert run(grown).computed == 0
    ours, theirs = xr.open_zarr(url).load(), xr.open_zarr(local.options.store).load()
    for name in ("x", "modes", "final", "status", "message"):
        np.testing.assert_array_equal(ours[name].values, theirs[name].values)
    with pytest.raises(StoreError, match=r"holds results of another grid"):
        run(parse_spec(GRID.format(seeds=2).replace("noise = 0.1", "noise = 0.2")).with_options(store=url))


def test_a_grid_with_no_swept_axis_keeps_its_seed_coordinate(tmp_path):
    """Only `seed` is a grid dim: the `seed` coordinate must not be mistaken for an output."""
    spec = parse_spec("kernel = 'relaxation'\nseeds = [3, 7]\n[params]\nn_times = 3\n[run]\nworkers = 0\n")
    spec = spec.with_options(store=str(tmp_path / "seeds.zarr"))
    assert run(spec).ok == 2
    ds = xr.open_zarr(spec.options.store)
    assert ds.seed.values.tolist() == [3, 7] and ds.x.dims == ("seed", "time")
    assert (ds.status == OK).all()
