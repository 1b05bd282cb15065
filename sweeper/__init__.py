"""sweeper: distributed sweeps of learning-dynamics kernels on Ray, stored in zarr.

>>> import sweeper
>>> ds = sweeper.submit("experiments/quickstart.toml")   # returns the xarray Dataset
>>> ds = sweeper.open("results/quickstart.zarr")          # a store, ready for analysis
"""

from sweeper.api import submit
from sweeper.comparison import compare
from sweeper.dataset import open
from sweeper.errors import SpecError, StoreError, SweeperError
from sweeper.grid_file import load_spec, parse_spec
from sweeper.spec import GridSpec
from sweeper.thresholds import thresholds

__all__ = [
    "GridSpec",
    "SpecError",
    "StoreError",
    "SweeperError",
    "compare",
    "load_spec",
    "open",
    "parse_spec",
    "submit",
    "thresholds",
]
