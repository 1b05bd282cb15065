"""Adaptive refinement on a kernel with an analytic boundary (tests/sweeper/boundary.py).

1-D: success where x < 1; 2-D: inside the unit circle; with seeds, success with
probability Phi(-(x^2 - 1) / width), one half at x = 1. Everything runs in this
process (``workers = 0``): the decisions do not depend on the executor.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

import sweeper
from kernels import registry
from sweeper import api, scheduler
from sweeper.blocks import NOT_NEEDED, OK, PENDING
from sweeper.errors import SpecError
from sweeper.executors import InProcessExecutor
from sweeper.grid_file import parse_spec
from sweeper.refine_options import finest_values
from sweeper.refinement import NEED, SKIP, WAIT, Geometry, decide
from tests.sweeper.boundary import Boundary

LINE = """
kernel = "boundary"
seeds = {seeds}
[params]
width = {width}
[sweep]
x = {{linspace = [0.0, 2.0, 9]}}
[refine]
axes = ["x"]
levels = 6
output = "margin"
below = 0.0
{extra}
[run]
store = "{store}"
workers = 0
"""

CIRCLE = """
kernel = "boundary"
[sweep]
x = {{linspace = [-1.5, 1.5, {n}]}}
y = {{linspace = [-1.5, 1.5, {n}]}}
[refine]
axes = ["x", "y"]
levels = {levels}
output = "trace"
reduce = "last"
below = 0.0
[run]
store = "{store}"
workers = 0
"""


@pytest.fixture(autouse=True)
def boundary_kernel(monkeypatch):
    monkeypatch.setitem(registry._registered, Boundary.name, Boundary)


def line(tmp_path, name="line.zarr", seeds=1, width=0.0, extra=""):
    return parse_spec(LINE.format(store=tmp_path / name, seeds=seeds, width=width, extra=extra))


def run(spec):
    return api.sweep(spec, progress=False)[1]


def test_the_store_is_laid_out_on_the_finest_grid():
    values = finest_values((0.0, 2.0), 3, log=False)
    assert values == (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
    logs = finest_values((1e-3, 1e-1), 1, log=True)
    assert logs[0] == 1e-3 and logs[-1] == 1e-1 and logs[1] == pytest.approx(1e-2, rel=1e-12)
    spec = parse_spec(LINE.format(store="s.zarr", seeds=1, width=0.0, extra=""))
    assert spec.shape == (8 * 64 + 1, 1)
    assert spec.axes[0].values[::64] == tuple(np.linspace(0.0, 2.0, 9))  # coarse values kept exactly


def test_a_1d_threshold_is_found_to_the_finest_spacing_with_coarse_plus_one_point_a_level(tmp_path):
    spec = line(tmp_path)
    summary = run(spec)
    ds = sweeper.open(spec.options.store)
    status = ds.status.values[:, 0]
    # one crossing: the 9 coarse points, then one midpoint of the one cell refined at each of 6 levels
    assert summary.computed == 9 + 6 and (status == OK).sum() == 15
    assert (status == NOT_NEEDED).sum() == 513 - 15 and not (status == PENDING).any()
    found = sweeper.thresholds(ds).isel(crossing=0)
    h = 2.0 / 512  # the finest spacing
    assert float(found.upper - found.lower) == pytest.approx(h)
    assert float(found.lower) < 1.0 <= float(found.upper)  # x = 1 itself fails: margin 0 is not below 0
    assert int(found.crossings) == 1
    assert "not needed 498 (refinement)" in api.describe_status(spec.options.store)
    assert ds.status.attrs["flag_meanings"] == "pending ok failed not_needed"


def test_a_2d_boundary_is_found_with_a_known_bound_on_the_points(tmp_path):
    spec = parse_spec(CIRCLE.format(store=tmp_path / "circle.zarr", n=7, levels=3))
    summary = run(spec)
    ds = xr.open_zarr(spec.options.store)
    status = ds.status.values[..., 0]
    x, y = ds.x.values, ds.y.values
    # Every finest cell the circle crosses has its four corners computed: sample the circle.
    h = 3.0 / 48
    angle = np.linspace(0, 2 * np.pi, 2000, endpoint=False) + 1e-4  # off the grid's points
    i = np.minimum(((np.cos(angle) + 1.5) // h).astype(int), 47)
    j = np.minimum(((np.sin(angle) + 1.5) // h).astype(int), 47)
    for di, dj in ((0, 0), (0, 1), (1, 0), (1, 1)):
        assert (status[i + di, j + dj] == OK).all()
    # Computed points agree with the circle, and no pending point is left.
    inside = (x[:, None] ** 2 + y[None, :] ** 2 - 1) < 0
    margin = ds.margin.values[..., 0]
    assert ((margin < 0) == inside)[status == OK].all() and not (status == PENDING).any()
    # A bound: a curve of length 2 pi meets at most 4 (2 pi / h_m + 1) cells of side h_m, each
    # refined cell adds at most 3^2 - 2^2 = 5 points; levels m = 0..2, h_m = 0.5 / 2^m.
    bound = 49 + sum(5 * 4 * (2 * np.pi / (0.5 / 2**m) + 1) for m in range(3))
    assert summary.computed <= min(bound, 0.25 * 49**2)
    # Along x, each row y the refinement reached crosses the circle twice: its left and right sides.
    found = sweeper.thresholds(sweeper.open(spec.options.store), axis="x")
    rows = np.isfinite(found.lower.isel(crossing=0).values)
    assert (found.crossings.values[rows] == 2).all()
    right = found.isel(crossing=1).sel(y=y[rows])
    assert ((right.lower < np.sqrt(1 - right.y**2)) & (np.sqrt(1 - right.y**2) <= right.upper + 1e-12)).all()
    found = found.isel(crossing=0)
    left = -np.sqrt(1 - y[rows] ** 2)
    assert rows.sum() > 20 and (found.upper.values[rows] - found.lower.values[rows] <= h + 1e-12).all()
    assert (
        (found.lower.values[rows] <= left + 1e-12) & (left <= found.upper.values[rows])
    ).all()  # margin 0 fails


def test_resumed_after_an_interruption_the_store_is_bit_identical(tmp_path):
    whole = parse_spec(CIRCLE.format(store=tmp_path / "whole.zarr", n=5, levels=3))
    run(whole)
    part = parse_spec(CIRCLE.format(store=tmp_path / "part.zarr", n=5, levels=3))
    spec, template = api.prepare(part)
    store = api.open_store(spec, template)
    executor = InProcessExecutor(spec.kernel_class(), spec.fixed, spec.options.outputs)
    seen = []

    def stop_mid_level(result):  # a driver killed between two writes, in the middle of level 1
        seen.append(result)
        if len(seen) == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scheduler.sweep(spec, store, executor, on_result=stop_mid_level)
    before = xr.open_zarr(spec.options.store)
    done_before = int((before.status == OK).sum())
    assert 0 < done_before and (before.status == PENDING).sum() > 0
    summary = run(part)
    a, b = xr.open_zarr(whole.options.store), xr.open_zarr(part.options.store)
    for name in ("margin", "trace", "status", "message"):
        xr.testing.assert_identical(a[name].load(), b[name].load())
    assert summary.skipped == done_before
    assert summary.computed == int((a.status == OK).sum()) - done_before  # only what was missing
    assert run(part).computed == 0


def test_sequential_seeds_more_near_the_threshold_and_a_band_that_holds_it(tmp_path):
    spec = line(tmp_path, seeds=64, width=0.2, extra="min_seeds = 4")
    run(spec)
    ds = sweeper.open(spec.options.store)
    seeds = (ds.status == OK).sum("seed")
    far = abs(ds.x - 1.0) >= 0.5
    assert (seeds.where(far & (seeds > 0)).dropna("x") == 4).all()  # certain after the first round
    assert int(seeds.max()) == 64  # all seeds where the fraction stays near one half
    found = sweeper.thresholds(ds).isel(crossing=0)
    # Phi(-(x^2 - 1)/0.2) has slope 0.4 * 10 = 4 at x = 1; 64 seeds give the fraction an error
    # of 0.0625, so x an error of about 0.016: 0.05 is three of them.
    assert abs(float(found.estimate) - 1.0) < 0.05
    assert float(found.band_lower) <= 1.0 <= float(found.band_upper)
    assert float(found.band_lower) <= float(found.lower) <= float(found.upper) <= float(found.band_upper)


def test_decisions_wait_for_corners_and_only_the_undecided_wait():
    """Level by level: only coarse points are needed before any result; once the coarse
    points are in, one cell's midpoint is needed and the others' are not."""
    spec = parse_spec(
        LINE.format(store="unused.zarr", seeds=1, width=0.0, extra="").replace("levels = 6", "levels = 2")
    )
    geometry = Geometry.of(spec.dims, spec.shape, spec.refine)
    x = np.asarray(spec.axes[0].values)  # 33 values, coarse every 4th
    status = np.zeros(spec.shape, dtype=np.int8)
    margin = np.full(spec.shape, np.nan)
    code = decide(status, margin, geometry, spec.refine).code[:, 0]
    assert (code[::4] == NEED).all() and (np.delete(code, np.s_[::4]) == WAIT).all()
    status[::4] = OK
    margin[::4, 0] = x[::4] ** 2 - 1
    code = decide(status, margin, geometry, spec.refine).code[:, 0]
    crossing = 16  # the cell [0.75, 1.0] at indices 12..16 is the only one with corners that disagree
    assert code[14] == NEED and (code[13] == WAIT) and code[15] == WAIT
    assert (np.delete(code, np.r_[0:33:4, 13, 14, 15]) == SKIP).all() and crossing == 16


@pytest.mark.parametrize(
    ("refine", "message"),
    [
        ('axes = ["z"]\nlevels = 2\noutput = "margin"\nbelow = 0', "refine.axes: 'z' is not a [sweep] axis"),
        ('axes = ["x"]\noutput = "margin"\nbelow = 0', "refine.levels: missing"),
        (
            'axes = ["x"]\nlevels = 2\noutput = "trace"\nbelow = 0',
            "refine.reduce: missing: `trace` has dims (step)",
        ),
        ('axes = ["x"]\nlevels = 2\noutput = "margin"', "refine: give exactly one of `below`, `above`"),
        (
            'axes = ["x"]\nlevels = 2\noutput = "failed"\nbelow = 0',
            'refine.below: not with `output = "failed"`',
        ),
        (
            'axes = ["x"]\nlevels = 2\noutput = "margin"\nbelow = 0\nmin_seeds = 9',
            "refine.min_seeds: expected an integer from 1 to the 1 seeds",
        ),
    ],
)
def test_bad_refine_tables_are_one_line_naming_the_key(refine, message):
    text = 'kernel = "boundary"\n[sweep]\nx = [0.0, 1.0]\n[refine]\n' + refine + "\n"
    with pytest.raises(SpecError, match=r"^<string>: ") as info:
        parse_spec(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_dry_run_says_what_is_refined(tmp_path):
    spec, template = api.prepare(line(tmp_path))
    text = api.describe_plan(spec, template)
    assert (
        "refine    x 9 -> 513 over 6 levels, where the fraction of seeds with margin < 0 crosses 0.5" in text
    )
    assert math.isclose(spec.axes[0].values[-1], 2.0)


def test_where_the_output_changes_every_computed_neighbour_pair_differs_little_or_is_finest(tmp_path):
    text = LINE.format(store=tmp_path / "change.zarr", seeds=1, width=0.0, extra="")
    spec = parse_spec(text.replace("below = 0.0", "tolerance = 0.1").replace("levels = 6", "levels = 4"))
    run(spec)
    ds = xr.open_zarr(spec.options.store)
    done = ds.status.values[:, 0] == OK
    x, margin = ds.x.values[done], ds.margin.values[done, 0]
    finest = 2.0 / 128
    wide = np.diff(x) > finest * 1.5
    assert (np.abs(np.diff(margin))[wide] <= 0.1).all()  # a wider gap: its cell's corners agreed
    gaps = np.diff(x)  # refined more where x^2 - 1 is steeper: its gaps shrink as x grows
    assert gaps[x[1:] > 1.5].max() < gaps[x[1:] < 0.5].min() and done.sum() < 129 / 2


def test_where_points_start_failing_is_located(tmp_path):
    text = LINE.format(store=tmp_path / "failing.zarr", seeds=1, width=0.0, extra="")
    text = text.replace('output = "margin"\nbelow = 0.0', 'output = "failed"').replace(
        "width = 0.0", "fail_above = 1.3"
    )
    spec = parse_spec(text)
    run(spec)
    found = sweeper.thresholds(sweeper.open(spec.options.store)).isel(crossing=0)
    assert float(found.lower) <= 1.3 < float(found.upper) and float(
        found.upper - found.lower
    ) == pytest.approx(2 / 512)


def test_the_wilson_interval_and_the_seed_rounds():
    from sweeper.refinement import seed_rounds, wilson

    lo, hi = wilson(np.array([0, 4]), np.array([4, 4]), 1.96)
    assert lo[0] == 0 and hi[0] == pytest.approx(1.96**2 / (4 + 1.96**2))  # k = 0: [0, z^2/(n+z^2)]
    assert lo[1] == pytest.approx(4 / (4 + 1.96**2)) and hi[1] == pytest.approx(1.0)  # 0.51 > 1/2: settled
    assert (
        seed_rounds(32, 4) == [4, 8, 16, 32]
        and seed_rounds(10, 4) == [4, 8, 10]
        and seed_rounds(5, None) == [5]
    )


def test_the_progress_bar_grows_as_refinement_plans_more(tmp_path, capsys):
    spec = line(tmp_path, name="bar.zarr")
    api.sweep(spec, progress=True)
    err = capsys.readouterr().err
    assert "/9 pt" in err and "15/15 pt" in err  # the coarse plan first, then one point a level


def test_an_axis_refined_in_log_halves_the_ratio_of_its_values(tmp_path):
    text = LINE.format(store=tmp_path / "log.zarr", seeds=1, width=0.0, extra='log = ["x"]')
    text = text.replace("{linspace = [0.0, 2.0, 9]}", "[0.25, 0.5, 1.5, 4.0]").replace(
        "levels = 6", "levels = 4"
    )
    spec = parse_spec(text)
    x = np.asarray(spec.axes[0].values)
    assert x[::16].tolist() == [0.25, 0.5, 1.5, 4.0]
    np.testing.assert_allclose(x[1:17] / x[:16], 2 ** (1 / 16), rtol=1e-12)  # geometric between 0.25 and 0.5
    run(spec)
    found = sweeper.thresholds(sweeper.open(spec.options.store)).isel(crossing=0)
    assert float(found.lower) < 1.0 <= float(found.upper)
    assert float(found.upper) / float(found.lower) == pytest.approx(3 ** (1 / 16))  # the finest ratio there
