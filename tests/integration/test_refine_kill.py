"""A refined grid's driver SIGKILLed mid-level, then resubmitted; and a refined grid on Ray.

The killed driver is a real `sweeper submit` in a subprocess (in this process's way of
running, `--workers 0`, as tests/integration/test_growth_kill.py does): it kills itself
after a chosen number of block writes. The next submit takes the same decisions from the
stored results, computes only what is missing, and the store ends equal bit for bit to an
undisturbed run's. On Ray (two workers, results in completion order) the store is the same
bit for bit too: the decisions do not depend on the order results come in.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from kernels import registry
from sweeper import api
from sweeper.blocks import OK, PENDING
from sweeper.grid_file import parse_spec
from tests.sweeper import boundary

ROOT = Path(__file__).resolve().parents[2]
GRID = """
kernel = "boundary"
seeds = 16
[params]
width = 0.2
[sweep]
x = {{linspace = [0.0, 2.0, 9]}}
[refine]
axes = ["x"]
levels = 5
output = "margin"
below = 0.0
min_seeds = 2
[run]
store = "{store}"
"""
LAUNCH = """
import os, signal
from tests.sweeper import boundary
from kernels.registry import register
register(boundary.Boundary)
from sweeper.store import Store
put, written = Store.put, []
async def counting_put(self, *args):
    await put(self, *args)
    written.append(1)
    if len(written) == int(os.environ["KILL_AFTER"]):
        os.kill(os.getpid(), signal.SIGKILL)
Store.put = counting_put
from sweeper.cli import main
main()
"""
COMPARED = ("margin", "trace", "status", "message")


@pytest.fixture(autouse=True)
def boundary_kernel(monkeypatch):
    monkeypatch.setitem(registry._registered, boundary.Boundary.name, boundary.Boundary)


def undisturbed(tmp_path: Path) -> xr.Dataset:
    spec = parse_spec(GRID.format(store=tmp_path / "whole.zarr")).with_options(workers=0)
    api.sweep(spec, progress=False)
    return xr.open_zarr(spec.options.store).load()


@pytest.mark.slow  # two driver processes (imports, ~3 s each on 2 busy cores)
def test_a_refined_driver_killed_mid_level_resumes_bit_identical(tmp_path):
    reference = undisturbed(tmp_path)
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(store=tmp_path / "part.zarr"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KILL_AFTER": "12"}
    command = [sys.executable, "-c", LAUNCH, "submit", str(grid), "--workers", "0", "--quiet"]
    driver = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert driver.returncode == -signal.SIGKILL, driver.stderr
    killed = xr.open_zarr(tmp_path / "part.zarr").load()
    done = int((killed.status == OK).sum())
    assert 0 < done < int((reference.status == OK).sum()) and (killed.status == PENDING).any()
    _, summary = api.sweep(str(grid), workers=0, progress=False)
    assert summary.skipped == done
    assert summary.computed == int((reference.status == OK).sum()) - done  # nothing computed twice
    ds = xr.open_zarr(tmp_path / "part.zarr").load()
    for name in COMPARED:
        np.testing.assert_array_equal(ds[name].values, reference[name].values, err_msg=name)


@pytest.mark.slow  # a Ray pool
def test_a_refined_grid_on_ray_equals_the_one_in_this_process(local_ray, tmp_path):
    local_ray.cloudpickle.register_pickle_by_value(boundary)
    reference = undisturbed(tmp_path)
    spec = parse_spec(GRID.format(store=tmp_path / "ray.zarr")).with_options(workers=2)
    _, summary = api.sweep(spec, progress=False)
    assert summary.idle_fraction is not None and 0 <= summary.idle_fraction < 1
    ds = xr.open_zarr(spec.options.store).load()
    for name in COMPARED:
        np.testing.assert_array_equal(ds[name].values, reference[name].values, err_msg=name)
