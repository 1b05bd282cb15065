"""Grid files: TOML text -> a validated, frozen :class:`GridSpec`.

A grid file names a kernel, its fixed parameters, the swept axes (cartesian
product), optional explicit ``[[cases]]`` (one extra ``case`` dim), the seeds
and run options::

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
the file, the key path, what was expected and what was found.
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
from sweeper.errors import SpecError
from sweeper.layout import Layout, chunk_shape
from sweeper.template import kernel_schema

TOP_LEVEL_KEYS = ("kernel", "name", "description", "seeds", "grid_seed", "params", "sweep", "cases", "run")
RUN_KEYS = ("store", "block_size", "workers", "outputs", "max_attempts", "time_limit")
RESERVED_DIMS = ("seed", "case")
MAX_POINTS = 10**8
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Axis:
    """One swept parameter and its values (already coerced to the kernel's types)."""

    name: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class RunOptions:
    store: str
    block_size: int
    workers: int | None
    outputs: tuple[str, ...]
    max_attempts: int
    time_limit: float | None = None  # seconds a point may take (Ray workers only)


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

    def with_seeds(self, seeds: tuple[int, ...]) -> GridSpec:
        return dataclasses.replace(self, seeds=tuple(seeds))


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
        kernel_name = doc.get("kernel")
        if kernel_name is None:
            raise self.fail("kernel", 'missing: name the kernel to run, e.g. `kernel = "ode"`.')
        if not isinstance(kernel_name, str):
            raise self.fail("kernel", f"expected a string, got {kernel_name!r}.")
        try:
            kernel = get_kernel(kernel_name)
        except UnknownKernelError as exc:
            raise self.fail("kernel", str(exc)) from None
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

        axes = []
        for key, value in sweep.items():
            where = f"sweep.{key}"
            if key in RESERVED_DIMS:
                raise self.fail(where, f"`{key}` is a reserved dim name; set seeds with `seeds = ...`.")
            self.known_param(kernel, where, key)
            if key in fixed:
                raise self.fail(where, f"`{key}` is both fixed in [params] and swept; keep one.")
            self.sweepable(kernel, where, key)
            values = self.axis_values(where, value)
            values = tuple(self.coerce(kernel, f"{where}[{i}]", key, v, hints) for i, v in enumerate(values))
            if len(set(values)) != len(values):
                raise self.fail(where, f"duplicate values in {list(values)!r}; each value must appear once.")
            axes.append(Axis(key, values))

        cases = self.cases(doc.get("cases"), kernel, fixed, sweep, hints)
        seeds = self.seeds(doc.get("seeds", 1))
        grid_seed = doc.get("grid_seed", 0)
        if not _is_int(grid_seed) or grid_seed < 0:
            raise self.fail("grid_seed", f"expected a non-negative integer, got {grid_seed!r}.")

        shape = (len(cases),) * bool(cases) + tuple(len(a.values) for a in axes) + (len(seeds),)
        n_points = math.prod(shape)
        if n_points > MAX_POINTS:
            raise self.fail(
                "sweep",
                f"{n_points:.3g} points is more than the {MAX_POINTS:.0e} one grid may hold; split it.",
            )

        # Build the first point and every axis value once: bad values fail here, not mid-sweep.
        base_swept = {a.name: a.values[0] for a in axes} | (dict(cases[0]) if cases else {})
        base = self.make(kernel, "params", {**fixed, **base_swept})
        for axis in axes:
            for i, value in enumerate(axis.values):
                self.make(kernel, f"sweep.{axis.name}[{i}]", {**fixed, **base_swept, axis.name: value})
        for i, case in enumerate(cases):
            self.make(kernel, f"cases[{i}]", {**fixed, **base_swept, **case})

        options = self.options(doc, name, kernel, base, n_points)
        return GridSpec(
            source=self.source,
            text=text,
            kernel=kernel_name,
            name=name,
            description=description,
            fixed=fixed,
            axes=tuple(axes),
            cases=cases,
            seeds=seeds,
            grid_seed=int(grid_seed),
            options=options,
        )

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

    def axis_values(self, where: str, value: Any) -> tuple[Any, ...]:
        if isinstance(value, list):
            if not value:
                raise self.fail(where, "empty list; an axis needs at least one value.")
            for i, v in enumerate(value):
                if isinstance(v, (list, dict)):
                    raise self.fail(f"{where}[{i}]", f"expected a number, string or boolean, got {v!r}.")
            return tuple(value)
        if isinstance(value, dict):
            forms = ("linspace", "logspace", "range")
            if len(value) != 1 or next(iter(value)) not in forms:
                raise self.fail(
                    where,
                    f"expected a list or one of {{linspace = [start, stop, num]}}, "
                    f"{{logspace = [start_exp, stop_exp, num]}}, {{range = [start, stop(, step)]}}; "
                    f"got {value!r}.",
                )
            form, args = next(iter(value.items()))
            return self.generated_axis(where, form, args)
        raise self.fail(where, f"expected a list of values or a {{linspace = ...}} table, got {value!r}.")

    def generated_axis(self, where: str, form: str, args: Any) -> tuple[Any, ...]:
        usage = {
            "linspace": "[start, stop, num]",
            "logspace": "[start_exponent, stop_exponent, num]",
            "range": "[start, stop] or [start, stop, step]",
        }[form]
        arity_ok = isinstance(args, list) and (len(args) in (2, 3) if form == "range" else len(args) == 3)
        if not arity_ok or not all(_is_number(a) for a in args):
            raise self.fail(where, f"`{form}` expects {usage}, got {args!r}.")
        if form == "range":
            if not all(_is_int(a) for a in args):
                raise self.fail(where, f"`range` expects integers {usage}, got {args!r}.")
            values = tuple(range(*args)) if args[-1] != 0 or len(args) == 2 else ()
            if not values:
                raise self.fail(where, f"`range` {args!r} is empty.")
            return values
        start, stop, num = args
        if not _is_int(num) or num < 1:
            raise self.fail(where, f"`{form}` num must be a positive integer, got {num!r}.")
        if not (math.isfinite(start) and math.isfinite(stop)):
            raise self.fail(where, f"`{form}` bounds must be finite, got {args!r}.")
        fn = np.linspace if form == "linspace" else np.logspace
        return tuple(float(v) for v in fn(start, stop, int(num)))

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

    def seeds(self, value: Any) -> tuple[int, ...]:
        if _is_int(value):
            if value < 1:
                raise self.fail("seeds", f"expected a positive count or a list of seeds, got {value!r}.")
            return tuple(range(int(value)))
        if isinstance(value, list) and value and all(_is_int(s) and s >= 0 for s in value):
            if len(set(value)) != len(value):
                raise self.fail("seeds", f"duplicate seeds in {value!r}.")
            return tuple(int(s) for s in value)
        raise self.fail(
            "seeds", f"expected a positive count or a list of non-negative integers, got {value!r}."
        )

    def options(
        self, doc: Mapping[str, Any], name: str, kernel: type[Kernel], base: Any, n_points: int
    ) -> RunOptions:
        run = self.table(doc, "run")
        unknown = [k for k in run if k not in RUN_KEYS]
        if unknown:
            raise self.fail(f"run.{unknown[0]}", f"unknown key. Known keys: {', '.join(RUN_KEYS)}.")
        store = run.get("store", f"results/{name}.zarr")
        if not isinstance(store, str) or not store:
            raise self.fail("run.store", f"expected a path, got {store!r}.")
        block_size = run.get("block_size", default_block_size(n_points))
        if not _is_int(block_size) or block_size < 1:
            raise self.fail("run.block_size", f"expected a positive integer, got {block_size!r}.")
        workers = run.get("workers")
        if workers is not None and (not _is_int(workers) or workers < 0):
            raise self.fail(
                "run.workers", f"expected a non-negative integer (0 = in-process), got {workers!r}."
            )
        max_attempts = run.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
        if not _is_int(max_attempts) or max_attempts < 1:
            raise self.fail("run.max_attempts", f"expected a positive integer, got {max_attempts!r}.")
        time_limit = run.get("time_limit")
        if time_limit is not None and (not _is_number(time_limit) or not 0 < time_limit < math.inf):
            raise self.fail("run.time_limit", f"expected a positive number of seconds, got {time_limit!r}.")
        declared = kernel_schema(kernel(), base).outputs
        outputs = run.get("outputs", list(declared))
        if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
            raise self.fail("run.outputs", f"expected a non-empty list of output names, got {outputs!r}.")
        for o in outputs:
            if o not in declared:
                raise self.fail(
                    "run.outputs",
                    f"unknown output {o!r}. Outputs of '{kernel.name}' here: {', '.join(declared)}.",
                )
        return RunOptions(
            store,
            int(block_size),
            workers,
            tuple(outputs),
            int(max_attempts),
            None if time_limit is None else float(time_limit),
        )


def default_block_size(n_points: int) -> int:
    """About 64 blocks per grid, at most 256 points a block."""
    return max(1, min(256, math.ceil(n_points / 64)))


def _strip_name(message: str, key: str) -> str:
    prefix = f"{key}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
