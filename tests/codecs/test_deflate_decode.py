"""The general path's Deflate decoder: libdeflate where it accepts the stream, zlib otherwise,
so results and errors are exactly zlib's wherever libdeflate refuses."""

from __future__ import annotations

import imagecodecs
import numpy
import pytest

import tiffio
from tiffio.codecs import BYTE_DECODERS, deflate_decode_fast
from tiffio.enums import Compression

pytestmark = pytest.mark.skipif(not imagecodecs.DEFLATE.available, reason="imagecodecs without libdeflate")

DATA = (numpy.arange(40 * 256) % 251).astype(numpy.uint8).tobytes()
STREAM = imagecodecs.zlib_encode(DATA)


def test_the_general_path_uses_it_for_every_deflate_code():
    for code in (Compression.ADOBE_DEFLATE, Compression.DEFLATE, Compression.PIXTIFF):
        assert BYTE_DECODERS[code].decode is deflate_decode_fast


@pytest.mark.parametrize("extra", [0, 100, 1 << 20])
def test_same_bytes_as_zlib_when_the_output_fits(extra):
    assert bytes(deflate_decode_fast(STREAM, out=len(DATA) + extra)) == imagecodecs.zlib_decode(STREAM) == DATA
    assert bytes(deflate_decode_fast(STREAM + b"trailing", out=len(DATA))) == DATA  # as zlib: trailing bytes ignored


def test_streams_libdeflate_refuses_get_zlibs_result_or_error(monkeypatch):
    calls = []
    real = imagecodecs.zlib_decode

    def spy(*args, **kwargs):
        calls.append(kwargs.get("out"))
        return real(*args, **kwargs)

    monkeypatch.setattr(imagecodecs, "zlib_decode", spy)
    for stream, out in ((STREAM, len(DATA) - 100), (STREAM[: len(STREAM) // 2], len(DATA)),
                        (b"\x78\x9c" + b"\xff" * 50, 1000)):
        with pytest.raises(imagecodecs.ZlibError) as expected:
            real(stream, out=out)
        with pytest.raises(imagecodecs.ZlibError) as got:
            deflate_decode_fast(stream, out=out)
        assert str(got.value) == str(expected.value)
    assert calls == [len(DATA) - 100, len(DATA), 1000]


def test_a_corrupt_deflate_strip_is_still_a_corrupt_segment_error(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    data = numpy.arange(64 * 64, dtype=numpy.uint16).reshape(64, 64)
    path = tmp_path / "corrupt.tif"
    tifffile.imwrite(path, data, compression="zlib", rowsperstrip=64)
    raw = bytearray(path.read_bytes())
    with tiffio.open(path) as tif:
        offset, count = tif.ifds[0].segment_location(0)
    raw[offset + 2: offset + count] = b"\xff" * (count - 2)
    path.write_bytes(bytes(raw))
    with tiffio.open(path) as tif, pytest.raises(tiffio.CorruptSegmentError, match=r"segment 0.*ZlibError"):
        tif.ifds[0].asarray()
