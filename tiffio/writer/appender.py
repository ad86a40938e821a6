"""The end of a working file and what is appended there, under one lock: records (leader + payload),
the tiles (last write wins), the classic-TIFF bound of ``bigtiff=False``, background write-back, and
the first error a background thread met (raised by the writer's next call).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import numpy

from ..errors import LimitExceededError, TiffError
from .image import ImageWriter
from .pipeline import join_thread, start_thread
from .records import CLASSIC_LIMIT, DATA_START, LEADER, MAGIC_IMAGE, MAGIC_TILE, crc32, crc32_parts
from .sink import Sink

__all__ = ["Appender", "WRITEBACK_BYTES"]

#: with fsync=True, a background fdatasync runs every this many bytes appended
WRITEBACK_BYTES = 32 << 20


class Appender:
    """Appends to ``sink`` from ``DATA_START`` on. ``lock`` guards the file end, the images' tile
    indexes and the table of tiles in flight; ``images`` is the writer's list (for the bound)."""

    def __init__(self, sink: Sink, images: Sequence[ImageWriter], fsync: bool) -> None:
        self.sink = sink
        self.images = images
        self.lock = threading.Lock()
        self.end = DATA_START
        #: the file end right after the last published checkpoint (-1: none)
        self.clean_end = -1
        #: bigtiff=False: refuse an append that would leave no room for a classic TIFF's IFDs
        self.classic_only = False
        self.max_classic = CLASSIC_LIMIT
        self.since_checkpoint = 0            # tiles stored since the last checkpoint
        self._error: BaseException | None = None
        self._latest: dict[tuple[int, int], int] = {}  # tiles in encoder threads -> sequence number
        self._seq = 0
        # background write-back: with fsync=True, every WRITEBACK_BYTES appended, one fdatasync runs in
        # a thread, so that the disk works while tiles are encoded and the fsync of a checkpoint or
        # close() finds little left to write (None: off)
        self.writeback_bytes: int | None = WRITEBACK_BYTES if fsync else None
        self._writeback_mark = DATA_START
        self._writeback_thread: threading.Thread | None = None

    # -- errors of background threads ---------------------------------------------------------------
    def set_error(self, exc: BaseException) -> None:
        """Keep the first error of a background thread (takes the lock)."""
        with self.lock:
            if self._error is None:
                self._error = exc

    @property
    def failed(self) -> bool:
        return self._error is not None

    def raise_pending(self) -> None:
        """Raise the error a background thread met, once."""
        with self.lock:
            exc, self._error = self._error, None
        if exc is not None:
            if isinstance(exc, TiffError):
                raise exc
            raise TiffError(f"encoding a tile failed: {type(exc).__name__}: {exc}") from exc

    # -- records ------------------------------------------------------------------------------------
    def append_first_image(self, image: int, payload: bytes) -> None:
        """Append an image definition (caller holds ``lock``). The file's first record, the definition
        of image 0, is the signature of a working file (records.read_signature): written with the
        header's 16 bytes in one write, so that a file tiffio created is empty or holds it."""
        if self.end == DATA_START:
            leader = LEADER.pack(MAGIC_IMAGE, image, 0, len(payload), crc32(payload))
            self.sink.pwrite(0, b"\0" * DATA_START, leader, payload)
            self.end = DATA_START + len(leader) + len(payload)
        else:
            self.append(MAGIC_IMAGE, image, 0, payload)

    def append(self, magic: bytes, image: int, index: int, payload: bytes, crc: int | None = None,
               check: bool = True) -> int:
        """Append leader + payload at the end (caller holds ``lock``); returns the payload offset."""
        return self.append_parts(magic, image, index, (payload,), len(payload),
                                 crc32(payload) if crc is None else crc, check)

    def append_parts(self, magic: bytes, image: int, index: int, parts: Sequence[Any], length: int, crc: int,
                     check: bool = True) -> int:
        """Append leader + the concatenated parts (one vectored write; caller holds ``lock``)."""
        leader = LEADER.pack(magic, image, index, length, crc)
        pos = self.end
        end = pos + len(leader) + length
        if check and self.classic_only and end + self.metadata_bound() > self.max_classic:
            raise LimitExceededError(
                f"{self.sink.name}: bigtiff=False, but {length} more bytes at offset {pos} would pass "
                f"the 4 GiB limit of classic TIFF (with room for the IFDs); nothing was written")
        self.sink.pwrite(pos, leader, *parts)
        self.end = end
        return pos + len(leader)

    def metadata_bound(self) -> int:
        """An upper bound of the bytes a classic-TIFF checkpoint needs (blank tiles, state, IFDs)."""
        total = 4096
        for im in self.images:
            total += im.tile_count * 8 + 2048 + len(json.dumps(im.params))
            total += im.tiles.blank_size() + LEADER.size + 2 * len(im.spec.jpegtables or b"")
            for tag in im.params["extratags"]:
                total += 2 * len(json.dumps(tag[3])) + 16
        return total

    # -- tiles --------------------------------------------------------------------------------------
    def claim(self, image: int, index: int) -> int:
        """Mark a tile as given to an encoder thread; returns the sequence number of this write."""
        with self.lock:
            self._seq += 1
            self._latest[(image, index)] = self._seq
            return self._seq

    def unclaim(self, image: int, index: int, seq: int | None = None) -> None:
        """The write ``seq`` of a tile will not be stored (failed, or superseded by a raw write when
        ``seq`` is None): the tile is missing again unless a later write is in flight."""
        with self.lock:
            key = (image, index)
            if seq is None:
                self._latest.pop(key, None)
            elif self._latest.get(key) == seq:
                del self._latest[key]

    def missing_mask(self, image: ImageWriter) -> numpy.ndarray:
        """True for each tile of ``image`` neither stored nor in an encoder thread."""
        with self.lock:
            missing = image.tiles.missing_mask()
            in_flight = [i for (k, i) in self._latest if k == image.index]
            if in_flight:
                missing[in_flight] = False
        return missing

    def store_tile(self, image: ImageWriter, index: int, parts: Sequence[Any], seq: int | None) -> bool:
        """Append one encoded tile (its bytes as parts); with ``seq``, only if it is still the latest
        write of that tile. The checksum is computed before taking the lock."""
        crc = crc32_parts(parts)
        length = sum(len(p) for p in parts)
        with self.lock:
            if seq is not None:
                key = (image.index, index)
                if self._latest.get(key) != seq:
                    return False  # a later write of this tile is in flight or done: the last write wins
                del self._latest[key]
            offset = self.append_parts(MAGIC_TILE, image.index, index, parts, length, crc)
            image.tiles.set(index, offset, length)
            self.since_checkpoint += 1
            writeback = self.writeback_bytes is not None and \
                self.end - self._writeback_mark >= self.writeback_bytes and self.sink.fd is not None and \
                (self._writeback_thread is None or not self._writeback_thread.is_alive())
            if writeback:  # (started under the lock: one at a time, and close() can always join it)
                self._writeback_mark = self.end
                self._writeback_thread = threading.Thread(target=self._writeback, daemon=True,
                                                          name="tiffio-writeback")
                start_thread(self._writeback_thread)
        return True

    # -- write-back ---------------------------------------------------------------------------------
    def _writeback(self) -> None:
        try:
            self.sink.datasync()
        except BaseException as exc:
            self.set_error(exc)

    def wait_writeback(self) -> None:
        with self.lock:
            thread = self._writeback_thread
        if thread is not None:
            join_thread(thread)
