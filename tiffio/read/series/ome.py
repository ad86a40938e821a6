"""The series of an OME-TIFF file, from the OME-XML in IFD 0: images, their planes (TiffData
blocks, across the files of a multi-file set), and SubIFD pyramid levels. Used by
detect.find_series, which tries it in tifffile's order."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy

from ...errors import LimitExceededError, TiffError, TiffFormatError, TiffIndexError
from ...metadata.ome import parse_ome_xml
from .pages import squeeze_axes
from .series import Series

if TYPE_CHECKING:
    from ..handle import FileHandle as TiffFile
    from ..ifd.ifd import IFD

__all__ = ["series_ome"]


def series_ome(tif: TiffFile) -> list[Series] | None:
    """The OME series of ``tif`` (None when its OME-XML is unusable or a member file is missing)."""
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
        cls: Any = type(tif)  # TiffFile (annotated as the FileHandle it implements)
        return cls(path, strict=tif.strict, limits=tif.limits)
    except (OSError, TiffError):
        return None


def _ome_levels(tif: TiffFile, s: Series) -> None:
    kf = s.keyframe
    listed = kf.get_ints(330) or ()
    nlevels = len(listed)
    for level in range(nlevels):
        pages: list[IFD | None] = []
        for page in s.ifds:
            sub = None
            if page is not None:
                offsets = page.get_ints(330) or ()
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
