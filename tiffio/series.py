"""Series: the pages of a file that form one array (stacks, hyperstacks, pyramids).

``find_series(tif)`` detects them in tifffile's order - tifffile's shaped JSON
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
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy

from .errors import LimitExceededError, TiffError, TiffFormatError, TiffIndexError, TiffValueError
from .metadata.imagej import is_imagej_description
from .metadata.ome import is_ome_xml, parse_ome_xml
from .regions import default_workers
from .tagmeta import read_imagej_metadata

if TYPE_CHECKING:
    from .directory import IFD
    from .reader import TiffFile

__all__ = ["Series", "find_series", "page_axes"]

_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """Page-level pools, apart from the segment pools of IFD.read_region (no nested waits)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="tiffio-series")
        return pool


def run_parallel(func: Callable[[Any], None], items: Sequence[Any], workers: int | None) -> None:
    """Call ``func`` on every item in a thread pool; the first exception propagates
    after all calls are finished or cancelled."""
    workers = default_workers() if workers is None else max(1, int(workers))
    if workers == 1 or len(items) < 2:
        for item in items:
            func(item)
        return
    futures = [_pool(min(workers, 64)).submit(func, item) for item in items]
    error: BaseException | None = None
    for future in futures:
        if error is not None:
            future.cancel()
            continue
        try:
            future.result()
        except BaseException as exc:
            error = exc
    for future in futures:
        if not future.cancelled():
            try:
                future.result()
            except BaseException:
                pass
    if error is not None:
        raise error


# --- page properties as tifffile sees them ---------------------------------------------------
def page_axes(ifd: IFD) -> str:
    """tifffile's TiffPage.axes: YX, YXS, SYX, with Z before Y for volumes."""
    zyx = "YX" if ifd.depth == 1 else "ZYX"
    if ifd.photometric == 2 or ifd.samples_per_pixel > 1:
        return "S" + zyx if ifd.is_separate else zyx + "S"
    return zyx


def _dtype(ifd: IFD) -> numpy.dtype | None:
    try:
        return ifd.dtype
    except TiffError:
        return None


def page_key(ifd: IFD) -> tuple:
    """What tifffile's TiffPage.hash covers: pages with equal keys form one series."""
    tiled = ifd.is_tiled
    tile = ifd.tile_shape if tiled else None
    return (ifd.shaped, 0 if tiled else ifd.rows_per_strip, tile[1] if tile else 0, tile[0] if tile else 0,
            ifd._int(32998, 1) if tiled else 1, ifd.sample_format, ifd.bits_per_sample, ifd.fill_order,
            ifd.predictor, int(ifd.compression), ifd.extra_samples, ifd.photometric)


def _page_nbytes(ifd: IFD) -> int:
    dtype = _dtype(ifd)
    return math.prod(ifd.shape) * (dtype.itemsize if dtype is not None else 0)


def is_final(ifd: IFD) -> bool:
    """Uncompressed samples stored contiguously in their final form (tifffile's is_final):
    the image can be read as ``shape`` items from ``segment_offsets[0]``."""
    if (ifd.compression != 1 or ifd.sample_format == 5 or ifd.bits_per_sample not in (8, 16, 32, 64)
            or ifd.fill_order != 1 or ifd.predictor != 1 or ifd.subsampling not in (None, (1, 1))
            or _dtype(ifd) is None):
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
    if int(cnts.sum()) != _page_nbytes(ifd) or (cnts[:-1] == 0).any():
        return False
    return bool((offs[:-1] + cnts[:-1] == offs[1:]).all())


def squeeze_axes(shape: Sequence[int], axes: str) -> tuple[tuple[int, ...], str]:
    """Drop length-1 dimensions except Y and X (keep the last if all would go)."""
    kept = [(n, ax) for n, ax in zip(shape, axes) if n > 1 or ax in "XY"]
    if not kept and shape:
        kept = [(shape[-1], axes[-1])]
    return tuple(n for n, _ in kept), "".join(ax for _, ax in kept)


def _reshape_axes(axes: str, shape: Sequence[int], newshape: Sequence[int]) -> str:
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


def _check_shape(page_shape: Sequence[int], series_shape: Sequence[int]) -> bool:
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
    def _page_indices(self, key: Any) -> tuple[list[int], bool]:
        """Page indices selected by ``key`` and whether the result drops the page axis."""
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
            keys = [int(k) for k in key]
        except TypeError:
            raise TiffValueError(f"key must be None, an int, a slice or a sequence of ints, not {key!r}") from None
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

    def asarray(self, key: Any = None, *, out: numpy.ndarray | None = None, workers: int | None = None,
                fill: Any = 0) -> numpy.ndarray:
        """The series as one array (``shape``), or the pages ``key`` selects: an int gives
        that page's array, a slice or sequence a stack of pages. Pages are decoded in
        parallel (``workers`` threads); missing pages are ``fill``."""
        self._tif._check_open()
        indices, single = self._page_indices(key)
        if key is None:
            shape: tuple[int, ...] = self.shape
        elif single:
            shape = self.page_shape
        else:
            shape = (len(indices), *self.page_shape)
        self._tif.limits.check("max_output_bytes", math.prod(shape) * self.dtype.itemsize,
                               f"{self._tif.name}: series {self.index}")
        if out is None:
            result = numpy.empty(shape, self.dtype)
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

        run_parallel(work, list(enumerate(indices)), workers)
        return result

    def read_region(self, y: int, x: int, height: int, width: int, *, key: Any = None,
                    out: numpy.ndarray | None = None, workers: int | None = None, fill: Any = 0) -> numpy.ndarray:
        """The window (y, x, height, width) of every page ``key`` selects (default: all),
        shaped like :meth:`asarray` with Y and X cut to the window."""
        self._tif._check_open()
        kf = self.keyframe
        indices, single = self._page_indices(key)
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
        if out is None:
            result = numpy.empty(shape, self.dtype)
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
                rows = numpy.empty((height, kf.width, *self.page_shape[2:]), self.dtype)
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

        run_parallel(work, list(enumerate(indices)), workers)
        return result


# --- detection ----------------------------------------------------------------------------
def find_series(tif: TiffFile) -> list[Series]:
    first = tif.ifds[0]
    result: list[Series] | None = None
    description = first.description
    if _shaped_description(first) is not None:
        result = _series_shaped(tif)
    if not result and is_ome_xml(description):
        result = _series_ome(tif)
    if not result and _imagej_description(first) is not None:
        result = _series_imagej(tif)
    if not result and _is_uniform(tif):
        result = _series_uniform(tif)
    if not result:
        result = _series_generic(tif)
    for i, s in enumerate(result):
        s.index = i
    return result


def _descriptions(ifd: IFD) -> list[str]:
    """ImageDescription and, as tifffile's description1, a second ImageDescription entry."""
    values = [ifd.description or ""]
    extra = getattr(ifd._entries, "duplicates", None)
    if extra:
        values.extend(v for v in extra if isinstance(v, str))
    return values


def _shaped_description(ifd: IFD) -> str | None:
    for text in _descriptions(ifd):
        if not text or '"mibi.' in text:
            continue
        if text[:1] == "{" and '"shape":' in text:
            return text
        if text[:6] == "shape=":
            return text
    return None


def _imagej_description(ifd: IFD) -> str | None:
    for text in _descriptions(ifd):
        if is_imagej_description(text):
            return text
    return None


def parse_shaped_description(text: str) -> dict[str, Any]:
    import json
    if text[:6] == "shape=":
        return {"shape": tuple(int(i) for i in text[7:-1].split(","))}
    try:
        value = json.loads(text)
    except ValueError:
        raise TiffFormatError(f"invalid shaped description {text[:64]!r}") from None
    if not isinstance(value, dict):
        raise TiffFormatError(f"invalid shaped description {text[:64]!r}")
    return value


def _next_ifd_offset(ifd: IFD) -> int:
    return int(ifd._entries.next_offset)


def _contiguous_stack(tif: TiffFile, keyframe: IFD, npages: int) -> bool:
    """``npages`` planes of the keyframe's size lie contiguously from its first data
    offset, before the next IFD and inside the file (ImageJ and tifffile layout)."""
    if npages < 1 or not is_final(keyframe) or keyframe.subifds:
        return False
    start = int(keyframe.segment_offsets[0])
    end = start + npages * _page_nbytes(keyframe)
    if end > tif.source.size:
        return False
    nxt = _next_ifd_offset(keyframe)
    return nxt == 0 or nxt >= end or nxt < keyframe.offset


def _chain_ends_after(tif: TiffFile, keyframe: IFD, npages: int) -> bool:
    """True when the IFD chain ends with the last page of a contiguous stack that starts at
    ``keyframe``, checked without walking it: writers that store planes contiguously write
    the other IFDs one after another with one size (tifffile), so IFD k of the stack is at
    ``second + (k - 1) * stride``; that IFD must point at plane k's data and end the chain."""
    from .ifd import parse_ifd_entries

    second = _next_ifd_offset(keyframe)
    if second == 0 or npages < 2:
        return False
    try:
        entries = parse_ifd_entries(tif._ctx, second, f"{keyframe.path} + 1")
        if npages == 2:
            last = entries
        else:
            third = entries.next_offset
            stride = third - second
            if third == 0 or stride <= 0:
                return False
            predicted = second + (npages - 2) * stride
            last = parse_ifd_entries(tif._ctx, predicted, f"{keyframe.path} + {npages - 1}")
        tag = last.tags.get(324 if keyframe.is_tiled else 273)
        if tag is None:
            return False
        first = tag.value[0] if isinstance(tag.value, tuple) else tag.value
    except TiffError:
        return False
    expected = int(keyframe.segment_offsets[0]) + (npages - 1) * _page_nbytes(keyframe)
    return first == expected and last.next_offset == 0


def _series_imagej(tif: TiffFile) -> list[Series] | None:
    info = read_imagej_metadata(tif)
    if info is None:
        return None
    meta = info.raw
    page = tif.ifds[0]
    dtype = _dtype(page)
    if dtype is None:
        return None

    def count(key: str) -> int:
        value = meta.get(key, 1)
        return value if isinstance(value, int) and not isinstance(value, bool) else 1

    order = str(meta.get("order", "czt")).lower()
    frames, slices, channels, images = count("frames"), count("slices"), count("channels"), count("images")
    if min(frames, slices, channels, images) < 1:
        return None
    shaped = page.shaped
    if channels == 1 or (shaped[0] > 1 and shaped[0] == channels):
        images = frames * slices
    elif images == frames * slices and shaped[4] == channels:
        channels = 1
    else:
        images = frames * slices * channels
    multipage = _next_ifd_offset(page) != 0
    if images == 1 and multipage:
        images = len(tif.ifds)
    page_nbytes = _page_nbytes(page)
    nbytes = images * page_nbytes
    final = is_final(page)
    if not final:
        virtual = False
    elif int(page.segment_offsets[0]) + nbytes > tif.source.size:
        return None  # tifffile: metadata invalid or file corrupted
    elif images <= 1:
        virtual = True
    elif multipage and int(page.segment_offsets[0]) + nbytes > _next_ifd_offset(page):
        virtual = False
    else:
        virtual = True
    orders = {"czt": ("TZC", (frames, slices, channels)), "default": ("TZC", (frames, slices, channels)),
              "ctz": ("ZTC", (slices, frames, channels)), "zct": ("TCZ", (frames, channels, slices)),
              "ztc": ("CTZ", (channels, frames, slices)), "tcz": ("ZCT", (slices, channels, frames)),
              "tzc": ("CZT", (channels, slices, frames))}
    axes, shape3 = orders.get(order, orders["czt"])
    shape: tuple[int, ...] = shape3
    remain = images // math.prod(shape)
    if remain > 1:
        shape = (remain, *shape)
        axes = "I" + axes
    pax = page_axes(page)
    if shaped[0] > 1:
        shape = shape[:-1] + tuple(page.shape)
        axes += pax[1:]
    else:
        shape += tuple(page.shape)
        axes += pax
    if "S" not in axes:
        shape += (1,)
        axes += "S"
    truncated = virtual and not multipage and page_nbytes != nbytes
    if virtual:
        return [Series(tif, page, None, shape, axes, "imagej", npages=images, contiguous=True, truncated=truncated)]
    pages: list[IFD | None] = list(tif.ifds)
    return [Series(tif, page, pages, shape, axes, "imagej")]


def _series_shaped(tif: TiffFile) -> list[Series] | None:
    series = _detect_shaped(tif, None, [])
    if not series:
        return None
    _pyramidize(series, reduced=True)
    return series


def _subifd_at(page: IFD, i: int) -> IFD | None:
    listed = page._ints(330) or ()
    if i >= len(listed):
        return None
    return next((sub for sub in page.subifds if sub.offset == listed[i]), None)


def _detect_shaped(tif: TiffFile, sublist: list[IFD | None] | None, series: list[Series]) -> list[Series] | None:
    """Series of the main chain (``sublist`` None) or of one SubIFD level, recursively."""
    index = 0
    while True:
        try:
            if sublist is None:
                keyframe = tif.ifds[index]
            else:
                if index >= len(sublist):
                    break
                keyframe = sublist[0]  # type: ignore[assignment]  # tifffile keys SubIFD series on the first
        except TiffIndexError:
            break
        if keyframe is None:
            return None
        text = _shaped_description(keyframe)
        if text is None:
            return None  # tifffile: invalid shaped series metadata
        try:
            meta = parse_shaped_description(text)
            reshape = tuple(int(n) for n in meta["shape"])
        except (TiffFormatError, KeyError, TypeError, ValueError):
            return None
        axes: str | None = None
        shape: tuple[int, ...] | None = None
        if "axes" in meta:
            axes = str(meta["axes"])
            if len(axes) == len(reshape):
                shape = reshape
            else:
                axes = ""
        size = math.prod(reshape)
        page_size = math.prod(keyframe.shape)
        if size > 0:
            if page_size == 0:
                return None
            npages, mod = divmod(size, page_size)
        else:
            npages, mod = 1, 0
        if mod:
            return None
        truncated = meta.get("truncated", None if keyframe.get(330) is None else False)
        contiguous = False
        pages: list[IFD | None] = [keyframe]
        npages_found = 1
        if npages > 1 and not truncated:
            truncated = False
            if sublist is None and _contiguous_stack(tif, keyframe, npages) and _next_ifd_offset(keyframe) != 0:
                contiguous = True
                npages_found = npages
            else:
                try:
                    if sublist is None:
                        pages = [tif.ifds[index + j] for j in range(npages)]
                    elif index + npages <= len(sublist):
                        pages = sublist[index: index + npages]
                    npages_found = len(pages)
                except TiffIndexError:
                    pages = [keyframe]
        name = str(meta.get("name", ""))
        s = _shaped_append(tif, keyframe, pages, axes, shape, reshape, name, truncated, npages_found, contiguous)
        if sublist is not None:
            s._is_subifd = True  # type: ignore[attr-defined]
        series.append(s)
        index += npages
        if sublist is None and contiguous and _chain_ends_after(tif, keyframe, npages):
            break  # the stack's last IFD ends the chain: no other series, nothing to walk
        nsub = len(keyframe._ints(330) or ()) if keyframe.get(330) is not None else 0
        for i in range(nsub):
            level: list[IFD | None] = []
            for page in s.ifds:
                sub = _subifd_at(page, i) if page is not None else None
                if sub is None:
                    return None
                level.append(sub)
            if level:
                result = _detect_shaped(tif, level, series)
                if result is None:
                    return None
                series = result
    return series


def _shaped_append(tif: TiffFile, keyframe: IFD, pages: list[IFD | None], axes: str | None,
                   shape: tuple[int, ...] | None, reshape: tuple[int, ...], name: str, truncated: Any,
                   npages: int, contiguous: bool) -> Series:
    failed = not _check_shape(keyframe.shape, reshape)
    if failed or axes is None or shape is None:
        shape = tuple(keyframe.shape)
        axes = page_axes(keyframe)
        if npages > 1:
            shape = (npages, *shape)
            axes = "Q" + axes
        if failed:
            reshape = shape
    size, resize = math.prod(shape), math.prod(reshape)
    if is_final(keyframe) and resize > size and size and resize % size == 0:
        if truncated is None:
            truncated = True
        axes = "Q" + axes
        shape = (resize // size, *shape)
    try:
        axes = _reshape_axes(axes, shape, reshape)
        shape = reshape
    except ValueError:
        pass
    # a truncated series (one IFD for many planes) reads its planes contiguously
    n = max(1, math.prod(shape) // max(1, math.prod(keyframe.shape)))
    if truncated and n > 1 and _contiguous_stack(tif, keyframe, n):
        contiguous, npages = True, n
    return Series(tif, keyframe, None if contiguous else pages, shape, axes, "shaped", name=name, squeeze=False,
                  npages=npages, contiguous=contiguous, truncated=bool(truncated))


def _is_uniform(tif: TiffFile) -> bool:
    first = tif.ifds[0]
    if first.get(330) is not None:
        return False
    if _next_ifd_offset(first) == 0:
        return True
    try:
        key = page_key(first)
        for i in (1, 7, -1):
            if page_key(tif.ifds[i]) != key:
                return False
    except TiffIndexError:
        return False
    except TiffError:
        return False
    return True


def _series_uniform(tif: TiffFile) -> list[Series] | None:
    page = tif.ifds[0]
    if _dtype(page) is None:
        return None
    pages: list[IFD | None] = list(tif.ifds)
    key = page_key(page)
    if any(p is not None and page_key(p) != key for p in pages):
        return None
    if len(pages) == 1:
        shape: tuple[int, ...] = tuple(page.shape)
        axes = page_axes(page)
    else:
        shape = (len(pages), *page.shape)
        axes = "I" + page_axes(page)
    return [Series(tif, page, pages, shape, axes, "uniform")]


def _series_generic(tif: TiffFile) -> list[Series]:
    groups: dict[tuple, list[IFD]] = {}
    subifd_flags: dict[int, bool] = {}

    def add(ifd: IFD, is_sub: bool) -> None:
        try:
            if not ifd.shape or _dtype(ifd) is None:
                return
            key = page_key(ifd)
        except TiffError:
            return  # a page tiffio cannot describe (missing geometry tags) is no series
        group = groups.get(key)
        if group is None:
            groups[key] = [ifd]
            subifd_flags[id(ifd)] = is_sub
        elif all(p.offset != ifd.offset for p in group):
            group.append(ifd)

    for ifd in tif.ifds:
        add(ifd, False)
        if ifd.get(330) is not None:
            listed = ifd._ints(330) or ()
            try:
                by_offset = {sub.offset: sub for sub in ifd.subifds}
            except TiffError:
                continue  # unreadable SubIFDs are skipped, as tifffile does
            for offset in listed:
                sub = by_offset.get(offset)
                if sub is not None:
                    add(sub, True)
    series = []
    for group in groups.values():
        page = group[0]
        shape = (len(group), *page.shape)
        axes = "I" + page_axes(page)
        if "S" not in axes:
            shape += (1,)
            axes += "S"
        s = Series(tif, page, list(group), shape, axes, "generic")
        s._is_subifd = subifd_flags.get(id(page), False)  # type: ignore[attr-defined]
        series.append(s)
    is_agilent = 285 in tif.ifds[0].tags and 37701 in tif.ifds[0].tags
    if not is_agilent:
        _pyramidize(series)
    return series


def _subresolution(a: Series, b: Series, p: int, n: int = 16) -> int | None:
    """The pyramid level of ``b`` below ``a`` at factor ``p`` (None: not a level)."""
    if a.axes != b.axes or a.dtype != b.dtype:
        return None
    level = None
    for ax, i, j in zip(a.axes.lower(), a.shape, b.shape):
        if ax in "xyz":
            if level is None:
                for r in range(n):
                    d = p ** r
                    if d > i:
                        return None
                    if i // d == j or (i + d - 1) // d == j:
                        level = r
                        break
                else:
                    return None
            else:
                d = p ** level
                if d > i or (i // d != j and (i + d - 1) // d != j):
                    return None
        elif i != j:
            return None
    return level


def _pyramidize(series: list[Series], reduced: bool = False) -> None:
    i = 0
    while i < len(series):
        a = series[i]
        if getattr(a, "_is_subifd", False) or a.keyframe.path.find("SubIFD") >= 0:
            i += 1
            continue
        factor = None
        j = i + 1
        while j < len(series):
            b = series[j]
            if reduced and not b.keyframe.new_subfile_type & 1:
                j += 1
                continue
            if factor is None:
                for f in (2, 3, 4):
                    if _subresolution(a.levels[-1], b, f) == 1:
                        factor = f
                        break
                else:
                    j += 1
                    continue
            elif _subresolution(a.levels[-1], b, factor) != 1:
                j += 1
                continue
            a.levels.append(b)
            del series[j]
        i += 1


# --- OME ----------------------------------------------------------------------------------
def _series_ome(tif: TiffFile) -> list[Series] | None:
    first = tif.ifds[0]
    try:
        meta = parse_ome_xml(first.description or "")
    except TiffFormatError:
        return None
    if meta.binary_only:
        return None
    files: dict[str | None, TiffFile] = {meta.uuid: tif}
    opened: list[TiffFile] = []
    series: list[Series] = []
    pyramidal = False
    for image in meta.images:
        axes = image.axes
        shape = [image.sizes[ax] for ax in axes]
        spp = image.samples_per_pixel
        if spp > 1:
            shape = [n // spp if ax == "C" else n for n, ax in zip(shape, axes)]
        pages: list[IFD | None] = []
        plane_shape = shape[:-2]
        for td in image.tiffdata:
            firsts = [td.first.get(ax, 0) for ax in axes[:-2]]
            try:
                idx = int(numpy.ravel_multi_index(firsts, plane_shape)) if plane_shape else 0
            except ValueError:
                continue
            owner = tif
            if td.uuid is not None and td.uuid not in files:
                if meta.uuid is None and td.filename and td.filename.lower() == os.path.basename(tif.name).lower():
                    files[td.uuid] = tif
                else:
                    other = _open_sibling(tif, td.filename)
                    if other is None:
                        for f in opened:
                            f.close()
                        return None  # a member file is missing or unreadable: no OME series
                    files[td.uuid] = other
                    opened.append(other)
                    tif.__dict__.setdefault("_sibling_files", []).append(other)  # closed with tif
            if td.uuid is not None:
                owner = files[td.uuid]
            count = td.plane_count or len(owner.ifds)
            _check_planes(tif, idx + count, "a TiffData block")
            if len(pages) < idx + count:
                pages.extend([None] * (idx + count - len(pages)))
            for k in range(count):
                try:
                    pages[idx + k] = owner.ifds[td.ifd + k]
                except TiffIndexError:
                    break
        if not pages or all(p is None for p in pages):
            continue
        keyframe = next(p for p in pages if p is not None)
        if keyframe.get(330) is not None:
            pyramidal = True
        full_axes = axes
        if spp > 1:
            if not keyframe.is_separate:
                shape.append(spp)
                full_axes += "S"
            else:
                shape = [*shape[:-2], spp, *shape[-2:]]
                full_axes = full_axes[:-2] + "S" + full_axes[-2:]
        if "S" not in full_axes:
            shape.append(1)
            full_axes += "S"
        nplanes = max(math.prod(shape) // max(1, math.prod(keyframe.shape)), 1)
        _check_planes(tif, nplanes, f"image {image.name or ''} Size*")
        if nplanes < len(pages):
            pages = pages[:nplanes]
        elif nplanes > len(pages):
            pages.extend([None] * (nplanes - len(pages)))
        squeezed = squeeze_axes(shape, full_axes)[0]
        if tuple(keyframe.shape) != tuple(squeezed[-len(keyframe.shape):]):
            continue  # tifffile: discontiguous storage is not a series
        s = Series(tif, keyframe, pages, shape, full_axes, "ome", name=image.name or "")
        s.ome_image = image  # type: ignore[attr-defined]
        series.append(s)
    if pyramidal:
        for s in series:
            _ome_levels(tif, s)
    return series


def _check_planes(tif: TiffFile, planes: int, what: str) -> None:
    """OME-XML sizes are not trusted further than Limits.max_ifds planes (a hostile
    SizeT=10**12 must not make a list of 10**12 entries)."""
    limit = tif.limits.max_ifds
    if planes > limit:
        raise LimitExceededError(
            f"{tif.name}: OME-XML {what} places {planes} planes, more than Limits.max_ifds={limit}; "
            f"pass limits=tiffio.Limits(max_ifds=...) to tiffio.open to allow it")


def _open_sibling(tif: TiffFile, filename: str | None) -> TiffFile | None:
    if not filename or not os.path.isfile(str(tif.name)):
        return None
    path = os.path.join(os.path.dirname(str(tif.name)), filename)
    try:
        return type(tif)(path, strict=tif.strict, limits=tif.limits)
    except (OSError, TiffError):
        return None


def _ome_levels(tif: TiffFile, s: Series) -> None:
    kf = s.keyframe
    listed = kf._ints(330) or ()
    nlevels = len(listed)
    for level in range(nlevels):
        pages: list[IFD | None] = []
        for page in s.ifds:
            sub = None
            if page is not None:
                offsets = page._ints(330) or ()
                if level < len(offsets):
                    by_offset = {x.offset: x for x in page.subifds}
                    sub = by_offset.get(offsets[level])
            pages.append(sub)
        lk = next((p for p in pages if p is not None), None)
        if lk is None:
            break
        shape = [lk.width if ax == "X" else lk.length if ax == "Y" else n for ax, n in zip(s.full_axes, s.full_shape)]
        s.levels.append(Series(tif, lk, pages, shape, s.full_axes, "ome", name=f"Level {level + 1}"))
    if not s.name:
        s.name = "Baseline"
