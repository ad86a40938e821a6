"""Find the resolution levels of the main image, whatever convention wrote them
(spec-notes/subifds.md "Where pyramid levels live").

* SubIFDs of the main image (OME-TIFF, libvips ``subifd=True``, tifffile ``subifds=``);
* reduced-resolution IFDs in the main chain (NewSubfileType bit 0: GDAL overviews,
  COG, libvips page pyramids);
* Aperio SVS: the tiled IFDs of the chain are levels; the stripped thumbnail, label
  and macro images are not;
* masks (NewSubfileType bit 2) are kept apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from .handle import FileHandle as TiffFile
from .ifd.ifd import IFD

__all__ = ["Level", "find_levels", "find_masks", "find_associated"]



_REDUCED = 1
_MASK = 4


@dataclass(frozen=True)
class Level:
    """One resolution level: its IFD, shape, and downsample factors (y, x) vs level 0.

    (Not a NamedTuple: a field named ``index`` would hide tuple.index.)
    """

    index: int
    ifd: IFD
    shape: tuple[int, ...]
    downsample: tuple[float, float]


def _is_mask(ifd: IFD) -> bool:
    return bool(ifd.new_subfile_type & _MASK)


def _is_aperio(tif: TiffFile) -> bool:
    desc = tif.ifds[0].description
    return desc is not None and desc.startswith("Aperio")


def _compatible(base: IFD, other: IFD) -> bool:
    return (other.samples_per_pixel == base.samples_per_pixel and other.width <= base.width
            and other.length <= base.length and other.depth == base.depth
            and other.planar_configuration == base.planar_configuration)


def find_levels(tif: TiffFile) -> list[Level]:
    main = None
    for ifd in tif.ifds:
        if not ifd.new_subfile_type & (_REDUCED | _MASK):
            main = ifd
            break
    if main is None:
        main = tif.ifds[0]
    candidates: list[IFD] = []
    subs = [s for s in main.subifds if not _is_mask(s)]
    if subs:
        candidates = [s for s in subs if _compatible(main, s)]
    elif _is_aperio(tif):
        candidates = [i for i in tif.ifds if i is not main and i.is_tiled and _compatible(main, i)]
    else:
        seen_main = False
        for ifd in tif.ifds:
            if ifd is main:
                seen_main = True
                continue
            if seen_main and ifd.new_subfile_type & _REDUCED and not _is_mask(ifd) and _compatible(main, ifd):
                candidates.append(ifd)
    # order by decreasing size; drop images that are not smaller than the previous level
    candidates.sort(key=lambda i: (-i.width * i.length))
    levels = [Level(0, main, main.shape, (1.0, 1.0))]
    for ifd in candidates:
        prev = levels[-1].ifd
        if ifd.width >= prev.width and ifd.length >= prev.length:
            continue
        levels.append(Level(len(levels), ifd, ifd.shape, (main.length / ifd.length, main.width / ifd.width)))
    return levels


def find_masks(tif: TiffFile) -> list[IFD]:
    """Mask IFDs (NewSubfileType bit 2) of the main chain and of the main image's SubIFDs."""
    masks = [i for i in tif.ifds if _is_mask(i)]
    masks += [s for s in tif.ifds[0].subifds if _is_mask(s)]
    return masks


def find_associated(tif: TiffFile) -> dict[str, IFD]:
    """Named non-level images: Aperio SVS thumbnail, label and macro."""
    result: dict[str, IFD] = {}
    if not _is_aperio(tif):
        return result
    ifds = list(tif.ifds)
    for k, ifd in enumerate(ifds[1:], start=1):
        if ifd.is_tiled:
            continue
        desc = (ifd.description or "").lower()
        if "label" in desc:
            result["label"] = ifd
        elif "macro" in desc:
            result["macro"] = ifd
        elif k == 1:
            result["thumbnail"] = ifd
    return result
