"""Damage: what each block write records, and the checks that compare the store against it.

What is recorded. Every block write records, for each array it writes except
``status`` (the outputs, ``wall_time``, ``finished_at``, ``message``), the size in
bytes and the CRC-32 of the encoded chunk exactly as zarr handed it to the store
(size 0: no chunk, because it holds only the fill value and zarr writes none).
The bytes are seen on their way to the store (:class:`Recorder`), so recording
costs a CRC over bytes already in memory, no second encoding and no read-back.

Where. In the array ``_integrity/records``, one chunk per block (shape: the
block grid, then one row per recorded array, then (size, crc)), so a block's
record is written, damaged and repaired with the block, never with another. It
sits in a subgroup, so ``xarray.open_zarr`` does not see it.

When. After the block's data chunks, before its ``status`` chunk: a crash in
between leaves the block's points as they were (pending, or an earlier status),
never "done" without a record of what was written.

What the checks read. A store is damaged where a block holding finished points
(ok or failed) no longer holds what its record says, or where a chunk cannot be
decoded. :func:`check` compares the chunk files' sizes with the records and
decodes ``status`` and the records (no data read: the cheap check run at every
resubmit and by ``sweeper status``, which read every byte instead when the store is
small); with ``full=True`` it also reads every recorded chunk and compares CRCs,
and decodes chunks no record covers (``sweeper verify``). :func:`repair` marks every point of a damaged block
pending and removes the block's chunks, so the arrays read as NaN there until the
next submit recomputes exactly those points.

A status chunk deleted outright reads as pending; it is found where the store's block
index (``_sweeper/block_state``) says the block had finished. A status chunk swapped for
another *valid* status chunk is not detected: that would need a record written after
``status``. Stores made before records
existed (no ``_integrity`` group) get the decoding checks only.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
import numcodecs
import numpy as np
import zarr
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import StorePath, WrapperStore

from sweeper.blocks import FAILED, OK, PENDING
from sweeper.layout import Layout

if TYPE_CHECKING:
    from sweeper.store import Store

GROUP = "_integrity"
RECORDS = "records"
NO_RECORD = -1  # the records' fill value: nothing recorded for this block
ABSENT = 0  # recorded size of a chunk zarr did not write (only the fill value)
# `check(full=None)` reads every chunk of a store this small: about 0.1 s on a local disk.
FULL_READ_BUDGET = (4096, 32 * 2**20)  # chunk files, bytes


# -- recording ---------------------------------------------------------------------------------


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
        self._record_key = _chunk_key_fn(records, len(group.attrs["swept_dims"]))
        self._raw = tuple(records.metadata.codecs) == (BytesCodec(endian="little"),)
        self.records = records._async_array
        nd = len(group.attrs["swept_dims"])
        self._keys = {name: _chunk_key_fn(group[name], nd) for name in self.names}

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


def _chunk_key_fn(array: zarr.Array, nd: int):
    """block id -> the store key of that block's chunk of ``array`` (``nd`` grid dims).

    A block is one chunk along the grid dims and the whole of every dim after them.
    """
    prefix = array.store_path.path
    extra = (0,) * (array.ndim - nd)
    encode = array.metadata.encode_chunk_key
    return lambda block_id: f"{prefix}/{encode(tuple(block_id) + extra)}"


# -- checking ----------------------------------------------------------------------------------


@dataclass
class Damage:
    """What a check found: the damaged blocks and why, against the status read at the same time."""

    layout: Layout
    dims: tuple[str, ...]
    status: np.ndarray  # as read; pending where a status chunk is unreadable
    full: bool = False
    recorded: bool = True  # False: a store made before records existed (decoding checks only)
    blocks: dict[tuple[int, ...], list[str]] = field(default_factory=dict)
    finished: dict[tuple[int, ...], int | None] = field(default_factory=dict)  # None: status unreadable

    def add(self, block_id: tuple[int, ...], reason: str, finished: int | None) -> None:
        self.blocks.setdefault(block_id, []).append(reason)
        self.finished.setdefault(block_id, finished)

    def __bool__(self) -> bool:
        return bool(self.blocks)

    @property
    def points(self) -> int:
        """Points in damaged blocks: those a repair marks pending."""
        return sum(math.prod(self.layout.block_shape(b)) for b in self.blocks)

    @property
    def lost(self) -> int:
        """Finished points in damaged blocks whose status was readable."""
        return sum(n or 0 for n in self.finished.values())

    def lines(self) -> list[str]:
        """One line per damaged block: where it is, what it held, what is wrong."""
        out = []
        for block_id in sorted(self.blocks):
            where = ", ".join(
                f"{d}[{r.start}]" if r.stop - r.start == 1 else f"{d}[{r.start}:{r.stop}]"
                for d, r in zip(self.dims, self.layout.region(block_id))
            )
            n, done = math.prod(self.layout.block_shape(block_id)), self.finished[block_id]
            held = "status unreadable" if done is None else f"{done} finished"
            out.append(f"block {block_id} ({where}; {n} points, {held}): " + "; ".join(self.blocks[block_id]))
        return out

    def summary(self) -> str:
        what = "chunks read and compared" if self.full else "chunk sizes compared"
        if not self.recorded:
            what = "chunks decoded; this store predates integrity records, so missing chunks go unseen"
        if not self.blocks:
            return f"{self.layout.n_blocks} blocks checked ({what}): no damage"
        return (
            f"{len(self.blocks)} of {self.layout.n_blocks} blocks damaged ({what}): "
            f"{self.points} points to recompute, {self.lost} of them had finished"
        )


def check(store: Store, full: bool | None = False) -> Damage:
    """Compare ``store`` with its records; reads no data unless ``full``.

    Always: ``status`` decodes and holds only status codes, and every block holding
    finished points has a readable record and every recorded chunk on disk with its
    recorded size (0: absent). With ``full``: every recorded chunk's bytes match
    their CRC-32, and the chunks no record covers (blocks with nothing finished)
    decode. ``full=None``: full when the finished blocks' chunks are few and small
    (:data:`FULL_READ_BUDGET`), sizes only otherwise.
    """
    layout = store.layout
    status, bad_status = read_status(store)
    damage = Damage(layout, store.dims, status, full=bool(full), recorded=GROUP in store.group)
    for block_id in bad_status:
        damage.add(block_id, "status chunk cannot be decoded", None)
    done = _per_block(layout, status != PENDING)  # finished points per block (0 where unreadable)
    # a status chunk deleted outright reads as pending; the block index still says finished
    from sweeper.store import ALL_OK, SETTLED

    states = store.block_states().reshape(layout.grid)
    for block_id in _ids(((states == ALL_OK) | (states == SETTLED)) & (done == 0)):
        if block_id not in bad_status:
            damage.add(block_id, "status chunk missing (the block index says its points finished)", None)
    if not damage.recorded:
        if full:
            names = store.outputs + ["wall_time", "finished_at", "message"]
            _check_decodable(store, damage, done, names, np.ones(layout.grid, bool))
        return damage
    names = list(store.group[GROUP][RECORDS].attrs["arrays"])
    records, bad_records = _read_records(
        store, len(names), np.ones(layout.grid, bool) if full is not False else done > 0
    )
    sizes, crcs = records[..., 0], records[..., 1]
    if full is None:
        recorded = sizes[done > 0]
        files, nbytes = int((recorded > 0).sum()), int(recorded[recorded > 0].sum())
        full = damage.full = files <= FULL_READ_BUDGET[0] and nbytes <= FULL_READ_BUDGET[1]
    wanted = np.ones(layout.grid, bool) if full else done > 0
    on_disk = _chunk_sizes(store, names, wanted)
    for block_id in _ids(done > 0):
        n = int(done[block_id])
        if block_id in bad_records:
            damage.add(block_id, "its record cannot be decoded", n)
        elif sizes[block_id][0] == NO_RECORD:
            damage.add(block_id, "no record of its write", n)
        else:
            for i in np.nonzero(sizes[block_id] != on_disk[block_id])[0]:
                want, have = int(sizes[block_id][i]), int(on_disk[block_id][i])
                if have == ABSENT:
                    reason = f"{names[i]} chunk missing"
                elif want == ABSENT:
                    reason = f"{names[i]} chunk present where none was written ({have} bytes)"
                else:
                    reason = f"{names[i]} chunk has {have} bytes, {want} were written"
                damage.add(block_id, reason, n)
    if full:
        _check_crcs(store, damage, done, names, sizes, crcs)
        _check_decodable(store, damage, done, names, done == 0, on_disk)
        for block_id in bad_records:  # nothing finished there, but the record must read
            if block_id not in damage.blocks:
                damage.add(block_id, "its record cannot be decoded", 0)
    return damage


def repair(store: Store, damage: Damage) -> None:
    """Mark every point of each damaged block pending; remove the block's chunks and record.

    Status first: a crash part-way leaves pending points beside stale chunks, which
    the next check finds again, never finished points without their data. Removed
    chunks read as the fill value (NaN), as pending points always do.
    """
    if not damage:
        return
    layout = store.layout
    # the block index must not keep saying "all ok": these blocks are read again at the next scan
    store.will_write(np.array([layout.flat_id(b) for b in sorted(damage.blocks)], dtype=np.int64))
    nd = len(store.dims)
    status = store.group["status"]._async_array
    names = store.outputs + ["wall_time", "finished_at", "message"]
    keys = [_chunk_key_fn(store.group[name], nd) for name in names]
    if GROUP in store.group:
        keys.append(_chunk_key_fn(store.group[GROUP][RECORDS], nd))
    zstore = store.group.store

    async def clear_all() -> None:
        for block_id in sorted(damage.blocks):
            pending = np.full(layout.block_shape(block_id), PENDING, np.int8)
            await status.setitem(layout.region(block_id), pending)
            for key in keys:
                await zstore.delete(key(block_id))

    sync(clear_all())
    for block_id in damage.blocks:
        damage.status[layout.region(block_id)] = PENDING


# -- reading pieces ----------------------------------------------------------------------------


def read_status(store: Store) -> tuple[np.ndarray, set[tuple[int, ...]]]:
    """The status array, and the blocks whose status chunk does not decode to status codes.

    Those blocks read as pending. Reads the chunks' bytes and decodes them here, several
    times faster than zarr's own read at 10^4 chunks, when the codecs are the ones the
    template uses (bytes, then zstd); through zarr otherwise.
    """
    layout = store.layout
    arr = store.group["status"]
    decode = _decoder(arr)
    if decode is None:
        status, bad = _read_blockwise(store, "status")
    else:
        status, bad = np.full(layout.shape, PENDING, np.int8), set()
        key = _chunk_key_fn(arr, len(layout.shape))
        ids = list(layout.block_ids())
        for block_id, data in zip(ids, _read_raw(store, [key(b) for b in ids])):
            if data is None:
                continue  # never written: pending
            region = layout.region(block_id)
            try:
                chunk = decode(data)
            except Exception:  # noqa: BLE001 - a codec's error on bad bytes can be of any type
                bad.add(block_id)
                continue
            status[region] = chunk[tuple(slice(0, r.stop - r.start) for r in region)]
    strange = ~np.isin(status, (PENDING, OK, FAILED))
    if strange.any():
        bad |= set(_ids(_per_block(layout, strange) > 0))
    for block_id in bad:
        status[layout.region(block_id)] = PENDING
    return status, bad


def _decoder(arr: zarr.Array):
    """bytes -> the decoded chunk of ``arr``, for the codecs the template uses; else None."""
    codecs = tuple(arr.metadata.codecs)
    if not codecs or not isinstance(codecs[0], BytesCodec) or arr.dtype.kind not in "iufb":
        return None
    if not all(isinstance(c, ZstdCodec) for c in codecs[1:]) or len(codecs) > 2:
        return None
    endian = codecs[0].endian
    dtype = arr.dtype.newbyteorder("<" if endian is None or endian.value == "little" else ">")
    shape = tuple(arr.chunks)
    zstd = numcodecs.Zstd() if len(codecs) == 2 else None

    def decode(data: bytes) -> np.ndarray:
        raw = zstd.decode(data) if zstd is not None else data
        return np.frombuffer(raw, dtype=dtype).reshape(shape)  # a wrong length raises

    return decode


def _read_records(store: Store, k: int, wanted: np.ndarray) -> tuple[np.ndarray, set[tuple[int, ...]]]:
    """The records of the blocks in ``wanted`` (NO_RECORD elsewhere), and those that do not decode."""
    arr = store.group[GROUP][RECORDS]
    grid = tuple(arr.shape[:-2])
    records = np.full((*grid, k, 2), NO_RECORD, np.int64)
    decode = _decoder(arr)
    if decode is None:
        return _read_blockwise(store, f"{GROUP}/{RECORDS}")
    key = _chunk_key_fn(arr, len(grid))
    ids = _ids(wanted)
    bad = set()
    for block_id, data in zip(ids, _read_raw(store, [key(b) for b in ids])):
        if data is None:
            continue
        try:
            records[block_id] = decode(data).reshape(k, 2)
        except Exception:  # noqa: BLE001
            bad.add(block_id)
    return records, bad


def _read_blockwise(store: Store, name: str) -> tuple[np.ndarray, set[tuple[int, ...]]]:
    """The whole array through zarr, and the blocks whose chunk cannot be decoded (fill there)."""
    arr = store.group[name]
    try:
        return arr[...], set()
    except Exception:  # noqa: BLE001 - a codec's error on bad bytes can be of any type
        pass
    layout = store.layout
    out = np.full(arr.shape, arr.fill_value, dtype=arr.dtype)
    bad = set()
    for block_id in layout.block_ids():
        region = _array_region(arr, layout, block_id)
        try:
            out[region] = arr[region]
        except Exception:  # noqa: BLE001
            bad.add(block_id)
    return out, bad


def read_lenient(store: Store, name: str) -> np.ndarray:
    """The whole array, with the fill value where a chunk cannot be decoded."""
    return _read_blockwise(store, name)[0]


def _array_region(arr: zarr.Array, layout: Layout, block_id: tuple[int, ...]) -> tuple[slice, ...]:
    if tuple(arr.shape[: len(layout.shape)]) == layout.shape:
        return layout.region(block_id)
    return tuple(slice(b, b + 1) for b in block_id)  # the records: one entry per block


def _per_block(layout: Layout, mask: np.ndarray) -> np.ndarray:
    """Count of ``mask`` over each block: an array of the block grid's shape."""
    padded = [g * c for g, c in zip(layout.grid, layout.chunks)]
    full = np.zeros(padded, np.int64)
    full[tuple(slice(0, s) for s in layout.shape)] = mask
    shape = [x for g, c in zip(layout.grid, layout.chunks) for x in (g, c)]
    return full.reshape(shape).sum(axis=tuple(range(1, 2 * len(layout.grid), 2)))


def _ids(mask: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(b) for b in i) for i in zip(*np.nonzero(mask))]


def _root(store: Store) -> tuple[fsspec.AbstractFileSystem | None, str]:
    if isinstance(store.path, Path):
        return None, str(store.path)
    fs, root = fsspec.core.url_to_fs(str(store.path))
    return fs, root.rstrip("/")


def _read_raw(store: Store, keys: list[str]) -> list[bytes | None]:
    """The bytes stored under each key (None: absent)."""
    fs, root = _root(store)
    if fs is None:
        out = []
        for key in keys:
            try:
                with open(os.path.join(root, key), "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                out.append(None)
        return out
    out = []
    for start in range(0, len(keys), 1000):
        paths = [f"{root}/{key}" for key in keys[start : start + 1000]]
        got = fs.cat(paths, on_error="return") if paths else {}
        got = {k.strip("/"): v for k, v in got.items()}
        out.extend(v if isinstance(v, bytes) else None for v in (got.get(p.strip("/")) for p in paths))
    return out


def _chunk_sizes(store: Store, names: Sequence[str], wanted: np.ndarray) -> np.ndarray:
    """Size of each block's chunk of each array in ``names`` (0: absent), for the blocks in ``wanted``.

    A local store is asked by one stat per chunk; an object store by one listing per array.
    """
    layout = store.layout
    nd = len(layout.grid)
    sizes = np.zeros((*layout.grid, len(names)), np.int64)
    fs, root = _root(store)
    ids = _ids(wanted)
    for i, name in enumerate(names):
        key = _chunk_key_fn(store.group[name], nd)
        if fs is None:
            for block_id in ids:
                try:
                    sizes[block_id + (i,)] = os.stat(os.path.join(root, key(block_id))).st_size
                except FileNotFoundError:
                    pass
            continue
        prefix = f"{root}/{name}/c"
        try:
            found = fs.find(prefix, detail=True)
        except FileNotFoundError:
            continue
        start = len(prefix.strip("/")) + 1
        for path, info in found.items():
            coords = path.strip("/")[start:].split("/")
            try:
                block_id = tuple(int(c) for c in coords[:nd])
                extra = [int(c) for c in coords[nd:]]
            except ValueError:
                continue  # not a chunk key of this array
            inside = len(block_id) == nd and all(0 <= b < g for b, g in zip(block_id, layout.grid))
            if inside and not any(extra) and wanted[block_id]:
                sizes[block_id + (i,)] = int(info.get("size") or 0)
    return sizes


def _check_crcs(store: Store, damage: Damage, done: np.ndarray, names, sizes, crcs) -> None:
    """Read every chunk a block with finished points recorded, and compare its CRC-32."""
    nd = len(store.dims)
    keys = [_chunk_key_fn(store.group[name], nd) for name in names]
    todo = [
        (block_id, i)
        for block_id in _ids(done > 0)
        if block_id not in damage.blocks
        for i in range(len(names))
        if sizes[block_id][i] > 0
    ]
    for start in range(0, len(todo), 4096):
        part = todo[start : start + 4096]
        data = _read_raw(store, [keys[i](block_id) for block_id, i in part])
        for (block_id, i), content in zip(part, data):
            if content is None:
                damage.add(block_id, f"{names[i]} chunk missing", int(done[block_id]))
            elif zlib.crc32(content) != int(crcs[block_id][i]):
                damage.add(block_id, f"{names[i]} chunk does not match its record", int(done[block_id]))


def _check_decodable(store: Store, damage: Damage, done, names, where: np.ndarray, on_disk=None) -> None:
    """Decode, through zarr, every existing chunk of ``names`` in the blocks of ``where``."""
    layout = store.layout
    if on_disk is None:
        on_disk = _chunk_sizes(store, names, where)
    for i, name in enumerate(names):
        arr = store.group[name]
        for block_id in _ids((on_disk[..., i] > 0) & where):
            try:
                arr[layout.region(block_id)]
            except Exception:  # noqa: BLE001 - a codec's error on bad bytes can be of any type
                damage.add(block_id, f"{name} chunk cannot be decoded", int(done[block_id]))
