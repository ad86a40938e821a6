"""The record format of the writer's working file (DESIGN.md, "The writer's file layout").

Every payload (tile, image definition, blank tile, checkpoint state) is preceded by a 28-byte
*leader*: magic, image number, tile index, payload length, CRC-32 of the payload. TIFF readers
never see leaders (they follow offsets); recovery, resume (and merge) scan them. The state record
of a checkpoint ends with a footer (JSON length, magic) just before the first IFD.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from .sink import Sink

__all__ = ["DATA_START", "LEADER", "MAGIC_TILE", "MAGIC_IMAGE", "MAGIC_BLANK", "MAGIC_STATE", "MAGICS",
           "STATE_FOOTER", "STATE_FOOTER_MAGIC", "FORMAT_VERSION", "CLASSIC_LIMIT", "crc32", "crc32_parts",
           "pack_state_record", "iter_records", "iter_records_resync"]

#: bytes reserved for the header at the start of the file; records follow
DATA_START = 16
#: leader before every payload: magic, image number, tile index, payload length, CRC-32 of the payload
LEADER = struct.Struct("<4sIQQI")
MAGIC_TILE = b"TIOt"
MAGIC_IMAGE = b"TIOi"
MAGIC_BLANK = b"TIOb"
MAGIC_STATE = b"TIOs"
MAGICS = frozenset({MAGIC_TILE, MAGIC_IMAGE, MAGIC_BLANK, MAGIC_STATE})
#: after the state JSON, just before the first IFD: JSON length, magic
STATE_FOOTER = struct.Struct("<Q4s")
STATE_FOOTER_MAGIC = b"TIOS"
FORMAT_VERSION = 1
CLASSIC_LIMIT = 2**32 - 1


def _pick_crc32() -> Any:
    """zlib's CRC-32 (the leaders' checksum); libdeflate's is the same function, ~9x faster."""
    try:
        from imagecodecs import deflate_crc32
        if deflate_crc32(b"123456789") == 0xCBF43926 == deflate_crc32(b"56789", deflate_crc32(b"1234")):
            return deflate_crc32
    except Exception:  # pragma: no cover - imagecodecs built without libdeflate
        pass
    return zlib.crc32


crc32 = _pick_crc32()


def crc32_parts(parts: Sequence[Any]) -> int:
    """CRC-32 of the concatenation of ``parts`` (bytes-like objects)."""
    crc = 0
    for part in parts:
        crc = crc32(part, crc)
    return crc



def pack_state_record(state: dict[str, Any]) -> bytes:
    """The state record of a checkpoint: leader + JSON (padded to even length) + footer."""
    text = json.dumps(state, sort_keys=True).encode()
    text += b" " * (len(text) & 1)
    return LEADER.pack(MAGIC_STATE, 0, 0, len(text), crc32(text)) + text + \
        STATE_FOOTER.pack(len(text), STATE_FOOTER_MAGIC)


def iter_records(sink: Sink, start: int, size: int) -> Iterator[tuple[bytes, int, int, int, bytes]]:
    """Yield (magic, image, index, payload offset, payload) of the complete records from ``start``;
    stops at the first leader that is not a record (unknown magic, past ``size``, CRC mismatch)."""
    pos = start
    while pos + LEADER.size <= size:
        magic, img, index, length, crc = LEADER.unpack(sink.pread(pos, LEADER.size))
        if magic not in MAGICS or pos + LEADER.size + length > size:
            return
        payload = sink.pread(pos + LEADER.size, length)
        if len(payload) != length or crc32(payload) != crc:
            return
        yield magic, img, index, pos + LEADER.size, payload
        pos += LEADER.size + length


_SCAN_BLOCK = 1 << 20


def iter_records_resync(sink: Sink, start: int, size: int,
                        skipped: list[tuple[int, int]] | None = None) -> Iterator[tuple[bytes, int, int, int, bytes]]:
    """Like :func:`iter_records`, but a damaged or torn record in the middle of the file (a writer
    killed mid-write, ENOSPC, several processes appending) does not end the scan: it goes on at the
    next leader whose magic, length and CRC-32 check out. ``skipped`` receives (offset, byte count)
    of every stretch of bytes passed over."""
    pos = start
    while pos + LEADER.size <= size:
        good = True
        magic, img, index, length, crc = LEADER.unpack(sink.pread(pos, LEADER.size))
        if magic not in MAGICS or pos + LEADER.size + length > size:
            good = False
        else:
            payload = sink.pread(pos + LEADER.size, length)
            if len(payload) != length or crc32(payload) != crc:
                good = False
        if good:
            yield magic, img, index, pos + LEADER.size, payload
            pos += LEADER.size + length
            continue
        nxt = _find_next_leader(sink, pos + 1, size)
        if skipped is not None:
            skipped.append((pos, (nxt if nxt is not None else size) - pos))
        if nxt is None:
            return
        pos = nxt


def _find_next_leader(sink: Sink, pos: int, size: int) -> int | None:
    """The offset of the next plausible record leader (a known magic) at or after ``pos``."""
    while pos + LEADER.size <= size:
        block = sink.pread(pos, min(_SCAN_BLOCK, size - pos))
        at = block.find(b"TIO")
        while at >= 0:
            if block[at: at + 4] in MAGICS:
                return pos + at
            at = block.find(b"TIO", at + 1)
        pos += max(1, len(block) - 3)
    return None
