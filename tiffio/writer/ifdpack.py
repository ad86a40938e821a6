"""The IFD-entry record and IFD packing, shared by every writer of tiffio (the streaming writer's
checkpoints, ImageJ hyperstacks, relayout and merge): an IFD's size, and its bytes (entry count,
entries sorted by code, next-IFD offset, then the values that do not fit in an entry). No I/O.

The header is packed by :func:`tiffio.format.header.pack_header`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from ..format.layout import Layout

__all__ = ["Entry", "ifd_size", "pack_ifd"]


@dataclass(frozen=True)
class Entry:
    """One IFD entry: tag code, field type, count, and the value bytes in the file's byte order."""

    code: int
    type: int
    count: int
    data: bytes


def ifd_size(layout: Layout, entries: Sequence[Entry], placed: Collection[int] = ()) -> int:
    """Bytes of the packed IFD with its values (not those of the codes in ``placed``: see pack_ifd)."""
    size = layout.count_size + len(entries) * layout.entry_size + layout.offset_size
    for e in entries:
        if len(e.data) > layout.inline_size and e.code not in placed:
            size += len(e.data) + (len(e.data) & 1)
    return size


def pack_ifd(layout: Layout, entries: Sequence[Entry], offset: int, next_offset: int,
             placed: Mapping[int, int] | None = None) -> bytes:
    """The bytes of an IFD at file offset ``offset``: values that fit are stored in their entry, the
    others follow the IFD (each padded to an even length) in code order, except those of the codes in
    ``placed``, which point at the offset given there (the caller writes those values)."""
    entries = sorted(entries, key=lambda e: e.code)
    head = [layout.count_struct.pack(len(entries))]
    values: list[bytes] = []
    pos = offset + layout.count_size + len(entries) * layout.entry_size + layout.offset_size
    fmt = layout.entry_head_struct
    for e in entries:
        if len(e.data) <= layout.inline_size:
            head.append(fmt.pack(e.code, e.type, e.count) + e.data.ljust(layout.inline_size, b"\0"))
        elif placed is not None and e.code in placed:
            head.append(fmt.pack(e.code, e.type, e.count) + layout.pack_offset(placed[e.code]))
        else:
            head.append(fmt.pack(e.code, e.type, e.count) + layout.pack_offset(pos))
            pad = b"\0" if len(e.data) & 1 else b""
            values.append(e.data + pad)
            pos += len(e.data) + len(pad)
    head.append(layout.pack_offset(next_offset))
    return b"".join(head + values)
