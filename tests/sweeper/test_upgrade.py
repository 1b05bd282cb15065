"""A store made before its kernel gained a parameter resumes, at the same kernel version.

The version rule (kernels/base.py, item 8) lets a kernel gain a parameter without a version
bump only if the parameter's default gives the old numbers: `ode` 3 gained `i4_term` and
`noise_term`, `meanfield` 1 gained `integrator`, `rtol`, `atol`, `max_steps`. A stored
record without the parameter then means the parameter at its default. Simulated here by
deleting a parameter from a store's recorded fingerprint, as an older kernel would have left it.
`meanfield` 2 then made ``integrator = "adaptive"`` the default (new numbers): a `meanfield` 1
store, with or without the parameter, is refused as another kernel version.
"""

import json

import pytest
import zarr

from sweeper import api
from sweeper.errors import StoreError
from sweeper.fingerprint import fingerprint
from sweeper.grid_file import parse_spec
from tests.sweeper.test_growth import grid, run


def forget(spec, name: str, version: str | None = None) -> None:
    """Make the store look written by a kernel without parameter ``name`` (and at ``version``)."""
    group = zarr.open_group(spec.options.store, mode="r+", zarr_format=3)
    components = json.loads(group.attrs["fingerprint"])
    del components["params"][name]
    if version is not None:
        components["kernel_version"] = version
    group.attrs["fingerprint"] = json.dumps(components, sort_keys=True)
    group.attrs["grid_fingerprint"] = fingerprint(components)
    zarr.consolidate_metadata(spec.options.store)


def test_a_parameter_gained_at_its_default_resumes(tmp_path):
    spec = grid(tmp_path)
    first = run(spec)
    forget(spec, "delay")  # default 0.0, left at it by the grid
    again = run(spec)
    assert again.computed == 0 and again.skipped == first.computed == 12


def test_a_parameter_gained_at_its_default_still_grows(tmp_path):
    run(grid(tmp_path))
    forget(grid(tmp_path), "delay")
    grown = run(grid(tmp_path, rate="[-1, 0.5, 1, 2]"))
    assert grown.computed == 4  # the new rate value: 2 x0 x 2 seeds


def test_a_parameter_gained_at_another_value_is_refused(tmp_path):
    spec = grid(tmp_path)
    run(spec)
    forget(spec, "n_modes")  # the grid below sets it to 3, not the default 2
    text = spec.text.replace("t_max = 4.0", "t_max = 4.0\nn_modes = 3")
    other = parse_spec(text).with_options(store=spec.options.store)
    with pytest.raises(StoreError, match=r"params\.n_modes \(absent\) -> 3"):
        run(other)


def test_another_kernel_version_is_refused_even_at_the_default(tmp_path):
    spec = grid(tmp_path)
    run(spec)
    forget(spec, "delay", version="0")
    with pytest.raises(StoreError, match="version 0 -> "):
        run(spec)


MEANFIELD = """kernel = "meanfield"
name = "meanfield_upgrade"
seeds = 1
[params]
d = 10
M = 1
t_max = 1.0
n_times = 3
time_unit = "flow"
histograms = false
[sweep]
K = [20, 40]
[run]
workers = 0
"""


def test_a_meanfield_1_store_from_before_integrator_is_refused_in_one_line(tmp_path):
    """Its numbers are Euler's; the grid, leaving `integrator` at its default, now asks for
    Dormand-Prince: the refusal names the version first, on one line, with the way out."""
    spec = parse_spec(MEANFIELD).with_options(store=str(tmp_path / "mf.zarr"))
    api.sweep(spec, progress=False)
    for name in ("integrator", "rtol", "atol", "max_steps"):
        forget(spec, name, version="1")
    with pytest.raises(StoreError) as info:
        api.sweep(spec, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"{spec.options.store} holds results of another grid (kernel 'meanfield' version 1 -> 2; "
    )
    assert "params.integrator (absent) -> 'adaptive'" in message
    assert message.endswith("use `--overwrite` to replace it, or `--store` to write elsewhere.")
