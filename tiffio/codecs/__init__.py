"""Codec registry: Compression code -> decoder/encoder over imagecodecs
(spec-notes/compression.md).

Two kinds of codec:

* *byte codecs* turn the stored bytes into the uncompressed byte stream
  (LZW, Deflate, PackBits, LZMA, Zstandard, LERC); unpacking, byte order and
  predictors are applied afterwards by :mod:`tiffio.codecs.decode`.
* *image codecs* turn the stored bytes straight into pixels (JPEG, JPEG 2000,
  WebP, JPEG XL, PNG, JPEG XR); predictors and FillOrder do not apply to them.

CCITT codecs need the segment's rows and width and are handled in decode.py.

This module is the boundary where imagecodecs' exceptions become tiffio errors.

The package turns one segment into bytes and back with no file handle. Lowest layer first (each
module imports only those above it in this list, and :mod:`tiffio.format`)::

    __init__.py    the codec registry over imagecodecs, stream probes (JPEG frame, PNG, stream shapes)
                   and codec shape limits, the imagecodecs error boundary
    predictors.py  predictors 2 (horizontal differencing) and 3 (floating point), both directions
    decode.py      SegmentSpec and decode_segment: one stored segment -> samples (the reading side)
    encode.py      EncodeSpec and encode_segment: one tile -> stored bytes (the writer)
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import imagecodecs

from ..enums import Compression as C
from ..errors import CorruptSegmentError, LimitExceededError, UnsupportedFeatureError
from ..format.jpeg import frame_fields, frame_prefix

__all__ = [
    "ByteCodec", "BYTE_DECODERS", "IMAGE_COMPRESSIONS", "JPEG_COMPRESSIONS", "CCITT_COMPRESSIONS",
    "require_byte_decoder", "call_codec", "compression_name", "ENCODERS", "require_encoder",
]


def compression_name(code: int) -> str:
    try:
        return f"{C(code).name} ({code})"
    except ValueError:
        return f"unknown compression {code}"


def _available(name: str) -> bool:
    attr = getattr(imagecodecs, name.upper(), None)
    return bool(getattr(attr, "available", attr is not None))


@dataclass(frozen=True)
class ByteCodec:
    decode: Callable[..., Any]
    #: the codec accepts ``out=<int>`` as the maximum output size
    sized: bool = True


def _lzw_wrapper_tiff(data: bytes, nbytes: int) -> bytes:
    """A minimal classic TIFF holding ``data`` as the LZW strip of a 1-row, ``nbytes``-wide,
    8-bit image."""
    entries = ((256, 4, nbytes), (257, 4, 1), (258, 3, 8), (259, 3, 5), (262, 3, 1), (273, 4, 0),
               (277, 3, 1), (278, 4, 1), (279, 4, len(data)))
    data_offset = 8 + 2 + 12 * len(entries) + 4
    parts = [b"II*\x00", struct.pack("<IH", 8, len(entries))]
    for code, typ, value in entries:
        if code == 273:
            value = data_offset
        parts.append(struct.pack("<HHII" if typ == 4 else "<HHIHxx", code, typ, 1, value))
    parts.append(b"\x00\x00\x00\x00")
    parts.append(data)
    return b"".join(parts)


def lzw_decode_checked(data: bytes | bytearray | memoryview, out: int | None = None) -> Any:
    """TIFF LZW decoding that is safe on hostile streams.

    ``imagecodecs.lzw_decode`` reads and writes out of bounds (a segfault) on some
    corrupt streams, e.g. a compressed strip of another codec labelled LZW (found by
    fuzzing; fixtures/malformed/lzw_corrupt_stream). libtiff's LZW decoder validates
    every code, so the stream is decoded by libtiff (imagecodecs.tiff_decode on a
    one-strip wrapper TIFF), which is also faster. Only when libtiff reports a stream
    whose codes are all valid but which ends early (no EOI, or fewer bytes than
    declared) is imagecodecs' decoder used, to return the partial output that lenient
    reading keeps. At most ``out`` bytes are decoded (no decompression bombs).
    """
    tiff = getattr(imagecodecs, "TIFF", None)
    if out is None or not getattr(tiff, "available", False):
        return imagecodecs.lzw_decode(data, out=out)  # type: ignore[arg-type]  # stub: no memoryview
    if len(data) < 2:
        raise CorruptSegmentError(f"LZW stream of {len(data)} bytes")
    if not 0 < out < 1 << 32:
        if out == 0:
            return b""
        raise UnsupportedFeatureError(f"LZW segments of {out} bytes (over 4 GiB) are not supported")
    try:
        return imagecodecs.tiff_decode(_lzw_wrapper_tiff(bytes(data), out)).reshape(-1)
    except imagecodecs.TiffError as exc:
        message = str(exc)
        if "not terminated with EOI" in message or "Not enough data" in message:
            return imagecodecs.lzw_decode(data, out=out)  # type: ignore[arg-type]  # valid codes: a short stream
        raise CorruptSegmentError(f"LZW: {message}") from None


def deflate_decode_fast(data: bytes | bytearray | memoryview, out: int | None = None) -> Any:
    """A TIFF Deflate (zlib) stream, inflated by libdeflate (1.3-1.9 x faster than zlib here:
    benchmarks/RESULTS.md), or by zlib when libdeflate refuses it. Where libdeflate succeeds
    both give the same bytes (they inflate the same stream and check the same Adler-32); any
    stream libdeflate refuses (corrupt, or more than ``out`` bytes) gets zlib's result or
    error, exactly as before libdeflate was used."""
    if out is not None:
        try:
            return imagecodecs.deflate_decode(data, out=out)  # type: ignore[arg-type]  # stub: no memoryview
        except Exception:
            pass
    return imagecodecs.zlib_decode(data, out=out)  # type: ignore[arg-type]  # stub: no memoryview


def jpeg_frame(data: bytes | bytearray | memoryview) -> tuple[int, int, int, int] | None:
    """(precision, height, width, components) of a JPEG stream's first frame header (SOFn),
    None when there is none in the first 64 KiB (the walk is :func:`tiffio.format.jpeg.frame_fields`).

    imagecodecs (2026.3.6) leaks its whole libjpeg decompressor (14-63 KB) each time
    ``jpeg8_decode`` / ``jpeg_decode`` refuse an ``out=`` array whose shape or dtype is not
    the stream's (found by fuzzing: a reader of corrupt files grew by ~1 GB over 350,000
    decodes). Callers decode into ``out`` only when this matches.
    """
    return frame_fields(data, 65536)


def jpeg_frame_prefix(data: bytes | bytearray | memoryview) -> bytes | None:
    """The stream's bytes from SOI through the first frame header's size fields, or None
    (:func:`tiffio.format.jpeg.frame_prefix` within the first 64 KiB): streams that start with these
    bytes have the same :func:`jpeg_frame`."""
    return frame_prefix(data, 65536)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_stream_problem(data: bytes | bytearray | memoryview, require_end: bool = True) -> str | None:
    """What makes a PNG stream undecodable at the chunk level - a chunk running past the
    end, a critical chunk whose CRC is wrong - or None.

    libpng rejects both too, but imagecodecs (2026.3.6) leaks its libpng state (~12 KB)
    on every decode that fails inside libpng, so such streams are refused before the
    codec sees them (found by fuzzing). Ancillary chunks with a bad CRC are ignored, as
    libpng does. A stream that stops at a chunk boundary without IEND is refused only
    with ``require_end`` (strict mode; libpng decodes it when all pixel data is there).
    A stream whose chunks are sound but whose deflated pixels are corrupt still reaches
    the codec (checking that would mean inflating it twice)."""
    if data[:8] != _PNG_SIGNATURE:
        return None  # not PNG: let the codec say what it is
    view = memoryview(data)
    pos, size = 8, len(data)
    while pos + 12 <= size:
        length, kind = struct.unpack_from(">I4s", view, pos)
        end = pos + 12 + length
        if end > size:
            return f"PNG chunk {kind!r} at byte {pos} needs {length + 12} bytes; the stream has {size - pos} left"
        if 65 <= kind[0] <= 90:  # critical chunk (upper-case first letter): libpng checks its CRC
            (crc,) = struct.unpack_from(">I", view, end - 4)
            if zlib.crc32(view[pos + 4: end - 4]) != crc:
                return f"PNG chunk {kind!r} at byte {pos}: CRC mismatch"
        if kind == b"IEND":
            return None
        pos = end
    return f"PNG stream of {size} bytes ends without an IEND chunk" if require_end else None


def _jpegxl_shape(head: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG XL SizeHeader (ISO/IEC 18181-1), bare codestream or container."""
    pos = 0
    if head[:2] != b"\xff\x0a":  # ISOBMFF container: the codestream is in a 'jxlc' or the first 'jxlp' box
        k = head.find(b"jxlc")
        pos = k + 4 if k >= 0 else head.find(b"jxlp") + 8
        if pos < 8 or head[pos: pos + 2] != b"\xff\x0a":
            return None
    if len(head) < pos + 12:
        return None
    bits = int.from_bytes(head[pos + 2: pos + 18], "little")  # fields are read LSB first
    at = 0

    def u(n: int) -> int:
        nonlocal at
        value = (bits >> at) & ((1 << n) - 1)
        at += n
        return value

    def u32() -> int:
        return u((9, 13, 18, 30)[u(2)])

    div8 = u(1)
    height = (u(5) + 1) * 8 if div8 else u32() + 1
    ratio = u(3)
    if ratio == 0:
        width = (u(5) + 1) * 8 if div8 else u32() + 1
    else:
        num, den = ((1, 1), (12, 10), (4, 3), (3, 2), (16, 9), (5, 4), (2, 1))[ratio - 1]
        width = height * num // den
    return height, width


def image_stream_shape(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """(height, width) declared by a JPEG, WebP, PNG, JPEG 2000 or JPEG XL stream's header, read
    without decoding; None when the format is not recognised or the header is cut.

    Image codecs allocate what the stream declares, not what the TIFF declares: a few
    bytes of lossless WebP can declare 16383 x 16383 pixels. Checking the header first
    keeps a segment's decode bounded by its declared shape (decompression bombs)."""
    # headers sit in the first few hundred bytes; copy a small prefix first (this runs per tile)
    shape = _stream_shape(bytes(data[:4096]))
    if shape is None and len(data) > 4096:
        shape = _stream_shape(bytes(data[:65536]))  # large APPn/ICC segments before the frame header
    return shape


def _stream_shape(head: bytes) -> tuple[int, int] | None:
    try:
        if head[:2] == b"\xff\xd8":  # JPEG: walk the markers to the first SOFn
            frame = frame_fields(head)
            return None if frame is None else frame[1:3]
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            chunk = head[12:16]
            if chunk == b"VP8 ":
                w, h = struct.unpack_from("<HH", head, 26)
                return h & 0x3FFF, w & 0x3FFF
            if chunk == b"VP8L":
                (bits,) = struct.unpack_from("<I", head, 21)
                return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
            if chunk == b"VP8X":
                w = int.from_bytes(head[24:27], "little") + 1
                h = int.from_bytes(head[27:30], "little") + 1
                return h, w
            return None
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            w, h = struct.unpack_from(">II", head, 16)
            return h, w
        if head[:2] == b"\xff\x0a" or head[4:12] == b"JXL \r\n\x87\n":
            return _jpegxl_shape(head)
        if head[:6] == b"Lerc2 ":  # LERC 2: version, [checksum if version >= 3], rows, columns
            (version,) = struct.unpack_from("<i", head, 6)
            rows, cols = struct.unpack_from("<ii", head, 14 if version >= 3 else 10)
            return max(rows, 0), max(cols, 0)
        if head[:4] == b"II\xbc\x01":  # JPEG XR: a TIFF-like IFD with width 0xBC80, height 0xBC81
            (ifd,) = struct.unpack_from("<I", head, 4)
            (n,) = struct.unpack_from("<H", head, ifd)
            dims = {}
            for k in range(min(n, 64)):
                tag, ftype, _, value = struct.unpack_from("<HHII", head, ifd + 2 + 12 * k)
                if tag in (0xBC80, 0xBC81):
                    dims[tag] = value & 0xFFFF if ftype == 3 else value
            if len(dims) == 2:
                return dims[0xBC81], dims[0xBC80]
            return None
        pos = head.find(b"\xff\x4f\xff\x51")  # JPEG 2000 codestream: SOC, SIZ
        if pos >= 0 and (pos == 0 or head[4:8] == b"jP  " or b"jp2c" in head[:pos]):
            xsiz, ysiz, xo, yo = struct.unpack_from(">IIII", head, pos + 8)
            return max(0, ysiz - yo), max(0, xsiz - xo)
    except struct.error:
        return None
    return None


@dataclass(frozen=True)
class CodecShapeLimits:
    """What one codec's streams can hold per pixel (spec-notes/compression.md "What each codec
    can hold"): checked before anything is allocated, so that a file declaring an impossible
    sample count cannot make tiffio allocate the output it declares."""

    name: str
    #: samples per pixel of one segment that a valid stream of this format can carry
    format_samples: tuple[int, int]
    #: BitsPerSample a valid stream of this format can carry (inclusive range)
    format_bits: tuple[int, int]
    #: samples per pixel the decoder library handles (may be fewer than the format allows)
    decoder_samples: tuple[int, int] | None = None
    #: the exact bit depths the format has, when not every depth in ``format_bits`` exists
    bit_depths: frozenset[int] | None = None


_JPEG_LIMITS = CodecShapeLimits(
    "JPEG", format_samples=(1, 255), format_bits=(1, 16),  # ITU T.81 B.2.2: Nf 1-255, P 2-16
    decoder_samples=(1, 10))                                # libjpeg(-turbo) MAX_COMPONENTS
CODEC_SHAPE_LIMITS: dict[int, CodecShapeLimits] = {
    **dict.fromkeys((C.OJPEG, C.JPEG, C.LOSSY_JPEG, C.ALT_JPEG), _JPEG_LIMITS),
    # libwebp decodes RGB or RGBA only; libtiff's WebP codec requires 3 or 4 8-bit samples
    **{code: CodecShapeLimits("WebP", (3, 4), (8, 8)) for code in (C.WEBP, C.WEBP_OLD)},
    # PNG colour types: gray, gray+alpha, RGB, RGBA; bit depths 1, 2, 4, 8, 16
    C.PNG: CodecShapeLimits("PNG", (1, 4), (1, 16), bit_depths=frozenset({1, 2, 4, 8, 16})),
    # ISO 15444-1 SIZ: Csiz 1-16384 components, Ssiz precision 1-38 bits
    **{code: CodecShapeLimits("JPEG 2000", (1, 16384), (1, 38))
       for code in (C.JPEG2000, C.JPEG2000_APERIO_YCBCR, C.JPEG2000_LOSSY, C.JPEG2000_APERIO_RGB)},
    # ISO 18181-1: 1 or 3 colour channels + at most 4096 extra channels; up to 32 bits per sample
    **{code: CodecShapeLimits("JPEG XL", (1, 4099), (1, 32)) for code in (C.JPEGXL, C.JPEGXL_DNG)},
    # ITU T.832 pixel formats: at most 8 channels + alpha; 1 to 32 bits per channel
    **{code: CodecShapeLimits("JPEG XR", (1, 9), (1, 32)) for code in (C.JPEGXR, C.JPEGXR_ZIF)},
    # CCITT T.4/T.6 code one bilevel sample per pixel (libtiff Fax3SetupState: "Bits/sample must be 1")
    **{code: CodecShapeLimits("CCITT", (1, 1), (1, 1)) for code in (C.CCITTRLE, C.CCITT_T4, C.CCITT_T6)},
}


def _byte_decoders() -> dict[int, ByteCodec]:
    table: dict[int, ByteCodec] = {}

    def add(codes: tuple[int, ...], func: str, module: str, sized: bool = True) -> None:
        if _available(module) and hasattr(imagecodecs, func):
            for code in codes:
                table[code] = ByteCodec(getattr(imagecodecs, func), sized)

    add((C.LZW,), "lzw_decode", "lzw")
    if C.LZW in table:
        table[C.LZW] = ByteCodec(lzw_decode_checked)  # see lzw_decode_checked: imagecodecs' is unsafe
    # zlib_decode (zlib) and deflate_decode (libdeflate) both read TIFF Deflate streams;
    # zlib tolerates trailing bytes after the stream end, as libtiff does.
    # 50013: PixTIFF's Deflate, a zlib stream under another code (spec-notes/compression.md "Aliases")
    add((C.ADOBE_DEFLATE, C.DEFLATE, C.PIXTIFF), "zlib_decode", "zlib")
    if C.DEFLATE in table and _available("deflate") and hasattr(imagecodecs, "deflate_decode"):
        for code in (C.ADOBE_DEFLATE, C.DEFLATE, C.PIXTIFF):
            table[code] = ByteCodec(deflate_decode_fast)
    add((C.PACKBITS,), "packbits_decode", "packbits")
    add((C.LZMA,), "lzma_decode", "lzma")
    add((C.ZSTD, C.ZSTD_OLD), "zstd_decode", "zstd")
    add((C.LERC,), "lerc_decode", "lerc")
    return table


#: 33007: Bio-Formats' code for new-style JPEG streams (spec-notes/compression.md "Aliases")
JPEG_COMPRESSIONS = frozenset({C.OJPEG, C.JPEG, C.LOSSY_JPEG, C.ALT_JPEG})
CCITT_COMPRESSIONS = frozenset({C.CCITTRLE, C.CCITT_T4, C.CCITT_T6})


def _image_decoders() -> dict[int, Callable[..., Any]]:
    table: dict[int, Callable[..., Any]] = {}

    def add(codes: tuple[int, ...], func: str, module: str) -> None:
        if _available(module) and hasattr(imagecodecs, func):
            for code in codes:
                table[code] = getattr(imagecodecs, func)

    add((C.WEBP, C.WEBP_OLD), "webp_decode", "webp")
    add((C.JPEG2000, C.JPEG2000_APERIO_YCBCR, C.JPEG2000_APERIO_RGB, C.JPEG2000_LOSSY), "jpeg2k_decode", "jpeg2k")
    add((C.JPEGXL, C.JPEGXL_DNG), "jpegxl_decode", "jpegxl")
    add((C.PNG,), "png_decode", "png")
    add((C.JPEGXR, C.JPEGXR_ZIF), "jpegxr_decode", "jpegxr")
    return table


def require_byte_decoder(code: int, where: str) -> ByteCodec:
    codec = _table("BYTE_DECODERS").get(code)
    if codec is None:
        raise UnsupportedFeatureError(f"{where}: compression {compression_name(code)} cannot be decoded "
                                      "(no decoder in this imagecodecs build)")
    return codec


def call_codec(func: Callable[..., Any], where: str, *args: Any, **kwargs: Any) -> Any:
    """Call an imagecodecs function, translating its failures into tiffio errors."""
    try:
        return func(*args, **kwargs)
    except MemoryError as exc:
        raise LimitExceededError(f"{where}: the codec ran out of memory ({exc})") from None
    except (UnsupportedFeatureError, CorruptSegmentError) as exc:
        if not where or str(exc).startswith(where):
            raise
        raise type(exc)(f"{where}: {exc}") from None  # tiffio's own codec wrappers (LZW) do not know where
    except Exception as exc:  # imagecodecs raises its own *Error classes, ValueError, RuntimeError...
        raise CorruptSegmentError(f"{where}: {type(exc).__name__}: {exc}") from None


# --- encoders (used by the writer) -------------------------------------------------------


def _encoders() -> dict[int, Callable[..., Any]]:
    table: dict[int, Callable[..., Any]] = {}

    def add(codes: tuple[int, ...], func: str, module: str) -> None:
        if _available(module) and hasattr(imagecodecs, func):
            for code in codes:
                table[code] = getattr(imagecodecs, func)

    add((C.LZW,), "lzw_encode", "lzw")
    add((C.ADOBE_DEFLATE, C.DEFLATE), "zlib_encode", "zlib")
    # libdeflate writes the same zlib-wrapped streams several times faster (overrides zlib)
    add((C.ADOBE_DEFLATE, C.DEFLATE), "deflate_encode", "deflate")
    add((C.PACKBITS,), "packbits_encode", "packbits")
    add((C.LZMA,), "lzma_encode", "lzma")
    add((C.ZSTD,), "zstd_encode", "zstd")
    add((C.LERC,), "lerc_encode", "lerc")
    add((C.JPEG,), "jpeg8_encode", "jpeg8")
    add((C.WEBP,), "webp_encode", "webp")
    add((C.JPEG2000,), "jpeg2k_encode", "jpeg2k")
    add((C.JPEGXL,), "jpegxl_encode", "jpegxl")
    add((C.PNG,), "png_encode", "png")
    add((C.JPEGXR,), "jpegxr_encode", "jpegxr")
    return table


# --- the tables, built on first use ---------------------------------------------------------
# Each entry loads one of imagecodecs' codec extensions (and its shared libraries): ~15 ms of CPU
# for all of them, which work that reads no pixels (`tiffio info`, dump, check without --decode)
# never needs. Module attributes resolved by __getattr__ (PEP 562) the first time they are used;
# then they are ordinary module globals (no cost on the decode path).

BYTE_DECODERS: dict[int, ByteCodec]
IMAGE_DECODERS: dict[int, Callable[..., Any]]
#: compressions that decode to pixels directly (no predictor, no FillOrder)
IMAGE_COMPRESSIONS: frozenset[int]
ENCODERS: dict[int, Callable[..., Any]]

_BUILDERS: dict[str, Callable[[], Any]] = {
    "BYTE_DECODERS": _byte_decoders,
    "IMAGE_DECODERS": _image_decoders,
    "IMAGE_COMPRESSIONS": lambda: frozenset(_table("IMAGE_DECODERS")) | JPEG_COMPRESSIONS,
    "ENCODERS": _encoders,
}
_BUILD_LOCK = threading.RLock()


def __getattr__(name: str) -> Any:
    build = _BUILDERS.get(name)
    if build is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _BUILD_LOCK:
        if name not in globals():
            globals()[name] = build()
    return globals()[name]


def _table(name: str) -> Any:
    value = globals().get(name)
    return value if value is not None else __getattr__(name)


def require_encoder(code: int) -> Callable[..., Any]:
    func = _table("ENCODERS").get(code)
    if func is None:
        raise UnsupportedFeatureError(f"compression {compression_name(code)} cannot be encoded "
                                      "(not supported by tiffio or this imagecodecs build)")
    return func
