"""A series - or the pages of it a key selects - as one N-d array: its shape, axes, pages,
and the read of any box of it (framework-free; the zarr store, the dask arrays and the xarray
backend all read through it).

The leading axes of the array enumerate pages, the trailing axes are one page's
(:func:`tiffio.read.series.pages.split_pages`), length-1 axes aside. Page ``n`` (the leading indices
raveled in C order) is an IFD, a :class:`tiffio.read.series.series.ContiguousPage` of a contiguous stack,
or None for a page the metadata lists but the file lacks (it reads as the fill value).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy

from ..errors import TiffFormatError, TiffValueError
from ..read.file import IFD, TiffFile
from ..read.pool import PAGE_POOL, parallel_map
from ..read.series.pages import page_axes, split_pages
from ..read.series.series import ContiguousPage, Series

__all__ = ["Selection", "page_window_axes", "read_page_window", "key_arg", "key_token"]


def key_arg(key: Any) -> Any:
    """A page selection ``key=`` as the picklable, hashable value lazy objects keep: None, an
    int, a slice, or a tuple of ints; TiffValueError for anything else."""
    if key is None or isinstance(key, slice):
        return key
    if isinstance(key, (int, numpy.integer)) and not isinstance(key, bool):
        return int(key)
    try:
        return tuple(int(k) for k in key)
    except TypeError:
        raise TiffValueError(f"key must be None, an int, a slice or a sequence of ints, not {key!r}") from None


def key_token(key: Any) -> Any:
    """``key_arg(key)`` as a value that tokenizes and compares the same on every Python (slices
    are not hashable before 3.12)."""
    return ("slice", key.start, key.stop, key.step) if isinstance(key, slice) else key


def page_window_axes(ifd: IFD) -> tuple[bool, bool, bool]:
    """(separate planes axis first, Z axis, contiguous samples axis last) of ``ifd.shape``."""
    depth3 = ifd.depth > 1
    has_samples = len(ifd.shape) > 2 + depth3
    return has_samples and ifd.is_separate, depth3, has_samples and not ifd.is_separate


def read_page_window(keyframe: IFD, page: Any, key: Sequence[slice], fill: Any, workers: int | None,
                     out: numpy.ndarray | None = None) -> numpy.ndarray:
    """``page.asarray()[key]`` for step-1 slices over the keyframe's shape, reading only the
    window (``page``: an IFD laid out like ``keyframe``, or a ContiguousPage); into ``out``
    (a C-contiguous array of the window's shape) when given."""
    separate, depth3, contig = page_window_axes(keyframe)
    shape = keyframe.shape
    bounds = [s.indices(n) for s, n in zip(key, shape)]
    k = 1 if separate else 0
    z0, z1 = (bounds[k][0], bounds[k][1]) if depth3 else (0, 1)
    k += depth3
    (y0, y1, _), (x0, x1, _) = bounds[k], bounds[k + 1]
    if y1 <= y0 or x1 <= x0 or z1 <= z0:
        empty = numpy.empty([max(0, b[1] - b[0]) for b in bounds], keyframe.dtype)
        return empty if out is None else out
    rest = []
    if separate:
        rest.append(slice(*bounds[0][:2]))
    rest += [slice(None)] * (depth3 + 2)
    if contig:
        rest.append(slice(*bounds[-1][:2]))
    whole = all(s.indices(n)[:2] == (0, n) for s, n in zip(rest, shape)) if (separate or contig) else True
    if whole:  # every sample: the window is read_region's result itself, straight into out
        return page.read_region(y0, x0, y1 - y0, x1 - x0, z=z0, depth=z1 - z0, fill=fill, workers=workers, out=out)
    arr = page.read_region(y0, x0, y1 - y0, x1 - x0, z=z0, depth=z1 - z0, fill=fill, workers=workers)
    arr = arr[tuple(rest)]
    if out is None:
        return arr
    out[...] = arr
    return out


def _match_axes(trailing: tuple[int, ...], page: tuple[int, ...]) -> list[int | None]:
    """For each trailing axis of an array, the page axis it is (None: a length-1 axis the page
    lacks). Axes of equal length pair up in order; length-1 axes on either side may be
    unpaired (split_pages has checked that the other axes agree)."""
    out: list[int | None] = []
    j = 0
    for n in trailing:
        while j < len(page) and page[j] != n and page[j] == 1:
            j += 1  # a length-1 page axis the array does not have
        if j < len(page) and page[j] == n:
            out.append(j)
            j += 1
        else:
            out.append(None)  # n == 1 here
    return out


class Selection:
    """An N-d array made of pages: ``shape``, ``axes``, ``dtype``, ``keyframe`` and ``page(n)``.

    Build it with :meth:`of_series` (a series, or the pages ``key`` selects) or :meth:`of_ifd`
    (one image). ``split`` is where the page axes start (None: the series is shaped across page
    boundaries and only reads whole); ``lead_shape`` the page axes before it; ``trail`` maps
    each trailing axis to the page axis it is (None for a length-1 axis the page lacks).
    """

    def __init__(self, keyframe: IFD, page_of: Callable[[int], Any], shape: Sequence[int], axes: str,
                 series: Series | None = None) -> None:
        self.keyframe = keyframe
        self.series = series
        self.page = page_of
        self.shape = tuple(int(n) for n in shape)
        self.axes = axes
        self.dtype = series.dtype if series is not None else keyframe.dtype
        self.split = split_pages(self.shape, keyframe.shape)
        self.trail: list[int | None] = []
        if self.split is None:
            self.lead_shape: tuple[int, ...] = ()
        else:
            self.lead_shape = self.shape[:self.split]
            self.trail = _match_axes(self.shape[self.split:], tuple(keyframe.shape))
        self.unpaired = [k for k in range(len(keyframe.shape)) if k not in self.trail] if self.split is not None else []

    @classmethod
    def of_ifd(cls, ifd: IFD) -> Selection:
        """One image: ``ifd.shape`` with tifffile's page axes."""
        return cls(ifd, lambda _n: ifd, tuple(ifd.shape), page_axes(ifd))

    @classmethod
    def of_series(cls, series: Series, key: Any = None, squeeze: bool | None = None) -> Selection:
        """``series.shape_axes(squeeze)``; or, with ``key``, the page it selects (an int: the
        page's shape) or the pages (a slice or a list: a leading axis ``I``), as
        :meth:`tiffio.Series.asarray` returns them."""
        kf = series.keyframe
        if key is None:
            shape, axes = series.shape_axes(squeeze)
            return cls(kf, series.page, shape, axes, series)
        numbers, single = series.page_indices(key)
        if single:
            number = numbers[0]
            return cls(kf, lambda _n: series.page(number), tuple(kf.shape), page_axes(kf), series)
        return cls(kf, lambda n: series.page(numbers[n]), (len(numbers), *kf.shape), "I" + page_axes(kf), series)

    @classmethod
    def of_file(cls, tif: TiffFile, *, series: int = 0, level: int = 0, key: Any = None,
                squeeze: bool | None = None, ifd: int | None = None) -> Selection:
        """The array ``tiffio.imread`` reads from an open file: level ``level`` of series
        ``series``, or its pages ``key`` selects; or, with ``ifd=``, that IFD of the main chain.
        A file with no series raises the error that keeps its first page from being one."""
        if ifd is not None:
            return cls.of_ifd(tif.ifds[ifd])
        all_series = tif.series
        if not -len(all_series) <= series < len(all_series):
            if not all_series:
                first = tif.ifds[0]
                first.shape, first.dtype  # noqa: B018 - raises what keeps the first page from being a series
                raise TiffValueError(f"{tif.name}: the file holds no series")
            raise TiffValueError(f"{tif.name}: series {series} out of range: the file has {len(all_series)} series")
        s = all_series[series]
        if not -len(s.levels) <= level < len(s.levels):
            raise TiffValueError(f"{tif.name}: level {level} out of range: series {s.index} has {len(s.levels)} "
                                 "levels")
        return cls.of_series(s.levels[level], key, squeeze)

    def chunk_shape(self, window: Any) -> tuple[int, ...]:
        """Chunks aligned to the file's tiles (strips): page axes by 1, a page's Y and X by
        ``window`` = (height, width) rounded up to whole tiles (``(1, 1)``: one tile), or the
        whole page for ``"page"``; all samples (and planes) of a pixel in one chunk."""
        if self.split is None:
            return tuple(max(1, n) for n in self.shape)
        kf = self.keyframe
        shape = tuple(kf.shape)
        if window == "page":
            page: tuple[int, ...] = tuple(max(1, n) for n in shape)
        else:
            h, w = window
            separate, depth3, contig = page_window_axes(kf)
            sd, sh, sw = kf.grid.segment
            if not kf.grid.tiled:
                sh = min(sh, kf.length)
            sh, sw = max(sh, 1), max(sw, 1)
            h = max(1, min(-(-h // sh) * sh, -(-kf.length // sh) * sh))
            w = max(1, min(-(-w // sw) * sw, -(-kf.width // sw) * sw))
            out: list[int] = []
            if separate:
                out.append(shape[0])
            if depth3:
                out.append(max(sd, 1))
            out += [h, w]
            if contig:
                out.append(shape[-1])
            page = tuple(out)
        return (1,) * len(self.lead_shape) + tuple(1 if m is None else page[m] for m in self.trail)

    @property
    def npages(self) -> int:
        """Pages of the array (1 for a single image or page)."""
        return math.prod(self.lead_shape)

    def page_box(self, trailing: Sequence[slice]) -> list[slice]:
        """A box over the trailing axes as a box over the keyframe's axes."""
        box = [slice(0, n) for n in self.keyframe.shape]
        for s, m in zip(trailing, self.trail):
            if m is not None:
                box[m] = s
        return box

    def check_page(self, page: Any) -> None:
        """A page of another shape or dtype than the keyframe's raises TiffFormatError."""
        kf = self.keyframe
        if page is kf or page is None or isinstance(page, ContiguousPage):
            return
        if tuple(page.shape) != tuple(kf.shape) or page.dtype != kf.dtype:
            raise TiffFormatError(f"{page.where}: image {tuple(page.shape)} {page.dtype} differs from its series' "
                                  f"first page {tuple(kf.shape)} {kf.dtype} ({kf.where})")

    def missing_fill(self, fill: Any) -> Any:
        """What a missing page reads as: ``fill``, else GDAL_NODATA, else 0."""
        if fill is not None:
            return fill
        nodata = self.keyframe.nodata
        return 0 if nodata is None else nodata

    def read(self, box: Sequence[slice], *, fill: Any = None, workers: int | None = 1) -> numpy.ndarray:
        """``array[box]`` for a box of step-1 slices (one per axis), reading only the pages and
        windows it covers (pages in ``workers`` threads). Sparse segments and missing pages
        are ``fill`` (default: GDAL_NODATA, else 0)."""
        if len(box) != len(self.shape):
            raise TiffValueError(f"a box of {len(self.shape)} slices, not {len(box)}")
        bounds = [s.indices(n)[:2] for s, n in zip(box, self.shape)]
        out_shape = tuple(max(0, b - a) for a, b in bounds)
        if self.split is None:
            assert self.series is not None
            whole = self.series.asarray(workers=workers).reshape(self.shape)
            return numpy.ascontiguousarray(whole[tuple(slice(a, b) for a, b in bounds)])
        lead = len(self.lead_shape)
        if 0 in out_shape:
            return numpy.empty(out_shape, self.dtype)
        page_box = self.page_box([slice(a, b) for a, b in bounds[lead:]])
        page_shape = tuple(s.stop - s.start for s in page_box)
        numbers = [int(numpy.ravel_multi_index(idx, self.lead_shape)) if lead else 0
                   for idx in itertools.product(*(range(a, b) for a, b in bounds[:lead]))]
        if len(numbers) == 1:  # one page (a dask chunk, say): its window is the result, no copy
            page = self.page(numbers[0])
            if page is None:
                return numpy.full(out_shape, self.missing_fill(fill), self.dtype)
            self.check_page(page)
            arr = read_page_window(self.keyframe, page, page_box, fill, workers)
            return numpy.ascontiguousarray(arr).reshape(out_shape)
        out = numpy.empty(out_shape, self.dtype)
        planes = out.reshape((-1, *page_shape))

        def work(item: tuple[int, int]) -> None:
            slot, number = item
            page = self.page(number)
            if page is None:
                planes[slot][...] = self.missing_fill(fill)
                return
            self.check_page(page)
            read_page_window(self.keyframe, page, page_box, fill, 1, out=planes[slot])

        parallel_map(work, list(enumerate(numbers)), workers, PAGE_POOL)
        return out
