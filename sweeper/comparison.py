"""Theory against simulation: two stores that pair point by point, as one dataset.

:func:`compare` reduces each store over its seeds (ok points only) to a mean and a
standard error, puts the two means side by side along a labelled ``kernel`` dim, and
measures, per output both stores hold, the deviation of the theory from the simulation
in units of their combined error (``{output}_deviation_sigma``) and relative to the
theory (``{output}_deviation_relative``). :func:`describe` is what ``sweeper compare``
prints: per output, the worst deviation and where it is.

The error of a store's seed mean: the Monte-Carlo error the kernel declares, where it
declares one (``{output}_mc_error``, e.g. `dmft`'s: ``sqrt(sum_i e_i^2) / n`` over its
``n`` seeds; where that is zero, a point of a single Monte-Carlo block that knows no
error of its own, the standard error over seeds), else the standard error over seeds
(``std / sqrt(n)``, ``ddof = 1``), else zero for a store with a single seed and no declared
error (a deterministic theory); a simulation with a single seed has no error and gives no
``deviation_sigma`` (NaN).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from sweeper.creation import BOOKKEEPING
from sweeper.dataset import open as open_store
from sweeper.dataset import tidy
from sweeper.errors import SweeperError

SEED = "seed"
ERROR_SUFFIX = "_mc_error"  # a kernel's declared Monte-Carlo error of an output: `{output}_mc_error`
NOT_OUTPUTS = frozenset(BOOKKEEPING) | {"ok"}


def compare(
    theory: str | os.PathLike | xr.Dataset,
    simulation: str | os.PathLike | xr.Dataset,
    *,
    select: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """The two stores side by side along ``kernel``, with their deviation per shared output.

    ``theory`` and ``simulation``: store paths, or datasets from :func:`sweeper.open`.
    ``select``: ``{dim: value}`` picked (and dropped) in whichever store has ``dim``, e.g.
    ``{"d": 2000}`` for a simulation that sweeps the dimension the theory takes to
    infinity; a dim only one store has and that is not selected is kept (the other store
    broadcast along it).

    Every dim both stores have, except ``seed``, must carry the same coordinates
    (otherwise one line names the dim and both coordinate lists). Outputs only one store
    holds are kept as that store's seed mean, without the ``kernel`` dim, and named in
    the attrs ``only_in_theory`` / ``only_in_simulation``; fixed parameters both stores
    set to different values are named in ``notes``.
    """
    sides = {"theory": _dataset(theory), "simulation": _dataset(simulation)}
    for role, ds in sides.items():
        keep = {d: v for d, v in (select or {}).items() if d in ds.dims}
        try:
            sides[role] = ds.sel(keep, drop=True) if keep else ds
        except KeyError as exc:
            raise SweeperError(f"{_name(ds)}: cannot select {keep} ({exc}).") from None
    th, sim = sides["theory"], sides["simulation"]
    _check_paired(th, sim)
    outputs = {role: _outputs(ds) for role, ds in sides.items()}
    shared = [n for n in outputs["simulation"] if n in outputs["theory"]]
    if not shared:
        raise SweeperError(
            f"{_name(th)} and {_name(sim)} hold no output in common (theory: "
            f"{', '.join(outputs['theory'])}; simulation: {', '.join(outputs['simulation'])})."
        )
    labels = _kernel_labels(th, sim)
    out = xr.Dataset()
    for name in shared:
        (m_th, e_th), (m_sim, e_sim) = seed_stats(th, name), seed_stats(sim, name, one_seed_error=np.nan)
        out[name] = _side_by_side(m_th, m_sim, labels, th[name].attrs)
        out[f"{name}_error"] = _side_by_side(e_th, e_sim, labels, _error_attrs(name))
        diff = m_th - m_sim
        err = np.sqrt(e_th**2 + e_sim**2)
        sigma = xr.where(diff == 0, 0.0, diff / err.where(err > 0))
        out[f"{name}_deviation_sigma"] = sigma.assign_attrs(
            long_name=f"{name}: deviation in sigma",
            description="(theory - simulation seed mean) / sqrt(error_theory^2 + error_simulation^2)",
        )
        out[f"{name}_deviation_relative"] = (diff / abs(m_th).where(m_th != 0)).assign_attrs(
            long_name=f"{name}: relative deviation", description="(theory - simulation) / |theory|"
        )
    only = {role: [n for n in outputs[role] if n not in shared] for role in sides}
    for role, names in only.items():
        for name in names:
            mean, _ = seed_stats(sides[role], name)
            note = f"only in the {role} ({_name(sides[role])}): not compared"
            out[name] = mean.assign_attrs({**sides[role][name].attrs, "note": note})
    counts = [_n_ok(ds) for ds in (th, sim)]
    out["n_seeds"] = _side_by_side(*counts, labels, {"long_name": "ok seeds averaged"})
    out.attrs = {
        "theory": _name(th),
        "simulation": _name(sim),
        "compared": json.dumps(shared),
        "only_in_theory": json.dumps(only["theory"]),
        "only_in_simulation": json.dumps(only["simulation"]),
        "notes": "; ".join(_param_notes(th, sim)),
        "error_model": __doc__.split("\n\n")[2].replace("\n", " "),
        "select": json.dumps({k: _plain(v) for k, v in (select or {}).items()}),
    }
    return out


def seed_stats(ds: xr.Dataset, name: str, one_seed_error: float = 0.0) -> tuple[xr.DataArray, xr.DataArray]:
    """The seed mean of output ``name`` over ok points, and its error (see the module doc).

    ``one_seed_error``: the error of a single seed without a declared error: 0 for a
    theory (deterministic), NaN for a simulation (unknown).
    """
    values = ds[name].where(ds["ok"]) if "ok" in ds else ds[name]
    declared = f"{name}{ERROR_SUFFIX}"
    if SEED not in values.dims:
        error = ds[declared] if declared in ds else xr.full_like(values, one_seed_error)
        return values, error.where(values.notnull())
    n = values.notnull().sum(SEED)
    mean = values.mean(SEED)
    spread = values.std(SEED, ddof=1) / np.sqrt(n) if values.sizes[SEED] > 1 else None
    if declared in ds:
        e = ds[declared].where(values.notnull())
        error = np.sqrt((e**2).sum(SEED)) / n
        if spread is not None:  # a point with no error of its own (one Monte-Carlo block: 0)
            error = error.where(error > 0, spread)
    elif spread is not None:
        error = spread
    else:
        error = xr.full_like(mean, one_seed_error)
    return mean, error.where(n > 0)


def _dataset(source: str | os.PathLike | xr.Dataset) -> xr.Dataset:
    if isinstance(source, xr.Dataset):
        return source if "ok" in source or "status" not in source else tidy(source)
    ds = open_store(source)
    ds.attrs["store"] = str(source)
    return ds


def _outputs(ds: xr.Dataset) -> list[str]:
    """Data variables that are outputs: not bookkeeping, not a declared error of another output."""
    names = [n for n in ds.data_vars if n not in NOT_OUTPUTS]
    return [n for n in names if not (n.endswith(ERROR_SUFFIX) and n[: -len(ERROR_SUFFIX)] in ds)]


def _check_paired(th: xr.Dataset, sim: xr.Dataset) -> None:
    for dim in th.dims:
        if dim == SEED or dim not in sim.dims:
            continue
        a, b = th[dim].values, sim[dim].values
        if a.shape != b.shape or not all(_same(x, y) for x, y in zip(a.tolist(), b.tolist())):
            raise SweeperError(
                f"{_name(th)} and {_name(sim)} do not pair point by point: `{dim}` is "
                f"{_short(a)} in the theory and {_short(b)} in the simulation."
            )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-15)
    return a == b


def _side_by_side(a: xr.DataArray, b: xr.DataArray, labels: list[str], attrs: Mapping) -> xr.DataArray:
    joint = xr.concat([a, b], dim="kernel", join="exact", coords="minimal", compat="override")
    joint = joint.assign_coords(kernel=("kernel", np.asarray(labels, dtype=object)))
    joint.attrs = dict(attrs)
    return joint.transpose("kernel", ...)


def _error_attrs(name: str) -> dict[str, str]:
    return {"long_name": f"{name}: error of the seed mean", "description": "see the attrs' error_model"}


def _kernel_labels(th: xr.Dataset, sim: xr.Dataset) -> list[str]:
    names = [str(ds.attrs.get("kernel", role)) for ds, role in ((th, "theory"), (sim, "simulation"))]
    if names[0] == names[1]:
        names = [f"{n} ({ds.attrs.get('grid_name', role)})" for n, ds, role in
                 zip(names, (th, sim), ("theory", "simulation"))]  # fmt: skip
    return names


def _n_ok(ds: xr.Dataset) -> xr.DataArray:
    if "ok" not in ds:
        return xr.DataArray(np.nan)
    return ds["ok"].sum(SEED) if SEED in ds["ok"].dims else ds["ok"].astype(int)


def _param_notes(th: xr.Dataset, sim: xr.Dataset) -> list[str]:
    """Fixed parameters both stores set, to different values."""
    try:
        a, b = (json.loads(ds.attrs.get("fixed_params", "{}")) for ds in (th, sim))
    except (TypeError, ValueError):
        return []
    differ = [f"{k} {a[k]!r} vs {b[k]!r}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    return [f"fixed parameters differ (theory vs simulation): {', '.join(differ)}"] if differ else []


def _name(ds: xr.Dataset) -> str:
    return str(ds.attrs.get("store") or ds.attrs.get("grid_name") or ds.attrs.get("kernel") or "a dataset")


def _short(values: np.ndarray, n: int = 6) -> str:
    items = [_plain(v) for v in values.tolist()]
    return repr(items if len(items) <= n else [*items[:n], "..."]) + f" ({len(items)} values)"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# -- what `sweeper compare` prints --------------------------------------------------------


def worst(da: xr.DataArray) -> tuple[float, dict[str, Any]] | None:
    """The entry of ``da`` largest in absolute value, and its coordinates; None if all NaN."""
    values = np.abs(np.asarray(da.values, dtype=float))
    if not np.isfinite(values).any() and not np.isinf(values).any():
        return None
    flat = int(np.nanargmax(np.where(np.isnan(values), -1.0, values)))
    index = np.unravel_index(flat, values.shape) if values.shape else ()
    where = {d: _plain(da[d].values[i]) if d in da.coords else i for d, i in zip(da.dims, index)}
    return float(np.asarray(da.values).reshape(-1)[flat]) if values.shape else float(da.values), where


def describe(ds: xr.Dataset) -> str:
    """Per compared output: the worst deviation in sigma and relative, with where."""
    lines = [f"theory      {ds.attrs['theory']}", f"simulation  {ds.attrs['simulation']}"]
    if ds.attrs.get("notes"):
        lines.append(f"note        {ds.attrs['notes']}")
    for role in ("theory", "simulation"):
        only = json.loads(ds.attrs.get(f"only_in_{role}", "[]"))
        if only:
            lines.append(f"note        only in the {role}, not compared: {', '.join(only)}")
    compared = json.loads(ds.attrs["compared"])
    width = max([len(n) for n in compared] + [6])
    for name in compared:
        sigma = worst(ds[f"{name}_deviation_sigma"])
        rel = worst(ds[f"{name}_deviation_relative"])
        s = "sigma n/a (no error estimate)" if sigma is None else f"{sigma[0]:+.2f} sigma at {_at(sigma[1])}"
        r = "" if rel is None else f"; relative {rel[0]:+.2%} at {_at(rel[1])}"
        lines.append(f"{name:<{width}}  worst {s}{r}")
    return "\n".join(lines)


def worst_sigma(ds: xr.Dataset) -> float:
    """The largest |deviation_sigma| over every compared output (NaN if none has an error)."""
    found = [worst(ds[f"{n}_deviation_sigma"]) for n in json.loads(ds.attrs["compared"])]
    values = [abs(w[0]) for w in found if w is not None]
    return max(values) if values else math.nan


def parse_selections(items: Sequence[str]) -> dict[str, Any]:
    """``["d=2000", "case=gd"]`` as ``{"d": 2000, "case": "gd"}`` (numbers where they parse)."""
    out: dict[str, Any] = {}
    for item in items:
        dim, sep, text = item.partition("=")
        if not sep or not dim.strip():
            raise SweeperError(f"--select: expected DIM=VALUE, got {item!r} (e.g. `--select d=2000`).")
        out[dim.strip()] = _number(text.strip())
    return out


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _at(where: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in where.items()) or "-"
