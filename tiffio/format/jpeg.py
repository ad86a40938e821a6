"""JPEG streams (ITU T.81 / ISO 10918-1) as structure: bytes in, structure or bytes out, no I/O.

The one place that walks JPEG markers. Everything else asks this module:

* :func:`iter_segments` walks the marker segments of a stream from SOI to its first scan
  (SOS) or EOI; :func:`parse_header` turns them into a :class:`Header` (the frame, the tables
  defined, the restart interval, the JFIF and Adobe colour markers); :func:`frame_fields` and
  :func:`frame_prefix` are the cheap per-tile probes of the frame header that the decoders use.
* :func:`split_tables` moves the DQT/DHT segments of a complete stream into a tables-only
  stream (the writer's JPEGTables + abbreviated tiles); :func:`merge_tables` does the reverse;
  :func:`pack_standalone` makes a complete JPEG file out of a TIFF segment, with its colour
  space declared so that any decoder reads what tiffio reads.

Which markers start a frame (T.81 Table B.1). The codes 0xC0-0xCF are "start of frame" codes
except three: 0xC4 is DHT (define Huffman tables), 0xC8 is JPG (reserved for JPEG extensions)
and 0xCC is DAC (define arithmetic coding conditioning). The other thirteen are frame headers
of one layout (P, Y, X, Nf, then Nf x (C, H|V, Tq)), and their code says the process:

======  ===============================  =============  ==============
code    process                          entropy code   mode
======  ===============================  =============  ==============
0xC0    baseline DCT                     Huffman        non-differential
0xC1    extended sequential DCT          Huffman        non-differential
0xC2    progressive DCT                  Huffman        non-differential
0xC3    lossless (sequential)            Huffman        non-differential
0xC5    differential sequential DCT      Huffman        differential (hierarchical)
0xC6    differential progressive DCT     Huffman        differential (hierarchical)
0xC7    differential lossless            Huffman        differential (hierarchical)
0xC9    extended sequential DCT          arithmetic     non-differential
0xCA    progressive DCT                  arithmetic     non-differential
0xCB    lossless (sequential)            arithmetic     non-differential
0xCD    differential sequential DCT      arithmetic     differential (hierarchical)
0xCE    differential progressive DCT     arithmetic     differential (hierarchical)
0xCF    differential lossless            arithmetic     differential (hierarchical)
======  ===============================  =============  ==============

So: bit 2 of the code is "differential", bit 3 "arithmetic", the low two bits 2 "progressive"
and 3 "lossless". Markers without a length field (T.81 B.1.1.3): SOI 0xD8, EOI 0xD9, RST0-7
0xD0-0xD7, TEM 0x01; any number of 0xFF fill bytes may precede a marker. DHP (0xDE, the
hierarchical image size) has a frame header's layout but is not a frame; JPEG-LS's SOF55
(0xF7) belongs to another standard (T.87) and is not a frame here either.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import CorruptSegmentError

__all__ = [
    "SOI", "EOI", "SOF_MARKERS", "Segment", "Component", "Frame", "Header",
    "iter_segments", "parse_header", "parse_frame", "frame_fields", "frame_prefix", "find_frame_offset",
    "starts_with_jfif", "implied_colour_space", "split_tables", "scan_offset", "merge_tables",
    "pack_adobe", "pack_standalone",
]

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"

# marker codes (T.81 Table B.1)
M_EOI, M_SOS, M_DQT, M_DHT, M_DRI = 0xD9, 0xDA, 0xDB, 0xC4, 0xDD
M_APP0, M_APP14, M_COM = 0xE0, 0xEE, 0xFE

#: the frame header markers SOF0-SOF15 without DHT (0xC4), JPG (0xC8) and DAC (0xCC)
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

# what the walk does at each marker code: 0 a segment with a length field, 1 a marker without
# one (SOI, RSTm, TEM), 2 a fill byte (0xFF), 3 SOS (a segment, then the scan), 4 EOI (the end)
_KIND = bytearray(256)
for _code in (0x01, *range(0xD0, 0xD9)):
    _KIND[_code] = 1
_KIND[0xFF] = 2
_KIND[M_SOS] = 3
_KIND[M_EOI] = 4
_KIND_OF = bytes(_KIND)
_MARKER = struct.Struct(">BBH")
_FRAME_FIELDS = struct.Struct(">BHHB")


@dataclass(frozen=True)
class Segment:
    """One marker (with its segment, if it has one) of a stream."""

    marker: int
    #: offset of the marker's 0xFF byte in the stream
    offset: int
    #: the segment's length field (it counts itself and the body); 0 for markers without one
    length: int

    @property
    def end(self) -> int:
        """Offset just past the segment (for SOS: past its header; the scan follows)."""
        return self.offset + 2 + self.length


def iter_segments(data: bytes | bytearray | memoryview, limit: int | None = None) -> Iterator[tuple[int, int, int]]:
    """``(marker, offset, length)`` of each marker after SOI, up to and including the first SOS
    or EOI, within the first ``limit`` bytes. ``length`` is the segment's length field (0 for
    markers that have none). Fill bytes are skipped. The walk stops silently where the stream
    stops being a sequence of markers (a byte other than 0xFF where a marker must be, or the end
    of the data); :func:`parse_header` says why. The stream's first two bytes are not checked."""
    n = len(data) if limit is None else min(len(data), limit)
    unpack = _MARKER.unpack_from
    kind_of = _KIND_OF
    i = 2
    while i + 2 <= n:
        if data[i] != 0xFF:
            return
        marker = data[i + 1]
        kind = kind_of[marker]
        if kind == 2:
            i += 1
        elif kind == 1:
            yield marker, i, 0
            i += 2
        elif kind == 4:
            yield marker, i, 0
            return
        elif i + 4 > n:
            return
        else:
            length = unpack(data, i)[2]
            if length < 2:  # the length counts its own two bytes
                return
            yield marker, i, length
            if kind == 3:
                return
            i += 2 + length


def find_frame_offset(data: bytes | bytearray | memoryview, limit: int | None = None) -> int | None:
    """Offset of the first frame header marker (SOFn) before the first scan whose size fields
    (up to the component count) lie within ``limit`` bytes; None when there is none, the
    stream does not start with SOI, or its markers break off first."""
    if data[:2] != SOI:
        return None
    n = len(data) if limit is None else min(len(data), limit)
    for marker, i, _length in iter_segments(data, n):
        if marker in SOF_MARKERS:
            return i if i + 10 <= n else None
    return None


def frame_fields(data: bytes | bytearray | memoryview, limit: int | None = None) -> tuple[int, int, int, int] | None:
    """(precision, height, width, components) of the stream's first frame header, or None
    (see :func:`find_frame_offset`). A cheap probe that runs once per decoded tile."""
    i = find_frame_offset(data, limit)
    return None if i is None else _FRAME_FIELDS.unpack_from(data, i + 4)


def frame_prefix(data: bytes | bytearray | memoryview, limit: int | None = None) -> bytes | None:
    """The stream's bytes from SOI through the first frame header's size fields (the SOFn
    marker + 8 bytes), or None. Another stream that starts with exactly these bytes has the
    same :func:`frame_fields`: the walk reads nothing past them. Tiles of one image share this
    prefix, so comparing it (~0.3 us) replaces the walk per tile."""
    i = find_frame_offset(data, limit)
    return None if i is None else bytes(data[: i + 10])


def starts_with_jfif(data: bytes | bytearray | memoryview) -> bool:
    """True when bytes 6-9 are ``JFIF``: the stream opens with SOI and a JFIF APP0 segment.
    The test tifffile makes too, and tiffio's reader with it: an RGB-photometric stream that
    passes it is decoded as YCbCr (JFIF says YCbCr), any other as RGB."""
    return data[6:10] == b"JFIF"


@dataclass(frozen=True)
class Component:
    """One component of a frame header: identifier, sampling factors, quantization table."""

    id: int
    h: int
    v: int
    table: int


@dataclass(frozen=True)
class Frame:
    """A frame header (SOFn): the marker says the process (module docstring's table)."""

    marker: int
    precision: int
    height: int
    width: int
    components: tuple[Component, ...]

    @property
    def differential(self) -> bool:
        """A differential frame of a hierarchical stream (SOF5-7, SOF13-15)."""
        return bool(self.marker & 0x04)

    @property
    def arithmetic(self) -> bool:
        """Arithmetic entropy coding (SOF9-15) instead of Huffman."""
        return bool(self.marker & 0x08)

    @property
    def progressive(self) -> bool:
        return self.marker & 0x03 == 2

    @property
    def lossless(self) -> bool:
        """The lossless process (no DCT, no quantization tables)."""
        return self.marker & 0x03 == 3

    @property
    def sampling(self) -> tuple[tuple[int, int], ...]:
        """(H, V) of each component."""
        return tuple((c.h, c.v) for c in self.components)


def parse_frame(marker: int, body: bytes) -> Frame | None:
    """The frame header in ``body`` (the bytes after a SOFn marker's length field), or None when
    the body is too short for the components it declares."""
    if len(body) < 6:
        return None
    precision, height, width, count = _FRAME_FIELDS.unpack_from(body)
    if len(body) < 6 + 3 * count:
        return None
    components = tuple(Component(body[k], body[k + 1] >> 4, body[k + 1] & 15, body[k + 2])
                       for k in range(6, 6 + 3 * count, 3))
    return Frame(marker, precision, height, width, components)


@dataclass(frozen=True)
class Header:
    """What a stream (or a tables-only stream such as JPEGTables) declares before its first scan."""

    #: the stream starts with SOI
    soi: bool
    #: the markers walked, in order (SOI not included; the last is SOS or EOI when reached)
    segments: tuple[Segment, ...]
    #: the first frame header, None when no SOFn comes before the scan
    frame: Frame | None
    #: offset of the first SOS marker, None when the walk did not reach one
    scan_offset: int | None
    #: destinations (Tq) of the quantization tables defined
    qtables: frozenset[int]
    #: (class, destination) of the Huffman tables defined: class 0 DC (or lossless), 1 AC
    htables: frozenset[tuple[int, int]]
    #: the last DRI's restart interval, None without DRI
    restart_interval: int | None
    #: a JFIF APP0 segment is present (anywhere before the scan)
    jfif: bool
    #: the transform flag of the last Adobe APP14 segment (0 none/RGB/CMYK, 1 YCbCr, 2 YCCK), or None
    adobe_transform: int | None
    #: the walk reached SOS or EOI; otherwise ``problem`` says where it stopped
    complete: bool
    #: the first thing found malformed (where the walk stopped, or a frame header too short for
    #: its components), None when nothing was
    problem: str | None
    #: the stream's last two bytes are EOI
    eoi: bool


def parse_header(data: bytes | bytearray | memoryview, limit: int | None = None) -> Header:
    """Walk the stream's markers up to its first scan (within ``limit`` bytes) and parse what
    they declare. Never raises on malformed input: ``Header.problem`` says where the walk
    stopped and why, and what came before it is kept."""
    n = len(data) if limit is None else min(len(data), limit)
    soi = data[:2] == SOI
    segments: list[Segment] = []
    frame: Frame | None = None
    scan: int | None = None
    qtables: set[int] = set()
    htables: set[tuple[int, int]] = set()
    restart: int | None = None
    jfif = False
    adobe: int | None = None
    problem: str | None = None
    if soi:
        for marker, offset, length in iter_segments(data, n):
            segment = Segment(marker, offset, length)
            segments.append(segment)
            if marker == M_SOS:
                scan = offset
                break
            if marker == M_EOI or not length:
                continue
            body = bytes(data[offset + 4: min(offset + 2 + length, n)])
            if marker in SOF_MARKERS:
                if frame is None and problem is None:
                    frame = parse_frame(marker, body)
                    if frame is None:
                        problem = (f"the frame header (marker 0x{marker:02X}) at byte {offset} is too short for "
                                   "the components it declares")
            elif marker == M_DQT:
                qtables.update(_dqt_destinations(body))
            elif marker == M_DHT:
                htables.update(_dht_destinations(body))
            elif marker == M_DRI and len(body) >= 2:
                restart = int.from_bytes(body[:2], "big")
            elif marker == M_APP0 and body[:5] == b"JFIF\x00":
                jfif = True
            elif marker == M_APP14 and body[:5] == b"Adobe" and len(body) >= 12:
                adobe = body[11]
    complete = bool(segments) and segments[-1].marker in (M_SOS, M_EOI)
    if not complete:
        problem = _where_stopped(data, n, soi, segments)
    return Header(soi, tuple(segments), frame, scan, frozenset(qtables), frozenset(htables), restart, jfif,
                  adobe, complete, problem, data[len(data) - 2:] == EOI)


def _where_stopped(data: bytes | bytearray | memoryview, n: int, soi: bool, segments: list[Segment]) -> str:
    if not soi:
        return "the stream does not start with SOI (FF D8)"
    pos = segments[-1].end if segments else 2
    if segments and segments[-1].length and segments[-1].end > n:
        return f"the segment of marker 0x{segments[-1].marker:02X} at byte {segments[-1].offset} runs past the end"
    if pos + 2 > n:
        return f"the stream ends at byte {n} before its first scan (SOS)"
    if data[pos] == 0xFF and pos + 4 <= n:
        return f"the segment of marker 0x{data[pos + 1]:02X} at byte {pos} has a length of {data[pos + 3]} (at least 2)"
    if data[pos] == 0xFF:
        return f"the stream ends at byte {n} before its first scan (SOS)"
    return f"byte {pos} is 0x{data[pos]:02X} where a marker (FF xx) must be"


def _dqt_destinations(body: bytes) -> Iterator[int]:
    k = 0
    while k < len(body):
        pq_tq = body[k]
        size = 1 + (128 if pq_tq >> 4 else 64)
        if k + size > len(body):
            return
        yield pq_tq & 15
        k += size


def _dht_destinations(body: bytes) -> Iterator[tuple[int, int]]:
    k = 0
    while k + 17 <= len(body):
        tc_th = body[k]
        size = 17 + sum(body[k + 1: k + 17])
        if k + size > len(body):
            return
        yield tc_th >> 4, tc_th & 15
        k += size


def implied_colour_space(header: Header) -> str | None:
    """The colour space a decoder that reads the markers (libjpeg, and so Pillow and browsers)
    gives the stream's components when nobody tells it: one component "GRAYSCALE"; three:
    "YCbCr" if JFIF, else by the Adobe transform (0 "RGB", other "YCbCr"), else by the component
    identifiers ('R', 'G', 'B' "RGB", anything else "YCbCr"); four: "CMYK" without an Adobe
    segment or with transform 0, else "YCCK". None without a frame header or for other counts."""
    frame = header.frame
    if frame is None:
        return None
    count = len(frame.components)
    if count == 1:
        return "GRAYSCALE"
    if count == 3:
        if header.jfif:
            return "YCbCr"
        if header.adobe_transform is not None:
            return "RGB" if header.adobe_transform == 0 else "YCbCr"
        ids = tuple(c.id for c in frame.components)
        return "RGB" if ids == (82, 71, 66) else "YCbCr"
    if count == 4:
        return "CMYK" if header.adobe_transform in (None, 0) else "YCCK"
    return None


# --- JPEGTables ------------------------------------------------------------------------------

def scan_offset(stream: bytes | bytearray | memoryview) -> int | None:
    """Offset of the first SOS marker of a stream, None when the walk does not reach one."""
    if stream[:2] != SOI:
        return None
    for marker, offset, _length in iter_segments(stream):
        if marker == M_SOS:
            return offset
    return None


def split_tables(stream: bytes) -> tuple[bytes, bytes]:
    """Split a complete stream into (tables, abbreviated stream): the tables are SOI + every
    DQT and DHT segment before the scan + EOI; the abbreviated stream keeps everything else.
    Raises CorruptSegmentError when the stream's markers do not reach its scan."""
    header = parse_header(stream)
    if header.scan_offset is None:
        raise CorruptSegmentError(f"a JPEG stream whose markers do not reach its scan: {header.problem or 'no SOS'}")
    tables = [SOI]
    rest = [SOI]
    for segment in header.segments[:-1]:
        (tables if segment.marker in (M_DQT, M_DHT) else rest).append(stream[segment.offset: segment.end])
    tables.append(EOI)
    rest.append(stream[header.scan_offset:])
    return b"".join(tables), b"".join(rest)


def _table_segments(tables: bytes | bytearray | memoryview | None) -> tuple[bytes, ...]:
    """The DQT and DHT segments of a tables-only stream (JPEGTables). Only those carry over to
    the streams that follow: a decoder that reads the tables stream first resets the restart
    interval and the arithmetic conditioning (DRI, DAC) at the next SOI, and APPn/COM segments
    describe no image."""
    return _cached_table_segments(bytes(tables)) if tables else ()


@functools.lru_cache(maxsize=16)
def _cached_table_segments(tables: bytes) -> tuple[bytes, ...]:
    if tables[:2] != SOI:
        return ()
    return tuple(tables[s.offset: s.end] for s in parse_header(tables).segments
                 if s.marker in (M_DQT, M_DHT) and s.end <= len(tables))


def merge_tables(stream: bytes | bytearray | memoryview, tables: bytes | bytearray | memoryview | None) -> bytes:
    """An abbreviated stream with the DQT/DHT segments of ``tables`` (JPEGTables) merged in, right
    after its leading APPn/COM segments: a complete stream that decodes as libjpeg decodes the
    stream after reading the tables (the stream's own tables still replace same-numbered ones).
    Its other markers are kept. Raises CorruptSegmentError as :func:`pack_standalone`."""
    return pack_standalone(stream, tables, colour=None)


def pack_adobe(transform: int) -> bytes:
    """An Adobe APP14 segment (Adobe Technical Note 5116: version 100, no flags) with the
    colour transform flag: 0 the components are stored as they are (RGB), 1 YCbCr, 2 YCCK."""
    return b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00" + bytes([transform])


def pack_standalone(stream: bytes | bytearray | memoryview, tables: bytes | bytearray | memoryview | None = None,
                    *, colour: str | None = "implied") -> bytes:
    """A complete JPEG file out of a TIFF segment's stream, without re-encoding: the DQT/DHT
    segments of ``tables`` (JPEGTables) merged in (:func:`merge_tables`), and, for a
    three-component frame, ``colour`` ("RGB", "YCbCr", or "implied": what the stream implies,
    :func:`implied_colour_space`) declared so that every marker-reading decoder agrees:

    * "RGB": JFIF APP0 segments are dropped (JFIF means YCbCr) and the Adobe APP14 transform
      flag is 0, in the stream's Adobe segments or in one added;
    * "YCbCr": the Adobe transform flag is 1, in the stream's Adobe segments, or in one added
      when the stream has neither JFIF nor Adobe segments.

    With ``colour=None``, and for frames of other component counts, the markers are kept.
    Raises CorruptSegmentError when the stream has no SOI, no frame header or no scan."""
    header = parse_header(stream)
    if header.scan_offset is None or header.frame is None:
        what = header.problem or ("no frame header (SOFn) before the scan" if header.scan_offset is not None
                                  else "no scan (SOS)")
        raise CorruptSegmentError(f"not a complete JPEG stream: {what}")
    target = implied_colour_space(header) if colour == "implied" else colour
    three = len(header.frame.components) == 3 and target in ("RGB", "YCbCr")
    parts = [SOI]
    inserted = False
    for segment in header.segments[:-1]:
        marker = segment.marker
        if not inserted and not (M_APP0 <= marker <= 0xEF or marker == M_COM):
            if three and header.adobe_transform is None and (target == "RGB" or not header.jfif):
                parts.append(pack_adobe(0 if target == "RGB" else 1))
            parts.extend(_table_segments(tables))
            inserted = True
        piece = bytes(stream[segment.offset: segment.end])
        if three and marker == M_APP0 and target == "RGB" and piece[4:9] == b"JFIF\x00":
            continue
        if three and marker == M_APP14 and piece[4:9] == b"Adobe" and len(piece) >= 16:
            piece = piece[:15] + bytes([0 if target == "RGB" else 1]) + piece[16:]
        parts.append(piece)
    parts.append(bytes(stream[header.scan_offset:]))
    return b"".join(parts)
