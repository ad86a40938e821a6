"""Metadata read from an open file: the I/O side of :mod:`tiffio.metadata`.

Each function takes a TiffFile or IFD, reads the tags it needs (lazily, like every
tag value) and hands them to the pure parsers. ``TiffFile.imagej_metadata``,
``TiffFile.ome_metadata``, ``IFD.geotiff``, ``IFD.resolution``, ``IFD.icc_profile``,
``IFD.xmp`` and ``IFD.exif`` are these functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import TiffError, TiffFormatError
from ..metadata.basic import (
    EXIF_TAG_NAMES,
    GPS_TAG_NAMES,
    IccProfile,
    Resolution,
    parse_icc_profile,
    parse_resolution,
    parse_xmp,
)
from ..metadata.geotiff import GeoTiff
from ..metadata.imagej import ImageJMetadata, is_imagej_description, parse_ijmetadata
from ..metadata.ome import OmeMetadata, is_ome_xml, parse_ome_xml
from .entries import parse_ifd_entries

if TYPE_CHECKING:
    from .handle import FileHandle as TiffFile
    from .ifd.fields import IFDTags as IFD

__all__ = ["read_imagej_metadata", "read_ome_metadata", "read_geotiff", "read_resolution", "read_icc_profile",
           "read_xmp", "read_exif"]


def read_imagej_metadata(tif: TiffFile) -> ImageJMetadata | None:
    """The first IFD's ImageJ description and IJMetadata; None for other files."""
    first = tif.ifds[0]
    text = first.description
    if not is_imagej_description(text):
        return None
    ij: dict[str, Any] | None = None
    data, counts = first.get(50839), first.get(50838)
    if data is not None and counts is not None:
        if isinstance(data, tuple):
            data = bytes(data)
        if isinstance(counts, int):
            counts = (counts,)
        try:
            ij = parse_ijmetadata(bytes(data), counts, tif.byteorder, f"{first.where}: IJMetadata")
        except TiffFormatError as exc:
            tif.context.problem(str(exc))
    return ImageJMetadata.from_values(text, ij)


def read_ome_metadata(tif: TiffFile) -> OmeMetadata | None:
    """The OME-XML of the first IFD, parsed; None when there is none."""
    first = tif.ifds[0]
    text = first.description
    if not is_ome_xml(text):
        return None
    return parse_ome_xml(text)


def read_geotiff(ifd: IFD) -> GeoTiff | None:
    def value(code: int) -> Any:
        return ifd.get(code)
    return GeoTiff.from_tags(value, ifd.where)


def read_resolution(ifd: IFD) -> Resolution | None:
    return parse_resolution(ifd.get(282), ifd.get(283), ifd.get(296))


def read_icc_profile(ifd: IFD) -> IccProfile | None:
    value = ifd.get(34675)
    if value is None:
        return None
    data = bytes(value) if isinstance(value, (tuple, bytes)) else None
    if data is None:
        raise TiffFormatError(f"{ifd.where}: InterColorProfile (34675) is not a byte string")
    return parse_icc_profile(data, f"{ifd.where}: InterColorProfile")


def read_xmp(ifd: IFD) -> str | None:
    value = ifd.get(700)
    return None if value is None else parse_xmp(value)


def _sub_ifd_values(ifd: IFD, code: int, names: dict[int, str], what: str) -> dict[str, Any]:
    offset = ifd.get(code)
    if isinstance(offset, tuple):
        offset = offset[0] if offset else None
    if not isinstance(offset, int) or offset <= 0:
        return {}
    where = f"{ifd.path} {what} IFD"
    try:
        entries = parse_ifd_entries(ifd.context, offset, where)
    except TiffError as exc:
        ifd.context.problem(f"{ifd.where}: {what} IFD at offset {offset} is unreadable ({exc})")
        return {}
    result: dict[str, Any] = {}
    for tcode, tag in entries.tags.items():
        try:
            result[names.get(tcode, str(tcode))] = tag.value
        except TiffError as exc:
            ifd.context.problem(f"{where}: tag {tcode}: {exc}")
    return result


def read_exif(ifd: IFD) -> dict[str, Any]:
    """The Exif sub-IFD (34665) by EXIF tag name (unknown codes as their number), with the
    GPS sub-IFD (34853) under 'GPS'. Empty when the IFD has neither."""
    result = _sub_ifd_values(ifd, 34665, EXIF_TAG_NAMES, "Exif")
    gps = _sub_ifd_values(ifd, 34853, GPS_TAG_NAMES, "GPS")
    if gps:
        result["GPS"] = gps
    return result
