"""A real local Ray: end to end through the CLI, 1 vs 2 workers, dead actors."""

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from sweeper import api
from sweeper.blocks import FAILED, OK
from sweeper.cli import main
from sweeper.grid_file import parse_spec

GRID = """
kernel = "relaxation"
name = "ray_relax"
seeds = 4
[params]
t_max = 4.0
n_times = 9
noise = 0.3
[sweep]
rate = {{linspace = [0.1, 2, 6]}}
x0 = [0.5, 1.0]
[run]
block_size = 3
store = "{store}"
"""


def test_cli_end_to_end_on_local_ray(local_ray, grid_file, tmp_path):
    store = tmp_path / "cli.zarr"
    path = grid_file(GRID.format(store=store))
    result = CliRunner().invoke(main, ["submit", path, "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert f"{store}: computed 48 points (ok 48, failed 0)" in result.output
    ds = xr.open_zarr(store)
    assert (ds.status == OK).all()
    assert ds.x.dims == ("rate", "x0", "seed", "time")
    status = CliRunner().invoke(main, ["status", str(store)])
    assert "ok 48, failed 0, pending 0" in status.output and "complete" in status.output
    again = CliRunner().invoke(main, ["submit", path])
    assert "computed 0 points" in again.output and "48 already done" in again.output
    shown = CliRunner().invoke(main, ["show", str(store)])
    assert shown.exit_code == 0 and "rate" in shown.output


@pytest.mark.slow  # two Ray pools (test_cli_end_to_end_on_local_ray keeps Ray in the quick loop)
def test_one_and_two_workers_are_bit_identical(local_ray, tmp_path):
    spec = parse_spec(GRID.format(store=tmp_path / "unused.zarr"))
    results = []
    for workers in (1, 2):
        one = spec.with_options(store=str(tmp_path / f"w{workers}.zarr"), workers=workers)
        api.sweep(one, progress=False)
        results.append(xr.open_zarr(one.options.store).load())
    inproc = spec.with_options(store=str(tmp_path / "w0.zarr"), workers=0)
    api.sweep(inproc, progress=False)
    results.append(xr.open_zarr(inproc.options.store).load())
    for other in results[1:]:
        for name in ("x", "modes", "final", "status"):
            np.testing.assert_array_equal(results[0][name].values, other[name].values)


@pytest.mark.slow
def test_dead_actor_block_is_resubmitted_then_given_up(local_ray, tmp_path):
    """A worker dying once is retried and succeeds; a point that always kills it is marked failed."""
    text = GRID.format(store=tmp_path / "crash.zarr").replace("[run]", "[run]\nmax_attempts = 2")
    once = parse_spec(text.replace("noise = 0.3", f'noise = 0.3\ncrash = "once"\ncrash_dir = "{tmp_path}"'))
    summary = api.sweep(once.with_options(workers=2), progress=False)[1]
    assert summary.failed == 0 and summary.ok == 48
    # Poison points (crash = "always" on the case x0 = 0.5 only) share blocks with good ones.
    poison = text.replace("crash.zarr", "poison.zarr").replace("x0 = [0.5, 1.0]\n", "")
    poison = poison.replace("seeds = 4", "seeds = 2").replace("{linspace = [0.1, 2, 6]}", "[0.5, 1.0]")
    poison += '[[cases]]\nx0 = 0.5\ncrash = "always"\n[[cases]]\nx0 = 1.0\ncrash = "never"\n'
    spec = parse_spec(poison).with_options(workers=2, block_size=4)
    summary = api.sweep(spec, progress=False)[1]
    assert (summary.ok, summary.failed) == (4, 4)
    ds = xr.open_zarr(spec.options.store)
    assert (ds.status.sel(case=0) == FAILED).all() and (ds.status.sel(case=1) == OK).all()
    assert "worker died 2 times running this point" in str(ds.message.values[0, 0, 0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "kernel = 'relaxation'\n[sweep]\nrate = {linspace = [0.1, 2.0]}\n",
            "sweep.rate: `linspace` expects [start, stop, num], got [0.1, 2.0].",
        ),
        ("kernel = 'nope'\n", "kernel: Unknown kernel 'nope'."),
        ("kernel = 'relaxation'\n[sweep]\nn_times = [3, 5]\n", "cannot be swept"),
    ],
)
def test_cli_bad_grid_exits_nonzero_and_writes_nothing(grid_file, tmp_path, text, message):
    path = grid_file(text + f"[run]\nstore = '{tmp_path / 'never.zarr'}'\n")
    result = CliRunner().invoke(main, ["submit", path])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and message in result.output
    assert not (tmp_path / "never.zarr").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.toml"]


def test_cli_dry_run_writes_nothing(grid_file, tmp_path):
    store = tmp_path / "dry.zarr"
    result = CliRunner().invoke(main, ["submit", grid_file(GRID.format(store=store)), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "points    48" in result.output and "blocks    24 of up to 2 points" in result.output
    assert not store.exists()


def test_cli_kernels_lists_parameters_and_outputs():
    result = CliRunner().invoke(main, ["kernels"])
    assert result.exit_code == 0
    assert "relaxation (v1)" in result.output and "* n_times = 101" in result.output
    assert "x(time): relaxing quantity [1]" in result.output


@pytest.mark.slow
def test_one_point_spreads_its_parts_over_the_workers(local_ray, tmp_path):
    """A point of 4 parts (sweeper.parts) runs on both workers and stores the numbers of one run."""
    text = f"""
kernel = "replicas"
name = "one_point"
seeds = 1
[params]
replicas = 4
noise = 0.3
n_times = 5
delay = 0.5
trace_dir = "{tmp_path}"
[run]
store = "{tmp_path / "parts.zarr"}"
"""
    spec = parse_spec(text).with_options(workers=2)
    api.sweep(spec, progress=False)
    pids = {line.split()[0] for line in (tmp_path / "trace.log").read_text().splitlines()}
    assert len(pids) == 2  # its parts ran on both workers
    ds = xr.open_zarr(spec.options.store)
    swept, seed = spec.point((0,))
    kernel = spec.kernel_class()()
    whole = kernel.run(kernel.make_params(**spec.fixed, **swept), seed)
    assert int(ds.status.values[0]) == OK
    np.testing.assert_array_equal(ds.x.values[0], whole.outputs["x"])
    assert ds.wall_time.values[0] > 4 * 0.5  # the point's cost: its four parts' seconds
