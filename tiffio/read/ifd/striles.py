"""Where an IFD's segments are stored: the strile arrays (offsets and byte counts, read lazily a block
at a time), each segment's (offset, byte count) with the repairs libtiff makes for a missing or
short StripByteCounts, checked against the file."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from ..._cached import cached_property
from ...enums import Compression
from ...errors import (
    TiffFormatError,
    TiffFormatWarning,
    TiffIndexError,
    TruncatedError,
)
from ...format.grid import require_segment_index
from ...format.layout import FIELD_TYPE_SIZE
from ..entries import StrileArray, Tag, prefetch_strile_blocks
from .fields import IFDTags

__all__ = ["IFDStriles"]


class IFDStriles(IFDTags):
    """Segment locations of one IFD (the layer of :class:`tiffio.IFD` under segment reading)."""

    def _index_error(self, index: int) -> TiffIndexError:
        count = self.grid.count
        valid = f"0..{count - 1}" if count else "the image has no segments"
        return TiffIndexError(f"{self.where}: segment index {index} out of range ({valid})")

    # --- strile arrays ----------------------------------------------------------------------
    def _strile_tag(self, tiled_code: int, strip_code: int) -> Tag | None:
        tags = self.entries.tags
        if self.is_tiled:
            # some old writers store tile offsets under the strip tag codes
            return tags.get(tiled_code, tags.get(strip_code))
        return tags.get(strip_code)

    @cached_property
    def segment_offsets(self) -> StrileArray:
        """TileOffsets or StripOffsets, read block by block on demand."""
        tag = self._strile_tag(324, 273)
        if tag is None and self.compression == Compression.OJPEG and 513 in self.entries.tags:
            tag = self.entries.tags[513]
        if tag is None:
            raise TiffFormatError(f"{self.where}: {'TileOffsets (324)' if self.is_tiled else 'StripOffsets (273)'} is missing")
        return self._checked_strile(tag)

    @cached_property
    def segment_byte_counts(self) -> StrileArray | None:
        """TileByteCounts or StripByteCounts (None if missing), read on demand."""
        tag = self._strile_tag(325, 279)
        if tag is None and self.compression == Compression.OJPEG and 514 in self.entries.tags:
            tag = self.entries.tags[514]
        if tag is None:
            return None
        return self._checked_strile(tag)

    def _checked_strile(self, tag: Tag) -> StrileArray:
        expected = self.segment_count
        if tag.count > expected:
            # harmless: libtiff trims such arrays with a warning; so do we
            warnings.warn(f"{self.where}: {tag.name} has {tag.count} values, {expected} expected; the rest are ignored",
                          TiffFormatWarning, stacklevel=4)
        elif tag.count < expected:
            if expected - tag.count > max(1024, tag.count):
                # a few missing entries can be read as empty segments; this many cannot be justified
                raise TiffFormatError(f"{self.where}: {tag.name} has {tag.count} values, expected {expected} "
                                      f"({self._grid_text()})")
            self.context.problem(
                f"{self.where}: {tag.name} has {tag.count} values, expected {expected} "
                f"({self._grid_text()}); the missing segments read as empty")
        return StrileArray(tag, self.context, expected)

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
        self._tiff.require_open()
        index = require_segment_index(index)
        if not 0 <= index < self.grid.count:
            raise self._index_error(index)
        offsets = self.segment_offsets
        counts = self.segment_byte_counts
        if self.context.source.remote:  # the offsets block and the byte-counts block in one round trip
            prefetch_strile_blocks(self.context, [offsets, counts], (index,))
        offset = offsets[index] if index < offsets.length else 0
        if counts is None:
            count = self._estimated_byte_count(index, offset)
        else:
            count = counts[index] if index < counts.length else 0
            if count == 0 and offset != 0 and self.grid.count == 1 and not self.is_tiled:
                count = self._single_strip_byte_count
        return offset, count

    @cached_property
    def _single_strip_byte_count(self) -> int:
        """The byte count of a one-strip image whose StripByteCounts is 0 while its offset is not,
        estimated as libtiff's TIFFReadDirectory does (spec-notes/segments.md "A single strip with
        byte count 0"): uncompressed, the strip's raw size; compressed, the file's size minus the
        header, the IFD and its out-of-line values, cut at the end of the file."""
        # a warning in both modes: libtiff reads such files with a warning, and so do we
        warnings.warn(f"{self.where}: StripByteCounts is 0 for the image's only strip; its byte count is "
                      "estimated as libtiff does", TiffFormatWarning, stacklevel=4)
        offset = self.segment_offsets[0]
        size = self._tiff.source.size
        if self.compression == 1:
            d, h, w, s = self.grid.stored_shape(0)
            return d * h * ((w * s * self.bits_per_sample + 7) // 8)
        layout = self.context.layout
        used = layout.header_size + layout.count_size + len(self.entries.tags) * layout.entry_size \
            + layout.offset_size
        for tag in self.entries.tags.values():
            if tag.value_offset is not None:
                used += tag.count * FIELD_TYPE_SIZE.get(tag.type, 0)
        space = size - used if used <= size else size
        return max(0, min(space, size - offset))

    @cached_property
    def _stored_segment_count(self) -> int:
        """Segments 0..n-1 have entries in the strile arrays; later ones read as fill. n is
        bounded by the file: entries the declared count puts past its end are not stored
        (TruncatedError in strict mode), so region planning never walks more segments than
        the file holds entries for."""
        size = self._tiff.source.size
        n = self.grid.count
        for array in (self.segment_offsets, self.segment_byte_counts):
            if array is None:
                continue
            backed = array.backed_length(size)
            if backed < array.length:
                self.context.problem(f"{self.where}: {array.name} has {array.length} entries, the file holds "
                                  f"{backed} ({size} bytes); the rest read as empty", TruncatedError)
            n = min(n, backed)
        return n

    def _estimated_byte_count(self, index: int, offset: int) -> int:
        self.context.problem(f"{self.where}: {'TileByteCounts' if self.is_tiled else 'StripByteCounts'} is missing")
        if self.compression == 1:
            d, h, w, s = self.grid.stored_shape(index)
            return math.ceil(d * h * w * s * self.bits_per_sample / 8) if self.bits_per_sample < 8 else \
                d * h * math.ceil(w * s * self.bits_per_sample / 8)
        # compressed: up to the end of the file (as libtiff), but no more than any codec needs for
        # the segment's raw size; else N strips of a hostile file each read the whole file (N x size)
        d, h, w, s = self.grid.stored_shape(index)
        bound = 2 * d * h * ((w * s * self.bits_per_sample + 7) // 8) + 4096
        return max(0, min(self._tiff.source.size - offset, bound))

    def segment_locations(self, indices: Sequence[int]) -> list[tuple[int, int]]:
        """(offset, byte_count) of several segments; on a remote source every strile block they
        need (offsets and byte counts) is fetched first, together, in one round trip."""
        self._tiff.require_open()
        if self.context.source.remote and len(indices) > 1:
            grid_count = self.grid.count
            prefetch_strile_blocks(self.context, [self.segment_offsets, self.segment_byte_counts],
                                   [i for i in indices if 0 <= i < grid_count])
        return [self.segment_location(i) for i in indices]
