"""The zarr store of one grid: opening, resuming and growing, region writes, status reads.

A store is created once from its template (:mod:`sweeper.creation`); results are
then written one block (= one chunk) at a time by a single writer, outputs first
and ``status`` last: a point reads as done only once its outputs are on disk, so a
crash at any moment loses no finished point and leaves a valid store that
`xarray.open_zarr` reads. Each write keeps the block's integrity record
(:mod:`sweeper.integrity`) and the block index (:mod:`sweeper.block_index`).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync  # zarr's own bridge to its event loop

from sweeper import block_index, checks, creation, growth, integrity, relayout
from sweeper.block_index import ALL_OK, ALL_PENDING, INDEX, PAD, SETTLED, UNKNOWN, BlockIndex
from sweeper.blocks import FAILED, NOT_NEEDED, OK, PENDING, BlockResult
from sweeper.checks import Damage
from sweeper.creation import BOOKKEEPING, is_url, quiet, store_exists
from sweeper.disk import check_writable
from sweeper.errors import StoreError
from sweeper.fingerprint import fingerprint, same_frame, with_new_defaults
from sweeper.growth import Growth
from sweeper.layout import Layout
from sweeper.lease import Lease
from sweeper.removal import check_removable
from sweeper.spec import GridSpec
from sweeper.template import Template, grid_attrs, make_template


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
        self._index: BlockIndex | None = None  # read at first use

    # -- creation and opening ---------------------------------------------------------
    @classmethod
    def create(
        cls, path: str | Path, template: Template, overwrite: bool = False, lease: Lease | None = None
    ) -> Store:
        """Lay out a new store, replacing a sweeper store at ``path`` if ``overwrite``.

        With a ``lease``, the new store holds it from its first moment in place.
        """
        creation.create(path, template, overwrite, lease)
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
            with quiet():
                group = zarr.open_group(str(path), mode=mode, zarr_format=3)
            group.attrs["swept_dims"]
            group["status"]
        except Exception as exc:  # noqa: BLE001 - any failure here means "not our store"
            raise StoreError(f"{path}: not a sweeper store ({type(exc).__name__}: {exc}).") from None
        return cls(path, group)

    @classmethod
    def preflight(cls, path: str | Path, spec: GridSpec, template: Template, overwrite: bool = False) -> None:
        """Every check :meth:`create` or :meth:`open_for` would make, writing nothing.

        First, what a killed driver's growth of the store left beside it is ended
        (:func:`sweeper.relayout.recover`): the store is then whole in place.
        """
        relayout.recover(path)
        if store_exists(path) and not overwrite:
            change = cls.open(path, mode="r").growth_for(spec)
            if change is not None and not change.in_place:  # a copy beside the store
                check_writable(Path(path), template.nbytes())
            return
        if store_exists(path):
            check_removable(path, keep=() if spec.source == "<string>" else (spec.source,))
        if not is_url(path):  # an object store has no free space to check
            check_writable(Path(path), template.nbytes())

    @classmethod
    def open_for(
        cls,
        path: str | Path,
        spec: GridSpec,
        template: Template | None = None,
        lease: Lease | None = None,
        repair: Callable[[Store], Damage] | None = None,
    ) -> Store:
        """Open an existing store for ``spec``, growing it if ``spec`` adds values, cases or seeds.

        Seeds appended grow the store in place; any other growth rebuilds it in
        ``template``'s layout (:mod:`sweeper.relayout`), holding ``lease``, after
        ``repair`` (default: :func:`sweeper.checks.repair` of what a check finds) has
        marked its damaged blocks pending: damage is recomputed, never copied.
        The grid attrs (text, title, ...) then follow ``spec``: the latest accepted grid file.
        """
        store = cls.open(path)
        store.lease = lease
        change = store.growth_for(spec)
        if change is not None and change.in_place:
            store.grow_seeds(tuple(spec.seeds))
        elif change is not None:
            damage = (repair or _repair)(store)
            store = relayout.rebuild(store, change, template or make_template(spec), lease, damage.status)
        store._follow_grid(spec)
        return store

    def growth_for(self, spec: GridSpec) -> Growth | None:
        """How this store grows to ``spec`` (None: the same grid); refuses a store of another grid."""
        path = self.path
        how = "use `--overwrite` to replace it, or `--store` to write elsewhere"
        stored = self.attrs.get("fingerprint")
        if stored is None:
            raise StoreError(
                f"{path} was written by an older sweeper that did not record everything that "
                f"determines its numbers (kernel version, resolved defaults), so it cannot be "
                f"resumed safely; {how}."
            )
        old = self.recorded(spec)
        edited = fingerprint(old) != spec.fingerprint()
        if edited and (not same_frame(old, spec.components()) or spec.shape == self.layout.shape):
            changes = spec.changes_from(old, self.attrs.get("grid_text", ""))
            raise StoreError(
                f"{path} holds results of another grid ({'; '.join(changes) or 'fingerprints differ'}); "
                f"{how}."
            )
        coords = {d: self.group[d][...] for d in self.dims if d != "case"}
        found = growth.between(path, self.dims, coords, old.get("cases", []), spec)
        if found is not None and not found.in_place and is_url(path):
            raise StoreError(
                f"{path}: the grid grows the store ({found.describe()}), but a store under a URL "
                f"cannot be grown safely (no atomic rename); write to a local path (`--store`), or "
                f"use `--overwrite`."
            )
        return found

    def recorded(self, spec: GridSpec) -> dict[str, Any]:
        """The components the store recorded, with the parameters ``spec``'s kernel gained since
        at their defaults (:func:`sweeper.fingerprint.with_new_defaults`)."""
        return with_new_defaults(json.loads(self.attrs["fingerprint"]), spec.components(), spec.defaults())

    def _follow_grid(self, spec: GridSpec) -> None:
        """Rewrite the grid attrs (text, title, ...) to ``spec``'s, if they differ."""
        new = grid_attrs(spec)
        if all(self.attrs.get(k) == v for k, v in new.items()):
            return
        with quiet():
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
        with quiet():
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
        """Carry the block index over to the grown seed dim (see :meth:`BlockIndex.regrid`)."""
        if self._index is None:  # no index (or one already out of step): nothing to carry
            return
        index = self.group[INDEX]
        with quiet():
            index.resize((self.layout.n_blocks,))
            zarr.consolidate_metadata(str(self.path))
            self.group = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
        self._arrays = {}
        self._index.regrid(old, self.layout)
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
        counts = {
            "pending": int(sizes[states == ALL_PENDING].sum() + (rows == PENDING).sum()),
            "ok": int(sizes[states == ALL_OK].sum() + (rows == OK).sum()),
            "failed": int((rows == FAILED).sum()),
        }
        not_needed = int((rows == NOT_NEEDED).sum())  # only a refined grid has any
        return counts | ({"not_needed": not_needed} if not_needed else {})

    # -- the block index ------------------------------------------------------------------
    def block_states(self) -> np.ndarray:
        """Per block (flat id): ALL_PENDING, UNKNOWN (read its status), ALL_OK or SETTLED."""
        index = self._load_index()
        if index is None:  # a store made before the index: read every block
            return np.full(self.layout.n_blocks, UNKNOWN, dtype=np.int8)
        return index.states.copy()

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
        index = self._load_index()
        if index is not None:
            index.learn(flat_ids, rows)
        return rows

    def will_write(self, flat_ids: np.ndarray) -> None:
        """Mark blocks UNKNOWN on disk before their status is written (one index write)."""
        index = self._load_index()
        if index is not None and index.announce(flat_ids):
            self.flush()

    def reindex(self) -> None:
        """Rebuild the block index from the status array, e.g. after status was edited directly.

        Reads every status chunk; a store made before the index gets one.
        """
        if self._load_index() is None:
            with quiet():
                if INDEX in self.group:
                    del self.group[INDEX]
                block_index.lay_out(self.group, self.layout.n_blocks)
                zarr.consolidate_metadata(str(self.path))
                self.group = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
            self._arrays = {}
            self._load_index()
        self._index.announced.clear()
        self.block_status(np.arange(self.layout.n_blocks))
        self._index.rewrite_all()  # whatever this object believed was on disk
        self.flush()

    def flush(self) -> None:
        """Write the block index chunks that changed (a no-op on a read-only store)."""
        if self._index is None or not self._index.dirty or self.group.read_only:
            return
        self._index.flush(self._array(INDEX))

    def _load_index(self) -> BlockIndex | None:
        if self._index is None:
            self._index = BlockIndex.read(self.group, self.layout.n_blocks)
        return self._index

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
        n = len(result.indices)
        values = {name: result.outputs.get(name) for name in self.outputs}
        values["wall_time"] = result.wall_time
        values["finished_at"] = np.full(n, result.finished_at)
        values["message"] = np.asarray(result.messages, dtype=object)
        blocks = {name: self._block(name, v, result) for name, v in values.items()}
        status = self._block("status", result.status, result)

        flat = self.layout.flat_id(result.block_id)
        index = self._load_index()
        if index is not None and index.on_disk[flat] != UNKNOWN:
            self.will_write(np.array([flat]))  # a caller that did not announce the block

        sync(self.put(result.block_id, blocks, status))
        if index is not None and index.wrote(flat, status):  # what the chunk holds; on disk within seconds
            self.flush()

    async def put(
        self, block_id: tuple[int, ...], blocks: Mapping[str, np.ndarray], status: np.ndarray
    ) -> None:
        """Write a block's chunks (``blocks``: each array's chunk content), its record, then status."""
        region = self.layout.region(block_id)
        await asyncio.gather(*(self._array(k).setitem(region, b) for k, b in blocks.items()))
        if self.records is not None:
            await self.records.write(block_id)
        await self._array("status").setitem(region, status)  # last: the points now read as done

    def reindex_to(self, states: np.ndarray) -> None:
        """Write the whole block index as ``states`` (flat ids), for a store no one else sees yet."""
        index = self._load_index()
        index.states = np.asarray(states, dtype=np.int8).copy()
        index.rewrite_all()
        self.flush()

    def writer(self, name: str) -> zarr.AsyncArray:
        """Array ``name`` opened for writing (through the integrity recorder if it is recorded)."""
        return self._array(name)

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


def _repair(store: Store) -> Damage:
    damage = checks.check(store, full=None)
    checks.repair(store, damage)
    return damage


def _is_output(arr: zarr.Array, grid_dims: tuple[str, ...]) -> bool:
    dims = tuple(arr.metadata.dimension_names or ())
    return dims[: len(grid_dims)] == grid_dims
