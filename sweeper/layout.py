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
