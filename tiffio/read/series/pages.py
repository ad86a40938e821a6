"""Pages as tifffile sees them, and the axes arithmetic of series: a page's axes, dtype, key and
size, whether its segments are final, and how shapes and axes squeeze, reshape and name.

No I/O beyond the tags of the IFDs passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy

from ...errors import TiffError

if TYPE_CHECKING:
    from ..handle import FileHandle as TiffFile
    from ..ifd.ifd import IFD

__all__ = ["page_axes", "page_dtype", "page_key", "ifd_nbytes", "is_final", "squeeze_axes", "reshape_axes", "check_shape", "dimension_names", "split_pages", "undescribed_pages"]


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


def undescribed_pages(tif: TiffFile) -> list[tuple[str, str]]:
    """(where, reason) of each page that belongs to no series because tiffio cannot describe
    it (no shape or no dtype: missing geometry tags, an unsupported sample format...).

    Only files whose series were found by grouping pages (kind 'generic', or no series at
    all) are walked: the other kinds account for their pages from their metadata, and a
    contiguous stack's chain is deliberately not walked."""
    series = tif.series
    if any(s.kind != "generic" for s in series):
        return []
    found: list[tuple[str, str]] = []

    def check(ifd: IFD) -> None:
        try:
            if not ifd.shape:
                found.append((ifd.where, "the page has no shape"))
            elif page_dtype(ifd) is None:
                ifd.dtype  # noqa: B018 - raises the reason
                found.append((ifd.where, "the page has no dtype"))
            else:
                page_key(ifd)
        except TiffError as exc:
            found.append((ifd.where, f"{type(exc).__name__}: {exc}"))

    try:
        for ifd in tif.ifds:
            check(ifd)
            if ifd.get(330) is not None:
                try:
                    subs = ifd.subifds
                except TiffError as exc:
                    found.append((f"{ifd.where} SubIFDs", f"{type(exc).__name__}: {exc}"))
                    continue
                for sub in subs:
                    check(sub)
    except TiffError as exc:  # the chain itself breaks off (strict mode): say where
        found.append(("IFD chain", f"{type(exc).__name__}: {exc}"))
    return found
