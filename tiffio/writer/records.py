"""The record format of the writer's working file.

Every payload (tile, image definition, blank tile, checkpoint state) is preceded by a 28-byte
*leader*: magic, image number, tile index, payload length, CRC-32 of the payload. TIFF readers
never see leaders (they follow offsets); recovery, resume (and merge) scan them. The state record
of a checkpoint ends with a footer (JSON length, magic) just before the first IFD; a scan passes
over that footer and the checkpoint's IFDs. The first record of every working file, at offset 16,
is the definition of image 0: its magic, CRC-32 and JSON are the file's signature
(:func:`read_signature`), which every path that writes into an existing file checks first.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from ..errors import TiffFormatError
from .sink import Sink

__all__ = ["DATA_START", "LEADER", "MAGIC_TILE", "MAGIC_IMAGE", "MAGIC_BLANK", "MAGIC_STATE", "MAGICS",
           "STATE_FOOTER", "STATE_FOOTER_MAGIC", "FORMAT_VERSION", "CLASSIC_LIMIT", "crc32", "crc32_parts",
           "pack_state_record", "Record", "read_signature", "scan_records", "iter_records", "iter_records_resync"]

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


class Record(NamedTuple):
    """One record found by a scan: its magic, image, tile index, payload offset and payload, and
    where the next record starts (after a checkpoint's state record: after the checkpoint's IFDs)."""

    magic: bytes
    image: int
    tile: int
    offset: int
    payload: bytes
    end: int


#: the first record of a working file is at most this long (an image definition: JSON parameters)
_MAX_FIRST_RECORD = 256 << 20


def read_signature(sink: Sink, size: int) -> dict[str, Any]:
    """The proof that ``sink`` is a working file tiffio's writer made: its first record, right after the
    16 bytes of the header, is the definition of image 0 (magic, CRC-32 and JSON all check out);
    returns that definition. Anything else raises TiffFormatError before a byte is written: every
    path that repairs or appends to a file calls this first."""
    where = f"{sink.name}: not a file written by tiffio's writer"
    if size < DATA_START + LEADER.size:
        raise TiffFormatError(f"{where} ({size} bytes; it would start with a 16-byte header and an image record); "
                              "left unchanged")
    magic, img, index, length, crc = LEADER.unpack(sink.pread(DATA_START, LEADER.size))
    if magic != MAGIC_IMAGE or img or index or length > min(size - DATA_START - LEADER.size, _MAX_FIRST_RECORD):
        raise TiffFormatError(f"{where} (no image record at offset {DATA_START}); left unchanged")
    payload = sink.pread(DATA_START + LEADER.size, length)
    if len(payload) != length or crc32(payload) != crc:
        raise TiffFormatError(f"{where} (the record at offset {DATA_START} fails its CRC-32); left unchanged")
    try:
        record = json.loads(payload)
        ok = isinstance(record, dict) and isinstance(record.get("params"), dict) and \
            record.get("byteorder") in ("<", ">") and record.get("bigtiff") in (None, True, False)
    except ValueError:
        ok = False
    if not ok:
        raise TiffFormatError(f"{where} (the record at offset {DATA_START} is not an image definition); "
                              "left unchanged")
    result: dict[str, Any] = record
    return result


def scan_records(sink: Sink, start: int, size: int, resync: bool = False,
                 skipped: list[tuple[int, int]] | None = None) -> Iterator[Record]:
    """The complete records from ``start``. A checkpoint's state record is followed by its IFDs: the scan
    goes on after them (and over the pad byte that may precede a state record). Without ``resync``
    the scan stops at the first bytes that are not a complete record (unknown magic, past ``size``,
    CRC mismatch, a checkpoint cut off); with it, a damaged or torn record in the middle of the file (a
    writer killed mid-write, ENOSPC, several processes appending) does not end the scan: it goes on at
    the next leader whose magic, length and CRC-32 check out, and ``skipped`` receives (offset, byte
    count) of every stretch passed over."""
    pos = start
    while pos + LEADER.size <= size:
        record = _read_record(sink, pos, size)
        if record is None and pos & 1:  # the pad byte that puts a checkpoint on an even offset
            after = _read_record(sink, pos + 1, size)
            if after is not None and after.magic == MAGIC_STATE and sink.pread(pos, 1) == b"\0":
                pos, record = pos + 1, after
        if record is not None:
            yield record
            pos = record.end
            continue
        if not resync:
            return
        nxt = _find_next_leader(sink, pos + 1, size)
        if skipped is not None:
            skipped.append((pos, (nxt if nxt is not None else size) - pos))
        if nxt is None:
            return
        pos = nxt


def _read_record(sink: Sink, pos: int, size: int) -> Record | None:
    magic, img, index, length, crc = LEADER.unpack(sink.pread(pos, LEADER.size))
    if magic not in MAGICS or pos + LEADER.size + length > size:
        return None
    payload = sink.pread(pos + LEADER.size, length)
    if len(payload) != length or crc32(payload) != crc:
        return None
    end = pos + LEADER.size + length
    if magic == MAGIC_STATE:  # its footer and the checkpoint's IFDs follow
        try:
            metadata = int(json.loads(payload)["metadata_size"])
        except (ValueError, KeyError, TypeError):
            return None
        footer = sink.pread(end, STATE_FOOTER.size)
        if len(footer) != STATE_FOOTER.size or STATE_FOOTER.unpack(footer) != (length, STATE_FOOTER_MAGIC) or \
                metadata < 0 or end + STATE_FOOTER.size + metadata > size:
            return None
        end += STATE_FOOTER.size + metadata
    return Record(magic, img, index, pos + LEADER.size, payload, end)


def iter_records(sink: Sink, start: int, size: int) -> Iterator[tuple[bytes, int, int, int, bytes]]:
    """Yield (magic, image, index, payload offset, payload) of the complete records from ``start``;
    stops at the first leader that is not a record (see :func:`scan_records`)."""
    for r in scan_records(sink, start, size):
        yield r.magic, r.image, r.tile, r.offset, r.payload


def iter_records_resync(sink: Sink, start: int, size: int,
                        skipped: list[tuple[int, int]] | None = None) -> Iterator[tuple[bytes, int, int, int, bytes]]:
    """Like :func:`iter_records`, but passing over damaged or torn records (``resync`` of
    :func:`scan_records`); ``skipped`` receives (offset, byte count) of every stretch passed over."""
    for r in scan_records(sink, start, size, True, skipped):
        yield r.magic, r.image, r.tile, r.offset, r.payload


_SCAN_BLOCK = 1 << 20
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
