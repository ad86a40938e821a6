"""Copying stored tile bytes from source files to their offsets in a new file (relayout, merge):
in-kernel with os.copy_file_range where the tiles are laid out back to back (runs that are contiguous
in both files as one call), otherwise through one reused buffer written in big writes, with GDAL's
COG leader (byte count) and trailer (last 4 bytes repeated) around each tile. No decoding.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy

from ..errors import TiffFormatError

__all__ = ["TileSources", "Progress", "copy_tiles", "pwrite_all"]

_LEADER = struct.Struct("<I")
_COPY_FILE_RANGE = hasattr(os, "copy_file_range")
_BUFFER = 8 << 20


class TileSources(Protocol):
    """Where the tiles of one image are: for every tile in TileOffsets order, ``source`` (an index
    into the list of file descriptors), ``offset`` and ``count`` (0 and 0: a sparse tile)."""

    source: numpy.ndarray
    offset: numpy.ndarray
    count: numpy.ndarray


def copy_tiles(out_fd: int, fds: Sequence[int], images: Sequence[TileSources], cog: bool,
               tile_offsets: list[numpy.ndarray], progress: Progress | None = None) -> None:
    """Copy every tile's bytes to its output offset: in the plain layout with os.copy_file_range
    (in-kernel, reflinks where the filesystem can), source runs that are contiguous in both files
    as one call; in the COG layout through one reused buffer (each tile gets its leader and
    trailer around it) written in big writes."""
    total = sum(int(image.count.sum()) for image in images)
    report = _ProgressCounter(progress, total)
    if not cog and _COPY_FILE_RANGE:
        _copy_tiles_in_kernel(out_fd, fds, images, tile_offsets, report)
        return
    buf = bytearray(_BUFFER)
    view = memoryview(buf)
    used = pending = 0  # bytes in the buffer; tile bytes among them (for progress)
    buf_start = -1
    present = [numpy.flatnonzero(image.count > 0) for image in images]
    dest_all = numpy.concatenate([tile_offsets[k][p] for k, p in enumerate(present)])
    by_dest = numpy.argsort(dest_all, kind="stable")
    srcs = numpy.concatenate([im.source[p] for im, p in zip(images, present)])[by_dest].tolist()
    offs = numpy.concatenate([im.offset[p] for im, p in zip(images, present)])[by_dest].tolist()
    counts = numpy.concatenate([im.count[p] for im, p in zip(images, present)])[by_dest].tolist()
    dests = dest_all[by_dest].tolist()
    # in output order, so that consecutive tiles share one write
    for src, off, n, dest in zip(srcs, offs, counts, dests):
        size = n + 8 if cog else n
        start = dest - 4 if cog else dest
        if buf_start >= 0 and (start != buf_start + used or used + size > _BUFFER):
            pwrite_all(out_fd, view[:used], buf_start)
            report.add(pending)
            used = pending = 0
            buf_start = -1
        if size > _BUFFER:  # a huge tile: straight through
            _copy_range(fds[src], off, n, out_fd, dest)
            if cog:
                tail = os.pread(fds[src], 4, off + n - 4) if n >= 4 else b""
                os.pwrite(out_fd, _LEADER.pack(n), dest - 4)
                os.pwrite(out_fd, tail.rjust(4, b"\0"), dest + n)
            report.add(n)
            continue
        if buf_start < 0:
            buf_start = start
        p = used + (4 if cog else 0)
        got = os.preadv(fds[src], [view[p: p + n]], off)
        if got != n:
            raise TiffFormatError(f"tile data at offset {off} ({n} bytes) passes the end of source file {src}")
        if cog:
            _LEADER.pack_into(buf, used, n)
            buf[p + n: p + n + 4] = bytes(buf[p + n - 4: p + n]) if n >= 4 else bytes(buf[p: p + n]).rjust(4, b"\0")
        used += size
        pending += n
    if used:
        pwrite_all(out_fd, view[:used], buf_start)
        report.add(pending)


def _copy_tiles_in_kernel(out_fd: int, fds: Sequence[int], images: Sequence[TileSources],
                          tile_offsets: list[numpy.ndarray], report: _ProgressCounter) -> None:
    for k, image in enumerate(images):
        present = numpy.flatnonzero(image.count > 0)
        if not present.size:
            continue
        srcs = image.source[present]
        offs = image.offset[present]
        counts = image.count[present]
        dests = tile_offsets[k][present]
        # runs: the next tile follows in the same source and in the output
        breaks = numpy.flatnonzero((srcs[1:] != srcs[:-1]) | (offs[1:] != offs[:-1] + counts[:-1]) |
                                   (dests[1:] != dests[:-1] + counts[:-1])) + 1
        starts = numpy.concatenate([[0], breaks]).tolist()
        ends = numpy.concatenate([breaks, [present.size]]).tolist()
        cum = numpy.concatenate([[0], numpy.cumsum(counts)]).tolist()
        srcs_l, offs_l, dests_l = srcs.tolist(), offs.tolist(), dests.tolist()
        for a, b in zip(starts, ends):
            _copy_range(fds[srcs_l[a]], offs_l[a], cum[b] - cum[a], out_fd, dests_l[a])
            report.add(cum[b] - cum[a])


#: ``progress(copied, total)``: tile bytes copied so far and in all
Progress = Callable[[int, int], None]


class _ProgressCounter:
    """Calls ``progress(copied, total)`` as tile bytes reach the output (once at 0 first)."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.copied = progress, total, 0
        if progress is not None:
            progress(0, total)

    def add(self, nbytes: int) -> None:
        if self.progress is not None and nbytes:
            self.copied += nbytes
            self.progress(self.copied, self.total)


def pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        n = os.pwrite(fd, data, offset)
        if n <= 0:  # pragma: no cover
            raise OSError(28, "short write")
        data = data[n:]
        offset += n


def _copy_range(src: int, offset: int, count: int, dst: int, dest: int) -> None:
    """Copy ``count`` bytes between files (os.copy_file_range where there is one)."""
    copy = getattr(os, "copy_file_range", None)
    while count > 0:
        n = 0
        if copy is not None:
            try:
                n = copy(src, dst, count, offset, dest)
            except OSError:
                copy = None
                continue
        else:
            data = os.pread(src, min(count, _BUFFER), offset)
            if data:
                pwrite_all(dst, memoryview(data), dest)
            n = len(data)
        if n <= 0:
            raise TiffFormatError(f"{count} bytes of tile data at offset {offset} pass the end of the source")
        offset += n
        dest += n
        count -= n
