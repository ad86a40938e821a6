"""Check a file against the Cloud-Optimized GeoTIFF layout rules, without GDAL.

The rules are those of GDAL's ``validate_cloud_optimized_geotiff.py`` (its full check),
plus three it leaves out and GDAL's COG driver always follows:

* IFD0 at 8 (16 for BigTIFF), or right after the ghost area (word aligned);
* overviews (main-chain IFDs with NewSubfileType bit 0) tiled, each smaller than the one
  before, their IFDs at increasing offsets after IFD0;
* the first tile of the smallest overview after the last IFD; the first tile of each level
  after the first tile of the next smaller level;
* with ``BLOCK_ORDER=ROW_MAJOR``: the tiles of every level and plane at increasing offsets in
  row-major order; with ``BLOCK_LEADER=SIZE_AS_UINT4``: the 4 bytes before each tile hold its
  byte count; with ``BLOCK_TRAILER=LAST_4_BYTES_REPEATED``: the 4 bytes after a tile repeat
  its last 4 bytes; ``KNOWN_INCOMPATIBLE_EDITION=YES`` is an error;
* ours: the ghost area is exactly the one GDAL writes (its size line and keys), and every
  IFD and strile array lies before the first tile (what "IFDs before data" means to a
  reader that fetches the header block once).

:func:`check_cog` returns the list of violations (empty: a valid COG).
"""

from __future__ import annotations

import os
import struct
from typing import Any

from ..format.cog import ghost_area, parse_ghost_area

__all__ = ["check_cog"]

def _first_data_offset(offsets: Any, counts: Any) -> int:
    for off, n in zip(offsets, counts):
        if off and n:
            return int(off)
    return 0


def check_cog(path: str | os.PathLike, *, full: bool = True) -> list[str]:
    """The COG layout rules ``path`` breaks (an empty list for a valid COG).

    ``full=False`` skips the per-tile checks (order, leaders, trailers), like the
    validator's quick mode. Raises TiffFormatError when the file is not a TIFF at all.
    """
    from .file import TiffFile

    errors: list[str] = []
    with TiffFile(os.fspath(path), strict=True) as tif, open(os.fspath(path), "rb") as fh:
        layout = tif.layout
        header_size = layout.header_size
        ifds = list(tif.ifds)
        main = ifds[0]
        fh.seek(header_size)
        head = fh.read(4096)
        ghost = parse_ghost_area(head)
        keys: dict[str, str] = {}
        expected = header_size
        if ghost is not None:
            keys, size = ghost
            expected = header_size + size
            expected += expected % 2
            if head[:size] != ghost_area(keys.get("MASK_INTERLEAVED_WITH_IMAGERY") == "YES"):
                errors.append(f"the ghost area at {header_size} is not the one GDAL's COG driver writes")
            if keys.get("KNOWN_INCOMPATIBLE_EDITION") == "YES":
                errors.append("KNOWN_INCOMPATIBLE_EDITION=YES is declared in the file")
        ifd0 = main.offset
        if ifd0 != expected and ifd0 != header_size:
            errors.append(f"the main IFD is at offset {ifd0}; it should be at {expected}")
        elif ifd0 != expected:
            errors.append(f"the main IFD is at offset {ifd0}, before the ghost area's end {expected}")
        # overviews as GDAL finds them: reduced IFDs of the main chain and of IFD0's SubIFDs, largest first
        overviews = [d for d in [*ifds[1:], *main.subifds] if d.new_subfile_type & 1 and not d.new_subfile_type & 4]
        overviews.sort(key=lambda d: -d.width * d.length)
        levels = [main, *overviews]
        if len(levels) != len([d for d in ifds if not d.new_subfile_type & 4]):
            errors.append("the main chain holds IFDs that are neither the image nor its overviews")
        if main.width > 512 or main.length > 512:
            if not main.is_tiled and main.width > 1024:
                errors.append("the file is greater than 512xH or Wx512, but is not tiled")
        ifd_offsets = [_ifd_offset(d) for d in levels]
        for i, ovr in enumerate(overviews):
            prev = levels[i]
            if ovr.width > prev.width or ovr.length > prev.length:
                errors.append(f"overview {i} ({ovr.width} x {ovr.length}) is larger than the level before "
                              f"({prev.width} x {prev.length})")
            if not ovr.is_tiled:
                errors.append(f"overview {i} is not tiled")
            if ifd_offsets[i + 1] < ifd_offsets[i]:
                errors.append(f"the IFD of overview {i} (offset {ifd_offsets[i + 1]}) comes before the IFD of "
                              f"the level before (offset {ifd_offsets[i]})")
        arrays: list[tuple[Any, Any]] = []
        metadata_end = 0
        for d in levels:
            offs = d.segment_offsets
            counts = d.segment_byte_counts
            o = offs.to_numpy()
            c = counts.to_numpy() if counts is not None else o * 0
            arrays.append((o, c))
            metadata_end = max(metadata_end, _ifd_end(d, layout))
        firsts = [_first_data_offset(o, c) for o, c in arrays]
        if firsts[-1] and firsts[-1] < ifd_offsets[-1]:
            errors.append("the first tile of the smallest overview comes before its IFD")
        for i in range(len(firsts) - 1):
            if firsts[i] and firsts[i + 1] and firsts[i] < firsts[i + 1]:
                name = "the main image" if i == 0 else f"overview {i - 1}"
                errors.append(f"the first tile of {name} comes before the first tile of overview {i}")
        data_start = min((f for f in firsts if f), default=0)
        if data_start and metadata_end > data_start:
            errors.append(f"IFDs or tag values end at {metadata_end}, after the first tile at {data_start}")
        if full and ghost is not None:
            errors += _full_check(fh, levels, arrays, keys)
            masks = [d for d in ifds if d.new_subfile_type & 4]
            if masks:
                errors += _mask_check(fh, levels, arrays, masks, keys)
    return errors


def _ifd_offset(ifd: Any) -> int:
    return int(ifd.offset)


def _ifd_end(ifd: Any, layout: Any) -> int:
    """The end of the IFD's entries and of every out-of-line value it points at."""
    start = _ifd_offset(ifd)
    end = start + layout.count_size + len(ifd.tags) * layout.entry_size + layout.offset_size
    for tag in ifd.tags.values():
        if tag.value_offset is not None:
            end = max(end, tag.value_offset + tag.byte_count)
    return end


def _full_check(fh: Any, levels: list[Any], arrays: list[tuple[Any, Any]], keys: dict[str, str]) -> list[str]:
    errors: list[str] = []
    row_major = keys.get("BLOCK_ORDER") == "ROW_MAJOR"
    leader = keys.get("BLOCK_LEADER") == "SIZE_AS_UINT4"
    trailer = keys.get("BLOCK_TRAILER") == "LAST_4_BYTES_REPEATED"
    for k, (d, (offsets, counts)) in enumerate(zip(levels, arrays)):
        name = "main image" if k == 0 else f"overview {k - 1}"
        planes = d.samples_per_pixel if d.is_separate else 1
        per_plane = len(offsets) // max(1, planes)
        # leaders are little-endian whatever the file's byte order (as the validator reads them)
        for p in range(planes):
            last = 0
            for i in range(p * per_plane, (p + 1) * per_plane):
                off, n = int(offsets[i]), int(counts[i])
                if not off:
                    continue
                if row_major and off < last:
                    errors.append(f"{name}, plane {p}: tile {i} at offset {off} comes before the tile before it")
                last = off
                if leader or trailer:
                    fh.seek(off - 4)
                    raw = fh.read(n + 8)
                    if leader and (len(raw) < 4 or struct.unpack("<I", raw[:4])[0] != n):
                        got = struct.unpack("<I", raw[:4])[0] if len(raw) >= 4 else None
                        errors.append(f"{name}: tile {i}: the leader holds {got}, the byte count is {n}")
                    if trailer and n >= 4 and raw[n: n + 4] != raw[n + 4: n + 8]:
                        errors.append(f"{name}: tile {i}: the trailer does not repeat the last 4 bytes")
                if len(errors) > 50:
                    errors.append("(more errors not listed)")
                    return errors
    return errors


def _mask_check(fh: Any, levels: list[Any], arrays: list[tuple[Any, Any]], masks: list[Any],
                keys: dict[str, str]) -> list[str]:
    """Leaders and trailers of the mask tiles; with MASK_INTERLEAVED_WITH_IMAGERY=YES each mask tile
    right after its image tile (offset + byte count + 8)."""
    errors: list[str] = []
    interleaved = keys.get("MASK_INTERLEAVED_WITH_IMAGERY") == "YES"
    by_size = {(m.width, m.length): m for m in masks}
    m_levels = []
    m_arrays = []
    for k, d in enumerate(levels):
        mask = by_size.get((d.width, d.length))
        if mask is None:
            continue
        mo = mask.segment_offsets.to_numpy()
        mc = mask.segment_byte_counts.to_numpy()
        m_levels.append(mask)
        m_arrays.append((mo, mc))
        if interleaved:
            offs, counts = arrays[k]
            for i, (o, n, m) in enumerate(zip(offs.tolist(), counts.tolist(), mo.tolist())):
                if o and m and m != o + n + 8:
                    name = "main image" if k == 0 else f"overview {k - 1}"
                    errors.append(f"mask of the {name}: tile {i} at offset {m}, expected {o + n + 8} (right after "
                                  "its image tile)")
                    break
    errors += [e.replace("main image", "mask of the main image").replace("overview", "mask of overview", 1)
               if not e.startswith("mask") else e
               for e in _full_check(fh, m_levels, m_arrays, {k: v for k, v in keys.items() if k != "BLOCK_ORDER"})]
    return errors
