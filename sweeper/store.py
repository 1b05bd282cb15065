"""The zarr store of one grid: laying out the template, region writes, status, resume.

The full-size template (:mod:`sweeper.template`: coords, attrs, outputs filled
with NaN; here ``status`` 0 = pending, 1 = ok, 2 = failed, ``wall_time``,
``finished_at``, ``message`` beside them) is written once; empty chunks cost
nothing on disk, so creating it is instant at any grid size. Results are then
written one block (= one chunk) at a time by a single writer, outputs first and
``status`` last: a point reads as done only once its outputs are on disk, so a
crash at any moment loses no finished point and leaves a valid store that
`xarray.open_zarr` reads.

Only this module knows zarr.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import zarr
from zarr.core.sync import sync  # zarr's own bridge to its event loop

from sweeper import integrity
from sweeper.blocks import FAILED, OK, PENDING, BlockResult
from sweeper.disk import check_writable
from sweeper.errors import StoreError
from sweeper.layout import Layout
from sweeper.lease import Lease
from sweeper.removal import check_removable, clean_leftovers
from sweeper.spec import GridSpec
from sweeper.template import Template, grid_attrs

BOOKKEEPING = ("status", "wall_time", "finished_at", "message")

# The block index: one code per block (by flat id, see Layout.flat_id) saying what its
# status chunk is known to hold, so a resume reads a few index chunks instead of every
# status chunk. It lives in a subgroup, out of the dataset `xarray.open_zarr` shows.
# Invariant: a code other than UNKNOWN on disk is true of the status chunk on disk; the
# index is marked UNKNOWN on disk before a block's status is written, and refined after.
INDEX = "_sweeper/block_state"
ALL_PENDING, UNKNOWN, ALL_OK, SETTLED = 0, 1, 2, 3  # SETTLED: none pending, some failed
INDEX_CHUNK = 2**16  # blocks per index chunk
INDEX_FLUSH_SECONDS = 2.0  # refined codes reach the disk at most this late (or at `flush`)
PAD = -1  # status rows of blocks smaller than a chunk are padded with this


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


class Store:
    """A grid's results on disk, or under an fsspec URL; one writer per store."""

    def __init__(self, path: str | Path, group: zarr.Group):
        self.path = path if is_url(path) else Path(path)
        self.group = group
        self.lease: Lease | None = None  # checked before each write: a driver that lost it stops
        self._arrays: dict[str, zarr.AsyncArray] = {}  # handles cached for the hot write path
        self.records = integrity.BlockRecords.open(group)  # None: a store made before records
        self.dims = tuple(group.attrs["swept_dims"])
        status = group["status"]
        self.layout = Layout(tuple(status.shape), tuple(status.chunks))
        self.outputs = [
            k
            for k in group.array_keys()
            if k not in BOOKKEEPING and k not in self.dims and _is_output(group[k], self.dims)
        ]
        self._states: np.ndarray | None = None  # the block index as known here (flat ids)
        self._on_disk: np.ndarray | None = None  # ... and as it is on disk
        self._dirty: set[int] = set()  # index chunks to write
        self._announced: set[int] = set()  # blocks marked UNKNOWN to be written, not written yet
        self._flushed = time.monotonic()

    # -- creation and opening ---------------------------------------------------------
    @classmethod
    def create(
        cls, path: str | Path, template: Template, overwrite: bool = False, lease: Lease | None = None
    ) -> Store:
        """Lay out a new store, replacing a sweeper store at ``path`` if ``overwrite``.

        With a ``lease``, the new store holds it from its first moment in place.
        """
        exists = store_exists(path)
        if exists and not overwrite:
            raise StoreError(f"{path} exists; use `--overwrite` to replace it.")
        if exists:
            check_removable(path, keep=_grid_files(template))
        if is_url(path):  # an object store has no atomic rename: write in place
            with _paused(lease):
                if exists:
                    _remove(path)
                _lay_out(str(path), template)
                if lease is not None:
                    lease.write_into(path)
            return cls._held(path, lease)
        path = Path(path)
        check_writable(path, template.nbytes())
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_leftovers(path)
        # Lay the template out beside the target and rename it into place: a kill at any
        # moment leaves either no store or a whole one, never a half-made one.
        staging = path.with_name(f".{path.name}.creating-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir()
            if lease is not None:  # first: the folder names its live driver from the start
                lease.write_into(staging)
            _lay_out(str(staging), template, mode="a")
            with _paused(lease):
                _move_into_place(staging, path, replace=exists)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise StoreError(f"{path}: cannot create the store ({exc.strerror or exc}).") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls._held(path, lease)

    @classmethod
    def _held(cls, path: str | Path, lease: Lease | None) -> Store:
        store = cls.open(path)
        if lease is not None:
            lease.adopt()
            store.lease = lease
        return store

    @classmethod
    def open(cls, path: str | Path, mode: str = "r+") -> Store:
        if not store_exists(path):
            raise StoreError(f"{path}: no such store.")
        try:
            with _quiet():
                group = zarr.open_group(str(path), mode=mode, zarr_format=3)
            group.attrs["swept_dims"]
            group["status"]
        except Exception as exc:  # noqa: BLE001 - any failure here means "not our store"
            raise StoreError(f"{path}: not a sweeper store ({type(exc).__name__}: {exc}).") from None
        return cls(path, group)

    @classmethod
    def preflight(cls, path: str | Path, spec: GridSpec, template: Template, overwrite: bool = False) -> None:
        """Every check :meth:`create` or :meth:`open_for` would make, writing nothing."""
        if store_exists(path) and not overwrite:
            cls.open(path, mode="r")._check_resumable(spec)
            return
        if store_exists(path):
            check_removable(path, keep=() if spec.source == "<string>" else (spec.source,))
        if not is_url(path):  # an object store has no free space to check
            check_writable(Path(path), template.nbytes())

    @classmethod
    def open_for(cls, path: str | Path, spec: GridSpec) -> Store:
        """Open an existing store for ``spec``, growing its seeds if ``spec`` adds some.

        The grid attrs (text, title, ...) then follow ``spec``: the latest accepted grid file.
        """
        store = cls.open(path)
        new_seeds = store._check_resumable(spec)
        if new_seeds is not None:
            store.grow_seeds(new_seeds)
        store._follow_grid(spec)
        return store

    def _check_resumable(self, spec: GridSpec) -> tuple[int, ...] | None:
        """Refuse a store of another grid; returns the seeds to grow to, if ``spec`` adds some."""
        path = self.path
        how = "use `--overwrite` to replace it, or `--store` to write elsewhere"
        stored = self.attrs.get("fingerprint")
        if stored is None:
            raise StoreError(
                f"{path} was written by an older sweeper that did not record everything that "
                f"determines its numbers (kernel version, resolved defaults), so it cannot be "
                f"resumed safely; {how}."
            )
        if self.attrs.get("grid_fingerprint") != spec.fingerprint():
            changes = spec.changes_from(json.loads(stored), self.attrs.get("grid_text", ""))
            raise StoreError(
                f"{path} holds results of another grid ({'; '.join(changes) or 'fingerprints differ'}); "
                f"{how}."
            )
        old_seeds = tuple(int(s) for s in self.group["seed"][:])
        new_seeds = tuple(spec.seeds)
        if new_seeds == old_seeds:
            return None
        if new_seeds[: len(old_seeds)] != old_seeds:
            raise StoreError(
                f"{path} has seeds {list(old_seeds)}; a resubmission may only append seeds "
                f"(got {list(new_seeds)}). Use `--store` for another store or `--overwrite`."
            )
        return new_seeds

    def _follow_grid(self, spec: GridSpec) -> None:
        """Rewrite the grid attrs (text, title, ...) to ``spec``'s, if they differ."""
        new = grid_attrs(spec)
        if all(self.attrs.get(k) == v for k, v in new.items()):
            return
        with _quiet():
            self.group.attrs.update(new)
            zarr.consolidate_metadata(str(self.path))  # readers open the consolidated copy
            self.group = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
            self._arrays = {}

    @property
    def attrs(self) -> Mapping[str, Any]:
        return self.group.attrs

    def grow_seeds(self, seeds: tuple[int, ...]) -> None:
        """Append seeds along the last dim; existing results stay where they are."""
        self._load_index()  # read under the old layout, carried over to the new one below
        n = len(seeds)
        with _quiet():
            for key in self.group.array_keys():
                arr = self.group[key]
                dims = tuple(arr.metadata.dimension_names or ())
                if "seed" in dims:
                    axis = dims.index("seed")
                    shape = list(arr.shape)
                    shape[axis] = n
                    arr.resize(tuple(shape))
            integrity.grow(self.group, n)
            zarr.consolidate_metadata(str(self.path))
            # The group caches the consolidated metadata it was opened with: reopen it.
            self.group = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
            self._arrays = {}
            self.records = integrity.BlockRecords.open(self.group)
        self.group["seed"][:] = np.asarray(seeds, dtype=np.int64)
        status = self.group["status"]
        old, self.layout = self.layout, Layout(tuple(status.shape), tuple(status.chunks))
        self._regrid_index(old)

    def _regrid_index(self, old: Layout) -> None:
        """Carry the block index over to the grown seed dim.

        Blocks of the old last seed chunk gained pending points (UNKNOWN unless they were
        all pending); blocks past the old seeds were never written (ALL_PENDING).
        """
        if self._states is None:  # no index (or one already out of step): nothing to carry
            return
        states = np.full(self.layout.grid, ALL_PENDING, dtype=np.int8)
        before = self._states.reshape(old.grid)
        states[tuple(slice(0, g) for g in old.grid)] = before
        if old.shape[-1] % old.chunks[-1]:  # the old last seed chunk was partial
            edge = states[..., old.grid[-1] - 1]
            edge[edge != ALL_PENDING] = UNKNOWN
        index = self.group[INDEX]
        with _quiet():
            index.resize((self.layout.n_blocks,))
            zarr.consolidate_metadata(str(self.path))
            self.group = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
        self._arrays = {}
        self._states = states.ravel()
        self._on_disk = np.full(self._states.shape, -1, dtype=np.int8)  # all of it to write
        self._dirty = set(range(_n_index_chunks(self._states.size)))
        self.flush()

    # -- reading -------------------------------------------------------------------------
    def status(self) -> np.ndarray:
        try:
            return self.group["status"][...]
        except Exception as exc:  # noqa: BLE001 - a codec's error on bad bytes can be of any type
            raise StoreError(
                f"{self.path}: the status array cannot be read ({type(exc).__name__}: {exc}); "
                f"run `sweeper verify {self.path}` to find the damage and mark it pending."
            ) from None

    def counts(self) -> dict[str, int]:
        """Points by status, from the block index; only blocks it does not settle are read."""
        states = self.block_states()
        sizes = self.layout.block_sizes()
        read = np.flatnonzero((states == UNKNOWN) | (states == SETTLED))
        rows = self.block_status(read)
        return {
            "pending": int(sizes[states == ALL_PENDING].sum() + (rows == PENDING).sum()),
            "ok": int(sizes[states == ALL_OK].sum() + (rows == OK).sum()),
            "failed": int((rows == FAILED).sum()),
        }

    # -- the block index ------------------------------------------------------------------
    def block_states(self) -> np.ndarray:
        """Per block (flat id): ALL_PENDING, UNKNOWN (read its status), ALL_OK or SETTLED."""
        if self._load_index() is None:  # a store made before the index: read every block
            return np.full(self.layout.n_blocks, UNKNOWN, dtype=np.int8)
        return self._states.copy()

    def block_status(self, flat_ids: np.ndarray) -> np.ndarray:
        """The status of blocks ``flat_ids`` as rows (len, points in a chunk), padded with PAD.

        What is read refines the block index (kept when this store is written to).
        """
        flat_ids = np.asarray(flat_ids, dtype=np.int64)
        layout = self.layout
        if flat_ids.size == 0:
            return np.zeros((0, math.prod(layout.chunks)), dtype=np.int8)
        if flat_ids.size > layout.n_blocks // 8:  # many: one read of the whole array
            rows = layout.per_block(self.status(), PAD)[flat_ids]
        else:
            regions = [layout.region(layout.block_id(k)) for k in flat_ids]
            status = self._array("status")

            async def read_all() -> list[np.ndarray]:
                return await asyncio.gather(*(status.getitem(r) for r in regions))

            rows = np.full((flat_ids.size, math.prod(layout.chunks)), PAD, dtype=np.int8)
            for row, block in zip(rows, sync(read_all())):
                chunk = row.reshape(layout.chunks)
                chunk[tuple(slice(0, n) for n in block.shape)] = block
        if self._load_index() is not None:
            learn = ~np.isin(flat_ids, list(self._announced))  # those may change under us
            self._states[flat_ids[learn]] = _codes(rows[learn])
            self._dirty.update(np.unique(flat_ids[learn] // INDEX_CHUNK).tolist())
        return rows

    def will_write(self, flat_ids: np.ndarray) -> None:
        """Mark blocks UNKNOWN on disk before their status is written (one index write)."""
        if self._load_index() is None:
            return
        flat_ids = np.asarray(flat_ids, dtype=np.int64)
        self._states[flat_ids] = UNKNOWN
        self._announced.update(flat_ids.tolist())
        stale = flat_ids[self._on_disk[flat_ids] != UNKNOWN]
        if stale.size:
            self._dirty.update(np.unique(stale // INDEX_CHUNK).tolist())
            self.flush()

    def reindex(self) -> None:
        """Rebuild the block index from the status array, e.g. after status was edited directly.

        Reads every status chunk; a store made before the index gets one.
        """
        if self._load_index() is None:
            with _quiet():
                if INDEX in self.group:
                    del self.group[INDEX]
                _write_index(self.group, self.layout.n_blocks)
                zarr.consolidate_metadata(str(self.path))
                self.group = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
            self._arrays = {}
            self._load_index()
        self._announced.clear()
        self.block_status(np.arange(self.layout.n_blocks))
        self._on_disk[...] = -1  # write all of it, whatever this object believed was there
        self._dirty = set(range(_n_index_chunks(self.layout.n_blocks)))
        self.flush()

    def flush(self) -> None:
        """Write the block index chunks that changed (a no-op on a read-only store)."""
        if self._states is None or not self._dirty or self.group.read_only:
            return
        index = self._array(INDEX)
        n = self._states.size

        async def write_all(chunks: list[int]) -> None:
            regions = [slice(c * INDEX_CHUNK, min((c + 1) * INDEX_CHUNK, n)) for c in chunks]
            await asyncio.gather(*(index.setitem(r, self._states[r]) for r in regions))

        chunks = sorted(self._dirty)
        changed = [
            c
            for c in chunks
            if not np.array_equal(
                self._states[c * INDEX_CHUNK : (c + 1) * INDEX_CHUNK],
                self._on_disk[c * INDEX_CHUNK : (c + 1) * INDEX_CHUNK],
            )
        ]
        if changed:
            sync(write_all(changed))
        for c in changed:
            r = slice(c * INDEX_CHUNK, (c + 1) * INDEX_CHUNK)
            self._on_disk[r] = self._states[r]
        self._dirty.clear()
        self._flushed = time.monotonic()

    def _load_index(self) -> np.ndarray | None:
        if self._states is not None:
            return self._states
        try:
            index = self.group[INDEX]
        except KeyError:
            return None
        if index.shape != (self.layout.n_blocks,):  # a grow of seeds cut short: trust none of it
            return None
        try:
            self._states = np.asarray(index[...], dtype=np.int8)
        except Exception:  # noqa: BLE001 - a damaged index is only a lost hint: read every block
            return None
        self._on_disk = self._states.copy()
        return self._states

    # -- writing -------------------------------------------------------------------------
    def write(self, result: BlockResult) -> None:
        """Write one block's points: outputs and bookkeeping together, their record, then status.

        The chunk writes of one block go out concurrently in one trip to zarr's
        event loop (half the driver's cost of one write after the other). The
        block's integrity record (size and CRC of each chunk as written) follows
        them and precedes ``status``: a point never reads as done without it.
        """
        if self.lease is not None:
            self.lease.check()  # a driver that lost the store writes nothing more
        region = self.layout.region(result.block_id)
        n = len(result.indices)
        values = {name: result.outputs.get(name) for name in self.outputs}
        values["wall_time"] = result.wall_time
        values["finished_at"] = np.full(n, result.finished_at)
        values["message"] = np.asarray(result.messages, dtype=object)
        blocks = {name: self._block(name, v, result) for name, v in values.items()}
        status = self._block("status", result.status, result)

        flat = self.layout.flat_id(result.block_id)
        if self._load_index() is not None and self._on_disk[flat] != UNKNOWN:
            self.will_write(np.array([flat]))  # a caller that did not announce the block

        async def write_all() -> None:
            await asyncio.gather(*(self._array(k).setitem(region, b) for k, b in blocks.items()))
            if self.records is not None:
                await self.records.write(result.block_id)
            await self._array("status").setitem(region, status)  # last: the point now reads as done

        sync(write_all())
        if self._states is not None:  # what the chunk holds now; on disk within seconds
            self._announced.discard(flat)
            self._states[flat] = _codes(status.reshape(1, -1))[0]
            self._dirty.add(flat // INDEX_CHUNK)
            if time.monotonic() - self._flushed > INDEX_FLUSH_SECONDS:
                self.flush()

    def _array(self, name: str) -> zarr.AsyncArray:
        if name not in self._arrays:
            handle = self.group[name]._async_array
            self._arrays[name] = handle if self.records is None else self.records.wrap(name, handle)
        return self._arrays[name]

    def _block(self, name: str, values: np.ndarray | None, result: BlockResult) -> np.ndarray:
        """The chunk's new content: ``values`` of the block's points, in chunk shape."""
        region = self.layout.region(result.block_id)
        shape = self.layout.block_shape(result.block_id)
        extra = tuple(self._array(name).shape[len(shape) :])
        if values is None:
            values = np.full((len(result.indices), *extra), np.nan)
        if len(result.indices) == math.prod(shape):
            return np.asarray(values).reshape(shape + extra)
        # Some points of this chunk are done already: read, patch, write back.
        block = self.group[name][region]
        block[tuple((result.indices - [r.start for r in region]).T)] = values
        return block


# -- template writing ------------------------------------------------------------------------


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


def _paused(lease: Lease | None):
    return lease.paused() if lease is not None else contextlib.nullcontext()


def _lay_out(where: str, template: Template, mode: str = "w") -> None:
    with _quiet():
        root = zarr.open_group(where, mode=mode, zarr_format=3)
        _write_template(root, template)
        integrity.lay_out(root, [*template.outputs, *BOOKKEEPING[1:]])
        _write_index(root, Layout(template.shape, template.chunks).n_blocks)
        zarr.consolidate_metadata(where)


def _write_index(root: zarr.Group, n_blocks: int) -> None:
    """The block index of a new store: every block ALL_PENDING (the fill, nothing on disk)."""
    index = root.create_array(
        INDEX,
        shape=(n_blocks,),
        chunks=(min(n_blocks, INDEX_CHUNK),),
        dtype=np.int8,
        fill_value=ALL_PENDING,
        dimension_names=("block",),
    )
    index.attrs.update(
        {
            "long_name": "what the status chunk of each block holds (flat block ids, C order)",
            "flag_values": [ALL_PENDING, UNKNOWN, ALL_OK, SETTLED],
            "flag_meanings": "all_pending unknown all_ok settled",
        }
    )


def _codes(rows: np.ndarray) -> np.ndarray:
    """Block index codes of status rows (padded with PAD)."""
    pending = rows == PENDING
    code = np.where((rows == FAILED).any(axis=1), SETTLED, ALL_OK).astype(np.int8)
    code[pending.any(axis=1)] = UNKNOWN
    code[(pending | (rows == PAD)).all(axis=1)] = ALL_PENDING
    return code


def _n_index_chunks(n_blocks: int) -> int:
    return -(-n_blocks // INDEX_CHUNK)


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
                "flag_values": [0, 1, 2],
                "flag_meanings": "pending ok failed",
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


def _is_output(arr: zarr.Array, grid_dims: tuple[str, ...]) -> bool:
    dims = tuple(arr.metadata.dimension_names or ())
    return dims[: len(grid_dims)] == grid_dims


class _quiet(warnings.catch_warnings):
    """Silence zarr's notes on consolidated metadata (not in the v3 spec yet) and on the lease file."""

    def __enter__(self):
        super().__enter__()
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        # The lease (`lease.json`) sits at the store's root beside the zarr nodes.
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy.*")
        return self
