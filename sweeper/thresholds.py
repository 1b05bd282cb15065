"""Located thresholds of a refined store: :func:`thresholds` (docs/refinement.md §5).

Along one refined axis, for every value of the grid's other dims (``seed`` aside), every
place where the success fraction crosses the grid's ``fraction``: the bracket (the two
neighbouring computed points on either side), an estimate (the fraction interpolated
linearly to the level inside the bracket, in log for an axis refined in log) and, with
more than one seed, a confidence band: from the nearest computed point before the
bracket whose fraction's Wilson interval excludes the level to the nearest such point
after it (the bracket itself when its ends are certain, and with one seed).
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

    Returns a dataset over the grid's other dims (``seed`` aside) and ``crossing`` (the
    crossings of a line in the axis's order) with ``lower`` and ``upper`` (the bracket),
    ``estimate``, ``band_lower`` and ``band_upper`` (the confidence band) and ``n_seeds``
    (seeds behind the fractions at the bracket, the fewer of the two), NaN past a line's
    last crossing; and ``crossings``, how many a line has.
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
    per_line = [_crossings(f, c, x, log, refine, many=status.shape[-1] > 1) for f, c in zip(lines, counts)]
    width = max([1] + [len(found) for found in per_line])
    names = ("lower", "upper", "estimate", "band_lower", "band_upper", "n_seeds")
    found = {k: np.full((len(lines), width), np.nan) for k in names}
    for row, crossings in enumerate(per_line):
        for n, values in enumerate(crossings):
            for k in names:
                found[k][row, n] = values[k]
    others = [d for d in params if d != axis]
    shape = [ds.sizes[d] for d in others]
    coords = {d: ds[d] for d in others} | {"crossing": np.arange(width)}
    attrs = {
        "lower": f"the bracket's lower end: computed {axis} values on either side of the crossing",
        "estimate": f"the success fraction interpolated linearly to {refine.fraction:g}",
        "band_lower": f"between the nearest computed {axis} whose fraction's Wilson interval (confidence "
        f"{refine.confidence:g}) excludes {refine.fraction:g}, on either side of the bracket",
    }
    out = xr.Dataset(
        {
            k: ((*others, "crossing"), v.reshape(*shape, width), {"description": attrs.get(k, "")})
            for k, v in found.items()
        },
        coords=coords,
    )
    out["crossings"] = (others, np.array([len(c) for c in per_line], dtype=np.int64).reshape(shape))
    out["crossings"].attrs["description"] = f"how often the success fraction crosses {refine.fraction:g}"
    out.attrs = {"axis": axis, "fraction": refine.fraction, "confidence": refine.confidence}
    return out


def _crossings(
    f: np.ndarray, c: np.ndarray, x: np.ndarray, log: bool, refine: Refinement, many: bool
) -> list[dict[str, float]]:
    """Every crossing of the level along one line: ``f`` the settled fractions (NaN where not
    computed), ``c`` their seeds, ``x`` the axis values."""
    known = np.flatnonzero(np.isfinite(f))
    side = f[known] >= refine.fraction
    if many:
        lo, hi = wilson(f[known] * c[known], c[known], refine.z)
        certain = (lo > refine.fraction) | (hi < refine.fraction)
    else:  # one seed: no interval to speak of; the band is the bracket
        certain = np.ones(known.size, dtype=bool)
    out = []
    for k in np.flatnonzero(side[1:] != side[:-1]):
        i, j = known[k], known[k + 1]
        t = (refine.fraction - f[i]) / (f[j] - f[i])
        a, b = (np.log(x[i]), np.log(x[j])) if log else (x[i], x[j])
        estimate = a + t * (b - a)
        left = next((m for m in range(k, -1, -1) if certain[m]), 0)
        right = next((m for m in range(k + 1, known.size) if certain[m]), known.size - 1)
        band = (x[known[left]], x[known[right]])
        out.append(
            {
                "lower": min(x[i], x[j]),
                "upper": max(x[i], x[j]),
                "estimate": float(np.exp(estimate) if log else estimate),
                "band_lower": min(band),
                "band_upper": max(band),
                "n_seeds": float(min(c[i], c[j])),
            }
        )
    return out
