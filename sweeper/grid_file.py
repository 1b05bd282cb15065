"""Grid files: a file or its TOML text -> a validated, frozen :class:`~sweeper.spec.GridSpec`.

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
    [refine]                  # optional: adaptive refinement (sweeper.refine_options)
    axes = ["lr"]             # each level halves the spacing of lr's values
    levels = 6
    output = "risk"           # locate where the last risk falls below 1e-3
    reduce = "last"
    below = 1e-3

This module reads the text safely (its size, UTF-8, TOML and nesting depth, each
within a limit) and hands the document to :mod:`sweeper.parser`, which checks
its fields. Everything is checked before anything runs or is written: every
error names the file, what was expected and what was found.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweeper.axes import key_path
from sweeper.errors import SpecError, printable
from sweeper.parser import parse_document
from sweeper.spec import GridSpec

MAX_GRID_BYTES = 2**20  # a grid file is a few lines; long axes are generated ({linspace = ...})
MAX_DEPTH = 8  # tables and lists inside each other; a grid file needs 4 (`[params]` Q0 = [[...]])


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
    return parse_document(doc, text, source)


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
