"""Shipped theory/simulation grids pair point by point.

A pair is two grid files in experiments/ whose stores a notebook compares with
``xr.concat([theory, simulation], dim="kernel")``. They must share the swept
dims with the same coordinates (cases included), the seeds, the kernel's own
coordinates (the time grid) and the value of every parameter both kernels take.
Nothing runs: the stores are laid out from the templates (fill values only).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sweeper.spec import load_spec
from sweeper.store import Store, make_template

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"

# (theory, simulation, variables compared)
PAIRS = [
    ("phase_retrieval_dmft", "phase_retrieval_sgd", ("m", "Q", "train_loss", "train_error", "test_error")),
    ("dmft_mixture", "sgd_mixture_fdt", ("m", "Q", "train_loss", "train_error", "test_error", "C", "R")),
]


def active_params(spec) -> dict:
    """Every parameter value of the first point, as the active kernel mode sees it."""
    params = spec.base_params()
    params = getattr(params, "active", params)  # `sgd` validates through its active mode
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}


def swept_names(spec) -> set[str]:
    return {a.name for a in spec.axes} | (set(spec.cases[0]) if spec.cases else set())


@pytest.mark.parametrize(("theory", "simulation", "variables"), PAIRS, ids=lambda p: str(p))
def test_pair_shares_parameters_dims_and_coordinates(theory, simulation, variables, tmp_path):
    specs = [load_spec(EXPERIMENTS / f"{name}.toml") for name in (theory, simulation)]
    a, b = (active_params(s) for s in specs)
    differ = {k: (a[k], b[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]}
    assert not differ, f"parameters both kernels take differ (theory, simulation): {differ}"
    assert swept_names(specs[0]) == swept_names(specs[1])
    datasets = []
    for spec in specs:
        template = make_template(spec)
        Store.create(tmp_path / f"{spec.name}.zarr", template)
        datasets.append(xr.open_zarr(tmp_path / f"{spec.name}.zarr")[list(variables)])
    joint = xr.concat(datasets, dim="kernel", join="exact")  # raises unless every coordinate agrees
    assert joint.sizes["kernel"] == 2
    for name in set(datasets[0].coords) | set(datasets[1].coords):
        np.testing.assert_array_equal(datasets[0][name].values, datasets[1][name].values, err_msg=name)
