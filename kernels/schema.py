"""Declared output schemas: what a kernel stores, known before it runs.

A kernel declares, as class variables,

- ``dims``: each of its own dims (``time``, ``student``, ...) as a :class:`Dim`, whose
  coordinates (and units) are functions of the parameters;
- ``outputs``: each output variable as an :class:`Output` with its dims and labels (a
  short ``long_name`` for plot axes and legends, the detail in ``description``); an
  output that exists only for some parameter values names in ``when`` the shape
  parameter that switches it on (``two_time = true``, ``save_particles > 0``); a
  categorical output (a code per category) names its categories in ``flags``;
- ``attrs``: dataset attributes (conventions, units, what the risk excludes); a value
  may be a function of the parameters.

A model family declares the dims and outputs its kernels share once (e.g.
:mod:`kernels.twolayer.schema`), and each kernel picks from them, so a theory kernel and
its simulation counterpart cannot drift apart. :meth:`kernels.base.Kernel.schema`
evaluates the declarations for one set of parameters into a :class:`Schema`; everything
it reads must be a shape parameter (the contract suite checks that the schema does not
change when any other parameter does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Dim:
    """A kernel dim: its coordinates and labels, as functions of the parameters."""

    long_name: str
    coords: Callable[[Any], np.ndarray]
    units: str | Callable[[Any], str] | None = None
    description: str | None = None

    def attrs(self, params: Any) -> dict[str, str]:
        out = {"long_name": self.long_name}
        units = self.units(params) if callable(self.units) else self.units
        if units is not None:
            out["units"] = units
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class Output:
    """A declared output variable: its internal dims and its labels.

    ``flags``: the meaning of each code of a categorical output (code ``i`` means
    ``flags[i]``), stored as the CF attributes ``flag_values`` and ``flag_meanings``.
    """

    dims: tuple[str, ...]
    long_name: str
    units: str | None = None
    description: str | None = None
    allow_nan: bool = False  # True if NaN is a legitimate value, not a failure
    when: str | None = None  # a shape parameter: the output exists only where it is true / non-zero
    flags: tuple[str, ...] | None = None  # a categorical output: code i means flags[i]

    def attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"long_name": self.long_name}
        if self.units is not None:
            out["units"] = self.units
        if self.description is not None:
            out["description"] = self.description
        if self.flags is not None:
            out["flag_values"] = [float(i) for i in range(len(self.flags))]  # outputs are stored as float64
            out["flag_meanings"] = " ".join(m.replace(" ", "_") for m in self.flags)
        return out


@dataclass(frozen=True)
class Schema:
    """The evaluated schema for one set of parameters: what the store lays out."""

    coords: dict[str, np.ndarray]
    coord_attrs: dict[str, dict[str, str]]
    outputs: dict[str, Output]
    attrs: dict[str, Any]

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of one point's value of output ``name``."""
        return tuple(len(self.coords[d]) for d in self.outputs[name].dims)

    def same_as(self, other: Schema) -> bool:
        """Equal dims, coordinates, labels, outputs and attrs."""
        return (
            self.coords.keys() == other.coords.keys()
            and all(np.array_equal(self.coords[k], other.coords[k]) for k in self.coords)
            and self.coord_attrs == other.coord_attrs
            and self.outputs == other.outputs
            and self.attrs == other.attrs
        )


def evaluate(
    dims: Mapping[str, Dim], outputs: Mapping[str, Output], attrs: Mapping[str, Any], params: Any
) -> Schema:
    """The declarations of one kernel evaluated for ``params``."""
    present = {n: o for n, o in outputs.items() if o.when is None or getattr(params, o.when)}
    used = [d for d in dims if any(d in o.dims for o in present.values())]
    missing = {d for o in present.values() for d in o.dims} - set(dims)
    if missing:
        raise RuntimeError(f"outputs use undeclared dims {sorted(missing)}")
    return Schema(
        coords={d: np.asarray(dims[d].coords(params)) for d in used},
        coord_attrs={d: dims[d].attrs(params) for d in used},
        outputs=present,
        attrs={k: v(params) if callable(v) else v for k, v in attrs.items()},
    )


def pick(declared: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The named entries of a family's declarations, in the order given."""
    return {n: declared[n] for n in names}
