"""Shared pieces of the fault-injection tests: a slow grid, an undisturbed reference, the checks.

Every fault test runs the same grid, disturbs it, and then holds the store to the
same three guarantees: the final dataset equals an undisturbed run bit for bit,
no point was lost, and no point was written into the store twice.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import xarray as xr

from sweeper import api
from sweeper.blocks import OK
from sweeper.grid_file import parse_spec
from sweeper.spec import GridSpec

# 6 rates x 2 x0 x 4 seeds = 48 points in 12 blocks of 4; each point sleeps `delay` seconds.
GRID = """
kernel = "relaxation"
name = "faults"
seeds = 4
[params]
t_max = 4.0
n_times = 9
noise = 0.3
delay = {delay}
trace_dir = "{trace}"
[sweep]
rate = {{linspace = [0.1, 2, 6]}}
x0 = [0.5, 1.0]
[run]
block_size = 4
store = "{store}"
"""
N_POINTS = 48
COMPARED = ("x", "modes", "final", "status", "message")


def fault_spec(tmp_path: Path, name: str, delay: float = 0.05, text: str = GRID) -> GridSpec:
    trace = tmp_path / f"{name}-trace"
    trace.mkdir(exist_ok=True)
    return parse_spec(text.format(delay=delay, trace=trace, store=tmp_path / f"{name}.zarr"))


def undisturbed(tmp_path: Path, text: str = GRID) -> xr.Dataset:
    """The reference: the same grid, in this process, with nothing going wrong."""
    spec = fault_spec(tmp_path, "reference", delay=0.0, text=text).with_options(workers=0)
    api.sweep(spec, progress=False)
    return xr.open_zarr(spec.options.store).load()


def assert_same_results(store: str | Path, reference: xr.Dataset) -> None:
    ds = xr.open_zarr(store).load()
    assert int((ds.status == OK).sum()) == int((reference.status == OK).sum())
    for name in COMPARED:
        np.testing.assert_array_equal(ds[name].values, reference[name].values, err_msg=name)


def computations(spec: GridSpec) -> Counter:
    """How many times each point (rate, x0, seed) was computed, from the kernel's trace."""
    log = Path(spec.fixed["trace_dir"]) / "trace.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter(tuple(line.split()[1:]) for line in lines)


class WriteCounter:
    """An ``on_result`` hook that counts how often each grid point is written to the store."""

    def __init__(self):
        self.writes: Counter = Counter()
        self.blocks = 0

    def __call__(self, result) -> None:
        self.blocks += 1
        self.writes.update(tuple(int(i) for i in index) for index in result.indices)

    def assert_each_point_written_once(self, n_points: int = N_POINTS) -> None:
        assert len(self.writes) == n_points, f"{n_points - len(self.writes)} points never written"
        assert max(self.writes.values()) == 1, "a point was written twice"
