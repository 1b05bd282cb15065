"""Swept values as plain data: an axis is a list or a generated range; seeds a count or a list.

Each function takes the key path of the value (for its messages) and ``fail``,
the parser's function that turns (key path, message) into a
:class:`~sweeper.errors.SpecError` naming the grid file.
"""

from __future__ import annotations

import json
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
    """The values of ``sweep.NAME``: a list, or one of ``{linspace = ...}``, ``{logspace}``, ``{range}``.

    Call :func:`axis_length` first when the grid's size is not known yet: it counts
    without making the values.
    """
    axis_length(where, value, fail)
    if isinstance(value, list):
        return tuple(value)
    form, args = next(iter(value.items()))
    if form == "range":
        return tuple(range(*args))
    start, stop, num = args
    with np.errstate(all="ignore"):  # checked by axis_length; no warning on stderr
        values = (np.linspace if form == "linspace" else np.logspace)(start, stop, int(num))
    return tuple(float(v) for v in values)


def axis_length(where: str, value: Any, fail: Fail) -> int:
    """How many values ``sweep.NAME`` has, checking its form, before any is made."""
    if isinstance(value, list):
        if not value:
            raise fail(where, "empty list; an axis needs at least one value.")
        for i, v in enumerate(value):
            if isinstance(v, (list, dict)):
                raise fail(f"{where}[{i}]", f"expected a number, string or boolean, got {show(v)}.")
        return len(value)
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in FORMS:
            raise fail(
                where,
                f"expected a list or one of {{linspace = [start, stop, num]}}, "
                f"{{logspace = [start_exp, stop_exp, num]}}, {{range = [start, stop(, step)]}}; "
                f"got {show(value)}.",
            )
        form, args = next(iter(value.items()))
        return generated_length(where, form, args, fail)
    raise fail(where, f"expected a list of values or a {{linspace = ...}} table, got {show(value)}.")


def generated_length(where: str, form: str, args: Any, fail: Fail) -> int:
    usage = FORMS[form]
    arity_ok = isinstance(args, list) and (len(args) in (2, 3) if form == "range" else len(args) == 3)
    if not arity_ok or not all(is_number(a) for a in args):
        raise fail(where, f"`{form}` expects {usage}, got {show(args)}.")
    if form == "range":
        if not all(is_int(a) for a in args):
            raise fail(where, f"`range` expects integers {usage}, got {show(args)}.")
        if not all(fits_int64(a) for a in args):
            raise fail(where, f"`range` bounds must lie between -2**63 and 2**63 - 1, got {show(args)}.")
        n = len(range(*args)) if args[-1] != 0 or len(args) == 2 else 0  # counted, not made
        if not n:
            raise fail(where, f"`range` {show(args)} is empty.")
        return n
    start, stop, num = args
    if not is_int(num) or num < 1:
        raise fail(where, f"`{form}` num must be a positive integer, got {show(num)}.")
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise fail(where, f"`{form}` bounds must be finite, got {show(args)}.")
    ends = (float(start), float(stop))
    with np.errstate(all="ignore"):
        values = np.linspace(*ends, 3) if form == "linspace" else np.power(10.0, ends)
    if not (np.all(np.isfinite(values)) and (form == "linspace" or np.all(values > 0))):
        what = "overflows" if form == "linspace" else "gives 0 or infinity (exponents beyond about ±308)"
        raise fail(where, f"`{form}` {show(args)} {what}; use smaller bounds.")
    return int(num)


def seed_count(value: Any, fail: Fail) -> int:
    """How many seeds ``seeds`` gives, checking it, before any is made."""
    if is_int(value):
        if value < 1:
            raise fail("seeds", f"expected a positive count or a list of seeds, got {show(value)}.")
        return value
    if isinstance(value, list) and value and all(is_int(s) and s >= 0 for s in value):
        big = next((s for s in value if not fits_int64(s)), None)
        if big is not None:
            raise fail("seeds", f"a seed must be below 2**63, got {show(big)}.")
        if len(set(value)) != len(value):
            raise fail("seeds", f"duplicate seeds in {show(value)}.")
        return len(value)
    raise fail("seeds", f"expected a positive count or a list of non-negative integers, got {show(value)}.")


def seed_list(value: Any, fail: Fail) -> tuple[int, ...]:
    """``seeds``: a count n (seeds 0..n-1) or a list of distinct non-negative integers."""
    n = seed_count(value, fail)
    return tuple(range(n)) if is_int(value) else tuple(int(s) for s in value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fits_int64(value: int) -> bool:
    """Stored coordinates and seeds are int64: a larger integer would be stored as text."""
    return -(2**63) <= value < 2**63


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters, saying how long it was."""
    try:
        text = repr(value)
    except RecursionError:
        text = "a value nested too deeply"
    except ValueError:  # an integer of more digits than Python prints
        text = "an integer of thousands of digits"
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}...({len(text)} characters)"


def key_path(key: str) -> str:
    """A TOML key as the user would write it: bare if it can be, else quoted (and shortened)."""
    if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key):
        return key if len(key) <= 60 else show(key)
    return json.dumps(key, ensure_ascii=False) if len(key) <= 60 else show(key)
