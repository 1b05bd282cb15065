"""sweeper: distributed sweeps of learning-dynamics kernels on Ray, stored in zarr.

>>> import sweeper
>>> ds = sweeper.submit("experiments/quickstart.toml")   # returns the xarray Dataset
"""

from sweeper.api import submit
from sweeper.errors import SpecError, StoreError, SweeperError
from sweeper.spec import GridSpec, load_spec, parse_spec

__all__ = ["GridSpec", "SpecError", "StoreError", "SweeperError", "load_spec", "parse_spec", "submit"]
