"""The progress bar: points done and failed, and an ETA weighted by what the points cost.

A widget in a Jupyter kernel that has ipywidgets, text anywhere else (a terminal, a
notebook without ipywidgets), without the warnings `tqdm.auto` gives there.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from sweeper import costs, scheduler
from sweeper.blocks import FAILED
from sweeper.spec import GridSpec


class ProgressBar:
    """A bar over points: done, failed, and an ETA weighted by what the points cost (:mod:`sweeper.costs`).

    tqdm's own ETA assumes every point costs the same; here the remaining points are
    charged what finished points at their values cost, over the measured throughput.
    """

    REFRESH = 0.5  # seconds between ETA estimates, at least (and ten times what one takes)

    def __init__(self, spec: GridSpec, todo: scheduler.Plan, workers: int | None = None):
        tqdm = progress_class()
        self.failed = 0
        self.remaining = costs.per_axis(todo.mask())
        self.indices: list[np.ndarray] = []
        self.walls: list[np.ndarray] = []
        self.finished: list[np.ndarray] = []
        self.at_most = workers or os.cpu_count() or 1
        self.next_estimate = 0.0
        self.eta = "?"
        self.parts = ""  # ", parts 3/8" while points with parts wait for some
        self.bar = tqdm(
            total=todo.n_todo,
            unit="pt",
            desc=spec.name,
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} pt [{elapsed}{postfix}]",
        )

    def expect(self, indices: np.ndarray) -> None:
        """More points to compute than the plan said (a refined grid): grid indices, (n, ndim)."""
        for axis, counts in enumerate(self.remaining):
            np.add.at(counts, indices[:, axis], 1)
        self.bar.total += len(indices)
        self.bar.refresh()

    def update_block(self, result) -> None:
        self.failed += int((result.status == FAILED).sum())
        for axis, counts in enumerate(self.remaining):
            np.subtract.at(counts, result.indices[:, axis], 1)
        self.indices.append(result.indices)
        self.walls.append(result.wall_time)
        self.finished.append(np.full(len(result.status), result.finished_at))
        now = time.monotonic()
        if now >= self.next_estimate:
            start = time.perf_counter()
            self.eta = format_seconds(self.time_left(time.time()))
            self.next_estimate = now + max(self.REFRESH, 10 * (time.perf_counter() - start))
        self.bar.set_postfix_str(f"ETA {self.eta}, failed {self.failed}{self.parts}", refresh=False)
        self.bar.update(len(result.status))

    def update_parts(self, held: int, total: int) -> None:
        """Parts held of the points still waiting for some (sweeper.parts), beside the points done."""
        self.parts = f", parts {held}/{total}" if total else ""
        self.bar.set_postfix_str(f"ETA {self.eta}, failed {self.failed}{self.parts}")

    def time_left(self, now: float) -> float | None:
        walls = np.concatenate(self.walls)
        cost = costs.remaining_cost(np.concatenate(self.indices), walls, self.remaining)
        rate = costs.throughput(np.concatenate(self.finished), walls, now, at_most=self.at_most)
        return costs.time_left(cost, rate)

    def close(self) -> None:
        self.bar.close()


def progress_class():
    """The tqdm class for where we run: a widget in Jupyter with ipywidgets, text anywhere else.

    (`tqdm.auto` warns in Jupyter when ipywidgets is missing; this falls back to text quietly.)
    """
    if in_jupyter():
        try:
            from tqdm.notebook import IProgress, tqdm

            if IProgress is not None:
                return tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm

    return tqdm


def interactive() -> bool:
    """Whether this is an interactive session (a notebook, IPython, the Python prompt)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None or hasattr(sys, "ps1")


def in_jupyter() -> bool:
    """Whether this process is a Jupyter kernel (IPython is imported there before any of this)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def format_seconds(seconds: float | None) -> str:
    """``"?"``, ``"0.22 s"``, ``"14 s"``, ``"3:05"``, ``"1:02:03"``."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60}:{whole % 60:02d}"
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
