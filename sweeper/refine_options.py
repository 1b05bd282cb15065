"""The ``[refine]`` table of a grid file: which axes to refine, how deep, and what to locate.

::

    [refine]
    axes = ["lr"]            # swept axes to refine (numbers, strictly monotone, at least 2 values)
    levels = 6               # each level halves the spacing of the coarse [sweep] values on them
    log = ["lr"]             # of those, the axes halved in log (geometric midpoints); default none
    output = "risk"          # a stored output, or "failed" (whether the point failed)
    reduce = "last"          # over the output's own dim: last, first, min, max, mean
    below = 1e-3             # a point succeeds where the reduced output is below this (or `above`)
    fraction = 0.5           # locate where the success fraction over seeds crosses this
    min_seeds = 4            # sequential seeds: start with 4, double while the fraction is uncertain
    confidence = 0.95        # ... uncertain: its Wilson interval at this level holds `fraction`
    # or, instead of below/above: where the seed mean changes by more than this between neighbours
    tolerance = 0.05

The store is laid out on the finest grid from the start; the refined axes of the
spec hold the finest values (:func:`finest_values`). None of these keys changes a
computed number, so none is in the fingerprint: a store refined by one criterion is
resumed by another, the decisions being taken again from the stored results
(docs/refinement.md §4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from sweeper.axes import Axis, Fail, is_int, is_number, key_path, show

REFINE_KEYS = (
    "axes",
    "levels",
    "log",
    "output",
    "reduce",
    "below",
    "above",
    "fraction",
    "tolerance",
    "min_seeds",
    "confidence",
)
REDUCTIONS = ("last", "first", "min", "max", "mean")
FAILED_OUTPUT = "failed"  # the quantity "the point failed": success is finishing ok
MAX_LEVELS = 16  # 2^16 finest intervals per coarse one; the point limit usually binds first


@dataclass(frozen=True)
class Refinement:
    """A validated ``[refine]`` table (see the module doc)."""

    axes: tuple[str, ...]
    levels: int
    log: tuple[str, ...]
    output: str
    reduce: str | None
    below: float | None
    above: float | None
    fraction: float
    tolerance: float | None
    min_seeds: int | None
    confidence: float
    coarse: Mapping[str, tuple[float, ...]]  # the [sweep] values of each refined axis

    @property
    def crossing(self) -> bool:
        """Locate where the success fraction crosses ``fraction`` (else: where the mean changes)."""
        return self.tolerance is None

    @property
    def z(self) -> float:
        """The normal quantile of the two-sided ``confidence`` interval."""
        return NormalDist().inv_cdf(0.5 + self.confidence / 2)

    def describe(self) -> str:
        """One line for `--dry-run`: what is refined and what located."""
        axes = ", ".join(
            f"{a} {len(self.coarse[a])} -> {finest_length(len(self.coarse[a]), self.levels)}"
            for a in self.axes
        )
        if self.output == FAILED_OUTPUT:
            what = f"where the fraction of seeds that finish ok crosses {self.fraction:g}"
        elif self.crossing:
            cmp = f"< {self.below:g}" if self.below is not None else f"> {self.above:g}"
            red = f"{self.reduce} " if self.reduce else ""
            what = f"where the fraction of seeds with {red}{self.output} {cmp} crosses {self.fraction:g}"
        else:
            what = f"where the seed mean of {self.output} changes by more than {self.tolerance:g}"
        seeds = f"; seeds from {self.min_seeds}, doubled while uncertain" if self.min_seeds else ""
        return f"{axes} over {self.levels} levels, {what}{seeds}"


def finest_length(n_coarse: int, levels: int) -> int:
    return (n_coarse - 1) * 2**levels + 1


def finest_values(coarse: Sequence[float], levels: int, log: bool) -> tuple[float, ...]:
    """The coarse values with ``2**levels - 1`` evenly spaced values (in log if ``log``) inserted
    between each neighbouring pair; the coarse values are kept exactly."""
    step = 2**levels
    out: list[float] = []
    for a, b in zip(coarse[:-1], coarse[1:]):
        for j in range(step):
            if j == 0:
                out.append(float(a))
            elif log:
                out.append(float(math.exp(math.log(a) + (math.log(b) - math.log(a)) * j / step)))
            else:
                out.append(float(a + (b - a) * j / step))
    out.append(float(coarse[-1]))
    return tuple(out)


def parse_refine(
    table: Any,
    axes: Sequence[Axis],
    outputs: Mapping[str, tuple[str, ...]],
    n_seeds: int,
    fail: Fail,
) -> Refinement:
    """Validate the ``[refine]`` table against the swept ``axes``, the stored ``outputs``
    (name -> the output's own dims) and the number of seeds."""
    if not isinstance(table, dict):
        raise fail("refine", f"expected a table `[refine]`, got {show(table)}.")
    unknown = [k for k in table if k not in REFINE_KEYS]
    if unknown:
        raise fail(f"refine.{key_path(unknown[0])}", f"unknown key. Known keys: {', '.join(REFINE_KEYS)}.")
    swept = {a.name: a for a in axes}
    names = _names(table, "axes", fail, required=True)
    if not names:
        raise fail("refine.axes", "empty list; name at least one swept axis to refine.")
    for name in names:
        _refinable(name, swept, fail)
    log = _names(table, "log", fail, required=False)
    for name in log:
        if name not in names:
            raise fail("refine.log", f"{show(name)} is not one of `refine.axes` ({', '.join(names)}).")
        if min(swept[name].values) <= 0:
            raise fail("refine.log", f"`{name}` has values <= 0; an axis halved in log must be positive.")
    levels = table.get("levels")
    if levels is None:
        raise fail("refine.levels", "missing: how many times to halve the spacing, e.g. `levels = 6`.")
    if not is_int(levels) or not 1 <= levels <= MAX_LEVELS:
        raise fail("refine.levels", f"expected an integer from 1 to {MAX_LEVELS}, got {show(levels)}.")

    output = table.get("output")
    if output is None:
        raise fail("refine.output", f'missing: name a stored output, or "{FAILED_OUTPUT}".')
    if not isinstance(output, str):
        raise fail("refine.output", f"expected a string, got {show(output)}.")
    if output != FAILED_OUTPUT and output not in outputs:
        raise fail(
            "refine.output",
            f"unknown output {show(output)}; stored outputs here: {', '.join(outputs)} "
            f'(or "{FAILED_OUTPUT}").',
        )
    reduce = _reduction(table, output, outputs, fail)
    below, above, tolerance = (table.get(k) for k in ("below", "above", "tolerance"))
    for key, value in (("below", below), ("above", above), ("tolerance", tolerance)):
        if value is not None and (not is_number(value) or not math.isfinite(value)):
            raise fail(f"refine.{key}", f"expected a finite number, got {show(value)}.")
    given = [k for k, v in (("below", below), ("above", above), ("tolerance", tolerance)) if v is not None]
    if output == FAILED_OUTPUT and given:
        raise fail(
            f"refine.{given[0]}",
            f'not with `output = "{FAILED_OUTPUT}"`: a point succeeds when it finishes ok; remove it.',
        )
    if output != FAILED_OUTPUT and len(given) != 1:
        raise fail(
            "refine",
            f"give exactly one of `below`, `above` (locate where the success fraction crosses "
            f"`fraction`) or `tolerance` (where the output changes); got {', '.join(given) or 'none'}.",
        )
    if tolerance is not None and tolerance <= 0:
        raise fail("refine.tolerance", f"expected a positive number, got {show(tolerance)}.")
    fraction = table.get("fraction", 0.5)
    if not is_number(fraction) or not 0 < fraction < 1:
        raise fail("refine.fraction", f"expected a number strictly between 0 and 1, got {show(fraction)}.")
    if "fraction" in table and tolerance is not None:
        raise fail(
            "refine.fraction", "not with `tolerance`: a fraction is located only with `below` or `above`."
        )
    min_seeds = table.get("min_seeds")
    if min_seeds is not None:
        if not is_int(min_seeds) or not 1 <= min_seeds <= n_seeds:
            raise fail(
                "refine.min_seeds",
                f"expected an integer from 1 to the {n_seeds} seeds of the grid, got {show(min_seeds)}.",
            )
        if tolerance is not None:
            raise fail(
                "refine.min_seeds",
                "not with `tolerance`: seeds are added while a success fraction is uncertain "
                "(`below`, `above` or `failed`).",
            )
    confidence = table.get("confidence", 0.95)
    if not is_number(confidence) or not 0 < confidence < 1:
        raise fail(
            "refine.confidence", f"expected a number strictly between 0 and 1, got {show(confidence)}."
        )
    if "confidence" in table and min_seeds is None:
        raise fail("refine.confidence", "only with `min_seeds` (it sets when seeds are added); remove it.")
    return Refinement(
        axes=tuple(names),
        levels=int(levels),
        log=tuple(log),
        output=output,
        reduce=reduce,
        below=None if below is None else float(below),
        above=None if above is None else float(above),
        fraction=float(fraction),
        tolerance=None if tolerance is None else float(tolerance),
        min_seeds=None if min_seeds is None else int(min_seeds),
        confidence=float(confidence),
        coarse={n: tuple(float(v) for v in swept[n].values) for n in names},
    )


def _names(table: Mapping[str, Any], key: str, fail: Fail, required: bool) -> list[str]:
    value = table.get(key)
    if value is None:
        if required:
            raise fail(f"refine.{key}", 'missing: list the swept axes to refine, e.g. `axes = ["lr"]`.')
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"refine.{key}", f"expected a list of axis names, got {show(value)}.")
    for i, v in enumerate(value):
        if v in value[:i]:
            raise fail(f"refine.{key}", f"{show(v)} is listed twice; list each axis once.")
    return value


def _refinable(name: str, swept: Mapping[str, Axis], fail: Fail) -> None:
    if name not in swept:
        known = ", ".join(swept) or "none"
        raise fail("refine.axes", f"{show(name)} is not a [sweep] axis (swept axes: {known}).")
    values = swept[name].values
    if not all(isinstance(v, float) for v in values):
        raise fail(
            "refine.axes",
            f"`{name}` is not a real-valued parameter ({show(list(values))}); only those can be "
            f"halved between values.",
        )
    if len(values) < 2:
        raise fail(
            "refine.axes", f"`{name}` has one value; a refined axis needs at least two (its coarse grid)."
        )
    steps = [b - a for a, b in zip(values[:-1], values[1:])]
    if not (all(s > 0 for s in steps) or all(s < 0 for s in steps)):
        raise fail(
            "refine.axes",
            f"`{name}`'s values must be strictly increasing or decreasing, got {show(list(values))}.",
        )


def _reduction(
    table: Mapping[str, Any], output: str, outputs: Mapping[str, tuple[str, ...]], fail: Fail
) -> str | None:
    reduce = table.get("reduce")
    dims = () if output == FAILED_OUTPUT else outputs[output]
    if reduce is None:
        if dims:
            raise fail(
                "refine.reduce",
                f"missing: `{output}` has dims ({', '.join(dims)}); reduce it to a number per point "
                f"with one of {', '.join(REDUCTIONS)}.",
            )
        return None
    if not dims:
        raise fail("refine.reduce", f"`{output}` is already a number per point; remove `reduce`.")
    if len(dims) > 1:
        raise fail(
            "refine.output",
            f"`{output}` has {len(dims)} dims ({', '.join(dims)}); only an output of at most one "
            f"can be reduced.",
        )
    if reduce not in REDUCTIONS:
        raise fail("refine.reduce", f"expected one of {', '.join(REDUCTIONS)}, got {show(reduce)}.")
    return reduce
