"""Damage checks: a store compared against its integrity records, and the repair.

A store is damaged where a block holding finished points (ok or failed) no longer
holds what its record says (:mod:`sweeper.integrity`), or where a chunk cannot be
decoded. :func:`check` compares the chunk files' sizes with the records and
decodes ``status`` and the records (no data read: the cheap check run at every
resubmit and by ``sweeper status``, which read every byte instead when the store is
small); with ``full=True`` it also reads every recorded chunk and compares CRCs,
and decodes chunks no record covers (``sweeper verify``). :func:`repair` marks every
point of a damaged block pending and removes the block's chunks, so the arrays read
as NaN there until the next submit recomputes exactly those points. A status chunk
deleted outright reads as pending; it is found where the store's block index
(``_sweeper/block_state``) says the block had finished. A status chunk swapped for
another *valid* status chunk is not detected: that would need a record written after
``status``. Stores made before records existed (no ``_integrity`` group) get the
decoding checks only.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from zarr.core.sync import sync

from sweeper.block_index import ALL_OK, SETTLED
from sweeper.blocks import PENDING
from sweeper.integrity import ABSENT, GROUP, NO_RECORD, RECORDS, chunk_key_fn
from sweeper.layout import Layout
from sweeper.rawread import chunk_sizes, ids_of, per_block, read_raw, read_records, read_status

if TYPE_CHECKING:
    from sweeper.store import Store

# `check(full=None)` reads every chunk of a store this small: about 0.1 s on a local disk.
FULL_READ_BUDGET = (4096, 32 * 2**20)  # chunk files, bytes


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
    states = store.block_states().reshape(layout.grid)
    # A large store's status chunks that the block index says are all ok are only checked to
    # exist: decoding 4e4 of them is a second at 1e7 points, on every resubmit (verify decodes all).
    trusted = states == ALL_OK if full is not True and layout.n_blocks > FULL_READ_BUDGET[0] else None
    status, bad_status = read_status(store, trusted)
    damage = Damage(layout, store.dims, status, full=bool(full), recorded=GROUP in store.group)
    for block_id in bad_status:
        damage.add(block_id, "status chunk cannot be decoded", None)
    done = per_block(layout, status != PENDING)  # finished points per block (0 where unreadable)
    # a status chunk deleted outright reads as pending; the block index still says finished
    for block_id in ids_of(((states == ALL_OK) | (states == SETTLED)) & (done == 0)):
        if block_id not in bad_status:
            damage.add(block_id, "status chunk missing (the block index says its points finished)", None)
    if not damage.recorded:
        if full:
            names = store.outputs + ["wall_time", "finished_at", "message"]
            _check_decodable(store, damage, done, names, np.ones(layout.grid, bool))
        return damage
    names = list(store.group[GROUP][RECORDS].attrs["arrays"])
    records, bad_records = read_records(
        store, len(names), np.ones(layout.grid, bool) if full is not False else done > 0
    )
    sizes, crcs = records[..., 0], records[..., 1]
    if full is None:
        recorded = sizes[done > 0]
        files, nbytes = int((recorded > 0).sum()), int(recorded[recorded > 0].sum())
        full = damage.full = files <= FULL_READ_BUDGET[0] and nbytes <= FULL_READ_BUDGET[1]
    wanted = np.ones(layout.grid, bool) if full else done > 0
    on_disk = chunk_sizes(store, names, wanted)
    for block_id in ids_of(done > 0):
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
    keys = [chunk_key_fn(store.group[name], nd) for name in names]
    if GROUP in store.group:
        keys.append(chunk_key_fn(store.group[GROUP][RECORDS], nd))
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


def _check_crcs(store: Store, damage: Damage, done: np.ndarray, names, sizes, crcs) -> None:
    """Read every chunk a block with finished points recorded, and compare its CRC-32."""
    nd = len(store.dims)
    keys = [chunk_key_fn(store.group[name], nd) for name in names]
    todo = [
        (block_id, i)
        for block_id in ids_of(done > 0)
        if block_id not in damage.blocks
        for i in range(len(names))
        if sizes[block_id][i] > 0
    ]
    for start in range(0, len(todo), 4096):
        part = todo[start : start + 4096]
        data = read_raw(store, [keys[i](block_id) for block_id, i in part])
        for (block_id, i), content in zip(part, data):
            if content is None:
                damage.add(block_id, f"{names[i]} chunk missing", int(done[block_id]))
            elif zlib.crc32(content) != int(crcs[block_id][i]):
                damage.add(block_id, f"{names[i]} chunk does not match its record", int(done[block_id]))


def _check_decodable(store: Store, damage: Damage, done, names, where: np.ndarray, on_disk=None) -> None:
    """Decode, through zarr, every existing chunk of ``names`` in the blocks of ``where``."""
    layout = store.layout
    if on_disk is None:
        on_disk = chunk_sizes(store, names, where)
    for i, name in enumerate(names):
        arr = store.group[name]
        for block_id in ids_of((on_disk[..., i] > 0) & where):
            try:
                arr[layout.region(block_id)]
            except Exception:  # noqa: BLE001 - a codec's error on bad bytes can be of any type
                damage.add(block_id, f"{name} chunk cannot be decoded", int(done[block_id]))
