"""A store as the dataset an analyst wants: :func:`open`.

``xr.open_zarr`` gives the store as written; :func:`open` gives it ready for a notebook:

- masking works: an ``ok`` boolean (``status == 1``) and ``message`` as Python strings
  (numpy's ``StringDType`` has no common type with the NaN that ``where`` inserts);
- cases are indexed by a readable label (``case = ["gd", "sgd", "psgd tau=1"]``), the
  parameters each case sets kept as coordinates along ``case``;
- short ``long_name`` labels for plot axes and legends, the rest in ``description``;
- categorical outputs carry CF ``flag_values`` / ``flag_meanings`` (from the kernel's
  declaration when the store predates them);
- attrs are netCDF-safe (``ds.to_netcdf`` works): mappings and mixed lists as JSON
  strings, booleans as integers, ``None`` dropped;
- a store larger than :data:`LAZY_ABOVE` bytes (256 MiB), or of more than
  :data:`EAGER_CHUNKS` chunks, opens as dask arrays (out of core); a smaller one is read
  into memory.

Several stores of one kernel that differ in fixed parameters (one per width ``K``, one
per ``t_max``) open as one dataset with a dim per differing parameter
(:func:`sweeper.stacking.open_many`).
Stores written by any earlier sweeper open too: everything here reads what is there.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from sweeper.blocks import OK
from sweeper.creation import quiet
from sweeper.store import Store

# bytes (uncompressed): a larger store opens as dask arrays, a smaller one is read into memory
# (10^6 points in 1000 blocks, 90 MB: 4.4 s to read, 0.07 s to open lazily)
LAZY_ABOVE = 2**28
# store chunks: reading one costs ~0.5 ms however small (10^6 points in blocks of 16, 66 MB, took
# 145 s to read whole), so a store of more opens lazily and reads only what a computation needs
EAGER_CHUNKS = 4000
SHORT_NAME = 28  # characters: a longer long_name loses its formula, longer units move to description

PathLike = str | os.PathLike


def open(path: PathLike | Sequence[PathLike], *, chunks: Any = None) -> xr.Dataset:  # noqa: A001
    """The store at ``path`` as an analyst's dataset (see the module doc).

    ``chunks``: ``None`` (default) reads a store of at most :data:`LAZY_ABOVE` bytes (256 MiB)
    and :data:`EAGER_CHUNKS` chunks into memory, and opens a larger one as dask arrays of
    about 128 MiB (``chunks="auto"``);
    anything else is passed to :func:`xarray.open_zarr` (``{}``: the store's own chunks,
    one per block), always lazily. A list of paths is :func:`sweeper.stacking.open_many`.
    """
    if isinstance(path, (list, tuple)):
        from sweeper.stacking import open_many

        return open_many(path, chunks=chunks)
    Store.open(path, mode="r")  # one clear line if it is not a sweeper store
    with quiet():
        ds = xr.open_zarr(path, chunks=None, decode_times=False)  # finished_at: see tidy
        in_memory = chunks is None and ds.nbytes <= LAZY_ABOVE and _chunk_count(ds) <= EAGER_CHUNKS
        if chunks is None or chunks == "auto":
            chunks = auto_chunks(ds)
        ds = xr.open_zarr(path, chunks=chunks, decode_times=False)
        if in_memory:
            ds = ds.load()  # through dask: its threads read the chunks concurrently
    return tidy(ds)


def _chunk_count(ds: xr.Dataset) -> int:
    """Store chunks a full read opens (one per block and variable)."""
    total = 0
    for var in ds.data_vars.values():
        chunks = var.encoding.get("chunks") or var.shape
        total += math.prod(math.ceil(n / max(c, 1)) for n, c in zip(var.shape, chunks))
    return total


def auto_chunks(ds: xr.Dataset, limit: str = "128MiB") -> dict[str, int]:
    """Dask chunks of about ``limit`` for the largest variable, in whole store chunks (blocks).

    Dask's own ``"auto"`` cannot size ``message`` (strings), so the largest variable of fixed-size
    items is sized, and every variable takes its sizes. (A small store's ``message`` can be its
    largest variable in bytes.)
    """
    from dask.array.core import normalize_chunks

    sized = [v for v in ds.data_vars.values() if not _is_string(v.dtype) and v.dtype != object]
    var = max(sized or ds.data_vars.values(), key=lambda v: v.nbytes)
    previous = var.encoding.get("chunks") or var.shape
    sizes = normalize_chunks("auto", var.shape, limit=limit, dtype=var.dtype, previous_chunks=previous)
    chunks = {d: -1 for d in ds.dims}
    chunks.update({d: c[0] for d, c in zip(var.dims, sizes) if c})
    return chunks


def tidy(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` (a store as ``xr.open_zarr`` reads it) made ready for analysis; see the module doc."""
    ds = ds.copy()
    for name in list(ds.variables):
        if _is_string(ds[name].dtype):
            ds[name] = ds[name].astype(object)
        elif ds[name].dtype.kind == "M":  # kept in seconds since the epoch, as stored: a NaN (not
            # NaT) where masked, and a float any netCDF format holds after any operation
            seconds = (ds[name] - np.datetime64("1970-01-01T00:00:00", "ns")) / np.timedelta64(1, "s")
            ds[name] = seconds.assign_attrs(ds[name].attrs, units="seconds since 1970-01-01")
    if "status" in ds:
        ds["ok"] = ok_flag(ds.status)
    _add_flags(ds)
    ds = label_cases(ds)
    for var in ds.variables.values():
        var.attrs = netcdf_safe(shorten(var.attrs))
        var.encoding = {}  # zarr's (chunks, codecs, fill values) mean nothing to another format
    ds.attrs = netcdf_safe(ds.attrs)
    return ds


def ok_flag(status: xr.DataArray) -> xr.DataArray:
    """``status == 1`` as a boolean, for ``ds.where(ds.ok)``."""
    ok = status == OK
    ok.attrs = {
        "long_name": "finished ok",
        "description": "status == 1: the point finished, its outputs valid",
    }
    return ok


# -- cases ----------------------------------------------------------------------------------


def label_cases(ds: xr.Dataset) -> xr.Dataset:
    """Index ``case`` by a readable label built from the parameters the cases set.

    The label holds the text values (``gd``, ``psgd``) and, among cases with the same text,
    the numbers that tell them apart (``psgd tau=1``); a store whose ``case`` is already
    labelled, or that has none, is returned as it is.
    """
    if "case" not in ds.dims or ds["case"].dtype.kind not in "iu":
        return ds
    params = [n for n, c in ds.coords.items() if c.dims == ("case",) and n != "case"]
    if not params:
        return ds
    labels = case_labels([{p: ds[p].values[i] for p in params} for i in range(ds.sizes["case"])])
    ds = ds.assign_coords(case=("case", np.asarray(labels, dtype=object)))
    ds["case"].attrs = {
        "long_name": "case",
        "description": f"the explicit cases of the grid, labelled by {', '.join(params)}",
    }
    return ds


def case_labels(cases: Sequence[Mapping[str, Any]]) -> list[str]:
    """A distinct label per case: its text values, then the numbers telling apart cases of one text."""
    names = list(cases[0]) if cases else []
    varying = [n for n in names if len({_show(c[n]) for c in cases}) > 1]
    text = [n for n in varying if _is_text(cases[0][n])]
    numbers = [n for n in varying if n not in text]
    heads = [" ".join(_show(c[n]) for n in text) for c in cases]
    labels = []
    for head, case in zip(heads, cases):
        same = [c for h, c in zip(heads, cases) if h == head]
        tell = [n for n in numbers if len({_show(c[n]) for c in same}) > 1]
        parts = [head] if head else []
        parts += [f"{n}={_show(case[n])}" for n in tell]
        labels.append(" ".join(parts))
    if len(set(labels)) < len(labels) or not all(labels):  # identical cases: number them
        labels = [f"{label} #{i}".strip() for i, label in enumerate(labels)]
    return labels


def _is_text(value: Any) -> bool:
    return isinstance(value, (str, np.str_)) or _is_string(np.asarray(value).dtype)


def _show(value: Any) -> str:
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.item() if np.ndim(value) == 0 else value.tolist()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _is_string(dtype: np.dtype) -> bool:
    return dtype.kind in "UT" or type(dtype).__name__ == "StringDType"


# -- labels ---------------------------------------------------------------------------------


def shorten(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Labels short enough for an axis or a legend; what is cut goes to ``description``.

    A ``long_name`` loses a trailing parenthetical ("seed of the point (with grid_seed, its
    random stream)" -> "seed of the point"); one longer than :data:`SHORT_NAME` characters
    also loses its formula ("population risk E[(f* - f)^2]/2" -> "population risk",
    "student-teacher overlap M = W W*^T / d" -> "student-teacher overlap M"). ``units`` longer
    than :data:`SHORT_NAME` move to ``description`` (a sentence, not a unit).
    """
    out = dict(attrs)
    details = []
    name = out.get("long_name")
    if isinstance(name, str):
        cut = _without_trailing_parenthetical(name)
        if len(cut) > SHORT_NAME:
            cut = _without_formula(cut)
        if cut and cut != name:
            out["long_name"] = cut
            details.append(name)
    units = out.get("units")
    if isinstance(units, str) and len(units) > SHORT_NAME:
        del out["units"]
        details.append(f"units: {units}")
    if details:
        out["description"] = "; ".join(details + ([out["description"]] if out.get("description") else []))
    return out


def _without_formula(text: str) -> str:
    """``text`` before its formula: before `` = ``, else the first word with ``[`` or ``^``, else ``(``.

    Each cut is made only while the text is still too long, and none that would end on a
    function word ("region of the (kappa, delta) phase diagram" stays whole).
    """
    for cut in (" = ", "[^", "("):
        if len(text) <= SHORT_NAME:
            break
        if cut == " = ":
            shorter = text.split(cut)[0]
        else:
            words = text.split(" ")
            at = next((i for i, w in enumerate(words) if i and any(c in w for c in cut)), len(words))
            shorter = " ".join(words[:at])
        if shorter.split(" ")[-1] in _FUNCTION_WORDS:
            return text
        text = shorter
    return text


_FUNCTION_WORDS = frozenset(
    {"a", "an", "the", "of", "to", "in", "on", "at", "by", "for", "with", "and", "or"}
)


def _without_trailing_parenthetical(text: str) -> str:
    if not text.endswith(")"):
        return text
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            return text[:i].rstrip() if i > 0 and text[i - 1] == " " else text
    return text


# -- categorical outputs --------------------------------------------------------------------


def _add_flags(ds: xr.Dataset) -> None:
    """CF flags on categorical outputs that lack them (a store made before ``Output.flags``)."""
    for name, output in _declared_outputs(str(ds.attrs.get("kernel", ""))).items():
        flags = {k: v for k, v in output.attrs().items() if k.startswith("flag_")}
        if flags and name in ds and "flag_values" not in ds[name].attrs:
            ds[name].attrs.update(flags)


def _declared_outputs(kernel: str) -> Mapping[str, Any]:
    """The outputs the kernel declares (class declarations: no parameters needed); {} if not installed."""
    from kernels.registry import get_kernel

    try:
        return get_kernel(kernel).outputs
    except Exception:  # noqa: BLE001 - an uninstalled or broken kernel: no flags, the data still opens
        return {}


def flag_colors(da: xr.DataArray) -> dict[str, Any]:
    """Keyword arguments for ``da.plot(**flag_colors(da))`` of a categorical output.

    One colour per flag and a colour bar naming them; a meaning that names a colour
    (``green``) is drawn in it, the others in matplotlib's colour cycle.
    """
    from matplotlib import colors as mcolors
    from matplotlib import rcParams
    from matplotlib.ticker import FuncFormatter

    values = np.asarray(da.attrs["flag_values"], dtype=float)
    meanings = str(da.attrs["flag_meanings"]).split()
    cycle = iter(rcParams["axes.prop_cycle"].by_key()["color"] * len(meanings))
    chosen = [m if mcolors.is_color_like(m) else next(cycle) for m in meanings]
    edges = np.concatenate([[values[0] - 0.5], (values[1:] + values[:-1]) / 2, [values[-1] + 0.5]])
    names = dict(zip(values.tolist(), meanings))
    return {
        "cmap": mcolors.ListedColormap(chosen),
        "norm": mcolors.BoundaryNorm(edges, len(chosen)),
        "cbar_kwargs": {"ticks": values, "format": FuncFormatter(lambda x, _pos: names.get(float(x), ""))},
    }


# -- attrs ----------------------------------------------------------------------------------


def netcdf_safe(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attrs netCDF can hold: text, numbers and lists of numbers; mappings and other lists as JSON."""
    out = {}
    for key, value in attrs.items():
        value = _plain(value)
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, list):
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            value = value if numbers and value else json.dumps(value)
        elif isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        elif not isinstance(value, (str, int, float)):
            value = str(value)
        out[key] = value
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value
