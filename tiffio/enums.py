"""Enumerations with the TIFF specification's names (spec-notes/structure.md,
spec-notes/compression.md, spec-notes/samples.md).

Unknown codes found in files are kept as plain ints; use :func:`enum_or_int`.
"""

from __future__ import annotations

import enum

__all__ = [
    "FieldType",
    "Compression",
    "Photometric",
    "PlanarConfiguration",
    "Predictor",
    "SampleFormat",
    "FillOrder",
    "ExtraSamples",
    "NewSubfileType",
    "ResolutionUnit",
    "enum_or_int",
]


class FieldType(enum.IntEnum):
    """IFD entry field types (TIFF 6.0 section 2, BigTIFF types 16-18)."""

    BYTE = 1
    ASCII = 2
    SHORT = 3
    LONG = 4
    RATIONAL = 5
    SBYTE = 6
    UNDEFINED = 7
    SSHORT = 8
    SLONG = 9
    SRATIONAL = 10
    FLOAT = 11
    DOUBLE = 12
    IFD = 13
    LONG8 = 16
    SLONG8 = 17
    IFD8 = 18


class Compression(enum.IntEnum):
    """Compression (tag 259): the codec of every segment, by its code in the TIFF spec or a registry."""

    NONE = 1
    CCITTRLE = 2
    CCITT_T4 = 3
    CCITT_T6 = 4
    LZW = 5
    OJPEG = 6
    JPEG = 7
    ADOBE_DEFLATE = 8
    JBIG_BW = 9
    JBIG_COLOR = 10
    JPEG_99 = 99
    NEXT = 32766
    CCITTRLEW = 32771
    PACKBITS = 32773
    THUNDERSCAN = 32809
    DEFLATE = 32946
    DCS = 32947
    JPEG2000_APERIO_YCBCR = 33003
    JPEG2000_LOSSY = 33004
    JPEG2000_APERIO_RGB = 33005
    ALT_JPEG = 33007
    JBIG = 34661
    SGILOG = 34676
    SGILOG24 = 34677
    JPEG2000 = 34712
    LERC = 34887
    LOSSY_JPEG = 34892
    LZMA = 34925
    ZSTD_OLD = 34926
    WEBP_OLD = 34927
    PNG = 34933
    JPEGXR_ZIF = 34934
    JPEGXR = 22610
    ZSTD = 50000
    WEBP = 50001
    JPEGXL = 50002
    PIXTIFF = 50013
    JPEGXL_DNG = 52546


class Photometric(enum.IntEnum):
    """PhotometricInterpretation (tag 262): how samples map to colour."""

    MINISWHITE = 0
    MINISBLACK = 1
    RGB = 2
    PALETTE = 3
    MASK = 4
    SEPARATED = 5
    YCBCR = 6
    CIELAB = 8
    ICCLAB = 9
    ITULAB = 10
    CFA = 32803
    LOGL = 32844
    LOGLUV = 32845
    LINEAR_RAW = 34892


class PlanarConfiguration(enum.IntEnum):
    """PlanarConfiguration (tag 284): samples of a pixel together (CONTIG) or in separate planes (SEPARATE)."""

    CONTIG = 1
    SEPARATE = 2


class Predictor(enum.IntEnum):
    """Predictor (tag 317): the transform applied before compression (spec-notes/predictors.md)."""

    NONE = 1
    HORIZONTAL = 2
    FLOATINGPOINT = 3


class SampleFormat(enum.IntEnum):
    """SampleFormat (tag 339): how the bits of a sample are interpreted."""

    UINT = 1
    INT = 2
    IEEEFP = 3
    VOID = 4
    COMPLEXINT = 5
    COMPLEXIEEEFP = 6


class FillOrder(enum.IntEnum):
    """FillOrder (tag 266): the bit order within a byte of packed data."""

    MSB2LSB = 1
    LSB2MSB = 2


class ExtraSamples(enum.IntEnum):
    """ExtraSamples (tag 338): the meaning of samples beyond the colour samples."""

    UNSPECIFIED = 0
    ASSOCALPHA = 1
    UNASSALPHA = 2


class NewSubfileType(enum.IntFlag):
    """NewSubfileType (tag 254) flags: reduced resolution, page of a multi-page image, mask."""

    NONE = 0
    REDUCEDIMAGE = 1
    PAGE = 2
    MASK = 4


class ResolutionUnit(enum.IntEnum):
    """ResolutionUnit (tag 296): the unit of XResolution and YResolution."""

    NONE = 1
    INCH = 2
    CENTIMETER = 3


def enum_or_int(cls: type[enum.IntEnum], value: int) -> int:
    """Return ``cls(value)`` if the code is known, else the plain int (unknown codes are kept)."""
    try:
        return cls(value)
    except ValueError:
        return int(value)
