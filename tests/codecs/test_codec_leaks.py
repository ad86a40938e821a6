"""Codec calls that leak memory inside imagecodecs are never made.

imagecodecs 2026.3.6 leaks its whole libjpeg decompressor (14-63 KB per call) when
``jpeg8_decode`` / ``jpeg_decode`` refuse an ``out=`` array whose shape or dtype is not
the stream's. The fuzz campaign found it as a slow RSS growth (workers past 1 GiB after
~350,000 decodes): any file whose JPEG streams do not match the declared segment shape
(edge strips written short, corrupt TileLength) leaked on every read. tiffio reads the
frame header first (codecs.jpeg_frame) and passes ``out=`` only when it matches.

The checks here wrap the codec functions and record every out= call whose array the
stream cannot fill; measuring RSS directly would be too noisy for a test.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import imagecodecs
import numpy
import pytest

import tiffio
from tiffio.codecs import IMAGE_DECODERS, jpeg_frame
from tiffio.enums import Compression

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"


def _jpeg_files() -> list[Path]:
    files = []
    for path in sorted(FIXTURES.rglob("*.tif")):
        data = path.read_bytes()
        if b"\xff\xd8" not in data:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with tiffio.open(data, strict=False) as tif:
                    if any(ifd.compression == 7 for ifd in tif.ifds):
                        files.append(path)
        except tiffio.TiffError:
            continue
    return files


JPEG_FILES = _jpeg_files()


@pytest.fixture
def refused_out_calls(monkeypatch):
    """Wrap jpeg8_decode / jpeg_decode; collect (function, out shape, stream shape) for every
    out= call whose array the stream's frame does not fill exactly."""
    calls: list[tuple] = []
    for name in ("jpeg8_decode", "jpeg_decode"):
        original = getattr(imagecodecs, name)

        def checked(data, *args, _original=original, _name=name, out=None, **kwargs):
            if isinstance(out, numpy.ndarray):
                frame = jpeg_frame(data)
                want = None if frame is None else (frame[1], frame[2]) + ((frame[3],) if frame[3] > 1 else ())
                dtype = None if frame is None else numpy.dtype(numpy.uint8 if frame[0] <= 8 else numpy.uint16)
                if want != out.shape or dtype != out.dtype:
                    calls.append((_name, out.shape, out.dtype.str, frame))
            return _original(data, *args, out=out, **kwargs)

        monkeypatch.setattr(imagecodecs, name, checked)
    return calls


def _read_everything(path: Path) -> None:
    data = path.read_bytes()
    for strict in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with tiffio.open(path if strict else data, strict=strict) as tif:
                    for ifd in tif.ifds:
                        for i in range(ifd.segment_count):
                            try:
                                ifd.read_segment(i)
                            except tiffio.TiffError:
                                pass
                        try:
                            ifd.asarray(workers=1)
                            ifd.read_region(1, 1, max(1, ifd.shape[0] - 2), max(1, ifd.shape[1] - 2), workers=1)
                        except tiffio.TiffError:
                            pass
            except tiffio.TiffError:
                pass


def test_the_fixtures_hold_jpeg_files():
    names = {p.name for p in JPEG_FILES}
    assert len(JPEG_FILES) >= 20
    assert "fuzz_jpeg_tile_length.tif" in names


@pytest.mark.parametrize("path", JPEG_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_no_jpeg_decode_into_a_mismatched_out(path, refused_out_calls):
    _read_everything(path)
    assert refused_out_calls == []


def test_the_check_sees_a_mismatched_out(refused_out_calls):
    # the wrapper is live: a direct mismatched call is recorded (and refused by imagecodecs)
    stream = imagecodecs.jpeg8_encode(numpy.zeros((16, 24), numpy.uint8))
    with pytest.raises(ValueError):
        imagecodecs.jpeg8_decode(stream, out=numpy.empty((32, 24), numpy.uint8))
    assert refused_out_calls == [("jpeg8_decode", (32, 24), "|u1", (8, 16, 24, 1))]


def test_jpeg_frame_reads_the_frame_header():
    rgb = imagecodecs.jpeg8_encode(numpy.zeros((40, 70, 3), numpy.uint8))
    assert jpeg_frame(rgb) == (8, 40, 70, 3)
    assert jpeg_frame(rgb[:10]) is None
    assert jpeg_frame(b"II*\x00") is None
    # a 20 KB APP segment before the frame header
    gray12 = imagecodecs.jpeg_encode(numpy.zeros((9, 20), numpy.uint16), bitspersample=12)
    assert jpeg_frame(gray12) == (12, 9, 20, 1)
    padded = rgb[:2] + b"\xff\xe5" + (20002).to_bytes(2, "big") + bytes(20000) + rgb[2:]
    assert jpeg_frame(padded) == (8, 40, 70, 3)
    assert numpy.array_equal(imagecodecs.jpeg8_decode(padded), imagecodecs.jpeg8_decode(rgb))


# --- PNG: imagecodecs leaks its libpng state (~12 KB) on every decode that fails in libpng -----

def _png_tiff(tmp_path, patch):
    """A 64 x 64 RGB TIFF of four 32 x 32 PNG tiles (tifffile), with tile 1's stream replaced
    by ``patch(stream)``; the stream is placed at the end of the file."""
    tifffile = pytest.importorskip("tifffile")
    data = numpy.random.default_rng(7).integers(0, 255, (64, 64, 3), dtype=numpy.uint8)
    path = tmp_path / "png.tif"
    tifffile.imwrite(path, data, tile=(32, 32), compression="png")
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        stream = ifd.read_segment_bytes(1)
        offsets_tag = ifd.tags[324]
        counts_tag = ifd.tags[325]
        assert offsets_tag.count == counts_tag.count == 4
    new = patch(stream)
    raw = bytearray(path.read_bytes())
    at = len(raw)
    raw += new
    # entry 1 of TileOffsets / TileByteCounts (4 SHORTs or LONGs, stored out of line)
    for tag, value in ((offsets_tag, at), (counts_tag, len(new))):
        size = {3: 2, 4: 4}[tag.type]  # SHORT or LONG
        assert tag.value_offset is not None and value < 1 << (8 * size)
        raw[tag.value_offset + size: tag.value_offset + 2 * size] = value.to_bytes(size, "little")
    path.write_bytes(bytes(raw))
    return path, data


@pytest.fixture
def png_calls(monkeypatch):
    calls: list[int] = []
    original = imagecodecs.png_decode

    def counted(data, *args, **kwargs):
        calls.append(len(data))
        return original(data, *args, **kwargs)

    monkeypatch.setattr(imagecodecs, "png_decode", counted)
    monkeypatch.setitem(IMAGE_DECODERS, Compression.PNG, counted)  # the table tiffio decodes through
    return calls


def test_the_png_wrapper_sees_tiffio_decodes(tmp_path, png_calls):
    path, data = _png_tiff(tmp_path, lambda s: s)
    with tiffio.open(path) as tif:
        assert numpy.array_equal(tif.ifds[0].asarray(), data)
    assert len(png_calls) == 4


def _corrupt_idat(stream: bytes) -> bytes:
    at = stream.find(b"IDAT") + 40
    return stream[:at] + bytes(b ^ 0x5A for b in stream[at: at + 8]) + stream[at + 8:]


@pytest.mark.parametrize("name, patch, message", [
    ("truncated", lambda s: s[: len(s) // 2], "needs"),
    ("idat_crc", _corrupt_idat, "CRC mismatch"),
    ("no_iend", lambda s: s[:-12], "without an IEND"),
])
def test_broken_png_streams_are_refused_before_the_codec(tmp_path, png_calls, name, patch, message):
    path, _ = _png_tiff(tmp_path, patch)
    with tiffio.open(path, strict=True) as tif:
        ifd = tif.ifds[0]
        with pytest.raises(tiffio.CorruptSegmentError, match=message) as info:
            ifd.read_segment(1)
        assert "segment 1" in str(info.value) and "IFD 0" in str(info.value)
    assert png_calls == []


def test_png_without_iend_still_decodes_in_lenient_mode(tmp_path, png_calls):
    # libpng decodes a stream whose pixel data is complete; only IEND is missing
    path, data = _png_tiff(tmp_path, lambda s: s[:-12])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tiffio.open(path, strict=False) as tif:
            assert numpy.array_equal(tif.ifds[0].asarray(), data)
    assert len(png_calls) == 4
