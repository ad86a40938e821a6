"""``asarray`` of an image stored as one segment (a small file's single strip or tile) goes
straight through read_segment's prepared path: it must give exactly what the general
region path and tifffile give, and leave every case the fast path refuses to the general
path (padded tiles, short or damaged streams, sparse strips, a fill value)."""

from __future__ import annotations

import numpy
import pytest

import tiffio
from tests.support.tiffbuild import simple_image
from tiffio.read.ifd.regions import IFDRegions

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")


@pytest.fixture
def no_region_path(monkeypatch):
    """Makes read_region fail: proves asarray did not go through the general region path."""
    def refuse(*args, **kwargs):
        raise AssertionError("read_region was called")
    monkeypatch.setattr(IFDRegions, "read_region", refuse)


CASES = [("zlib", 1, "u2", 1), ("zlib", 2, "u2", 1), ("zlib", 3, "f4", 1), ("zlib", 2, "u1", 3),
         ("zstd", 2, "i2", 1), ("lzw", 1, "u2", 1), ("lzw", 2, "u1", 3), ("none", 1, "f8", 1),
         ("none", 1, "u2", 3), ("jpeg", 1, "u1", 3), ("jpeg", 1, "u1", 1)]


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize(("compression", "predictor", "dtype", "samples"), CASES)
def test_one_strip_image_reads_through_the_fast_path(tmp_path, compression, predictor, dtype, samples, byteorder,
                                                      no_region_path):
    import imagecodecs
    if compression != "none" and not getattr(imagecodecs, compression.upper()).available:
        pytest.skip(f"imagecodecs has no {compression}")
    if predictor == 3 and byteorder == ">":
        pytest.skip("the floating-point predictor of a big-endian file is the general path's case")
    rng = numpy.random.default_rng(3)
    shape = (70, 90, samples) if samples > 1 else (70, 90)
    data = (rng.random(shape) * 200 - (100 if dtype[0] in "if" else 0)).astype(dtype)
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, data, rowsperstrip=70, byteorder=byteorder,
                     compression=None if compression == "none" else compression,
                     predictor=predictor if predictor > 1 else None,
                     photometric="rgb" if samples == 3 else "minisblack", planarconfig="contig")
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert not ifd.is_tiled and ifd.segment_count == 1
        got = ifd.asarray()
        assert tif.source.requests <= 3  # header + IFD (one read for such a small file) + the strip
        assert ifd.fast_reader is not None
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        ref = tifffile.imread(path)
        assert got.shape == ref.shape == ifd.shape and got.dtype == ref.dtype == numpy.dtype(dtype)
        assert numpy.array_equal(got, ref, equal_nan=True)
        assert got.flags.c_contiguous and got.flags.writeable
        if compression != "jpeg":
            assert numpy.array_equal(got, data)


def test_one_segment_general_path_gives_the_same_array(tmp_path):
    data = (numpy.arange(50 * 60).reshape(50, 60) * 13 % 65521).astype(numpy.uint16)
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, data, rowsperstrip=50, compression="zlib", predictor=2)
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        fast = ifd.asarray()
        general = ifd.read_region(0, 0, 50, 60)
        with_fill = ifd.asarray(fill=7)  # a fill value takes the general path
        out = numpy.empty_like(data)
        assert ifd.asarray(out=out) is out
    assert numpy.array_equal(fast, data) and numpy.array_equal(general, data)
    assert numpy.array_equal(with_fill, data) and numpy.array_equal(out, data)


def test_a_tile_padded_past_the_image_takes_the_general_path(tmp_path):
    data = (numpy.random.default_rng(0).random((50, 40)) * 255).astype(numpy.uint8)
    path = tmp_path / "padded.tif"
    tifffile.imwrite(path, data, tile=(64, 64), compression="zlib")
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert ifd.segment_count == 1
        got = ifd.asarray()
        assert ifd.fast_reader is not None and ifd.fast_reader(0).shape == (64, 64)
    assert got.shape == (50, 40) and numpy.array_equal(got, data)


def test_a_single_tile_of_exactly_the_image_uses_the_fast_path(tmp_path, no_region_path):
    data = (numpy.random.default_rng(0).random((64, 48, 3)) * 255).astype(numpy.uint8)
    path = tmp_path / "tile.tif"
    tifffile.imwrite(path, data, tile=(64, 48), compression="zstd", photometric="rgb")
    with tiffio.open(path) as tif:
        assert numpy.array_equal(tif.ifds[0].asarray(), data)


@pytest.mark.parametrize("damage", ["garbage", "short", "sparse", "past_end"])
def test_a_damaged_single_strip_reads_as_the_general_path_reads_it(tmp_path, damage):
    """The fast path refuses; asarray then gives the general path's array, warning or error."""
    import imagecodecs
    data = (numpy.arange(40 * 30).reshape(40, 30) * 7 % 60000).astype(numpy.uint16)
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, data, rowsperstrip=40, compression="zlib")
    with tiffio.open(good) as tif:
        offset, count = tif.ifds[0].segment_location(0)
    raw = bytearray(good.read_bytes())

    def set_inline(code, value):  # a little-endian classic TIFF's LONG entry, value inline
        ifd = int.from_bytes(raw[4:8], "little")
        for k in range(int.from_bytes(raw[ifd: ifd + 2], "little")):
            entry = ifd + 2 + 12 * k
            if int.from_bytes(raw[entry: entry + 2], "little") == code:
                assert raw[entry + 2: entry + 8] == b"\x04\x00\x01\x00\x00\x00"  # LONG, count 1
                raw[entry + 8: entry + 12] = value.to_bytes(4, "little")
                return
        raise AssertionError(f"no tag {code}")

    if damage == "garbage":
        raw[offset: offset + count] = b"\x78\x9c" + b"\xff" * (count - 2)
    elif damage == "short":
        stream = imagecodecs.zlib_encode(data[:20].tobytes())
        raw[offset: offset + len(stream)] = stream
    elif damage == "sparse":  # offset 0 and byte count 0: a sparse strip, read as fill
        set_inline(273, 0)
        set_inline(279, 0)
    else:  # the byte count runs past the end of the file
        set_inline(279, 10 ** 6)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(raw))

    def outcome(call):
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = call()
            except tiffio.TiffError as exc:
                result = (type(exc), str(exc))
        return result, sorted({str(w.message) for w in caught})

    for strict in (False, True):
        with tiffio.open(bad, strict=strict) as tif:
            fast, fast_warnings = outcome(lambda: tif.ifds[0].asarray())
        with tiffio.open(bad, strict=strict) as tif:
            general, general_warnings = outcome(lambda: tif.ifds[0].read_region(0, 0, 40, 30))
        if isinstance(general, tuple):
            assert fast == general
        else:
            assert isinstance(fast, numpy.ndarray) and numpy.array_equal(fast, general)
        assert fast_warnings == general_warnings
    if damage == "sparse":
        with tiffio.open(bad) as tif:
            assert numpy.array_equal(tif.ifds[0].asarray(), numpy.zeros_like(data))


def test_uncompressed_one_strip_in_big_endian(tmp_path, no_region_path):
    data = (numpy.random.default_rng(2).random((33, 17)) * 1e6).astype(">i4").astype("i4")
    path = tmp_path / "be.tif"
    path.write_bytes(simple_image(data, byteorder=">"))
    with tiffio.open(path) as tif:
        got = tif.ifds[0].asarray()
    assert got.dtype == numpy.dtype("i4") and numpy.array_equal(got, data)


def test_a_large_coded_single_strip_is_decoded_into_the_result(tmp_path, monkeypatch):
    """Over 256 KiB, a Deflate one-strip image is not taken from the prepared reader (whose
    read-only bytes would need a copy: twice the image in memory): the general path decodes it
    into the result; JPEG and uncompressed images have no copy to make and keep the shortcut."""
    data = (numpy.arange(600 * 500).reshape(600, 500) % 65521).astype(numpy.uint16)  # 600,000 bytes
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, data, rowsperstrip=600, compression="zlib")
    calls = []
    read_region = IFDRegions.read_region
    monkeypatch.setattr(IFDRegions, "read_region", lambda self, *a, **k: calls.append(1) or read_region(self, *a, **k))
    with tiffio.open(path) as tif:
        assert numpy.array_equal(tif.ifds[0].asarray(), data)
    assert calls == [1]
    raw = tmp_path / "raw.tif"
    tifffile.imwrite(raw, data, rowsperstrip=600)
    with tiffio.open(raw) as tif:
        assert numpy.array_equal(tif.ifds[0].asarray(), data)
    assert calls == [1]
