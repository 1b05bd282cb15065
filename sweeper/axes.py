"""Swept values as plain data: an axis is a list or a generated range; seeds a count or a list.

Each function takes the key path of the value (for its messages) and ``fail``,
the parser's function that turns (key path, message) into a
:class:`~sweeper.errors.SpecError` naming the grid file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweeper.errors import SpecError

Fail = Callable[[str, str], SpecError]

FORMS = {
    "linspace": "[start, stop, num]",
    "logspace": "[start_exponent, stop_exponent, num]",
    "range": "[start, stop] or [start, stop, step]",
}


@dataclass(frozen=True)
class Axis:
    """One swept parameter and its values (already coerced to the kernel's types)."""

    name: str
    values: tuple[Any, ...]


def axis_values(where: str, value: Any, fail: Fail) -> tuple[Any, ...]:
    """The values of ``sweep.NAME``: a list, or one of ``{linspace = ...}``, ``{logspace}``, ``{range}``."""
    if isinstance(value, list):
        if not value:
            raise fail(where, "empty list; an axis needs at least one value.")
        for i, v in enumerate(value):
            if isinstance(v, (list, dict)):
                raise fail(f"{where}[{i}]", f"expected a number, string or boolean, got {v!r}.")
        return tuple(value)
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in FORMS:
            raise fail(
                where,
                f"expected a list or one of {{linspace = [start, stop, num]}}, "
                f"{{logspace = [start_exp, stop_exp, num]}}, {{range = [start, stop(, step)]}}; "
                f"got {value!r}.",
            )
        form, args = next(iter(value.items()))
        return generated_axis(where, form, args, fail)
    raise fail(where, f"expected a list of values or a {{linspace = ...}} table, got {value!r}.")


def generated_axis(where: str, form: str, args: Any, fail: Fail) -> tuple[Any, ...]:
    usage = FORMS[form]
    arity_ok = isinstance(args, list) and (len(args) in (2, 3) if form == "range" else len(args) == 3)
    if not arity_ok or not all(is_number(a) for a in args):
        raise fail(where, f"`{form}` expects {usage}, got {args!r}.")
    if form == "range":
        if not all(is_int(a) for a in args):
            raise fail(where, f"`range` expects integers {usage}, got {args!r}.")
        values = tuple(range(*args)) if args[-1] != 0 or len(args) == 2 else ()
        if not values:
            raise fail(where, f"`range` {args!r} is empty.")
        return values
    start, stop, num = args
    if not is_int(num) or num < 1:
        raise fail(where, f"`{form}` num must be a positive integer, got {num!r}.")
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise fail(where, f"`{form}` bounds must be finite, got {args!r}.")
    fn = np.linspace if form == "linspace" else np.logspace
    return tuple(float(v) for v in fn(start, stop, int(num)))


def seed_list(value: Any, fail: Fail) -> tuple[int, ...]:
    """``seeds``: a count n (seeds 0..n-1) or a list of distinct non-negative integers."""
    if is_int(value):
        if value < 1:
            raise fail("seeds", f"expected a positive count or a list of seeds, got {value!r}.")
        return tuple(range(int(value)))
    if isinstance(value, list) and value and all(is_int(s) and s >= 0 for s in value):
        if len(set(value)) != len(value):
            raise fail("seeds", f"duplicate seeds in {value!r}.")
        return tuple(int(s) for s in value)
    raise fail("seeds", f"expected a positive count or a list of non-negative integers, got {value!r}.")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
