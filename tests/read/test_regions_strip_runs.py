"""Whole-image reads of uncompressed strips: one read per contiguous run of strips, straight into
the result (IFD.asarray), equal to tifffile and to the strip-by-strip reads, in every layout."""

from __future__ import annotations

import io
import struct

import numpy
import pytest

import tiffio
from tests.support.tiffbuild import Builder

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")

RNG = numpy.random.default_rng(4)


def _stripped(data, rps, *, order=None, gap=0, pad=0, byteorder="<", separate=False):
    """Strips of ``rps`` rows stored in ``order`` (default: in index order), with ``gap``
    bytes between consecutive strips and ``pad`` bytes counted past each strip's rows."""
    b = Builder(byteorder)
    arr = numpy.asarray(data).astype(numpy.asarray(data).dtype.newbyteorder(byteorder))
    if separate:
        spp, h, w = arr.shape
        planes = [arr[s] for s in range(spp)]
    else:
        h, w = arr.shape[:2]
        spp = arr.shape[2] if arr.ndim == 3 else 1
        planes = [arr]
    strips = [plane[r:r + rps] for plane in planes for r in range(0, h, rps)]
    offsets, counts = [0] * len(strips), [0] * len(strips)
    for i in order if order is not None else range(len(strips)):
        if gap:
            b.blob(bytes(gap), align=1)
        raw = strips[i].tobytes() + bytes(pad)
        offsets[i] = b.blob(raw, align=1)
        counts[i] = len(raw)
    kind = {"u": 1, "i": 2, "f": 3}[arr.dtype.kind]
    entries = [(256, 4, w), (257, 4, h), (258, 3, [arr.dtype.itemsize * 8] * spp), (259, 3, 1),
               (262, 3, 2 if spp == 3 else 1), (277, 3, spp), (339, 3, [kind] * spp), (278, 4, rps),
               (273, 4, offsets), (279, 4, counts)]
    if separate:
        entries.append((284, 3, 2))
    return b.build(b.ifd(entries))


CASES = {
    "contiguous_u16": dict(data=RNG.integers(0, 60000, (100, 70), dtype=numpy.uint16), rps=7),
    "reversed_u8": dict(data=RNG.integers(0, 255, (60, 33), dtype=numpy.uint8), rps=4, order=range(14, -1, -1)),
    "gaps_f32": dict(data=RNG.random((50, 20), dtype=numpy.float32), rps=8, gap=3),
    "padded_i32": dict(data=RNG.integers(-9, 9, (40, 10), dtype=numpy.int32), rps=16, pad=5),
    "big_endian_u16_rgb": dict(data=RNG.integers(0, 60000, (30, 17, 3), dtype=numpy.uint16), rps=5, byteorder=">"),
    "separate_u8": dict(data=RNG.integers(0, 255, (3, 30, 17), dtype=numpy.uint8), rps=6, separate=True),
    "big_endian_f64_separate": dict(data=RNG.random((2, 9, 5)), rps=2, byteorder=">", separate=True),
    "one_strip": dict(data=RNG.integers(0, 60000, (64, 64), dtype=numpy.uint16), rps=64),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_runs_equal_tifffile_and_strip_reads(name):
    case = dict(CASES[name])
    data = case.pop("data")
    blob = _stripped(data, **case)
    ref = tifffile.imread(io.BytesIO(blob))
    with tiffio.open(blob) as tif:
        ifd = tif.ifds[0]
        got = ifd.asarray()
        assert got.dtype == ref.dtype and got.dtype.isnative and numpy.array_equal(got, ref)
        assert numpy.array_equal(got, numpy.asarray(data).astype(got.dtype))
        strips = numpy.concatenate([ifd.read_segment(i).reshape(-1) for i in range(ifd.segment_count)])
        assert numpy.array_equal(got.reshape(-1), strips)
        out = numpy.empty_like(got)
        assert ifd.asarray(out=out) is out and numpy.array_equal(out, ref)
        assert numpy.array_equal(ifd.asarray(workers=3), ref)


def _runs(offsets_counts):
    """Runs of strips whose bytes follow one another."""
    runs = 1
    for (o0, c0), (o1, _c1) in zip(offsets_counts, offsets_counts[1:]):
        runs += o0 + c0 != o1
    return runs


@pytest.mark.parametrize("name", ["contiguous_u16", "reversed_u8", "gaps_f32", "one_strip"])
def test_one_read_per_run(tmp_path, name):
    """A local file: after the strile arrays are loaded, a whole-image read makes one read
    request per contiguous run of strips (15 reversed strips: 15 runs; in order: 1)."""
    case = dict(CASES[name])
    data = case.pop("data")
    path = tmp_path / "s.tif"
    path.write_bytes(_stripped(data, **case))
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        ifd.asarray()
        locations = [ifd.segment_location(i) for i in range(ifd.segment_count)]
        before = tif.source.requests
        got = ifd.asarray(workers=1)
        assert tif.source.requests - before == _runs(locations)
    assert numpy.array_equal(got, data)
    if name in ("contiguous_u16", "one_strip"):
        assert _runs(locations) == 1


def test_large_image_read_in_pieces_in_threads(tmp_path):
    """A 24 MiB image: pieces of a few MiB, read by several threads, equal to tifffile."""
    data = RNG.integers(0, 60000, (2048, 6144), dtype=numpy.uint16)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, data, rowsperstrip=3)
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert numpy.array_equal(ifd.asarray(), data)
        before = tif.source.requests
        assert numpy.array_equal(ifd.asarray(workers=2), data)
        assert tif.source.requests - before == 6  # 24 MiB in 4 MiB pieces


def test_sparse_short_and_cut_strips_keep_the_general_path():
    """Strips the run reader does not take (sparse, shorter than their rows, past the end of the
    file) read as before: fill, the rest zero-filled with a warning, TruncatedError in strict mode."""
    data = RNG.integers(1, 255, (20, 8), dtype=numpy.uint8)
    blob = bytearray(_stripped(data, rps=5))
    # sparse: strip 1's offset 0 -> fill (0)
    with tiffio.open(bytes(blob)) as tif:
        ifd = tif.ifds[0]
        offs = [ifd.segment_location(i)[0] for i in range(4)]
    table = blob.find(struct.pack("<4I", *offs))
    assert table > 0
    sparse = bytearray(blob)
    sparse[table + 4: table + 8] = bytes(4)
    with tiffio.open(bytes(sparse)) as tif:
        got = tif.ifds[0].asarray()
    expected = data.copy()
    expected[5:10] = 0
    assert numpy.array_equal(got, expected)
    # cut: the last strip starts 13 bytes before the end of the file
    cut = bytearray(blob)
    cut[table + 12: table + 16] = struct.pack("<I", len(blob) - 13)
    with pytest.warns(tiffio.TiffFormatWarning), tiffio.open(bytes(cut)) as tif:
        got = tif.ifds[0].asarray()
    assert numpy.array_equal(got[:15], data[:15])
    assert numpy.array_equal(got[15:].reshape(-1)[:13], numpy.frombuffer(bytes(blob[-13:]), numpy.uint8))
    assert not got[15:].reshape(-1)[13:].any()
    with tiffio.open(bytes(cut), strict=True) as tif, pytest.raises(tiffio.TruncatedError):
        tif.ifds[0].asarray()
