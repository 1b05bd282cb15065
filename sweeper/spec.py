"""Grid files: TOML text -> a validated, frozen :class:`GridSpec`.

A grid file names a kernel, its fixed parameters, the swept axes (cartesian
product), optional explicit ``[[cases]]`` (one extra ``case`` dim), the seeds
and the ``[run]`` options (:mod:`sweeper.options`)::

    kernel = "ode"
    name = "plateau"
    seeds = 4                 # or a list of ints: becomes the `seed` dim
    grid_seed = 0             # with the point's seed, the point's random stream
    [params]                  # fixed parameters
    K = 2
    [sweep]                   # swept axes, in this order
    lr = [0.1, 0.5]           # or {linspace=[a,b,n]}, {logspace=[a,b,n]}, {range=[a,b(,step)]}
    [run]
    store = "results/plateau.zarr"
    block_size = 8

Everything is checked before anything runs or is written: every error names
the file, the key path, what was expected and what was found. How an axis's
values are written is :mod:`sweeper.axes`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kernels.base import Kernel, ParameterError, coerce
from kernels.registry import UnknownKernelError, get_kernel
from sweeper.axes import Axis, axis_values, is_int, seed_list
from sweeper.errors import SpecError
from sweeper.layout import Layout, chunk_shape
from sweeper.options import RunOptions, parse_options
from sweeper.template import kernel_schema

TOP_LEVEL_KEYS = ("kernel", "name", "description", "seeds", "grid_seed", "params", "sweep", "cases", "run")
RESERVED_DIMS = ("seed", "case")
MAX_POINTS = 10**7  # the largest grid bench/scale.py runs (scan, status, resubmit); 10^8 is untested


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

    def fingerprint(self) -> str:
        """Hash of what defines the results (kernel, params, axes, cases, grid seed).

        Seeds and the ``[run]`` options other than ``outputs`` are left out: a store
        can grow more seeds, and where or how fast it runs does not change a result.
        """
        blob = json.dumps(
            {
                "kernel": self.kernel,
                "fixed": dict(self.fixed),
                "axes": [(a.name, list(a.values)) for a in self.axes],
                "cases": [dict(c) for c in self.cases],
                "grid_seed": self.grid_seed,
                "outputs": list(self.options.outputs),
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_options(self, **changes: Any) -> GridSpec:
        """A copy with some ``[run]`` options replaced (CLI flags override the file)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, options=dataclasses.replace(self.options, **changes))


# -- loading ---------------------------------------------------------------------------


def load_spec(path: str | os.PathLike) -> GridSpec:
    """Read and validate a grid file."""
    path = Path(path)
    where = str(path)
    if path.is_dir():
        raise SpecError(f"{where}: is a directory, expected a grid file (TOML).")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{where}: no such file.") from None
    except OSError as exc:
        raise SpecError(f"{where}: cannot read: {exc.strerror}.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}).") from None
    return parse_spec(text, source=where)


def parse_spec(text: str, source: str = "<string>") -> GridSpec:
    """Validate grid-file text; ``source`` names it in error messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: invalid TOML: {exc}.") from None
    return _Parser(source).parse(doc, text)


class _Parser:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str) -> SpecError:
        return SpecError(f"{self.source}: {key}: {message}")

    def parse(self, doc: dict[str, Any], text: str) -> GridSpec:
        unknown = [k for k in doc if k not in TOP_LEVEL_KEYS]
        if unknown:
            raise self.fail(unknown[0], f"unknown key. Known top-level keys: {', '.join(TOP_LEVEL_KEYS)}.")
        kernel_name, kernel = self.kernel(doc)
        name = self.string(doc, "name", Path(self.source).stem if self.source != "<string>" else "grid")
        if not name or any(c in name for c in "/\\") or name.startswith("."):
            raise self.fail("name", f"expected a plain name usable as a file name, got {name!r}.")
        description = self.string(doc, "description", "")

        fixed = self.table(doc, "params")
        sweep = self.table(doc, "sweep")
        hints = typing.get_type_hints(kernel.Params)
        for key in fixed:
            self.known_param(kernel, f"params.{key}", key)
        fixed = {k: self.coerce(kernel, f"params.{k}", k, v, hints) for k, v in fixed.items()}
        axes = self.axes(sweep, kernel, fixed, hints)
        cases = self.cases(doc.get("cases"), kernel, fixed, sweep, hints)
        seeds = seed_list(doc.get("seeds", 1), self.fail)
        grid_seed = doc.get("grid_seed", 0)
        if not is_int(grid_seed) or grid_seed < 0:
            raise self.fail("grid_seed", f"expected a non-negative integer, got {grid_seed!r}.")
        n_points = self.count(axes, cases, seeds)
        base = self.check_points(kernel, fixed, axes, cases)

        declared = kernel_schema(kernel(), base).outputs
        options = parse_options(
            self.table(doc, "run"), name, kernel.name, list(declared), n_points, self.fail
        )
        return GridSpec(
            source=self.source,
            text=text,
            kernel=kernel_name,
            name=name,
            description=description,
            fixed=fixed,
            axes=axes,
            cases=cases,
            seeds=seeds,
            grid_seed=int(grid_seed),
            options=options,
        )

    def kernel(self, doc: Mapping[str, Any]) -> tuple[str, type[Kernel]]:
        kernel_name = doc.get("kernel")
        if kernel_name is None:
            raise self.fail("kernel", 'missing: name the kernel to run, e.g. `kernel = "ode"`.')
        if not isinstance(kernel_name, str):
            raise self.fail("kernel", f"expected a string, got {kernel_name!r}.")
        try:
            return kernel_name, get_kernel(kernel_name)
        except UnknownKernelError as exc:
            raise self.fail("kernel", str(exc)) from None

    def axes(
        self, sweep: Mapping[str, Any], kernel: type[Kernel], fixed: Mapping, hints: Mapping
    ) -> tuple[Axis, ...]:
        axes = []
        for key, value in sweep.items():
            where = f"sweep.{key}"
            if key in RESERVED_DIMS:
                raise self.fail(where, f"`{key}` is a reserved dim name; set seeds with `seeds = ...`.")
            self.known_param(kernel, where, key)
            if key in fixed:
                raise self.fail(where, f"`{key}` is both fixed in [params] and swept; keep one.")
            self.sweepable(kernel, where, key)
            values = axis_values(where, value, self.fail)
            values = tuple(self.coerce(kernel, f"{where}[{i}]", key, v, hints) for i, v in enumerate(values))
            if len(set(values)) != len(values):
                raise self.fail(where, f"duplicate values in {list(values)!r}; each value must appear once.")
            axes.append(Axis(key, values))
        return tuple(axes)

    def count(self, axes: tuple[Axis, ...], cases: tuple, seeds: tuple[int, ...]) -> int:
        shape = (len(cases),) * bool(cases) + tuple(len(a.values) for a in axes) + (len(seeds),)
        n_points = math.prod(shape)
        if n_points > MAX_POINTS:
            raise self.fail(
                "sweep",
                f"{n_points:.3g} points is more than the {MAX_POINTS:.0e} one grid may hold; split it.",
            )
        return n_points

    def check_points(self, kernel: type[Kernel], fixed: Mapping, axes: tuple[Axis, ...], cases: tuple) -> Any:
        """Build the first point and every axis value and case once: bad values fail here, not mid-sweep.

        Returns the first point's parameters.
        """
        base_swept = {a.name: a.values[0] for a in axes} | (dict(cases[0]) if cases else {})
        base = self.make(kernel, "params", {**fixed, **base_swept})
        for axis in axes:
            for i, value in enumerate(axis.values):
                self.make(kernel, f"sweep.{axis.name}[{i}]", {**fixed, **base_swept, axis.name: value})
        for i, case in enumerate(cases):
            self.make(kernel, f"cases[{i}]", {**fixed, **base_swept, **case})
        return base

    # -- pieces ------------------------------------------------------------------------
    def string(self, doc: Mapping[str, Any], key: str, default: str | None) -> str:
        value = doc.get(key, default)
        if value is None:
            raise self.fail(key, "missing.")
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {value!r}.")
        return value

    def table(self, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table `[{key}]`, got {value!r}.")
        return value

    def known_param(self, kernel: type[Kernel], where: str, key: str) -> None:
        known = kernel.parameter_names()
        if key not in known:
            raise self.fail(
                where,
                f"unknown parameter {key!r} for kernel '{kernel.name}'. "
                f"Known parameters: {', '.join(known)}.",
            )

    def sweepable(self, kernel: type[Kernel], where: str, key: str) -> None:
        if key in kernel.shape_params:
            raise self.fail(
                where,
                f"`{key}` sets the shape of the kernel's outputs, so it cannot be swept; "
                f"fix it in [params] and submit one grid per value.",
            )

    def coerce(self, kernel: type[Kernel], where: str, key: str, value: Any, hints: Mapping) -> Any:
        try:
            return coerce(key, value, hints[key])
        except ParameterError as exc:
            raise self.fail(where, _strip_name(str(exc), key)) from None

    def make(self, kernel: type[Kernel], where: str, values: Mapping[str, Any]) -> Any:
        try:
            return kernel.make_params(**values)
        except ParameterError as exc:
            raise self.fail(where, str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise self.fail(where, f"invalid parameters: {exc}") from None

    def cases(
        self, value: Any, kernel: type[Kernel], fixed: Mapping, sweep: Mapping, hints: Mapping
    ) -> tuple[dict[str, Any], ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not value or not all(isinstance(c, dict) for c in value):
            raise self.fail("cases", f"expected one or more `[[cases]]` tables, got {value!r}.")
        keys = list(value[0])
        if not keys:
            raise self.fail("cases[0]", "empty case; set at least one parameter.")
        out = []
        for i, case in enumerate(value):
            if list(case) != keys and set(case) != set(keys):
                raise self.fail(
                    f"cases[{i}]",
                    f"sets {sorted(case)}, but cases[0] sets {sorted(keys)}; all cases set the same keys.",
                )
            coerced = {}
            for key in keys:
                where = f"cases[{i}].{key}"
                self.known_param(kernel, where, key)
                if key in fixed or key in sweep:
                    raise self.fail(where, f"`{key}` is also in [params] or [sweep]; set it in one place.")
                self.sweepable(kernel, where, key)
                v = case[key]
                if isinstance(v, (list, dict)):
                    raise self.fail(where, f"expected a number, string or boolean, got {v!r}.")
                coerced[key] = self.coerce(kernel, where, key, v, hints)
            out.append(coerced)
        return tuple(out)


def _strip_name(message: str, key: str) -> str:
    prefix = f"{key}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
