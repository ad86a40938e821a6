"""Unit tests of parsing: header, field types, lazy reads, chains, SubIFDs, sources, errors."""

from __future__ import annotations

import io
import threading

import numpy
import pytest

import tiffio
from tests.support.tiffbuild import Builder, simple_image
from tiffio.format.header import pack_header, parse_header
from tiffio.format.layout import get_layout

ORDERS = [("<", False), (">", False), ("<", True), (">", True)]


@pytest.mark.parametrize("bo,big", ORDERS)
def test_header_roundtrip(bo, big):
    layout = get_layout(bo, big)
    raw = pack_header(layout, 1234)
    assert len(raw) == (16 if big else 8)
    parsed, first = parse_header(raw)
    assert parsed == layout and first == 1234


@pytest.mark.parametrize("raw,match", [
    (b"", "too few"), (b"XX*\0\0\0\0\0", "byte-order"), (b"II\x2b\0\x04\0\0\0" + bytes(8), "offset size"),
    (b"II\x29\0\0\0\0\0", "version 41"),
])
def test_not_a_tiff(raw, match):
    with pytest.raises(tiffio.NotATiffError, match=match):
        tiffio.open(raw)


ALL_TYPES = [
    (1, (1, 2, 255)), (2, "hello"), (3, (1, 65535)), (4, (1, 2**32 - 1)), (5, ((1, 2), (3, 4))),
    (6, (-1, 127)), (7, b"\x00\x01\x02\x03\x04"), (8, (-32768, 7)), (9, (-(2**31), 5)), (10, ((-1, 3), (5, -7))),
    (11, (1.5, -2.25)), (12, (3.141592653589793, -1e300)), (13, (8,)), (16, (2**63 + 5, 1)),
    (17, (-(2**63), 1)), (18, (16,)),
]


@pytest.mark.parametrize("bo,big", ORDERS)
def test_all_18_field_types_and_unknown_tags(bo, big):
    b = Builder(bo, big)
    data = numpy.arange(12, dtype=numpy.uint8).reshape(3, 4)
    entries = [(256, 3, 4), (257, 3, 3), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, b.blob(data.tobytes())),
               (277, 3, 1), (278, 3, 3), (279, 4, 12)]
    for k, (ftype, value) in enumerate(ALL_TYPES):
        if ftype in (16, 17, 18) and not big:
            continue
        entries.append((60000 + k, ftype, value))
    entries.append((65000, 99, b"\x01\x02\x03\x04"))  # an unknown field type: kept raw
    tif = tiffio.open(b.build(b.ifd(entries)))
    ifd = tif.ifds[0]
    for k, (ftype, value) in enumerate(ALL_TYPES):
        if ftype in (16, 17, 18) and not big:
            continue
        tag = ifd.tags[60000 + k]
        assert tag.type == ftype and tag.name == f"Tag{60000 + k}"
        if ftype == 13 or ftype == 18:
            value = value[0]
        if ftype == 5 and isinstance(value, tuple):
            pass
        if ftype in (11,):
            assert tag.value == pytest.approx(value)
        else:
            assert tag.value == value, ftype
    assert ifd.tags[65000].type == 99
    assert ifd.tags[65000].value[:4] == b"\x01\x02\x03\x04"
    assert numpy.array_equal(ifd.asarray(), data)
    assert ifd.tags["ImageWidth"].value == 4 and ifd.get("Software", "none") == "none"


@pytest.mark.parametrize("bo,big", ORDERS)
@pytest.mark.parametrize("dtype", ["u1", "i2", "u4", "f4", "f8", "i8"])
@pytest.mark.parametrize("tile", [None, (16, 32)])
def test_uncompressed_any_order(bo, big, dtype, tile):
    rng = numpy.random.default_rng(3)
    data = (rng.random((37, 45, 3)) * 100).astype(dtype)
    raw = simple_image(data, byteorder=bo, bigtiff=big, tile=tile, rows_per_strip=8)
    with tiffio.open(raw) as tif:
        assert tif.byteorder == bo and tif.bigtiff == big
        ifd = tif.ifds[0]
        assert ifd.shape == (37, 45, 3) and ifd.dtype == numpy.dtype(dtype)
        assert numpy.array_equal(ifd.asarray(), data)
        for i in range(ifd.segment_count):
            seg = ifd.read_segment(i, valid=True)
            assert seg.shape == ifd.segment_valid_shape(i)


def test_open_one_tile_of_a_million_reads_few_kib(tmp_path):
    """Open + read one tile of a 16384 x 16384 image with 16 x 16 tiles (1,048,576 tiles):
    the strile arrays (16 MiB here) are read one block at a time."""
    n = 1024 * 1024
    b = Builder("<", True)
    tile_data = numpy.arange(256, dtype=numpy.uint8).reshape(16, 16)
    data_offset = b.blob(tile_data.tobytes())
    offsets = numpy.full(n, data_offset, numpy.uint64)
    counts = numpy.full(n, 256, numpy.uint64)
    entries = [(256, 4, 16384), (257, 4, 16384), (258, 3, 8), (259, 3, 1), (262, 3, 1), (277, 3, 1),
               (322, 3, 16), (323, 3, 16), (324, 16, offsets), (325, 16, counts)]
    path = tmp_path / "million.tif"
    path.write_bytes(b.build(b.ifd(entries)))
    assert path.stat().st_size > 16 * 2**20
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert ifd.segment_count == n
        tile = ifd.read_segment(777_777)
        assert numpy.array_equal(tile, tile_data)
        assert tif.source.bytes_read <= 64 * 1024, tif.source.bytes_read
        assert tif.source.requests <= 8


def test_chain_cycle_strict_and_lenient():
    data = numpy.zeros((4, 4), numpy.uint8)
    b = Builder()
    entries = [(256, 3, 4), (257, 3, 4), (258, 3, 8), (273, 4, b.blob(data.tobytes())), (277, 3, 1), (279, 4, 16)]
    first = b.ifd(entries)
    second = b.ifd(entries)
    b.set_next(first, second)
    b.set_next(second, first)  # cycle
    raw = b.build(first)
    with tiffio.open(raw, strict=True) as tif:
        with pytest.raises(tiffio.TiffFormatError, match="loops back"):
            len(tif.ifds)
    with tiffio.open(raw, strict=False) as tif:
        with pytest.warns(tiffio.TiffFormatWarning, match="loops back"):
            assert len(tif.ifds) == 2


def test_ifd_limit():
    data = numpy.zeros((4, 4), numpy.uint8)
    b = Builder()
    entries = [(256, 3, 4), (257, 3, 4), (258, 3, 8), (273, 4, b.blob(data.tobytes())), (277, 3, 1), (279, 4, 16)]
    offsets = [b.ifd(entries) for _ in range(5)]
    for a, c in zip(offsets, offsets[1:]):
        b.set_next(a, c)
    raw = b.build(offsets[0])
    with tiffio.open(raw, limits=tiffio.Limits(max_ifds=3)) as tif:
        assert tif.ifds[2].index == 2
        with pytest.raises(tiffio.LimitExceededError, match="max_ifds"):
            len(tif.ifds)
    assert len(tiffio.open(raw).ifds) == 5


@pytest.mark.parametrize("ftype,big", [(4, False), (13, False), (16, True), (18, True)])
def test_subifds_of_every_type(ftype, big):
    b = Builder("<", big)
    data = numpy.arange(16, dtype=numpy.uint8).reshape(4, 4)
    small = numpy.arange(4, dtype=numpy.uint8).reshape(2, 2)

    def image(arr, extra=()):
        return [(256, 3, arr.shape[1]), (257, 3, arr.shape[0]), (258, 3, 8), (273, 4, b.blob(arr.tobytes())),
                (277, 3, 1), (279, 4, arr.size), *extra]

    sub1 = b.ifd(image(small, [(254, 4, 1)]))
    sub2 = b.ifd(image(small[:1, :1], [(254, 4, 1)]))
    main = b.ifd(image(data, [(330, ftype, [sub1, sub2])]))
    with tiffio.open(b.build(main)) as tif:
        ifd = tif.ifds[0]
        assert [s.shape for s in ifd.subifds] == [(2, 2), (1, 1)]
        assert numpy.array_equal(ifd.subifds[0].asarray(), small)
        assert [lv.shape for lv in tif.levels] == [(4, 4), (2, 2), (1, 1)]


def test_sources_bytes_fileobj_path_agree(tmp_path):
    data = numpy.arange(40 * 50, dtype=numpy.uint16).reshape(40, 50)
    raw = simple_image(data, tile=(16, 16))
    path = tmp_path / "a.tif"
    path.write_bytes(raw)
    for src in (raw, bytearray(raw), memoryview(raw), io.BytesIO(raw), path, str(path)):
        with tiffio.open(src) as tif:
            assert numpy.array_equal(tif.ifds[0].asarray(), data)
    with open(path, "rb") as fh:
        tif = tiffio.open(fh)
        tif.close()
        assert not fh.closed  # the caller's file object stays the caller's
    with pytest.raises(tiffio.TiffTypeError):
        tiffio.open(12345)
    with pytest.raises(tiffio.SourceError):
        tiffio.open(tmp_path / "missing.tif")
    with open(path, "r") as text:  # noqa: UP015
        with pytest.raises(tiffio.TiffError):
            tiffio.open(text)


def test_threads_share_positional_reads(tmp_path):
    data = numpy.arange(64 * 64, dtype=numpy.uint16).reshape(64, 64)
    path = tmp_path / "a.tif"
    path.write_bytes(simple_image(data, tile=(16, 16)))
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        expected = [ifd.read_segment(i) for i in range(ifd.segment_count)]
        bad = []

        def run():
            for _ in range(20):
                for i in range(ifd.segment_count):
                    if not numpy.array_equal(ifd.read_segment(i), expected[i]):
                        bad.append(i)

        threads = [threading.Thread(target=run) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not bad


def test_sparse_segments_fill():
    b = Builder()
    tile = numpy.full((16, 16), 7, numpy.uint8)
    offsets = [b.blob(tile.tobytes()), 0, 0, b.blob(tile.tobytes())]
    counts = [256, 0, 0, 256]
    entries = [(256, 3, 32), (257, 3, 32), (258, 3, 8), (277, 3, 1), (322, 3, 16), (323, 3, 16),
               (324, 4, offsets), (325, 4, counts)]
    with tiffio.open(b.build(b.ifd(entries))) as tif:
        ifd = tif.ifds[0]
        assert ifd.is_sparse(1) and not ifd.is_sparse(0)
        assert ifd.read_segment_bytes(1) == b""
        assert (ifd.read_segment(1) == 0).all()
        assert (ifd.read_segment(2, fill=9) == 9).all()
        arr = ifd.asarray(fill=3)
        assert (arr[:16, :16] == 7).all() and (arr[:16, 16:] == 3).all()


def test_geometry_errors_name_the_place():
    b = Builder()
    entries = [(256, 3, 32), (257, 3, 32), (258, 3, 8), (277, 3, 1), (322, 3, 16), (323, 3, 16),
               (324, 4, [100, 100, 100]), (325, 4, [1, 1, 1])]
    raw = b.build(b.ifd(entries))
    with tiffio.open(raw, strict=True) as tif:
        with pytest.raises(tiffio.TiffFormatError, match=r"IFD 0 at offset \d+ .*TileOffsets has 3 values, expected 4 \(2 x 2 tiles\)"):
            tif.ifds[0].read_segment(0)
    with tiffio.open(raw, strict=False) as tif, pytest.warns(tiffio.TiffFormatWarning):
        assert tif.ifds[0].read_segment(3).shape == (16, 16)
    with tiffio.open(raw) as tif:
        with pytest.raises(tiffio.TiffIndexError):
            tif.ifds[0].read_segment_bytes(4)
        with pytest.raises(tiffio.TiffIndexError):
            tif.ifds[1]


def test_unsupported_compression_is_named():
    data = numpy.zeros((8, 8), numpy.uint8)
    raw = simple_image(data, compression=32809)  # ThunderScan
    with tiffio.open(raw) as tif:
        with pytest.raises(tiffio.UnsupportedFeatureError, match="THUNDERSCAN"):
            tif.ifds[0].asarray()


@pytest.mark.parametrize("kind", ["path", "bytes", "fileobj"])
def test_read_into_matches_read_range_on_every_source(tmp_path, kind):
    """read_into (the reusable-buffer read of JPEG segments) gives read_range's bytes on every
    kind of source, fewer at the end of the source, and counts the read."""
    from tiffio.sources import open_source
    payload = bytes(range(256)) * 40
    path = tmp_path / "blob.bin"
    path.write_bytes(payload)
    arg = {"path": path, "bytes": payload, "fileobj": io.BytesIO(payload)}[kind]
    source, _ = open_source(arg)
    buf = memoryview(bytearray(5000))
    for offset, n in [(0, 10), (1234, 5000), (len(payload) - 7, 100), (len(payload) + 3, 50)]:
        before = source.requests
        got = source.read_into(offset, buf[:n])
        assert bytes(got) == source.read_range(offset, n) == payload[offset: offset + n]
        assert source.requests == before + 2
    source.close()
    with pytest.raises(tiffio.TiffUsageError):
        source.read_into(0, buf[:10])
