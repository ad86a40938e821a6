"""``tiffio tiles --all`` / ``--rows`` / ``--cols``: many tiles written by one process (real
subprocesses), each file equal to what the library gives for that tile."""

from __future__ import annotations

import numpy
import pytest

import tiffio
from tests.support.cli_run import run
from tests.support.paths import FIXTURES
from tests.support.tiffbuild import Builder

COG = FIXTURES / "gdal" / "cog_jpeg_rgb.tif"  # level 0: 5 x 5 tiles of 64 x 64, YCbCr JPEG with JPEGTables


def thousand_tile_file(path) -> None:
    """20 x 50 tiles of 16 x 16, YCbCr JPEG written by tiffio (1,000 tiles)."""
    y, x = numpy.mgrid[: 320, : 800]
    data = numpy.stack([x % 256, y % 256, (x ^ y) % 256], axis=-1).astype(numpy.uint8)
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(data.shape, "uint8", tile=(16, 16), compression="jpeg")
        for row in range(20):
            for col in range(50):
                im.write_tile(row, col, data[row * 16: row * 16 + 16, col * 16: col * 16 + 16])


def test_all_tiles_of_a_thousand_tile_file_in_one_process(tmp_path):
    """One process start writes the 1,000 .jpg files (1,000 single-tile calls would be 1,000
    process starts: benchmarks/bench_cli.py --tiles compares the two)."""
    path = tmp_path / "thousand.tif"
    thousand_tile_file(path)
    proc = run("tiles", path, "--all", "-o", tmp_path / "out" / "tile_{row}_{col}.jpg")
    assert proc.stdout.startswith("wrote 1000 files (")
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == 1000
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        for index in range(1000):
            row, col = divmod(index, 50)
            assert (tmp_path / "out" / f"tile_{row}_{col}.jpg").read_bytes() == ifd.read_segment_jpeg(index)


def test_ranges_into_a_folder_decoded(tmp_path):
    out = tmp_path / "pngs"
    out.mkdir()
    run("tiles", COG, "--rows", "1:3", "--cols", "-1", "--png", "-o", out)
    assert sorted(p.name for p in out.iterdir()) == ["tile_1_4.png", "tile_2_4.png"]
    import imagecodecs
    with tiffio.open(COG) as tif:
        ifd = tif.ifds[0]
        for row in (1, 2):
            got = imagecodecs.png_decode((out / f"tile_{row}_4.png").read_bytes())
            assert numpy.array_equal(got, ifd.read_segment(row * 5 + 4, valid=True))
            assert got.shape == (64, 280 - 4 * 64, 3)  # the edge tile cropped to the image


def test_pattern_fields_formats_and_levels(tmp_path):
    run("tiles", COG, "--level", "1", "--cols", "0:2", "-o", tmp_path / "l{level}" / "{index:02d}_{row}x{col}.npy")
    names = sorted(p.name for p in (tmp_path / "l1").iterdir())
    assert names == ["00_0x0.npy", "01_0x1.npy", "03_1x0.npy", "04_1x1.npy", "06_2x0.npy", "07_2x1.npy"]
    with tiffio.open(COG) as tif:
        ifd = tif.levels[1].ifd
        for name in names:
            index = int(name[:2])
            assert numpy.array_equal(numpy.load(tmp_path / "l1" / name), ifd.read_segment(index, valid=True))
    # a folder name that does not exist yet, stored bytes (the default format of a folder)
    run("tiles", COG, "--level", "2", "--all", "-o", f"{tmp_path / 'raw'}/")
    with tiffio.open(COG) as tif:
        ifd = tif.levels[2].ifd
        for index in range(4):
            row, col = divmod(index, 2)
            assert (tmp_path / "raw" / f"tile_{row}_{col}.bin").read_bytes() == ifd.read_segment_bytes(index)


def test_separate_planes(tmp_path):
    path = FIXTURES / "libtiff" / "zip_rgb_separate_tiles.tif"
    run("tiles", path, "--all", "--raw", "-o", f"{tmp_path / 'p'}/")
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        files = sorted((tmp_path / "p").iterdir())
        assert len(files) == ifd.segment_count
        down, across = -(-ifd.length // ifd.tile_shape[0]), -(-ifd.width // ifd.tile_shape[1])
        for index in range(ifd.segment_count):
            plane, rest = divmod(index, down * across)
            row, col = divmod(rest, across)
            assert (tmp_path / "p" / f"tile_{plane}_{row}_{col}.bin").read_bytes() == ifd.read_segment_bytes(index)
    run("tiles", path, "--all", "--plane", "2", "--raw", "-o", tmp_path / "q" / "{plane}-{index}.bin")
    assert {p.name.split("-")[0] for p in (tmp_path / "q").iterdir()} == {"2"}


def test_sparse_tiles_are_skipped_and_counted(tmp_path):
    import imagecodecs

    stream = bytes(imagecodecs.jpeg8_encode(numpy.full((16, 16), 7, numpy.uint8), level=90))
    b = Builder("<")
    offset = b.blob(stream)
    entries = [(256, 3, 48), (257, 3, 16), (258, 3, 8), (259, 3, 7), (262, 3, 1), (277, 3, 1), (322, 3, 16),
               (323, 3, 16), (324, 4, [offset, 0, offset]), (325, 4, [len(stream), 0, len(stream)])]
    path = tmp_path / "sparse.tif"
    path.write_bytes(b.build(b.ifd(entries)))
    proc = run("tiles", path, "--all", "-o", tmp_path / "j" / "{col}.jpg")
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == ["0.jpg", "2.jpg"]
    assert proc.stderr.strip() == "tiffio tiles: skipped 1 sparse tiles (not stored)"
    assert imagecodecs.jpeg8_decode((tmp_path / "j" / "2.jpg").read_bytes()).max() == 7
    proc = run("tiles", path, "--index", "1", "--jpeg", "-o", tmp_path / "one.jpg", check=1)
    assert "segment 1 is sparse" in proc.stderr and not (tmp_path / "one.jpg").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--all", "-o", "plain.jpg"], "several tiles need a name pattern"),
    (["--all", "-o", "t_{row}.jpg"], "gives 25 tiles only 5 names"),
    (["--all", "-o", "t_{tile}.jpg"], "unknown field 'tile'"),
    (["--all", "-o", "t_{}.jpg"], "unknown field ''"),
    (["--all", "-o", "-"], "25 tiles cannot go to stdout"),
    (["--rows", "3:1", "-o", "x/"], "select no tiles"),
    (["--rows", "7", "-o", "x/"], "--rows 7 is outside the 5 rows"),
    (["--rows", "a:b", "-o", "x/"], "not N, START:STOP"),
    (["--at", "0", "0", "--cols", "1", "-o", "x/"], "do not combine with --index or --at"),
    (["-o", "x.jpg"], "say which tiles"),
])
def test_usage_errors_write_nothing(tmp_path, args, message):
    proc = run("tiles", COG, *args, check=2, cwd=tmp_path)
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_jpeg_of_another_compression_is_a_usage_error(tmp_path):
    proc = run("tiles", FIXTURES / "libtiff" / "zip_rgb_separate_tiles.tif", "--all", "--jpeg", "-o",
               f"{tmp_path / 'o'}/", check=2)
    assert "--jpeg needs JPEG (7) tiles, not compression 8" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_remote_tiles_are_fetched_in_batches(tmp_path):
    """Over HTTP the tiles of a batch come from one planned fetch, not one request per tile."""
    from tests.support.rangeserver import RangeServer

    with RangeServer({"cog.tif": COG.read_bytes()}) as srv:
        run("tiles", srv.url("cog.tif"), "--all", "--jpeg", "-o", tmp_path / "r" / "{row}_{col}.jpg")
        requests = [r for r in srv.requests() if r.method == "GET"]
    with tiffio.open(COG) as tif:
        ifd = tif.ifds[0]
        for index in range(25):
            row, col = divmod(index, 5)
            assert (tmp_path / "r" / f"{row}_{col}.jpg").read_bytes() == ifd.read_segment_jpeg(index)
    assert len(requests) <= 8, requests  # header + IFDs, strile arrays, the 25 tiles' bytes in a few ranges
