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
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kernels.base import Kernel, ParameterError, coerce
from kernels.registry import UnknownKernelError, get_kernel
from sweeper.axes import (
    Axis,
    axis_length,
    axis_values,
    fits_int64,
    is_int,
    key_path,
    seed_count,
    seed_list,
    show,
)
from sweeper.errors import SpecError
from sweeper.layout import Layout, chunk_shape
from sweeper.options import MAX_WORKERS, RunOptions, parse_options, store_problem
from sweeper.template import kernel_schema

TOP_LEVEL_KEYS = ("kernel", "name", "description", "seeds", "grid_seed", "params", "sweep", "cases", "run")
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

    # -- identity ----------------------------------------------------------------
    def components(self) -> dict[str, Any]:
        """Everything that determines the stored numbers, as plain JSON data.

        The kernel's name and version; every parameter the grid does not sweep, as
        the kernel resolved it (defaults included, so a default that changes between
        two submits is noticed); each axis (name and coerced values, in order; a long
        axis as its length, ends and a digest); the cases; the grid seed; and which
        outputs are stored (they fix the store's variables: resuming with another
        selection would leave NaN in an "ok" point or drop a requested output).

        Left out: the seeds (a store may grow them, checked apart), the name, the
        description and the other ``[run]`` options (where or how fast a grid runs
        does not change a number).
        """
        params = self.base_params()
        swept = self.swept_names()
        return _canonical(
            {
                "kernel": self.kernel,
                "kernel_version": str(self.kernel_class().version),
                "params": {
                    f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name not in swept
                },
                "axes": [[a.name, _axis_record(a.values)] for a in self.axes],
                "cases": [dict(c) for c in self.cases],
                "grid_seed": self.grid_seed,
                "outputs": sorted(self.options.outputs),
            }
        )

    def fingerprint(self) -> str:
        """A short hash of :meth:`components`: equal fingerprints, interchangeable results."""
        return _digest(self.components())[:16]

    def swept_names(self) -> set[str]:
        """The parameters set per point: axes and the keys of the cases."""
        return {a.name for a in self.axes} | (set(self.cases[0]) if self.cases else set())

    def changes_from(self, old: Mapping[str, Any], old_text: str = "") -> list[str]:
        """What differs between stored :meth:`components` ``old`` and this grid's, as "field old -> new".

        ``old_text`` is the stored grid text: a parameter neither grid file sets is
        reported as a default that changed.
        """
        return _changes(old, self.components(), _params_set(old_text), set(self.fixed))

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


# -- loading ---------------------------------------------------------------------------

MAX_GRID_BYTES = 2**20  # a grid file is a few lines; long axes are generated ({linspace = ...})
MAX_DEPTH = 8  # tables and lists inside each other; a grid file needs 4 (`[params]` Q0 = [[...]])
MAX_NAME_BYTES = 200  # `name` makes a file name (NAME.zarr, and a longer one while it is created)
RESERVED_NAMES = ("seed", "case", "status", "wall_time", "finished_at", "message")  # the store's own


def load_spec(path: str | os.PathLike) -> GridSpec:
    """Read and validate a grid file."""
    path = Path(path)
    where = printable(str(path))
    if path.is_dir():
        raise SpecError(f"{where}: is a directory, expected a grid file (TOML).")
    try:
        if path.exists() and not path.is_file():
            raise SpecError(f"{where}: not a regular file, expected a grid file (TOML).")
        size = path.stat().st_size
        if size > MAX_GRID_BYTES:
            raise SpecError(_too_big(where, size))
        with path.open("rb") as f:
            raw = f.read(MAX_GRID_BYTES + 1)
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
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_GRID_BYTES:
        raise SpecError(_too_big(source, size))
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: invalid TOML: {exc}.") from None
    except RecursionError:
        raise SpecError(f"{source}: invalid TOML: nested too deeply.") from None
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise SpecError(f"{source}: invalid TOML: an integer of thousands of digits.") from None
    where, depth = _deepest(doc)
    if depth > MAX_DEPTH:
        raise SpecError(
            f"{source}: {where}: nested {depth} levels deep, more than the {MAX_DEPTH} a grid file may nest."
        )
    return _Parser(source).parse(doc, text)


def _too_big(source: str, size: int) -> str:
    return (
        f"{source}: {size / 2**20:.1f} MiB is more than the {MAX_GRID_BYTES / 2**20:.0f} MiB a grid file "
        f"may be; generate long axes with `{{linspace = [start, stop, num]}}` or `{{range = ...}}`."
    )


def _deepest(doc: Mapping[str, Any]) -> tuple[str, int]:
    """The key path and depth of the most deeply nested value (iteratively: no recursion limit)."""
    deepest, stack = ("", 0), [("", doc, 1)]
    while stack:
        where, value, depth = stack.pop()
        if depth > deepest[1]:
            deepest = (where, depth)
        if depth > MAX_DEPTH:
            break
        items = (
            value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        )
        for k, v in items:
            if isinstance(v, (dict, list)):
                sub = (
                    f"{where}[{k}]"
                    if isinstance(k, int)
                    else (f"{where}.{key_path(k)}" if where else key_path(k))
                )
                stack.append((sub, v, depth + 1))
    return deepest


def printable(text: str) -> str:
    """``text`` with control characters escaped: a message stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def control_character(text: str, allowed: str = "") -> str | None:
    """The first control character of ``text`` (other than ``allowed``), as U+XXXX."""
    for c in text:
        if unicodedata.category(c) == "Cc" and c not in allowed:
            return f"U+{ord(c):04X}"
    return None


class _Parser:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str) -> SpecError:
        message = printable(f"{self.source}: {key}: {message}")
        if len(message) > 1000:  # keep the field (first) and the fix (last)
            message = f"{message[:400]} ...({len(message) - 800} characters)... {message[-400:]}"
        return SpecError(message)

    def parse(self, doc: dict[str, Any], text: str) -> GridSpec:
        unknown = [k for k in doc if k not in TOP_LEVEL_KEYS]
        if unknown:
            raise self.fail(
                key_path(unknown[0]), f"unknown key. Known top-level keys: {', '.join(TOP_LEVEL_KEYS)}."
            )
        kernel_name, kernel = self.kernel(doc)
        name = self.name(doc)
        description = self.string(doc, "description", "")
        bad = control_character(description, allowed="\t\n\r")
        if bad:
            raise self.fail("description", f"has a control character ({bad}); remove it.")

        fixed = self.table(doc, "params")
        sweep = self.table(doc, "sweep")
        hints = typing.get_type_hints(kernel.Params)
        for key in fixed:
            self.known_param(kernel, f"params.{key_path(key)}", key)
        fixed = {
            k: _plus_zero(self.coerce(kernel, f"params.{key_path(k)}", k, v, hints)) for k, v in fixed.items()
        }
        # Count the points before making any: `{range = [0, 10**18]}` must not be built to be refused.
        lengths = [self.axis_length(kernel, key, value, fixed) for key, value in sweep.items()]
        cases = self.cases(doc.get("cases"), kernel, fixed, sweep, hints)
        n_seeds = seed_count(doc.get("seeds", 1), self.fail)
        grid_seed = doc.get("grid_seed", 0)
        if not is_int(grid_seed) or grid_seed < 0:
            raise self.fail("grid_seed", f"expected a non-negative integer, got {show(grid_seed)}.")
        if not fits_int64(grid_seed):
            raise self.fail("grid_seed", f"must be below 2**63, got {show(grid_seed)}.")
        n_points = self.count((len(cases),) * bool(cases) + tuple(lengths) + (n_seeds,))
        axes = self.axes(sweep, kernel, hints)
        seeds = seed_list(doc.get("seeds", 1), self.fail)
        base = self.check_points(kernel, fixed, axes, cases)

        declared = kernel_schema(kernel(), base).outputs
        options = parse_options(
            self.table(doc, "run"), name, kernel.name, list(declared), n_points, self.fail
        )
        self.names_free(kernel, kernel_schema(kernel(), base, options.outputs), axes, cases)
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
            raise self.fail("kernel", f"expected a string, got {show(kernel_name)}.")
        try:
            return kernel_name, get_kernel(kernel_name)
        except UnknownKernelError as exc:
            raise self.fail("kernel", str(exc)) from None

    def name(self, doc: Mapping[str, Any]) -> str:
        name = self.string(doc, "name", Path(self.source).stem if self.source != "<string>" else "grid")
        usage = f"expected a plain name usable as a file name, got {show(name)}"
        if not name.strip() or any(c in name for c in "/\\") or name.startswith("."):
            raise self.fail("name", f"{usage}.")
        bad = control_character(name)
        if bad:
            raise self.fail("name", f"{usage}: it has a control character ({bad}).")
        size = len(name.encode("utf-8", "surrogatepass"))
        if size > MAX_NAME_BYTES:
            raise self.fail(
                "name", f"{usage}: it is {size} bytes long, more than the {MAX_NAME_BYTES} it may be."
            )
        return name

    def axis_length(self, kernel: type[Kernel], key: str, value: Any, fixed: Mapping) -> int:
        """Check the name of axis ``key`` and how it is written; returns its length."""
        where = f"sweep.{key_path(key)}"
        self.not_reserved(where, key)
        self.known_param(kernel, where, key)
        self.not_bookkeeping(where, key)
        if key in fixed:
            raise self.fail(where, f"`{key}` is both fixed in [params] and swept; keep one.")
        self.sweepable(kernel, where, key)
        return axis_length(where, value, self.fail)

    def axes(self, sweep: Mapping[str, Any], kernel: type[Kernel], hints: Mapping) -> tuple[Axis, ...]:
        axes = []
        for key, value in sweep.items():
            where = f"sweep.{key_path(key)}"
            values = axis_values(where, value, self.fail)
            values = tuple(self.coerce(kernel, f"{where}[{i}]", key, v, hints) for i, v in enumerate(values))
            if len(set(values)) != len(values):
                raise self.fail(
                    where, f"duplicate values in {show(list(values))}; each value must appear once."
                )
            axes.append(Axis(key, tuple(map(_plus_zero, values))))
        return tuple(axes)

    def count(self, shape: tuple[int, ...]) -> int:
        n_points = math.prod(shape)
        if n_points > MAX_POINTS:
            raise self.fail(
                "sweep",
                f"{n_points:.3g} points is more than the {MAX_POINTS:.0e} one grid may hold; split it.",
            )
        return n_points

    def names_free(self, kernel: type[Kernel], schema: Any, axes: tuple[Axis, ...], cases: tuple) -> None:
        """An axis or case may not share its name with a dim or an output of the kernel: one
        dataset cannot hold both (checked here, so that `--dry-run` says so too)."""
        keys = [(f"sweep.{key_path(a.name)}", a.name) for a in axes]
        keys += [(f"cases[0].{key_path(k)}", k) for k in (cases[0] if cases else ())]
        for where, key in keys:
            if key in schema.coords:
                users = [o for o, out in schema.outputs.items() if key in out.dims]
                what, drop = f"a dim of kernel '{kernel.name}' (of {', '.join(users)})", "those outputs"
            elif key in schema.outputs:
                what, drop = f"an output of kernel '{kernel.name}'", "that output"
            else:
                continue
            raise self.fail(
                where,
                f"`{key}` is also {what}, and one store cannot hold both under one name; "
                f"set it in [params] and submit one grid per value, or leave {drop} out with `run.outputs`.",
            )

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
            raise self.fail(key, f"expected a string, got {show(value)}.")
        return value

    def table(self, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table `[{key}]`, got {show(value)}.")
        return value

    def not_reserved(self, where: str, key: str) -> None:
        """``seed`` and ``case`` are grid dims of their own."""
        if key in ("seed", "case"):
            how = "set seeds with `seeds = ...`" if key == "seed" else "list explicit points with `[[cases]]`"
            raise self.fail(where, f"`{key}` is a reserved dim name; {how}.")

    def not_bookkeeping(self, where: str, key: str) -> None:
        """A parameter named like a variable every store keeps cannot be a coordinate beside it."""
        if key in RESERVED_NAMES:
            raise self.fail(
                where,
                f"`{key}` names a variable every store keeps ({', '.join(RESERVED_NAMES[2:])}), so it "
                f"cannot be swept; set it in [params] and submit one grid per value.",
            )

    def known_param(self, kernel: type[Kernel], where: str, key: str) -> None:
        known = kernel.parameter_names()
        if key not in known:
            raise self.fail(
                where,
                f"unknown parameter {show(key)} for kernel '{kernel.name}'. "
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
            value = coerce(key, value, hints[key])
        except ParameterError as exc:
            raise self.fail(where, _strip_name(str(exc), key)) from None
        big = _beyond_int64(value)
        if big is not None:
            raise self.fail(where, f"expected an integer between -2**63 and 2**63 - 1, got {show(big)}.")
        return value

    def make(self, kernel: type[Kernel], where: str, values: Mapping[str, Any]) -> Any:
        try:
            return kernel.make_params(**values)
        except ParameterError as exc:
            raise self.fail(where, str(exc)) from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(where, f"invalid parameters: {exc}") from None

    def cases(
        self, value: Any, kernel: type[Kernel], fixed: Mapping, sweep: Mapping, hints: Mapping
    ) -> tuple[dict[str, Any], ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not value or not all(isinstance(c, dict) for c in value):
            raise self.fail("cases", f"expected one or more `[[cases]]` tables, got {show(value)}.")
        keys = list(value[0])
        if not keys:
            raise self.fail("cases[0]", "empty case; set at least one parameter.")
        out = []
        for i, case in enumerate(value):
            if list(case) != keys and set(case) != set(keys):
                raise self.fail(
                    f"cases[{i}]",
                    f"sets {show(sorted(case))}, but cases[0] sets {show(sorted(keys))}; "
                    f"all cases set the same keys.",
                )
            coerced = {}
            for key in keys:
                where = f"cases[{i}].{key_path(key)}"
                self.not_reserved(where, key)
                self.known_param(kernel, where, key)
                self.not_bookkeeping(where, key)
                if key in fixed or key in sweep:
                    raise self.fail(where, f"`{key}` is also in [params] or [sweep]; set it in one place.")
                self.sweepable(kernel, where, key)
                v = case[key]
                if isinstance(v, (list, dict)):
                    raise self.fail(where, f"expected a number, string or boolean, got {show(v)}.")
                coerced[key] = _plus_zero(self.coerce(kernel, where, key, v, hints))
            if coerced in out:
                raise self.fail(
                    f"cases[{i}]", f"the same point as cases[{out.index(coerced)}]; list each case once."
                )
            out.append(coerced)
        return tuple(out)


def _plus_zero(value: Any) -> Any:
    """-0.0 as 0.0: the kernel, the coordinates and the fingerprint see one zero."""
    return value + 0.0 if isinstance(value, float) else value


def _beyond_int64(value: Any) -> int | None:
    """An integer in ``value`` (or in its items) that int64 cannot hold, if any."""
    if is_int(value) and not fits_int64(value):
        return value
    if isinstance(value, tuple):
        return next((b for b in map(_beyond_int64, value) if b is not None), None)
    return None


def _strip_name(message: str, key: str) -> str:
    prefix = f"{key}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


# -- the fingerprint's pieces ----------------------------------------------------------------

AXIS_IN_FULL = 64  # longer axes are recorded by length, ends and digest (the coords hold them)
MAX_CHANGES = 6  # differences named in a refusal


def _canonical(value: Any) -> Any:
    """Plain JSON data: tuples as lists, numpy scalars as Python, -0.0 as 0.0."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_canonical(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value + 0.0  # -0.0 -> 0.0: the same number, the same fingerprint
    return value


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _axis_record(values: tuple[Any, ...]) -> Any:
    values = _canonical(values)
    if len(values) <= AXIS_IN_FULL:
        return values
    return {"n": len(values), "first": values[0], "last": values[-1], "sha256": _digest(values)}


def _params_set(text: str) -> set[str]:
    """The ``[params]`` keys a stored grid text sets (empty if it cannot be read)."""
    try:
        params = tomllib.loads(text).get("params", {})
    except (tomllib.TOMLDecodeError, RecursionError):
        return set()
    return set(params) if isinstance(params, dict) else set()


def _changes(
    old: Mapping[str, Any], new: Mapping[str, Any], old_set: set[str], new_set: set[str]
) -> list[str]:
    out = []
    if old.get("kernel") != new["kernel"]:
        out.append(f"kernel {_show(old.get('kernel'))} -> {_show(new['kernel'])}")
    elif old.get("kernel_version") != new["kernel_version"]:
        out.append(
            f"kernel {_show(new['kernel'])} version {old.get('kernel_version')} -> {new['kernel_version']}"
        )
    old_params, new_params = old.get("params", {}), new["params"]
    for key in sorted(set(old_params) | set(new_params), key=lambda k: (k not in new_params, k)):
        a, b = old_params.get(key, _ABSENT), new_params.get(key, _ABSENT)
        if a == b:
            continue
        note = " (a default changed)" if key not in old_set | new_set and _ABSENT not in (a, b) else ""
        out.append(f"params.{key} {_show(a, old, key)} -> {_show(b, new, key)}{note}")
    old_axes, new_axes = old.get("axes", []), new["axes"]
    if [n for n, _ in old_axes] != [n for n, _ in new_axes]:
        out.append(f"axes ({', '.join(n for n, _ in old_axes)}) -> ({', '.join(n for n, _ in new_axes)})")
    else:
        out.extend(_axis_change(n, a, b) for (n, a), (_, b) in zip(old_axes, new_axes) if a != b)
    old_cases, new_cases = old.get("cases", []), new["cases"]
    if len(old_cases) != len(new_cases):
        out.append(f"cases {len(old_cases)} -> {len(new_cases)}")
    else:
        for i, (a, b) in enumerate(zip(old_cases, new_cases)):
            out.extend(
                f"cases[{i}].{k} {_show(a.get(k, _ABSENT))} -> {_show(b.get(k, _ABSENT))}"
                for k in sorted(set(a) | set(b))
                if a.get(k, _ABSENT) != b.get(k, _ABSENT)
            )
    for key in ("grid_seed", "outputs"):
        if old.get(key) != new[key]:
            out.append(f"{key} {_show(old.get(key, _ABSENT))} -> {_show(new[key])}")
    if len(out) > MAX_CHANGES:
        out = out[:MAX_CHANGES] + [f"and {len(out) - MAX_CHANGES} more"]
    return out


def _axis_change(name: str, old: Any, new: Any) -> str:
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        i = next(i for i, (a, b) in enumerate(zip(old, new)) if a != b)
        return f"sweep.{name}[{i}] {_show(old[i])} -> {_show(new[i])}"
    n_old = len(old) if isinstance(old, list) else old["n"]
    n_new = len(new) if isinstance(new, list) else new["n"]
    if n_old != n_new:
        return f"sweep.{name} {n_old} values -> {n_new} values"
    return f"sweep.{name} values differ"


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def _show(value: Any, components: Mapping[str, Any] | None = None, key: str = "") -> str:
    """A value in a message: its repr, shortened; a swept parameter as "(swept)"."""
    if value is _ABSENT and components is not None:
        swept = {n for n, _ in components.get("axes", [])} | {
            k for c in components.get("cases", []) for k in c
        }
        if key in swept:
            return "(swept)"
    return show(value)
