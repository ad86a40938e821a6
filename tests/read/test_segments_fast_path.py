"""read_segment's prepared fast path for 8-bit JPEG tiles must give exactly what the general
path and tifffile give, count its reads, and leave every unusual case to the general path."""

from __future__ import annotations

import csv

import numpy
import pytest

import tiffio
from tests.support.paths import FIXTURES
from tests.support.threads import run_in_threads

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")

ROWS = [r for r in csv.DictReader((FIXTURES / "MANIFEST.tsv").open(), delimiter="\t")
        if r["compression"] == "JPEG" and r["tiled"] != "strips"]


@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_fast_path_equals_general_path_and_tifffile(row):
    path = FIXTURES / row["path"]
    with tiffio.open(path) as tif, tifffile.TiffFile(path) as tf:
        ifd, page = tif.ifds[0], tf.pages[0]
        if ifd.bits_per_sample > 8 or ifd.depth > 1:
            pytest.skip("not the fast path's case")
        for i in range(ifd.segment_count):
            general = ifd.read_segment(i, fill=0)        # fill= forces the general path
            before = tif.source.bytes_read
            fast = ifd.read_segment(i)                   # blocks are loaded now: the fast path
            assert ifd.fast_reader is not None
            assert tif.source.bytes_read - before == ifd.segment_location(i)[1] or ifd.is_sparse(i)
            assert fast.shape == general.shape and fast.dtype == general.dtype
            assert numpy.array_equal(fast, general)
            data = ifd.read_segment_bytes(i)
            # tifffile cannot decode RGB JPEG in separate planes (libtiff agrees with tiffio there:
            # tests/read/test_segments_fixtures.py); for those the general path is the reference
            if data and not (ifd.is_separate and ifd.photometric == 2):
                ref = page.decode(data, i, jpegtables=page.jpegtables)[0]
                assert numpy.array_equal(fast.reshape(-1), ref.reshape(-1)[: fast.size])
        tif.close()
        with pytest.raises(tiffio.TiffUsageError):
            ifd.read_segment(0)


def test_fast_path_falls_back_on_a_broken_tile(tmp_path):
    data = (numpy.random.default_rng(0).random((64, 64, 3)) * 255).astype(numpy.uint8)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, data, tile=(32, 32), compression="jpeg")
    raw = bytearray(path.read_bytes())
    with tiffio.open(path) as tif:
        offset, count = tif.ifds[0].segment_location(3)
    raw[offset + 2: offset + count] = b"\x00" * (count - 2)  # keep SOI, destroy the rest
    path.write_bytes(bytes(raw))
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        ifd.read_segment(0)  # loads the strile blocks
        with pytest.raises(tiffio.CorruptSegmentError, match="segment 3"):
            ifd.read_segment(3)


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("dtype", ["u1", "i2", "f4", "u8"])
def test_uncompressed_fast_path_equals_general_path(tmp_path, byteorder, dtype):
    from tests.support.tiffbuild import simple_image
    data = (numpy.random.default_rng(0).random((70, 90, 3)) * 100).astype(dtype)
    path = tmp_path / "a.tif"
    path.write_bytes(simple_image(data, byteorder=byteorder, tile=(32, 32)))
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        for i in range(ifd.segment_count):
            general = ifd.read_segment(i, fill=0)
            fast = ifd.read_segment(i)
            assert fast.dtype == general.dtype == numpy.dtype(dtype) and fast.shape == general.shape
            assert numpy.array_equal(fast, general) and fast.flags.writeable
        assert ifd.fast_reader is not None
        assert numpy.array_equal(ifd.asarray(), data)


def test_fast_path_threads_keep_their_own_read_buffers(tmp_path):
    """The fast path reads each tile into a per-thread reusable buffer: 16 threads reading
    tiles of different sizes from one TiffFile get exactly the single-thread arrays, and
    close() drops the buffers."""
    rng = numpy.random.default_rng(3)
    # tiles of very different compressed sizes (flat vs noisy), so buffers grow while in use
    data = numpy.zeros((256, 256, 3), numpy.uint8)
    data[::2] = (rng.random((128, 256, 3)) * 255).astype(numpy.uint8)
    data[:, :64] = 7
    path = tmp_path / "threads.tif"
    tifffile.imwrite(path, data, tile=(32, 32), compression="jpeg")
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        expected = [ifd.read_segment(i, fill=0) for i in range(ifd.segment_count)]  # general path
        ifd.read_segment(0)
        assert ifd.fast_reader is not None and hasattr(ifd._local, "read_view")
        order = [int(i) for i in rng.integers(0, ifd.segment_count, 16 * 200)]

        def reader(k: int) -> None:
            for i in order[k::16]:
                assert numpy.array_equal(ifd.read_segment(i), expected[i]), f"tile {i} differs in thread {k}"

        errors = run_in_threads(reader, 16)
        assert not errors, errors[:3]
    assert not hasattr(ifd._local, "read_view")


@pytest.mark.parametrize("height", [33, 16, 60000])
def test_fast_path_never_decodes_a_frame_of_another_shape(tmp_path, monkeypatch, height):
    """The fast path remembers the header bytes of a stream that matched the tile's shape and
    skips the marker walk for tiles that start with exactly those bytes; a tile whose frame
    header differs (here: its height) must still be checked and never reach the codec."""
    import struct

    import imagecodecs

    from tiffio.codecs import jpeg_frame, jpeg_frame_prefix
    data = (numpy.random.default_rng(5).random((64, 64, 3)) * 255).astype(numpy.uint8)
    path = tmp_path / "frames.tif"
    tifffile.imwrite(path, data, tile=(32, 32), compression="jpeg", photometric="rgb")
    raw = bytearray(path.read_bytes())
    with tiffio.open(path) as tif:
        offset, count = tif.ifds[0].segment_location(1)
    stream = bytes(raw[offset: offset + count])
    prefix = jpeg_frame_prefix(stream)
    assert prefix is not None and jpeg_frame(stream) == (8, 32, 32, 3)
    struct.pack_into(">H", raw, offset + len(prefix) - 5, height)  # SOFn: P, Y (height), X, Nf
    path.write_bytes(bytes(raw))

    seen = []
    real = imagecodecs.jpeg8_decode

    def spy(data, *args, **kwargs):
        seen.append(jpeg_frame(bytes(data)))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(imagecodecs, "jpeg8_decode", spy)
    with tiffio.open(path, strict=True) as tif:
        ifd = tif.ifds[0]
        ifd.read_segment(0)
        ifd.read_segment(0)  # strile blocks loaded: the fast path, with tile 0's prefix known
        fast = ifd.fast_reader
        assert fast is not None and seen == [(8, 32, 32, 3)] * 2
        assert fast(1) is None  # refused: the general path takes it
        assert len(seen) == 2, "the fast path handed the codec a frame of another shape"
        with pytest.raises(tiffio.TiffError):
            ifd.read_segment(1)  # the general path: the stream is not the tile's shape
        assert fast(2) is not None and numpy.array_equal(fast(2), ifd.read_segment(2, fill=0))


CODED = [("zlib", 1, "u1"), ("zlib", 2, "u2"), ("zlib", 2, "i2"), ("zlib", 3, "f4"), ("zlib", 1, "f8"),
         ("zstd", 1, "u2"), ("zstd", 2, "u1"), ("lzw", 1, "u2"), ("lzw", 2, "u1"), ("lzw", 3, "f4")]


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize(("compression", "predictor", "dtype"), CODED)
def test_coded_fast_path_equals_general_path_and_tifffile(tmp_path, compression, predictor, dtype, byteorder):
    """Deflate / Zstd / LZW tiles with every predictor decode on the fast path to exactly what
    the general path and tifffile give, reading each tile's bytes once."""
    import imagecodecs
    if not getattr(imagecodecs, compression.upper()).available:
        pytest.skip(f"imagecodecs has no {compression}")
    rng = numpy.random.default_rng(1)
    data = (rng.random((70, 90, 2)) * 1000 - (500 if dtype[0] in "if" else 0)).astype(dtype)
    path = tmp_path / "coded.tif"
    tifffile.imwrite(path, data, tile=(32, 48), compression=compression, predictor=predictor,
                     byteorder=byteorder, photometric="minisblack", planarconfig="contig")
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert ifd.predictor == predictor
        ifd.read_segment(0)
        fast_reader = ifd.fast_reader
        if predictor == 3 and byteorder == ">":
            # the floating-point predictor works on the file's byte order: the general path's case
            assert fast_reader is None
        for i in range(ifd.segment_count if fast_reader is not None else 0):
            general = ifd.read_segment(i, fill=0)  # fill= forces the general path
            before = tif.source.bytes_read
            fast = fast_reader(i)
            assert fast is not None, f"tile {i} left the fast path"
            assert tif.source.bytes_read - before == ifd.segment_location(i)[1]
            assert fast.dtype == general.dtype == numpy.dtype(dtype) and fast.shape == general.shape
            assert numpy.array_equal(fast, general, equal_nan=True)
        assert numpy.array_equal(ifd.asarray(), data)
        assert numpy.array_equal(ifd.asarray(), tifffile.imread(path))


@pytest.mark.parametrize("damage", ["garbage", "short", "long"])
def test_coded_fast_path_leaves_bad_streams_to_the_general_path(tmp_path, damage):
    """A Deflate tile that fails, or inflates to fewer or more bytes than the tile holds, is
    refused by the fast path (never a partial array from it); read_segment then gives
    exactly what the general path gives, error included."""
    import imagecodecs
    data = (numpy.arange(64 * 64).reshape(64, 64) * 7 % 60000).astype(numpy.uint16)  # compressible
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, data, tile=(32, 32), compression="zlib")
    raw = bytearray(path.read_bytes())
    with tiffio.open(path) as tif:
        offset, count = tif.ifds[0].segment_location(3)
    if damage == "garbage":
        stream = b"\x78\x9c" + b"\xff" * (count - 2)
    elif damage == "short":
        stream = imagecodecs.zlib_encode(data[32:, 32:48].tobytes())  # half the tile's bytes
    else:
        stream = imagecodecs.zlib_encode(bytes(2 * 32 * 32 * 2))  # twice the tile's bytes
    assert len(stream) <= count  # the rest of the tile's bytes stays: trailing bytes after the stream
    raw[offset: offset + len(stream)] = stream
    path.write_bytes(bytes(raw))
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        ifd.read_segment(0)
        assert ifd.fast_reader is not None and ifd.fast_reader(3) is None
        assert numpy.array_equal(ifd.fast_reader(2), data[32:, :32])
        try:
            general = ifd.read_segment(3, fill=0)
        except tiffio.TiffError as exc:
            with pytest.raises(type(exc), match="segment 3"):
                ifd.read_segment(3)
        else:
            assert numpy.array_equal(ifd.read_segment(3), general)


def _region_outcome(path, fast, window, fill, strict):
    """(result or (error class, message), warning texts) of read_region, through the prepared
    reader (fast=True) or with it switched off for this IFD (the general path)."""
    import warnings
    with tiffio.open(path, strict=strict) as tif:
        ifd = tif.ifds[0]
        if not fast:
            ifd.__dict__["_region_fast_reader"] = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = ifd.read_region(*window, fill=fill)
            except tiffio.TiffError as exc:
                result = (type(exc), str(exc))
        if fast:
            assert ifd._region_fast_reader is not None
    return result, sorted({str(w.message) for w in caught})


@pytest.mark.parametrize("damage", ["none", "garbage", "short", "sparse"])
@pytest.mark.parametrize("strict", [False, True])
def test_regions_through_the_prepared_reader_equal_the_general_path(tmp_path, damage, strict):
    """read_region places tiles from read_segment's prepared reader; a tile it refuses (sparse,
    a stream that fails or decodes short) takes the general path: same pixels, same warnings,
    same error as a read without the prepared reader."""
    import imagecodecs
    data = (numpy.arange(200 * 150).reshape(200, 150) * 7 % 60000).astype(numpy.uint16)
    path = tmp_path / "r.tif"
    tifffile.imwrite(path, data, tile=(32, 32), compression="zlib")
    raw = bytearray(path.read_bytes())
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        offset, count = ifd.segment_location(7)
        offsets_at = ifd.segment_offsets._tag.value_offset
    if damage == "garbage":
        raw[offset: offset + count] = b"\x78\x9c" + b"\xff" * (count - 2)
    elif damage == "short":
        stream = imagecodecs.zlib_encode(bytes(1024))  # half a tile
        raw[offset: offset + len(stream)] = stream
    elif damage == "sparse":  # TileOffsets[7] = 0: a sparse tile, read as fill
        raw[offsets_at + 4 * 7: offsets_at + 4 * 8] = b"\0\0\0\0"
    path.write_bytes(bytes(raw))
    for window in [(0, 0, 200, 150), (13, 150 - 140, 120, 140), (40, 200 - 5, 30, 20)]:
        fast = _region_outcome(path, True, window, 9, strict)
        general = _region_outcome(path, False, window, 9, strict)
        if isinstance(general[0], tuple):
            assert fast == general
        else:
            assert isinstance(fast[0], numpy.ndarray) and numpy.array_equal(fast[0], general[0])
            assert fast[1] == general[1]
    if damage == "none":
        with tiffio.open(path) as tif:
            assert numpy.array_equal(tif.ifds[0].read_region(13, 10, 120, 140), data[13:133, 10:150])
    if damage == "sparse":
        with tiffio.open(path) as tif:
            got = tif.ifds[0].asarray(fill=9)
        expected = data.copy()
        expected[32:64, 32 * 2: 32 * 3] = 9  # tile 7: row 1, column 2 of 5 columns
        assert numpy.array_equal(got, expected)


def test_large_predicted_tiles_keep_the_general_region_path(tmp_path):
    data = (numpy.arange(600 * 600).reshape(600, 600) % 4000).astype(numpy.uint16)
    path = tmp_path / "p.tif"
    tifffile.imwrite(path, data, tile=(512, 512), compression="zlib", predictor=2)
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert numpy.array_equal(ifd.asarray(), data)
        assert ifd.fast_reader is not None and ifd._region_fast_reader is None
