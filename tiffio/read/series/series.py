"""Series: the pages of a file that form one array (stacks, hyperstacks, pyramids).

This module holds the Series object (shape, axes, reading pages in parallel) and the page
helpers; ``series_detect.find_series(tif)`` detects them in tifffile's order - tifffile's shaped JSON
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
from ...errors import TiffError, TiffFormatError, TiffIndexError, TiffTypeError, TiffUsageError, TiffValueError
from ..pool import PAGE_POOL, parallel_map

if TYPE_CHECKING:
    from ..handle import FileHandle as TiffFile
    from ..ifd.ifd import IFD

__all__ = ["Series", "ContiguousPage", "page_axes", "page_key", "squeeze_axes", "split_pages",
           "dimension_names"]

# --- page properties as tifffile sees them ---------------------------------------------------
def page_axes(ifd: IFD) -> str:
    """tifffile's TiffPage.axes: YX, YXS, SYX, with Z before Y for volumes."""
    zyx = "YX" if ifd.depth == 1 else "ZYX"
    if ifd.photometric == 2 or ifd.samples_per_pixel > 1:
        return "S" + zyx if ifd.is_separate else zyx + "S"
    return zyx


def page_dtype(ifd: IFD) -> numpy.dtype | None:
    try:
        return ifd.dtype
    except TiffError:
        return None


def page_key(ifd: IFD) -> tuple:
    """What tifffile's TiffPage.hash covers: pages with equal keys form one series."""
    tiled = ifd.is_tiled
    tile = ifd.tile_shape if tiled else None
    return (ifd.shaped, 0 if tiled else ifd.rows_per_strip, tile[1] if tile else 0, tile[0] if tile else 0,
            ifd.get_int(32998, 1) if tiled else 1, ifd.sample_format, ifd.bits_per_sample, ifd.fill_order,
            ifd.predictor, int(ifd.compression), ifd.extra_samples, ifd.photometric)


def ifd_nbytes(ifd: IFD) -> int:
    dtype = page_dtype(ifd)
    return math.prod(ifd.shape) * (dtype.itemsize if dtype is not None else 0)


def is_final(ifd: IFD) -> bool:
    """Uncompressed samples stored contiguously in their final form (tifffile's is_final):
    the image can be read as ``shape`` items from ``segment_offsets[0]``."""
    if (ifd.compression != 1 or ifd.sample_format == 5 or ifd.bits_per_sample not in (8, 16, 32, 64)
            or ifd.fill_order != 1 or ifd.predictor != 1 or ifd.subsampling not in (None, (1, 1))
            or page_dtype(ifd) is None):
        return False
    if ifd.is_tiled:
        tl, tw = ifd.tile_shape  # type: ignore[misc]
        if ifd.width != tw or ifd.length % tl or tw % 16 or tl % 16:
            return False
    offsets = ifd.segment_offsets
    counts = ifd.segment_byte_counts
    n = len(offsets)
    if n == 0:
        return False
    if n == 1:
        return True
    if counts is None:
        return False
    offs = offsets.to_numpy().astype(numpy.int64)
    cnts = counts.to_numpy().astype(numpy.int64)
    if int(cnts.sum()) != ifd_nbytes(ifd) or (cnts[:-1] == 0).any():
        return False
    return bool((offs[:-1] + cnts[:-1] == offs[1:]).all())


def squeeze_axes(shape: Sequence[int], axes: str) -> tuple[tuple[int, ...], str]:
    """Drop length-1 dimensions except Y and X (keep the last if all would go)."""
    kept = [(n, ax) for n, ax in zip(shape, axes) if n > 1 or ax in "XY"]
    if not kept and shape:
        kept = [(shape[-1], axes[-1])]
    return tuple(n for n, _ in kept), "".join(ax for _, ax in kept)


def reshape_axes(axes: str, shape: Sequence[int], newshape: Sequence[int]) -> str:
    """Axes for ``newshape`` of the same size: kept where a dimension maps one to one,
    'Q' elsewhere (tifffile's reshape_axes rule)."""
    shape, newshape = tuple(shape), tuple(newshape)
    if len(axes) != len(shape) or math.prod(shape) != math.prod(newshape):
        raise ValueError(f"cannot reshape {shape} to {newshape}")
    if not axes and not newshape:
        return ""
    pad = max(0, len(shape) - len(newshape))
    target = newshape + (1,) * pad
    i = len(shape) - 1
    prod_new = prod_old = 1
    result = []
    for n in target[::-1]:
        prod_new *= n
        while i > 0 and shape[i] == 1 and n != 1:
            i -= 1
        if n == shape[i] and prod_new == prod_old * shape[i]:
            prod_old *= shape[i]
            result.append(axes[i])
            i -= 1
        else:
            result.append("Q")
    return "".join(reversed(result[pad:]))


def check_shape(page_shape: Sequence[int], series_shape: Sequence[int]) -> bool:
    """Pages of ``page_shape`` tile ``series_shape`` exactly (trailing dimensions align)."""
    psize, ssize = math.prod(page_shape), math.prod(series_shape)
    if psize == 0 and ssize == 0:
        return True
    if psize == 0 or ssize == 0 or ssize % psize:
        return False
    rev = list(reversed(series_shape))
    a = 0
    pi = pj = 1
    for i in reversed(page_shape):
        pi *= i
        for j in rev[a:]:
            a += 1
            pj *= j
            if i == 1 or j == 1:
                continue
            if pj != pi:
                return False
            break
    return True


def dimension_names(axes: str) -> list[str]:
    """Dimension names for tifffile's axis letters, as xarray and OME-NGFF users name them: the
    letter in lower case (``T`` -> ``t``, ``C`` -> ``c``, ``Z`` -> ``z``, ``Y`` -> ``y``,
    ``X`` -> ``x``, ``I`` -> ``i``, ``Q`` -> ``q``, ...), except the samples of a pixel, ``S``,
    which are the channels (``c``) unless the axes have a ``C`` too (then ``s``). A letter
    that repeats gets its count from the second on (``QQ`` -> ``q``, ``q1``): names are unique."""
    names: list[str] = []
    for letter in axes:
        name = ("s" if "C" in axes else "c") if letter == "S" else letter.lower()
        base, k = name, 0
        while name in names:
            k += 1
            name = f"{base}{k}"
        names.append(name)
    return names


def split_pages(shape: Sequence[int], page_shape: Sequence[int]) -> int | None:
    """Where the page axes start in a series ``shape`` made of pages of ``page_shape``: the
    first index ``k`` such that ``shape[k:]`` holds exactly one page and, length-1 axes
    aside, has the page's axes in order (``shape[:k]`` then enumerates the pages); None if
    no such split exists (a series shaped across page boundaries)."""
    page = [n for n in page_shape if n != 1]
    size = math.prod(page_shape)
    for k in range(len(shape) + 1):
        rest = shape[k:]
        if math.prod(rest) == size and [n for n in rest if n != 1] == page:
            return k
    return None


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
