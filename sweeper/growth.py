"""Growing a store: which stored points a larger grid keeps, and where they go.

A grid grows its store when it adds values to axes (anywhere along them), cases
(anywhere in the list) or seeds, and changes nothing else
(:func:`sweeper.fingerprint.same_frame`). A point's numbers depend only on its
parameters and seed, never on its position (README, "Random streams"), so a stored
point is kept by its coordinates: :class:`Growth` maps each index of the stored grid
to its index in the new one. What a store cannot absorb, a stored value (or case,
or seed) left out or listed in another order, is refused with one line naming the
field and saying how to proceed. Seeds appended at the end grow the store in place
(:meth:`Growth.in_place`); anything else is copied into the new layout
(:mod:`sweeper.relayout`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweeper.axes import show
from sweeper.errors import StoreError
from sweeper.fingerprint import canonical
from sweeper.spec import GridSpec

HOW = "or use `--overwrite` to replace the store, or `--store` to write elsewhere"


@dataclass(frozen=True)
class Growth:
    """A store's grid and the larger grid it grows to, dim by dim."""

    dims: tuple[str, ...]
    old_shape: tuple[int, ...]
    new_shape: tuple[int, ...]
    where: tuple[np.ndarray, ...]  # per grid dim: the new index of each stored index, increasing

    @property
    def in_place(self) -> bool:
        """Only seeds appended: the store grows along its last dim, with no copy."""
        n = self.old_shape[-1]
        return self.old_shape[:-1] == self.new_shape[:-1] and bool((self.where[-1] == np.arange(n)).all())

    @property
    def kept(self) -> int:
        """Points of the store, all kept (ok, failed or pending)."""
        return math.prod(self.old_shape)

    @property
    def added(self) -> int:
        return math.prod(self.new_shape) - self.kept

    def describe(self) -> str:
        """E.g. "lr 3 -> 4 values: 12 new points, 36 kept"."""
        grown = [
            f"{'cases' if d == 'case' else d} {a} -> {b}{'' if d == 'case' else ' values'}"
            for d, a, b in zip(self.dims, self.old_shape, self.new_shape)
            if a != b
        ]
        return f"{', '.join(grown)}: {self.added} new points, {self.kept} kept"


def between(
    path: Any, dims: Sequence[str], coords: Mapping[str, np.ndarray], cases: Sequence[Any], spec: GridSpec
) -> Growth | None:
    """How the store at ``path`` grows to ``spec``; None if its grid is ``spec``'s.

    ``coords`` are the store's coordinates of its swept axes and seeds, ``cases`` the
    cases its fingerprint recorded; the caller has checked that nothing but these
    differs. Raises :class:`StoreError` if ``spec`` drops or reorders a stored value.
    """
    if tuple(dims) != spec.dims:  # same_frame makes this impossible; a guard, not a message
        raise StoreError(f"{path} has dims {tuple(dims)}, the grid {spec.dims}; {HOW}.")
    old_shape, new_shape, where = [], [], []
    new_cases = spec.components()["cases"]
    for dim in dims:
        if dim == "case":
            old = [_case_key(c) for c in cases]
            new = [_case_key(c) for c in new_cases]
            field, shown = "cases", [json.loads(k) for k in old]
        elif dim == "seed":
            old, new, field = _values(coords[dim]), list(spec.seeds), "seeds"
            shown = old
        else:
            axis = next(a for a in spec.axes if a.name == dim)
            old, new, field = _values(coords[dim]), canonical(list(axis.values)), f"sweep.{dim}"
            shown = old
        where.append(_positions(path, field, dim, old, new, shown))
        old_shape.append(len(old))
        new_shape.append(len(new))
    if old_shape == new_shape:
        return None
    return Growth(tuple(dims), tuple(old_shape), tuple(new_shape), tuple(where))


def _positions(path: Any, field: str, dim: str, old: list, new: list, shown: list) -> np.ndarray:
    """The index in ``new`` of each of ``old``; refuses a value left out or moved."""
    index = {v: i for i, v in enumerate(new)}
    missing = [i for i, v in enumerate(old) if v not in index]
    what = "cases" if dim == "case" else "seeds" if dim == "seed" else "values"
    select = "isel(case=[...])" if dim == "case" else f"sel({dim}=[...])"
    if missing:
        if dim == "case":
            gone = f"the store's case {show(shown[missing[0]])}"
            verb = "is"
        else:
            gone = ", ".join(show(shown[i]) for i in missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            verb = "is" if len(missing) == 1 else "are"
        raise StoreError(
            f"{path}: {field}: {gone} {verb} in the store but not in the grid; removing {what} is not "
            f"supported: select the {what} you want in the notebook (`ds.{select}`), {HOW}."
        )
    at = np.array([index[v] for v in old], dtype=np.int64)
    if (np.diff(at) <= 0).any():
        i = int(np.flatnonzero(np.diff(at) <= 0)[0])
        raise StoreError(
            f"{path}: {field}: the grid lists the store's {what} in another order ({show(shown[i + 1])} "
            f"before {show(shown[i])}); new {what} may go anywhere, but the stored ones keep their "
            f"order: list them as in the store ({show(shown)}), {HOW}."
        )
    return at


def _values(coord: np.ndarray) -> list:
    return canonical(np.asarray(coord).tolist())


def _case_key(case: Mapping[str, Any]) -> str:
    return json.dumps(canonical(dict(case)), sort_keys=True)
