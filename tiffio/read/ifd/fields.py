"""An IFD's tags and geometry: tag access by code or spec name, the image structure
derived from the tags (dtype, shape, segment grid) and the frozen decoding spec.

Values are derived when first used (cached) and never read segment data. The
classes above this one (segments.IFDSegments, regions.IFDRegions,
ifd.IFD) add reading; this module knows nothing about them.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import numpy

from ... import codecs as _codecs  # _codecs.IMAGE_DECODERS: built on first use
from ..._cached import cached_property
from ...alloc import require_fill
from ...codecs import JPEG_COMPRESSIONS
from ...codecs.decode import SegmentSpec, sample_dtype
from ...enums import Compression, Photometric, PlanarConfiguration, enum_or_int
from ...errors import TiffFormatError, TiffFormatWarning, UnsupportedFeatureError
from ...format.grid import SegmentGrid
from ...format.tags import TAG_CODES, tag_name
from ..entries import IFDEntries, Tag
from ..handle import FileHandle

__all__ = ["TagMapping", "IFDTags"]


class TagMapping(Mapping):
    """IFD.tags: tag code -> Tag; also accepts spec names (``tags['ImageWidth']``)."""

    def __init__(self, tags: dict[int, Tag]) -> None:
        self._tags = tags

    def _code(self, key: int | str) -> int:
        if isinstance(key, str):
            code = TAG_CODES.get(key)
            if code is None:
                if key.startswith("Tag") and key[3:].isdigit():
                    return int(key[3:])
                raise KeyError(key)
            return code
        return int(key)

    def __getitem__(self, key: int | str) -> Tag:
        return self._tags[self._code(key)]

    def __contains__(self, key: object) -> bool:
        try:
            return self._code(key) in self._tags  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            return False

    def __iter__(self) -> Iterator[int]:
        return iter(self._tags)

    def __len__(self) -> int:
        return len(self._tags)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{c}: {t!r}" for c, t in self._tags.items()) + "}"


class IFDTags:
    """The tags and geometry of one IFD (the base of :class:`tiffio.IFD`).

    Geometry and decoding parameters are derived from the tags when first used.
    """

    def __init__(self, tiff: FileHandle, entries: IFDEntries, index: int, path: str, depth: int = 0) -> None:
        self._tiff = tiff
        self.context = tiff.context
        self.entries = entries
        self.index = index
        self.path = path
        self.offset = entries.offset
        self.tags = TagMapping(entries.tags)
        self._depth = depth
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<tiffio.IFD {self.path} @{self.offset}>"

    @cached_property
    def where(self) -> str:
        """Where this IFD is, for messages: ``'slide.tif: IFD 2 at offset 6700 (0x1a2c)'``
        (the file's name first: ParseContext.locate)."""
        return self.entries.where

    # --- tag access ---------------------------------------------------------------------
    def get(self, key: int | str, default: Any = None) -> Any:
        """The value of a tag (by code or spec name), or ``default`` if absent."""
        tag = self.tags.get(key) if key in self.tags else None
        if tag is None:
            return default
        return tag.value

    def get_int(self, code: int, default: Any = None) -> Any:
        """The first value of a numeric tag as an int, or ``default`` if absent or not numeric
        (reported as a problem: a warning, or an error when strict)."""
        tag = self.entries.tags.get(code)
        if tag is None:
            return default
        value = tag.value
        if isinstance(value, tuple):
            value = value[0] if value else default
        if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            self.context.problem(f"{self.where}: tag {tag_name(code)} has a non-numeric value {value!r}; "
                              f"it is ignored")
            return default
        return int(value)

    def get_ints(self, code: int) -> tuple[int, ...] | None:
        """Every value of a numeric tag as ints, or None if absent or not numeric (reported as a
        problem)."""
        tag = self.entries.tags.get(code)
        if tag is None:
            return None
        value = tag.value
        if not isinstance(value, tuple):
            value = (value,)
        if isinstance(value, (bytes, str)) or not all(
                isinstance(v, int) or (isinstance(v, float) and math.isfinite(v)) for v in value):
            self.context.problem(f"{self.where}: tag {tag_name(code)} has a non-numeric value; it is ignored")
            return None
        return tuple(int(v) for v in value)

    # --- image structure -----------------------------------------------------------------
    @cached_property
    def compression(self) -> int:
        """Compression (tag 259) as a :class:`~tiffio.Compression` member, or the int for unknown codes (default 1, none)."""
        return enum_or_int(Compression, self.get_int(259, 1))

    @cached_property
    def photometric(self) -> int | None:
        """PhotometricInterpretation (tag 262) as a :class:`~tiffio.Photometric` member or int, None when absent."""
        value = self.get_int(262)
        if self.compression == Compression.OJPEG and (value is None or value == 2):
            value = 6  # old-style JPEG is YCbCr unless said otherwise (spec-notes/jpeg.md "Old-style JPEG (compression 6)")
        return value

    @cached_property
    def samples_per_pixel(self) -> int:
        """SamplesPerPixel (tag 277), default 1."""
        spp = self.get_int(277)
        if spp is None:
            spp = 3 if (self.compression == Compression.OJPEG and self.photometric in (0, 1, 2, 6)) else 1
        if spp < 1:
            raise TiffFormatError(f"{self.where}: SamplesPerPixel is {spp}")
        if spp > 65535:
            raise TiffFormatError(f"{self.where}: SamplesPerPixel {spp} is absurd")
        return spp

    @cached_property
    def bits_per_sample(self) -> int:
        """BitsPerSample (tag 258) of the samples (all samples share it), default 1."""
        values = self.get_ints(258)
        if not values:
            return 8 if self.compression == Compression.OJPEG else 1
        values = values[: self.samples_per_pixel]
        if any(v != values[0] for v in values):
            raise UnsupportedFeatureError(f"{self.where}: BitsPerSample differs between samples {values}")
        return values[0]

    @cached_property
    def sample_format(self) -> int:
        """SampleFormat (tag 339) of the samples, default 1 (unsigned integer)."""
        values = self.get_ints(339)
        if not values:
            return 1
        values = values[: self.samples_per_pixel]
        if any(v != values[0] for v in values):
            raise UnsupportedFeatureError(f"{self.where}: SampleFormat differs between samples {values}")
        return values[0]

    @cached_property
    def planar_configuration(self) -> int:
        """PlanarConfiguration (tag 284): 1 contiguous, 2 separate planes (default 1)."""
        value = self.get_int(284, 1)
        if self.samples_per_pixel == 1:
            return 1
        if value not in (1, 2):
            self.context.problem(f"{self.where}: PlanarConfiguration {value} is invalid; 1 (contig) is assumed")
            return 1
        return value

    @cached_property
    def is_separate(self) -> bool:
        """True when samples are stored in separate planes (PlanarConfiguration 2)."""
        return self.planar_configuration == PlanarConfiguration.SEPARATE

    @cached_property
    def predictor(self) -> int:
        """Predictor (tag 317): 1 none, 2 horizontal, 3 floating point (default 1)."""
        return self.get_int(317, 1)

    @cached_property
    def fill_order(self) -> int:
        """FillOrder (tag 266): 1 most significant bit first, 2 least significant first (default 1)."""
        return self.get_int(266, 1)

    @cached_property
    def is_tiled(self) -> bool:
        """True when the image is stored in tiles (TileWidth present), False for strips."""
        return 322 in self.entries.tags

    @cached_property
    def width(self) -> int:
        """ImageWidth (tag 256) in pixels."""
        value = self.get_int(256)
        if value is None:
            raise TiffFormatError(f"{self.where}: ImageWidth (256) is missing")
        return value

    @cached_property
    def length(self) -> int:
        """ImageLength (tag 257) in pixels (the image's height)."""
        value = self.get_int(257)
        if value is None:
            raise TiffFormatError(f"{self.where}: ImageLength (257) is missing")
        return value

    @cached_property
    def depth(self) -> int:
        """ImageDepth (tag 32997, SGI volumes) in pixels, default 1."""
        return self.get_int(32997, 1)

    @cached_property
    def rows_per_strip(self) -> int:
        """RowsPerStrip (tag 278) clamped to the image length (default: the whole image in one strip)."""
        tag = self.entries.tags.get(278)
        if tag is None or tag.count != 1:
            return self.length
        value = self.get_int(278)
        if value is None:  # a non-numeric value, already reported
            return self.length
        if value <= 0:  # 0, or negative from a signed field type
            self.context.problem(f"{self.where}: RowsPerStrip is {value}; one strip is assumed")
            return self.length
        return min(value, self.length)

    @cached_property
    def tile_shape(self) -> tuple[int, int] | None:
        """(TileLength, TileWidth), or None for strips."""
        if not self.is_tiled:
            return None
        tw, tl = self.get_int(322), self.get_int(323)
        if tl is None:
            raise TiffFormatError(f"{self.where}: TileWidth is present but TileLength (323) is missing")
        if tw is None:
            raise TiffFormatError(f"{self.where}: TileWidth (322) has no usable value")
        if tw <= 0 or tl <= 0:
            raise TiffFormatError(f"{self.where}: tile size {tl} x {tw} is invalid")
        if tw % 16 or tl % 16:
            # TIFF 6.0 requires multiples of 16; libtiff reads such files with a warning, so do we
            warnings.warn(f"{self.where}: tile size {tl} x {tw} is not a multiple of 16 (nonstandard, read anyway)",
                          TiffFormatWarning, stacklevel=2)
        return tl, tw

    @cached_property
    def subsampling(self) -> tuple[int, int] | None:
        """YCbCrSubSampling (tag 530) as (horizontal, vertical) for YCbCr images (default (2, 2)), else None."""
        if self.photometric != 6:
            return None
        values = self.get_ints(530)
        return (values[0], values[1]) if values and len(values) >= 2 else (2, 2)

    @cached_property
    def extra_samples(self) -> tuple[int, ...]:
        """ExtraSamples (tag 338) codes, one per extra sample (empty tuple when absent)."""
        return self.get_ints(338) or ()

    @cached_property
    def new_subfile_type(self) -> int:
        """NewSubfileType (tag 254) flags (reduced resolution 1, page 2, mask 4), default 0; the old SubfileType (255) values 2 and 3 map to 1 and 2."""
        value = self.get_int(254, 0)
        if value == 0:
            old = self.get_int(255)
            if old == 2:
                return 1
            if old == 3:
                return 2
        return value

    @property
    def description(self) -> str | None:
        """ImageDescription (tag 270) as text, or None."""
        value = self.get(270)
        return value if isinstance(value, str) else None

    @cached_property
    def jpegtables(self) -> bytes | None:
        """JPEGTables (tag 347) bytes shared by the JPEG segments, or None."""
        tag = self.entries.tags.get(347)
        if tag is None:
            return None
        value = tag.value
        if isinstance(value, bytes):
            return value
        if isinstance(value, tuple) and all(isinstance(v, int) and 0 <= v < 256 for v in value):
            return bytes(value)
        if isinstance(value, tuple) or tag.count > 1:
            self.context.problem(f"{self.where}: JPEGTables (347) has field type {tag.type}, not bytes; it is ignored")
        return None

    @cached_property
    def nodata(self) -> Any:
        """GDAL_NODATA (42113) as the image's dtype, or None."""
        value = self.get(42113)
        if not isinstance(value, str) or self.dtype is None:
            return None
        try:
            kind = self.dtype.kind
            text = value.strip().replace(",", ".")
            number = float(text) if kind in "fc" else int(float(text))
            if kind not in "fc" and not numpy.can_cast(numpy.min_scalar_type(number), self.dtype):
                return None
            return self.dtype.type(number)
        except (ValueError, OverflowError):
            return None

    @cached_property
    def dtype(self) -> numpy.dtype:
        """The numpy dtype of decoded samples (as tifffile's TiffPage.dtype)."""
        dtype = sample_dtype(self.sample_format, self.bits_per_sample)
        if dtype is None:
            raise UnsupportedFeatureError(
                f"{self.where}: no numpy dtype for SampleFormat {self.sample_format} with "
                f"{self.bits_per_sample} bits per sample")
        return dtype

    @cached_property
    def shaped(self) -> tuple[int, int, int, int, int]:
        """(separate samples, depth, length, width, contiguous samples)."""
        spp = self.samples_per_pixel
        if self.photometric == 2 or spp > 1:
            if self.is_separate:
                return (spp, self.depth, self.length, self.width, 1)
            return (1, self.depth, self.length, self.width, spp)
        return (1, self.depth, self.length, self.width, 1)

    @cached_property
    def shape(self) -> tuple[int, ...]:
        """The image's shape, identical to tifffile's TiffPage.shape:
        (Y, X), (Y, X, S), (S, Y, X) for separate planes, with Z before Y for volumes."""
        spp = self.samples_per_pixel
        d, h, w = self.depth, self.length, self.width
        zyx = (h, w) if d == 1 else (d, h, w)
        if self.photometric == 2 or spp > 1:
            return (spp, *zyx) if self.is_separate else (*zyx, spp)
        return zyx

    @cached_property
    def grid(self) -> SegmentGrid:
        """The :class:`~tiffio.format.grid.SegmentGrid`: segment counts, shapes and index arithmetic of this image."""
        limits = self.context.limits
        for name, value in (("ImageWidth", self.width), ("ImageLength", self.length), ("ImageDepth", self.depth)):
            if value < 0:
                raise TiffFormatError(f"{self.where}: {name} is {value}")
            limits.check("max_dimension", value, f"{self.where}: {name}")
        if self.is_tiled:
            tl, tw = self.tile_shape  # type: ignore[misc]
            td = self.get_int(32998, 1)
            if td <= 0:
                raise TiffFormatError(f"{self.where}: TileDepth is {td}")
            segment = (td, tl, tw)
        else:
            segment = (1, self.rows_per_strip, self.width)
        grid = SegmentGrid((self.depth, self.length, self.width), segment, self.samples_per_pixel,
                           self.is_separate, self.is_tiled)
        return grid

    @property
    def segment_count(self) -> int:
        """Number of tiles or strips, all planes."""
        return self.grid.count
    @cached_property
    def spec(self) -> SegmentSpec:
        """The frozen decoding spec of this IFD's segments (picklable)."""
        compression = self.compression
        dtype = self.dtype
        photometric = self.photometric if self.photometric is not None else 1
        if self.subsampling not in (None, (1, 1)) and (compression not in JPEG_COMPRESSIONS or self.is_separate):
            raise UnsupportedFeatureError(f"{self.where}: YCbCr with subsampling {self.subsampling} is only "
                                          "decoded in JPEG-compressed images")
        colorspace, outcolorspace = self._jpeg_colorspaces if compression in JPEG_COMPRESSIONS else (None, None)
        predictor = self.predictor
        if compression in JPEG_COMPRESSIONS or compression in _codecs.IMAGE_DECODERS:  # JPEG: no codec table
            predictor = 1  # predictors do not apply to image codecs
        spec = SegmentSpec(
            compression=int(compression), dtype=dtype, bits=self.bits_per_sample, sampleformat=self.sample_format,
            byteorder=self._tiff.byteorder, predictor=predictor, fillorder=self.fill_order,
            samples=self.grid.segment_samples, tiled=self.is_tiled, photometric=photometric,
            jpegtables=self.jpegtables if compression in JPEG_COMPRESSIONS else None,
            jpeg_colorspace=colorspace, jpeg_outcolorspace=outcolorspace,
            t4options=self.get_int(292, 0) or 0,
            webp_alpha=compression in (Compression.WEBP, Compression.WEBP_OLD) and self.samples_per_pixel == 4,
            strict=self.context.strict, where=self.where, segment_rows=self.grid.segment[1],
        )
        if self.grid.count:  # an image with a width, length or depth of 0 has no segments
            d, h, w, s = self.grid.stored_shape(0)
            self.context.limits.check("max_segment_bytes", d * h * w * s * dtype.itemsize,
                                   f"{self.where}: decoded size of one segment")
        spec.check_supported()  # after the Limits: a bound the caller can raise is named first
        return spec

    @cached_property
    def _jpeg_colorspaces(self) -> tuple[Any, Any]:
        """(colorspace, outcolorspace) of the JPEG decoder for this IFD's streams: None lets the
        decoder read the stream's markers; "auto-rgb" (RGB images) is RGB unless the stream
        starts with JFIF, decided per stream (tiffio.format.jpeg.starts_with_jfif)."""
        photometric = self.photometric if self.photometric is not None else 1
        colorspace: Any = None
        outcolorspace: Any = None
        if not self.extra_samples:
            if photometric == 6:
                outcolorspace = 2
            elif photometric == 2:
                colorspace, outcolorspace = "auto-rgb", 2
            elif photometric == 5:
                outcolorspace = 4
            elif photometric > 3:
                outcolorspace = _photometric_name(photometric)
        if self.is_separate:
            # each plane is a one-component stream (spec-notes/jpeg.md)
            colorspace, outcolorspace = None, 1
        return colorspace, outcolorspace

    @cached_property
    def _rgb_jpeg_specs(self) -> dict[bool, SegmentSpec]:
        """The two decoding variants of an RGB JPEG IFD, keyed by "the stream is JFIF"."""
        return {True: replace(self.spec, jpeg_colorspace=None), False: replace(self.spec, jpeg_colorspace=2)}

    def segment_valid_shape(self, index: int) -> tuple[int, ...]:
        """Shape of the part of segment ``index`` inside the image (same axes as read_segment)."""
        vd, vh, vw = self.grid.valid_shape(index)
        return self._segment_axes((vd, vh, vw, self.grid.segment_samples))

    def _segment_axes(self, dhws: tuple[int, int, int, int]) -> tuple[int, ...]:
        d, h, w, s = dhws
        shape: tuple[int, ...] = (h, w)
        if self.depth > 1 or d > 1:  # d > 1: TileDepth larger than a flat image
            shape = (d, h, w)
        if not self.is_separate and (self.photometric == 2 or self.samples_per_pixel > 1):
            shape = (*shape, s)
        return shape

    def _fill_value(self, fill: Any) -> Any:
        """The fill of sparse segments and of parts outside the image: ``fill`` checked against
        the dtype (TiffValueError when it does not fit), else GDAL_NODATA, else 0."""
        if fill is not None:
            return require_fill(fill, self.dtype, self.where)
        nodata = self.nodata
        return 0 if nodata is None else nodata


def _photometric_name(code: int) -> str | None:
    try:
        return Photometric(code).name
    except ValueError:
        return None

