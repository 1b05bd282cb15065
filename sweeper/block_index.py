"""The block index: one code per block saying what its status chunk is known to hold.

One code per block (by flat id, see Layout.flat_id), so a resume reads a few
index chunks instead of every status chunk. The index lives in the array
``_sweeper/block_state``, a subgroup out of the dataset `xarray.open_zarr` shows.
Invariant: a code other than UNKNOWN on disk is true of the status chunk on disk;
the index is marked UNKNOWN on disk before a block's status is written, and
refined after. This module holds the codes, the index array of a new store, and
:class:`BlockIndex`, the index as one store object knows it; the store reads and
writes status and tells its index what it saw.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import zarr
from zarr.core.sync import sync  # zarr's own bridge to its event loop

from sweeper.blocks import FAILED, NOT_NEEDED, PENDING
from sweeper.layout import Layout

INDEX = "_sweeper/block_state"
# SETTLED: none pending, some failed or not needed (refinement); either is read to be counted
ALL_PENDING, UNKNOWN, ALL_OK, SETTLED = 0, 1, 2, 3
INDEX_CHUNK = 2**16  # blocks per index chunk
INDEX_FLUSH_SECONDS = 2.0  # refined codes reach the disk at most this late (or at `flush`)
PAD = -1  # status rows of blocks smaller than a chunk are padded with this


def lay_out(root: zarr.Group, n_blocks: int) -> None:
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


def codes(rows: np.ndarray) -> np.ndarray:
    """Block index codes of status rows (padded with PAD)."""
    pending = rows == PENDING
    code = np.where(((rows == FAILED) | (rows == NOT_NEEDED)).any(axis=1), SETTLED, ALL_OK).astype(np.int8)
    code[pending.any(axis=1)] = UNKNOWN
    code[(pending | (rows == PAD)).all(axis=1)] = ALL_PENDING
    return code


def n_index_chunks(n_blocks: int) -> int:
    return -(-n_blocks // INDEX_CHUNK)


class BlockIndex:
    """The block index as known here (``states``) and as it is on disk (``on_disk``), by flat id."""

    def __init__(self, states: np.ndarray):
        self.states = states
        self.on_disk = states.copy()
        self.dirty: set[int] = set()  # index chunks to write
        self.announced: set[int] = set()  # blocks marked UNKNOWN to be written, not written yet
        self.flushed = time.monotonic()

    @classmethod
    def read(cls, group: zarr.Group, n_blocks: int) -> BlockIndex | None:
        """The index of the store in ``group``, or None where there is none to trust."""
        try:
            index = group[INDEX]
        except KeyError:
            return None
        if index.shape != (n_blocks,):  # a grow of seeds cut short: trust none of it
            return None
        try:
            return cls(np.asarray(index[...], dtype=np.int8))
        except Exception:  # noqa: BLE001 - a damaged index is only a lost hint: read every block
            return None

    def learn(self, flat_ids: np.ndarray, rows: np.ndarray) -> None:
        """Refine the codes of blocks ``flat_ids`` from their status ``rows`` as just read."""
        learn = ~np.isin(flat_ids, list(self.announced))  # those may change under us
        self.states[flat_ids[learn]] = codes(rows[learn])
        self.dirty.update(np.unique(flat_ids[learn] // INDEX_CHUNK).tolist())

    def announce(self, flat_ids: np.ndarray) -> bool:
        """Mark blocks UNKNOWN before their status is written; True if the disk must be told first."""
        flat_ids = np.asarray(flat_ids, dtype=np.int64)
        self.states[flat_ids] = UNKNOWN
        self.announced.update(flat_ids.tolist())
        stale = flat_ids[self.on_disk[flat_ids] != UNKNOWN]
        if stale.size:
            self.dirty.update(np.unique(stale // INDEX_CHUNK).tolist())
        return bool(stale.size)

    def wrote(self, flat: int, status: np.ndarray) -> bool:
        """Note the ``status`` chunk block ``flat`` now holds; True when a flush is due."""
        self.announced.discard(flat)
        self.states[flat] = codes(status.reshape(1, -1))[0]
        self.dirty.add(flat // INDEX_CHUNK)
        return time.monotonic() - self.flushed > INDEX_FLUSH_SECONDS

    def rewrite_all(self) -> None:
        """Write all of it at the next flush, whatever is believed to be on disk."""
        self.on_disk[...] = -1
        self.dirty = set(range(n_index_chunks(self.states.size)))

    def regrid(self, old: Layout, new: Layout) -> None:
        """Carry the codes over from ``old`` to ``new``, the layout grown along the seed dim.

        Blocks of the old last seed chunk gained pending points (UNKNOWN unless they were
        all pending); blocks past the old seeds were never written (ALL_PENDING).
        """
        states = np.full(new.grid, ALL_PENDING, dtype=np.int8)
        states[tuple(slice(0, g) for g in old.grid)] = self.states.reshape(old.grid)
        if old.shape[-1] % old.chunks[-1]:  # the old last seed chunk was partial
            edge = states[..., old.grid[-1] - 1]
            edge[edge != ALL_PENDING] = UNKNOWN
        self.states = states.ravel()
        self.on_disk = self.states.copy()
        self.rewrite_all()

    def flush(self, index: zarr.AsyncArray) -> None:
        """Write the chunks that changed to ``index``, the index array opened for writing."""
        n = self.states.size

        async def write_all(chunks: list[int]) -> None:
            regions = [slice(c * INDEX_CHUNK, min((c + 1) * INDEX_CHUNK, n)) for c in chunks]
            await asyncio.gather(*(index.setitem(r, self.states[r]) for r in regions))

        chunks = sorted(self.dirty)
        changed = [
            c
            for c in chunks
            if not np.array_equal(
                self.states[c * INDEX_CHUNK : (c + 1) * INDEX_CHUNK],
                self.on_disk[c * INDEX_CHUNK : (c + 1) * INDEX_CHUNK],
            )
        ]
        if changed:
            sync(write_all(changed))
        for c in changed:
            r = slice(c * INDEX_CHUNK, (c + 1) * INDEX_CHUNK)
            self.on_disk[r] = self.states[r]
        self.dirty.clear()
        self.flushed = time.monotonic()
