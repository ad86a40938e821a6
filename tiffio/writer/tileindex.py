"""The tile index of one image being written: where each stored tile's bytes are (offset, byte count;
0 and 0 while missing) and the blank tile that stands in for the missing ones at a checkpoint.

One record shared by everything that fills or reads it: the writer (tiles stored), checkpoints
(strile arrays), recovery (checkpoint arrays, then the records after them), shared append (tiles
other processes appended) and merge (the tiles of each shard). No I/O, no locking: the writer
updates it under its file-end lock.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy

__all__ = ["TileIndex"]


class TileIndex:
    """Offsets and byte counts of ``count`` tiles (uint64, in TileOffsets order), and the blank tile."""

    def __init__(self, count: int, encode_blank: Callable[[], bytes]) -> None:
        self.count = count
        self.offsets = numpy.zeros(count, numpy.uint64)
        self.counts = numpy.zeros(count, numpy.uint64)
        #: (offset, byte count) of the stored blank tile, or None while none is stored
        self.blank_location: tuple[int, int] | None = None
        self._encode_blank = encode_blank
        self._blank: bytes | None = None

    # -- tiles -------------------------------------------------------------------------------------
    def set(self, index: int, offset: int, count: int) -> None:
        """Tile ``index`` is stored at ``offset`` with ``count`` bytes (a later write wins)."""
        self.offsets[index] = offset
        self.counts[index] = count

    def is_stored(self, index: int) -> bool:
        return bool(self.offsets[index] != 0)

    def location(self, index: int) -> tuple[int, int]:
        """(offset, byte count) of a stored tile."""
        return int(self.offsets[index]), int(self.counts[index])

    def missing_mask(self) -> numpy.ndarray:
        """True for every tile not stored (a new array)."""
        return self.offsets == 0

    def stored_count(self) -> int:
        return int((self.offsets != 0).sum())

    def missing_count(self) -> int:
        return int((self.offsets == 0).sum())

    def load(self, offsets: numpy.ndarray, counts: numpy.ndarray) -> None:
        """Take the strile arrays of a checkpoint: tiles pointing at the blank tile, and tiles with a
        zero offset or byte count, are missing."""
        offsets = offsets.astype(numpy.uint64)
        counts = counts.astype(numpy.uint64)
        if self.blank_location is not None:
            blank = offsets == self.blank_location[0]
            offsets[blank] = 0
            counts[blank] = 0
        offsets[counts == 0] = 0
        counts[offsets == 0] = 0
        self.offsets[:] = offsets
        self.counts[:] = counts

    def strile_arrays(self) -> tuple[numpy.ndarray, numpy.ndarray]:
        """Copies of (offsets, byte counts) as a checkpoint stores them: missing tiles point at the
        blank tile once one is stored, and stay 0 (sparse) otherwise."""
        offsets = self.offsets.copy()
        counts = self.counts.copy()
        if self.blank_location is not None:
            missing = offsets == 0
            offsets[missing] = self.blank_location[0]
            counts[missing] = self.blank_location[1]
        return offsets, counts

    # -- the blank tile -----------------------------------------------------------------------------
    def blank_tile(self) -> bytes:
        """The encoded blank tile (encoded once, on first use)."""
        if self._blank is None:
            self._blank = self._encode_blank()
        return self._blank

    def blank_size(self) -> int:
        """Bytes of the blank tile if it is encoded already, else 0."""
        return len(self._blank or b"")

    def needs_blank(self) -> bool:
        """True when tiles are missing and no blank tile is stored for them yet."""
        return self.blank_location is None and bool((self.offsets == 0).any())
