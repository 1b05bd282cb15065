"""What a gallery figure is, and how one is made: grids -> stores -> numbers -> PNG."""

from __future__ import annotations

import importlib
import json
import pkgutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure as PlotFigure  # noqa: E402

import sweeper  # noqa: E402
from sweeper.api import sweep  # noqa: E402
from sweeper.grid_file import load_spec  # noqa: E402

GRIDS = Path(__file__).resolve().parents[1] / "experiments" / "gallery"
RESULTS = Path("results") / "gallery"

Datasets = Mapping[str, xr.Dataset]  # grid stem -> its store, as sweeper.open gives it


@dataclass(frozen=True)
class Figure:
    """One of the talks' figures.

    Parameters
    ----------
    name
        The command's argument and the PNG's stem (``python -m gallery NAME``).
    title
        One line: what the figure shows and after which talk or paper.
    grids
        Stems of the grid files it runs, in ``experiments/gallery/`` (``--small``: in
        ``experiments/gallery/small/``, same stems).
    analyse
        The numbers the figure is about, from the stores (functions of :mod:`analysis`);
        JSON-serialisable values (floats, lists, dicts of them).
    draw
        The matplotlib figure, from the stores and those numbers.
    """

    name: str
    title: str
    grids: tuple[str, ...]
    analyse: Callable[[Datasets], dict[str, Any]]
    draw: Callable[[Datasets, Mapping[str, Any]], PlotFigure]
    small_note: str = field(default="")  # what --small reduces, shown on the small figure


@dataclass(frozen=True)
class Made:
    """What :func:`make` wrote and measured."""

    png: Path
    numbers: dict[str, Any]
    seconds: dict[str, float]  # grid stem -> wall time of the submission that last computed in it


def grid_path(stem: str, small: bool = False) -> Path:
    return (GRIDS / "small" if small else GRIDS) / f"{stem}.toml"


def figures() -> dict[str, Figure]:
    """Every figure of the gallery: the ``FIGURE`` of each module in :mod:`gallery.figures`."""
    package = importlib.import_module("gallery.figures")  # the package, not gallery.figures()
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        figure = getattr(module, "FIGURE", None)
        if isinstance(figure, Figure):
            found[figure.name] = figure
    return dict(sorted(found.items()))


def make(
    figure: Figure,
    small: bool = False,
    results: str | Path = RESULTS,
    out: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Made:
    """Run the figure's grids (only what their stores lack), analyse, draw, write the PNG.

    The stores go to ``results/`` (``results/small/`` for ``small``) under their grid's name;
    the PNG and a JSON of the numbers to ``out`` (default: the results folder).
    """
    results = Path(results) / "small" if small else Path(results)
    out = Path(out) if out is not None else results
    out.mkdir(parents=True, exist_ok=True)
    record = out / f"{figure.name}.json"
    before = json.loads(record.read_text()).get("seconds", {}) if record.exists() else {}
    datasets, seconds = {}, {}
    for stem in figure.grids:
        spec = load_spec(grid_path(stem, small))
        start = time.perf_counter()
        spec, summary = sweep(spec, store=results / f"{spec.name}.zarr", workers=workers, progress=progress)
        seconds[stem] = time.perf_counter() - start
        if summary.computed == 0 and stem in before:  # a redraw: keep the run's own time
            seconds[stem] = before[stem]
        datasets[stem] = sweeper.open(spec.options.store)
    numbers = figure.analyse(datasets)
    plot = figure.draw(datasets, numbers)
    if small and figure.small_note:
        plot.text(0.995, 0.005, f"--small: {figure.small_note}", ha="right", va="bottom", fontsize=7)
    png = out / f"{figure.name}.png"
    plot.savefig(png, dpi=110)
    record.write_text(json.dumps({"numbers": numbers, "seconds": seconds}, indent=1))
    return Made(png, numbers, seconds)
