"""How a grid is cut into blocks: one block of points is exactly one zarr chunk.

A block never shares a chunk with another block, so results can be written
region by region with no locking and a block is the unit of work, of retry and
of resume.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


def chunk_shape(shape: tuple[int, ...], block_size: int) -> tuple[int, ...]:
    """Chunk sizes with at most ``block_size`` points, filled from the last dim.

    Seeds are the last grid dim, so a block holds all seeds of a few parameter
    points when it can: seed averages then read few chunks.
    """
    chunks = []
    room = max(1, block_size)
    for size in reversed(shape):
        # Balanced chunks: 4 seeds with room for 3 are two chunks of 2, not 3 + 1.
        take = size if size <= room else math.ceil(size / math.ceil(size / room))
        chunks.append(take)
        room //= take
    return tuple(reversed(chunks))


@dataclass(frozen=True)
class Layout:
    shape: tuple[int, ...]
    chunks: tuple[int, ...]

    @property
    def grid(self) -> tuple[int, ...]:
        """Number of blocks along each dim."""
        return tuple(math.ceil(s / c) for s, c in zip(self.shape, self.chunks))

    @property
    def n_blocks(self) -> int:
        return math.prod(self.grid)

    @property
    def n_points(self) -> int:
        return math.prod(self.shape)

    def block_ids(self) -> Iterator[tuple[int, ...]]:
        return itertools.product(*(range(g) for g in self.grid))

    # Blocks are also numbered 0..n_blocks-1 in the C order of ``block_ids`` ("flat ids"):
    # per-block bookkeeping is then one numpy array, whatever the number of dims.
    def block_id(self, flat: int) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(int(flat), self.grid))

    def flat_id(self, block_id: tuple[int, ...]) -> int:
        return int(np.ravel_multi_index(block_id, self.grid)) if block_id else 0

    def block_sizes(self) -> np.ndarray:
        """Points of every block, by flat id (the last block along a dim may be smaller)."""
        sizes = np.ones((), dtype=np.int64)
        for s, c, g in zip(self.shape, self.chunks, self.grid):
            along = np.full(g, c, dtype=np.int64)
            along[-1] = s - c * (g - 1)
            sizes = np.multiply.outer(sizes, along)
        return sizes.ravel()

    def per_block(self, values: np.ndarray, fill: int) -> np.ndarray:
        """``values`` (grid-shaped) as rows of blocks: shape (n_blocks, points in a full chunk).

        Row ``k`` holds block ``k``'s chunk in C order, padded with ``fill`` where the
        block is smaller than a chunk; vectorised, with no Python loop over blocks.
        """
        padded_shape = tuple(g * c for g, c in zip(self.grid, self.chunks))
        if padded_shape != values.shape:
            padded = np.full(padded_shape, fill, dtype=values.dtype)
            padded[tuple(slice(0, s) for s in values.shape)] = values
            values = padded
        split = values.reshape([n for gc in zip(self.grid, self.chunks) for n in gc])
        ndim = len(self.shape)
        order = list(range(0, 2 * ndim, 2)) + list(range(1, 2 * ndim, 2))
        return split.transpose(order).reshape(self.n_blocks, math.prod(self.chunks))

    def from_per_block(self, rows: np.ndarray) -> np.ndarray:
        """The grid-shaped array whose :meth:`per_block` rows are ``rows`` (padding dropped)."""
        ndim = len(self.shape)
        grid = rows.reshape(*self.grid, *self.chunks)
        order = [k for axis in range(ndim) for k in (axis, ndim + axis)]  # the inverse of per_block
        padded = grid.transpose(order).reshape([g * c for g, c in zip(self.grid, self.chunks)])
        return padded[tuple(slice(0, n) for n in self.shape)]

    def chunk_mask(self, block_id: tuple[int, ...]) -> np.ndarray:
        """Which positions of a full chunk (C order) are points of the block (False: padding)."""
        shape = self.block_shape(block_id)
        inside = np.zeros(self.chunks, dtype=bool)
        inside[tuple(slice(0, n) for n in shape)] = True
        return inside.ravel()

    def region(self, block_id: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(slice(b * c, min((b + 1) * c, s)) for b, c, s in zip(block_id, self.chunks, self.shape))

    def block_shape(self, block_id: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(r.stop - r.start for r in self.region(block_id))

    def block_points(self, block_id: tuple[int, ...]) -> np.ndarray:
        """Grid indices of the block's points in C order, shape (n, ndim)."""
        region = self.region(block_id)
        axes = [np.arange(r.start, r.stop) for r in region]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=-1) if axes else np.zeros((1, 0), int)
