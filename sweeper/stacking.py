"""Several stores of one kernel that differ in fixed parameters, as one dataset: :func:`open_many`.

A shape parameter (the width ``K``, the time grid's ``t_max``) cannot be swept: one store
per value, stacked here along a dim per differing parameter (``sweeper.open([...])``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import xarray as xr

from sweeper.dataset import PathLike, ok_flag
from sweeper.dataset import open as open_store
from sweeper.errors import SweeperError


def open_many(paths: Sequence[PathLike], *, chunks: Any = None) -> xr.Dataset:
    """Stores of one kernel that differ in fixed parameters, as one dataset.

    Each fixed parameter whose value differs between the stores becomes a dim (first,
    in the order of the kernel's parameters); the stores are joined outer on every other
    dim, so a kernel dim whose coordinates differ (``student`` of size ``K``, ``time`` of
    another ``t_max``) holds NaN where a store has no value. The stores must share the
    kernel, its version, the swept dims, the case parameters, the grid seed and the stored
    outputs; otherwise one line names the stores and the fields that differ.
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise SweeperError("sweeper.open([]): no stores given.")
    if len(paths) == 1:
        return open_store(paths[0], chunks=chunks)
    datasets = [open_store(p, chunks=chunks) for p in paths]
    fixed = [_fixed_params(ds, p) for ds, p in zip(datasets, paths)]
    _check_alike(datasets, paths)
    keys = [k for k in fixed[0] if all(k in f for f in fixed)]
    differ = [k for k in keys if len({json.dumps(f[k], sort_keys=True) for f in fixed}) > 1]
    uneven = sorted(set().union(*fixed) - set(keys))
    if uneven:
        raise SweeperError(
            f"cannot align {_names(paths)}: fixed parameters {uneven} are not in every store "
            "(swept in one, fixed in another?)."
        )
    if not differ:
        raise SweeperError(
            f"cannot align {_names(paths)}: they differ in no fixed parameter, so there is no dim "
            "to stack them along."
        )
    _check_distinct(fixed, differ, paths)
    parts = []
    for ds, f in zip(datasets, fixed):
        ds = ds.drop_vars("ok", errors="ignore")
        ds = ds.expand_dims({k: [_coord_value(f[k])] for k in differ})
        parts.append(ds)
    with xr.set_options(keep_attrs=True):
        joint = xr.merge(parts, join="outer", compat="no_conflicts", combine_attrs="drop_conflicts")
    joint = joint.transpose(*differ, ...)
    if "status" in joint:
        joint["ok"] = ok_flag(joint.status)
    common = {k: v for k, v in fixed[0].items() if k not in differ}
    for k in differ:
        joint[k].attrs = {"long_name": k, "description": f"fixed parameter {k} of each store stacked here"}
    joint.attrs.update(
        fixed_params=json.dumps(common, sort_keys=True),
        stacked_params=json.dumps(differ),
        stores=json.dumps(paths),
    )
    return joint


def _fixed_params(ds: xr.Dataset, path: str) -> dict[str, Any]:
    try:
        return dict(json.loads(ds.attrs["fixed_params"]))
    except (KeyError, TypeError, ValueError):
        raise SweeperError(
            f"{path}: no readable `fixed_params` attr; cannot align it with other stores."
        ) from None


def _check_alike(datasets: Sequence[xr.Dataset], paths: Sequence[str]) -> None:
    """Refuse stores that differ in more than their fixed parameters, naming the fields."""

    def fields(ds: xr.Dataset) -> dict[str, Any]:
        components = _components(ds)
        return {
            "kernel": ds.attrs.get("kernel"),
            "kernel_version": ds.attrs.get("kernel_version"),
            "swept dims": ds.attrs.get("swept_dims"),
            "case parameters": sorted(c for c in ds.coords if ds[c].dims == ("case",) and c != "case"),
            "grid_seed": ds.attrs.get("grid_seed"),
            "outputs": components.get("outputs"),
        }

    first = fields(datasets[0])
    for ds, path in zip(datasets[1:], paths[1:]):
        other = fields(ds)
        bad = [f"{k} {first[k]!r} vs {other[k]!r}" for k in first if first[k] != other[k]]
        if bad:
            raise SweeperError(f"cannot align {paths[0]} and {path}: {'; '.join(bad)}.")


def _check_distinct(fixed: Sequence[Mapping[str, Any]], differ: Sequence[str], paths: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    for f, path in zip(fixed, paths):
        key = json.dumps([f[k] for k in differ])
        if key in seen:
            at = ", ".join(f"{k}={f[k]!r}" for k in differ)
            raise SweeperError(f"cannot align {seen[key]} and {path}: both hold {at}.")
        seen[key] = path


def _components(ds: xr.Dataset) -> dict[str, Any]:
    try:
        return dict(json.loads(ds.attrs.get("fingerprint", "{}")))
    except (TypeError, ValueError):
        return {}


def _coord_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value)  # a tuple parameter: its JSON text labels the dim
    if value is None:
        return "None"
    return value


def _names(paths: Sequence[str]) -> str:
    return ", ".join(paths)
