"""Sample complexities and Bayes-optimal comparisons, from the stores (no plotting).

- :func:`success_fractions`: per parameter point, how many seeds met a refined grid's own
  success criterion (its ``[refine]`` table), with the 95 % Wilson interval.
- :func:`fixed_param`: a parameter the grid held fixed, from the store.
- :func:`located`: the first crossing :func:`sweeper.thresholds` found on one line, as a dict.
- :func:`recovery_bracket`: the same for a deterministic, unrefined line (theory).
- :func:`separated`: whether intervals lie strictly one after another (an ordering of
  thresholds that their confidence bands resolve).
- :func:`teacher_comparison`: the located thresholds of one line with a fresh teacher per seed
  and with fixed teachers (``teacher_seed``), and how far the fixed ones lie from the fresh one.
- :func:`state_evolution_gap`: how far finite-d GAMP's seed-mean overlap lies from state
  evolution, per d.
- :func:`best_ridge`: the ridge strength of least seed-mean test error, per alpha.
- :func:`excess_over_bayes`: how far a trained estimator's seed-mean error lies above the
  Bayes-optimal one, relative to it, with its standard error, per point.
- :func:`paired_excess`: the seed-paired difference of an output between two values of an axis
  (two ridges on the same data sets), mean and standard error.
- :func:`last_change`: how much an output still moved between the last two saved times, against
  its seed error (is GD converged?).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

import sweeper
from sweeper.refinement import per_seed, reduce_output, wilson
from sweeper.thresholds import refinement_of

Z95 = 1.959964  # normal quantile of a two-sided 95 % interval
BOUNDS = ("lower", "upper", "estimate", "band_lower", "band_upper", "n_seeds")


def success_fractions(ds: xr.Dataset) -> xr.Dataset:
    """``k`` seeds of ``n`` computed that succeed by the store's ``[refine]`` criterion, per point.

    Returns ``k``, ``n``, ``fraction`` (NaN where nothing was computed) and its 95 % Wilson
    interval ``low``, ``high``, over the grid's dims without ``seed``.
    """
    refine, dims = refinement_of(ds)
    out = ds[refine.output].transpose(*dims, *[d for d in ds[refine.output].dims if d not in dims])
    done, success = per_seed(
        ds.status.transpose(*dims).values, reduce_output(out.values, refine.reduce), refine
    )
    k = np.where(done, success, 0.0).sum(axis=-1)
    n = done.sum(axis=-1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # n = 0 where nothing was computed
        low, high = wilson(k, n, Z95)
    coords = {d: ds[d] for d in dims[:-1]}
    frac = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    make = lambda a: xr.DataArray(a, coords=coords, dims=dims[:-1])  # noqa: E731
    return xr.Dataset(
        {"k": make(k), "n": make(n), "fraction": make(frac), "low": make(low), "high": make(high)}
    )


def fixed_param(ds: xr.Dataset, name: str):
    """A parameter the grid held fixed (its ``[params]`` value), read from the store's grid text."""
    from sweeper.grid_file import parse_spec

    return parse_spec(str(ds.attrs["grid_text"]), source="the store's grid_text").fixed[name]


def located(ds: xr.Dataset, **line) -> dict[str, float]:
    """The first crossing of :func:`sweeper.thresholds` on the line ``line`` (e.g. ``case=...``).

    Keys :data:`BOUNDS`: the bracket ``lower``-``upper``, ``estimate``, the confidence band
    ``band_lower``-``band_upper`` and ``n_seeds``; all NaN if the line never crosses.
    """
    found = sweeper.thresholds(ds).sel(line).isel(crossing=0)
    return {k: float(found[k]) for k in BOUNDS}


def recovery_bracket(ds: xr.Dataset, output: str, below: float, axis: str = "alpha") -> dict[str, float]:
    """Where a deterministic (one-seed) line's ``output`` first falls below ``below`` along ``axis``.

    For an unrefined grid what :func:`located` is for a refined one, with the same keys: the
    bracket between the last computed value above and the first below (NaN if none), the
    midpoint as ``estimate``, the bracket as band (no seeds, no interval).
    """
    values = ds[output].where(ds.ok).squeeze(drop=True).dropna(axis)
    x, below_it = values[axis].values, values.values < below
    switch = np.flatnonzero(~below_it[:-1] & below_it[1:])
    if switch.size == 0:
        return dict.fromkeys(BOUNDS, np.nan)
    lower, upper = float(x[switch[0]]), float(x[switch[0] + 1])
    return dict(zip(BOUNDS, (lower, upper, 0.5 * (lower + upper), lower, upper, 1.0)))


def separated(intervals: Sequence[tuple[float, float]]) -> bool:
    """True if each interval ``(low, high)`` ends strictly before the next one starts."""
    bounds = np.asarray(intervals, dtype=np.float64)
    return bool(np.all(bounds[:-1, 1] < bounds[1:, 0]) and np.all(np.isfinite(bounds)))


def overlapping(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True if the intervals ``a`` and ``b`` (``(low, high)``, finite) share a point."""
    return bool(np.all(np.isfinite([*a, *b])) and a[0] <= b[1] and b[0] <= a[1])


def _band(threshold: dict) -> tuple[float, float]:
    return threshold["band_lower"], threshold["band_upper"]


def teacher_comparison(ds: xr.Dataset, dim: str = "teacher_seed", **line) -> dict:
    """The located thresholds of ``line`` at every value of ``dim``: -1 a fresh teacher, k >= 0 fixed.

    Returns ``fresh`` and ``fixed`` (teacher seed -> :func:`located`), the fixed estimates'
    ``fixed_mean`` and ``fixed_spread`` (their standard deviation, ``ddof = 1``: the
    teacher-to-teacher spread), ``max_shift`` (the largest ``|fixed - fresh|`` estimate) and
    ``bands_overlap`` (every fixed teacher's confidence band meets the fresh teacher's).
    """
    fresh = located(ds, **line, **{dim: -1})
    fixed = {int(k): located(ds, **line, **{dim: k}) for k in ds[dim].values if k >= 0}
    estimates = np.array([t["estimate"] for t in fixed.values()])
    return {
        "fresh": fresh,
        "fixed": fixed,
        "fixed_mean": float(estimates.mean()),
        "fixed_spread": float(estimates.std(ddof=1)) if estimates.size > 1 else float("nan"),
        "max_shift": float(np.max(np.abs(estimates - fresh["estimate"]))),
        "bands_overlap": all(overlapping(_band(t), _band(fresh)) for t in fixed.values()),
    }


def state_evolution_gap(gamp: xr.Dataset, theory: xr.DataArray, per_seed: bool = False) -> dict[int, float]:
    """Mean over iterations of ``|seed-mean m - m_SE|`` per ``d`` of the GAMP store ``gamp``.

    ``theory``: SE's ``m`` over ``iteration`` (the `amp` kernel's path, same ``m0`` and alpha).
    ``per_seed``: the mean of ``|m - m_SE|`` over seeds and iterations instead, a single run's
    deviation (O(d^(-1/2))), where the seed mean's gap measures the bias of the mean (smaller).
    """
    if per_seed:
        m = gamp.m.where(gamp.ok)
        gap = np.abs(m - theory.values).mean(["seed", "iteration"])
    else:
        mean, _ = sweeper.comparison.seed_stats(gamp, "m")
        gap = np.abs(mean - theory.values).mean("iteration")
    return {int(d): float(gap.sel(d=d)) for d in gamp.d.values}


def best_ridge(ds: xr.Dataset, output: str = "test_error") -> xr.Dataset:
    """Per alpha, the ``ridge`` of least seed-mean last ``output``, that error and its seed error.

    ``ds`` has dims ``alpha``, ``ridge``, ``seed`` (and ``time``: the last time is taken).
    """
    mean, error = sweeper.comparison.seed_stats(ds, output)
    if "time" in mean.dims:
        mean, error = mean.isel(time=-1), error.isel(time=-1)
    best = mean.fillna(np.inf).argmin("ridge")
    return xr.Dataset(
        {
            "ridge": ds.ridge[best].drop_vars("ridge"),
            "error": mean.isel(ridge=best).drop_vars("ridge"),
            "error_sem": error.isel(ridge=best).drop_vars("ridge"),
        }
    )


def _last(values: xr.DataArray) -> xr.DataArray:
    return values.isel(time=-1) if "time" in values.dims else values


def excess_over_bayes(ds: xr.Dataset, bayes: xr.DataArray, output: str = "test_error") -> xr.Dataset:
    """``(mean - bayes) / bayes`` of the seed-mean last ``output`` of ``ds``, per point, and its error.

    ``bayes``: the Bayes-optimal value over ``alpha`` (deterministic, e.g. the `amp` kernel's
    ``test_error_bayes``), taken at ``ds``'s alphas, which it must contain (to 1e-9). Returns
    ``mean``, ``sem`` (the seed error), ``excess`` and ``excess_sem`` (``sem / bayes``) over the
    dims of ``ds`` without ``seed`` and ``time``.
    """
    mean, sem = (_last(a) for a in sweeper.comparison.seed_stats(ds, output))
    reference = bayes.sel(alpha=ds.alpha.values, method="nearest", tolerance=1e-9)
    reference = reference.assign_coords(alpha=ds.alpha.values)
    return xr.Dataset(
        {"mean": mean, "sem": sem, "excess": mean / reference - 1.0, "excess_sem": sem / reference}
    )


def paired_excess(ds: xr.Dataset, dim: str, a, b, output: str = "test_error") -> xr.Dataset:
    """Seed-paired ``output(dim=a) - output(dim=b)`` at the last time: ``mean`` and ``sem``.

    Two points of one seed share their data (the kernel's streams depend on the seed, not on the
    other parameters), so the paired difference is far more precise than the two seed errors.
    """
    values = _last(ds[output].where(ds.ok))
    diff = values.sel({dim: a}, drop=True) - values.sel({dim: b}, drop=True)
    n = diff.notnull().sum("seed")
    return xr.Dataset({"mean": diff.mean("seed"), "sem": diff.std("seed", ddof=1) / np.sqrt(n)})


def last_change(ds: xr.Dataset, output: str = "test_error") -> dict[str, float]:
    """How much ``output`` moved between the last two saved times, over all points and seeds.

    ``largest``: the largest absolute change of one run; ``largest_of_mean``: of a seed mean;
    ``relative_to_sem``: the largest ratio of a seed mean's change to its seed error. A run is
    converged for the figure when the last is well below 1.
    """
    values = ds[output].where(ds.ok)
    change = values.isel(time=-1) - values.isel(time=-2)
    _, sem = sweeper.comparison.seed_stats(ds, output)
    mean_change = abs(change.mean("seed"))
    return {
        "largest": float(abs(change).max()),
        "largest_of_mean": float(mean_change.max()),
        "relative_to_sem": float((mean_change / sem.isel(time=-1)).max()),
    }


__all__ = [
    "BOUNDS",
    "best_ridge",
    "excess_over_bayes",
    "last_change",
    "paired_excess",
    "fixed_param",
    "located",
    "overlapping",
    "recovery_bracket",
    "separated",
    "state_evolution_gap",
    "success_fractions",
    "teacher_comparison",
]
