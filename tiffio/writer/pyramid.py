"""Pyramids in one pass, level-0 tiles in any order.

Level k+1 tile (r, c) is the 2 x 2 reduction of level-k tiles (2r..2r+1, 2c..2c+1). Each child
contributes one quadrant computed from the child alone, so a parent is complete (and is encoded and
stored, then reduced into its own parent) as soon as its 1, 2 or 4 children are in, whatever the
order of the tiles. Only the *frontier* of partially complete parents is held: its quadrants, up to
``budget`` bytes; beyond it the least recently touched quadrants are spilled, compressed, to a
temporary file (unnamed, in the output's folder) and read back when their parent completes.
Row-major, Z-order and block-aligned orders keep the frontier small (tens of MiB at 40960² RGB with
512² tiles) and never spill.

Level sizes are ceil(size / 2) (as GDAL). Filters: ``mean`` (like libvips' default): the mean of the
pixels of each 2 x 2 block inside the image (1, 2 or 4 at the edges); integers are rounded half up,
``(2 * sum + n) // (2 * n)``; floats and complex computed in float64 / complex128 as
``(a00 + a10 + a01 + a11) / 4`` (edge blocks repeat their edge pixels, which gives the same mean).
``nearest``: the top-left pixel of each block (``[::2, ::2]``, GDAL's nearest at 2x).
"""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy

from ..errors import TiffValueError

__all__ = ["FILTERS", "reduce2", "level_shapes", "Frontier", "Pyramid", "DEFAULT_BUDGET"]

FILTERS = ("mean", "nearest")
DEFAULT_BUDGET = 64 << 20


def level_shapes(height: int, width: int, tile: tuple[int, int]) -> list[tuple[int, int]]:
    """(height, width) of every level, level 0 first, down to the first that fits one tile (ceil)."""
    shapes = [(height, width)]
    while shapes[-1][0] > tile[0] or shapes[-1][1] > tile[1]:
        h, w = shapes[-1]
        shapes.append((-(-h // 2), -(-w // 2)))
    return shapes


def reduce2(arr: numpy.ndarray, filter: str = "mean") -> numpy.ndarray:
    """The 2 x 2 reduction of an image block (length, width[, samples]) whose origin is at an even
    pixel: shape (ceil(length / 2), ceil(width / 2)[, samples]), same dtype (see the module docstring)."""
    if filter == "nearest":
        return numpy.ascontiguousarray(arr[::2, ::2])
    if filter != "mean":
        raise TiffValueError(f"pyramid filter must be one of {FILTERS}, not {filter!r}")
    h, w = arr.shape[:2]
    if h % 2 or w % 2:  # repeat the last row / column: the mean of the pixels inside the image
        pad = [(0, h % 2), (0, w % 2)] + [(0, 0)] * (arr.ndim - 2)
        arr = numpy.pad(arr, pad, mode="edge")
        h, w = arr.shape[:2]
    samples = arr.shape[2] if arr.ndim == 3 else 1
    out = numpy.empty((h // 2, w // 2) + arr.shape[2:], arr.dtype)
    # rows pairs as (h/2, 2, w * samples): each sample of a block is a view with a long inner loop
    # (numpy is slow on interleaved views whose innermost axis has 3 elements)
    rows = numpy.ascontiguousarray(arr).reshape(h // 2, 2, w * samples)
    step = 2 * samples
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind in "ui" and size <= 2:  # few numpy calls: each one releases and retakes the GIL
        wide = numpy.dtype(f"{kind}{size * 2}")
        pairs = numpy.add(rows[:, 0], rows[:, 1], dtype=wide)  # vertical sums, contiguous
        sums = numpy.empty(out.shape, wide)
        for k in range(samples):
            numpy.add(pairs[:, k::step], pairs[:, k + samples::step], out=_sample(sums, k, samples))
        sums += 2
        if kind == "u":
            sums >>= 2
        else:
            sums //= 4
        out[...] = sums
        return out
    for k in range(samples):
        a, b = rows[:, 0, k::step], rows[:, 1, k::step]
        c, d = rows[:, 0, k + samples::step], rows[:, 1, k + samples::step]
        if kind in "ui":  # no wider type: floor((sum + 2) / 4) from quotients and remainders of 4
            q = (a >> 2) + (b >> 2) + (c >> 2) + (d >> 2)
            r = (a & 3) + (b & 3) + (c & 3) + (d & 3) + 2
            _sample(out, k, samples)[...] = q + (r >> 2)
        else:
            work = numpy.complex128 if kind == "c" else numpy.float64
            s = a.astype(work)
            s += b
            s += c
            s += d
            s /= 4
            _sample(out, k, samples)[...] = s
    return out


def _sample(out: numpy.ndarray, k: int, samples: int) -> numpy.ndarray:
    return out[:, :, k] if samples > 1 or out.ndim == 3 else out


def _codec() -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    import imagecodecs
    if imagecodecs.ZSTD.available:
        return (lambda b: bytes(imagecodecs.zstd_encode(b, level=1)), lambda b: bytes(imagecodecs.zstd_decode(b)))
    import zlib  # pragma: no cover - imagecodecs without zstd
    return (lambda b: zlib.compress(b, 1), zlib.decompress)  # pragma: no cover


class _Parent:
    """A partially complete parent tile: its quadrants in memory or spilled."""

    __slots__ = ("quads", "spilled", "mask", "expected")

    def __init__(self, expected: int) -> None:
        self.quads: list[numpy.ndarray | None] = [None, None, None, None]
        self.spilled: dict[int, tuple[int, int, tuple[int, ...]]] = {}   # quadrant -> (offset, length, shape)
        self.mask = 0
        self.expected = expected


class Frontier:
    """The quadrants of the partially complete parents, keyed by (level, plane, row, col), with
    spilling beyond ``budget`` bytes (thread-safe)."""

    def __init__(self, budget: int, dtype: numpy.dtype, spill_dir: str | None = None) -> None:
        self.budget = int(budget)
        self.spill_dir = spill_dir
        self.dtype = numpy.dtype(dtype)
        self._parents: OrderedDict[tuple[int, int, int, int], _Parent] = OrderedDict()
        self._lock = threading.Lock()
        self._spill: Any = None
        self._spill_end = 0
        self._encode, self._decode = _codec()
        self.bytes = 0              # quadrant bytes in memory
        self.peak_bytes = 0
        self.spilled_bytes = 0      # compressed bytes written to the spill file, in total
        self.spills = 0             # quadrants spilled
        self.reloads = 0            # quadrants read back

    def __len__(self) -> int:
        return len(self._parents)

    def has(self, key: tuple[int, int, int, int], quadrant: int) -> bool:
        with self._lock:
            parent = self._parents.get(key)
            return parent is not None and bool(parent.mask & (1 << quadrant))

    def keys(self, level: int) -> list[tuple[int, int, int, int]]:
        with self._lock:
            return [k for k in self._parents if k[0] == level]

    def add(self, key: tuple[int, int, int, int], quadrant: int, data: numpy.ndarray | None,
            expected: int) -> list[numpy.ndarray | None] | None:
        """Put one quadrant (None: only create the entry); returns the four quadrants (None where a
        child is missing) when the parent is complete (its entry is then dropped), else None."""
        with self._lock:
            parent = self._parents.get(key)
            if parent is None:
                parent = self._parents[key] = _Parent(expected)
            else:
                self._parents.move_to_end(key)
            if data is not None:
                old = parent.quads[quadrant]
                if old is not None:
                    self.bytes -= old.nbytes
                parent.spilled.pop(quadrant, None)  # a newer copy replaces a spilled one
                parent.quads[quadrant] = data
                parent.mask |= 1 << quadrant
                self.bytes += data.nbytes
                self.peak_bytes = max(self.peak_bytes, self.bytes)
            if parent.mask == parent.expected:
                return self._pop(key)
            if self.bytes > self.budget:
                self._spill_until_under(keep=key)
            return None

    def pop(self, key: tuple[int, int, int, int]) -> list[numpy.ndarray | None]:
        """The quadrants of a parent, complete or not (drops its entry)."""
        with self._lock:
            return self._pop(key)

    def _pop(self, key: tuple[int, int, int, int]) -> list[numpy.ndarray | None]:
        parent = self._parents.pop(key)
        quads = parent.quads
        for q in quads:
            if q is not None:
                self.bytes -= q.nbytes
        for k, (offset, length, shape) in parent.spilled.items():
            raw = self._decode(self._spill_read(offset, length))
            quads[k] = numpy.frombuffer(raw, self.dtype).reshape(shape).copy()
            self.reloads += 1
        return quads

    def _spill_until_under(self, keep: tuple[int, int, int, int]) -> None:
        for key in list(self._parents):
            if self.bytes <= self.budget:
                return
            if key == keep:
                continue
            parent = self._parents[key]
            for k, q in enumerate(parent.quads):
                if q is None:
                    continue
                blob = self._encode(numpy.ascontiguousarray(q).tobytes())
                parent.spilled[k] = (self._spill_write(blob), len(blob), q.shape)
                parent.quads[k] = None
                self.bytes -= q.nbytes
                self.spilled_bytes += len(blob)
                self.spills += 1

    def _spill_write(self, blob: bytes) -> int:
        if self._spill is None:
            # an unnamed file (O_TMPFILE), or one created with O_EXCL | O_NOFOLLOW under a random name and
            # removed at once: nothing can redirect it, nothing is left behind. In the output's folder (it
            # has room for the output; the system's temporary folder may be a small tmpfs), else there.
            try:
                self._spill = tempfile.TemporaryFile(prefix=".tiffio-pyramid-", dir=self.spill_dir)
            except OSError:
                self._spill = tempfile.TemporaryFile(prefix="tiffio-pyramid-")
        offset = self._spill_end
        self._spill.seek(offset)
        self._spill.write(blob)
        self._spill_end += len(blob)
        return offset

    def _spill_read(self, offset: int, length: int) -> bytes:
        self._spill.seek(offset)
        data: bytes = self._spill.read(length)
        return data

    def close(self) -> None:
        with self._lock:
            if self._spill is not None:
                self._spill.close()
                self._spill = None


class Pyramid:
    """The reduced levels of one image, produced while its level-0 tiles arrive.

    ``levels`` are the ImageWriter-like objects of levels 0..L (each with ``tile``, ``tiles_down``,
    ``tiles_across``, ``planes``, ``valid_shape(row, col)`` and ``tile_index(row, col, plane)``).
    ``store(level_image, index, pixels)`` encodes and stores one finished tile of a reduced level
    (the pixels cropped to the image); it runs in the thread that completed the parent.
    """

    def __init__(self, levels: list[Any], filter: str, budget: int,
                 store: Callable[[Any, int, numpy.ndarray], None], spill_dir: str | None = None) -> None:
        if filter not in FILTERS:
            raise TiffValueError(f"pyramid filter must be one of {FILTERS}, not {filter!r}")
        self.levels = levels
        self.filter = filter
        self.frontier = Frontier(budget, levels[0].dtype, spill_dir)
        self._store = store

    # -- geometry ----------------------------------------------------------------------------
    def _parent_of(self, level: int, row: int, col: int) -> tuple[tuple[int, int], int, int]:
        """(parent row, col), quadrant number, expected-children mask of the parent of a level tile."""
        child = self.levels[level]
        prow, pcol = row // 2, col // 2
        expected = 0
        for dy in (0, 1):
            for dx in (0, 1):
                if 2 * prow + dy < child.tiles_down and 2 * pcol + dx < child.tiles_across:
                    expected |= 1 << (2 * dy + dx)
        return (prow, pcol), 2 * (row % 2) + (col % 2), expected

    def quadrant_shape(self, level: int, row: int, col: int) -> tuple[int, ...]:
        shape = self.levels[level].valid_shape(row, col)
        return (-(-shape[0] // 2), -(-shape[1] // 2), *shape[2:])

    def crop(self, level: int, row: int, col: int, pixels: numpy.ndarray) -> numpy.ndarray:
        """The part of a tile's pixels inside the image, shaped (length, width[, samples])."""
        valid = self.levels[level].valid_shape(row, col)
        if pixels.ndim == 3 and len(valid) == 2:
            pixels = pixels[:, :, 0]
        return pixels[: valid[0], : valid[1]]

    def reduce(self, level: int, row: int, col: int, pixels: numpy.ndarray) -> numpy.ndarray:
        """The quadrant a level tile (pixels full or cropped) gives its parent."""
        return reduce2(self.crop(level, row, col, pixels), self.filter)

    # -- tiles arriving ----------------------------------------------------------------------
    def tile_done(self, level: int, index: int, pixels: numpy.ndarray) -> None:
        """A tile of ``level`` was stored: reduce it into its parent (and complete what completes)."""
        if level + 1 >= len(self.levels):
            return
        plane, row, col = self._coords(level, index)
        self.add_quadrant(level, plane, row, col, self.reduce(level, row, col, pixels))

    def add_quadrant(self, level: int, plane: int, row: int, col: int, quadrant: numpy.ndarray | None) -> None:
        """Hand in the quadrant of level tile (row, col, plane) (None: only register the parent)."""
        if level + 1 >= len(self.levels):
            return
        if quadrant is not None:
            expected_shape = self.quadrant_shape(level, row, col)
            if quadrant.shape != expected_shape and not (quadrant.ndim == 3 and quadrant.shape[2] == 1
                                                         and quadrant.shape[:2] == expected_shape):
                raise TiffValueError(f"level {level} tile (row {row}, col {col}): reduced quadrant has shape "
                                     f"{quadrant.shape}, expected {expected_shape}")
            if quadrant.dtype != self.levels[0].dtype:
                quadrant = quadrant.astype(self.levels[0].dtype)
            quadrant = quadrant.reshape(expected_shape)
        (prow, pcol), q, expected = self._parent_of(level, row, col)
        key = (level + 1, plane, prow, pcol)
        quads = self.frontier.add(key, q, quadrant, expected)
        if quads is not None:
            self._complete(key, quads)

    def _coords(self, level: int, index: int) -> tuple[int, int, int]:
        im = self.levels[level]
        plane, rest = divmod(index, im.tiles_down * im.tiles_across)
        row, col = divmod(rest, im.tiles_across)
        return plane, row, col

    def _complete(self, key: tuple[int, int, int, int], quads: list[numpy.ndarray | None]) -> None:
        """Assemble, store and reduce one parent tile (missing children are zeros)."""
        level, plane, row, col = key
        im = self.levels[level]
        valid = im.valid_shape(row, col)
        pixels = numpy.zeros(valid, im.dtype)
        hh, hw = im.tile[0] // 2, im.tile[1] // 2
        for q, quad in enumerate(quads):
            if quad is not None:
                y, x = (q // 2) * hh, (q % 2) * hw
                pixels[y: y + quad.shape[0], x: x + quad.shape[1]] = quad
        self._store(im, im.tile_index(row, col, plane), pixels)
        if level + 1 < len(self.levels):
            self.add_quadrant(level, plane, row, col, reduce2(pixels, self.filter))

    def finish(self) -> None:
        """Complete every partial parent, level by level (missing children are zeros)."""
        for level in range(1, len(self.levels)):
            for key in self.frontier.keys(level):
                self._complete(key, self.frontier.pop(key))

    # -- resume ------------------------------------------------------------------------------
    def rebuild(self, is_stored: Callable[[Any, int], bool], read_pixels: Callable[[Any, int], numpy.ndarray]) -> int:
        """After a crash: for every missing reduced tile, reduce its stored children (decoded) into
        the frontier; parents whose children are all stored are produced. Returns the tiles decoded."""
        decoded = 0
        for level in range(1, len(self.levels)):
            parent_im, child_im = self.levels[level], self.levels[level - 1]
            for plane in range(parent_im.planes):
                for prow in range(parent_im.tiles_down):
                    for pcol in range(parent_im.tiles_across):
                        if is_stored(parent_im, parent_im.tile_index(prow, pcol, plane)):
                            continue
                        for dy in (0, 1):
                            for dx in (0, 1):
                                row, col = 2 * prow + dy, 2 * pcol + dx
                                if row >= child_im.tiles_down or col >= child_im.tiles_across:
                                    continue
                                index = child_im.tile_index(row, col, plane)
                                if not is_stored(child_im, index) or \
                                        self.frontier.has((level, plane, prow, pcol), 2 * dy + dx):
                                    continue
                                pixels = read_pixels(child_im, index)
                                decoded += 1
                                self.add_quadrant(level - 1, plane, row, col,
                                                  self.reduce(level - 1, row, col, pixels))
        return decoded

    def close(self) -> None:
        self.frontier.close()

    @property
    def stats(self) -> dict[str, int]:
        f = self.frontier
        return {"levels": len(self.levels), "frontier_bytes": f.bytes, "peak_bytes": f.peak_bytes,
                "spills": f.spills, "spilled_bytes": f.spilled_bytes, "reloads": f.reloads,
                "partial_parents": len(f)}
