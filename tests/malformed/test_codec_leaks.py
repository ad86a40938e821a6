"""Codec calls that leak memory inside imagecodecs are never made.

imagecodecs 2026.3.6 leaks its whole libjpeg decompressor (14-22 KB per call) when
``jpeg8_decode`` / ``jpeg_decode`` refuse an ``out=`` array whose shape is not the
stream's. The fuzz campaign found it as a slow RSS growth (workers past 1 GiB after
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
from tiffio.codecs import jpeg_frame

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
                want = None if frame is None else (frame[0], frame[1]) + ((frame[2],) if frame[2] > 1 else ())
                if want != out.shape:
                    calls.append((_name, out.shape, frame))
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
    assert refused_out_calls == [("jpeg8_decode", (32, 24), (16, 24, 1))]


def test_jpeg_frame_reads_the_frame_header():
    rgb = imagecodecs.jpeg8_encode(numpy.zeros((40, 70, 3), numpy.uint8))
    assert jpeg_frame(rgb) == (40, 70, 3)
    assert jpeg_frame(rgb[:10]) is None
    assert jpeg_frame(b"II*\x00") is None
    # a 20 KB APP segment before the frame header
    padded = rgb[:2] + b"\xff\xe5" + (20002).to_bytes(2, "big") + bytes(20000) + rgb[2:]
    assert jpeg_frame(padded) == (40, 70, 3)
    assert numpy.array_equal(imagecodecs.jpeg8_decode(padded), imagecodecs.jpeg8_decode(rgb))
