"""Decode one tile or strip with no file handle (fetch and decode are separate: ARCHITECTURE.md).

A :class:`SegmentSpec` is a frozen, picklable description of how an IFD's
segments are stored. ``decode_segment(spec, data, shape)`` turns the stored
bytes into a native-byte-order array shaped (depth, length, width, samples).
The result is what libtiff hands to a "raw" reader and what tifffile's
``TiffPage.asarray`` returns: no colour conversion except for YCbCr JPEG, which
the JPEG decoder converts to RGB (spec-notes/jpeg.md), MinIsWhite not inverted,
palettes not applied (spec-notes/samples.md).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal, cast

import imagecodecs
import numpy

from .. import codecs as _codecs  # _codecs.BYTE_DECODERS / _codecs.IMAGE_DECODERS: built on first use
from ..alloc import allocate, require_fill
from ..enums import Compression as C
from ..errors import CorruptSegmentError, TiffFormatWarning, UnsupportedFeatureError
from . import (
    CCITT_COMPRESSIONS,
    CODEC_SHAPE_LIMITS,
    JPEG_COMPRESSIONS,
    call_codec,
    compression_name,
    image_stream_shape,
    jpeg_frame,
    png_stream_problem,
    require_byte_decoder,
)
from .predictors import undo_predictor

__all__ = ["SegmentSpec", "decode_segment", "sample_dtype"]


def sample_dtype(sampleformat: int, bits: int) -> numpy.dtype | None:
    """The numpy dtype samples of this SampleFormat and BitsPerSample decode to
    (the same mapping tifffile uses, so that shapes and dtypes match), or None."""
    if sampleformat in (1, 4):  # UINT, VOID treated as UINT
        if bits == 1:
            return numpy.dtype(bool)
        for limit, char in ((8, "u1"), (16, "u2"), (32, "u4"), (64, "u8")):
            if bits <= limit and (bits < 33 or bits == 64):
                return numpy.dtype(char)
        return None
    if sampleformat == 2:
        signed: dict[int, numpy.dtype] = {8: numpy.dtype("i1"), 16: numpy.dtype("i2"), 24: numpy.dtype("i4"),
                                          32: numpy.dtype("i4"), 64: numpy.dtype("i8")}
        return signed.get(bits)
    if sampleformat == 3:
        floats: dict[int, numpy.dtype] = {16: numpy.dtype("f2"), 24: numpy.dtype("f4"), 32: numpy.dtype("f4"),
                                          64: numpy.dtype("f8")}
        return floats.get(bits)
    if sampleformat == 6:
        complex_ints: dict[int, numpy.dtype] = {64: numpy.dtype("c8"), 128: numpy.dtype("c16")}
        return complex_ints.get(bits)
    if sampleformat == 5:
        complex_floats: dict[int, numpy.dtype] = {32: numpy.dtype("c8"), 64: numpy.dtype("c16")}
        return complex_floats.get(bits)
    return None


@dataclass(frozen=True)
class SegmentSpec:
    """Everything needed to decode the segments of one IFD."""

    compression: int
    dtype: numpy.dtype            # native dtype of decoded samples
    bits: int                     # BitsPerSample
    sampleformat: int = 1
    byteorder: str = "<"          # the file's byte order
    predictor: int = 1
    fillorder: int = 1
    samples: int = 1              # samples per pixel inside one segment
    tiled: bool = True
    photometric: int = 1
    jpegtables: bytes | None = None
    jpeg_colorspace: Any = None
    jpeg_outcolorspace: Any = None
    t4options: int = 0
    webp_alpha: bool = False
    strict: bool = False          # True: a short segment is an error instead of a warning
    where: str = "IFD"
    #: nominal rows of one segment (TileLength, RowsPerStrip); bounds what an image codec may
    #: decode (a last strip may be stored at full height); 0: the shape passed to decode_segment
    segment_rows: int = 0

    def check_supported(self) -> None:
        """Raise UnsupportedFeatureError now if segments of this spec cannot be decoded."""
        code = self.compression
        # the constant sets first: the codec tables load every imagecodecs extension (~10 ms)
        if code != 1 and code not in JPEG_COMPRESSIONS and code not in CCITT_COMPRESSIONS \
                and code not in _codecs.BYTE_DECODERS and code not in _codecs.IMAGE_DECODERS:
            raise UnsupportedFeatureError(f"{self.where}: compression {compression_name(code)} is not supported")
        if self.predictor not in (1, 2, 3) and code not in JPEG_COMPRESSIONS and code not in _codecs.IMAGE_DECODERS:
            raise UnsupportedFeatureError(f"{self.where}: predictor {self.predictor} is not supported")
        self._check_codec_shape()

    def _check_codec_shape(self) -> None:
        """The codec's own limits on samples and bits (codecs.CODEC_SHAPE_LIMITS), before any
        allocation: a file declaring 5048 samples per pixel of JPEG cannot hold a single valid
        segment, so its declared output is never allocated (fixtures/malformed/codec_shape_impossible).
        Samples the format allows but the decoder library does not are UnsupportedFeatureError."""
        limits = CODEC_SHAPE_LIMITS.get(self.compression)
        if limits is None:
            return
        samples, bits = self.samples, self.bits
        what = f"{self.where}: {compression_name(self.compression)} segments of {samples} samples x {bits} bits"
        low, high = limits.format_samples
        if not low <= samples <= high:
            raise CorruptSegmentError(f"{what}: a {limits.name} stream holds {low}-{high} samples per pixel; "
                                      "no segment can be decoded")
        low, high = limits.format_bits
        if not low <= bits <= high or (limits.bit_depths is not None and bits not in limits.bit_depths):
            depths = sorted(limits.bit_depths) if limits.bit_depths is not None else f"{low}-{high}"
            raise CorruptSegmentError(f"{what}: a {limits.name} stream holds {depths} bits per sample; "
                                      "no segment can be decoded")
        if limits.decoder_samples is not None:
            low, high = limits.decoder_samples
            if not low <= samples <= high:
                raise UnsupportedFeatureError(f"{what}: the {limits.name} decoder handles {low}-{high} "
                                              "samples per pixel")


def _unpack(spec: SegmentSpec, raw: Any, runlen: int) -> numpy.ndarray:
    """Stored (uncompressed) bytes -> flat array of samples (spec-notes/samples.md "Bit packing and row padding")."""
    bits = spec.bits
    bo: Literal['<', '>'] = '>' if spec.byteorder == '>' else '<'
    if isinstance(raw, numpy.ndarray):  # LERC decodes to an array: use its bytes
        raw = numpy.ascontiguousarray(raw).reshape(-1).view(numpy.uint8)
    if spec.sampleformat == 5:  # complex integers: pairs of signed ints -> complex floats
        itype = numpy.dtype(f"{bo}i{bits // 16}")
        n = len(raw) // itype.itemsize
        ints = numpy.frombuffer(raw, itype, n - n % 2)
        return ints.astype(f"f{spec.dtype.itemsize // 2}").view(spec.dtype)
    if bits in (8, 16, 32, 64, 128):
        if spec.predictor == 3:
            dtype = spec.dtype  # the floating-point predictor's output is native (spec-notes/predictors.md)
        else:
            dtype = spec.dtype.newbyteorder(bo) if spec.dtype.itemsize > 1 else spec.dtype
        itemsize = dtype.itemsize
        return numpy.frombuffer(raw, dtype, len(raw) // itemsize)
    if bits == 24 and spec.dtype.kind == "f":
        if spec.predictor != 1:
            raise UnsupportedFeatureError(f"{spec.where}: predictor {spec.predictor} on float24 samples")
        return imagecodecs.float24_decode(bytes(raw[: len(raw) - len(raw) % 3]), byteorder=bo)
    if spec.predictor == 3:
        raise UnsupportedFeatureError(f"{spec.where}: predictor 3 on {bits}-bit samples")
    if spec.dtype.kind == "i":
        # signed packed samples (GDAL's Int24): unpack MSB-first like unsigned ones, then sign-extend
        unsigned = imagecodecs.packints_decode(raw, numpy.dtype(f"u{spec.dtype.itemsize}"), bits, runlen=runlen)
        sign = 1 << (bits - 1)
        return ((unsigned.astype(spec.dtype) ^ sign) - sign).astype(spec.dtype)
    return imagecodecs.packints_decode(raw, spec.dtype if spec.dtype != bool else numpy.uint8, bits, runlen=runlen)


def _fit(spec: SegmentSpec, arr: numpy.ndarray, shape: tuple[int, int, int, int],
         valid: tuple[int, int, int] | None, where: str) -> numpy.ndarray:
    """Reshape decoded samples to ``shape``, tolerating what real writers do:
    extra trailing data, and JPEG/PNG edge tiles stored cropped to the image."""
    size = shape[0] * shape[1] * shape[2] * shape[3]
    if arr.ndim == 1 and arr.size > size:
        arr = arr[:size]
    if arr.size == size:
        return arr.reshape(shape)
    d, h, w, s = shape
    if spec.tiled and valid is not None:
        vd, vh, vw = valid
        for cropped in ((vd, vh, vw, s), (vd, vh, w, s)):
            if arr.size == cropped[0] * cropped[1] * cropped[2] * cropped[3]:
                full = allocate(shape, arr.dtype, where, zeros=True)
                full[: cropped[0], : cropped[1], : cropped[2]] = arr.reshape(cropped)
                return full
    row = d * w * s
    if not spec.tiled and row and arr.size > size and arr.size % row == 0:
        return arr.reshape(d, -1, w, s)[:, :h]
    message = f"{where}: decoded {arr.size} samples, expected {size} for a segment of shape {shape}"
    if spec.strict or arr.size > size:
        raise CorruptSegmentError(message)
    warnings.warn(message + "; the rest is filled with 0", TiffFormatWarning, stacklevel=4)
    full = allocate((size,), arr.dtype, where, zeros=True)
    full[: arr.size] = arr.reshape(-1)
    return full.reshape(shape)


def _decode_jpeg_exact(spec: SegmentSpec, data: BytesLike, shape: tuple[int, int, int, int],
                       out: numpy.ndarray | None) -> numpy.ndarray | None:
    """The common case: an 8-bit JPEG stream of exactly the segment's size, decoded straight
    into an array of that shape. imagecodecs refuses a stream of another size before it
    allocates anything, so no header check is needed (no decompression bomb can pass).
    Returns None when the stream does not fit; the general path then handles it."""
    _d, h, w, s = shape
    if spec.dtype != numpy.uint8 or jpeg_frame(data) != (8, h, w, s):
        return None  # never hand imagecodecs an out= it will refuse: that leaks (codecs.jpeg_frame)
    target = out if out is not None and out.flags.c_contiguous else allocate(shape, spec.dtype, spec.where)
    try:
        imagecodecs.jpeg8_decode(cast(bytes, data), out=target.reshape((h, w, s) if s > 1 else (h, w)),
                                 tables=spec.jpegtables, colorspace=spec.jpeg_colorspace,
                                 outcolorspace=spec.jpeg_outcolorspace, shape=(h, w))
    except Exception:
        return None
    if out is not None and target is not out:
        out[...] = target
        return out
    return target


def _decode_jpeg(spec: SegmentSpec, data: BytesLike, shape: tuple[int, int, int, int],
                 out: numpy.ndarray | None, where: str) -> numpy.ndarray:
    d, h, w, s = shape
    kwargs = dict(tables=spec.jpegtables, colorspace=spec.jpeg_colorspace,
                  outcolorspace=spec.jpeg_outcolorspace, shape=(h, w))
    if spec.bits <= 8 and d == 1:
        # decode straight into the destination when its shape is the stream's: this also
        # bounds the allocation by the declared tile size (no decompression bombs)
        target = None
        if out is not None and out.flags.c_contiguous and out.dtype == numpy.uint8 \
                and jpeg_frame(data) == (8, h, w, s):
            target = out.reshape((h, w, s) if s > 1 else (h, w))
        try:
            return imagecodecs.jpeg8_decode(cast(bytes, data), out=target, **kwargs)
        except Exception:
            pass  # cropped edge tiles, lossless or 12-bit streams: the general path below
    return call_codec(imagecodecs.jpeg_decode, where, data, bitspersample=spec.bits, **kwargs)


def _check_stream_shape(spec: SegmentSpec, data: BytesLike, shape: tuple[int, int, int, int], where: str) -> None:
    """Refuse an image-codec stream whose header declares more pixels than the segment holds,
    before the codec allocates them (decompression bombs; fixtures/malformed/image_stream_too_large)."""
    declared = image_stream_shape(data)
    if declared is None:
        return
    d, h, w, _s = shape
    rows = d * max(h, spec.segment_rows)
    if declared[0] > rows or declared[1] > w:
        raise CorruptSegmentError(
            f"{where}: the {compression_name(spec.compression)} stream declares {declared[0]} x {declared[1]} "
            f"pixels, more than the segment's {rows} x {w}; not decoded")


BytesLike = bytes | bytearray | memoryview


def _reverse_bit_order(data: BytesLike) -> bytes:
    """FillOrder 2: the bits of every byte reversed (a new object; the input may be a reused buffer)."""
    return bytes(imagecodecs.bitorder_decode(bytes(data) if isinstance(data, memoryview) else data))


def decode_segment(spec: SegmentSpec, data: BytesLike | None, shape: tuple[int, int, int, int], *,
                   valid: tuple[int, int, int] | None = None, out: numpy.ndarray | None = None,
                   fill: Any = 0, index: int | None = None) -> numpy.ndarray:
    """Decode one segment into a (depth, length, width, samples) native array.

    ``shape`` is the stored shape (grid.SegmentGrid.stored_shape); ``valid`` the part
    inside the image (used to accept edge tiles stored cropped). ``data`` None means
    a sparse segment, returned filled with ``fill``. With ``out`` (an array of
    ``shape`` and ``spec.dtype``), the result is written there and returned. A segment of
    an image with a width, length or depth of 0 holds no samples: it is returned empty,
    whatever its bytes (nothing is decoded).
    """
    where = f"{spec.where}: segment {index}" if index is not None else spec.where
    if 0 in shape:
        return out if out is not None else numpy.empty(shape, spec.dtype)
    if data is None:
        if type(fill) is not spec.dtype.type:  # already checked by the IFD's reads
            fill = require_fill(fill, spec.dtype, where)
        if out is None:
            return allocate(shape, spec.dtype, where, fill=fill)
        out[...] = fill
        return out
    d, h, w, s = shape
    code = spec.compression
    if code == C.JPEG and spec.bits <= 8 and d == 1:
        arr = _decode_jpeg_exact(spec, data, shape, out)
        if arr is not None:
            return arr
    if (code in JPEG_COMPRESSIONS or code == C.LERC or code in _codecs.IMAGE_DECODERS) and code != C.OJPEG:
        _check_stream_shape(spec, data, shape, where)
    if code in JPEG_COMPRESSIONS:
        arr = _decode_jpeg(spec, data, shape, out, where)
        if out is not None and arr is not None and numpy.shares_memory(arr, out):
            return out
    elif code in _codecs.IMAGE_DECODERS:
        if code == C.PNG:
            problem = png_stream_problem(data, require_end=spec.strict)
            if problem:
                raise CorruptSegmentError(f"{where}: {problem}")
        if code in (C.WEBP, C.WEBP_OLD) and spec.webp_alpha:
            arr = call_codec(_codecs.IMAGE_DECODERS[code], where, data, hasalpha=True)
        else:
            arr = call_codec(_codecs.IMAGE_DECODERS[code], where, data)
    elif code in CCITT_COMPRESSIONS:
        if spec.fillorder == 2:
            data = _reverse_bit_order(data)
        rows = d * h
        if code == C.CCITT_T4:
            arr = call_codec(imagecodecs.ccittfax3_decode, where, data, rows, w, t4options=spec.t4options)
        elif code == C.CCITT_T6:
            arr = call_codec(imagecodecs.ccittfax4_decode, where, data, rows, w)
        else:
            arr = call_codec(imagecodecs.ccittrle_decode, where, data, rows, w)
    else:
        if spec.fillorder == 2:
            data = _reverse_bit_order(data)
        if code == 1:
            raw = data
        else:
            codec = require_byte_decoder(code, where)
            nbytes = d * h * w * s * max(spec.dtype.itemsize, 1)
            raw = call_codec(codec.decode, where, data, out=nbytes) if codec.sized else call_codec(codec.decode, where, data)
        try:
            arr = _unpack(spec, raw, w * s)
        except (UnsupportedFeatureError, CorruptSegmentError):
            raise
        except Exception as exc:
            raise CorruptSegmentError(f"{where}: cannot unpack samples: {exc}") from None
        if spec.dtype == bool and arr.dtype != bool:
            arr = arr.view(bool) if arr.dtype.itemsize == 1 else arr.astype(bool)
    arr = _fit(spec, numpy.asarray(arr), shape, valid, where)
    if arr.dtype != spec.dtype:
        if arr.dtype.kind == spec.dtype.kind and arr.dtype.itemsize == spec.dtype.itemsize:
            arr = arr.astype(spec.dtype)  # byte swap to native
        elif spec.dtype == bool:
            arr = arr.astype(bool)
        else:
            raise CorruptSegmentError(f"{where}: the codec returned {arr.dtype} samples, expected {spec.dtype}")
    if spec.predictor != 1 and code not in JPEG_COMPRESSIONS and code not in _codecs.IMAGE_DECODERS:
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = arr.copy()
        arr = undo_predictor(spec.predictor, arr, where)
        if spec.bits not in (8, 16, 32, 64) and spec.dtype.kind == "u":
            arr &= (1 << spec.bits) - 1  # packed samples difference modulo 2**bits
    if out is not None:
        out[...] = arr
        return out
    return arr
