"""experiments/notebooks/quickstart.ipynb runs headless (nbclient) on real stores made here.

The quick-start store is experiments/quickstart.toml itself; the ridge theory/simulation pair
is the reduced one of tests/sweeper/test_compare.py, under the shipped grids' store names.
"""

import os
from pathlib import Path

import pytest

from sweeper import api
from sweeper.grid_file import load_spec, parse_spec
from tests.sweeper.test_compare import DMFT, RIDGE, SGD

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "experiments" / "notebooks" / "quickstart.ipynb"


def make_stores(results: Path) -> None:
    spec = load_spec(ROOT / "experiments" / "quickstart.toml")
    api.sweep(spec.with_options(store=str(results / "quickstart.zarr"), workers=0), progress=False)
    for name, kind in (("dmft_ridge", DMFT), ("sgd_ridge_vs_dmft", SGD)):
        spec = parse_spec(RIDGE.format(name=name, lr=0.1, **kind))
        api.sweep(spec.with_options(store=str(results / f"{name}.zarr")), progress=False)


@pytest.mark.slow  # ~15 s with warm numba caches (a kernel start-up, three small sweeps); more when cold
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    make_stores(tmp_path)
    monkeypatch.setenv("SWEEPER_NOTEBOOK_RESULTS", str(tmp_path))
    # the kernel (another process, started in tmp_path) imports this checkout, as the test does
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute(
        cwd=str(tmp_path)
    )  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "9 of 9 points ok" in text
    assert "m " in text and "sigma at" in text  # the comparison's summary
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 3
    assert (tmp_path / "quickstart_risk.nc").stat().st_size > 0
    assert "lr = [0.2, 0.35, 0.5, 1.0]: 12 of 12 points ok" in text  # the grown axis, computed
    assert "kept bit for bit: True" in text
