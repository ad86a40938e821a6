"""The tag table as data (spec-notes/structure.md, spec-notes/subifds.md).

Each known tag has its spec name, the field types a conforming writer uses,
the expected count (an int, ``None`` for "any", or a symbolic count such as
``"SamplesPerPixel"``), and the default value where the spec gives one.
Tags not in this table are kept with their raw values; only their name is
unknown (``"Tag12345"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..enums import FieldType as T

__all__ = ["TagInfo", "TAGS", "TAG_CODES", "tag_name", "OFFSET_TAGS", "BYTECOUNT_FOR_OFFSETS"]

_INT = (T.BYTE, T.SHORT, T.LONG, T.LONG8)
_SHORT_LONG = (T.SHORT, T.LONG, T.LONG8)
_OFFSETS = (T.SHORT, T.LONG, T.LONG8, T.IFD, T.IFD8)


@dataclass(frozen=True)
class TagInfo:
    code: int
    name: str
    types: tuple[int, ...]
    count: int | str | None = None
    default: Any = None


def _t(code: int, name: str, types: tuple[int, ...], count: int | str | None = None, default: Any = None) -> TagInfo:
    return TagInfo(code, name, tuple(int(t) for t in types), count, default)


_TABLE = [
    _t(254, "NewSubfileType", (T.LONG,), 1, 0),
    _t(255, "SubfileType", (T.SHORT,), 1),
    _t(256, "ImageWidth", _SHORT_LONG, 1),
    _t(257, "ImageLength", _SHORT_LONG, 1),
    _t(258, "BitsPerSample", (T.SHORT,), "SamplesPerPixel", 1),
    _t(259, "Compression", (T.SHORT,), 1, 1),
    _t(262, "PhotometricInterpretation", (T.SHORT,), 1),
    _t(263, "Threshholding", (T.SHORT,), 1, 1),
    _t(264, "CellWidth", (T.SHORT,), 1),
    _t(265, "CellLength", (T.SHORT,), 1),
    _t(266, "FillOrder", (T.SHORT,), 1, 1),
    _t(269, "DocumentName", (T.ASCII,)),
    _t(270, "ImageDescription", (T.ASCII,)),
    _t(271, "Make", (T.ASCII,)),
    _t(272, "Model", (T.ASCII,)),
    _t(273, "StripOffsets", _OFFSETS, "StripsPerImage"),
    _t(274, "Orientation", (T.SHORT,), 1, 1),
    _t(277, "SamplesPerPixel", (T.SHORT,), 1, 1),
    _t(278, "RowsPerStrip", _SHORT_LONG, 1, 2**32 - 1),
    _t(279, "StripByteCounts", _SHORT_LONG, "StripsPerImage"),
    _t(280, "MinSampleValue", (T.SHORT,), "SamplesPerPixel"),
    _t(281, "MaxSampleValue", (T.SHORT,), "SamplesPerPixel"),
    _t(282, "XResolution", (T.RATIONAL,), 1),
    _t(283, "YResolution", (T.RATIONAL,), 1),
    _t(284, "PlanarConfiguration", (T.SHORT,), 1, 1),
    _t(285, "PageName", (T.ASCII,)),
    _t(286, "XPosition", (T.RATIONAL,), 1),
    _t(287, "YPosition", (T.RATIONAL,), 1),
    _t(288, "FreeOffsets", (T.LONG, T.LONG8)),
    _t(289, "FreeByteCounts", (T.LONG, T.LONG8)),
    _t(290, "GrayResponseUnit", (T.SHORT,), 1),
    _t(291, "GrayResponseCurve", (T.SHORT,)),
    _t(292, "T4Options", (T.LONG,), 1, 0),
    _t(293, "T6Options", (T.LONG,), 1, 0),
    _t(296, "ResolutionUnit", (T.SHORT,), 1, 2),
    _t(297, "PageNumber", (T.SHORT,), 2),
    _t(301, "TransferFunction", (T.SHORT,)),
    _t(305, "Software", (T.ASCII,)),
    _t(306, "DateTime", (T.ASCII,), 20),
    _t(315, "Artist", (T.ASCII,)),
    _t(316, "HostComputer", (T.ASCII,)),
    _t(317, "Predictor", (T.SHORT,), 1, 1),
    _t(318, "WhitePoint", (T.RATIONAL,), 2),
    _t(319, "PrimaryChromaticities", (T.RATIONAL,), 6),
    _t(320, "ColorMap", (T.SHORT,)),
    _t(321, "HalftoneHints", (T.SHORT,), 2),
    _t(322, "TileWidth", _SHORT_LONG, 1),
    _t(323, "TileLength", _SHORT_LONG, 1),
    _t(324, "TileOffsets", _OFFSETS, "TilesPerImage"),
    _t(325, "TileByteCounts", _SHORT_LONG, "TilesPerImage"),
    _t(330, "SubIFDs", (T.LONG, T.IFD, T.LONG8, T.IFD8)),
    _t(332, "InkSet", (T.SHORT,), 1, 1),
    _t(333, "InkNames", (T.ASCII,)),
    _t(334, "NumberOfInks", (T.SHORT,), 1),
    _t(336, "DotRange", (T.BYTE, T.SHORT)),
    _t(337, "TargetPrinter", (T.ASCII,)),
    _t(338, "ExtraSamples", (T.SHORT,)),
    _t(339, "SampleFormat", (T.SHORT,), "SamplesPerPixel", 1),
    _t(340, "SMinSampleValue", (T.BYTE, T.SHORT, T.LONG, T.FLOAT, T.DOUBLE, T.SBYTE, T.SSHORT, T.SLONG)),
    _t(341, "SMaxSampleValue", (T.BYTE, T.SHORT, T.LONG, T.FLOAT, T.DOUBLE, T.SBYTE, T.SSHORT, T.SLONG)),
    _t(342, "TransferRange", (T.SHORT,), 6),
    _t(347, "JPEGTables", (T.UNDEFINED,)),
    _t(512, "JPEGProc", (T.SHORT,), 1),
    _t(513, "JPEGInterchangeFormat", (T.LONG,), 1),
    _t(514, "JPEGInterchangeFormatLength", (T.LONG,), 1),
    _t(515, "JPEGRestartInterval", (T.SHORT,), 1),
    _t(517, "JPEGLosslessPredictors", (T.SHORT,)),
    _t(518, "JPEGPointTransforms", (T.SHORT,)),
    _t(519, "JPEGQTables", (T.LONG,)),
    _t(520, "JPEGDCTables", (T.LONG,)),
    _t(521, "JPEGACTables", (T.LONG,)),
    _t(529, "YCbCrCoefficients", (T.RATIONAL,), 3),
    _t(530, "YCbCrSubSampling", (T.SHORT,), 2, (2, 2)),
    _t(531, "YCbCrPositioning", (T.SHORT,), 1, 1),
    _t(532, "ReferenceBlackWhite", (T.RATIONAL,), 6),
    _t(700, "XMP", (T.BYTE, T.UNDEFINED)),
    _t(32995, "Matteing", (T.SHORT,), 1),
    _t(32996, "DataType", (T.SHORT,)),
    _t(32997, "ImageDepth", _SHORT_LONG, 1, 1),
    _t(32998, "TileDepth", _SHORT_LONG, 1, 1),
    _t(33432, "Copyright", (T.ASCII,)),
    _t(33550, "ModelPixelScaleTag", (T.DOUBLE,), 3),
    _t(33922, "ModelTiepointTag", (T.DOUBLE,)),
    _t(34264, "ModelTransformationTag", (T.DOUBLE,), 16),
    _t(34377, "Photoshop", (T.BYTE, T.UNDEFINED)),
    _t(34665, "ExifIFD", (T.LONG, T.IFD, T.LONG8, T.IFD8), 1),
    _t(34675, "ICCProfile", (T.UNDEFINED,)),
    _t(34735, "GeoKeyDirectoryTag", (T.SHORT,)),
    _t(34736, "GeoDoubleParamsTag", (T.DOUBLE,)),
    _t(34737, "GeoAsciiParamsTag", (T.ASCII,)),
    _t(34853, "GPSIFD", (T.LONG, T.IFD, T.LONG8, T.IFD8), 1),
    _t(37706, "TIFF_RSID", (T.ASCII,)),
    _t(42112, "GDAL_METADATA", (T.ASCII,)),
    _t(42113, "GDAL_NODATA", (T.ASCII,)),
    _t(50838, "IJMetadataByteCounts", (T.LONG,)),
    _t(50839, "IJMetadata", (T.BYTE,)),
]

TAGS: dict[int, TagInfo] = {t.code: t for t in _TABLE}
TAG_CODES: dict[str, int] = {t.name: t.code for t in _TABLE}

#: tags whose values are file offsets, each with the tag holding the matching byte counts
BYTECOUNT_FOR_OFFSETS: dict[int, int] = {273: 279, 324: 325, 288: 289, 513: 514}
OFFSET_TAGS = frozenset(BYTECOUNT_FOR_OFFSETS) | {330, 34665, 34853}


def tag_name(code: int) -> str:
    """The spec name of a tag code, or ``Tag<code>`` for unknown codes."""
    info = TAGS.get(code)
    return info.name if info is not None else f"Tag{code}"
