"""Encode one tile with no file handle: the writer's frozen, picklable encode spec.

:class:`EncodeSpec` describes how every tile of one image is stored (the mirror of
:class:`tiffio.codecs.decode.SegmentSpec`). ``encode_segment(spec, array)`` turns a tile's
pixels (full size, or cropped at the image edge) into the bytes to store. It is CPU
only, so it runs in threads or in other processes (the spec pickles).

JPEG is written the way libtiff writes it (spec-notes/jpeg.md): the quantization and
Huffman tables live once in the IFD's JPEGTables and every tile is an *abbreviated*
stream (SOI, APPn, SOF, SOS, scan, EOI) without DQT/DHT. RGB input is stored as YCbCr
(PhotometricInterpretation 6) with 2 x 2 subsampling unless RGB is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy

from ..enums import Compression as C
from ..errors import TiffTypeError, TiffValueError, UnsupportedFeatureError
from ..format.jpeg import scan_offset
from ..format.jpeg import split_tables as split_jpeg_tables
from . import call_codec, compression_name, require_encoder
from .predictors import apply_predictor

__all__ = ["EncodeSpec", "encode_segment", "encode_segment_parts", "split_jpeg_tables", "COMPRESSION_NAMES",
           "parse_compression"]

#: names accepted for ``compression=`` (case-insensitive)
COMPRESSION_NAMES: dict[str, int] = {
    "none": C.NONE, "raw": C.NONE, "lzw": C.LZW, "deflate": C.ADOBE_DEFLATE, "zlib": C.ADOBE_DEFLATE,
    "adobe_deflate": C.ADOBE_DEFLATE, "packbits": C.PACKBITS, "lzma": C.LZMA, "zstd": C.ZSTD,
    "zstandard": C.ZSTD, "webp": C.WEBP, "jpeg": C.JPEG, "jpeg2000": C.JPEG2000, "jpeg2k": C.JPEG2000,
    "jpegxl": C.JPEGXL, "jxl": C.JPEGXL, "lerc": C.LERC, "png": C.PNG,
}

#: compressions the writer supports (when imagecodecs can encode them)
WRITABLE = frozenset({C.NONE, C.LZW, C.ADOBE_DEFLATE, C.PACKBITS, C.LZMA, C.ZSTD, C.WEBP, C.JPEG,
                      C.JPEG2000, C.JPEGXL, C.LERC, C.PNG})
#: compressions whose stored bytes decode straight to pixels (no predictor)
IMAGE_CODECS = frozenset({C.WEBP, C.JPEG, C.JPEG2000, C.JPEGXL, C.PNG})


def parse_compression(value: Any) -> int:
    if value is None:
        return int(C.NONE)
    if isinstance(value, str):
        code = COMPRESSION_NAMES.get(value.lower())
        if code is None:
            raise TiffValueError(f"unknown compression {value!r}; known: {', '.join(sorted(COMPRESSION_NAMES))}")
        return int(code)
    if isinstance(value, (int, numpy.integer)) and not isinstance(value, bool):
        return int(value)
    raise TiffTypeError(f"compression must be a name, a code or None, not {type(value).__name__}")


_LOSSY = frozenset({C.JPEG, C.WEBP, C.JPEG2000, C.JPEGXL, C.LERC})
_SUBSAMPLING_NAMES = {(1, 1): "444", (2, 1): "422", (2, 2): "420", (4, 1): "411"}


@dataclass(frozen=True)
class EncodeSpec:
    """Everything needed to encode the tiles of one image (frozen, picklable)."""

    compression: int
    dtype: numpy.dtype              # native dtype of the samples
    tile: tuple[int, int]           # (TileLength, TileWidth)
    samples: int                    # samples per pixel inside one tile (1 for separate planes)
    byteorder: str = "<"
    predictor: int = 1
    level: Any = None               # codec level (JPEG quality, Deflate level, ...)
    photometric: int = 1
    jpeg_subsampling: tuple[int, int] = (1, 1)
    jpegtables: bytes | None = field(default=None, compare=False)
    strips: bool = False            # strips: the last one is stored with its rows only (not padded)

    @property
    def tile_shape(self) -> tuple[int, ...]:
        th, tw = self.tile
        return (th, tw, self.samples) if self.samples > 1 else (th, tw)

    # -- helpers -----------------------------------------------------------------------------
    def full_tile(self, array: Any) -> numpy.ndarray:
        arr = numpy.asarray(array)
        if arr.dtype.newbyteorder("=") != self.dtype:
            raise TiffTypeError(f"tile dtype {arr.dtype} does not match the image's {self.dtype}")
        if not arr.dtype.isnative:
            arr = arr.astype(self.dtype)
        th, tw = self.tile
        s = self.samples
        if s == 1 and arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        expected_ndim = 3 if s > 1 else 2
        if arr.ndim != expected_ndim or (s > 1 and arr.shape[2] != s) or arr.shape[0] > th or arr.shape[1] > tw \
                or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise TiffValueError(f"tile shape {arr.shape} does not fit the tile shape {self.tile_shape}")
        if self.strips:
            th = arr.shape[0]
        if arr.shape[:2] != (th, tw):
            pad = [(0, th - arr.shape[0]), (0, tw - arr.shape[1])] + [(0, 0)] * (arr.ndim - 2)
            # lossy codecs: repeat the edge so that no block mixes image and padding (JPEG's chroma
            # upsampling would bleed zeros into the image); lossless codecs: zeros
            arr = numpy.pad(arr, pad, mode="edge" if self.compression in _LOSSY else "constant")
        return numpy.ascontiguousarray(arr)


def encode_segment(spec: EncodeSpec, array: Any) -> bytes:
    """Encode one tile (full size, or cropped at the image edge: padded with 0)."""
    parts = encode_segment_parts(spec, array)
    return bytes(parts[0]) if len(parts) == 1 else b"".join(parts)


def encode_segment_parts(spec: EncodeSpec, array: Any) -> tuple[Any, ...]:
    """Like :func:`encode_segment`, but the stored bytes as a tuple of buffers (bytes or
    1-D uint8 memoryviews) to be written one after the other: lets the writer store a tile
    with one vectored write and no joining copy (a JPEG tile is the cached abbreviated
    header + a view of the encoder's scan; an uncompressed tile is a view of the array)."""
    arr = spec.full_tile(array)
    code = spec.compression
    where = f"encoding a {compression_name(code)} tile"
    if code == C.JPEG:
        return _encode_jpeg(spec, arr, where)
    if code in IMAGE_CODECS:
        func = require_encoder(code)
        if code == C.WEBP:
            level = spec.level
            lossless = level is None or (isinstance(level, (int, float)) and level >= 100)
            return (bytes(call_codec(func, where, arr, level=None if lossless else level, lossless=lossless)),)
        if code == C.JPEG2000:
            return (bytes(call_codec(func, where, arr, level=spec.level, codecformat="J2K",
                                     reversible=spec.level is None)),)
        if code == C.JPEGXL:
            return (bytes(call_codec(func, where, arr, level=spec.level, lossless=spec.level is None)),)
        return (bytes(call_codec(func, where, arr, level=spec.level)),)
    if code == C.LERC:
        func = require_encoder(code)
        data = arr.reshape(arr.shape[0], arr.shape[1], spec.samples) if spec.samples > 1 else arr
        return (bytes(call_codec(func, where, data, level=spec.level or 0.0, version=4, planar=False)),)
    # byte codecs: predictor on native values, then the file's byte order (contiguous arrays are
    # handed to the codecs as buffers: no copy into a bytes object first)
    if spec.predictor != 1:
        arr = apply_predictor(spec.predictor, arr.reshape(1, arr.shape[0], arr.shape[1], spec.samples))
        if spec.predictor == 3:
            raw = numpy.ascontiguousarray(arr)  # the shuffle is byte-order independent
        else:
            raw = _to_file_order(spec, arr)
    else:
        raw = _to_file_order(spec, arr)
    if code == C.NONE:
        return (memoryview(raw.data).cast("B"),)
    func = require_encoder(code)
    if code == C.PACKBITS:  # rows are packed separately
        row = spec.tile[1] * spec.samples * spec.dtype.itemsize
        rows = raw.reshape(-1).view(numpy.uint8).reshape(-1, row)
        return (bytes(call_codec(func, where, rows, axis=-1)),)
    if code in (C.LZW,):
        return (bytes(call_codec(func, where, raw)),)
    return (bytes(call_codec(func, where, raw, level=spec.level)),)


def _to_file_order(spec: EncodeSpec, arr: numpy.ndarray) -> numpy.ndarray:
    """The samples in the file's byte order, C-contiguous (the input itself when it already is)."""
    if arr.dtype.itemsize > 1 and spec.byteorder != ("<" if numpy.little_endian else ">"):
        order: Literal["<", ">"] = ">" if spec.byteorder == ">" else "<"
        return numpy.ascontiguousarray(arr.astype(arr.dtype.newbyteorder(order)))
    return numpy.ascontiguousarray(arr)


# --- JPEG -------------------------------------------------------------------------------------

def _jpeg_full(spec: EncodeSpec, arr: numpy.ndarray, where: str) -> bytes:
    kwargs: dict[str, Any] = dict(level=75 if spec.level is None else int(spec.level), optimize=False)
    if spec.samples == 3:
        if spec.photometric == 6:
            kwargs.update(colorspace="RGB", outcolorspace="YCBCR",
                          subsampling=_SUBSAMPLING_NAMES[spec.jpeg_subsampling])
        else:
            kwargs.update(colorspace="RGB", outcolorspace="RGB")
    func = require_encoder(C.JPEG)
    return bytes(call_codec(func, where, arr, **kwargs))


def make_jpegtables(spec: EncodeSpec) -> bytes:
    """The JPEGTables of ``spec`` (encode a blank tile and keep its tables)."""
    blank = numpy.zeros(spec.tile_shape, spec.dtype)
    tables, _ = split_jpeg_tables(_jpeg_full(spec, blank, "making JPEGTables"))
    return tables


#: per encode spec: (header of a complete stream up to SOS, the abbreviated header that replaces it)
_JPEG_HEADERS: dict[tuple[EncodeSpec, bytes | None], tuple[bytes, bytes]] = {}


def _encode_jpeg(spec: EncodeSpec, arr: numpy.ndarray, where: str) -> tuple[Any, ...]:
    if spec.dtype != numpy.uint8:
        raise UnsupportedFeatureError(f"JPEG tiles of {spec.dtype} samples (uint8 only)")
    stream = _jpeg_full(spec, arr, where)
    # Every full-size tile of one spec gets the same header (SOI, APP0, DQT, SOF, DHT) from the
    # encoder: after the first tile, checking that the stream starts with it is one memcmp, and
    # the tile is the abbreviated header + the scan, with no marker walk in Python.
    key = (spec, spec.jpegtables)
    cached = _JPEG_HEADERS.get(key)
    if cached is not None:
        full, short = cached
        k = len(full)
        if stream.startswith(full) and stream[k: k + 2] == b"\xff\xda":
            return short, memoryview(stream)[k:]
    tables, abbreviated = split_jpeg_tables(stream)
    if spec.jpegtables is not None and tables != spec.jpegtables:
        # cannot happen with fixed quality and standard Huffman tables; keep the tile decodable
        return (stream,)
    sos = scan_offset(stream)
    if sos is not None and spec.jpegtables is not None and len(_JPEG_HEADERS) < 256:
        short = abbreviated[: len(abbreviated) - (len(stream) - sos)]
        if short + stream[sos:] == abbreviated:
            _JPEG_HEADERS[key] = (stream[:sos], short)
    return (abbreviated,)
