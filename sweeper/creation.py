"""Creating a store: the template laid out as zarr arrays, atomically in place.

The full-size template (:mod:`sweeper.template`: coords, attrs, outputs filled
with NaN; here ``status`` 0 = pending, 1 = ok, 2 = failed, ``wall_time``,
``finished_at``, ``message`` beside them, the integrity records and the block
index) is written once; empty chunks cost nothing on disk, so creating it is
instant at any grid size. A local store is laid out beside its target and renamed
into place, so a kill at any moment leaves either no store or a whole one; an
object store is written in place. Also where a store lives (a path or an fsspec
URL) and the filter that quiets zarr's notes on the store's metadata.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import zarr

from sweeper import block_index, integrity
from sweeper.blocks import PENDING
from sweeper.disk import check_writable
from sweeper.errors import StoreError
from sweeper.layout import Layout
from sweeper.lease import Lease
from sweeper.removal import check_removable, clean_leftovers
from sweeper.template import Template

BOOKKEEPING = ("status", "wall_time", "finished_at", "message")


def is_url(where: str | Path) -> bool:
    """An fsspec URL (``s3://bucket/x.zarr``, ``gs://...``, ``memory://...``), not a local path."""
    return "://" in str(where)


def store_exists(where: str | Path) -> bool:
    if is_url(where):
        fs, root = fsspec.core.url_to_fs(str(where))
        return fs.exists(root)
    return Path(where).exists()


class StoreTaken(StoreError):
    """Another driver created the store first, while this one was laying out its own."""


def _remove(where: str | Path) -> None:
    if is_url(where):
        fs, root = fsspec.core.url_to_fs(str(where))
        fs.rm(root, recursive=True)
    else:
        shutil.rmtree(where)


def create(path: str | Path, template: Template, overwrite: bool, lease: Lease | None) -> None:
    """Lay out a new store at ``path``, replacing a sweeper store there if ``overwrite``.

    With a ``lease``, the new store holds it from its first moment in place.
    """
    exists = store_exists(path)
    if exists and not overwrite:
        raise StoreError(f"{path} exists; use `--overwrite` to replace it.")
    if exists:
        check_removable(path, keep=_grid_files(template))
    if is_url(path):  # an object store has no atomic rename: write in place
        with paused(lease):
            if exists:
                _remove(path)
            _lay_out(str(path), template)
            if lease is not None:
                lease.write_into(path)
        return
    path = Path(path)
    check_writable(path, template.nbytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    # Lay the template out beside the target and rename it into place: a kill at any
    # moment leaves either no store or a whole one, never a half-made one.
    staging = path.with_name(f".{path.name}.creating-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        lay_out_beside(staging, template, lease)
        with paused(lease):
            _move_into_place(staging, path, replace=exists)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise StoreError(f"{path}: cannot create the store ({exc.strerror or exc}).") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _move_into_place(staging: Path, path: Path, replace: bool) -> None:
    """Rename ``staging`` to ``path``; the store there before (if ``replace``) is removed."""
    aside = path.with_name(f".{path.name}.removing-{os.getpid()}")
    if replace:
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(path, aside)
    try:
        os.rename(staging, path)  # fails if another driver put a store there meanwhile
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        shutil.rmtree(staging, ignore_errors=True)
        raise StoreTaken(f"{path}: another driver created this store at the same moment.") from None
    if replace:
        shutil.rmtree(aside, ignore_errors=True)


def _grid_files(template: Template) -> tuple[str, ...]:
    source = template.attrs.get("grid_file")
    return (source,) if source and source != "<string>" else ()


def paused(lease: Lease | None):
    """No heartbeat of ``lease`` (if any) inside this block: the store is being moved."""
    return lease.paused() if lease is not None else contextlib.nullcontext()


def lay_out_beside(staging: Path, template: Template, lease: Lease | None) -> None:
    """Lay ``template`` out in the new folder ``staging``, ``lease`` first (see :func:`create`)."""
    staging.mkdir()
    if lease is not None:  # first: the folder names its live driver from the start
        lease.write_into(staging)
    _lay_out(str(staging), template, mode="a")


def _lay_out(where: str, template: Template, mode: str = "w") -> None:
    """Write ``template``, its integrity records and its block index into a zarr group at ``where``."""
    with quiet():
        root = zarr.open_group(where, mode=mode, zarr_format=3)
        _write_template(root, template)
        integrity.lay_out(root, [*template.outputs, *BOOKKEEPING[1:]])
        block_index.lay_out(root, Layout(template.shape, template.chunks).n_blocks)
        zarr.consolidate_metadata(where)


def _write_template(root: zarr.Group, t: Template) -> None:
    root.attrs.update(t.attrs)
    grid_dims = t.dims
    for dim, values in t.grid_coords.items():
        arr = _array(root, dim, values.shape, (len(values),), values.dtype, (dim,), _fill(values.dtype))
        arr[:] = values
        arr.attrs.update(t.coord_attrs.get(dim, {}))
    for name, values in t.case_coords.items():
        arr = _array(root, name, values.shape, values.shape, values.dtype, ("case",), _fill(values.dtype))
        arr[:] = values
        arr.attrs.update(t.coord_attrs.get(name, {}))
    for dim, values in t.kernel_coords.items():
        arr = _array(root, dim, values.shape, values.shape, values.dtype, (dim,), _fill(values.dtype))
        arr[:] = values
        arr.attrs.update(t.coord_attrs.get(dim, {}))
    coordinates = " ".join(t.case_coords)
    for name, out in t.outputs.items():
        extra = t.output_shape(name)
        arr = _array(root, name, t.shape + extra, t.chunks + extra, np.float64, grid_dims + out.dims, np.nan)
        arr.attrs.update(out.attrs())
        if coordinates:
            arr.attrs["coordinates"] = coordinates
    book = {
        "status": (
            np.int8,
            PENDING,
            {
                "long_name": "status of the point",
                "flag_values": [0, 1, 2, 3],
                "flag_meanings": "pending ok failed not_needed",
            },
        ),
        "wall_time": (np.float64, np.nan, {"long_name": "wall time of the point", "units": "s"}),
        "finished_at": (
            np.float64,
            np.nan,
            {"long_name": "time the point finished", "units": "seconds since 1970-01-01"},
        ),
        "message": (str, "", {"long_name": "failure message of the point"}),
    }
    for name, (dtype, fill, attrs) in book.items():
        arr = _array(root, name, t.shape, t.chunks, dtype, grid_dims, fill)
        arr.attrs.update(attrs)
        if coordinates:
            arr.attrs["coordinates"] = coordinates


def _array(root, name, shape, chunks, dtype, dims, fill):
    if np.dtype(dtype).kind in "UO":
        dtype = str  # variable-length UTF-8: the string type zarr v3 specifies
    return root.create_array(
        name,
        shape=tuple(shape),
        chunks=tuple(max(1, c) for c in chunks),
        dtype=dtype,
        fill_value=fill,
        dimension_names=tuple(dims),
    )


def _fill(dtype: np.dtype) -> Any:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    if dtype.kind in "iub":
        return 0
    return ""


class quiet(warnings.catch_warnings):
    """Silence zarr's notes on consolidated metadata (not in the v3 spec yet) and on the lease file."""

    def __enter__(self):
        super().__enter__()
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        # The lease (`lease.json`) sits at the store's root beside the zarr nodes.
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy.*")
        return self
