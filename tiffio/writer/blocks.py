"""Blocks: tile-aligned rectangles of many tiles, the unit in which arrays are written.

A *block* of an image starts on a tile boundary and ends on one or at the image edge (a block
may also be given padded to whole tiles at the edge). Everything that writes arrays cuts them
into blocks: ``ImageWriter.write_region`` (encoded by the writer's threads), :func:`tiffio.fan_in`
and ``tiffio.dask.to_tiff`` (encoded in workers), ``tiffio.imwrite`` and ``tiffio.map_tiles``.

:class:`BlockEncoder` is the picklable worker side: ``encode_block(pixels, y, x)`` encodes every
tile of the block into an :class:`EncodedBlock` (bytes only, no file). In a pyramid it also makes
the reduced levels the block holds whole: a block whose origin and size (away from the image
edge) are multiples of ``2**k`` tiles holds levels 1..k of its area, so the worker encodes those
tiles too and returns only the quadrants its level-k tiles give their parents (a quarter of a
level-k tile each). The writing process then stores the bytes and hands the quadrants to its
pyramid (``ImageWriter.write_encoded_block``): no tile is decoded, no level recomputed, and the
writer's frontier holds only the levels above k.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy

from ..codecs.encode import EncodeSpec, encode_segment
from ..errors import TiffTypeError, TiffValueError
from .pyramid import reduce2

__all__ = ["BlockEncoder", "EncodedBlock", "PackedBlocks", "WriteReport", "check_block", "block_tiles"]


def _nearest(value: int, step: int, limit: int) -> int:
    """``value`` rounded to the nearest multiple of ``step`` (ties up), at most ``limit``."""
    return min(limit, ((value + step // 2) // step) * step)


def check_block(y: int, x: int, height: int, width: int, tile: tuple[int, int], image: tuple[int, int],
                where: str) -> tuple[int, int]:
    """The (height, width) of a block at (y, x) inside the image, checking that its edges fall on
    tile boundaries or the image edge (a block padded to whole tiles past the edge is cropped).
    TiffValueError otherwise, naming the nearest aligned window."""
    th, tw = tile
    ih, iw = image
    for name, value in (("y", y), ("x", x), ("height", height), ("width", width)):
        if not isinstance(value, (int, numpy.integer)) or isinstance(value, bool):
            raise TiffTypeError(f"{where}: block {name} must be an int, not {value!r}")
    if y < 0 or x < 0 or height <= 0 or width <= 0 or y >= ih or x >= iw:
        raise TiffValueError(f"{where}: a block of {height} x {width} pixels at (y={y}, x={x}) is not inside "
                             f"the {ih} x {iw} image")

    def fits(origin: int, size: int, step: int, limit: int) -> int | None:
        if origin % step:
            return None
        end = origin + size
        if end == limit or (end < limit and size % step == 0):
            return size
        if end > limit and size % step == 0 and end - limit < step:
            return limit - origin  # padded to whole tiles at the edge: cropped
        return None

    h = fits(int(y), int(height), th, ih)
    w = fits(int(x), int(width), tw, iw)
    if h is None or w is None:
        y0 = min(_nearest(int(y), th, ih), ((ih - 1) // th) * th)
        x0 = min(_nearest(int(x), tw, iw), ((iw - 1) // tw) * tw)
        y1 = _nearest(int(y) + int(height), th, ih)
        x1 = _nearest(int(x) + int(width), tw, iw)
        y1 = y1 if y1 > y0 else min(ih, y0 + th)
        x1 = x1 if x1 > x0 else min(iw, x0 + tw)
        raise TiffValueError(
            f"{where}: a block of {height} x {width} pixels at (y={y}, x={x}) does not fall on the {th} x {tw} "
            f"tile grid of the {ih} x {iw} image; the nearest aligned window is y={y0}, x={x0}, "
            f"{y1 - y0} x {x1 - x0} (edges on tile boundaries or the image edge)")
    return h, w


def block_tiles(y: int, x: int, height: int, width: int, tile: tuple[int, int]) -> list[tuple[int, int, slice, slice]]:
    """(row, col, rows, cols) of every tile of an aligned block of (height, width) at (y, x): the
    slices cut the tile's part out of the block's pixels."""
    th, tw = tile
    out = []
    for by in range(0, height, th):
        for bx in range(0, width, tw):
            out.append(((y + by) // th, (x + bx) // tw, slice(by, by + th), slice(bx, bx + tw)))
    return out


@dataclass
class EncodedBlock:
    """The encoded tiles of one block: ``tiles`` as (level, row, col, plane, bytes), the
    quadrants its top local level gives the next level as (level, row, col, plane, array), and
    ``local_levels``: the reduced levels the block made itself (0 without a pyramid)."""

    y: int
    x: int
    tiles: list[tuple[int, int, int, int, Any]] = field(default_factory=list)  # bytes-like
    quadrants: list[tuple[int, int, int, int, numpy.ndarray]] = field(default_factory=list)
    local_levels: int = 0

    @property
    def nbytes(self) -> int:
        """Encoded bytes of all tiles."""
        return sum(len(t[4]) for t in self.tiles)


class PackedBlocks:
    """Encoded blocks as one buffer for the trip from a worker process: every tile's bytes
    concatenated in one uint8 array and their (block, level, row, col, plane, length) in one int64
    array, so that pickling copies no tile (pickle protocol 5 and dask.distributed send numpy
    arrays out of band) and unpickling makes no object per tile. :meth:`blocks` gives the
    :class:`EncodedBlock` objects back, their tiles views of the buffer."""

    __slots__ = ("data", "index", "heads")

    def __init__(self, blocks: list[EncodedBlock]) -> None:
        tiles = [t for b in blocks for t in b.tiles]
        self.index = numpy.array([(k, t[0], t[1], t[2], t[3], len(t[4])) for k, b in enumerate(blocks)
                                  for t in b.tiles], numpy.int64).reshape(len(tiles), 6)
        self.data = numpy.frombuffer(b"".join(t[4] for t in tiles), numpy.uint8)
        self.heads = [(b.y, b.x, b.local_levels, b.quadrants) for b in blocks]

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.data, self.index, self.heads)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.data, self.index, self.heads = state

    def blocks(self) -> list[EncodedBlock]:
        out = [EncodedBlock(y, x, quadrants=quadrants, local_levels=k) for y, x, k, quadrants in self.heads]
        view = memoryview(self.data.data).cast("B")
        end = 0
        for k, level, row, col, plane, length in self.index.tolist():
            out[k].tiles.append((level, row, col, plane, view[end:end + length]))
            end += length
        return out


class BlockEncoder:
    """Encode the tiles of tile-aligned blocks of one image, with no file (picklable: send it to
    workers). ``levels`` counts the image's pyramid levels (1: no pyramid); ``planes`` > 1 for
    separate sample planes."""

    def __init__(self, spec: EncodeSpec, height: int, width: int, *, planes: int = 1, levels: int = 1,
                 filter: str = "mean", where: str = "image") -> None:
        self.spec = spec
        self.height = int(height)
        self.width = int(width)
        self.planes = int(planes)
        self.levels = int(levels)
        self.filter = filter
        self.where = where

    def __reduce__(self) -> Any:
        return (_rebuild, (self.spec, self.height, self.width, self.planes, self.levels, self.filter, self.where))

    def local_levels(self, y: int, x: int, height: int, width: int) -> int:
        """How many reduced levels an aligned block at (y, x) of (height, width) holds whole."""
        th, tw = self.spec.tile
        k = 0
        while k + 1 < self.levels:
            step = 2 ** (k + 1)
            if (y // th) % step or (x // tw) % step:
                break
            if (y + height < self.height and (height // th) % step) or \
                    (x + width < self.width and (width // tw) % step):
                break
            k += 1
        return k

    def encode_block(self, block: Any, y: int, x: int, plane: int | None = None) -> EncodedBlock:
        """Encode every tile of ``block`` (pixels (height, width[, samples]), aligned as
        :func:`check_block` says) whose top-left pixel is (y, x) of level 0. With separate planes,
        give one plane's pixels (height, width) and ``plane=``, or all samples without it."""
        arr = numpy.asarray(block)
        if arr.dtype.newbyteorder("=") != self.spec.dtype:
            raise TiffTypeError(f"{self.where}: block dtype {arr.dtype} does not match the image's {self.spec.dtype}")
        samples = self.spec.samples
        if self.planes > 1:
            if plane is None:
                if arr.ndim != 3 or arr.shape[2] != self.planes:
                    raise TiffValueError(f"{self.where}: a block of all {self.planes} planes has shape "
                                         f"(height, width, {self.planes}), not {arr.shape}")
                per_plane = [(k, arr[:, :, k]) for k in range(self.planes)]
            else:
                if not 0 <= plane < self.planes:
                    raise TiffValueError(f"{self.where}: plane {plane} out of range ({self.planes} planes)")
                if arr.ndim == 3 and arr.shape[2] == 1:
                    arr = arr[:, :, 0]
                if arr.ndim != 2:
                    raise TiffValueError(f"{self.where}: one plane's block has shape (height, width), not {arr.shape}")
                per_plane = [(int(plane), arr)]
        else:
            if samples == 1 and arr.ndim == 3 and arr.shape[2] == 1:
                arr = arr[:, :, 0]
            if arr.ndim != (3 if samples > 1 else 2) or (samples > 1 and arr.shape[2] != samples):
                expected = f"(height, width, {samples})" if samples > 1 else "(height, width)"
                raise TiffValueError(f"{self.where}: a block has shape {expected}, not {arr.shape}")
            per_plane = [(0, arr)]
        h, w = check_block(y, x, arr.shape[0], arr.shape[1], self.spec.tile, (self.height, self.width), self.where)
        k = self.local_levels(y, x, h, w)
        out = EncodedBlock(int(y), int(x), local_levels=k)
        th, tw = self.spec.tile
        # full tiles are copied into one contiguous buffer for the codec: one allocation per block, not
        # one per tile (worker processes often return large allocations to the system at once, so a
        # fresh buffer per tile costs page faults every time)
        scratch = numpy.empty(self.spec.tile_shape, self.spec.dtype)
        for p, pixels in per_plane:
            level_pixels = pixels[:h, :w]
            ly, lx = int(y), int(x)
            for level in range(k + 1):
                lh, lw = level_pixels.shape[:2]
                for row, col, rows, cols in block_tiles(ly, lx, lh, lw, (th, tw)):
                    tile = level_pixels[rows, cols]
                    if tile.shape == scratch.shape and not tile.flags.c_contiguous:
                        numpy.copyto(scratch, tile)
                        data = encode_segment(self.spec, scratch)
                    else:
                        data = encode_segment(self.spec, tile)
                    out.tiles.append((level, row, col, p, data))
                    if level == k and level + 1 < self.levels:
                        out.quadrants.append((level, row, col, p, reduce2(tile, self.filter)))
                if level < k:
                    level_pixels = reduce2(level_pixels, self.filter)
                    ly, lx = ly // 2, lx // 2
        return out


def _rebuild(spec: EncodeSpec, height: int, width: int, planes: int, levels: int, filter: str,
             where: str) -> BlockEncoder:
    return BlockEncoder(spec, height, width, planes=planes, levels=levels, filter=filter, where=where)


@dataclass
class WriteReport:
    """What an array write stored (``tiffio.imwrite``, ``tiffio.dask.to_tiff``, ``tiffio.map_tiles``):
    the file and its size, the shape and dtype of the data, the images (pages) and the level shapes
    of the first, the segment layout, the segments stored (every level), the blocks (bands or tasks)
    computed and, when resuming, the blocks skipped because their tiles were already in the file."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    images: int = 1
    levels: list[tuple[int, ...]] = field(default_factory=list)
    tile: tuple[int, int] | None = None
    rowsperstrip: int | None = None
    compression: str = "none"
    segments: int = 0
    file_bytes: int = 0
    blocks: int = 0
    skipped: int = 0
    max_in_flight: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        layout = f"tiles {self.tile[0]} x {self.tile[1]}" if self.tile else f"strips of {self.rowsperstrip} rows"
        more = f", {self.skipped} blocks already written" if self.skipped else ""
        return (f"{self.path}: {self.shape} {self.dtype}, {self.images} image(s), {len(self.levels)} level(s), "
                f"{layout}, {self.compression}; {self.segments} segments, {self.file_bytes} bytes from {self.blocks} "
                f"blocks{more} in {self.seconds:.2f} s")
