"""Integrity records: what each block write stores, noted on its way to the store.

Every block write records, for each array it writes except ``status`` (the
outputs, ``wall_time``, ``finished_at``, ``message``), the size in bytes and the
CRC-32 of the encoded chunk exactly as zarr handed it to the store (size 0: no
chunk, because it holds only the fill value and zarr writes none). The bytes are
seen on their way to the store (:class:`Recorder`), so recording costs a CRC over
bytes already in memory, no second encoding and no read-back. The records live in
the array ``_integrity/records``, one chunk per block (shape: the block grid, then
one row per recorded array, then (size, crc)), so a block's record is written,
damaged and repaired with the block, never with another; it sits in a subgroup,
so ``xarray.open_zarr`` does not see it. A record is written after the block's
data chunks and before its ``status`` chunk: a crash in between leaves the block's
points as they were (pending, or an earlier status), never "done" without a record
of what was written. This module lays the records out, grows them with the seeds
and writes them (:class:`BlockRecords`); :mod:`sweeper.checks` compares a store
against them.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import zarr
from zarr.codecs import BytesCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import StorePath, WrapperStore

from sweeper.layout import Layout

GROUP = "_integrity"
RECORDS = "records"
NO_RECORD = -1  # the records' fill value: nothing recorded for this block
ABSENT = 0  # recorded size of a chunk zarr did not write (only the fill value)


def lay_out(root: zarr.Group, recorded: Sequence[str]) -> None:
    """Create the (empty) records of a new store whose template is in ``root``."""
    status = root["status"]
    layout = Layout(tuple(status.shape), tuple(status.chunks))
    k = len(recorded)
    group = root.create_group(GROUP)
    arr = group.create_array(
        RECORDS,
        shape=(*layout.grid, k, 2),
        chunks=(*(1 for _ in layout.grid), k, 2),
        dtype=np.int64,
        fill_value=NO_RECORD,
        compressors=None,  # 96 raw bytes a block, written without zarr's encode path (see write)
        chunk_key_encoding={"name": "default", "separator": "."},  # one folder, not one per block
        dimension_names=(*(f"{d}_block" for d in root.attrs["swept_dims"]), "array", "field"),
    )
    arr.attrs.update(
        {
            "long_name": "what each block write stored: size in bytes and CRC-32 of each array's chunk",
            "arrays": list(recorded),
            "fields": ["size", "crc32"],
        }
    )


def grow(root: zarr.Group, n_seeds: int) -> None:
    """Follow ``status`` to ``n_seeds`` seeds (a new block grid); existing records stay."""
    if GROUP not in root:
        return
    status = root["status"]  # its metadata as opened: the old shape
    shape = list(status.shape)
    shape[list(status.metadata.dimension_names).index("seed")] = n_seeds
    layout = Layout(tuple(shape), tuple(status.chunks))
    records = root[GROUP][RECORDS]
    records.resize((*layout.grid, *records.shape[-2:]))


class Recorder(WrapperStore):
    """A store wrapper that notes size and CRC-32 of every value set, and every delete."""

    def __init__(self, store):
        super().__init__(store)
        self.seen: dict[str, tuple[int, int]] = {}

    def _with_store(self, store):
        return type(self)(store)

    async def set(self, key, value):
        data = value.as_numpy_array()
        self.seen[key] = (int(data.nbytes), zlib.crc32(data))
        await self._store.set(key, value)

    async def delete(self, key):
        self.seen[key] = (ABSENT, 0)
        await self._store.delete(key)


class BlockRecords:
    """The records of one store, for its writer: wraps the recorded arrays, writes a block's record."""

    def __init__(self, group: zarr.Group):
        records = group[GROUP][RECORDS]
        self.names: list[str] = list(records.attrs["arrays"])
        self.recorder = Recorder(group.store)
        self._record_key = chunk_key_fn(records, len(group.attrs["swept_dims"]))
        self._raw = tuple(records.metadata.codecs) == (BytesCodec(endian="little"),)
        self.records = records._async_array
        nd = len(group.attrs["swept_dims"])
        self._keys = {name: chunk_key_fn(group[name], nd) for name in self.names}

    @classmethod
    def open(cls, group: zarr.Group) -> BlockRecords | None:
        """The store's records, or None for a store made before records existed."""
        return cls(group) if GROUP in group else None

    def wrap(self, name: str, array: zarr.AsyncArray) -> zarr.AsyncArray:
        """``array`` writing through the recorder, if ``name`` is recorded."""
        if name not in self._keys:
            return array
        path = StorePath(self.recorder, array.store_path.path)
        return zarr.AsyncArray(metadata=array.metadata, store_path=path, config=array.config)

    async def write(self, block_id: tuple[int, ...]) -> None:
        """Record what the last writes of block ``block_id`` stored (call after them)."""
        row = np.full((1,) * len(block_id) + (len(self.names), 2), NO_RECORD, np.int64)
        seen = self.recorder.seen
        for i, name in enumerate(self.names):
            row[(0,) * len(block_id) + (i,)] = seen.pop(self._keys[name](block_id), (NO_RECORD, NO_RECORD))
        if self._raw:  # the chunk's encoding is its little-endian bytes: skip zarr's setitem (~1 ms)
            data = default_buffer_prototype().buffer.from_bytes(row.astype("<i8").tobytes())
            await self.recorder._store.set(self._record_key(block_id), data)
        else:
            await self.records.setitem(tuple(slice(b, b + 1) for b in block_id), row)


def chunk_key_fn(array: zarr.Array, nd: int):
    """block id -> the store key of that block's chunk of ``array`` (``nd`` grid dims).

    A block is one chunk along the grid dims and the whole of every dim after them.
    """
    prefix = array.store_path.path
    extra = (0,) * (array.ndim - nd)
    encode = array.metadata.encode_chunk_key
    return lambda block_id: f"{prefix}/{encode(tuple(block_id) + extra)}"
