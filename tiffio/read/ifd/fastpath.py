"""The prepared hot path of ``IFD.read_segment``: one closure per IFD for the common
cases - an 8-bit JPEG tile, an uncompressed byte-aligned tile, or a Deflate / Zstd / LZW
tile of byte-aligned samples (any predictor) - of a local file whose strile blocks are
loaded, with as few layers as possible (tifffile prepares one decode closure per page the
same way).

A closure returns None for anything else (strile block not loaded, sparse, outside the
file, a stream of another size, too few bytes, any codec error); the general path
(segments.IFDSegments) then reads the segment and reports the problem. Nothing here
raises on bad input.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy

from ...codecs import jpeg_frame, jpeg_frame_prefix, require_byte_decoder
from ...codecs.decode import SegmentSpec
from ...codecs.predictors import undo_predictor
from ...enums import Compression
from ...errors import TiffError
from ...format.jpeg import starts_with_jfif
from ...sources import FileSource
from ..entries import StrileArray

__all__ = ["READ_BUFFER_MAX", "FastReader", "build_fast_reader"]

#: segments up to this size are read into a reusable per-thread buffer (IFDSegments._read_buffer)
READ_BUFFER_MAX = 4 << 20

FastReader = Callable[[int], "numpy.ndarray | None"]


def build_fast_reader(owner_state: dict[str, Any], source: FileSource, spec: SegmentSpec,
                      offsets: StrileArray, counts: StrileArray, count: int,
                      stored: tuple[int, int, int, int], shape: tuple[int, ...], max_bytes: int,
                      read_buffer: Callable[[int], memoryview]) -> FastReader | None:
    """The fast reader of one tiled, flat IFD of a local file, or None if its spec has none.

    ``owner_state`` is the owning TiffFile's ``__dict__`` (``close()`` sets its
    ``_closed_flag``); ``count`` the number of segments; ``stored`` one tile's
    (depth, length, width, samples) and ``shape`` the axes read_segment returns;
    ``read_buffer(n)`` a view of n bytes of the calling thread's reusable buffer.
    """
    jpeg = spec.compression == Compression.JPEG and spec.bits <= 8 and spec.dtype == numpy.uint8
    aligned = spec.fillorder == 1 and spec.bits in (8, 16, 32, 64) and spec.sampleformat != 5
    raw = spec.compression == 1 and spec.predictor == 1 and aligned and hasattr(os, "preadv")
    coded = spec.compression in _CODED and spec.predictor in (1, 2, 3) and aligned and spec.dtype.kind in "uif"
    if not (jpeg or raw or coded):
        return None
    import imagecodecs
    size = source.size
    entries = StrileArray.block_entries
    d, h, w, s = stored
    dtype = spec.dtype
    inline = offsets.inline and counts.inline
    offset_blocks, count_blocks = offsets.blocks, counts.blocks  # filled in place as blocks are read

    def locate(index: int) -> tuple[int, int]:
        """(offset, byte count) from loaded strile blocks; (0, 0) sends to the general path."""
        if owner_state.get("_closed_flag") or not 0 <= index < count:
            return 0, 0
        block, pos = divmod(index, entries)
        offs, cnts = offset_blocks.get(block), count_blocks.get(block)
        if offs is None or cnts is None:
            if not inline:
                return 0, 0
            try:  # inline arrays (a one-segment image's) load without I/O: no general-path detour
                return offsets[index], counts[index]
            except (TiffError, IndexError):
                return 0, 0
        return offs[pos], cnts[pos]

    if raw:
        file_dtype = dtype.newbyteorder("<" if spec.byteorder == "<" else ">")
        need = d * h * w * s * dtype.itemsize
        native = file_dtype == dtype or dtype.itemsize == 1
        preadv = os.preadv

        def read_raw(index: int) -> numpy.ndarray | None:
            offset, nbytes = locate(index)
            if not offset or nbytes < need or offset + need > size:
                return None
            # the descriptor is taken for this read only (a reference held until it returns), never
            # kept: a read racing close() then uses the old file or none (sources.local._Descriptor)
            handle = source.handle
            if handle is None:
                return None  # closed: the general path raises TiffUsageError
            try:  # the returned array's memory; a direct preadv, not source.read_into:
                buf = bytearray(need)  # 2 us less on a 3 us 16 x 16 tile
                got = preadv(handle.fd, [buf], offset)
            except (OSError, MemoryError):
                return None  # the general path reports it (LimitExceededError for memory)
            source.requests += 1
            source.bytes_read += got
            if got != need:
                return None
            arr = numpy.frombuffer(buf, file_dtype).reshape(shape)
            if native:
                return arr
            try:
                return arr.astype(dtype)
            except MemoryError:
                return None

        return read_raw

    def fetch(index: int) -> bytes | memoryview | None:
        """The stored bytes of a tile, or None (the general path reads it again and reports)."""
        offset, nbytes = locate(index)
        if not offset or not nbytes or offset + nbytes > size or nbytes > max_bytes:
            return None
        try:
            # into this thread's reusable buffer, which stays in cache: a fresh bytes object
            # per tile cost ~4 % of the decode time (benchmarks/RESULTS.md, reader section)
            data = (source.read_into(offset, read_buffer(nbytes)) if nbytes <= READ_BUFFER_MAX
                    else source.read_range(offset, nbytes))
        except TiffError:
            return None
        return data if len(data) == nbytes else None

    if coded:
        return _coded_reader(spec, fetch, stored, shape)

    decode = imagecodecs.jpeg8_decode
    tables, colorspace, outcolorspace = spec.jpegtables, spec.jpeg_colorspace, spec.jpeg_outcolorspace
    auto_rgb = colorspace == "auto-rgb"
    stream = (8, h, w, s)
    known = b""  # header prefix of a stream that matched (codecs.jpeg_frame_prefix)

    def read(index: int) -> numpy.ndarray | None:
        nonlocal known
        data = fetch(index)
        if data is None:
            return None
        # the stream must be an 8-bit frame of exactly the tile's shape: that bounds what the
        # codec allocates (no decompression bomb). Tiles of one image share the header bytes
        # up to the frame header, so one known prefix usually replaces the marker walk.
        if not known or data[: len(known)] != known:
            if jpeg_frame(data) != stream:
                return None  # the general path decodes it and reports what is wrong
            known = jpeg_frame_prefix(data) or b""
        cs = (None if starts_with_jfif(data) else 2) if auto_rgb else colorspace
        try:  # the codec allocates the array (the check above bounds it); slightly faster than out=
            out = decode(data, tables=tables, colorspace=cs,  # type: ignore[arg-type]  # stub: no memoryview
                         outcolorspace=outcolorspace, shape=(h, w))
        except Exception:
            return None
        return out if out.shape == shape and out.dtype == dtype else None

    return read


#: byte codecs the fast path calls directly: Deflate (both codes, PixTIFF's alias), Zstd, LZW
_CODED = frozenset({Compression.ADOBE_DEFLATE, Compression.DEFLATE, Compression.PIXTIFF, Compression.ZSTD,
                    Compression.LZW})


def _coded_reader(spec: SegmentSpec, fetch: Callable[[int], bytes | memoryview | None],
                  stored: tuple[int, int, int, int], shape: tuple[int, ...]) -> FastReader | None:
    """A Deflate / Zstd / LZW tile: fetched, decoded and returned as an array, with as few
    layers as possible.

    The codec is called exactly as the general path calls it (codecs.BYTE_DECODERS, the
    tile's size as the output bound), so it never allocates more than the general path and
    both give the same bytes; an untouched bytes object, not a zero-filled buffer, so a tiny
    hostile stream declaring a huge tile makes no resident memory either. Any stream that
    does not decode to exactly the tile's size, or fails, goes to the general path (which
    reads libtiff's way and reports the problem). Like the general path's, the array returned
    for predictor 1 is read-only (it is the codec's bytes).
    """
    try:
        codec = require_byte_decoder(spec.compression, spec.where)
    except TiffError:
        return None
    if not codec.sized:
        return None
    decode = codec.decode  # Deflate: codecs.deflate_decode_fast (libdeflate, zlib when it refuses)
    d, h, w, s = stored
    dtype = spec.dtype
    file_dtype = dtype.newbyteorder("<" if spec.byteorder == "<" else ">")
    native = file_dtype == dtype or dtype.itemsize == 1
    if spec.predictor == 3 and not native:
        return None  # the floating-point predictor works on the file's byte order: the general path
    need = d * h * w * s * dtype.itemsize
    predictor = spec.predictor
    where = spec.where

    def read(index: int) -> numpy.ndarray | None:
        data = fetch(index)
        if data is None:
            return None
        try:
            out = decode(data, out=need)
            arr = numpy.frombuffer(out, file_dtype)
            if arr.nbytes != need:
                return None
            arr = arr.reshape(d, h, w, s)
            if not native:
                arr = arr.astype(dtype)
            if predictor != 1:
                if not arr.flags.writeable:
                    arr = arr.copy()
                arr = undo_predictor(predictor, arr, where)
        except Exception:
            return None  # the general path reads it again and reports what is wrong
        return arr.reshape(shape)

    return read
