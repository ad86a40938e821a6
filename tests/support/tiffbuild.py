"""A tiny TIFF builder for tests: arbitrary entries, field types, byte orders, BigTIFF,
IFD chains. Independent of tiffio's writer so that it can build what tiffio must read."""

from __future__ import annotations

import struct

import numpy

SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
CHARS = {1: "B", 2: "B", 3: "H", 4: "I", 5: "I", 6: "b", 7: "B", 8: "h", 9: "i", 10: "i", 11: "f", 12: "d",
         13: "I", 16: "Q", 17: "q", 18: "Q"}


def pack_value(bo: str, ftype: int, value) -> tuple[int, bytes]:
    """(count, bytes) of a value of field type ``ftype``."""
    if isinstance(value, (bytes, bytearray)):
        return len(value), bytes(value)
    if isinstance(value, str):
        raw = value.encode() + b"\0"
        return len(raw), raw
    if isinstance(value, numpy.ndarray):
        arr = value.astype(bo + CHARS[ftype])
        return arr.size // (2 if ftype in (5, 10) else 1), arr.tobytes()
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if ftype in (5, 10):
        flat = [v for pair in values for v in pair] if values and isinstance(values[0], tuple) else values
        return len(flat) // 2, struct.pack(f"{bo}{len(flat)}{CHARS[ftype]}", *flat)
    return len(values), struct.pack(f"{bo}{len(values)}{CHARS[ftype]}", *values)


class Builder:
    """Append blobs and IFDs; ``build()`` returns the file bytes."""

    def __init__(self, byteorder: str = "<", bigtiff: bool = False) -> None:
        self.bo = byteorder
        self.big = bigtiff
        self.buf = bytearray(16 if bigtiff else 8)

    def blob(self, data: bytes, align: int = 2) -> int:
        if len(self.buf) % align:
            self.buf += b"\0" * (align - len(self.buf) % align)
        offset = len(self.buf)
        self.buf += data
        return offset

    def ifd(self, entries: list[tuple[int, int, object]], next_offset: int = 0, raw_count: int | None = None) -> int:
        """Write an IFD of (code, type, value) entries (value may be pre-packed (count, bytes)).
        Returns its offset; out-of-line values are written before it."""
        bo, big = self.bo, self.big
        inline = 8 if big else 4
        packed = []
        for code, ftype, value in sorted(entries, key=lambda e: e[0]):
            count, raw = value if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], bytes) \
                else pack_value(bo, ftype, value)
            if len(raw) <= inline:
                field = raw.ljust(inline, b"\0")
            else:
                field = struct.pack(bo + ("Q" if big else "I"), self.blob(raw))
            packed.append((code, ftype, count, field))
        if len(self.buf) % 2:
            self.buf += b"\0"
        offset = len(self.buf)
        n = len(packed) if raw_count is None else raw_count
        self.buf += struct.pack(bo + ("Q" if big else "H"), n)
        for code, ftype, count, field in packed:
            self.buf += struct.pack(bo + ("HHQ" if big else "HHI"), code, ftype, count) + field
        self.next_field = len(self.buf)
        self.buf += struct.pack(bo + ("Q" if big else "I"), next_offset)
        return offset

    def set_next(self, ifd_offset: int, next_offset: int) -> None:
        """Point the next-IFD field of the IFD at ``ifd_offset`` to ``next_offset``."""
        bo, big = self.bo, self.big
        (n,) = struct.unpack_from(bo + ("Q" if big else "H"), self.buf, ifd_offset)
        pos = ifd_offset + (8 if big else 2) + n * (20 if big else 12)
        struct.pack_into(bo + ("Q" if big else "I"), self.buf, pos, next_offset)

    def build(self, first_ifd: int) -> bytes:
        bo = self.bo
        mark = b"II" if bo == "<" else b"MM"
        if self.big:
            header = mark + struct.pack(bo + "HHHQ", 43, 8, 0, first_ifd)
        else:
            header = mark + struct.pack(bo + "HI", 42, first_ifd)
        self.buf[: len(header)] = header
        return bytes(self.buf)


def simple_image(data: numpy.ndarray, *, byteorder="<", bigtiff=False, tile=None, rows_per_strip=None,
                 extra=(), compression=1) -> bytes:
    """An uncompressed gray (Y, X) or contiguous (Y, X, S) image, tiled or stripped."""
    b = Builder(byteorder, bigtiff)
    arr = numpy.asarray(data)
    h, w = arr.shape[:2]
    spp = arr.shape[2] if arr.ndim == 3 else 1
    kind = {"u": 1, "i": 2, "f": 3}[arr.dtype.kind]
    arr = arr.astype(arr.dtype.newbyteorder(byteorder))
    off_type = 16 if bigtiff else 4
    entries = [(256, 4, w), (257, 4, h), (258, 3, [arr.dtype.itemsize * 8] * spp), (259, 3, compression),
               (262, 3, 2 if spp == 3 else 1), (277, 3, spp), (339, 3, [kind] * spp)]
    offsets, counts = [], []
    if tile:
        th, tw = tile
        for r in range(0, h, th):
            for c in range(0, w, tw):
                t = numpy.zeros((th, tw) + arr.shape[2:], arr.dtype)
                part = arr[r:r + th, c:c + tw]
                t[: part.shape[0], : part.shape[1]] = part
                offsets.append(b.blob(t.tobytes()))
                counts.append(t.nbytes)
        entries += [(322, 4, tw), (323, 4, th), (324, off_type, offsets), (325, off_type, counts)]
    else:
        rps = rows_per_strip or h
        for r in range(0, h, rps):
            part = arr[r:r + rps]
            offsets.append(b.blob(part.tobytes()))
            counts.append(part.nbytes)
        entries += [(278, 4, rps), (273, off_type, offsets), (279, off_type, counts)]
    entries += list(extra)
    return b.build(b.ifd(entries))
