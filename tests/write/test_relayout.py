"""relayout (COG and plain layouts by raw tile copy) and the built-in COG checker, without GDAL."""

from __future__ import annotations

import os
import struct

import numpy
import pytest
import tifffile

import tiffio
from tiffio.format.cog import ghost_area, parse_ghost_area
from tiffio.read.cogcheck import check_cog
from tiffio.writer.relayout import relayout


def _pyramid_levels(height=600, width=520, samples=3, dtype="uint8", seed=0):
    rng = numpy.random.default_rng(seed)
    shape = (height, width, samples) if samples > 1 else (height, width)
    base = rng.integers(0, 200, shape).astype(dtype)
    levels = [base]
    while max(levels[-1].shape[:2]) > 128:
        levels.append(numpy.ascontiguousarray(levels[-1][::2, ::2]))
    return levels


def write_pyramid(path, levels, *, tile=(128, 128), subifds=False, missing="blank", skip=(), **kwargs):
    """A tiffio working file (leaders, IFDs at the end) holding ``levels``, tiles in reverse order."""
    with tiffio.TiffWriter(path, missing=missing, **kwargs.pop("writer", {})) as w:
        top = None
        for k, lv in enumerate(levels):
            extra = {}
            if k:
                extra = {"parent": top} if subifds else {"reduced": True}
            im = w.add_image(lv.shape, lv.dtype, tile=tile, **extra, **kwargs)
            top = top or im
            th, tw = tile
            for r in reversed(range(im.tiles_down)):
                for c in reversed(range(im.tiles_across)):
                    if (k, r, c) in skip:
                        continue
                    im.write_tile(r, c, lv[r * th:(r + 1) * th, c * tw:(c + 1) * tw])
    return path


def _levels_of(path):
    with tiffio.open(path) as tif:
        return [level.ifd.asarray() for level in tif.levels]


def _leaders_ok(path):
    data = open(path, "rb").read()
    with tiffio.open(path) as tif:
        for level in tif.levels:
            offs = level.ifd.segment_offsets.to_numpy()
            counts = level.ifd.segment_byte_counts.to_numpy()
            for off, n in zip(offs.tolist(), counts.tolist()):
                if not n:
                    continue
                assert struct.unpack("<I", data[off - 4: off])[0] == n
                assert data[off + n: off + n + 4] == data[off + n - 4: off + n]
    return True


@pytest.mark.parametrize("comp", ["jpeg", "deflate"])
def test_cog_from_tiffio_working_file(tmp_path, comp):
    levels = _pyramid_levels()
    src = write_pyramid(tmp_path / "work.tif", levels, compression=comp)
    assert check_cog(src)  # the crash-safe working layout is not a COG
    dst = tmp_path / "cog.tif"
    report = relayout(src, dst)
    assert report.layout == "cog" and not report.bigtiff and report.levels == len(levels)
    assert check_cog(dst) == []
    data = open(dst, "rb").read()
    assert data[:4] == b"II*\0"
    ghost = ghost_area()
    assert len(ghost) == 183 and data[8: 8 + len(ghost)] == ghost
    assert ghost.endswith(b"KNOWN_INCOMPATIBLE_EDITION=NO\n ")
    assert struct.unpack("<I", data[4:8])[0] == 192  # 8 + 183, word aligned
    assert parse_ghost_area(data[8:])[0]["BLOCK_LEADER"] == "SIZE_AS_UINT4"
    assert _leaders_ok(dst)
    got = _levels_of(dst)
    ref = _levels_of(src)
    assert len(got) == len(levels)
    for a, b in zip(got, ref):
        numpy.testing.assert_array_equal(a, b)
    if comp == "deflate":
        for a, b in zip(got, levels):
            numpy.testing.assert_array_equal(a, b)
    with tiffio.open(dst) as tif:
        ifds = list(tif.ifds)
        assert [d.new_subfile_type for d in ifds] == [0] + [1] * (len(levels) - 1)
        # IFDs first, in level order; tile data smallest level first; no gap between tiles
        offsets = [d.offset for d in ifds]
        assert offsets == sorted(offsets)
        firsts = [int(d.segment_offsets[0]) for d in ifds]
        assert firsts == sorted(firsts, reverse=True)
        assert firsts[-1] > max(offsets)
        end = max(int(o) + int(n) for d in ifds for o, n in zip(d.segment_offsets, d.segment_byte_counts))
        assert end + 4 == os.path.getsize(dst)
        if comp == "jpeg":
            src_tif = tiffio.open(src)
            assert ifds[0].jpegtables == src_tif.ifds[0].jpegtables
            src_tif.close()


def test_plain_layout(tmp_path):
    levels = _pyramid_levels(dtype="uint16", samples=1)
    src = write_pyramid(tmp_path / "work.tif", levels, compression="zstd", predictor=True)
    dst = tmp_path / "plain.tif"
    relayout(src, dst, layout="plain")
    data = open(dst, "rb").read()
    assert struct.unpack("<I", data[4:8])[0] == 8 and b"GDAL_STRUCTURAL" not in data[:400]
    with tiffio.open(dst) as tif:
        ifds = list(tif.ifds)
        # tiles follow each other with nothing between them, largest level first
        pos = int(ifds[0].segment_offsets[0])
        for d in ifds:
            for o, n in zip(d.segment_offsets, d.segment_byte_counts):
                assert o == pos
                pos += n
        assert pos == os.path.getsize(dst)
    for a, b in zip(_levels_of(dst), levels):
        numpy.testing.assert_array_equal(a, b)
    # not a COG: the largest level's tiles come first (but every IFD is before the data)
    errors = check_cog(dst)
    assert errors and all("first tile of" in e for e in errors)


def test_bigtiff_forced_and_big_endian(tmp_path):
    levels = _pyramid_levels(dtype="uint16", samples=1, seed=2)
    src = write_pyramid(tmp_path / "work.tif", levels, compression="deflate", writer={"byteorder": ">"})
    dst = tmp_path / "big.tif"
    report = relayout(src, dst, bigtiff=True)
    assert report.bigtiff
    data = open(dst, "rb").read()
    assert data[:4] == b"MM\0+"
    assert data[16: 16 + 183] == ghost_area()
    assert struct.unpack(">Q", data[8:16])[0] == 16 + 183 + 1
    assert check_cog(dst) == []
    for a, b in zip(_levels_of(dst), levels):
        numpy.testing.assert_array_equal(a, b)
    with tifffile.TiffFile(dst) as tf:
        assert tf.is_bigtiff and tf.byteorder == ">"
        for page, b in zip(tf.pages, levels):
            numpy.testing.assert_array_equal(page.asarray(), b)


def test_sparse_tiles_stay_sparse(tmp_path):
    levels = _pyramid_levels(samples=1, seed=3)
    src = write_pyramid(tmp_path / "work.tif", levels, compression="deflate", missing="sparse",
                        skip={(0, 0, 1), (0, 2, 3), (1, 0, 0)})
    dst = tmp_path / "cog.tif"
    report = relayout(src, dst)
    assert report.sparse_tiles == 3
    assert check_cog(dst) == []
    with tiffio.open(dst) as tif:
        ifd = tif.ifds[0]
        assert ifd.is_sparse(1) and ifd.is_sparse(2 * ifd.grid.across + 3)
        assert tif.ifds[1].is_sparse(0)
    for a, b in zip(_levels_of(dst), _levels_of(src)):
        numpy.testing.assert_array_equal(a, b)


def test_subifd_pyramid_moves_to_main_chain(tmp_path):
    levels = _pyramid_levels(samples=1, seed=4)
    src = write_pyramid(tmp_path / "work.tif", levels, compression="lzw", subifds=True)
    with tiffio.open(src) as tif:
        assert len(tif.ifds) == 1 and len(tif.ifds[0].subifds) == len(levels) - 1
    dst = tmp_path / "cog.tif"
    relayout(src, dst)
    with tiffio.open(dst) as tif:
        assert len(tif.ifds) == len(levels) and 330 not in tif.ifds[0].tags
    assert check_cog(dst) == []
    for a, b in zip(_levels_of(dst), levels):
        numpy.testing.assert_array_equal(a, b)


def test_tags_are_kept(tmp_path):
    levels = _pyramid_levels(samples=1, seed=5)
    geokeys = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633)
    extratags = [(33550, 12, 3, (10.0, 10.0, 0.0)), (33922, 12, 6, (0, 0, 0, 500000.0, 4000000.0, 0)),
                 (34735, 3, len(geokeys), geokeys), (42113, 2, None, "7")]
    src = write_pyramid(tmp_path / "work.tif", levels, compression="deflate", description="hello",
                        extratags=extratags)
    dst = tmp_path / "cog.tif"
    relayout(src, dst)
    with tiffio.open(src) as a, tiffio.open(dst) as b:
        for da, db in zip(a.ifds, b.ifds):
            keep = set(da.tags) - {254, 324, 325}
            assert keep <= set(db.tags)
            for code in keep:
                assert da.tags[code].value == db.tags[code].value, code
        assert b.ifds[0].get(34735) == geokeys
        assert b.ifds[0].description == "hello"


def test_separate_planes(tmp_path):
    rng = numpy.random.default_rng(6)
    base = rng.integers(0, 255, (3, 300, 260)).astype("uint8")
    levels = [base, numpy.ascontiguousarray(base[:, ::2, ::2])]
    path = tmp_path / "work.tif"
    with tiffio.TiffWriter(path) as w:
        for k, lv in enumerate(levels):
            im = w.add_image(lv.shape, "uint8", tile=(128, 128), compression="deflate", planarconfig="separate",
                             reduced=k > 0)
            for p in range(3):
                for r in range(im.tiles_down):
                    for c in range(im.tiles_across):
                        im.write_tile(r, c, lv[p, r * 128:(r + 1) * 128, c * 128:(c + 1) * 128], plane=p)
    dst = tmp_path / "cog.tif"
    relayout(path, dst)
    assert check_cog(dst) == []
    assert _leaders_ok(dst)
    for a, b in zip(_levels_of(dst), levels):
        numpy.testing.assert_array_equal(a, b)


def test_checker_finds_broken_leader_trailer_and_edition(tmp_path):
    levels = _pyramid_levels(samples=1, seed=7)
    src = write_pyramid(tmp_path / "work.tif", levels, compression="deflate")
    dst = tmp_path / "cog.tif"
    relayout(src, dst)
    with tiffio.open(dst) as tif:
        off = int(tif.ifds[0].segment_offsets[1])
        n = int(tif.ifds[0].segment_byte_counts[1])
    raw = bytearray(open(dst, "rb").read())
    broken = bytearray(raw)
    broken[off - 4: off] = struct.pack("<I", n + 1)
    p = tmp_path / "leader.tif"
    p.write_bytes(bytes(broken))
    errors = check_cog(p)
    assert len(errors) == 1 and "leader" in errors[0] and "tile 1" in errors[0]
    broken = bytearray(raw)
    broken[off + n] ^= 0xFF
    p.write_bytes(bytes(broken))
    errors = check_cog(p)
    assert len(errors) == 1 and "trailer" in errors[0]
    assert check_cog(p, full=False) == []
    broken = bytearray(raw).replace(b"EDITION=NO\n ", b"EDITION=YES\n")
    p.write_bytes(bytes(broken))
    errors = check_cog(p)
    assert any("KNOWN_INCOMPATIBLE_EDITION=YES" in e for e in errors)


def test_checker_on_tifffile_pyramid(tmp_path):
    # tifffile writes level 0's tiles first: not a COG, and relayout makes it one
    levels = _pyramid_levels(samples=1, seed=8)
    src = tmp_path / "tf.tif"
    with tifffile.TiffWriter(src) as tw:
        tw.write(levels[0], tile=(128, 128), compression="zlib", subifds=len(levels) - 1)
        for lv in levels[1:]:
            tw.write(lv, tile=(128, 128), compression="zlib", subfiletype=1)
    errors = check_cog(src)
    assert any("first tile" in e for e in errors)
    dst = tmp_path / "cog.tif"
    relayout(src, dst)
    assert check_cog(dst) == []
    for a, b in zip(_levels_of(dst), levels):
        numpy.testing.assert_array_equal(a, b)


def test_relayout_errors(tmp_path):
    strips = tmp_path / "strips.tif"
    tifffile.imwrite(strips, numpy.zeros((64, 64), "uint8"))
    with pytest.raises(tiffio.UnsupportedFeatureError, match="strips"):
        relayout(strips, tmp_path / "out.tif")
    levels = _pyramid_levels(samples=1)
    src = write_pyramid(tmp_path / "work.tif", levels, compression="deflate")
    with pytest.raises(tiffio.TiffValueError, match="layout"):
        relayout(src, tmp_path / "out.tif", layout="zarr")
    with pytest.raises(tiffio.SourceError):
        relayout(src, tmp_path / "no" / "such" / "dir.tif")
    assert not os.path.exists(tmp_path / "out.tif")
    with tiffio.open(src.read_bytes()) as tif, pytest.raises(tiffio.UnsupportedFeatureError, match="local file"):
        relayout(tif, tmp_path / "out.tif")
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_plain_layout_without_copy_file_range(tmp_path, monkeypatch):
    import tiffio.writer.tilecopy as tilecopy

    levels = _pyramid_levels(samples=1, seed=9)
    src = write_pyramid(tmp_path / "work.tif", levels, compression="deflate")
    relayout(src, tmp_path / "a.tif", layout="plain")
    monkeypatch.setattr(tilecopy, "_COPY_FILE_RANGE", False)
    relayout(src, tmp_path / "b.tif", layout="plain")
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()
    for a, b in zip(_levels_of(tmp_path / "b.tif"), levels):
        numpy.testing.assert_array_equal(a, b)


def test_bigtiff_only_when_needed(tmp_path, monkeypatch):
    import tiffio.writer.relayout as rl

    levels = _pyramid_levels(samples=1, seed=10)
    src = write_pyramid(tmp_path / "work.tif", levels, compression="deflate")
    assert not relayout(src, tmp_path / "classic.tif").bigtiff
    size = os.path.getsize(tmp_path / "classic.tif")
    monkeypatch.setattr(rl, "CLASSIC_LIMIT", size - 1)  # the classic file would pass the limit by one byte
    report = relayout(src, tmp_path / "big.tif")
    assert report.bigtiff
    assert open(tmp_path / "big.tif", "rb").read(4) == b"II+\0"
    assert check_cog(tmp_path / "big.tif") == []
    with pytest.raises(tiffio.TiffValueError, match="bigtiff=False"):
        relayout(src, tmp_path / "no.tif", bigtiff=False)
    for a, b in zip(_levels_of(tmp_path / "big.tif"), levels):
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layout", ["plain", "cog"])  # plain: in-kernel copy runs; cog: the buffered copy
def test_progress_reports_every_tile_byte(tmp_path, layout):
    levels = _pyramid_levels()
    src = write_pyramid(tmp_path / "work.tif", levels, compression="zstd", skip={(0, 1, 2)}, missing="sparse")
    calls = []
    report = relayout(src, tmp_path / "out.tif", layout=layout, progress=lambda done, total: calls.append((done, total)))
    assert report.data_bytes > 0 and report.sparse_tiles == 1
    assert calls[0] == (0, report.data_bytes) and calls[-1] == (report.data_bytes, report.data_bytes)
    done = [c[0] for c in calls]
    assert done == sorted(done) and len(set(done)) == len(done) and len(calls) >= 2
