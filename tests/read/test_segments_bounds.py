"""Reader work bounded by the file (issue 11): strips declared by the million but not stored,
images with a width or length of 0, a lone strip with byte count 0 (libtiff's estimate),
and results that cannot be allocated."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import imagecodecs
import numpy
import pytest
import tifffile

import tiffio
from tests.support.tiffbuild import Builder
from tiffio.format.grid import SegmentGrid

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MALFORMED = FIXTURES / "malformed"
MILLION = 16_777_215


def _open(raw: bytes, strict: bool) -> tiffio.TiffFile:
    return tiffio.open(raw, strict=strict)


# --- strips declared by the million -------------------------------------------------------------

def test_grid_region_stops_at_the_stored_entries():
    """Region planning is bounded by the entries the file holds, not by the declared grid."""
    grid = SegmentGrid((1, MILLION, 1), (1, 1, 1), 1, False, False)
    parts = list(grid.region(0, 0, 0, 1, MILLION, 1, limit=4))
    assert [p.index for p in parts] == [0, 1, 2, 3]
    assert [p.dst[1] for p in parts] == [slice(k, k + 1) for k in range(4)]
    tiles = SegmentGrid((1, 64, 64), (1, 16, 16), 1, False, True)
    assert [p.index for p in tiles.region(0, 0, 0, 1, 64, 64, limit=6)] == [0, 1, 2, 3, 4, 5]
    assert len(list(tiles.region(0, 0, 0, 1, 64, 64))) == 16


def _strips_with_missing_entries(stored: int, declared: int) -> bytes:
    """``declared`` one-row strips of a 3-pixel-wide image, entries for the first ``stored``."""
    b = Builder()
    rows = [bytes([k + 1, k + 2, k + 3]) for k in range(stored)]
    offsets = [b.blob(r) for r in rows]
    entries = [(256, 3, 3), (257, 4, declared), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, offsets),
               (277, 3, 1), (278, 3, 1), (279, 4, [3] * stored)]
    return b.build(b.ifd(entries))


def test_missing_strips_are_filled_in_bulk_not_one_by_one(monkeypatch):
    """1000 strips declared, 4 stored: the 996 others are never located one by one."""
    raw = _strips_with_missing_entries(4, 1000)
    calls = []
    real = tiffio.IFD.segment_location

    def counted(self, index):
        calls.append(index)
        return real(self, index)

    monkeypatch.setattr(tiffio.IFD, "segment_location", counted)
    with tiffio.open(raw, strict=False) as tif, pytest.warns(tiffio.TiffFormatWarning, match="StripOffsets has 4"):
        arr = tif.ifds[0].asarray(fill=9, workers=1)
    assert sorted(calls) == [0, 1, 2, 3]
    expected = numpy.full((1000, 3), 9, numpy.uint8)
    expected[:4] = [[k + 1, k + 2, k + 3] for k in range(4)]
    numpy.testing.assert_array_equal(arr, expected)


@pytest.mark.parametrize("name, strict, default", [
    ("strips_16m_offsets_count_0.tif", tiffio.TiffFormatError, tiffio.TiffFormatError),
    ("strips_16m_counts_past_eof.tif", tiffio.TruncatedError, tiffio.TiffFormatError),
])
def test_sixteen_million_declared_strips_fail_fast(name, strict, default):
    """Both fixtures made asarray() walk 16,777,215 strips (minutes, GBs of region parts)."""
    raw = (MALFORMED / "declared_strips_unbacked" / name).read_bytes()
    assert len(raw) < 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
        for mode, cls in ((True, strict), (False, default)):
            with tiffio.open(raw, strict=mode) as tif, pytest.raises(cls) as info:
                tif.ifds[0].asarray()
            assert type(info.value) is cls
            assert "IFD 0 at offset" in str(info.value)


def test_unbacked_strile_entries_name_what_the_file_holds():
    raw = (MALFORMED / "declared_strips_unbacked" / "strips_16m_counts_past_eof.tif").read_bytes()
    with tiffio.open(raw, strict=True) as tif, \
            pytest.raises(tiffio.TruncatedError, match=r"StripOffsets has 16777215 entries, the file holds \d+"):
        tif.ifds[0].read_region(0, 0, 8, 1)


# --- width or length 0 --------------------------------------------------------------------------

def _empty_image(width: int, length: int, *, tiled: bool = False, spp: int = 1, bits: int = 8,
                 planar: int = 1) -> bytes:
    b = Builder()
    off = b.blob(bytes(64))
    planes = spp if planar == 2 else 1
    # as many entries as libtiff counts segments (at least one)
    n = planes * (-(-length // 16) * -(-width // 16) if tiled else -(-length // 8)) or 1
    entries = [(256, 3, width), (257, 3, length), (258, 3, [bits] * spp), (259, 3, 1),
               (262, 3, 2 if spp == 3 else 1), (277, 3, spp), (284, 3, planar)]
    if tiled:
        entries += [(322, 3, 16), (323, 3, 16), (324, 4, [off] * n), (325, 4, [0] * n)]
    else:
        entries += [(273, 4, [off] * n), (278, 3, 8), (279, 4, [0] * n)]
    return b.build(b.ifd(entries))


@pytest.mark.parametrize("args", [
    dict(width=0, length=10), dict(width=10, length=0), dict(width=0, length=0),
    dict(width=0, length=10, tiled=True), dict(width=10, length=0, tiled=True),
    dict(width=0, length=10, spp=3), dict(width=0, length=10, spp=3, bits=16, planar=2),
    dict(width=5, length=0, bits=16),
])
@pytest.mark.parametrize("strict", [True, False])
def test_zero_width_or_length_reads_as_an_empty_array(args, strict):
    raw = _empty_image(**args)
    page = tifffile.TiffFile(io.BytesIO(raw)).pages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile's own warnings about these files
        ref = page.asarray()
    with tiffio.open(raw, strict=strict) as tif:
        ifd = tif.ifds[0]
        assert ifd.shape == page.shape and ifd.dtype == page.dtype
        arr = ifd.asarray()
        assert arr.shape == page.shape and arr.dtype == ref.dtype and arr.size == ref.size == 0
        region = ifd.read_region(0, 0, 3, 4, fill=7)  # all outside the image: all fill
        expected_shape = ifd._region_axes((ifd.grid.planes, 1, 3, 4, ifd.grid.segment_samples))
        numpy.testing.assert_array_equal(region, numpy.full(expected_shape, 7, ifd.dtype))
        out = numpy.empty(ifd.shape, ifd.dtype)
        assert ifd.asarray(out=out) is out


def test_zero_width_strips_read_as_empty_segments():
    """libtiff counts the strips of a 0-wide image by its rows: each reads as (rows, 0)."""
    raw = _empty_image(0, 10)
    with tiffio.open(raw) as tif:
        ifd = tif.ifds[0]
        assert ifd.segment_count == 2  # ceil(10 / RowsPerStrip 8), as libtiff and tifffile count
        assert ifd.read_segment(0).shape == (8, 0)
        assert ifd.read_segment(1).shape == (2, 0)
        with pytest.raises(tiffio.TiffIndexError):
            ifd.read_segment(2)


def test_zero_length_has_no_segments():
    with tiffio.open(_empty_image(10, 0, tiled=True)) as tif:
        ifd = tif.ifds[0]
        assert ifd.segment_count == 0
        with pytest.raises(tiffio.TiffIndexError):
            ifd.read_segment(0)


# --- a lone strip with byte count 0: libtiff's estimate -----------------------------------------

IMAGE = (numpy.arange(32 * 16).reshape(32, 16) % 251).astype(numpy.uint8)


def _strip_file(compression: int, nstrips: int = 1, zero: tuple[int, ...] = (0,), bo: str = "<",
                big: bool = False) -> bytes:
    b = Builder(bo, big)
    rps = 32 // nstrips
    parts = []
    for k in range(nstrips):
        data = IMAGE[k * rps:(k + 1) * rps].tobytes()
        if compression == 5:
            data = imagecodecs.lzw_encode(data)
        elif compression == 8:
            data = zlib.compress(data)
        elif compression == 32773:
            data = imagecodecs.packbits_encode(data)
        parts.append(data)
    offsets = [b.blob(d) for d in parts]
    counts = [0 if k in zero else len(d) for k, d in enumerate(parts)]
    entries = [(256, 3, 16), (257, 3, 32), (258, 3, 8), (259, 3, compression), (262, 3, 1), (273, 4, offsets),
               (277, 3, 1), (278, 3, rps), (279, 4, counts), (305, 2, "a writer that forgot the byte count")]
    return b.build(b.ifd(entries))


@pytest.mark.parametrize("compression", [1, 5, 8, 32773])
@pytest.mark.parametrize("bo, big", [("<", False), (">", True)])
@pytest.mark.parametrize("strict", [True, False])
def test_single_strip_byte_count_0_is_estimated_like_libtiff(compression, bo, big, strict):
    raw = _strip_file(compression, bo=bo, big=big)
    ref = imagecodecs.tiff_decode(raw)  # libtiff estimates the count and decodes
    numpy.testing.assert_array_equal(ref, IMAGE)
    with tiffio.open(raw, strict=strict) as tif:
        ifd = tif.ifds[0]
        with pytest.warns(tiffio.TiffFormatWarning, match="StripByteCounts is 0 for the image's only strip"):
            arr = ifd.asarray()
        numpy.testing.assert_array_equal(arr, IMAGE)
        numpy.testing.assert_array_equal(ifd.read_segment(0), IMAGE)
        assert not ifd.is_sparse(0)
        offset, count = ifd.segment_location(0)
        assert offset > 0 and count > 0


def test_single_strip_byte_count_estimate_is_libtiffs_arithmetic():
    """Compressed: the file's size minus header, IFD and out-of-line values (libtiff's
    EstimateStripByteCounts), cut at the end of the file."""
    raw = _strip_file(8)
    with tiffio.open(raw) as tif, warnings.catch_warnings():
        warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
        ifd = tif.ifds[0]
        offset, count = ifd.segment_location(0)
        n = len(ifd.tags)
        out_of_line = len(b"a writer that forgot the byte count\0")  # the only value not inline
        assert count == min(len(raw) - (8 + 2 + 12 * n + 4 + out_of_line), len(raw) - offset)


def test_ccitt_g4_single_strip_byte_count_0():
    """Fax software writes Group 4 files so: decoded as libtiff decodes them (the strip of
    fixtures/libtiff/ccitt_g4.tif, rewritten with StripByteCounts 0)."""
    original = FIXTURES / "libtiff" / "ccitt_g4.tif"
    with tiffio.open(original) as tif:
        ifd = tif.ifds[0]
        stream = ifd.read_segment_bytes(0)
        expected = ifd.asarray()
        length, width = ifd.shape
    b = Builder()
    off = b.blob(stream)
    entries = [(256, 3, width), (257, 3, length), (258, 3, 1), (259, 3, 4), (262, 3, 0), (273, 4, off),
               (277, 3, 1), (278, 3, length), (279, 4, 0)]
    raw = b.build(b.ifd(entries))
    numpy.testing.assert_array_equal(imagecodecs.tiff_decode(raw), imagecodecs.tiff_decode(original.read_bytes()))
    with tiffio.open(raw) as tif, pytest.warns(tiffio.TiffFormatWarning, match="estimated as libtiff does"):
        arr = tif.ifds[0].asarray()
    numpy.testing.assert_array_equal(arr, expected)
    assert arr.any() and not arr.all()


@pytest.mark.parametrize("compression", [1, 8])
def test_byte_count_0_with_an_offset_in_a_striped_image_reads_as_empty(compression):
    """Only a lone strip is estimated; elsewhere a count of 0 with an offset is read as empty
    with a warning, as tifffile reads it (libtiff refuses the strip)."""
    raw = _strip_file(compression, nstrips=2, zero=(1,))
    ref = tifffile.imread(io.BytesIO(raw))
    with tiffio.open(raw) as tif, pytest.warns(tiffio.TiffFormatWarning, match="segment 1 at offset"):
        arr = tif.ifds[0].asarray()
    numpy.testing.assert_array_equal(arr, ref)
    numpy.testing.assert_array_equal(arr[16:], 0)


def test_offset_0_is_sparse_without_a_warning():
    raw = _strip_file(8, nstrips=2, zero=())
    data = bytearray(raw)
    with tiffio.open(raw) as tif:
        ifd = tif.ifds[0]
        tag = ifd.tags[273]
    # point strip 1 at offset 0 (GDAL's sparse convention: offset and count 0)
    assert tag.value_offset is not None
    struct.pack_into("<I", data, tag.value_offset + 4, 0)
    struct.pack_into("<I", data, ifd.tags[279].value_offset + 4, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with tiffio.open(bytes(data)) as tif:
            arr = tif.ifds[0].asarray(fill=5)
    numpy.testing.assert_array_equal(arr[:16], IMAGE[:16])
    numpy.testing.assert_array_equal(arr[16:], 5)


# --- results that cannot be allocated -----------------------------------------------------------

def _huge_single_strip() -> bytes:
    b = Builder()
    entries = [(256, 4, 2**31 - 1), (257, 4, 2**31 - 1), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 0), (277, 3, 1), (279, 4, 0)]
    return b.build(b.ifd(entries))


UNLIMITED = tiffio.Limits(max_output_bytes=1 << 63, max_segment_bytes=1 << 63)


def test_an_output_that_cannot_be_allocated_is_a_limit_error():
    with tiffio.open(_huge_single_strip(), limits=UNLIMITED) as tif:
        ifd = tif.ifds[0]
        with pytest.raises(tiffio.LimitExceededError, match=r"cannot allocate 4,611,686,014,132,420,609 bytes"):
            ifd.asarray()
        with pytest.raises(tiffio.LimitExceededError, match=r"cannot allocate 4,611,686,014,132,420,609 bytes"):
            ifd.read_segment(0)  # the sparse strip's fill array


def test_default_limits_still_refuse_first():
    with tiffio.open(_huge_single_strip()) as tif, pytest.raises(tiffio.LimitExceededError, match=r"Limits\.max_"):
        tif.ifds[0].asarray()


# --- tiles far taller than the image --------------------------------------------------------------

def test_rows_of_a_tall_uncompressed_tile_outside_the_image_are_not_decoded():
    """TileLength 1,000,000 over a 5-row image (fuzzing: 3,932,418-row tiles over 60 rows made
    asarray allocate and fill two 377 MB tiles for a 9 KB result): only the 5 rows are read."""
    import tracemalloc
    image = numpy.arange(5 * 20, dtype=numpy.uint8).reshape(5, 20)
    b = Builder()
    tiles = [numpy.zeros((5, 16), numpy.uint8) for _ in range(2)]
    tiles[0][:, :16] = image[:, :16]
    tiles[1][:, :4] = image[:, 16:]
    offsets = [b.blob(t.tobytes()) for t in tiles]
    entries = [(256, 3, 20), (257, 3, 5), (258, 3, 8), (259, 3, 1), (262, 3, 1), (277, 3, 1),
               (322, 3, 16), (323, 4, 1_000_000), (324, 4, offsets), (325, 4, [80, 80])]
    raw = b.build(b.ifd(entries))
    for strict in (True, False):
        with tiffio.open(raw, strict=strict) as tif:
            ifd = tif.ifds[0]
            tracemalloc.start()
            arr = ifd.asarray(workers=1)
            region = ifd.read_region(1, 10, 3, 10, workers=1)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            numpy.testing.assert_array_equal(arr, image)
            numpy.testing.assert_array_equal(region, image[1:4, 10:20])
            assert peak < 1 << 20, peak  # the stored tiles are 16 MB each
            assert tif.source.bytes_read < 4096


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc/self/statm for the RSS")
def test_sparse_parts_of_a_large_zero_filled_result_are_not_written():
    """An 8192 x 8192 image of sparse tiles: the 64 MiB result comes zeroed from the allocator
    and its sparse parts are never written, so its pages are never touched (fuzzing: a 10 KB
    file of sparse tiles declaring a 1.35 GB result spent 9 s filling it with zeros)."""
    n = (8192 // 256) ** 2
    b = Builder()
    entries = [(256, 3, 8192), (257, 3, 8192), (258, 3, 8), (259, 3, 8), (262, 3, 1), (277, 3, 1),
               (322, 3, 256), (323, 3, 256), (324, 4, [0] * n), (325, 4, [0] * n)]
    raw = b.build(b.ifd(entries))
    with tiffio.open(raw) as tif:
        ifd = tif.ifds[0]
        before = _rss_bytes()
        arr = ifd.asarray(workers=1)
        grown = _rss_bytes() - before
        assert arr.shape == (8192, 8192) and arr.dtype == numpy.uint8
        assert grown < 16 << 20, grown  # the result is 64 MiB
        assert not arr[::512, ::512].any()  # zeros (touches 256 of its 16,384 pages)
        filled = ifd.asarray(fill=3, workers=1)  # another fill value is written
        assert (filled[::512, ::512] == 3).all()


def test_width_0_jpeg_strips_are_empty_not_decoded():
    """Fuzz run 10: a width-0 image whose strips hold a real JPEG stream (a mutant of a YCbCr JPEG
    file) raised ZeroDivisionError while the decoded samples were fitted to the empty strip."""
    path = Path(__file__).resolve().parents[2] / "fixtures/malformed/zero_dimension/fuzz_jpeg_strips_width_0.tif"
    for strict in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
            with tiffio.open(path, strict=strict) as tif:
                ifd = tif.ifds[0]
                assert ifd.width == 0 and ifd.compression == 6 and ifd.read_segment_bytes(0)
                assert ifd.read_segment(0).shape == (32, 0, 3)
                assert ifd.asarray().shape == (130, 0, 3) and ifd.asarray().dtype == numpy.uint8
