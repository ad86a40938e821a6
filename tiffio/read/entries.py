"""Parse IFDs (spec-notes/structure.md "IFD layout", spec-notes/bigtiff.md "IFD layout").

* Entries are parsed when an IFD is first visited; tag *values* that do not fit
  inline are read when first asked for.
* Strip/tile offset and byte-count arrays are :class:`StrileArray` objects that
  read one block of entries at a time (like libtiff's on-demand strile loading),
  so that reading one tile of an image with a million tiles reads a few KiB.
* The chain walk detects cycles and obeys :class:`~tiffio.limits.Limits`.
"""

from __future__ import annotations

import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy

from ..enums import FieldType
from ..errors import LimitExceededError, TiffFormatError, TiffFormatWarning, TruncatedError
from ..format.layout import FIELD_TYPE_CHAR, FIELD_TYPE_SIZE, Layout
from ..format.tags import tag_name
from ..limits import Limits
from ..sources import ByteSource, require_range

__all__ = ["Tag", "StrileArray", "IFDEntries", "parse_ifd_entries", "decode_value", "ParseContext", "prefetch_strile_blocks"]


class ParseContext:
    """What every parsing step needs: source, layout, limits, strictness, and a
    metadata byte budget shared by the whole file.

    It also names the file in messages: :meth:`locate` turns an IFD's label into the
    location every message about that IFD starts with (``'slide.tif: IFD 0 at offset 8
    (0x8)'``), so each warning and error raised while reading says which file, however
    many files a program reads at once (the source's name: its path or redacted URL;
    nothing for anonymous sources such as bytes)."""

    def __init__(self, source: ByteSource, layout: Layout, limits: Limits, strict: bool) -> None:
        self.source = source
        self.layout = layout
        self.limits = limits
        self.strict = strict
        self.metadata_bytes = 0
        self._lock = threading.Lock()
        self._pages: dict[int, bytes] = {}
        name = str(getattr(source, "name", "") or "")
        self.file_prefix = "" if not name or name.startswith("<") else f"{name}: "

    def locate(self, label: str, offset: int) -> str:
        """Where the IFD ``label`` (``'IFD 2'``, ``'IFD 0 SubIFD 1: 0'``) at ``offset`` is, for
        messages, with the file's name first."""
        return f"{self.file_prefix}{label} at offset {offset} (0x{offset:x})"

    #: small metadata structures are read in aligned pages of this size and cached, so that
    #: the header, an IFD and the tag values stored next to it cost one request
    PAGE_SIZE = 4096
    MAX_PAGES = 64

    def seed_page(self, index: int, data: bytes) -> None:
        """Give the cache a page read elsewhere (the header read on open)."""
        self._pages[index] = data

    def _page(self, index: int) -> bytes:
        data = self._pages.get(index)
        if data is None:
            data = self.source.read_range(index * self.PAGE_SIZE, self.PAGE_SIZE)
            with self._lock:
                if len(self._pages) >= self.MAX_PAGES:
                    self._pages.pop(next(iter(self._pages)))
                self._pages[index] = data
        return data

    def read_metadata(self, offset: int, size: int, what: str) -> bytes:
        """Read a metadata structure, charging the metadata budget."""
        with self._lock:
            self.metadata_bytes += size
            total = self.metadata_bytes
        self.limits.check("max_metadata_bytes", total, what)
        if self.source.remote and 0 <= offset and offset + size <= self.source.size:
            # remote: 64 KiB blocks, cached with single-flight (tiffio.sources.remote), not 4 KiB pages
            data = self.source.read_metadata(offset, size)  # type: ignore[attr-defined]
            if len(data) != size:
                raise TruncatedError(f"{what}: read {len(data)} of {size} bytes at offset {offset} (0x{offset:x})")
            return data
        page = self.PAGE_SIZE
        if size > page or offset < 0 or offset + size > self.source.size:
            return require_range(self.source, offset, size, what)
        first, last = offset // page, (offset + size - 1) // page
        if first == last:
            buf = self._page(first)
        else:
            buf = self._page(first) + self._page(last)
        start = offset - first * page
        data = buf[start: start + size]
        if len(data) != size:
            raise TruncatedError(f"{what}: read {len(data)} of {size} bytes at offset {offset} (0x{offset:x})")
        return data

    def prefetch(self, spans: list[tuple[int, int]]) -> None:
        """Fetch the metadata blocks of several (offset, size) spans together (remote sources:
        one round trip; local sources: nothing to do)."""
        if self.source.remote and spans:
            self.source.prefetch_metadata(spans)  # type: ignore[attr-defined]

    def problem(self, message: str, exc_class: type[TiffFormatError] = TiffFormatError) -> None:
        """A recoverable spec violation: raise in strict mode, warn otherwise."""
        if self.strict:
            raise exc_class(message + " (strict=True; strict=False reads it anyway)")
        warnings.warn(message, TiffFormatWarning, stacklevel=3)


#: one value of each integer / floating-point field type, per byte order
_SCALARS: dict[tuple[str, int], struct.Struct] = {
    (bo, code): struct.Struct(bo + char) for bo in "<>" for code, char in FIELD_TYPE_CHAR.items()
    if code not in (FieldType.ASCII, FieldType.UNDEFINED, FieldType.RATIONAL, FieldType.SRATIONAL)}


def decode_value(layout: Layout, field_type: int, count: int, raw: bytes) -> Any:
    """Decode ``count`` values of ``field_type`` from ``raw`` (spec-notes/structure.md
    "Field types"): scalars for count 1, tuples otherwise; ASCII to str (the first
    NUL-terminated string), UNDEFINED to bytes, RATIONALs to (numerator, denominator)."""
    if field_type == FieldType.ASCII:
        text = bytes(raw[:count]).split(b"\x00", 1)[0]
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError:
            return text.decode("latin-1")
    if field_type == FieldType.UNDEFINED:
        return bytes(raw[:count])
    bo = layout.byteorder
    if count == 1:  # the common case (ImageWidth, Compression...): one precompiled struct
        scalar = _SCALARS.get((bo, field_type))
        if scalar is not None and len(raw) >= scalar.size:
            return scalar.unpack_from(raw)[0]
    char = FIELD_TYPE_CHAR.get(field_type)
    if char is None:
        return bytes(raw)  # unknown type: kept raw
    if field_type in (FieldType.RATIONAL, FieldType.SRATIONAL):
        flat = struct.unpack(f"{bo}{2 * count}{char}", raw[: 8 * count])
        pairs = tuple(zip(flat[0::2], flat[1::2]))
        return pairs[0] if count == 1 else pairs
    if count > 64:
        values = numpy.frombuffer(raw, layout.value_dtype(field_type), count).tolist()
    else:
        values = struct.unpack(f"{bo}{count}{char}", raw[: FIELD_TYPE_SIZE[field_type] * count])
    return values[0] if count == 1 else tuple(values)


class Tag:
    """One IFD entry. ``value`` is decoded (and, if stored out of line, read) on first access."""

    __slots__ = ("code", "type", "count", "value_offset", "raw_inline", "_value", "_ctx", "where")

    def __init__(self, code: int, field_type: int, count: int, raw_inline: bytes, value_offset: int | None,
                 ctx: ParseContext, where: str) -> None:
        self.code = code
        self.type = field_type
        self.count = count
        self.raw_inline = raw_inline
        self.value_offset = value_offset  # None when the value is stored inline
        self._value: Any = _UNSET
        self._ctx = ctx
        self.where = where

    @property
    def name(self) -> str:
        """The tag's spec name (``"ImageWidth"``), or ``Tag<code>`` when the code is unknown."""
        return tag_name(self.code)

    @property
    def byte_count(self) -> int:
        """Size in bytes of the value as stored (count x the field type's size)."""
        size = FIELD_TYPE_SIZE.get(self.type)
        return self.count * size if size is not None else len(self.raw_inline)

    def raw_bytes(self) -> bytes:
        """The value's bytes as stored (file byte order)."""
        if self.value_offset is None:
            return self.raw_inline[: self.byte_count]
        n = self.byte_count
        what = f"{self.where}: value of tag {self.name} ({self.code}) at offset {self.value_offset}"
        if self.value_offset + n > self._ctx.source.size:
            raise TruncatedError(f"{what}: {n} bytes pass the end of the file ({self._ctx.source.size} bytes)")
        self._ctx.limits.check("max_tag_bytes", n, f"{self.where}: tag {self.name} ({self.code})")
        return self._ctx.read_metadata(
            self.value_offset, n, f"{self.where}: value of tag {self.name} ({self.code}) at offset {self.value_offset}"
        )

    @property
    def value(self) -> Any:
        """The decoded value, read and decoded on first access: an int or float for one number,
        a tuple for several, str for ASCII, bytes for UNDEFINED and unknown types.

        Raises TruncatedError when the value lies outside the file."""
        if self._value is _UNSET:
            self._value = decode_value(self._ctx.layout, self.type, self.count, self.raw_bytes())
        return self._value

    def __repr__(self) -> str:
        type_name = FieldType(self.type).name if self.type in FieldType._value2member_map_ else str(self.type)
        return f"Tag({self.code} {self.name}, {type_name}, count={self.count})"


_UNSET = object()


class StrileArray:
    """A strip/tile offset or byte-count array read block by block on demand.

    Small arrays (at most ``block_entries``) are read whole on first use; large
    ones one block at a time. ``to_numpy()`` reads everything in one request.
    """

    block_entries = 1024

    def __init__(self, tag: Tag, ctx: ParseContext, length: int | None = None) -> None:
        self._tag = tag
        self._ctx = ctx
        self.length = tag.count if length is None else min(length, tag.count)
        if tag.type not in (FieldType.BYTE, FieldType.SHORT, FieldType.LONG, FieldType.LONG8,
                            FieldType.IFD, FieldType.IFD8, FieldType.SLONG, FieldType.SLONG8):
            raise TiffFormatError(f"{tag.where}: tag {tag.name} has field type {tag.type}, expected an integer type")
        self._dtype = ctx.layout.value_dtype(tag.type)
        self._itemsize = self._dtype.itemsize
        #: the blocks read so far: block index -> values (filled in place, never replaced)
        self.blocks: dict[int, numpy.ndarray] = {}
        self._all: numpy.ndarray | None = None
        self._lock = threading.Lock()
        if tag.value_offset is None:
            self._all = numpy.frombuffer(tag.raw_inline, self._dtype, tag.count)[: self.length].astype(numpy.int64)

    def __len__(self) -> int:
        return self.length

    @property
    def inline(self) -> bool:
        """True when the values sit in the IFD entry itself (reading them needs no I/O)."""
        return self._all is not None

    def _read(self, first: int, n: int) -> numpy.ndarray:
        tag = self._tag
        offset = tag.value_offset + first * self._itemsize  # type: ignore[operator]
        what = f"{tag.where}: {tag.name} entries {first}..{first + n - 1}"
        self._ctx.limits.check("max_tag_bytes", n * self._itemsize, what)
        data = self._ctx.read_metadata(offset, n * self._itemsize, what)
        return numpy.frombuffer(data, self._dtype).astype(numpy.int64)

    def block_span(self, index: int) -> tuple[int, int] | None:
        """(file offset, byte count) of the block of entries holding ``index``, or None when that
        block is loaded (or the array is inline, or ``index`` is outside it)."""
        if self._all is not None or not 0 <= index < self.length:
            return None
        block = index // self.block_entries
        if block in self.blocks:
            return None
        first = block * self.block_entries
        n = min(self.block_entries, self.length - first)
        return self._tag.value_offset + first * self._itemsize, n * self._itemsize  # type: ignore[operator]

    def __getitem__(self, index: int) -> int:
        # hot path (one lookup per segment read): blocks are kept as Python lists, whose
        # indexing is several times cheaper than numpy scalar access + int()
        block, pos = divmod(index, self.block_entries)
        values = self.blocks.get(block)
        if values is not None and 0 <= index:
            return values[pos]
        if not 0 <= index < self.length:
            raise IndexError(index)
        first = block * self.block_entries
        n = min(self.block_entries, self.length - first)
        if self._all is not None:
            values = self._all[first: first + n].tolist()
        else:
            values = self._read(first, n).tolist()
        with self._lock:
            self.blocks[block] = values
        return values[pos]

    def to_numpy(self) -> numpy.ndarray:
        """All values as an int64 array (one read)."""
        if self._all is None:
            values = self._read(0, self.length) if self.length else numpy.zeros(0, numpy.int64)
            with self._lock:
                self._all = values
        return self._all

    def __iter__(self) -> Iterator[int]:
        return iter(self.to_numpy().tolist())

    @property
    def name(self) -> str:
        """The spec name of the tag holding the array (StripOffsets, TileByteCounts...)."""
        return self._tag.name

    def backed_length(self, file_size: int) -> int:
        """How many of the first ``length`` entries lie inside a file of ``file_size`` bytes
        (all of them for an inline array): what the file can back, whatever the count says."""
        offset = self._tag.value_offset
        if offset is None:
            return self.length
        return max(0, min(self.length, (file_size - offset) // self._itemsize))


class IFDEntries:
    """The parsed entries of one IFD: ``tags`` (code -> Tag, file order) and ``next_offset``."""

    __slots__ = ("offset", "tags", "next_offset", "where")

    def __init__(self, offset: int, tags: dict[int, Tag], next_offset: int, where: str) -> None:
        self.offset = offset
        self.tags = tags
        self.next_offset = next_offset
        self.where = where


def parse_ifd_entries(ctx: ParseContext, offset: int, where: str) -> IFDEntries:
    """Read and parse the IFD at ``offset`` (``where`` names it in messages)."""
    layout = ctx.layout
    source = ctx.source
    where = ctx.locate(where, offset)
    if offset < layout.header_size or offset + layout.count_size > source.size:
        raise TruncatedError(f"{where}: the IFD offset is outside the file ({source.size} bytes)")
    if offset % 2 and ctx.strict is False:
        pass  # odd offsets are common in the wild (spec-notes/structure.md "Word alignment"); accepted
    count_bytes = ctx.read_metadata(offset, layout.count_size, f"{where}: entry count")
    (count,) = layout.count_struct.unpack(count_bytes)
    if count == 0:
        raise TiffFormatError(f"{where}: the IFD has no entries")
    ctx.limits.check("max_tags_per_ifd", count, f"{where}: entry count")
    entries_size = count * layout.entry_size
    avail = source.size - offset - layout.count_size
    if entries_size > avail:
        if avail < layout.entry_size:
            raise TruncatedError(f"{where}: {count} entries declared, the file ends after {avail} bytes")
        ctx.problem(f"{where}: {count} entries declared but the file ends after {avail // layout.entry_size}", TruncatedError)
        count = avail // layout.entry_size
        entries_size = count * layout.entry_size
    tail = min(layout.offset_size, avail - entries_size)
    block = ctx.read_metadata(offset + layout.count_size, entries_size + tail, f"{where}: entries")
    next_offset = 0
    if tail == layout.offset_size:
        (next_offset,) = layout.offset_struct.unpack_from(block, entries_size)
    else:
        ctx.problem(f"{where}: the next-IFD offset is cut off by the end of the file", TruncatedError)
    tags: dict[int, Tag] = {}
    inline_size = layout.inline_size
    offset_struct = layout.offset_struct
    file_size = source.size
    for code, field_type, n, raw in layout.entry_struct.iter_unpack(block[:entries_size]):
        if code in tags:
            ctx.problem(f"{where}: tag {tag_name(code)} ({code}) appears twice; the first is used")
            continue
        size = FIELD_TYPE_SIZE.get(field_type)
        if size is None:
            # unknown field type: keep the raw offset field (spec-notes/structure.md "Unknown tags and unknown types")
            tags[code] = Tag(code, field_type, n, raw, None, ctx, where)
            continue
        nbytes = n * size
        if nbytes <= inline_size:
            tags[code] = Tag(code, field_type, n, raw, None, ctx, where)
        else:
            (value_offset,) = offset_struct.unpack(raw)
            if value_offset + nbytes > file_size:
                if not ctx.strict:
                    # lenient: a value the file cannot hold is dropped, as libtiff and tifffile do
                    warnings.warn(f"{where}: tag {tag_name(code)} ({code}): {nbytes} bytes at offset {value_offset} "
                                  f"pass the end of the file; the tag is ignored", TiffFormatWarning, stacklevel=2)
                    continue
                # strict: kept, and a TruncatedError when the value is read
            tags[code] = Tag(code, field_type, n, raw, value_offset, ctx, where)
    return IFDEntries(offset, tags, next_offset, where)


def walk_chain(ctx: ParseContext, first_offset: int, where: Callable[[int], str]) -> Iterator[IFDEntries]:
    """Yield the IFDs of a chain lazily, stopping at offset 0, at a cycle (a
    TiffFormatError in strict mode) or at ``Limits.max_ifds``."""
    seen: set[int] = set()
    offset = first_offset
    index = 0
    while offset:
        if offset in seen:
            ctx.problem(f"{ctx.file_prefix}{where(index)}: the IFD chain loops back to offset {offset} (0x{offset:x})")
            return
        seen.add(offset)
        if index >= ctx.limits.max_ifds:
            raise LimitExceededError(
                f"{ctx.file_prefix}{where(index)}: more than Limits.max_ifds={ctx.limits.max_ifds} IFDs in one chain; "
                "pass limits=tiffio.Limits(max_ifds=...) to tiffio.open to allow more"
            )
        entries = parse_ifd_entries(ctx, offset, where(index))
        yield entries
        offset = entries.next_offset
        index += 1


def prefetch_strile_blocks(ctx: ParseContext, arrays: list[StrileArray | None], indices: Any) -> None:
    """Bring the strile blocks that ``indices`` need from every array (offsets and byte
    counts) into the metadata cache together: one round trip on a remote source, where
    reading them one after the other would cost one each. Nothing to do for local sources."""
    if not ctx.source.remote:
        return
    spans: set[tuple[int, int]] = set()
    for array in arrays:
        if array is None or array.inline:
            continue
        blocks = {int(i) // array.block_entries for i in indices if 0 <= i < array.length}
        for block in blocks:
            span = array.block_span(block * array.block_entries)
            if span is not None:
                spans.add(span)
    if spans:
        ctx.prefetch(sorted(spans))
