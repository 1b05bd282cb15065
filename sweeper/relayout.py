"""A store rebuilt in a larger layout beside itself, then swapped into place.

A grid that grows an axis other than the seeds' end (:mod:`sweeper.growth`) changes
the shape and the chunk grid, so the grown store is a new store: the new grid's
template is laid out beside the old one, at ``.NAME.growing-PID``; every block of it
that holds stored points gets them copied by coordinates (outputs, ``wall_time``,
``finished_at``, ``message``, then ``status``, with the block's integrity record, as a
sweep writes a block; the block index last); then two renames put it in place: the
old store aside to ``.NAME.grown-PID``, the new one to ``NAME``. The lease goes with
the store: written into the new one when it is laid out and again, with a fresh
heartbeat, just before the renames, which run with the heartbeat paused.

A driver killed at any moment leaves one of three states, and :func:`recover` (run by
the next submit before anything else) ends each: the old store in place with a
half-made copy beside it (the copy is removed, the growth is redone); nothing in
place, the old store and the whole new one beside it (the second rename is
finished); the new store in place with the old one beside it (the old one is
removed). Leftovers of a driver still alive are left alone, and a submit that finds
nothing in place while that driver swaps is refused as the lease would refuse it.

An object store has no atomic rename: growth there is refused (appending seeds,
done in place, is not).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from zarr.core.sync import sync  # zarr's own bridge to its event loop

from sweeper.block_index import ALL_PENDING, codes
from sweeper.blocks import PENDING
from sweeper.creation import BOOKKEEPING, is_url, lay_out_beside, paused
from sweeper.growth import Growth
from sweeper.lease import STALE, Holder, Lease, LeaseHeld, held_message, read_holder
from sweeper.template import Template

if TYPE_CHECKING:
    from sweeper.store import Store

LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<what>growing|grown)-(?P<pid>\d+)$")
BATCH = 256  # new blocks copied per trip to zarr's event loop
KEPT_ATTRS = ("created", "packages", "git_commit")  # the store's provenance outlives a growth


def rebuild(old: Store, growth: Growth, template: Template, lease: Lease | None, status: np.ndarray) -> Store:
    """The store ``old`` grown by ``growth`` into ``template``'s layout, in place of ``old``.

    ``status`` is ``old``'s status (read by the damage check just made); returns the new store.
    """
    path = Path(old.path)
    staging = path.with_name(f".{path.name}.growing-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    attrs = {**template.attrs, **{k: old.attrs[k] for k in KEPT_ATTRS if k in old.attrs}}
    try:
        lay_out_beside(staging, replace(template, attrs=attrs), lease)
        new = type(old).open(staging)
        copy_points(old, new, growth, status, lease)
        swap(staging, path, lease)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    grown = type(old).open(path)
    grown.lease = lease
    return grown


def copy_points(old: Store, new: Store, growth: Growth, status: np.ndarray, lease: Lease | None) -> None:
    """Copy every stored point of ``old`` to its place in ``new``, block by block of ``new``.

    Only blocks holding a finished point are written (a pending point has only fill
    values): data, record, then status, as :meth:`Store.write` does; the block index
    is written last, all at once (the new store is not in place yet).
    """
    layout = new.layout
    finished = np.zeros(growth.new_shape, dtype=bool)
    finished[np.ix_(*growth.where)] = status != PENDING
    todo = np.flatnonzero(layout.per_block(finished, 0).any(axis=1))
    names = [*old.outputs, *BOOKKEEPING[1:]]
    sources = [old.group[name]._async_array for name in names]
    fills = [new.group[name].fill_value for name in names]
    for name in [*names, "status"]:
        new.writer(name)  # opened here: zarr's blocking calls cannot run inside its event loop
    states = np.full(layout.n_blocks, ALL_PENDING, dtype=np.int8)

    async def copy(flats: np.ndarray) -> None:
        jobs = []
        for flat in flats.tolist():
            block = layout.block_id(flat)
            box, at = [], []
            for where, r in zip(growth.where, layout.region(block)):
                lo, hi = np.searchsorted(where, [r.start, r.stop])
                box.append(slice(int(lo), int(hi)))
                at.append(where[lo:hi] - r.start)
            jobs.append((flat, block, tuple(box), np.ix_(*at)))
        data = await asyncio.gather(*(src.getitem(box) for _, _, box, _ in jobs for src in sources))
        writes = []
        for k, (flat, block, box, at) in enumerate(jobs):
            shape = layout.block_shape(block)
            blocks = {}
            for i, name in enumerate(names):
                values = data[k * len(names) + i]
                chunk = np.full(shape + values.shape[len(shape) :], fills[i], values.dtype)
                chunk[at] = values
                blocks[name] = chunk
            chunk = np.full(shape, PENDING, dtype=np.int8)
            chunk[at] = status[box]
            states[flat] = codes(chunk.reshape(1, -1))[0]
            writes.append(new.put(block, blocks, chunk))
        await asyncio.gather(*writes)

    for start in range(0, todo.size, BATCH):
        if lease is not None:
            lease.check()  # a driver that lost the store stops copying it
        sync(copy(todo[start : start + BATCH]))
    new.reindex_to(states)


def swap(staging: Path, path: Path, lease: Lease | None) -> None:
    """Put the whole new store ``staging`` in place of the store at ``path``: two renames."""
    aside = path.with_name(f".{path.name}.grown-{os.getpid()}")
    shutil.rmtree(aside, ignore_errors=True)
    with paused(lease):
        if lease is not None:
            lease.check()  # a driver that lost the store must not replace it
            lease.write_into(staging)  # the lease in place after the swap, with a fresh heartbeat
        os.rename(path, aside)
        try:
            os.rename(staging, path)
        except BaseException:
            os.rename(aside, path)  # the old store back: the growth did not happen
            raise
    shutil.rmtree(aside, ignore_errors=True)


def recover(path: str | os.PathLike) -> None:
    """End what a killed driver's growth of the store at ``path`` left (see the module doc).

    Raises :class:`~sweeper.lease.LeaseHeld` if a live driver is swapping the store now.
    """
    if is_url(path):
        return
    path = Path(path)
    if not path.parent.is_dir():
        return
    found: dict[str, dict[str, Path]] = {}
    for entry in path.parent.iterdir():
        match = LEFTOVER.match(entry.name)
        if match and match["name"] == path.name and entry.is_dir() and not entry.is_symlink():
            found.setdefault(match["pid"], {})[match["what"]] = entry
    current = read_holder(path)
    for parts in found.values():
        alive = [_alive(entry, current) for entry in parts.values()]
        if any(alive):
            if not path.exists():
                holder = next((h for h, a in zip(map(read_holder, parts.values()), alive) if a and h), None)
                raise LeaseHeld(
                    held_message(str(path), holder)
                    if holder
                    else f"{path} is being grown by another driver; submit again in a minute."
                )
            continue
        staging, aside = parts.get("growing"), parts.get("grown")
        if aside is not None and not path.exists():  # killed between the two renames
            os.rename(staging if staging is not None else aside, path)
        for entry in (staging, aside):
            if entry is not None and entry.exists():
                shutil.rmtree(entry, ignore_errors=True)


def _alive(entry: Path, current: Holder | None) -> bool:
    """May the driver that left this growth folder still be running?"""
    holder = read_holder(entry)
    if holder is None:  # no lease (a store grown without one): gone once untouched for a while
        return time.time() - entry.stat().st_mtime < STALE
    if current is not None and current.token == holder.token:  # its heartbeat goes to the store
        holder = current
    return holder.gone() is None
