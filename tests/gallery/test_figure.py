"""The gallery's mechanics on a tiny figure: grids through the engine, numbers, PNG, resume."""

import json
import time

import pytest
from click.testing import CliRunner

from gallery import Figure, figure, make
from gallery.__main__ import main

GRID = """
kernel = "ode"
name = "tiny"
[params]
K = 1
M = 1
t_max = 1.0
n_times = 3
[sweep]
lr = [0.1, 0.2]
"""


def _analyse(datasets):
    return {"final_risk": datasets["tiny"].risk.isel(time=-1).values.ravel().tolist()}


def _draw(datasets, numbers):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    datasets["tiny"].risk.squeeze(drop=True).plot.line(x="time", hue="lr", ax=ax)
    return fig


TINY = Figure("tiny", "a tiny ODE figure", ("tiny",), _analyse, _draw, small_note="nothing to reduce")


@pytest.fixture
def grids(tmp_path, monkeypatch):
    (tmp_path / "grids" / "small").mkdir(parents=True)
    for folder in (tmp_path / "grids", tmp_path / "grids" / "small"):
        (folder / "tiny.toml").write_text(GRID)
    monkeypatch.setattr(figure, "GRIDS", tmp_path / "grids")
    return tmp_path


def test_make_runs_the_grids_and_writes_png_and_numbers(grids):
    made = make(TINY, small=True, results=grids / "results", progress=False)
    assert made.png == grids / "results" / "small" / "tiny.png"
    assert made.png.stat().st_size > 1000
    assert (grids / "results" / "small" / "tiny.zarr").is_dir()
    risks = made.numbers["final_risk"]
    assert len(risks) == 2 and all(0 < r < 1 for r in risks)
    saved = json.loads((grids / "results" / "small" / "tiny.json").read_text())
    assert saved["numbers"] == made.numbers and set(saved["seconds"]) == {"tiny"}


def test_a_second_make_only_redraws(grids):
    first = make(TINY, results=grids / "results", progress=False)
    start = time.perf_counter()
    again = make(TINY, results=grids / "results", progress=False)
    assert time.perf_counter() - start < 2.0  # a finished store is answered without running a point
    assert again.numbers == first.numbers
    assert again.seconds == first.seconds  # the record keeps the run's time, not the redraw's


def test_cli_names_an_unknown_figure_and_lists_the_known():
    result = CliRunner().invoke(main, ["no_such_figure"])
    assert result.exit_code != 0 and "no figure 'no_such_figure'" in result.output
    listed = CliRunner().invoke(main, ["list"])
    assert listed.exit_code == 0
