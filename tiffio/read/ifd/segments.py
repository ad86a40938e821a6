"""Reading an IFD's segments (their locations are striles.py's): their bytes and their decoded
samples (``read_segment``): the prepared fast path of fastpath.py for hot cases, the general path otherwise."""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy

from ..._cached import cached_property
from ...alloc import is_allocation_failure, out_of_memory
from ...codecs import JPEG_COMPRESSIONS, compression_name
from ...codecs.decode import decode_segment
from ...enums import Compression
from ...errors import (
    CorruptSegmentError,
    TiffFormatWarning,
    TiffTypeError,
    TiffValueError,
    TruncatedError,
    UnsupportedFeatureError,
)
from ...format.grid import require_segment_index
from ...format.jpeg import pack_standalone, starts_with_jfif
from ...sources import FileSource
from ..pool import parallel_map, require_workers, segment_workers
from .fastpath import READ_BUFFER_MAX, FastReader, build_fast_reader
from .striles import IFDStriles

__all__ = ["IFDSegments"]


class IFDSegments(IFDStriles):
    """Segment location and reading of one IFD (the middle layer of :class:`tiffio.IFD`)."""

    _local: threading.local

    def _data_span(self, index: int, location: tuple[int, int]) -> tuple[int, int]:
        """The (offset, byte count) to read for a segment: (0, 0) if sparse; an uncompressed
        segment's count is its decoded size (as _decode reads it)."""
        offset, count = location
        if offset == 0 or count == 0:
            return 0, 0
        if self.spec.compression == 1:
            count = self._uncompressed_read_size(index, self.grid.shapes(index)[0], count)
        self._check_data_range(index, offset, count)
        return offset, count

    def fetch_segments(self, indices: Sequence[int], locations: Sequence[tuple[int, int]] | None = None
                       ) -> list[bytes | memoryview]:
        """The stored bytes of several segments from ONE ``read_ranges`` call (b'' for sparse
        ones): planned, coalesced and fetched concurrently on remote sources."""
        if locations is None:
            locations = self.segment_locations(indices)
        spans = [self._data_span(i, loc) for i, loc in zip(indices, locations)]
        datas = self._tiff.source.read_ranges(spans)
        for i, (offset, count), data in zip(indices, spans, datas):
            if count:
                self._check_length(i, offset, count, len(data))
        return datas

    def prefetch_segments(self, indices: Sequence[int]) -> None:
        """Remote sources: fetch these segments' bytes now, in one planned wave, and hold them for
        the reads that follow (read_segment, read_segment_bytes, read_region: each consumes its
        segment once). For callers that read segment by segment but know the batch (zarr).
        Local sources: nothing to do."""
        source = self._tiff.source
        if not source.remote:
            return
        indices = [int(i) for i in indices if 0 <= int(i) < self.grid.count]
        locations = self.segment_locations(indices)
        spans = [self._data_span(i, loc) for i, loc in zip(indices, locations)]
        source.hold_ranges(spans)  # type: ignore[attr-defined]

    def read_segments(self, indices: Sequence[int], *, raw: bool = False, valid: bool = False, fill: Any = None,
                      workers: int | None = None) -> list[Any]:
        """Several segments at once: their locations first, then every byte range in one
        ``read_ranges`` call (one round trip on a remote source: sparse segments skipped,
        neighbours coalesced), then decoding in the thread pool. ``raw=True`` returns the
        stored bytes (b'' for sparse segments) instead of arrays (as :meth:`read_segment`)."""
        if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
            raise TiffTypeError(f"read_segments: indices must be a sequence of ints, not {type(indices).__name__}")
        indices = [require_segment_index(i) for i in indices]
        for i in indices:
            if not 0 <= i < self.grid.count:
                raise self._index_error(i)
        locations = self.segment_locations(indices)
        datas = self.fetch_segments(indices, locations)
        if raw:
            return [bytes(d) for d in datas]
        fill_value = self._fill_value(fill)

        def decode(k: int) -> numpy.ndarray:
            index = indices[k]
            arr = self._decode(index, fill_value, location=locations[k], data=datas[k] if datas[k] else None,
                               fetched=True)
            if valid:
                vd, vh, vw = self.grid.valid_shape(index)
                arr = arr[:vd, :vh, :vw]
            return arr.reshape(self._segment_axes(arr.shape))

        return self._map(decode, list(range(len(indices))), workers)

    @cached_property
    def read_workers(self) -> int:
        """Threads a read of this image uses when the caller gives no ``workers``: 1 for small
        segments (pool.segment_workers), else the CPU count up to 16."""
        if not self.grid.count:
            return 1
        nbytes = math.prod(self.grid.stored_shape(0)) * self.dtype.itemsize
        return segment_workers(nbytes, self.compression != Compression.NONE)

    def _map(self, func: Any, items: list[Any], workers: int | None) -> list[Any]:
        """[func(item) for item in items] in ``workers`` (or read_workers) threads: pool.parallel_map."""
        return parallel_map(func, items, self.read_workers if workers is None else require_workers(workers))

    def _zero_byte_count(self, index: int, offset: int) -> None:
        """A segment with an offset but a byte count of 0 (other than a lone strip, which is
        estimated): libtiff refuses to read it, tifffile reads it as empty. Only offset 0 marks
        a sparse segment (spec-notes/segments.md "A single strip with byte count 0")."""
        warnings.warn(f"{self.where}: segment {index} at offset {offset} has a byte count of 0; it reads as "
                      "empty", TiffFormatWarning, stacklevel=4)

    def is_sparse(self, index: int) -> bool:
        """True if the segment is not stored (offset or byte count 0)."""
        offset, count = self.segment_location(index)
        return offset == 0 or count == 0

    # --- reading segments -------------------------------------------------------------------
    def read_segment_bytes(self, index: int) -> bytes:
        """The stored bytes of segment ``index`` (libtiff's index order); b'' if sparse."""
        offset, count = self.segment_location(index)
        if offset == 0 or count == 0:
            return b""
        return self._read_data(index, offset, count)

    def read_segment_jpeg(self, index: int) -> bytes:
        """Segment ``index`` of a JPEG-compressed image as a complete JPEG file, not re-encoded.

        The stored stream with the IFD's JPEGTables merged in, and for three-component streams
        the colour space this reader decodes them in declared by the Adobe (or JFIF) marker,
        so that libjpeg, Pillow and browsers decode the file to :meth:`read_segment`'s pixels
        (YCbCr streams converted to RGB as this reader does; full stored size). Old-style JPEG
        (compression 6) segments give the stream the reader maps them to.

        Raises TiffValueError for a segment of another compression and for a sparse segment
        (no bytes stored), CorruptSegmentError for bytes that are no JPEG stream (no SOI,
        frame header or scan), TiffIndexError for an index out of range.
        """
        code = self.compression
        if code not in JPEG_COMPRESSIONS:
            raise TiffValueError(f"{self.where}: segment {index} is {compression_name(code)}, not JPEG; "
                                 "read_segment_jpeg needs a JPEG-compressed image")
        offset, count = self.segment_location(index)
        if offset == 0 or count == 0:
            raise TiffValueError(f"{self.where}: segment {index} is sparse (not stored): it has no JPEG stream")
        data = self._read_data(index, offset, count)
        if code == Compression.OJPEG:
            data = self._ojpeg_stream(index, offset, data, self.grid.shapes(index)[0])
        # the colour space the decoder is given (_decode): RGB images are RGB unless JFIF says YCbCr
        rgb = self._jpeg_colorspaces[0] == "auto-rgb" and not starts_with_jfif(data)
        try:
            return pack_standalone(data, self.jpegtables, colour="RGB" if rgb else "implied")
        except CorruptSegmentError as exc:
            raise CorruptSegmentError(f"{self.where}: segment {index}: {exc}") from None

    def _read_data(self, index: int, offset: int, count: int) -> bytes:
        """The segment's bytes, in a bytes object of its own."""
        self._check_data_range(index, offset, count)
        try:
            data = self._tiff.source.read_range(offset, count)
        except MemoryError:
            raise out_of_memory(count, f"{self.where}: segment {index}: reading its bytes") from None
        self._check_length(index, offset, count, len(data))
        return data

    def _read_data_buffered(self, index: int, offset: int, count: int) -> bytes | memoryview:
        """The segment's bytes for callers that are done with them before this thread reads
        again: a view of this thread's reusable read buffer (up to READ_BUFFER_MAX bytes)."""
        self._check_data_range(index, offset, count)
        if count > READ_BUFFER_MAX:
            return self._read_data(index, offset, count)
        view = self._tiff.source.read_into(offset, self._read_buffer(count))
        self._check_length(index, offset, count, len(view))
        return view

    def _check_data_range(self, index: int, offset: int, count: int) -> None:
        limits = self.context.limits
        if count > limits.max_segment_bytes:
            limits.check("max_segment_bytes", count, f"{self.where}: segment {index}: byte count")
        size = self._tiff.source.size
        if offset >= size:
            raise TruncatedError(f"{self.where}: segment {index}: offset {offset} (0x{offset:x}) is past the end "
                                 f"of the file ({size} bytes)")

    def _check_length(self, index: int, offset: int, count: int, got: int) -> None:
        if got < count:
            size = self._tiff.source.size
            self.context.problem(f"{self.where}: segment {index}: {count} bytes at offset {offset} pass the end of "
                              f"the file ({size} bytes); {got} are there", TruncatedError)

    def _read_buffer(self, nbytes: int) -> memoryview:
        """A view of ``nbytes`` of this thread's reusable read buffer (released by close)."""
        local = self._local
        view = getattr(local, "read_view", None)
        if view is None or len(view) < nbytes:
            size = max(nbytes, 1 << 16)
            try:
                view = local.read_view = memoryview(bytearray(size))
            except MemoryError:
                raise out_of_memory(size, f"{self.where}: a read buffer") from None
        return view[:nbytes]

    def _decode(self, index: int, fill: Any, out: numpy.ndarray | None = None,
                location: tuple[int, int] | None = None, buffered: bool = False,
                data: bytes | memoryview | None = None, fetched: bool = False,
                crop_rows: bool = False) -> numpy.ndarray:
        """Decode one segment, reading its bytes unless ``fetched`` (then ``data`` holds them,
        None for a sparse segment: read_segments and remote regions fetch them all first).
        ``crop_rows``: of an uncompressed flat tile, only the rows inside the image are read
        and decoded (the result has that many rows; see :meth:`_decoded_shape`)."""
        spec = self.spec
        shape, valid = self.grid.shapes(index)
        if crop_rows:
            shape = self._decoded_shape(shape, valid)
            valid = (valid[0], min(valid[1], shape[1]), valid[2])
        offset, count = self.segment_location(index) if location is None else location
        if offset != 0 and count == 0 and 0 not in shape:
            self._zero_byte_count(index, offset)
        if fetched:
            if data is not None and spec.compression == Compression.OJPEG:
                data = self._ojpeg_stream(index, offset, bytes(data), shape)
        elif offset != 0 and count != 0:
            if spec.compression == 1:
                count = self._uncompressed_read_size(index, shape, count)
            if buffered:  # the caller decodes a JPEG stream before this thread reads again
                data = self._read_data_buffered(index, offset, count)
            else:
                raw = self._read_data(index, offset, count)
                data = self._ojpeg_stream(index, offset, raw, shape) if spec.compression == Compression.OJPEG else raw
        if spec.jpeg_colorspace == "auto-rgb":
            # RGB JPEG: JFIF streams are YCbCr inside; others (Adobe, libtiff) are stored as RGB
            spec = self._rgb_jpeg_specs[data is not None and starts_with_jfif(data)]
        try:
            return decode_segment(spec, data, shape, valid=valid, out=out, fill=fill, index=index)
        except (MemoryError, ValueError) as exc:
            if not is_allocation_failure(exc):
                raise
            d, h, w, s = shape
            raise out_of_memory(d * h * w * s * spec.dtype.itemsize, f"{self.where}: segment {index}") from None

    def _decoded_shape(self, shape: tuple[int, int, int, int], valid: tuple[int, int, int]
                       ) -> tuple[int, int, int, int]:
        """The part of a segment that a region needs decoded: an uncompressed flat tile whose
        rows pass the image's last row is cut to the rows inside it (its rows are stored in
        order, so those are its first bytes). A file declaring 3,932,418-row tiles over a 60-row
        image made asarray allocate and fill two 377 MB tiles for a 9 KB result; reads stay
        bounded by the result instead. Other codecs decode whole streams (their decoders refuse
        a smaller output), so their shape is unchanged."""
        d, h, w, s = shape
        if d == 1 and valid[1] < h and self.spec.compression == 1:
            return (1, valid[1], w, s)
        return shape

    def _ojpeg_stream(self, index: int, offset: int, data: bytes, shape: tuple[int, int, int, int]) -> bytes:
        """Map an old-style JPEG segment to a complete JPEG stream (tiffio/ojpeg.py)."""
        from ...format.ojpeg import SOI, OJpegTables, build_scan_header
        if data[:2] == SOI:
            return data
        where = f"{self.where}: segment {index}"
        start = self.get_int(513)
        length = self.get_int(514)
        if start and length and self.segment_count == 1 and start <= offset < start + length \
                and length <= self.context.limits.max_segment_bytes:
            # the strip lies inside a complete interchange stream, whose scan may be longer
            # than StripByteCounts says (libtiff decodes the stream)
            stream = self._read_data(index, start, length)
            if stream[:2] == SOI:
                return stream
        if start and 0 < offset - start <= 1 << 20:
            prefix = self.context.read_metadata(start, offset - start, f"{where}: JPEGInterchangeFormat stream header")
            if prefix[:2] == SOI:
                return prefix + data
        tables = self.__dict__.get("_ojpeg_tables")
        if tables is None:
            q, dc, ac = self.get_ints(519), self.get_ints(520), self.get_ints(521)
            if not (q and dc and ac):
                raise UnsupportedFeatureError(f"{where}: old-style JPEG data without a stream header or "
                                              "JPEGQTables/JPEGDCTables/JPEGACTables cannot be mapped to a JPEG stream")
            tables = OJpegTables.read(q, dc, ac, self.context.read_metadata, self.where)
            self.__dict__["_ojpeg_tables"] = tables
        _d, h, w, _s = shape
        components = self.samples_per_pixel if not self.is_separate else 1
        header = build_scan_header(tables, h, w, components, self.subsampling or (1, 1), self.get_int(515, 0) or 0)
        return header + data + b"\xff\xd9"

    def _uncompressed_read_size(self, index: int, shape: tuple[int, int, int, int], count: int) -> int:
        d, h, w, s = shape
        bits = self.bits_per_sample
        need = d * h * ((w * s * bits + 7) // 8)
        if count < need:
            self.context.problem(f"{self.where}: segment {index} byte count {count} is less than the {need} bytes "
                              "an uncompressed segment of its shape needs")
            return need
        return min(count, need) if count > need else count

    def read_segment(self, index: int, *, valid: bool = False, fill: Any = None) -> numpy.ndarray:
        """Decode segment ``index``.

        Returns the full stored size (tiles are padded at the image edge; the last
        strip has its real row count), shaped like the image's axes without the
        separate-plane axis: (Y, X), (Y, X, S), or with Z first for volumes.
        ``valid=True`` crops to the part inside the image
        (:meth:`segment_valid_shape`). Sparse segments are filled with ``fill``
        (default: GDAL_NODATA if the IFD has it, else 0).
        """
        if not valid and fill is None:
            fast = self.fast_reader
            if fast is not None:
                try:
                    arr = fast(index)
                except TypeError:  # not an int: the general path says so
                    arr = None
                if arr is not None:
                    return arr
        self._tiff.require_open()
        index = require_segment_index(index)
        if not 0 <= index < self.grid.count:
            raise self._index_error(index)
        arr = self._decode(index, self._fill_value(fill))
        if valid:
            vd, vh, vw = self.grid.valid_shape(index)
            arr = arr[:vd, :vh, :vw]
        return arr.reshape(self._segment_axes(arr.shape))

    @cached_property
    def fast_reader(self) -> FastReader | None:
        """The prepared hot path of read_segment (fastpath.py), or None where it does not apply:
        tiled flat images, and images stored as one strip, of a local file with byte counts."""
        source = self._tiff.source
        spec = self.spec
        if not (isinstance(source, FileSource) and (self.is_tiled or self.grid.count == 1) and self.depth == 1
                and self.grid.count):
            return None
        counts = self.segment_byte_counts
        if counts is None:
            return None
        stored = self.grid.stored_shape(0)
        return build_fast_reader(self._tiff.__dict__, source, spec, self.segment_offsets, counts, self.grid.count,
                                 stored, self._segment_axes(stored), self.context.limits.max_segment_bytes,
                                 self._read_buffer)
