"""Old-style JPEG (compression 6) mapped to decodable JPEG streams
(spec-notes/jpeg.md "Old-style JPEG (compression 6)").

Three layouts occur in real files, tried in this order:

1. the segment is a complete JPEG stream (starts with SOI) - decoded as it is;
2. JPEGInterchangeFormat (513) points at a stream whose header (SOI ... SOS)
   ends where the segment's scan data begins - header + segment;
3. the tables are in JPEGQTables / JPEGDCTables / JPEGACTables (519-521) and the
   segment holds only entropy-coded data - SOI, DQT, DHT, SOF0, DRI, SOS are
   rebuilt from the tags and the segment's geometry (what libtiff does).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from ..errors import TiffFormatError, UnsupportedFeatureError

__all__ = ["OJpegTables", "build_scan_header", "SOI"]

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"


class OJpegTables:
    """The quantisation and Huffman tables of an old-style JPEG IFD, as marker segments."""

    def __init__(self, qtables: bytes, dctables: bytes, actables: bytes, n_q: int, n_dc: int, n_ac: int) -> None:
        self.dqt = qtables
        self.dht = dctables + actables
        self.n_q, self.n_dc, self.n_ac = n_q, n_dc, n_ac

    @classmethod
    def read(cls, q_offsets: Sequence[int], dc_offsets: Sequence[int], ac_offsets: Sequence[int],
             read: Callable[[int, int, str], bytes], where: str) -> OJpegTables:
        dqt = b""
        for i, off in enumerate(q_offsets):
            table = read(off, 64, f"{where}: JPEGQTables[{i}]")
            dqt += b"\xff\xdb" + struct.pack(">HB", 67, i) + table

        def huffman(offsets: Sequence[int], klass: int, name: str) -> bytes:
            out = b""
            for i, off in enumerate(offsets):
                bits = read(off, 16, f"{where}: {name}[{i}] counts")
                n = sum(bits)
                if n > 256:
                    raise TiffFormatError(f"{where}: {name}[{i}] declares {n} Huffman codes (at most 256)")
                values = read(off + 16, n, f"{where}: {name}[{i}] values")
                out += b"\xff\xc4" + struct.pack(">HB", 19 + n, (klass << 4) | i) + bits + values
            return out

        return cls(dqt, huffman(dc_offsets, 0, "JPEGDCTables"), huffman(ac_offsets, 1, "JPEGACTables"),
                   len(q_offsets), len(dc_offsets), len(ac_offsets))


def build_scan_header(tables: OJpegTables, height: int, width: int, components: int,
                      subsampling: tuple[int, int], restart_interval: int) -> bytes:
    """SOI + tables + SOF0 + (DRI) + SOS for entropy-coded data of one segment."""
    if components not in (1, 3):
        raise UnsupportedFeatureError(f"old-style JPEG with {components} components")
    if not (tables.n_q and tables.n_dc and tables.n_ac):
        raise TiffFormatError("old-style JPEG: quantisation or Huffman tables are missing")
    sof = struct.pack(">BHHB", 8, height, width, components)
    sos = struct.pack(">B", components)
    for c in range(components):
        sampling = (subsampling[0] << 4 | subsampling[1]) if c == 0 and components == 3 else 0x11
        sof += struct.pack(">BBB", c + 1, sampling, min(c, tables.n_q - 1))
        sos += struct.pack(">BB", c + 1, (min(c, tables.n_dc - 1) << 4) | min(c, tables.n_ac - 1))
    sos += b"\x00\x3f\x00"
    header = SOI + tables.dqt + tables.dht
    header += b"\xff\xc0" + struct.pack(">H", 2 + len(sof)) + sof
    if restart_interval:
        header += b"\xff\xdd" + struct.pack(">HH", 4, restart_interval)
    header += b"\xff\xda" + struct.pack(">H", 2 + len(sos)) + sos
    return header
