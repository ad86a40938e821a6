"""Pure segment-grid arithmetic (spec-notes/segments.md).

Segment index order (libtiff's): planes outermost (PlanarConfiguration 2 only),
then depth, then rows, then columns. Everything here is integer arithmetic on
shapes; nothing reads bytes.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import TiffIndexError, TiffTypeError

__all__ = ["SegmentGrid", "SegmentCoords", "RegionPart", "ceil_div", "require_segment_index"]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class SegmentCoords(NamedTuple):
    """Position of a segment in the grid, in segment units."""

    plane: int
    z: int
    row: int
    col: int


@dataclass(frozen=True, slots=True)
class RegionPart:
    """One segment's contribution to a region: ``out[dst] = segment[src]``.

    ``src`` slices the segment's stored (depth, length, width) array; ``dst``
    slices the region's (depth, length, width) array. (Not a NamedTuple: a field
    named ``index`` would hide tuple.index.)
    """

    index: int
    plane: int
    src: tuple[slice, slice, slice]
    dst: tuple[slice, slice, slice]


@dataclass(frozen=True)
class SegmentGrid:
    """The tiling of one image.

    ``image`` and ``segment`` are (depth, length, width) in pixels. For strips the
    segment is (1, RowsPerStrip, ImageWidth) and the last strip of each plane may be
    shorter; tiles are always stored at full size (spec-notes/segments.md "Tiles").
    """

    image: tuple[int, int, int]
    segment: tuple[int, int, int]
    samples: int
    separate: bool
    tiled: bool
    planes: int = field(init=False)
    across: int = field(init=False)
    down: int = field(init=False)
    deep: int = field(init=False)
    per_plane: int = field(init=False)
    count: int = field(init=False)

    def __post_init__(self) -> None:
        d, h, w = self.image
        sd, sh, sw = self.segment
        s = object.__setattr__
        s(self, "planes", self.samples if self.separate else 1)
        # strips span the image's width, even a width of 0 (libtiff counts their rows)
        s(self, "across", ceil_div(w, sw) if sw else (0 if self.tiled else 1))
        s(self, "down", ceil_div(h, sh) if sh else 0)
        s(self, "deep", ceil_div(d, sd) if sd else 0)
        s(self, "per_plane", self.across * self.down * self.deep)
        s(self, "count", self.planes * self.per_plane)

    @property
    def segment_samples(self) -> int:
        """Samples per pixel inside one segment."""
        return 1 if self.separate else self.samples

    def coords(self, index: int) -> SegmentCoords:
        if not 0 <= index < self.count:
            raise TiffIndexError(f"segment index {index} out of range (0..{self.count - 1})")
        plane, rest = divmod(index, self.per_plane)
        z, rest = divmod(rest, self.across * self.down)
        row, col = divmod(rest, self.across)
        return SegmentCoords(plane, z, row, col)

    def index(self, plane: int, z: int, row: int, col: int) -> int:
        if not (0 <= plane < self.planes and 0 <= z < self.deep and 0 <= row < self.down and 0 <= col < self.across):
            raise TiffIndexError(
                f"segment coordinates (plane={plane}, z={z}, row={row}, col={col}) outside the grid "
                f"(planes={self.planes}, deep={self.deep}, down={self.down}, across={self.across})"
            )
        return ((plane * self.deep + z) * self.down + row) * self.across + col

    def origin(self, index: int) -> tuple[int, int, int, int]:
        """(plane, z, y, x) pixel origin of a segment."""
        c = self.coords(index)
        sd, sh, sw = self.segment
        return c.plane, c.z * sd, c.row * sh, c.col * sw

    def valid_shape(self, index: int) -> tuple[int, int, int]:
        """(depth, length, width) of the part of the segment inside the image."""
        _, z, y, x = self.origin(index)
        d, h, w = self.image
        sd, sh, sw = self.segment
        return min(sd, d - z), min(sh, h - y), min(sw, w - x)

    def shapes(self, index: int) -> tuple[tuple[int, int, int, int], tuple[int, int, int]]:
        """(stored_shape, valid_shape) of a segment, with one coordinate computation (hot path)."""
        if not 0 <= index < self.count:
            raise TiffIndexError(f"segment index {index} out of range (0..{self.count - 1})")
        d, h, w = self.image
        sd, sh, sw = self.segment
        rest = index % self.per_plane
        z, rest = divmod(rest, self.across * self.down)
        row, col = divmod(rest, self.across)
        valid = (min(sd, d - z * sd), min(sh, h - row * sh), min(sw, w - col * sw))
        stored = (sd, sh, sw, self.segment_samples) if self.tiled else (sd, valid[1], sw, self.segment_samples)
        return stored, valid

    def stored_shape(self, index: int) -> tuple[int, int, int, int]:
        """(depth, length, width, samples) as stored: full tiles; strips with their real row count."""
        sd, sh, sw = self.segment
        if self.tiled:
            return sd, sh, sw, self.segment_samples
        _vd, vh, _vw = self.valid_shape(index)
        return sd, vh, sw, self.segment_samples

    def region(self, z: int, y: int, x: int, depth: int, length: int, width: int,
               plane: int = 0, limit: int | None = None) -> Iterator[RegionPart]:
        """The segments of ``plane`` that a window covers, clipped to the image.

        Coordinates may lie partly outside the image; those parts belong to no segment.
        With ``limit``, only segments whose index is below it (the segments a file
        stores entries for): the walk stops at the first index past it (indices grow
        along the walk), so its cost is bounded by the parts it yields, not by the
        number of segments the window covers.
        """
        if limit is None:
            limit = self.count
        d, h, w = self.image
        sd, sh, sw = self.segment
        z0, z1 = max(z, 0), min(z + depth, d)
        y0, y1 = max(y, 0), min(y + length, h)
        x0, x1 = max(x, 0), min(x + width, w)
        if z0 >= z1 or y0 >= y1 or x0 >= x1:
            return
        for zi in range(z0 // sd, ceil_div(z1, sd)):
            za, zb = max(z0, zi * sd), min(z1, (zi + 1) * sd)
            for ri in range(y0 // sh, ceil_div(y1, sh)):
                ya, yb = max(y0, ri * sh), min(y1, (ri + 1) * sh)
                row_first = ((plane * self.deep + zi) * self.down + ri) * self.across
                for ci in range(x0 // sw, ceil_div(x1, sw)):
                    idx = row_first + ci
                    if idx >= limit:
                        return
                    xa, xb = max(x0, ci * sw), min(x1, (ci + 1) * sw)
                    yield RegionPart(
                        idx,
                        plane,
                        (slice(za - zi * sd, zb - zi * sd), slice(ya - ri * sh, yb - ri * sh), slice(xa - ci * sw, xb - ci * sw)),
                        (slice(za - z, zb - z), slice(ya - y, yb - y), slice(xa - x, xb - x)),
                    )


def require_segment_index(index: Any) -> int:
    """``index`` as an int (numpy integers too), else TiffTypeError."""
    try:
        return operator.index(index)
    except TypeError:
        raise TiffTypeError(f"a segment index must be an int, not {index!r}") from None
