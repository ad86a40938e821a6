"""The zarr v3 view of one TIFF array, as data: its metadata and chunk key <-> segment/window.

No framework imports: :mod:`tiffio.zarr` serves these through zarr's Store interface
(:mod:`tiffio._edge.hierarchy` puts the arrays of a file together).

* ``PageChunks`` cuts one page into chunks - the page's segments, tile-aligned windows, or
  the whole page - and reads one chunk of any page laid out like the keyframe (an IFD, or a
  :class:`tiffio.read.series.series.ContiguousPage` of a contiguous stack).
* ``ArrayMap`` is one zarr array: a series (or its pages ``key`` selects) whose leading axes
  enumerate pages, chunked by 1, and whose trailing axes are the page's, chunked by
  ``PageChunks``; or a single image (masks, associated images).
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy

from ..alloc import require_fill
from ..codecs.decode import SegmentSpec
from ..errors import TiffFormatError, TiffValueError, UnsupportedFeatureError
from ..read.file import IFD
from ..read.series.pages import dimension_names
from ..read.series.series import ContiguousPage, Series
from .selection import Selection

__all__ = ["ArrayMap", "PageChunks", "dumps_json", "zarr_dtype", "spec_to_json", "spec_from_json", "window_shape",
           "json_number"]



def window_shape(chunks: Any, accepted: str) -> tuple[int, int]:
    """``(height, width)`` of a window-chunks argument, both positive; TiffValueError naming
    what is ``accepted`` otherwise (the zarr store and the dask arrays parse ``chunks=`` alike)."""
    try:
        h, w = (int(n) for n in chunks)
    except (TypeError, ValueError):
        raise TiffValueError(f"chunks must be {accepted}, not {chunks!r}") from None
    if h <= 0 or w <= 0:
        raise TiffValueError(f"chunks {chunks!r} must be positive")
    return h, w


def zarr_dtype(dtype: numpy.dtype, where: str) -> tuple[str, numpy.dtype]:
    if dtype.kind == "b":
        return "bool", numpy.dtype(bool)
    if dtype.kind in "iufc" and dtype.itemsize in (1, 2, 4, 8, 16) and not (dtype.kind == "c" and dtype.itemsize < 8):
        le = dtype.newbyteorder("<")
        return le.name, le
    raise UnsupportedFeatureError(f"{where}: samples of dtype {dtype} have no zarr v3 data type")


def json_number(value: Any, dtype: numpy.dtype) -> Any:
    if dtype.kind == "b":
        return bool(value)
    if dtype.kind in "iu":
        return int(value)
    if dtype.kind == "c":
        c = complex(value)
        return [json_number(c.real, numpy.dtype("f8")), json_number(c.imag, numpy.dtype("f8"))]
    f = float(value)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return f


def spec_to_json(spec: SegmentSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        if isinstance(value, numpy.dtype):
            value = value.str
        elif isinstance(value, (bytes, bytearray)):
            value = {"base64": base64.b64encode(bytes(value)).decode("ascii")}
        elif isinstance(value, numpy.integer):
            value = int(value)
        out[field.name] = value
    return out


def spec_from_json(data: dict[str, Any]) -> SegmentSpec:
    kwargs = dict(data)
    kwargs["dtype"] = numpy.dtype(kwargs["dtype"])
    tables = kwargs.get("jpegtables")
    if isinstance(tables, dict):
        kwargs["jpegtables"] = base64.b64decode(tables["base64"])
    return SegmentSpec(**kwargs)


def dumps_json(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=False, allow_nan=False).encode()


class PageChunks:
    """How a page laid out like ``keyframe`` is cut into chunks, and the read of one chunk.

    Chunk coordinates are the page's axes (``keyframe.shape``): a separate-planes axis
    first, Z for volumes, Y, X, and a trailing index 0 for contiguous samples. The methods
    take the page to read (an IFD or a ContiguousPage) and the chunk coordinates.
    """

    def __init__(self, keyframe: IFD, chunks: Any, fill: Any, workers: int | None, raw: bool = False) -> None:
        kf = self.keyframe = keyframe
        self.raw = raw
        shape = kf.shape
        grid = kf.grid
        self.depth3 = kf.depth > 1
        has_samples = len(shape) > 2 + self.depth3
        self.separate = has_samples and kf.is_separate
        self.contig_samples = has_samples and not kf.is_separate
        self.samples = grid.segment_samples
        self.planes = grid.planes
        self.shape = tuple(int(n) for n in shape)
        self.data_type, self.dtype = zarr_dtype(kf.dtype, kf.where)
        self.fill = require_fill(fill if fill is not None else (kf.nodata if kf.nodata is not None else 0),
                                 kf.dtype, kf.where)
        self.workers = workers
        sd, sh, sw = grid.segment
        if not grid.tiled:
            sh = min(sh, kf.length)  # RowsPerStrip may be larger than the image
        sh, sw = max(sh, 1), max(sw, 1)
        #: decoded bytes of one segment (a store's choice between decoding inline and in a thread)
        self.segment_nbytes = sd * sh * sw * self.samples * kf.dtype.itemsize
        if chunks == "segment":
            self.region = False
            cd, ch, cw = (sd if self.depth3 else 1), sh, sw
        elif chunks == "image":
            self.region = True
            cd, ch, cw = kf.depth, kf.length, kf.width
        else:
            self.region = True
            h, w = chunks
            cd = sd if self.depth3 else 1
            ch, cw = -(-h // sh) * sh, -(-w // sw) * sw
            ch, cw = min(ch, -(-kf.length // sh) * sh), min(cw, -(-kf.width // sw) * sw)
        cd, ch, cw = max(cd, 1), max(ch, 1), max(cw, 1)  # an empty image still has a chunk shape
        self.cdhw = (cd, ch, cw)
        chunk_shape: list[int] = []
        if self.separate:
            chunk_shape.append(self.planes if self.region else 1)
        if self.depth3:
            chunk_shape.append(cd)
        chunk_shape += [ch, cw]
        if self.contig_samples:
            chunk_shape.append(self.samples)
        self.chunk_shape = tuple(chunk_shape)
        self.grid_shape = tuple(-(-n // c) for n, c in zip(self.shape, self.chunk_shape))
        self.chunk_nbytes = math.prod(self.chunk_shape) * self.dtype.itemsize
        self._layouts: dict[int, bool] = {}

    def codec_json(self, chunks: Any, chunk: tuple[int, ...] | None = None) -> dict[str, Any]:
        """The ``tiffio`` codec of raw mode: chunks are the stored segments, decoded by zarr."""
        kf = self.keyframe
        if chunks != "segment":
            raise TiffValueError(f"{kf.where}: raw chunks (decode='codec') are the file's segments; "
                                 f"chunks must be 'segment', not {chunks!r}")
        spec = kf.spec
        if spec.compression == 6:
            raise UnsupportedFeatureError(f"{kf.where}: old-style JPEG (compression 6) segments are not complete "
                                          "streams; read them with decode='store'")
        grid = kf.grid
        sd, sh, sw = grid.segment
        last_rows = 0
        if not grid.tiled:
            sh = min(sh, kf.length)
            last_rows = kf.length % sh if sh else 0
        cd, ch, cw = self.cdhw
        return {"name": "tiffio", "configuration": {
            "spec": spec_to_json(spec), "segment": [sd, sh, sw, self.samples],
            "chunk": [cd, ch, cw, self.samples], "last_rows": last_rows}}

    def _pzyx(self, coords: tuple[int, ...]) -> tuple[int, int, int, int]:
        k = 0
        plane = z = 0
        if self.separate:
            plane = coords[0]
            k = 1
        if self.depth3:
            z = coords[k]
            k += 1
        return plane, z, coords[k], coords[k + 1]

    def _index(self, coords: tuple[int, ...]) -> int:
        plane, z, row, col = self._pzyx(coords)
        return self.keyframe.grid.index(plane, z, row, col)

    def check_layout(self, page: Any) -> bool:
        """True if ``page`` is cut into segments as the keyframe is (then segment chunks read
        its segments); False if its segments differ but its shape and dtype do not (chunks
        are then read as windows). A page of another shape or dtype raises TiffFormatError."""
        kf = self.keyframe
        if page is kf or isinstance(page, ContiguousPage):
            return True
        known = self._layouts.get(id(page))
        if known is None:
            if tuple(page.shape) != self.shape or page.dtype != kf.dtype:
                raise TiffFormatError(f"{page.where}: image {tuple(page.shape)} {page.dtype} differs from its series' "
                                      f"first page {self.shape} {kf.dtype} ({kf.where})")
            known = (page.grid.segment == kf.grid.segment and page.grid.tiled == kf.grid.tiled
                     and page.grid.planes == kf.grid.planes)
            self._layouts[id(page)] = known
        return known

    def read_raw(self, page: Any, coords: tuple[int, ...]) -> bytes:
        """The stored bytes of the chunk's segment (raw mode)."""
        self._check_raw(page)
        return bytes(page.read_segment_bytes(self._index(coords)))

    def location(self, page: Any, coords: tuple[int, ...]) -> tuple[int, int]:
        """(offset, byte_count) of the chunk's segment in the file (raw mode, references)."""
        self._check_raw(page)
        offset, count = page.segment_location(self._index(coords))
        return int(offset), int(count)

    def _check_raw(self, page: Any) -> None:
        if page is self.keyframe or isinstance(page, ContiguousPage):
            return
        spec = self.keyframe.spec
        if not self.check_layout(page) or dataclasses.replace(page.spec, where=spec.where) != spec:
            raise UnsupportedFeatureError(
                f"{page.where}: its segments are stored differently from its series' first page ({self.keyframe.where}"
                "): raw chunks (decode='codec', references) need one codec configuration per array; "
                "read it with decode='store'")

    def segment_indices(self, coords: tuple[int, ...]) -> list[int]:
        """The segments a chunk reads (one for segment chunks, the covered ones for windows)."""
        grid = self.keyframe.grid
        plane, z, row, col = self._pzyx(coords)
        if not self.region:
            return [grid.index(plane, z, row, col)]
        cd, ch, cw = self.cdhw
        planes = range(self.planes) if self.separate or self.planes > 1 else range(1)
        return [part.index for p in planes for part in grid.region(z * cd, row * ch, col * cw, cd, ch, cw, p)]

    def is_stored(self, page: Any, coords: tuple[int, ...]) -> bool:
        """True unless every segment under the chunk is sparse (or the page is missing)."""
        if page is None:
            return False
        if isinstance(page, ContiguousPage):
            return True
        if not self.check_layout(page):
            return True  # read as a window: fill where sparse
        return any(not page.is_sparse(i) for i in self.segment_indices(coords))

    def read_stored(self, page: Any, coords: tuple[int, ...]) -> numpy.ndarray | None:
        """A segment chunk (not a window) as :meth:`read` gives it, or None if the segment is
        not stored: the read finds out, so a stored tile costs one strile lookup."""
        if page is None:
            return None
        if not self.region and (page is self.keyframe or (isinstance(page, IFD) and self.check_layout(page))):
            fast = page.fast_reader
            if fast is not None:
                arr = fast(self._index(coords))
                if arr is not None and arr.dtype == self.dtype and arr.size == self.chunk_nbytes // self.dtype.itemsize:
                    return arr.reshape(self.chunk_shape)
        if not self.is_stored(page, coords):
            return None
        return self.read(page, coords)

    def read(self, page: Any, coords: tuple[int, ...]) -> numpy.ndarray:
        """The decoded chunk as a C-contiguous little-endian array of the chunk shape."""
        plane, z, row, col = self._pzyx(coords)
        cd, ch, cw = self.cdhw
        if page is None:
            return numpy.full(self.chunk_shape, self.fill, self.dtype)
        if self.region or not self.check_layout(page):
            arr = page.read_region(row * ch, col * cw, ch, cw, z=z * cd, depth=cd, fill=self.fill,
                                   workers=self.workers)
            if self.separate and not self.region:
                arr = arr[plane:plane + 1]
            return numpy.ascontiguousarray(arr, dtype=self.dtype).reshape(self.chunk_shape)
        grid = self.keyframe.grid
        index = grid.index(plane, z, row, col)
        d, h, w, s = grid.stored_shape(index)
        arr = page.read_segment(index).reshape(d, h, w, s)  # stored: fill never applies (and keeps the fast path)
        if (d, h, w) != (cd, ch, cw):
            if d >= cd and h >= ch and w >= cw:
                arr = arr[:cd, :ch, :cw]
            else:  # the short last strip
                full = numpy.full((cd, ch, cw, s), self.fill, arr.dtype)
                full[:d, :h, :w] = arr[:cd, :ch, :cw]
                arr = full
        return numpy.ascontiguousarray(arr, dtype=self.dtype).reshape(self.chunk_shape)


class ArrayMap:
    """One zarr array: its metadata and chunk <-> (page, segment or window) mapping.

    Built from a series (:meth:`of_series`: every page, or the pages ``key`` selects, as
    leading axes chunked by 1) or from one image (:meth:`of_ifd`); the array is a
    :class:`tiffio._edge.selection.Selection`. ``attributes`` go into the array's ``zarr.json``.
    """

    def __init__(self, prefix: str, selection: Selection, chunks: Any, fill: Any, workers: int | None,
                 raw: bool = False, *, names: list[str] | None = None,
                 attributes: dict[str, Any] | None = None) -> None:
        self.prefix = prefix
        self.raw = raw
        self.selection = sel = selection
        self.ifd = self.keyframe = sel.keyframe
        self.shape = sel.shape
        self.axes = sel.axes
        self.whole = sel.split is None  # a series shaped across page boundaries: one chunk, read whole
        if self.whole:
            if raw:
                raise UnsupportedFeatureError(f"{sel.keyframe.where}: the series is shaped across its pages: "
                                              "no raw chunks (decode='store' reads it)")
            self.pc = PageChunks(sel.keyframe, "image", fill, workers)
            self.cut: tuple[slice, ...] = ()
            chunk_shape = tuple(max(1, n) for n in self.shape)
        else:
            self.pc = PageChunks(sel.keyframe, chunks, fill, workers, raw)
            #: page axes of length 1 the array lacks, whose chunk is longer (a 1-row image in
            #: 16-row tiles, say): the page chunk is cut to their first index
            self.cut = tuple(slice(0, 1) if k in sel.unpaired else slice(None) for k in range(len(self.pc.chunk_shape)))
            if all(c == slice(None) for c in self.cut) or all(self.pc.chunk_shape[k] == 1 for k in sel.unpaired):
                self.cut = ()
            elif raw:
                raise UnsupportedFeatureError(f"{sel.keyframe.where}: the series drops a page axis its segments span: "
                                              "no raw chunks (decode='store' reads it)")
            chunk_shape = (1,) * len(sel.lead_shape) + tuple(1 if m is None else self.pc.chunk_shape[m]
                                                             for m in sel.trail)
        #: (page,) when the array is one page with the page's own axes (chunk coordinates are the
        #: page's): the hot path of 2-D images skips the page lookup
        self._single: tuple[Any] | None = None
        if not self.whole and not sel.lead_shape and sel.trail == list(range(len(self.pc.shape))):
            self._single = (sel.page(0),)
        self.region = self.pc.region or self.whole
        self.dtype = self.pc.dtype
        self.fill = self.pc.fill
        self.workers = workers
        self.segment_nbytes = self.pc.segment_nbytes
        self.chunk_shape = chunk_shape
        self.grid_shape = tuple(-(-n // c) for n, c in zip(self.shape, self.chunk_shape))
        self.chunk_nbytes = math.prod(self.chunk_shape) * self.dtype.itemsize
        self.dimension_names = names if names is not None else dimension_names(self.axes)
        self.metadata: dict[str, Any] = {
            "zarr_format": 3, "node_type": "array", "shape": list(self.shape), "data_type": self.pc.data_type,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(self.chunk_shape)}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": json_number(self.fill, self.dtype),
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "attributes": dict(attributes or {}), "dimension_names": self.dimension_names,
        }
        if raw:
            self.metadata["codecs"] = [self.pc.codec_json(chunks)]

    # --- constructors -------------------------------------------------------------------------
    @classmethod
    def of_ifd(cls, prefix: str, ifd: IFD, chunks: Any, fill: Any, workers: int | None, raw: bool = False,
               attributes: dict[str, Any] | None = None) -> ArrayMap:
        """One image as one array (its shape and axes: ``ifd.shape``, tifffile's page axes)."""
        return cls(prefix, Selection.of_ifd(ifd), chunks, fill, workers, raw, attributes=attributes)

    @classmethod
    def of_series(cls, prefix: str, series: Series, chunks: Any, fill: Any, workers: int | None, raw: bool = False,
                  *, key: Any = None, squeeze: bool | None = None, names: list[str] | None = None,
                  attributes: dict[str, Any] | None = None) -> ArrayMap:
        """A series as one array, or the pages ``key`` selects (:meth:`Selection.of_series`)."""
        return cls(prefix, Selection.of_series(series, key, squeeze), chunks, fill, workers, raw, names=names,
                   attributes=attributes)

    # --- key <-> chunk coordinates ---------------------------------------------------------------
    def coords(self, rest: str) -> tuple[int, ...] | None:
        """Chunk coordinates from the part of a key after ``c/``; None if not a chunk of this array."""
        parts = rest.split("/")
        grid = self.grid_shape
        if len(parts) != len(grid):
            return None
        coords = []
        for part, n in zip(parts, grid):
            # canonical ASCII decimals only ("00", "+1", "-0" and non-ASCII digits are not keys zarr writes)
            if not (part.isascii() and part.isdigit()) or (len(part) > 1 and part[0] == "0"):
                return None
            c = int(part)
            if c >= n:
                return None
            coords.append(c)
        return tuple(coords)

    def _split(self, coords: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
        """(the page to read, the chunk's coordinates in the page's chunk grid)."""
        single = self._single
        if single is not None:  # one page whose axes are the array's: the hot path of 2-D images
            return single[0], coords
        sel = self.selection
        lead = len(sel.lead_shape)
        number = 0
        for c, n in zip(coords[:lead], sel.lead_shape):
            number = number * n + c
        page = sel.page(number)
        inner = [0] * len(self.pc.grid_shape)
        for c, m in zip(coords[lead:], sel.trail):
            if m is not None:
                inner[m] = c
        return page, tuple(inner)

    def page_segments(self, coords: tuple[int, ...]) -> tuple[Any, list[int]]:
        """(page, the segments a chunk reads) for batched remote fetches."""
        page, inner = self._split(coords)
        return page, ([] if page is None or self.whole else self.pc.segment_indices(inner))

    def is_stored(self, coords: tuple[int, ...]) -> bool:
        """True unless the chunk's page is missing or every segment under it is sparse."""
        if self.whole:
            return True
        page, inner = self._split(coords)
        return self.pc.is_stored(page, inner)

    def read_stored(self, coords: tuple[int, ...]) -> numpy.ndarray | None:
        """:meth:`read`, or None if the chunk is not stored (found out by the read itself)."""
        single = self._single
        if single is not None and not self.cut:  # the page's own chunks, shapes and all
            return self.pc.read_stored(single[0], coords)
        if self.whole:
            return self.read(coords)
        page, inner = self._split(coords)
        arr = self.pc.read_stored(page, inner)
        return None if arr is None else self._fit(arr)

    def _fit(self, arr: numpy.ndarray) -> numpy.ndarray:
        if self.cut:
            arr = numpy.ascontiguousarray(arr[self.cut])
        return arr.reshape(self.chunk_shape)

    def read(self, coords: tuple[int, ...]) -> numpy.ndarray:
        """The decoded chunk as a C-contiguous little-endian array of the chunk shape."""
        if self.whole:
            arr = self.selection.read([slice(0, n) for n in self.shape], fill=self.fill, workers=self.workers)
            full = numpy.full(self.chunk_shape, self.fill, self.dtype)
            full[tuple(slice(0, n) for n in arr.shape)] = arr
            return full
        page, inner = self._split(coords)
        return self._fit(self.pc.read(page, inner))

    def read_raw(self, coords: tuple[int, ...]) -> bytes:
        """The stored bytes of the chunk's segment (raw mode)."""
        page, inner = self._split(coords)
        return self.pc.read_raw(page, inner)

    def location(self, coords: tuple[int, ...]) -> tuple[int, int]:
        """(offset, byte_count) of the chunk's segment in the file (raw mode, references)."""
        page, inner = self._split(coords)
        if page is None:
            return 0, 0
        return self.pc.location(page, inner)

    def iter_chunk_keys(self) -> Iterator[str]:
        for coords in itertools.product(*(range(n) for n in self.grid_shape)):
            if self.is_stored(coords):
                yield self.prefix + "c/" + "/".join(map(str, coords))

