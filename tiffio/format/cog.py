"""GDAL's ghost area: the structural metadata block a Cloud-Optimized GeoTIFF carries right after
its header (GDAL's COG driver documentation, "Header ghost area"), built and parsed.

Pure bytes: the writer's relayout writes it, the COG checker (:mod:`tiffio.read.cogcheck`) reads it.
"""

from __future__ import annotations

__all__ = ["GHOST_SIZE_LINE", "GHOST_KEYS", "ghost_area", "parse_ghost_area"]

#: the first line of GDAL's ghost area (43 bytes with its newline; %06d = size of the rest)
GHOST_SIZE_LINE = "GDAL_STRUCTURAL_METADATA_SIZE=%06d bytes\n"
#: the keys GDAL's COG driver writes, in its order; the last line ends with a newline and
#: one space (GDAL rewrites "NO\n " as "YES\n" in place when an edit breaks the layout)
GHOST_KEYS = ("LAYOUT=IFDS_BEFORE_DATA", "BLOCK_ORDER=ROW_MAJOR", "BLOCK_LEADER=SIZE_AS_UINT4",
              "BLOCK_TRAILER=LAST_4_BYTES_REPEATED", "KNOWN_INCOMPATIBLE_EDITION=NO")


def ghost_area(mask_interleaved: bool = False) -> bytes:
    """The ghost area GDAL's COG driver writes after the header (183 bytes; 217 with
    ``MASK_INTERLEAVED_WITH_IMAGERY=YES``, for files with masks)."""
    rest = "".join(k + "\n" for k in GHOST_KEYS) + " "
    if mask_interleaved:
        rest += "MASK_INTERLEAVED_WITH_IMAGERY=YES\n"
    return ((GHOST_SIZE_LINE % len(rest)) + rest).encode("ascii")


def parse_ghost_area(data: bytes) -> tuple[dict[str, str], int] | None:
    """The keys of a ghost area at the start of ``data`` and its total size, or None."""
    line_size = len(GHOST_SIZE_LINE % 0)
    head = data[:line_size].decode("latin-1")
    if not head.startswith("GDAL_STRUCTURAL_METADATA_SIZE=") or not head.endswith(" bytes\n"):
        return None
    try:
        size = int(head[len("GDAL_STRUCTURAL_METADATA_SIZE="):][:6])
    except ValueError:
        return None
    text = data[line_size: line_size + size].decode("latin-1")
    keys: dict[str, str] = {}
    for line in text.split("\n"):
        if "=" in line:
            k, v = line.split("=", 1)
            keys[k.strip()] = v.strip()
    return keys, line_size + size
