"""Parse and pack the 8-byte classic or 16-byte BigTIFF header
(spec-notes/structure.md "Header", spec-notes/bigtiff.md "Header")."""

from __future__ import annotations

import struct

from ..errors import NotATiffError
from .layout import Layout, get_layout

__all__ = ["parse_header", "pack_header", "HEADER_READ_SIZE"]

#: bytes to read to parse any header
HEADER_READ_SIZE = 16


def parse_header(data: bytes) -> tuple[Layout, int]:
    """Return the layout and the first IFD offset from the first 8 or 16 bytes."""
    if len(data) < 8:
        raise NotATiffError(f"not a TIFF file: {len(data)} bytes are too few for a header (8 needed)")
    magic = bytes(data[:2])
    if magic == b"II":
        bo = "<"
    elif magic == b"MM":
        bo = ">"
    else:
        raise NotATiffError(f"not a TIFF file: byte-order mark {magic!r} at offset 0 is neither b'II' nor b'MM'")
    (version,) = struct.unpack(bo + "H", data[2:4])
    if version == 42:
        layout = get_layout(bo, False)
        (first,) = struct.unpack(bo + "I", data[4:8])
        return layout, first
    if version == 43:
        if len(data) < 16:
            raise NotATiffError(f"BigTIFF header truncated: {len(data)} of 16 bytes")
        bytesize, reserved, first = struct.unpack(bo + "HHQ", data[4:16])
        if bytesize != 8 or reserved != 0:
            raise NotATiffError(
                f"BigTIFF header at offset 4: offset size {bytesize} (must be 8), reserved {reserved} (must be 0)"
            )
        return get_layout(bo, True), first
    raise NotATiffError(f"not a TIFF file: version {version} at offset 2 is neither 42 (TIFF) nor 43 (BigTIFF)")


def pack_header(layout: Layout, first_ifd_offset: int) -> bytes:
    """The header bytes for ``layout`` pointing at ``first_ifd_offset``."""
    mark = b"II" if layout.byteorder == "<" else b"MM"
    return mark + layout.header_struct.pack(*layout.header_fields, first_ifd_offset)
