"""Series: the pages of a file that form one array (stacks, hyperstacks, pyramids).

This module holds the Series object (shape, axes, reading pages in parallel); the page
helpers are in pages.py, and ``detect.find_series(tif)`` detects series in tifffile's order - tifffile's shaped JSON
descriptions, OME-XML, ImageJ hyperstack descriptions, uniform files (all pages
alike), and otherwise pages grouped by shape and storage (generic) - so that
``shape`` and ``axes`` equal tifffile's ``TiffPageSeries.shape`` / ``.axes``.

Known layouts are not walked: an ImageJ hyperstack (or a shaped series) whose
first page is uncompressed and contiguous with room for all planes before the
second IFD stores plane ``i`` at ``first offset + i * plane bytes`` (how ImageJ
and tifffile write them), so opening and reading one plane of a 10,000-page
stack parses one or two IFDs. Everything else falls back to walking the chain.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy

from ...alloc import allocate, require_fill
from ...errors import TiffFormatError, TiffIndexError, TiffTypeError, TiffUsageError, TiffValueError
from ..pool import PAGE_POOL, parallel_map
from .pages import page_axes, squeeze_axes

if TYPE_CHECKING:
    from ..handle import FileHandle as TiffFile
    from ..ifd.ifd import IFD

__all__ = ["Series", "ContiguousPage"]

# --- the Series object --------------------------------------------------------------------
class Series:
    """Pages forming one array: ``shape``/``axes`` (length-1 axes other than Y and X
    squeezed, as tifffile), ``dtype``, ``kind`` ('shaped', 'ome', 'imagej', 'uniform',
    'generic'), ``levels`` (pyramid levels, ``levels[0] is self``) and ``ifds``.

    Pages of a contiguous stack need no IFD: plane ``i`` lies at a computed offset
    (``is_contiguous``); ``ifds`` then parses the pages only when asked for.
    """

    def __init__(self, tif: TiffFile, keyframe: IFD, pages: list[IFD | None] | None, shape: Sequence[int], axes: str,
                 kind: str, *, name: str = "", squeeze: bool = True, npages: int | None = None,
                 contiguous: bool = False, truncated: bool = False, dtype: numpy.dtype | None = None) -> None:
        self._tif = tif
        self.keyframe = keyframe
        self._pages = pages
        self.dtype = dtype if dtype is not None else keyframe.dtype
        self.kind = kind
        self.name = name
        #: a series of SubIFD pages (set by detection; tifffile lists them after the main chain's)
        self.is_subifd = False
        self.full_shape = tuple(int(n) for n in shape)
        self.full_axes = axes
        if squeeze:
            self.shape, self.axes = squeeze_axes(self.full_shape, axes)
        else:
            self.shape, self.axes = self.full_shape, axes
        self.levels: list[Series] = [self]
        self.is_contiguous = contiguous
        self.is_truncated = truncated
        self.page_shape = tuple(keyframe.shape)
        self.page_nbytes = math.prod(self.page_shape) * self.dtype.itemsize
        if npages is None:
            npages = len(pages) if pages is not None else 1
        self.npages = npages
        self.index = 0

    def __repr__(self) -> str:
        return (f"<tiffio.Series {self.index} {self.kind} shape={self.shape} axes={self.axes!r} "
                f"dtype={self.dtype} pages={self.npages} levels={len(self.levels)}>")

    @property
    def size(self) -> int:
        """Number of elements of the series array."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the series array."""
        return self.size * self.dtype.itemsize

    @property
    def ifds(self) -> list[IFD | None]:
        """The IFD of each page (None for pages the metadata lists but the file lacks).
        For a contiguous stack this walks the chain: reading needs none of it."""
        if self._pages is None or len(self._pages) < self.npages:
            first = self.keyframe.index
            self._pages = [self._tif.ifds[first + i] for i in range(self.npages)]
        return self._pages

    # --- reading --------------------------------------------------------------------------
    def page_indices(self, key: Any) -> tuple[list[int], bool]:
        """The page numbers ``key`` selects (None: all; an int; a slice; a sequence of ints,
        negative ones counting from the end) and whether the result drops the page axis (an int)."""
        n = self.npages
        if key is None:
            return list(range(n)), False
        if isinstance(key, (int, numpy.integer)) and not isinstance(key, bool):
            k = int(key) + (n if key < 0 else 0)
            if not 0 <= k < n:
                raise TiffIndexError(f"series {self.index}: page {key} out of range ({n} pages)")
            return [k], True
        if isinstance(key, slice):
            return list(range(*key.indices(n))), False
        try:
            keys = [operator.index(k) for k in key]
        except TypeError:
            raise TiffTypeError(f"key must be None, an int, a slice or a sequence of ints, not {key!r}") from None
        for k in keys:
            if not -n <= k < n:
                raise TiffIndexError(f"series {self.index}: page {k} out of range ({n} pages)")
        return [k % n for k in keys], False

    def _plane_offset(self, page: int) -> int:
        return int(self.keyframe.segment_offsets[0]) + page * self.page_nbytes

    def _read_contiguous(self, page: int, target: numpy.ndarray, rows: tuple[int, int] | None = None) -> None:
        """Read plane ``page`` (or its rows) of a contiguous stack straight into ``target``."""
        kf = self.keyframe
        file_dtype = self.dtype.newbyteorder(self._tif.byteorder)  # type: ignore[arg-type]
        offset = self._plane_offset(page)
        size = self.page_nbytes
        if rows is not None:
            row_bytes = size // kf.length // kf.depth
            offset += rows[0] * row_bytes
            size = (rows[1] - rows[0]) * row_bytes
        source = self._tif.source
        if offset + size > source.size:
            raise TiffFormatError(f"{self._tif.name}: series {self.index} page {page}: {size} bytes at offset "
                                  f"{offset} pass the end of the file ({source.size} bytes)")
        view = memoryview(target.reshape(-1).view(numpy.uint8))  # type: ignore[arg-type]
        if len(view) != size:
            raise TiffValueError(f"internal: plane buffer {len(view)} != {size}")
        source.read_into(offset, view)
        if file_dtype.byteorder not in ("=", "|") and file_dtype != self.dtype:
            target.byteswap(inplace=True)

    def _page_ifd(self, page: int) -> IFD | None:
        pages = self._pages
        if pages is not None and page < len(pages):
            return pages[page]
        return self._tif.ifds[self.keyframe.index + page]

    @property
    def tiff(self) -> TiffFile:
        """The open file the series belongs to."""
        return self._tif

    def page(self, index: int) -> IFD | ContiguousPage | None:
        """What holds page ``index`` of the series (0 <= index < npages): its IFD, a
        :class:`ContiguousPage` for a contiguous stack (no IFD is parsed), or None for a page
        the metadata lists but the file lacks (it reads as the fill value)."""
        if not 0 <= index < self.npages:
            raise TiffIndexError(f"series {self.index}: page {index} out of range ({self.npages} pages)")
        if self.is_contiguous:
            return ContiguousPage(self, index)
        return self._page_ifd(index)

    def shape_axes(self, squeeze: bool | None = None) -> tuple[tuple[int, ...], str]:
        """(shape, axes) of the series: as :attr:`shape`/:attr:`axes` for ``squeeze=None``
        (tifffile's default for the series kind), with every length-1 axis but Y and X dropped
        for True, or with none dropped (:attr:`full_shape`) for False."""
        if squeeze is None:
            return self.shape, self.axes
        if squeeze:
            return squeeze_axes(self.full_shape, self.full_axes)
        return self.full_shape, self.full_axes

    def asarray(self, key: Any = None, *, out: numpy.ndarray | None = None, workers: int | None = None,
                fill: Any = 0) -> numpy.ndarray:
        """The series as one array (``shape``), or the pages ``key`` selects: an int gives
        that page's array, a slice or sequence a stack of pages. Pages are decoded in
        parallel (``workers`` threads); missing pages are ``fill``."""
        self._tif.require_open()
        indices, single = self.page_indices(key)
        if key is None:
            shape: tuple[int, ...] = self.shape
        elif single:
            shape = self.page_shape
        else:
            shape = (len(indices), *self.page_shape)
        self._tif.limits.check("max_output_bytes", math.prod(shape) * self.dtype.itemsize,
                               f"{self._tif.name}: series {self.index}")
        fill = require_fill(fill, self.dtype, f"{self._tif.name}: series {self.index}")
        if out is None:
            result = allocate(shape, self.dtype, f"{self._tif.name}: series {self.index}")
        else:
            if out.shape != shape or out.dtype != self.dtype or not out.flags.c_contiguous:
                raise TiffValueError(f"out must be a C-contiguous array of shape {shape} and dtype {self.dtype}, "
                                     f"not {out.shape} {out.dtype}")
            result = out
        planes = result.reshape((len(indices), *self.page_shape))
        total = len(indices)

        def work(item: tuple[int, int]) -> None:
            slot, page = item
            if self.is_contiguous:
                self._read_contiguous(page, planes[slot])
                return
            ifd = self._page_ifd(page)
            if ifd is None:
                planes[slot][...] = fill
                return
            ifd.asarray(out=planes[slot], workers=1 if total > 1 else workers)

        parallel_map(work, list(enumerate(indices)), workers, PAGE_POOL)
        return result

    def read_region(self, y: int, x: int, height: int, width: int, *, key: Any = None,
                    out: numpy.ndarray | None = None, workers: int | None = None, fill: Any = 0) -> numpy.ndarray:
        """The window (y, x, height, width) of every page ``key`` selects (default: all),
        shaped like :meth:`asarray` with Y and X cut to the window."""
        self._tif.require_open()
        for name, value in (("y", y), ("x", x), ("height", height), ("width", width)):
            if not isinstance(value, (int, numpy.integer)) or isinstance(value, bool):
                raise TiffValueError(f"read_region: {name} must be an int, not {type(value).__name__}")
        if height <= 0 or width <= 0:
            raise TiffValueError(f"read_region: the window {height} x {width} is empty")
        kf = self.keyframe
        indices, single = self.page_indices(key)
        page_axes_ = page_axes(kf)
        region_page = tuple(height if ax == "Y" else width if ax == "X" else n
                            for ax, n in zip(page_axes_, self.page_shape))
        if key is None:
            shape: tuple[int, ...] = tuple(height if ax == "Y" else width if ax == "X" else n
                                           for ax, n in zip(self.axes, self.shape))
        elif single:
            shape = region_page
        else:
            shape = (len(indices), *region_page)
        fill = require_fill(fill, self.dtype, f"{self._tif.name}: series {self.index}")
        self._tif.limits.check("max_output_bytes", math.prod(shape) * self.dtype.itemsize,
                               f"{self._tif.name}: series {self.index}: read_region")
        if out is None:
            result = allocate(shape, self.dtype, f"{self._tif.name}: series {self.index}: read_region")
        else:
            if out.shape != shape or out.dtype != self.dtype or not out.flags.c_contiguous:
                raise TiffValueError(f"out must be a C-contiguous array of shape {shape} and dtype {self.dtype}")
            result = out
        planes = result.reshape((len(indices), *region_page))
        inside = y >= 0 and x >= 0 and y + height <= kf.length and x + width <= kf.width
        fast = self.is_contiguous and inside and kf.depth == 1 and not kf.is_separate
        total = len(indices)

        def work(item: tuple[int, int]) -> None:
            slot, page = item
            if fast:
                rows = allocate((height, kf.width, *self.page_shape[2:]), self.dtype, f"{kf.where}: rows {y}..")
                self._read_contiguous(page, rows, (y, y + height))
                planes[slot][...] = rows[:, x: x + width]
                return
            ifd = kf if self.is_contiguous and page == 0 else None if self.is_contiguous else self._page_ifd(page)
            if ifd is None and self.is_contiguous:
                ifd = self._tif.ifds[kf.index + page]
            if ifd is None:
                planes[slot][...] = fill
                return
            ifd.read_region(y, x, height, width, out=planes[slot], workers=1 if total > 1 else workers)

        parallel_map(work, list(enumerate(indices)), workers, PAGE_POOL)
        return result


# --- detection ----------------------------------------------------------------------------


class ContiguousPage:
    """Page ``index`` of a contiguous stack (:attr:`Series.is_contiguous`), read without its IFD.

    The planes of such a stack are uncompressed, in their final form, one after the other:
    segment ``i`` of page ``p`` holds the bytes of the keyframe's segment ``i``, moved by
    ``p`` plane sizes. The methods mirror the :class:`tiffio.IFD` reads a store or an array
    view needs (``read_segment`` returns the stored shape (depth, length, width, samples)).
    """

    def __init__(self, series: Series, index: int) -> None:
        self.series = series
        self.index = index
        self.keyframe = series.keyframe
        self._shift = index * series.page_nbytes

    def __repr__(self) -> str:
        return f"<tiffio.ContiguousPage {self.index} of series {self.series.index}>"

    def is_sparse(self, index: int) -> bool:
        """Never: every plane of a contiguous stack is stored."""
        return False

    def segment_location(self, index: int) -> tuple[int, int]:
        """(offset, byte count) of segment ``index`` of this page."""
        offset, count = self.keyframe.segment_location(index)
        return offset + self._shift, count

    def _open_file(self) -> TiffFile:
        tif = self.series.tiff
        if tif.closed:
            raise TiffUsageError(f"{tif.name}: the TiffFile is closed")
        return tif

    def _read_span(self, offset: int, target: numpy.ndarray) -> None:
        """Read ``target``'s bytes from ``offset`` straight into it, then fix the byte order."""
        s = self.series
        tif = self._open_file()
        source = tif.source
        view = memoryview(target.reshape(-1).view(numpy.uint8))  # type: ignore[arg-type]
        if offset + len(view) > source.size:
            raise TiffFormatError(f"{tif.name}: series {s.index} page {self.index}: {len(view)} bytes at offset "
                                  f"{offset} pass the end of the file ({source.size} bytes)")
        source.read_into(offset, view)
        if tif.byteorder != _NATIVE and s.dtype.itemsize > 1:
            target.byteswap(inplace=True)

    def read_segment_bytes(self, index: int) -> bytes:
        """The stored bytes of segment ``index`` of this page."""
        offset, count = self.segment_location(index)
        buf = bytearray(count)
        tif = self._open_file()
        if offset + count > tif.source.size:
            raise TiffFormatError(f"{tif.name}: series {self.series.index} page {self.index}: segment {index} "
                                  f"({count} bytes at offset {offset}) passes the end of the file")
        tif.source.read_into(offset, memoryview(buf))
        return bytes(buf)

    def read_segment(self, index: int) -> numpy.ndarray:
        """Segment ``index`` decoded, shape (depth, length, width, samples) as stored."""
        grid = self.keyframe.grid
        arr = numpy.empty(grid.stored_shape(index), self.series.dtype)
        self._read_span(self.segment_location(index)[0], arr)
        return arr

    def read_region(self, y: int, x: int, height: int, width: int, *, z: int = 0, depth: int | None = None,
                    out: numpy.ndarray | None = None, fill: Any = None, workers: int | None = None) -> numpy.ndarray:
        """The window of this page, as :meth:`tiffio.IFD.read_region` returns it."""
        kf = self.keyframe
        if depth is None:
            depth = kf.depth - z if kf.depth > 1 else 1
        inside = z >= 0 and y >= 0 and x >= 0 and z + depth <= kf.depth and y + height <= kf.length \
            and x + width <= kf.width
        if inside and kf.depth == 1 and not kf.is_separate and height > 0 and width > 0:
            # whole rows are contiguous: one read of the rows, straight into the result when
            # the window spans the width
            row_bytes = self.series.page_nbytes // kf.length
            start = int(kf.segment_offsets[0]) + self._shift + y * row_bytes
            shape = (height, width, *self.series.page_shape[2:])
            if out is not None and (out.shape != shape or out.dtype != self.series.dtype
                                    or not out.flags.c_contiguous):
                raise TiffValueError(f"out must be a C-contiguous array of shape {shape} and dtype "
                                     f"{self.series.dtype}, not {out.shape} {out.dtype}")
            if width == kf.width:
                result = numpy.empty(shape, self.series.dtype) if out is None else out
                self._read_span(start, result)
                return result
            rows = numpy.empty((height, kf.width, *self.series.page_shape[2:]), self.series.dtype)
            self._read_span(start, rows)
            if out is None:
                return numpy.ascontiguousarray(rows[:, x:x + width])
            out[...] = rows[:, x:x + width]
            return out
        # anything else (volumes, separate planes, windows past the edge): segment by segment
        grid = kf.grid
        fill_value = kf.nodata if fill is None else fill
        shaped = (grid.planes, depth, height, width, grid.segment_samples)
        result = numpy.full(shaped, 0 if fill_value is None else fill_value, self.series.dtype)
        for plane in range(grid.planes):
            for part in grid.region(z, y, x, depth, height, width, plane):
                seg = self.read_segment(part.index)
                result[part.plane][part.dst] = seg[part.src]
        arr = result.reshape(_region_axes(kf, shaped))
        if out is not None:
            out[...] = arr
            return out
        return arr

    def prefetch_segments(self, indices: Sequence[int]) -> None:
        """Nothing to batch: a contiguous stack is a local, computed layout."""


_NATIVE = "<" if numpy.little_endian else ">"


def _region_axes(ifd: IFD, shaped: tuple[int, int, int, int, int]) -> tuple[int, ...]:
    """``IFD.read_region``'s result shape for a window of (planes, depth, height, width, samples)."""
    p, d, h, w, s = shaped
    zyx: tuple[int, ...] = (h, w) if ifd.depth == 1 else (d, h, w)
    if ifd.photometric == 2 or ifd.samples_per_pixel > 1:
        return (p, *zyx) if ifd.is_separate else (*zyx, s)
    return zyx
