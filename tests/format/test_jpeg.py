"""tiffio.format.jpeg: the one JPEG marker walk, frame headers (T.81 Table B.1), tables and colour markers.

Streams come from imagecodecs' libjpeg encoder and are decoded by it (and by Pillow) to check that
what the module builds decodes as it claims."""

from __future__ import annotations

import io
import random
import struct

import imagecodecs
import numpy
import pytest

from tiffio import CorruptSegmentError
from tiffio.format.jpeg import (
    SOF_MARKERS,
    frame_fields,
    frame_prefix,
    implied_colour_space,
    iter_segments,
    merge_tables,
    pack_standalone,
    parse_header,
    scan_offset,
    split_tables,
    starts_with_jfif,
)

PIL = pytest.importorskip("PIL.Image")

#: T.81 Table B.1, "Start Of Frame markers": code -> (differential, arithmetic, progressive, lossless)
TABLE_B1 = {
    0xC0: (False, False, False, False), 0xC1: (False, False, False, False), 0xC2: (False, False, True, False),
    0xC3: (False, False, False, True), 0xC5: (True, False, False, False), 0xC6: (True, False, True, False),
    0xC7: (True, False, False, True), 0xC9: (False, True, False, False), 0xCA: (False, True, True, False),
    0xCB: (False, True, False, True), 0xCD: (True, True, False, False), 0xCE: (True, True, True, False),
    0xCF: (True, True, False, True),
}


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def frame_body(precision: int, height: int, width: int, ids=(1,)) -> bytes:
    return struct.pack(">BHHB", precision, height, width, len(ids)) + b"".join(bytes([i, 0x11, 0]) for i in ids)


def image(shape=(32, 48, 3), seed=1) -> numpy.ndarray:
    """Smooth content with some noise (the colour of each pixel matters, not its compressibility)."""
    y, x = numpy.mgrid[: shape[0], : shape[1]]
    rng = numpy.random.default_rng(seed)
    base = numpy.stack([(y * 5) % 256, (x * 7) % 256, ((x + y) * 3) % 256], axis=-1)[..., : shape[2]]
    return numpy.ascontiguousarray((base + rng.integers(0, 20, base.shape)).clip(0, 255).astype(numpy.uint8))


def rgb_stream() -> bytes:
    """A three-component stream stored as RGB: libjpeg writes Adobe APP14 (transform 0) and the IDs 'R', 'G', 'B'."""
    return bytes(imagecodecs.jpeg8_encode(image(), level=90, colorspace="RGB", outcolorspace="RGB"))


def ycbcr_stream() -> bytes:
    """A 4:2:0 YCbCr stream with JFIF APP0 and the component IDs 1, 2, 3."""
    return bytes(imagecodecs.jpeg8_encode(image(), level=90, colorspace="RGB", outcolorspace="YCBCR",
                                          subsampling="420"))


def drop_markers(stream: bytes, markers: set[int]) -> bytes:
    header = parse_header(stream)
    kept = [stream[s.offset: s.end] for s in header.segments[:-1] if s.marker not in markers]
    return stream[:2] + b"".join(kept) + stream[header.scan_offset:]


def set_component_ids(stream: bytes, ids: tuple[int, ...]) -> bytes:
    """The stream with other component identifiers, in its frame header and its scan header."""
    header = parse_header(stream)
    sof = next(s for s in header.segments if s.marker in SOF_MARKERS)
    sos = header.segments[-1]
    out = bytearray(stream)
    old = {out[sof.offset + 10 + 3 * k]: cid for k, cid in enumerate(ids)}
    for k, cid in enumerate(ids):
        out[sof.offset + 10 + 3 * k] = cid
    for k in range(out[sos.offset + 4]):
        out[sos.offset + 5 + 2 * k] = old[out[sos.offset + 5 + 2 * k]]
    return bytes(out)


def pil(data: bytes) -> numpy.ndarray:
    return numpy.asarray(PIL.open(io.BytesIO(data)))


# --- the frame markers --------------------------------------------------------------------

def test_sof_markers_are_table_b1():
    assert SOF_MARKERS == set(TABLE_B1)
    assert not {0xC4, 0xC8, 0xCC} & SOF_MARKERS  # DHT, JPG (reserved), DAC
    assert 0xDE not in SOF_MARKERS and 0xF7 not in SOF_MARKERS  # DHP (hierarchical size), JPEG-LS SOF55


@pytest.mark.parametrize("code", range(0xC0, 0xD0), ids=lambda c: f"0x{c:02X}")
def test_each_code_of_the_sof_range(code):
    """A segment of every code 0xC0-0xCF holding a frame-like body of 5 x 7 pixels, then a real
    SOF0 of 40 x 70: the walk takes the first as the frame exactly when Table B.1 says it is one."""
    stream = (b"\xff\xd8" + segment(code, frame_body(8, 5, 7)) + segment(0xC0, frame_body(8, 40, 70, (1, 2, 3)))
              + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\x00\x00\xff\xd9")
    header = parse_header(stream)
    if code in TABLE_B1:
        assert frame_fields(stream) == (8, 5, 7, 1)
        frame = header.frame
        assert frame is not None and frame.marker == code
        assert (frame.differential, frame.arithmetic, frame.progressive, frame.lossless) == TABLE_B1[code]
    else:
        assert frame_fields(stream) == (8, 40, 70, 3)
        assert header.frame is not None and header.frame.marker == 0xC0
    assert header.complete and header.scan_offset == stream.index(b"\xff\xda")


def test_frame_of_real_streams():
    gray12 = bytes(imagecodecs.jpeg8_encode(numpy.arange(9 * 20, dtype=numpy.uint16).reshape(9, 20) * 17,
                                            level=90, bitspersample=12))
    lossless = bytes(imagecodecs.jpeg8_encode(image(), lossless=True))
    for stream, expected in ((rgb_stream(), (0xC0, 8, 32, 48, 3)), (gray12, (0xC1, 12, 9, 20, 1)),
                             (lossless, (0xC3, 8, 32, 48, 3))):
        frame = parse_header(stream).frame
        assert frame is not None
        assert (frame.marker, frame.precision, frame.height, frame.width, len(frame.components)) == expected
        assert frame_fields(stream) == expected[1:]
        decoded = imagecodecs.jpeg8_decode(stream)
        assert decoded.shape[:2] == expected[2:4] and decoded.dtype == (numpy.uint8 if expected[1] == 8
                                                                        else numpy.uint16)
    ycc = parse_header(ycbcr_stream()).frame
    assert ycc is not None and ycc.sampling == ((2, 2), (1, 1), (1, 1)) and [c.id for c in ycc.components] == [1, 2, 3]


# --- the walk -------------------------------------------------------------------------------

def test_walk_fill_bytes_and_markers_without_length():
    sof = segment(0xC0, frame_body(8, 16, 16))
    stream = (b"\xff\xd8\xff\xff\xff" + segment(0xE0, b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00") + b"\xff\x01"
              + b"\xff\xd0" + sof + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\x12\x34\xff\xd9")
    markers = [m for m, _, _ in iter_segments(stream)]
    assert markers == [0xE0, 0x01, 0xD0, 0xC0, 0xDA]
    header = parse_header(stream)
    assert header.jfif and header.complete and header.eoi and frame_fields(stream) == (8, 16, 16, 1)
    assert not starts_with_jfif(stream)  # JFIF is not the first segment: the fill bytes come first
    assert frame_prefix(stream) == stream[: stream.index(sof) + 10]


@pytest.mark.parametrize(("stream", "problem"), [
    (b"II*\x00", "does not start with SOI"),
    (b"\xff\xd8" + segment(0xE0, b"x" * 10)[:8], "runs past the end"),
    (b"\xff\xd8" + segment(0xE0, b"x") + b"\x00\x00", "byte 7 is 0x00 where a marker"),
    (b"\xff\xd8\xff\xe0\x00\x01" + b"\x00" * 8, "has a length of 1"),
    (b"\xff\xd8" + segment(0xDB, b"\x00" + bytes(64)), "ends at byte 71 before its first scan"),
])
def test_walk_stops_and_says_where(stream, problem):
    header = parse_header(stream)
    assert not header.complete and header.scan_offset is None and header.frame is None
    assert header.problem is not None and problem in header.problem
    assert frame_fields(stream) is None and frame_prefix(stream) is None and scan_offset(stream) is None


def test_walk_never_raises_on_mutated_streams():
    """Random byte flips, cuts and insertions in real streams: the walk returns a Header and the
    probes None or a frame, nothing raises, and it agrees with itself."""
    rng = random.Random(7)
    sources = [rgb_stream(), ycbcr_stream()] + list(split_tables(ycbcr_stream()))
    for _ in range(3000):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 4)):
            k = rng.randrange(len(data))
            op = rng.random()
            if op < 0.6:
                data[k] = rng.randrange(256)
            elif op < 0.8:
                del data[k:]
                if not data:
                    data = bytearray(b"\xff")
            else:
                data[k:k] = bytes([0xFF, rng.randrange(256)])
        stream = bytes(data)
        header = parse_header(stream)
        fields = frame_fields(stream)
        if fields is not None:
            assert header.frame is not None or header.problem is not None
        assert (header.scan_offset is None) == (scan_offset(stream) is None) or not header.soi


def test_tables_destinations_and_restart_interval():
    tables, abbreviated = split_tables(ycbcr_stream())
    t = parse_header(tables)
    assert t.soi and t.eoi and t.complete and t.frame is None and t.scan_offset is None
    assert t.qtables == {0, 1} and t.htables == {(0, 0), (1, 0), (0, 1), (1, 1)}
    a = parse_header(abbreviated)
    assert not a.qtables and not a.htables and a.restart_interval is None
    dri = b"\xff\xd8" + segment(0xDD, b"\x00\x10") + abbreviated[2:]
    assert parse_header(dri).restart_interval == 16


# --- JPEGTables: split and merge ------------------------------------------------------------

def test_split_and_merge_round_trip():
    full = ycbcr_stream()
    tables, abbreviated = split_tables(full)
    assert b"\xff\xdb" not in abbreviated[: scan_offset(abbreviated)]
    expected = imagecodecs.jpeg8_decode(full)
    assert numpy.array_equal(imagecodecs.jpeg8_decode(abbreviated, tables=tables), expected)
    merged = merge_tables(abbreviated, tables)
    assert starts_with_jfif(merged)  # the tables go after the APPn segments: JFIF stays first
    assert numpy.array_equal(imagecodecs.jpeg8_decode(merged), expected)
    assert numpy.array_equal(pil(merged), expected)
    assert merge_tables(abbreviated, None) == abbreviated


def test_merge_takes_only_what_carries_over_from_the_tables():
    """A decoder that reads JPEGTables first forgets its DRI and APPn at the stream's SOI (libjpeg
    does: imagecodecs' ``tables=``). Merging keeps only DQT and DHT, so the merged stream decodes
    the same: an Adobe transform 0 in the tables must not turn the YCbCr stream into RGB."""
    tables, abbreviated = split_tables(ycbcr_stream())
    abbreviated = drop_markers(abbreviated, {0xE0})  # no JFIF: the tables' Adobe would decide
    noisy = b"\xff\xd8" + segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00") + segment(0xDD, b"\x00\x01") \
        + tables[2:]
    expected = imagecodecs.jpeg8_decode(abbreviated, tables=noisy)
    assert numpy.array_equal(expected, imagecodecs.jpeg8_decode(abbreviated, tables=tables))
    merged = merge_tables(abbreviated, noisy)
    header = parse_header(merged)
    assert header.adobe_transform is None and header.restart_interval is None
    assert numpy.array_equal(imagecodecs.jpeg8_decode(merged), expected)


# --- colour markers of a standalone file ----------------------------------------------------

def test_implied_colour_space_follows_libjpeg():
    ycc, rgb = ycbcr_stream(), rgb_stream()
    bare = drop_markers(ycc, {0xE0})
    cases = {
        ycc: "YCbCr",                                        # JFIF
        rgb: "RGB",                                          # Adobe transform 0
        drop_markers(rgb, {0xEE}): "RGB",                    # IDs 'R', 'G', 'B'
        bare: "YCbCr",                                       # IDs 1, 2, 3
        set_component_ids(bare, (82, 71, 66)): "RGB",
        set_component_ids(bare, (7, 8, 9)): "YCbCr",
    }
    for stream, space in cases.items():
        assert implied_colour_space(parse_header(stream)) == space
        # libjpeg's own reading: converting YCbCr to RGB changes the pixels, reading RGB does not
        as_is = imagecodecs.jpeg8_decode(stream, colorspace="RGB", outcolorspace="RGB")
        assert numpy.array_equal(imagecodecs.jpeg8_decode(stream), as_is) == (space == "RGB")


@pytest.mark.parametrize("variant", ["markerless_123", "adobe_1", "jfif_later"])
def test_standalone_rgb_declares_rgb(variant):
    """Streams that the TIFF says hold RGB but whose markers say (or let decoders assume) YCbCr:
    the standalone file decodes, in libjpeg and Pillow, to the stream read as RGB."""
    rgb = rgb_stream()
    if variant == "markerless_123":  # Aperio-style: no APP14, component IDs 1, 2, 3
        stream = set_component_ids(drop_markers(rgb, {0xEE}), (1, 2, 3))
    elif variant == "adobe_1":
        stream = rgb.replace(b"Adobe\x00\x64\x00\x00\x00\x00\x00", b"Adobe\x00\x64\x00\x00\x00\x00\x01")
    else:  # a JFIF APP0 after the tables
        header = parse_header(rgb)
        sof = next(s for s in header.segments if s.marker == 0xC0)
        jfif = segment(0xE0, b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00")
        stream = drop_markers(rgb[: sof.offset] + jfif + rgb[sof.offset:], {0xEE})
    as_rgb = imagecodecs.jpeg8_decode(stream, colorspace="RGB", outcolorspace="RGB")
    assert not numpy.array_equal(imagecodecs.jpeg8_decode(stream), as_rgb)  # what a bare splice gives
    out = pack_standalone(stream, colour="RGB")
    header = parse_header(out)
    assert header.adobe_transform == 0 and not header.jfif
    assert numpy.array_equal(imagecodecs.jpeg8_decode(out), as_rgb)
    assert numpy.array_equal(pil(out), as_rgb)


def test_standalone_ycbcr_declares_ycbcr():
    tables, abbreviated = split_tables(ycbcr_stream())
    bare = drop_markers(abbreviated, {0xE0})
    expected = imagecodecs.jpeg8_decode(bare, tables=tables)
    out = pack_standalone(bare, tables)
    header = parse_header(out)
    assert header.adobe_transform == 1 and not header.jfif and header.qtables == {0, 1}
    assert numpy.array_equal(imagecodecs.jpeg8_decode(out), expected)
    assert numpy.array_equal(pil(out), expected)
    # JFIF already says YCbCr: nothing is added
    with_jfif = pack_standalone(abbreviated, tables)
    assert parse_header(with_jfif).adobe_transform is None and starts_with_jfif(with_jfif)
    assert with_jfif == merge_tables(abbreviated, tables)


def test_standalone_keeps_other_frames_as_they_are():
    gray = bytes(imagecodecs.jpeg8_encode(image()[..., :1].copy().reshape(32, 48), level=90))
    tables, abbreviated = split_tables(gray)
    assert pack_standalone(abbreviated, tables) == merge_tables(abbreviated, tables)
    cmyk = bytes(imagecodecs.jpeg8_encode(numpy.dstack([image(), image(seed=2)[..., :1]]), level=90,
                                          colorspace="CMYK", outcolorspace="CMYK"))
    assert pack_standalone(cmyk) == cmyk


@pytest.mark.parametrize(("stream", "message"), [
    (b"\x00\x01\x02\x03", "does not start with SOI"),
    (b"\xff\xd8" + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\xff\xd9", "no frame header"),
    (b"\xff\xd8" + segment(0xC0, frame_body(8, 8, 8)) + b"\xff\xd9", "no scan"),
])
def test_standalone_refuses_what_is_no_stream(stream, message):
    with pytest.raises(CorruptSegmentError, match=message):
        pack_standalone(stream)
