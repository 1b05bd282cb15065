"""Located thresholds of a refined store: :func:`thresholds` (docs/refinement.md §5).

Along one refined axis, for every value of the grid's other dims (``seed`` aside), the
first place where the success fraction crosses the grid's ``fraction``: the bracket
(the two neighbouring computed points on either side), an estimate (the fraction
interpolated linearly to the level inside the bracket, in log for an axis refined in
log) and, with more than one seed, a confidence band: the span of the computed points
whose success fraction's Wilson interval still holds the level, joined with the bracket.
Works on the dataset :func:`sweeper.open` (or ``xr.open_zarr``) gives; knows the store's
grid text and :mod:`sweeper.refinement`, nothing of physics.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from sweeper.blocks import NOT_NEEDED, PENDING
from sweeper.errors import SweeperError
from sweeper.refine_options import FAILED_OUTPUT, Refinement
from sweeper.refinement import per_seed, reduce_output, seed_rule, wilson


def refinement_of(ds: xr.Dataset) -> tuple[Refinement, tuple[str, ...]]:
    """The ``[refine]`` table of the grid that wrote ``ds``, and the grid's dims."""
    from sweeper.grid_file import parse_spec

    spec = parse_spec(str(ds.attrs.get("grid_text", "")), source="the store's grid_text")
    if spec.refine is None:
        raise SweeperError("this store's grid has no [refine] table: there is no threshold to locate.")
    return spec.refine, spec.dims


def thresholds(ds: xr.Dataset, axis: str | None = None) -> xr.Dataset:
    """Where the success fraction crosses the level along ``axis`` (default: the first refined axis).

    Returns a dataset over the grid's other dims (``seed`` aside) with ``lower`` and ``upper``
    (the bracket), ``estimate``, ``band_lower`` and ``band_upper`` (the confidence band),
    ``n_seeds`` (seeds behind the fractions at the bracket, the fewer of the two) and
    ``crossings`` (how many times the fraction crosses the level along the line; only the
    first is located). NaN where a line has no crossing.
    """
    refine, dims = refinement_of(ds)
    if not refine.crossing:
        raise SweeperError("`thresholds` locates a crossing (`below`, `above` or `failed`), not a change.")
    axis = axis or refine.axes[0]
    if axis not in refine.axes:
        raise SweeperError(f"{axis!r} is not a refined axis ({', '.join(refine.axes)}).")
    status = ds.status.transpose(*dims).values
    status = np.where(status == NOT_NEEDED, PENDING, status)
    reduced = None
    if refine.output != FAILED_OUTPUT:
        out = ds[refine.output]
        out = out.transpose(*dims, *[d for d in out.dims if d not in dims])
        reduced = reduce_output(out.values, refine.reduce)
    done, quantity = per_seed(status, reduced, refine)
    seeds = seed_rule(done, quantity, refine)
    params = dims[:-1]
    where = params.index(axis)
    frac = np.moveaxis(np.where(seeds.settled, seeds.value, np.nan), where, -1)
    n = np.moveaxis(seeds.n, where, -1)
    x = np.asarray(ds[axis].values, dtype=np.float64)
    log = axis in refine.log
    lines = frac.reshape(-1, frac.shape[-1])
    counts = n.reshape(-1, n.shape[-1])
    names = ("lower", "upper", "estimate", "band_lower", "band_upper", "n_seeds", "crossings")
    found = {k: np.full(len(lines), np.nan) for k in names}
    many = status.shape[-1] > 1
    for row, (f, c) in enumerate(zip(lines, counts)):
        known = np.flatnonzero(np.isfinite(f))
        side = f[known] >= refine.fraction
        flips = np.flatnonzero(side[1:] != side[:-1])
        found["crossings"][row] = flips.size
        if not flips.size:
            continue
        i, j = known[flips[0]], known[flips[0] + 1]
        t = (refine.fraction - f[i]) / (f[j] - f[i])
        a, b = (np.log(x[i]), np.log(x[j])) if log else (x[i], x[j])
        estimate = a + t * (b - a)
        found["estimate"][row] = np.exp(estimate) if log else estimate
        found["lower"][row], found["upper"][row] = min(x[i], x[j]), max(x[i], x[j])
        found["n_seeds"][row] = min(c[i], c[j])
        span = [x[i], x[j]]
        if many:
            lo, hi = wilson(f[known] * c[known], c[known], refine.z)
            span += list(x[known][(lo <= refine.fraction) & (refine.fraction <= hi)])
        found["band_lower"][row], found["band_upper"][row] = min(span), max(span)
    others = [d for d in params if d != axis]
    shape = [ds.sizes[d] for d in others]
    coords = {d: ds[d] for d in others}
    attrs = {
        "lower": f"the bracket's lower end: computed {axis} values on either side of the crossing",
        "estimate": f"the success fraction interpolated linearly to {refine.fraction:g}",
        "band_lower": f"the span of {axis} where the fraction's Wilson interval (confidence "
        f"{refine.confidence:g}) holds {refine.fraction:g}, with the bracket",
    }
    out = xr.Dataset(
        {k: (others, v.reshape(shape), {"description": attrs.get(k, "")}) for k, v in found.items()},
        coords=coords,
    )
    out.attrs = {"axis": axis, "fraction": refine.fraction, "confidence": refine.confidence}
    return out
