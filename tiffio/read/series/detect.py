"""Detect the series of a file, in tifffile's order (the Series object is in series.py).

tifffile's shaped JSON descriptions, OME-XML (pyramids, multi-file sets: ome.py), ImageJ
hyperstack descriptions, uniform files (all pages alike), and otherwise pages grouped by shape and
storage (generic); pyramids are attached to their full-resolution series.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ...errors import TiffError, TiffFormatError, TiffIndexError
from ...metadata.imagej import is_imagej_description
from ...metadata.ome import is_ome_xml
from ..metadata import read_imagej_metadata
from .ome import series_ome
from .pages import check_shape, ifd_nbytes, is_final, page_axes, page_dtype, page_key, reshape_axes
from .series import Series

if TYPE_CHECKING:
    from ..handle import FileHandle as TiffFile
    from ..ifd.ifd import IFD

__all__ = ["find_series", "parse_shaped_description"]


def find_series(tif: TiffFile) -> list[Series]:
    first = tif.ifds[0]
    result: list[Series] | None = None
    description = first.description
    if _shaped_description(first) is not None:
        result = _series_shaped(tif)
    if not result and is_ome_xml(description):
        result = series_ome(tif)
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
    extra = getattr(ifd.entries, "duplicates", None)
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
    return int(ifd.entries.next_offset)


def _contiguous_stack(tif: TiffFile, keyframe: IFD, npages: int) -> bool:
    """``npages`` planes of the keyframe's size lie contiguously from its first data
    offset, before the next IFD and inside the file (ImageJ and tifffile layout)."""
    if npages < 1 or not is_final(keyframe) or keyframe.subifds:
        return False
    start = int(keyframe.segment_offsets[0])
    end = start + npages * ifd_nbytes(keyframe)
    if end > tif.source.size:
        return False
    nxt = _next_ifd_offset(keyframe)
    return nxt == 0 or nxt >= end or nxt < keyframe.offset


def _chain_ends_after(tif: TiffFile, keyframe: IFD, npages: int) -> bool:
    """True when the IFD chain ends with the last page of a contiguous stack that starts at
    ``keyframe``, checked without walking it: writers that store planes contiguously write
    the other IFDs one after another with one size (tifffile), so IFD k of the stack is at
    ``second + (k - 1) * stride``; that IFD must point at plane k's data and end the chain."""
    from ..entries import parse_ifd_entries

    second = _next_ifd_offset(keyframe)
    if second == 0 or npages < 2:
        return False
    try:
        entries = parse_ifd_entries(tif.context, second, f"{keyframe.path} + 1")
        if npages == 2:
            last = entries
        else:
            third = entries.next_offset
            stride = third - second
            if third == 0 or stride <= 0:
                return False
            predicted = second + (npages - 2) * stride
            last = parse_ifd_entries(tif.context, predicted, f"{keyframe.path} + {npages - 1}")
        tag = last.tags.get(324 if keyframe.is_tiled else 273)
        if tag is None:
            return False
        first = tag.value[0] if isinstance(tag.value, tuple) else tag.value
    except TiffError:
        return False
    expected = int(keyframe.segment_offsets[0]) + (npages - 1) * ifd_nbytes(keyframe)
    return first == expected and last.next_offset == 0


def _series_imagej(tif: TiffFile) -> list[Series] | None:
    info = read_imagej_metadata(tif)
    if info is None:
        return None
    meta = info.raw
    page = tif.ifds[0]
    dtype = page_dtype(page)
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
    page_nbytes = ifd_nbytes(page)
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
    listed = page.get_ints(330) or ()
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
                keyframe = sublist[0]  # tifffile keys SubIFD series on the first
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
            s.is_subifd = True
        series.append(s)
        index += npages
        if sublist is None and contiguous and _chain_ends_after(tif, keyframe, npages):
            break  # the stack's last IFD ends the chain: no other series, nothing to walk
        nsub = len(keyframe.get_ints(330) or ()) if keyframe.get(330) is not None else 0
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
    failed = not check_shape(keyframe.shape, reshape)
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
        axes = reshape_axes(axes, shape, reshape)
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
    if page_dtype(page) is None:
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
            if not ifd.shape or page_dtype(ifd) is None:
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
            listed = ifd.get_ints(330) or ()
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
        s.is_subifd = subifd_flags.get(id(page), False)
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
        if a.is_subifd or a.keyframe.path.find("SubIFD") >= 0:
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
