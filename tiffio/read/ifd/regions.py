"""Region assembly: ``read_region``, ``asarray`` and ``iter_regions`` decode the segments
a window covers in a shared thread pool, each into the result or a per-thread buffer.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, NamedTuple

import numpy

from ..._cached import cached_property
from ...alloc import allocate
from ...enums import Compression
from ...errors import TiffTypeError, TiffValueError, TruncatedError
from ...format.grid import RegionPart
from ...sources import FileSource
from ...sources.iothreads import DaemonThreadPool, io_pool, wait
from ..pool import default_workers
from .segments import IFDSegments

__all__ = ["IFDRegions", "RegionWindow", "REMOTE_BATCH_BYTES"]

#: a remote region fetches at most this many bytes before decoding them (one wave each)
REMOTE_BATCH_BYTES = 64 << 20

def _prefetch_pool() -> DaemonThreadPool:
    """Two daemon threads that fetch iter_regions' next chunk from remote sources (daemons: a
    fetch stalled on a server never keeps the process alive after Ctrl-C)."""
    return io_pool("tiffio-prefetch", 2)


class RegionWindow(NamedTuple):
    """Where a chunk of :meth:`IFD.iter_regions` lies: the window read (y, x, height,
    width, with the halo) and ``core``, the slices of the array without the halo."""

    y: int
    x: int
    height: int
    width: int
    core: tuple[slice, slice]


#: segments with a predictor up to this size are read through the prepared reader in regions
#: (and coded one-segment images up to this size through it in asarray)
_SMALL_PREDICTED_SEGMENT = 256 << 10


#: whole uncompressed images read in contiguous runs (IFDRegions._read_runs): pieces of this many
#: bytes, read in threads when the image has at least _RUNS_PARALLEL_BYTES (a 128 MiB image read
#: by one thread is bound by one core's page faults and copies)
_RUN_PIECE = 4 << 20
_RUNS_PARALLEL_BYTES = 8 << 20
#: more strips than this are planned by the general path (the run planning holds a few arrays of them)
_RUNS_MAX_STRIPS = 1 << 24
_NATIVE_ORDER = "<" if numpy.little_endian else ">"

#: results at least this large are allocated zeroed when the fill is 0 (see read_region)
_LAZY_ZERO_BYTES = 32 << 20


def _zero_bits(value: Any, dtype: numpy.dtype) -> bool:
    """True if ``value`` stored as ``dtype`` is all zero bytes (0, not -0.0), so that a zeroed
    allocation already holds it."""
    try:
        return not numpy.asarray(value, dtype).tobytes().strip(b"\0")
    except (TypeError, ValueError, OverflowError):
        return False


class IFDRegions(IFDSegments):
    """Whole images and windows of one IFD (the upper layer of :class:`tiffio.IFD`)."""

    def asarray(self, *, fill: Any = None, workers: int | None = None, out: numpy.ndarray | None = None) -> numpy.ndarray:
        """The whole image, equal to tifffile's ``TiffPage.asarray()`` (shape :attr:`shape`).

        Decoded like :meth:`read_region` over the whole image (shared thread pool,
        per-thread buffers, segments decoded straight into the result where it is
        contiguous); ``out`` may be a C-contiguous array of :attr:`shape` and :attr:`dtype`.
        """
        self._tiff.require_open()
        if out is not None and not isinstance(out, numpy.ndarray):
            raise TiffTypeError(f"out must be a numpy array, not {type(out).__name__}")
        if 0 in self.shape:  # ImageWidth, ImageLength or ImageDepth 0: an empty array (as tifffile)
            return self._empty_result(out)
        self.spec  # noqa: B018 - raise UnsupportedFeatureError before allocating
        self.segment_offsets  # noqa: B018 - and reject a strile count the file cannot back
        if self.compression == Compression.NONE:
            # uncompressed strips that lie one after another: read straight into the result
            arr = self._read_runs(out, workers)
            if arr is not None:
                return arr
        if out is None and fill is None and self.grid.count == 1:
            # an image stored as one segment of exactly its shape (a small file's one strip or
            # tile): read_segment's prepared path returns the result itself, without planning
            arr = self._whole_segment()
            if arr is not None:
                return arr
        return self.read_region(0, 0, self.length, self.width, z=0, depth=self.depth, fill=fill,
                                workers=workers, out=out)

    def _read_runs(self, out: numpy.ndarray | None, workers: int | None) -> numpy.ndarray | None:
        """The whole image of uncompressed strips of byte-aligned samples whose stored bytes
        follow one another as the result's do: one read per contiguous run of strips (split
        into pieces read in threads when large), straight into the result, no per-strip
        buffer or copy; then the byte order fixed in place. None (the general path) for
        anything else (:attr:`_run_plan`)."""
        plan = self._run_plan
        if plan is None:
            return None
        nbytes, pieces, swap = plan
        dtype = self.dtype
        self.context.limits.check("max_output_bytes", nbytes, self.where)
        if out is None:
            result = allocate(self.shape, dtype, self.where)
        else:
            if out.shape != self.shape or out.dtype != dtype or not out.flags.c_contiguous:
                raise TiffValueError(f"out must be a C-contiguous array of shape {self.shape} and dtype {dtype}, "
                                     f"not {out.shape} {out.dtype}")
            result = out
        target = memoryview(result.reshape(-1).view(numpy.uint8))  # type: ignore[arg-type]
        source = self.context.source

        def read(piece: tuple[int, int, int]) -> None:
            offset, begin, end = piece
            got = source.read_into(offset, target[begin:end])
            if len(got) != end - begin:
                raise TruncatedError(f"{self.where}: {end - begin} bytes at offset {offset} pass the end of the file")
            if swap:
                numpy.frombuffer(target[begin:end], dtype).byteswap(inplace=True)

        if workers is None:
            workers = default_workers() if isinstance(source, FileSource) and nbytes >= _RUNS_PARALLEL_BYTES else 1
        if workers == 1 or len(pieces) == 1:
            for piece in pieces:
                read(piece)
        else:
            self._map(read, pieces, workers)
        return result

    @cached_property
    def _run_plan(self) -> tuple[int, list[tuple[int, int, int]], bool] | None:
        """(bytes, pieces (file offset, result start, result end), byte swap) of :meth:`_read_runs`,
        or None where it does not apply: tiles, volumes, packed or predicted samples, sparse or
        short strips, missing entries, remote sources, data past the end of the file."""
        spec = self.spec
        dtype = self.dtype
        grid = self.grid
        if (self.is_tiled or self.depth != 1 or spec.predictor != 1 or spec.fillorder != 1
                or spec.sampleformat not in (1, 2, 3) or spec.bits != dtype.itemsize * 8
                or self.context.source.remote or not grid.count or grid.count > _RUNS_MAX_STRIPS):
            return None
        counts = self.segment_byte_counts
        if counts is None or self._stored_segment_count < grid.count:
            return None
        n = grid.count
        offsets = self.segment_offsets.to_numpy()[:n]
        counts_ = counts.to_numpy()[:n]
        rps = grid.segment[1]
        if rps <= 0:
            return None
        rows = numpy.full(grid.per_plane, rps, numpy.int64)
        rows[-1] = self.length - rps * (grid.per_plane - 1)
        need = numpy.tile(rows, grid.planes) * (self.width * grid.segment_samples * dtype.itemsize)
        if (offsets <= 0).any() or (counts_ < need).any() or int((offsets + need).max()) > self.context.source.size:
            return None  # sparse, short or cut-off strips: the general path reads them as libtiff does
        # runs: strips whose bytes continue where the previous strip's end
        breaks = numpy.flatnonzero(offsets[1:] != offsets[:-1] + need[:-1]) + 1
        starts = [0, *breaks.tolist()]
        ends = [*breaks.tolist(), n]
        dst = numpy.concatenate(([0], numpy.cumsum(need))).tolist()
        pieces = []
        for a, b in zip(starts, ends):
            offset, first, last = int(offsets[a]), dst[a], dst[b]
            for k in range(first, last, _RUN_PIECE):
                pieces.append((offset + k - first, k, min(last, k + _RUN_PIECE)))
        return int(dst[-1]), pieces, dtype.itemsize > 1 and spec.byteorder != _NATIVE_ORDER

    def _whole_segment(self) -> numpy.ndarray | None:
        """The image of a one-segment IFD through the fast reader, or None (the general path)."""
        fast = self.fast_reader
        if fast is None:
            return None
        shape = self.shape
        nbytes = math.prod(shape) * self.dtype.itemsize
        if nbytes > _SMALL_PREDICTED_SEGMENT and self.compression not in (Compression.JPEG, Compression.NONE):
            # a large Deflate/Zstd/LZW result would be the codec's read-only bytes plus a copy:
            # twice the image in memory for a moment; the general path decodes into the result
            return None
        self.context.limits.check("max_output_bytes", nbytes, f"{self.where}: asarray")
        arr = fast(0)
        if arr is None or arr.size != math.prod(shape):  # a tile padded past the image, say
            return None
        if not arr.flags.writeable:  # the codec's bytes (read_segment's arrays may be read-only)
            arr = arr.copy()
        return arr.reshape(shape)

    def _empty_result(self, out: numpy.ndarray | None) -> numpy.ndarray:
        dtype = self.dtype
        if out is None:
            return numpy.empty(self.shape, dtype)
        if out.shape != self.shape or out.dtype != dtype:
            raise TiffValueError(f"out must be an array of shape {self.shape} and dtype {dtype}, "
                                 f"not {out.shape} {out.dtype}")
        return out

    # --- regions ----------------------------------------------------------------------------
    def _region_axes(self, planes_shape: tuple[int, int, int, int, int]) -> tuple[int, ...]:
        p, d, h, w, s = planes_shape
        zyx: tuple[int, ...] = (h, w) if self.depth == 1 else (d, h, w)
        if self.photometric == 2 or self.samples_per_pixel > 1:
            return (p, *zyx) if self.is_separate else (*zyx, s)
        return zyx

    def _scratch(self, shape: tuple[int, int, int, int]) -> numpy.ndarray:
        """A per-thread decode buffer of one segment's stored shape (no per-tile allocation)."""
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        buf = buffers.get(shape)
        if buf is None:
            buf = buffers[shape] = allocate(shape, self.dtype, f"{self.where}: a decode buffer")
        return buf

    def read_region(self, y: int, x: int, height: int, width: int, *, z: int = 0, depth: int | None = None,
                    out: numpy.ndarray | None = None, fill: Any = None, workers: int | None = None,
                    _fetched: dict[int, tuple[tuple[int, int], Any]] | None = None) -> numpy.ndarray:
        """Decode the window (y, x, height, width) - and z, depth for volumes.

        Only the segments the window covers are read and decoded, in a thread pool,
        each straight into a reusable per-thread buffer and then into the result.
        The result has the image's axes (:attr:`shape`) with Y and X (and Z) cut
        to the window: it equals ``asarray()[y:y+height, x:x+width]`` for contiguous
        samples, ``asarray()[:, y:y+height, x:x+width]`` for separate planes.
        Parts of the window outside the image, and sparse segments, are ``fill``
        (default: GDAL_NODATA if present, else 0).
        """
        self._tiff.require_open()
        for name, value in (("y", y), ("x", x), ("height", height), ("width", width), ("z", z), ("depth", depth)):
            if not isinstance(value, (int, numpy.integer)) or isinstance(value, bool):
                if name == "depth" and value is None:
                    continue
                raise TiffValueError(f"read_region: {name} must be an int, not {type(value).__name__}")
        if out is not None and not isinstance(out, numpy.ndarray):
            raise TiffTypeError(f"out must be a numpy array, not {type(out).__name__}")
        if depth is None:
            depth = self.depth - z if self.depth > 1 else 1
        if height <= 0 or width <= 0 or depth <= 0:
            raise TiffValueError(f"read_region: the window {depth} x {height} x {width} is empty")
        grid = self.grid
        spec = self.spec
        dtype = self.dtype
        shaped = (grid.planes, depth, height, width, grid.segment_samples)
        out_shape = self._region_axes(shaped)
        self.context.limits.check("max_output_bytes", math.prod(shaped) * dtype.itemsize, f"{self.where}: read_region")
        fill_value = self._fill_value(fill)
        inside = z >= 0 and y >= 0 and x >= 0 and z + depth <= self.depth and y + height <= self.length \
            and x + width <= self.width
        # segments past the entries the file stores read as fill: filled in bulk here, and never
        # planned one by one (a small file may declare millions of strips it does not store)
        stored = self._stored_segment_count if grid.count and 0 not in (self.depth, self.length, self.width) else 0
        prefilled = not inside or stored < grid.count
        # a zeroed allocation when the fill is 0 and the result is filled anyway or large (then
        # malloc maps fresh zero pages either way): the kernel hands out zeroed pages lazily, so
        # parts that stay fill (sparse or missing segments, outside the image) cost no writes and
        # no memory
        zeroed = out is None and (prefilled or math.prod(shaped) * dtype.itemsize >= _LAZY_ZERO_BYTES) \
            and _zero_bits(fill_value, dtype)
        if out is None:
            result = allocate(shaped, dtype, f"{self.where}: read_region result {out_shape} {dtype}", zeros=zeroed)
            prefilled = prefilled or zeroed
        else:
            if out.shape != out_shape or out.dtype != dtype or not out.flags.c_contiguous:
                raise TiffValueError(f"out must be a C-contiguous array of shape {out_shape} and dtype {dtype}, "
                                     f"not {out.shape} {out.dtype}")
            result = out.reshape(shaped)
        if prefilled and not zeroed:
            result[...] = fill_value
        parts = [part for plane in range(grid.planes)
                 for part in grid.region(z, y, x, depth, height, width, plane, limit=stored)]
        # JPEG segments are decoded from this thread's reusable read buffer (their decoded
        # array never refers to it); other codecs keep their own bytes
        buffered = spec.compression == Compression.JPEG

        def place(part: RegionPart, location: tuple[int, int], data: Any = None, fetched: bool = False) -> None:
            index, src = part.index, part.src
            target = result[part.plane][part.dst]
            if location[0] == 0 or location[1] == 0:
                if location[0] != 0:
                    self._zero_byte_count(index, location[0])
                if not prefilled:
                    target[...] = fill_value  # no segment-sized temporary: sparse strips can be huge
                return
            stored, valid = grid.shapes(index)
            full = all(s.start == 0 and s.stop == n for s, n in zip(src, stored[:3]))
            if full and target.flags.c_contiguous and spec.compression != 1:
                self._decode(index, fill_value, out=target, location=location, buffered=buffered, data=data,
                             fetched=fetched)
                return
            # only the rows of the segment inside the image, where that saves work (_decoded_shape)
            shape = self._decoded_shape(stored, valid)
            arr = self._decode(index, fill_value, out=self._scratch(shape), location=location, buffered=buffered,
                               data=data, fetched=fetched, crop_rows=shape != stored)
            target[...] = arr[src]

        if _fetched is not None and all(part.index in _fetched for part in parts):  # iter_regions fetched them
            self._map(lambda part: place(part, _fetched[part.index][0], _fetched[part.index][1] or None, True),
                      parts, workers)
        elif self.context.source.remote:
            self._place_remote(parts, place, workers)
        else:
            fast = self._region_fast_reader
            if fast is None:
                self._map(lambda part: place(part, self.segment_location(part.index)), parts, workers)
            else:
                stored4 = grid.stored_shape(0)

                def place_fast(part: RegionPart) -> None:
                    arr = fast(part.index)
                    if arr is None:  # sparse, not loaded yet, or anything unusual: the general path
                        place(part, self.segment_location(part.index))
                    else:
                        result[part.plane][part.dst] = arr.reshape(stored4)[part.src]
                self._map(place_fast, parts, workers)
        return out if out is not None else result.reshape(out_shape)

    def _place_remote(self, parts: list[RegionPart], place: Callable[..., None], workers: int | None) -> None:
        """Remote sources: every location first (strile blocks in one round trip), then the bytes
        of a batch of segments in one read_ranges call (one planned wave), then decoding in the
        pool. Batches bound the memory held by fetched bytes (REMOTE_BATCH_BYTES)."""
        locations = self.segment_locations([part.index for part in parts])
        batches: list[list[int]] = [[]]
        held = 0
        for k, (offset, count) in enumerate(locations):
            count = count if offset else 0
            if batches[-1] and held + count > REMOTE_BATCH_BYTES:
                batches.append([])
                held = 0
            batches[-1].append(k)
            held += count
        for batch in batches:
            self._place_batch([parts[k] for k in batch], [locations[k] for k in batch], place, workers)

    def _place_batch(self, parts: list[RegionPart], locations: list[tuple[int, int]], place: Callable[..., None],
                     workers: int | None) -> None:
        datas = self.fetch_segments([part.index for part in parts], locations)
        self._map(lambda k: place(parts[k], locations[k], datas[k] if datas[k] else None, True),
                  list(range(len(parts))), workers)

    @cached_property
    def _segment_nbytes(self) -> int:
        """Decoded bytes of the first segment as stored (every tile; the first strip)."""
        return math.prod(self.grid.stored_shape(0)) * self.dtype.itemsize

    @cached_property
    def _region_fast_reader(self) -> Any:
        """read_segment's prepared reader where regions gain from it (each tile decoded to a
        fresh array, then copied into the result): everywhere it applies, except large tiles
        with a predictor, which it would copy once more (512² uint16 Deflate + predictor 2:
        9 % slower; 64² Deflate tiles 26 %, 8192² JPEG windows 15 % faster one-threaded:
        benchmarks/RESULTS.md "Regions through the prepared reader")."""
        fast = self.fast_reader
        if fast is None or not self.grid.count:
            return None
        if self.predictor != 1 and self._segment_nbytes > _SMALL_PREDICTED_SEGMENT:
            return None
        return fast

    def iter_regions(self, chunk_shape: tuple[int, int], *, overlap: int = 0, fill: Any = None,
                     workers: int | None = None) -> Iterator[tuple[RegionWindow, numpy.ndarray]]:
        """Walk the image in chunks of ``chunk_shape`` (height, width), row by row.

        Yields (window, array): each array holds one chunk plus a halo of ``overlap``
        pixels on every side, clipped at the image border; ``array[window.core]`` is the
        chunk itself. Memory is bounded by one chunk and its halo.
        """
        try:
            ch, cw = (operator.index(v) for v in chunk_shape)
            overlap = operator.index(overlap)
        except (TypeError, ValueError):
            raise TiffValueError(f"iter_regions: chunk_shape must be two ints (height, width) and overlap an int, "
                                 f"not {chunk_shape!r} and {overlap!r}") from None
        if ch <= 0 or cw <= 0 or overlap < 0:
            raise TiffValueError(f"iter_regions: invalid chunk_shape {chunk_shape} or overlap {overlap}")
        length, width = self.length, self.width

        def windows() -> Iterator[RegionWindow]:
            # made one at a time: a list of every window cost memory for each chunk of the image
            # before the first was read (a 200-byte file can declare 2**31 x 2**31 pixels)
            for y0 in range(0, length, ch):
                h = min(ch, length - y0)
                ya, yb = max(0, y0 - overlap), min(length, y0 + h + overlap)
                for x0 in range(0, width, cw):
                    w = min(cw, width - x0)
                    xa, xb = max(0, x0 - overlap), min(width, x0 + w + overlap)
                    core = (slice(y0 - ya, y0 - ya + h), slice(x0 - xa, x0 - xa + w))
                    yield RegionWindow(ya, xa, yb - ya, xb - xa, core)

        # remote: the next chunk's bytes are fetched while this one is decoded and consumed
        remote = self.context.source.remote
        ahead: Future[Any] | None = None
        pending = windows()
        win = next(pending, None)
        while win is not None:
            nxt = next(pending, None)
            fetched = wait(ahead) if ahead is not None else None
            ahead = None
            if remote and nxt is not None:
                ahead = _prefetch_pool().submit(self._fetch_window, nxt.y, nxt.x, nxt.height, nxt.width)
            arr = self.read_region(win.y, win.x, win.height, win.width, fill=fill, workers=workers, _fetched=fetched)
            yield win, arr
            win = nxt

    def _fetch_window(self, y: int, x: int, height: int, width: int) -> dict[int, tuple[tuple[int, int], Any]] | None:
        """The locations and bytes of every segment a window covers (one planned wave), or None
        when they pass REMOTE_BATCH_BYTES (read_region then fetches in batches itself)."""
        grid = self.grid
        depth = self.depth if self.depth > 1 else 1
        indices = [p.index for plane in range(grid.planes) for p in grid.region(0, y, x, depth, height, width, plane)]
        locations = self.segment_locations(indices)
        if sum(count for offset, count in locations if offset) > REMOTE_BATCH_BYTES:
            return None
        datas = self.fetch_segments(indices, locations)
        return {i: (loc, data) for i, loc, data in zip(indices, locations, datas)}

