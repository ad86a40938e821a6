"""TiffFile and IFD: source + ifd + grid + segment tied together.

Opening parses the header and the first IFD only (DESIGN.md rule 3). Every
other IFD, tag value and strile block is read when first needed. Reads are
positional, so one TiffFile serves many threads (rule 2).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any, NamedTuple

import numpy

from .codecs import IMAGE_DECODERS, JPEG_COMPRESSIONS, compression_name, jpeg_frame, jpeg_frame_prefix
from .enums import Compression, PlanarConfiguration, enum_or_int
from .errors import (
    LimitExceededError,
    TiffError,
    TiffFormatError,
    TiffIndexError,
    TiffUsageError,
    TiffValueError,
    TruncatedError,
    UnsupportedFeatureError,
)
from .grid import SegmentGrid
from .header import HEADER_READ_SIZE, parse_header
from .ifd import IFDEntries, ParseContext, StrileArray, Tag, walk_chain
from .limits import DEFAULT_LIMITS, Limits
from .segment import SegmentSpec, decode_segment, sample_dtype
from .sources import open_source
from .tags import TAG_CODES, tag_name

__all__ = ["open", "TiffFile", "IFD"]

_open = open


def open(source: Any, *, strict: bool = True, limits: Limits | None = None) -> TiffFile:
    """Open a TIFF or BigTIFF from a path, a bytes-like object or a binary file object.

    ``strict=False`` turns recoverable spec violations into
    :class:`~tiffio.TiffFormatWarning` and reads what can be read.
    ``limits`` bounds what a hostile file can make tiffio do (:class:`~tiffio.Limits`).
    """
    return TiffFile(source, strict=strict, limits=limits)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 16))


_EXECUTORS: dict[int, ThreadPoolExecutor] = {}
_EXECUTORS_LOCK = threading.Lock()
#: segments up to this size are read into a reusable per-thread buffer (IFD._read_buffer)
_READ_BUFFER_MAX = 4 << 20


def _executor(workers: int) -> ThreadPoolExecutor:
    """A shared thread pool per worker count: region reads do not pay for thread start-up."""
    with _EXECUTORS_LOCK:
        pool = _EXECUTORS.get(workers)
        if pool is None:
            pool = _EXECUTORS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="tiffio")
        return pool


class RegionWindow(NamedTuple):
    """Where a chunk of :meth:`IFD.iter_regions` lies: the window read (y, x, height,
    width, with the halo) and ``core``, the slices of the array without the halo."""

    y: int
    x: int
    height: int
    width: int
    core: tuple[slice, slice]


class TiffFile:
    """An open TIFF or BigTIFF. Use as a context manager or call :meth:`close`."""

    def __init__(self, source: Any, *, strict: bool = True, limits: Limits | None = None) -> None:
        self.source, self._owns_source = open_source(source)
        try:
            # one request for the header and, in most files, the first IFD right after it
            head = self.source.read_range(0, ParseContext.PAGE_SIZE)
            self.layout, first_offset = parse_header(head[:HEADER_READ_SIZE])
            self._ctx = ParseContext(self.source, self.layout, limits or DEFAULT_LIMITS, strict)
            self._ctx.seed_page(0, head)
            if first_offset == 0:
                raise TiffFormatError(f"{self.source.name}: the header's first-IFD offset is 0 (no image)")
            self.ifds = IFDSequence(self, first_offset, path="IFD")
            self.ifds[0]  # parse the first IFD now: a file that cannot give one is not a TIFF we can read
        except BaseException:
            self.close()
            raise

    # --- basic properties ---------------------------------------------------------------
    @property
    def byteorder(self) -> str:
        return self.layout.byteorder

    @property
    def bigtiff(self) -> bool:
        return self.layout.bigtiff

    @property
    def strict(self) -> bool:
        return self._ctx.strict

    @property
    def limits(self) -> Limits:
        return self._ctx.limits

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def closed(self) -> bool:
        return self.source.closed

    # --- pyramid levels -----------------------------------------------------------------
    @cached_property
    def levels(self) -> list:
        """Resolution levels of the main image (:class:`tiffio.levels.Level`: index, ifd,
        shape, downsample), level 0 first, whatever convention stored them."""
        from .levels import find_levels
        self._check_open()
        return find_levels(self)

    @cached_property
    def masks(self) -> list[IFD]:
        """Transparency-mask IFDs (NewSubfileType bit 2), kept apart from the levels."""
        from .levels import find_masks
        return find_masks(self)

    @cached_property
    def associated_images(self) -> dict[str, IFD]:
        """Named images that are not levels (Aperio SVS 'thumbnail', 'label', 'macro')."""
        from .levels import find_associated
        return find_associated(self)

    def read_region(self, y: int, x: int, height: int, width: int, *, level: int = 0, **kwargs: Any) -> numpy.ndarray:
        """:meth:`IFD.read_region` on pyramid level ``level`` (coordinates in that level's pixels)."""
        levels = self.levels
        if not -len(levels) <= level < len(levels):
            raise TiffIndexError(f"level {level} out of range: the image has {len(levels)} levels")
        return levels[level].ifd.read_region(y, x, height, width, **kwargs)

    def close(self) -> None:
        """Release the file (if tiffio opened it). Reading afterwards raises TiffUsageError."""
        src = getattr(self, "source", None)
        if src is not None:
            if self._owns_source:  # a ByteSource the caller passed in stays open
                src.close()
            self._closed_flag = True
        ifds = self.__dict__.get("ifds")
        if ifds is not None:
            ifds._release()

    def _check_open(self) -> None:
        if getattr(self, "_closed_flag", False):
            raise TiffUsageError(f"{self.name}: the TiffFile is closed")

    def __enter__(self) -> TiffFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "BigTIFF" if self.bigtiff else "TIFF"
        order = "little-endian" if self.byteorder == "<" else "big-endian"
        return f"<tiffio.TiffFile {self.name!r} {kind} {order}>"


class IFDSequence(Sequence):
    """The IFDs of one chain, parsed as they are reached."""

    def __init__(self, tiff: TiffFile, first_offset: int, path: str, depth: int = 0) -> None:
        self._tiff = tiff
        self._path = path
        self._depth = depth
        self._items: list[IFD] = []
        self._walker: Iterator[IFDEntries] | None = walk_chain(
            tiff._ctx, first_offset, lambda i: f"{path} {i}")
        self._lock = threading.RLock()

    def _advance(self) -> bool:
        if self._walker is None:
            return False
        try:
            entries = next(self._walker)
        except StopIteration:
            self._walker = None
            return False
        except TiffFormatError as exc:
            # a broken IFD after the first ends the chain in lenient mode
            if self._tiff.strict or not self._items:
                self._walker = None
                raise
            self._walker = None
            self._tiff._ctx.problem(f"{exc}; the chain ends here")
            return False
        self._items.append(IFD(self._tiff, entries, len(self._items), f"{self._path} {len(self._items)}", self._depth))
        return True

    def _release(self) -> None:
        """Drop the per-thread decode buffers of every IFD parsed so far (TiffFile.close)."""
        with self._lock:
            items = list(self._items)
        for ifd in items:
            ifd._release()

    def __getitem__(self, index: int) -> IFD:  # type: ignore[override]
        self._tiff._check_open()
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]  # type: ignore[return-value]
        if index < 0:
            index += len(self)
            if index < 0:
                raise TiffIndexError("IFD index out of range")
        with self._lock:
            while len(self._items) <= index:
                if not self._advance():
                    raise TiffIndexError(f"IFD index {index} out of range: the chain has {len(self._items)} IFDs")
            return self._items[index]

    def __len__(self) -> int:
        with self._lock:
            while self._advance():
                pass
            return len(self._items)

    def __iter__(self) -> Iterator[IFD]:
        i = 0
        while True:
            with self._lock:
                if i >= len(self._items) and not self._advance():
                    return
                item = self._items[i]
            yield item
            i += 1


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


class IFD:
    """One image file directory: its tags, geometry, and segments.

    Geometry and decoding parameters are derived from the tags when first used.
    """

    def __init__(self, tiff: TiffFile, entries: IFDEntries, index: int, path: str, depth: int = 0) -> None:
        self._tiff = tiff
        self._ctx = tiff._ctx
        self._entries = entries
        self.index = index
        self.path = path
        self.offset = entries.offset
        self.tags = TagMapping(entries.tags)
        self._depth = depth
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<tiffio.IFD {self.path} @{self.offset}>"

    def _release(self) -> None:
        """Drop this IFD's (and its parsed SubIFDs') per-thread decode buffers."""
        self._local = threading.local()
        for sub in self.__dict__.get("subifds", ()):
            sub._release()

    @cached_property
    def where(self) -> str:
        return f"{self.path} at offset {self.offset} (0x{self.offset:x})"

    # --- tag access ---------------------------------------------------------------------
    def get(self, key: int | str, default: Any = None) -> Any:
        """The value of a tag (by code or spec name), or ``default`` if absent."""
        tag = self.tags.get(key) if key in self.tags else None
        if tag is None:
            return default
        return tag.value

    def _int(self, code: int, default: Any = None) -> Any:
        tag = self._entries.tags.get(code)
        if tag is None:
            return default
        value = tag.value
        if isinstance(value, tuple):
            value = value[0] if value else default
        if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            self._ctx.problem(f"{self.where}: tag {tag_name(code)} has a non-numeric value {value!r}; "
                              f"it is ignored")
            return default
        return int(value)

    def _ints(self, code: int) -> tuple[int, ...] | None:
        tag = self._entries.tags.get(code)
        if tag is None:
            return None
        value = tag.value
        if not isinstance(value, tuple):
            value = (value,)
        if isinstance(value, (bytes, str)) or not all(
                isinstance(v, int) or (isinstance(v, float) and math.isfinite(v)) for v in value):
            self._ctx.problem(f"{self.where}: tag {tag_name(code)} has a non-numeric value; it is ignored")
            return None
        return tuple(int(v) for v in value)

    # --- image structure -----------------------------------------------------------------
    @cached_property
    def compression(self) -> int:
        return enum_or_int(Compression, self._int(259, 1))

    @cached_property
    def photometric(self) -> int | None:
        value = self._int(262)
        if self.compression == Compression.OJPEG and (value is None or value == 2):
            value = 6  # old-style JPEG is YCbCr unless said otherwise (spec-notes/jpeg.md "Old-style JPEG (compression 6)")
        return value

    @cached_property
    def samples_per_pixel(self) -> int:
        spp = self._int(277)
        if spp is None:
            spp = 3 if (self.compression == Compression.OJPEG and self.photometric in (0, 1, 2, 6)) else 1
        if spp < 1:
            raise TiffFormatError(f"{self.where}: SamplesPerPixel is {spp}")
        if spp > 65535:
            raise TiffFormatError(f"{self.where}: SamplesPerPixel {spp} is absurd")
        return spp

    @cached_property
    def bits_per_sample(self) -> int:
        values = self._ints(258)
        if not values:
            return 8 if self.compression == Compression.OJPEG else 1
        values = values[: self.samples_per_pixel]
        if any(v != values[0] for v in values):
            raise UnsupportedFeatureError(f"{self.where}: BitsPerSample differs between samples {values}")
        return values[0]

    @cached_property
    def sample_format(self) -> int:
        values = self._ints(339)
        if not values:
            return 1
        values = values[: self.samples_per_pixel]
        if any(v != values[0] for v in values):
            raise UnsupportedFeatureError(f"{self.where}: SampleFormat differs between samples {values}")
        return values[0]

    @cached_property
    def planar_configuration(self) -> int:
        value = self._int(284, 1)
        if self.samples_per_pixel == 1:
            return 1
        if value not in (1, 2):
            self._ctx.problem(f"{self.where}: PlanarConfiguration {value} is invalid; 1 (contig) is assumed")
            return 1
        return value

    @cached_property
    def is_separate(self) -> bool:
        return self.planar_configuration == PlanarConfiguration.SEPARATE

    @cached_property
    def predictor(self) -> int:
        return self._int(317, 1)

    @cached_property
    def fill_order(self) -> int:
        return self._int(266, 1)

    @cached_property
    def is_tiled(self) -> bool:
        return 322 in self._entries.tags

    @cached_property
    def width(self) -> int:
        value = self._int(256)
        if value is None:
            raise TiffFormatError(f"{self.where}: ImageWidth (256) is missing")
        return value

    @cached_property
    def length(self) -> int:
        value = self._int(257)
        if value is None:
            raise TiffFormatError(f"{self.where}: ImageLength (257) is missing")
        return value

    @cached_property
    def depth(self) -> int:
        return self._int(32997, 1)

    @cached_property
    def rows_per_strip(self) -> int:
        tag = self._entries.tags.get(278)
        if tag is None or tag.count != 1:
            return self.length
        value = self._int(278)
        if value is None:  # a non-numeric value, already reported
            return self.length
        if value <= 0:  # 0, or negative from a signed field type
            self._ctx.problem(f"{self.where}: RowsPerStrip is {value}; one strip is assumed")
            return self.length
        return min(value, self.length)

    @cached_property
    def tile_shape(self) -> tuple[int, int] | None:
        """(TileLength, TileWidth), or None for strips."""
        if not self.is_tiled:
            return None
        tw, tl = self._int(322), self._int(323)
        if tl is None:
            raise TiffFormatError(f"{self.where}: TileWidth is present but TileLength (323) is missing")
        if tw is None:
            raise TiffFormatError(f"{self.where}: TileWidth (322) has no usable value")
        if tw <= 0 or tl <= 0:
            raise TiffFormatError(f"{self.where}: tile size {tl} x {tw} is invalid")
        if tw % 16 or tl % 16:
            # TIFF 6.0 requires multiples of 16; libtiff reads such files with a warning, so do we
            import warnings

            from .errors import TiffFormatWarning
            warnings.warn(f"{self.where}: tile size {tl} x {tw} is not a multiple of 16 (nonstandard, read anyway)",
                          TiffFormatWarning, stacklevel=2)
        return tl, tw

    @cached_property
    def subsampling(self) -> tuple[int, int] | None:
        if self.photometric != 6:
            return None
        values = self._ints(530)
        return (values[0], values[1]) if values and len(values) >= 2 else (2, 2)

    @cached_property
    def extra_samples(self) -> tuple[int, ...]:
        return self._ints(338) or ()

    @cached_property
    def new_subfile_type(self) -> int:
        value = self._int(254, 0)
        if value == 0:
            old = self._int(255)
            if old == 2:
                return 1
            if old == 3:
                return 2
        return value

    @property
    def description(self) -> str | None:
        value = self.get(270)
        return value if isinstance(value, str) else None

    @cached_property
    def jpegtables(self) -> bytes | None:
        tag = self._entries.tags.get(347)
        if tag is None:
            return None
        value = tag.value
        if isinstance(value, bytes):
            return value
        if isinstance(value, tuple) and all(isinstance(v, int) and 0 <= v < 256 for v in value):
            return bytes(value)
        if isinstance(value, tuple) or tag.count > 1:
            self._ctx.problem(f"{self.where}: JPEGTables (347) has field type {tag.type}, not bytes; it is ignored")
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
        limits = self._ctx.limits
        for name, value in (("ImageWidth", self.width), ("ImageLength", self.length), ("ImageDepth", self.depth)):
            if value <= 0:
                raise TiffFormatError(f"{self.where}: {name} is {value}; the image is empty")
            limits.check("max_dimension", value, f"{self.where}: {name}")
        if self.is_tiled:
            tl, tw = self.tile_shape  # type: ignore[misc]
            td = self._int(32998, 1)
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

    # --- strile arrays ----------------------------------------------------------------------
    def _strile_tag(self, tiled_code: int, strip_code: int) -> Tag | None:
        tags = self._entries.tags
        if self.is_tiled:
            # some old writers store tile offsets under the strip tag codes
            return tags.get(tiled_code, tags.get(strip_code))
        return tags.get(strip_code)

    @cached_property
    def segment_offsets(self) -> StrileArray:
        """TileOffsets or StripOffsets, read block by block on demand."""
        tag = self._strile_tag(324, 273)
        if tag is None and self.compression == Compression.OJPEG and 513 in self._entries.tags:
            tag = self._entries.tags[513]
        if tag is None:
            raise TiffFormatError(f"{self.where}: {'TileOffsets (324)' if self.is_tiled else 'StripOffsets (273)'} is missing")
        return self._checked_strile(tag)

    @cached_property
    def segment_byte_counts(self) -> StrileArray | None:
        """TileByteCounts or StripByteCounts (None if missing), read on demand."""
        tag = self._strile_tag(325, 279)
        if tag is None and self.compression == Compression.OJPEG and 514 in self._entries.tags:
            tag = self._entries.tags[514]
        if tag is None:
            return None
        return self._checked_strile(tag)

    def _checked_strile(self, tag: Tag) -> StrileArray:
        expected = self.segment_count
        if tag.count > expected:
            # harmless: libtiff trims such arrays with a warning; so do we
            import warnings

            from .errors import TiffFormatWarning
            warnings.warn(f"{self.where}: {tag.name} has {tag.count} values, {expected} expected; the rest are ignored",
                          TiffFormatWarning, stacklevel=4)
        elif tag.count < expected:
            if expected - tag.count > max(1024, tag.count):
                # a few missing entries can be read as empty segments; this many cannot be justified
                raise TiffFormatError(f"{self.where}: {tag.name} has {tag.count} values, expected {expected} "
                                      f"({self._grid_text()})")
            self._ctx.problem(
                f"{self.where}: {tag.name} has {tag.count} values, expected {expected} "
                f"({self._grid_text()}); the missing segments read as empty")
        return StrileArray(tag, self._ctx, expected)

    def _grid_text(self) -> str:
        g = self.grid
        unit = "tiles" if g.tiled else "strips"
        text = f"{g.down} x {g.across} {unit}" if g.tiled else f"{g.down} {unit}"
        if g.deep > 1:
            text = f"{g.deep} x " + text
        if g.planes > 1:
            text += f" x {g.planes} planes"
        return text

    def segment_location(self, index: int) -> tuple[int, int]:
        """(offset, byte_count) of a segment as stored; (0, 0) for a missing entry."""
        self._tiff._check_open()
        if not 0 <= index < self.grid.count:
            self.grid.coords(index)  # raises TiffIndexError with the range
        offsets = self.segment_offsets
        counts = self.segment_byte_counts
        offset = offsets[index] if index < offsets.length else 0
        if counts is None:
            count = self._estimated_byte_count(index, offset)
        else:
            count = counts[index] if index < counts.length else 0
        return offset, count

    def _estimated_byte_count(self, index: int, offset: int) -> int:
        self._ctx.problem(f"{self.where}: {'TileByteCounts' if self.is_tiled else 'StripByteCounts'} is missing")
        if self.compression == 1:
            d, h, w, s = self.grid.stored_shape(index)
            return math.ceil(d * h * w * s * self.bits_per_sample / 8) if self.bits_per_sample < 8 else \
                d * h * math.ceil(w * s * self.bits_per_sample / 8)
        # compressed: up to the end of the file (as libtiff), but no more than any codec needs for
        # the segment's raw size; else N strips of a hostile file each read the whole file (N x size)
        d, h, w, s = self.grid.stored_shape(index)
        bound = 2 * d * h * ((w * s * self.bits_per_sample + 7) // 8) + 4096
        return max(0, min(self._tiff.source.size - offset, bound))

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

    def _read_data(self, index: int, offset: int, count: int, buffered: bool = False) -> bytes | memoryview:
        """The segment's bytes; with ``buffered`` (callers that are done with them before this
        thread reads again) a view of this thread's reusable read buffer, for local files."""
        limits = self._ctx.limits
        if count > limits.max_segment_bytes:
            limits.check("max_segment_bytes", count, f"{self.where}: segment {index}: byte count")
        source = self._tiff.source
        size = source.size
        where = f"{self.where}: segment {index}" if offset >= size or offset + count > size else ""
        if offset >= size:
            raise TruncatedError(f"{where}: offset {offset} (0x{offset:x}) is past the end of the file ({size} bytes)")
        if buffered and count <= _READ_BUFFER_MAX:
            data: bytes | memoryview = source.read_into(offset, self._read_buffer(count))
        else:
            data = source.read_range(offset, count)
        if len(data) < count:
            self._ctx.problem(f"{where}: {count} bytes at offset {offset} pass the end of the file "
                              f"({size} bytes); {len(data)} are there", TruncatedError)
        return data

    @cached_property
    def spec(self) -> SegmentSpec:
        """The frozen decoding spec of this IFD's segments (picklable)."""
        compression = self.compression
        dtype = self.dtype
        photometric = self.photometric if self.photometric is not None else 1
        if self.subsampling not in (None, (1, 1)) and (compression not in JPEG_COMPRESSIONS or self.is_separate):
            raise UnsupportedFeatureError(f"{self.where}: YCbCr with subsampling {self.subsampling} is only "
                                          "decoded in JPEG-compressed images")
        colorspace: Any = None
        outcolorspace: Any = None
        if compression in JPEG_COMPRESSIONS:
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
        predictor = self.predictor
        if compression in IMAGE_DECODERS or compression in JPEG_COMPRESSIONS:
            predictor = 1  # predictors do not apply to image codecs
        spec = SegmentSpec(
            compression=int(compression), dtype=dtype, bits=self.bits_per_sample, sampleformat=self.sample_format,
            byteorder=self._tiff.byteorder, predictor=predictor, fillorder=self.fill_order,
            samples=self.grid.segment_samples, tiled=self.is_tiled, photometric=photometric,
            jpegtables=self.jpegtables if compression in JPEG_COMPRESSIONS else None,
            jpeg_colorspace=colorspace, jpeg_outcolorspace=outcolorspace,
            t4options=self._int(292, 0) or 0,
            webp_alpha=compression in (Compression.WEBP, Compression.WEBP_OLD) and self.samples_per_pixel == 4,
            strict=self._ctx.strict, where=self.where, segment_rows=self.grid.segment[1],
        )
        spec.check_supported()
        d, h, w, s = self.grid.stored_shape(0)
        self._ctx.limits.check("max_segment_bytes", d * h * w * s * dtype.itemsize,
                               f"{self.where}: decoded size of one segment")
        return spec

    @cached_property
    def _rgb_jpeg_specs(self) -> dict[bool, SegmentSpec]:
        """The two decoding variants of an RGB JPEG IFD, keyed by "the stream is JFIF"."""
        from dataclasses import replace
        return {True: replace(self.spec, jpeg_colorspace=None), False: replace(self.spec, jpeg_colorspace=2)}

    def segment_valid_shape(self, index: int) -> tuple[int, ...]:
        """Shape of the part of segment ``index`` inside the image (same axes as read_segment)."""
        vd, vh, vw = self.grid.valid_shape(index)
        return self._segment_axes((vd, vh, vw, self.grid.segment_samples))

    @cached_property
    def _fast_reader(self) -> Any:
        """A prepared closure for the hot cases - an 8-bit JPEG tile, or an uncompressed
        byte-aligned tile, of a local file whose strile blocks are loaded - with as few
        layers as possible (tifffile prepares one decode closure per page the same way). It returns
        None for anything else (not loaded, sparse, outside the file, a stream of another
        size, too few bytes, any codec error) and the general path then reads the segment
        and reports problems."""
        from .sources import FileSource
        source = self._tiff.source
        spec = self.spec
        if not (isinstance(source, FileSource) and self.is_tiled and self.depth == 1
                and self.segment_byte_counts is not None):
            return None
        jpeg = spec.compression == Compression.JPEG and spec.bits <= 8 and spec.dtype == numpy.uint8
        raw = (spec.compression == 1 and spec.predictor == 1 and spec.fillorder == 1
               and spec.bits in (8, 16, 32, 64) and spec.sampleformat != 5 and hasattr(os, "preadv"))
        if not (jpeg or raw):
            return None
        import imagecodecs
        tiff = self._tiff
        fd, size = source.fileno(), source.size
        offsets, counts = self.segment_offsets, self.segment_byte_counts
        entries, count = StrileArray.block_entries, self.grid.count
        max_bytes = self._ctx.limits.max_segment_bytes
        d, h, w, s = self.grid.stored_shape(0)
        shape = self._segment_axes((d, h, w, s))
        dtype, decode = spec.dtype, imagecodecs.jpeg8_decode
        tables, colorspace, outcolorspace = spec.jpegtables, spec.jpeg_colorspace, spec.jpeg_outcolorspace
        auto_rgb = colorspace == "auto-rgb"
        frame, stream = jpeg_frame, (8, h, w, s)

        def locate(index: int) -> tuple[int, int]:
            """(offset, byte count) from loaded strile blocks; (0, 0) sends to the general path."""
            if tiff.__dict__.get("_closed_flag") or not 0 <= index < count:
                return 0, 0
            block, pos = divmod(index, entries)
            offs, cnts = offsets._blocks.get(block), counts._blocks.get(block)
            if offs is None or cnts is None:
                return 0, 0
            return offs[pos], cnts[pos]

        if raw:
            file_dtype = dtype.newbyteorder(tiff.byteorder)
            need = d * h * w * s * dtype.itemsize
            native = file_dtype == dtype or dtype.itemsize == 1
            preadv = os.preadv

            def read_raw(index: int) -> numpy.ndarray | None:
                offset, nbytes = locate(index)
                if not offset or nbytes < need or offset + need > size:
                    return None
                buf = bytearray(need)  # the returned array's memory; a direct preadv, not
                try:                   # source.read_into: 2 us less on a 3 us 16 x 16 tile
                    got = preadv(fd, [buf], offset)
                except OSError:
                    return None
                source.requests += 1
                source.bytes_read += got
                if got != need:
                    return None
                arr = numpy.frombuffer(buf, file_dtype).reshape(shape)
                return arr if native else arr.astype(dtype)

            return read_raw

        known = b""  # header prefix of a stream that matched (codecs.jpeg_frame_prefix)

        def read(index: int) -> numpy.ndarray | None:
            nonlocal known
            offset, nbytes = locate(index)
            if not offset or not nbytes or offset + nbytes > size or nbytes > max_bytes:
                return None
            try:
                # into this thread's reusable buffer, which stays in cache: a fresh bytes object
                # per tile cost ~4 % of the decode time (benchmarks/RESULTS.md, reader section)
                data = (source.read_into(offset, self._read_buffer(nbytes)) if nbytes <= _READ_BUFFER_MAX
                        else source.read_range(offset, nbytes))
            except TiffError:
                return None  # the general path reads it again and reports the error
            if len(data) != nbytes:
                return None
            # the stream must be an 8-bit frame of exactly the tile's shape: that bounds what the
            # codec allocates (no decompression bomb). Tiles of one image share the header bytes
            # up to the frame header, so one known prefix usually replaces the marker walk.
            if not known or data[: len(known)] != known:
                if frame(data) != stream:
                    return None  # the general path decodes it and reports what is wrong
                known = jpeg_frame_prefix(data) or b""
            cs = (None if data[6:10] == b"JFIF" else 2) if auto_rgb else colorspace
            try:  # the codec allocates the array (the check above bounds it); slightly faster than out=
                out = decode(data, tables=tables, colorspace=cs, outcolorspace=outcolorspace, shape=(h, w))
            except Exception:
                return None
            return out if out.shape == shape and out.dtype == dtype else None

        return read

    def _read_buffer(self, nbytes: int) -> memoryview:
        """A view of ``nbytes`` of this thread's reusable read buffer (released by close)."""
        local = self._local
        view = getattr(local, "read_view", None)
        if view is None or len(view) < nbytes:
            view = local.read_view = memoryview(bytearray(max(nbytes, 1 << 16)))
        return view[:nbytes]

    def _segment_axes(self, dhws: tuple[int, int, int, int]) -> tuple[int, ...]:
        d, h, w, s = dhws
        shape: tuple[int, ...] = (h, w)
        if self.depth > 1 or d > 1:  # d > 1: TileDepth larger than a flat image
            shape = (d, h, w)
        if not self.is_separate and (self.photometric == 2 or self.samples_per_pixel > 1):
            shape = (*shape, s)
        return shape

    def _decode(self, index: int, fill: Any, out: numpy.ndarray | None = None,
                location: tuple[int, int] | None = None, buffered: bool = False) -> numpy.ndarray:
        spec = self.spec
        shape, valid = self.grid.shapes(index)
        offset, count = self.segment_location(index) if location is None else location
        if offset == 0 or count == 0:
            data = None
        else:
            if spec.compression == 1:
                count = self._uncompressed_read_size(index, shape, count)
            data = self._read_data(index, offset, count, buffered)
            if spec.compression == Compression.OJPEG:
                data = self._ojpeg_stream(index, offset, data, shape)
        if spec.jpeg_colorspace == "auto-rgb":
            # RGB JPEG: JFIF streams are YCbCr inside; others (Adobe, libtiff) are stored as RGB
            spec = self._rgb_jpeg_specs[data is not None and data[6:10] == b"JFIF"]
        return decode_segment(spec, data, shape, valid=valid, out=out, fill=fill, index=index)

    def _ojpeg_stream(self, index: int, offset: int, data: bytes, shape: tuple[int, int, int, int]) -> bytes:
        """Map an old-style JPEG segment to a complete JPEG stream (tiffio/ojpeg.py)."""
        from .ojpeg import SOI, OJpegTables, build_scan_header
        if data[:2] == SOI:
            return data
        where = f"{self.where}: segment {index}"
        start = self._int(513)
        length = self._int(514)
        if start and length and self.segment_count == 1 and start <= offset < start + length \
                and length <= self._ctx.limits.max_segment_bytes:
            # the strip lies inside a complete interchange stream, whose scan may be longer
            # than StripByteCounts says (libtiff decodes the stream)
            stream = self._read_data(index, start, length)
            if stream[:2] == SOI:
                return stream
        if start and 0 < offset - start <= 1 << 20:
            prefix = self._ctx.read_metadata(start, offset - start, f"{where}: JPEGInterchangeFormat stream header")
            if prefix[:2] == SOI:
                return prefix + data
        tables = self.__dict__.get("_ojpeg_tables")
        if tables is None:
            q, dc, ac = self._ints(519), self._ints(520), self._ints(521)
            if not (q and dc and ac):
                raise UnsupportedFeatureError(f"{where}: old-style JPEG data without a stream header or "
                                              "JPEGQTables/JPEGDCTables/JPEGACTables cannot be mapped to a JPEG stream")
            tables = OJpegTables.read(q, dc, ac, self._ctx.read_metadata, self.where)
            self.__dict__["_ojpeg_tables"] = tables
        _d, h, w, _s = shape
        components = self.samples_per_pixel if not self.is_separate else 1
        header = build_scan_header(tables, h, w, components, self.subsampling or (1, 1), self._int(515, 0) or 0)
        return header + data + b"\xff\xd9"

    def _uncompressed_read_size(self, index: int, shape: tuple[int, int, int, int], count: int) -> int:
        d, h, w, s = shape
        bits = self.bits_per_sample
        need = d * h * ((w * s * bits + 7) // 8)
        if count < need:
            self._ctx.problem(f"{self.where}: segment {index} byte count {count} is less than the {need} bytes "
                              "an uncompressed segment of its shape needs")
            return need
        return min(count, need) if count > need else count

    def _fill_value(self, fill: Any) -> Any:
        if fill is not None:
            return fill
        nodata = self.nodata
        return 0 if nodata is None else nodata

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
            fast = self._fast_reader
            if fast is not None:
                arr = fast(index)
                if arr is not None:
                    return arr
        self._tiff._check_open()
        arr = self._decode(index, self._fill_value(fill))
        if valid:
            vd, vh, vw = self.grid.valid_shape(index)
            arr = arr[:vd, :vh, :vw]
        return arr.reshape(self._segment_axes(arr.shape))

    def asarray(self, *, fill: Any = None, workers: int | None = None, out: numpy.ndarray | None = None) -> numpy.ndarray:
        """The whole image, equal to tifffile's ``TiffPage.asarray()`` (shape :attr:`shape`).

        Decoded like :meth:`read_region` over the whole image (shared thread pool,
        per-thread buffers, segments decoded straight into the result where it is
        contiguous); ``out`` may be a C-contiguous array of :attr:`shape` and :attr:`dtype`.
        """
        self._tiff._check_open()
        self.spec  # noqa: B018 - raise UnsupportedFeatureError before allocating
        self.segment_offsets  # noqa: B018 - and reject a strile count the file cannot back
        return self.read_region(0, 0, self.length, self.width, z=0, depth=self.depth, fill=fill,
                                workers=workers, out=out)

    # --- regions ----------------------------------------------------------------------------
    def _region_axes(self, planes_shape: tuple[int, int, int, int, int]) -> tuple[int, ...]:
        p, d, h, w, s = planes_shape
        zyx: tuple[int, ...] = (h, w) if self.depth == 1 else (d, h, w)
        if self.photometric == 2 or self.samples_per_pixel > 1:
            return (p, *zyx) if self.is_separate else (*zyx, s)
        return zyx

    def _scratch(self, shape: tuple[int, int, int, int]) -> numpy.ndarray:
        """A per-thread decode buffer of one segment's stored shape (no per-tile allocation)."""
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        buf = buffers.get(shape)
        if buf is None:
            buf = buffers[shape] = numpy.empty(shape, self.dtype)
        return buf

    def read_region(self, y: int, x: int, height: int, width: int, *, z: int = 0, depth: int | None = None,
                    out: numpy.ndarray | None = None, fill: Any = None, workers: int | None = None) -> numpy.ndarray:
        """Decode the window (y, x, height, width) - and z, depth for volumes.

        Only the segments the window covers are read and decoded, in a thread pool,
        each straight into a reusable per-thread buffer and then into the result.
        The result has the image's axes (:attr:`shape`) with Y and X (and Z) cut
        to the window: it equals ``asarray()[y:y+height, x:x+width]`` for contiguous
        samples, ``asarray()[:, y:y+height, x:x+width]`` for separate planes.
        Parts of the window outside the image, and sparse segments, are ``fill``
        (default: GDAL_NODATA if present, else 0).
        """
        self._tiff._check_open()
        for name, value in (("y", y), ("x", x), ("height", height), ("width", width), ("z", z)):
            if not isinstance(value, (int, numpy.integer)) or isinstance(value, bool):
                raise TiffValueError(f"read_region: {name} must be an int, not {type(value).__name__}")
        if depth is None:
            depth = self.depth - z if self.depth > 1 else 1
        if height <= 0 or width <= 0 or depth <= 0:
            raise TiffValueError(f"read_region: the window {depth} x {height} x {width} is empty")
        grid = self.grid
        spec = self.spec
        dtype = self.dtype
        shaped = (grid.planes, depth, height, width, grid.segment_samples)
        out_shape = self._region_axes(shaped)
        self._ctx.limits.check("max_output_bytes", math.prod(shaped) * dtype.itemsize, f"{self.where}: read_region")
        if out is None:
            result = numpy.empty(shaped, dtype)
        else:
            if out.shape != out_shape or out.dtype != dtype or not out.flags.c_contiguous:
                raise TiffValueError(f"out must be a C-contiguous array of shape {out_shape} and dtype {dtype}, "
                                     f"not {out.shape} {out.dtype}")
            result = out.reshape(shaped)
        fill_value = self._fill_value(fill)
        inside = z >= 0 and y >= 0 and x >= 0 and z + depth <= self.depth and y + height <= self.length \
            and x + width <= self.width
        if not inside:
            result[...] = fill_value
        parts = [part for plane in range(grid.planes) for part in grid.region(z, y, x, depth, height, width, plane)]
        # JPEG segments are decoded from this thread's reusable read buffer (their decoded
        # array never refers to it); other codecs keep their own bytes
        buffered = spec.compression == Compression.JPEG

        def work(part: Any) -> None:
            index, plane, src, dst = part
            target = result[plane][dst]
            location = self.segment_location(index)
            if location[0] == 0 or location[1] == 0:
                target[...] = fill_value  # no segment-sized temporary: sparse strips can be huge
                return
            shape = grid.stored_shape(index)
            full = all(s.start == 0 and s.stop == n for s, n in zip(src, shape[:3]))
            if full and target.flags.c_contiguous and spec.compression != 1:
                self._decode(index, fill_value, out=target, location=location, buffered=buffered)
                return
            arr = self._decode(index, fill_value, out=self._scratch(shape), location=location, buffered=buffered)
            target[...] = arr[src]

        self._run(work, parts, workers)
        return out if out is not None else result.reshape(out_shape)

    def _run(self, func: Any, items: list, workers: int | None) -> None:
        workers = default_workers() if workers is None else max(1, int(workers))
        if workers == 1 or len(items) < 2:
            for item in items:
                func(item)
            return
        for _ in _executor(min(workers, 64)).map(func, items):
            pass

    def iter_regions(self, chunk_shape: tuple[int, int], *, overlap: int = 0, fill: Any = None,
                     workers: int | None = None) -> Iterator[tuple[RegionWindow, numpy.ndarray]]:
        """Walk the image in chunks of ``chunk_shape`` (height, width), row by row.

        Yields (window, array): each array holds one chunk plus a halo of ``overlap``
        pixels on every side, clipped at the image border; ``array[window.core]`` is the
        chunk itself. Memory is bounded by one chunk and its halo.
        """
        ch, cw = (int(v) for v in chunk_shape)
        if ch <= 0 or cw <= 0 or overlap < 0:
            raise TiffValueError(f"iter_regions: invalid chunk_shape {chunk_shape} or overlap {overlap}")
        for y0 in range(0, self.length, ch):
            h = min(ch, self.length - y0)
            ya, yb = max(0, y0 - overlap), min(self.length, y0 + h + overlap)
            for x0 in range(0, self.width, cw):
                w = min(cw, self.width - x0)
                xa, xb = max(0, x0 - overlap), min(self.width, x0 + w + overlap)
                arr = self.read_region(ya, xa, yb - ya, xb - xa, fill=fill, workers=workers)
                core = (slice(y0 - ya, y0 - ya + h), slice(x0 - xa, x0 - xa + w))
                yield RegionWindow(ya, xa, yb - ya, xb - xa, core), arr

    def memmap(self) -> numpy.memmap:
        """A read-only numpy.memmap of the image, shaped :attr:`shape`.

        Possible only for uncompressed 8/16/32/64-bit samples without predictor or
        FillOrder 2, stored contiguously in a local file (as tifffile's ``memmap``);
        anything else raises TiffUsageError saying why.
        """
        self._tiff._check_open()
        from .sources import FileSource
        reasons = []
        source = self._tiff.source
        if not isinstance(source, FileSource):
            reasons.append("the TIFF was not opened from a local file path")
        if self.compression != 1:
            reasons.append(f"the image is compressed ({compression_name(self.compression)})")
        if self.bits_per_sample not in (8, 16, 32, 64) or self.sample_format == 5:
            reasons.append(f"{self.bits_per_sample}-bit samples of format {self.sample_format} are not a numpy dtype")
        if self.predictor != 1 or self.fill_order != 1:
            reasons.append("a predictor or FillOrder 2 transforms the stored samples")
        if self.subsampling not in (None, (1, 1)):
            reasons.append("YCbCr samples are subsampled")
        if self.is_tiled and (self.tile_shape[1] != self.width or self.length % self.tile_shape[0]):  # type: ignore[index]
            reasons.append("tiles narrower than the image are not stored in row order")
        if not reasons:
            offsets = self.segment_offsets.to_numpy()
            counts = self.segment_byte_counts
            nbytes = math.prod(self.shaped) * self.dtype.itemsize
            if counts is None or len(offsets) != self.segment_count:
                reasons.append("the strip or tile arrays are incomplete")
            else:
                counts_arr = counts.to_numpy()
                if (offsets[1:] != offsets[:-1] + counts_arr[:-1]).any() or counts_arr.sum() < nbytes \
                        or offsets[0] == 0 or offsets[0] + nbytes > source.size:
                    reasons.append("the segments are not stored contiguously in the file")
        if reasons:
            raise TiffUsageError(f"{self.where}: cannot memory-map: " + "; ".join(reasons))
        dtype = self.dtype.newbyteorder(self._tiff.byteorder)
        mm = numpy.memmap(source.name, dtype=dtype, mode="r", offset=int(offsets[0]), shape=self.shaped)
        return mm.reshape(self.shape)

    # --- SubIFDs ----------------------------------------------------------------------------
    @cached_property
    def subifds(self) -> list[IFD]:
        """The IFDs listed in SubIFDs (330), each followed by its own chain."""
        tag = self._entries.tags.get(330)
        if tag is None:
            return []
        if self._depth + 1 > self._ctx.limits.max_subifd_depth:
            raise LimitExceededError(f"{self.where}: SubIFDs nested deeper than Limits.max_subifd_depth="
                                     f"{self._ctx.limits.max_subifd_depth}; pass limits=tiffio.Limits("
                                     "max_subifd_depth=...) to tiffio.open to allow it")
        offsets = self._ints(330) or ()
        result: list[IFD] = []
        seen = {self.offset}
        for k, first in enumerate(offsets):
            if first == self.offset:
                self._ctx.problem(f"{self.where}: SubIFD {k} points back to its parent IFD (a cycle)")
                continue
            if first in seen:
                # writers may list every SubIFD *and* chain them (spec-notes/subifds.md
                # "Chains inside SubIFDs"): an offset already reached is the same IFD
                continue
            chain = IFDSequence(self._tiff, first, f"{self.path} SubIFD {k}:", self._depth + 1)
            for sub in chain:
                if sub.offset in seen:
                    break
                seen.add(sub.offset)
                result.append(sub)
        return result


def _photometric_name(code: int) -> Any:
    from .enums import Photometric
    try:
        return Photometric(code).name
    except ValueError:
        return None
