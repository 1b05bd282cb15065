"""Shipped theory/simulation grids pair point by point.

A pair is two grid files in experiments/ whose stores a notebook compares with
``xr.concat([first, second], dim="kernel")``. They must share the swept dims with
the same coordinates (cases included), the seeds, the kernel's own coordinates
(the time grid) and the value of every parameter both kernels take, except the
ones a pair is about (``differ``). When the second grid fixes a parameter the
first sweeps (``select``: `ode` cannot sweep its shape parameter ``K``), or does not
take at all (`dmft` has no ``d``: it is ``d -> infinity``), the first is compared at
that value. Nothing runs: the stores are laid out from the
templates (fill values only).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sweeper.grid_file import load_spec
from sweeper.store import Store
from sweeper.template import make_template

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"

CURVES = ("m", "Q", "train_loss", "train_error", "test_error")
# (first, second, variables compared, parameters meant to differ, selection of the first)
PAIRS = [
    ("phase_retrieval_dmft", "phase_retrieval_sgd", CURVES, set(), {}),
    ("dmft_mixture", "sgd_mixture_fdt", (*CURVES, "C", "R"), set(), {}),
    ("sgd_ridge_vs_dmft", "dmft_ridge", CURVES, set(), {"d": 2000}),
    ("meanfield_convergence", "meanfield_convergence_reduced", ("risk", "density"), {"method"}, {}),
    ("meanfield_convergence", "meanfield_convergence_ode", ("risk",), set(), {"K": 1000}),
]


def active_params(spec) -> dict:
    """Every parameter value of the first point, defaults included."""
    params = spec.base_params()
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}


def swept_names(spec) -> set[str]:
    return {a.name for a in spec.axes} | (set(spec.cases[0]) if spec.cases else set())


@pytest.mark.parametrize(
    ("first", "second", "variables", "differ", "select"), PAIRS, ids=[f"{p[0]}+{p[1]}" for p in PAIRS]
)
def test_pair_shares_parameters_dims_and_coordinates(first, second, variables, differ, select, tmp_path):
    specs = [load_spec(EXPERIMENTS / f"{name}.toml") for name in (first, second)]
    assert swept_names(specs[0]) - set(select) == swept_names(specs[1])
    a, b = (active_params(s) for s in specs)
    skip = differ | swept_names(specs[0]) | swept_names(specs[1])
    mismatch = {k: (a[k], b[k]) for k in sorted(set(a) & set(b) - skip) if a[k] != b[k]}
    assert not mismatch, f"parameters both kernels take differ ({first}, {second}): {mismatch}"
    for name, value in select.items():
        assert b.get(name, value) == value  # absent: the second kernel has no such parameter
    datasets = []
    for spec in specs:
        Store.create(tmp_path / f"{spec.name}.zarr", make_template(spec))
        datasets.append(xr.open_zarr(tmp_path / f"{spec.name}.zarr")[list(variables)])
    datasets[0] = datasets[0].sel(select, drop=True)
    joint = xr.concat(datasets, dim="kernel", join="exact")  # raises unless every coordinate agrees
    assert joint.sizes["kernel"] == 2
    for name in set(datasets[0].coords) | set(datasets[1].coords):
        np.testing.assert_array_equal(datasets[0][name].values, datasets[1][name].values, err_msg=name)
