"""The frozen :class:`GridSpec`: a validated grid, as the rest of the engine sees it.

A grid's dims are (``case``,) + its swept axes + (``seed``,); :class:`GridSpec` gives
their shape, block layout and coordinates, each point's parameters and seed entropy,
the first point's parameters (which fix the output schema), and the fingerprint
(:mod:`sweeper.fingerprint`). A grid file is read into one by :mod:`sweeper.grid_file`
and its fields checked by :mod:`sweeper.parser`; a spec never reads a file itself.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels.base import Kernel
from kernels.registry import get_kernel
from sweeper import fingerprint as fp
from sweeper.axes import Axis
from sweeper.errors import SpecError, printable
from sweeper.layout import Layout, chunk_shape
from sweeper.options import MAX_WORKERS, RunOptions, store_problem
from sweeper.refine_options import Refinement


@dataclass(frozen=True)
class GridSpec:
    """A validated grid: dims = (``case``,) + swept axes + (``seed``,)."""

    source: str  # file path, or "<string>"
    text: str
    kernel: str
    name: str
    description: str
    fixed: Mapping[str, Any]
    axes: tuple[Axis, ...]
    cases: tuple[Mapping[str, Any], ...]
    seeds: tuple[int, ...]
    grid_seed: int
    options: RunOptions  # the `[run]` table
    refine: Refinement | None = None  # the `[refine]` table; its axes hold their finest values

    # -- shape -----------------------------------------------------------------
    @property
    def dims(self) -> tuple[str, ...]:
        case = ("case",) if self.cases else ()
        return case + tuple(a.name for a in self.axes) + ("seed",)

    @property
    def shape(self) -> tuple[int, ...]:
        case = (len(self.cases),) if self.cases else ()
        return case + tuple(len(a.values) for a in self.axes) + (len(self.seeds),)

    @property
    def n_points(self) -> int:
        return math.prod(self.shape)

    @property
    def layout(self) -> Layout:
        return Layout(self.shape, chunk_shape(self.shape, self.options.block_size))

    def coords(self) -> dict[str, np.ndarray]:
        """Index coordinates of the grid dims (``case`` is 0..n-1)."""
        out: dict[str, np.ndarray] = {}
        if self.cases:
            out["case"] = np.arange(len(self.cases))
        for axis in self.axes:
            out[axis.name] = np.asarray(axis.values)
        out["seed"] = np.asarray(self.seeds, dtype=np.int64)
        return out

    def case_coords(self) -> dict[str, np.ndarray]:
        """Non-index coordinates along ``case``: one per parameter the cases set."""
        if not self.cases:
            return {}
        return {k: np.asarray([c[k] for c in self.cases]) for k in self.cases[0]}

    # -- points ----------------------------------------------------------------
    def point(self, index: tuple[int, ...]) -> tuple[dict[str, Any], tuple[int, int]]:
        """The swept parameters and the seed entropy of the point at ``index``."""
        index = tuple(int(i) for i in index)
        swept: dict[str, Any] = {}
        pos = 0
        if self.cases:
            swept.update(self.cases[index[0]])
            pos = 1
        for axis in self.axes:
            swept[axis.name] = axis.values[index[pos]]
            pos += 1
        return swept, (self.grid_seed, self.seeds[index[pos]])

    def __iter__(self) -> Iterator[tuple[dict[str, Any], tuple[int, int]]]:
        for index in np.ndindex(*self.shape):
            yield self.point(index)

    def kernel_class(self) -> type[Kernel]:
        return get_kernel(self.kernel)

    def base_params(self) -> Any:
        """Parameters of the first point: fixes the output schema."""
        swept, _ = self.point((0,) * len(self.shape))
        return self.kernel_class().make_params(**self.fixed, **swept)

    # -- identity ----------------------------------------------------------------
    def components(self) -> dict[str, Any]:
        """Everything that determines the stored numbers, as plain JSON data.

        What is in it and what is left out: :func:`sweeper.fingerprint.components`.
        """
        return fp.components(
            kernel=self.kernel,
            kernel_version=str(self.kernel_class().version),
            params=self.base_params(),
            swept=self.swept_names(),
            axes=self.axes,
            cases=self.cases,
            grid_seed=self.grid_seed,
            outputs=self.options.outputs,
        )

    def fingerprint(self) -> str:
        """A short hash of :meth:`components`: equal fingerprints, interchangeable results."""
        return fp.fingerprint(self.components())

    def defaults(self) -> dict[str, Any]:
        """The kernel's parameter defaults, as declared (a parameter without one is left out)."""
        out = {}
        for f in dataclasses.fields(self.kernel_class().Params):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out

    def swept_names(self) -> set[str]:
        """The parameters set per point: axes and the keys of the cases."""
        return {a.name for a in self.axes} | (set(self.cases[0]) if self.cases else set())

    def changes_from(self, old: Mapping[str, Any], old_text: str = "") -> list[str]:
        """What differs between stored :meth:`components` ``old`` and this grid's, as "field old -> new".

        ``old_text`` is the stored grid text: a parameter neither grid file sets is
        reported as a default that changed.
        """
        return fp.changes_from(old, self.components(), old_text, set(self.fixed))

    def with_options(self, **changes: Any) -> GridSpec:
        """A copy with some ``[run]`` options replaced (CLI flags override the file)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        problem = store_problem(changes["store"]) if "store" in changes else None
        if problem:
            raise SpecError(f"--store: {printable(problem)}")
        if changes.get("workers", 0) > MAX_WORKERS:
            raise SpecError(
                f"--workers: {changes['workers']} is more than the {MAX_WORKERS} a sweep may start."
            )
        return dataclasses.replace(self, options=dataclasses.replace(self.options, **changes))
