"""The shipped grids validate, and the README's quick start runs as a user would run it."""

import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from sweeper.grid_file import load_spec

ROOT = Path(__file__).resolve().parents[2]
GRIDS = sorted((ROOT / "experiments").glob("*.toml"))


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: p.name)
def test_shipped_grid_validates(path):
    spec = load_spec(path)
    assert spec.n_points >= 1
    assert spec.options.store == f"results/{spec.name}.zarr"


def test_quickstart_through_the_real_cli(tmp_path):
    store = tmp_path / "quickstart.zarr"
    cmd = [
        sys.executable,
        "-m",
        "sweeper.cli",
        "submit",
        str(ROOT / "experiments/quickstart.toml"),
        "--store",
        str(store),
    ]  # as the README runs it: no workers set (a pilot, then this process or a private Ray)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{store}: computed 9 points (ok 9, failed 0)" in done.stdout
    assert "9/9" in done.stderr  # the progress bar
    ds = xr.open_zarr(store)
    assert {"lr", "seed", "time"} <= set(ds.dims)
    for name, var in ds.data_vars.items():
        assert var.attrs.get("long_name"), name
    assert ds.attrs["kernel"] == "ode" and "grid_text" in ds.attrs and "git_commit" in ds.attrs
    # The plateau: as lr -> 0 it sits at 0.011611 (Saad & Solla); at lr = 0.2 it is a little higher.
    plateau = float(ds.risk.sel(lr=0.2, time=200.0, method="nearest").mean("seed"))
    assert 0.011611 < plateau < 0.0135
