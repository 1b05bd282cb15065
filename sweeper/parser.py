"""The fields of a grid file, checked one by one into a :class:`~sweeper.spec.GridSpec`.

:func:`parse_document` takes the TOML document :mod:`sweeper.grid_file` read and
checks each key against the kernel: the kernel's name, the grid's name, the fixed
``[params]``, the ``[sweep]`` axes, the ``[[cases]]``, the seeds, the ``[run]``
options (:mod:`sweeper.options`), the point count, and the first point and every
axis value and case built once. Every error names the file, the key path, what
was expected and what was found. How an axis's values are written is
:mod:`sweeper.axes`.
"""

from __future__ import annotations

import dataclasses
import math
import typing
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
from sweeper.errors import SpecError, printable
from sweeper.options import RunOptions, parse_options, refined_block_size
from sweeper.refine_options import Refinement, finest_values, parse_refine
from sweeper.spec import GridSpec
from sweeper.template import kernel_schema

TOP_LEVEL_KEYS = (
    "kernel",
    "name",
    "description",
    "seeds",
    "grid_seed",
    "params",
    "sweep",
    "cases",
    "run",
    "refine",
)
MAX_POINTS = 10**7  # the largest grid bench/scale.py runs (scan, status, resubmit); 10^8 is untested
MAX_NAME_BYTES = 200  # `name` makes a file name (NAME.zarr, and a longer one while it is created)
RESERVED_NAMES = ("seed", "case", "status", "wall_time", "finished_at", "message")  # the store's own


def parse_document(doc: dict[str, Any], text: str, source: str) -> GridSpec:
    """Check the fields of the TOML document ``doc`` (read from ``text``); ``source`` names the file."""
    return _Parser(source).parse(doc, text)


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
        stored = kernel_schema(kernel(), base, options.outputs)
        self.names_free(kernel, stored, axes, cases)
        refine = None
        if "refine" in doc:
            dims = {name: out.dims for name, out in stored.outputs.items()}
            refine = parse_refine(doc["refine"], axes, dims, len(seeds), self.fail)
            axes, options = self.finest(refine, axes, options, doc, n_points)
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
            refine=refine,
        )

    def finest(
        self, refine: Refinement, axes: tuple[Axis, ...], options: RunOptions, doc: Mapping, n_points: int
    ) -> tuple[tuple[Axis, ...], RunOptions]:
        """The refined axes at their finest values; the default block size follows the finest grid.

        About 16 blocks, not 64: a block is written once per level that computes a point in
        it, so fewer, larger blocks cost fewer writes (a 97 x 97 circle in this process, 945 points
        computed: 2.6 s -> 0.9-1.1 s, load 4).
        """
        finest = tuple(
            Axis(a.name, finest_values(a.values, refine.levels, a.name in refine.log))
            if a.name in refine.axes
            else a
            for a in axes
        )
        grow = math.prod(len(b.values) / len(a.values) for a, b in zip(axes, finest))
        n_finest = round(n_points * grow)
        if n_finest > MAX_POINTS:
            raise self.fail(
                "refine.levels",
                f"the finest grid has {n_finest:.3g} points, more than the {MAX_POINTS:.0e} one grid "
                f"may hold; use fewer levels or fewer values or seeds.",
            )
        if "block_size" not in self.table(doc, "run"):
            options = dataclasses.replace(options, block_size=refined_block_size(n_finest))
        return finest, options

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
