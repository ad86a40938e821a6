"""``tiffio info``, ``dump`` and ``tiles`` in real subprocesses, against the library's own values."""

from __future__ import annotations

import io
import re

import imagecodecs
import numpy
import pytest

import tiffio
from tests.support.cli_run import run, run_json
from tests.support.paths import FIXTURES
from tests.support.tiffbuild import Builder

INFO_FILES = [FIXTURES / p for p in (
    "libvips/pyramid_jpeg_subifds.tif", "gdal/cog_jpeg_rgb.tif", "gdal/sparse_tiled_u8.tif",
    "libtiff/zip_rgb_separate_tiles.tif", "libtiff/multipage_tiffcp.tif", "tifffile/bigtiff_u8_tiles_none_MM.tif",
    "libtiff/lzw_pred2_u16_MM.tif", "gdal/rgb_ycbcr_jpeg_mask.tif")]


def _expected_ifd(ifd: tiffio.IFD) -> dict:
    return {
        "path": ifd.path, "offset": ifd.offset, "shape": list(ifd.shape), "dtype": str(ifd.dtype),
        "width": ifd.width, "length": ifd.length, "samples_per_pixel": ifd.samples_per_pixel,
        "bits_per_sample": ifd.bits_per_sample, "tiled": ifd.is_tiled,
        "tile_shape": list(ifd.tile_shape) if ifd.is_tiled else None,
        "rows_per_strip": None if ifd.is_tiled else ifd.rows_per_strip,
        "segment_count": ifd.segment_count, "compression": int(ifd.compression),
        "photometric": ifd.photometric, "predictor": int(ifd.predictor),
        "planar_configuration": ifd.planar_configuration, "new_subfile_type": ifd.new_subfile_type,
        "subifds": [_expected_ifd(s) for s in ifd.subifds],
    }


def _got_ifd(doc: dict) -> dict:
    keys = ("path", "offset", "shape", "dtype", "width", "length", "samples_per_pixel", "bits_per_sample", "tiled",
            "tile_shape", "rows_per_strip", "segment_count", "new_subfile_type")
    got = {k: doc[k] for k in keys}
    for k in ("compression", "photometric", "predictor", "planar_configuration"):
        got[k] = doc[k]["code"] if doc[k] is not None else None
    got["subifds"] = [_got_ifd(s) for s in doc["subifds"]]
    return got


def test_info_json_equals_the_library():
    docs = run_json("info", "--json", "--sparse", *INFO_FILES)
    assert len(docs) == len(INFO_FILES)
    for path, doc in zip(INFO_FILES, docs):
        assert doc["schema"] == "tiffio.info/1"
        with tiffio.open(path) as tif:
            assert doc["file"] == str(path)
            assert doc["size"] == path.stat().st_size
            assert doc["byteorder"] == {"<": "little", ">": "big"}[tif.byteorder]
            assert doc["bigtiff"] is tif.bigtiff
            assert [_got_ifd(d) for d in doc["ifds"]] == [_expected_ifd(i) for i in tif.ifds]
            assert [(lv["index"], lv["ifd"], lv["shape"], lv["downsample"]) for lv in doc["levels"]] == [
                (lv.index, lv.ifd.path, list(lv.shape), list(lv.downsample)) for lv in tif.levels]
            series = getattr(tif, "series", None)
            if series is not None:
                assert [(s["kind"], s["shape"], s["dtype"], s["axes"], s["levels"]) for s in doc["series"]] == [
                    (s.kind, list(s.shape), str(s.dtype), s.axes, len(s.levels)) for s in series]
            for d, ifd in zip(doc["ifds"], tif.ifds):
                sparse = sum(ifd.is_sparse(i) for i in range(ifd.segment_count))
                assert d["sparse_segments"] == sparse
        assert doc["errors"] == [] and doc["warnings"] == []
    assert docs[2]["ifds"][0]["sparse_segments"] == 17  # GDAL SPARSE_OK file
    assert docs[1]["ifds"][0]["compression"] == {"code": 7, "name": "JPEG"}
    assert len(docs[0]["levels"]) == 4 and docs[0]["ifds"][0]["subifds"][0]["kind"] == "reduced"


def test_info_text_tree():
    out = run("info", FIXTURES / "libvips" / "pyramid_jpeg_subifds.tif").stdout
    lines = out.splitlines()
    assert lines[0].endswith("classic TIFF, little-endian, 18056 bytes, 1 IFDs")
    assert lines[1] == "  IFD 0 @ 10048 (0x2740): 250 x 300 x 3 uint8, tiles 64x64 (20 tiles), JPEG, YCBCR 2x2"
    assert lines[2].startswith("      IFD 0 SubIFD 0: 0 @ 13968 (0x3690): 125 x 150 x 3 uint8") and "reduced" in lines[2]
    assert "  levels: 4" in lines
    if hasattr(tiffio.TiffFile, "series"):
        assert lines[-1] == "    0: generic, YXS, 250 x 300 x 3, uint8, 4 levels"


def _million_tile_file(path) -> None:
    """16384 x 16384 uint8, 16 x 16 tiles (1,048,576), BigTIFF; every 7th tile sparse."""
    n = 1024 * 1024
    b = Builder("<", True)
    data_offset = b.blob(numpy.arange(256, dtype=numpy.uint8).tobytes())
    offsets = numpy.full(n, data_offset, numpy.uint64)
    offsets[::7] = 0
    counts = numpy.full(n, 256, numpy.uint64)
    entries = [(256, 4, 16384), (257, 4, 16384), (258, 3, 8), (259, 3, 1), (262, 3, 1), (277, 3, 1),
               (322, 3, 16), (323, 3, 16), (324, 16, offsets), (325, 16, counts)]
    path.write_bytes(b.build(b.ifd(entries)))


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    path = tmp_path_factory.mktemp("million") / "million.tif"
    _million_tile_file(path)
    return path


def test_info_on_a_million_tiles_reads_only_metadata(million):
    path = million
    proc = run("info", "--debug", path)
    assert "16384 x 16384 uint8, tiles 16x16 (1048576 tiles), NONE" in proc.stdout
    nbytes = int(re.search(r"read (\d+) bytes in (\d+) requests", proc.stderr).group(1))
    assert nbytes < 64 * 1024, nbytes           # the strile arrays are 16 MiB
    proc = run("info", "--debug", "--json", "--sparse", path)
    doc = __import__("json").loads(proc.stdout)
    assert doc["ifds"][0]["sparse_segments"] == len(range(0, 1024 * 1024, 7))
    nbytes = int(re.search(r"read (\d+) bytes", proc.stderr).group(1))
    assert nbytes >= 16 * 2**20                  # asked for: both arrays read


def test_dump_names_types_offsets_and_abbreviation():
    path = FIXTURES / "gdal" / "cog_jpeg_rgb.tif"
    out = run("dump", path).stdout
    assert re.search(r"^    256 ImageWidth +SHORT +1: 280$", out, re.M)
    assert re.search(r"^    259 Compression +SHORT +1: 7 \(JPEG\)$", out, re.M)
    line = next(x for x in out.splitlines() if "TileOffsets" in x)
    assert "LONG" in line and "25 @ 1780 (0x6f4): 9124 (0x23a4), 9615 (0x258f)" in line
    assert line.endswith("... (25 values)")
    assert "347 JPEGTables" in out and "(142 bytes)" in out
    full = run("dump", "--full", path).stdout
    line = next(x for x in full.splitlines() if "TileOffsets" in x)
    with tiffio.open(path) as tif:
        offsets = list(tif.ifds[0].segment_offsets)
    assert line.endswith(", ".join(f"{o} (0x{o:x})" for o in offsets))
    doc = run_json("dump", "--json", path)
    with tiffio.open(path) as tif:
        assert [[t["code"] for t in d["tags"]] for d in doc["ifds"]] == [list(i.tags) for i in tif.ifds]
        assert [[t["count"] for t in d["tags"]] for d in doc["ifds"]] == [
            [i.tags[c].count for c in i.tags] for i in tif.ifds]


def test_dump_million_tiles_reads_one_block(million):
    proc = run("dump", "--debug", million)
    line = next(x for x in proc.stdout.splitlines() if "TileOffsets" in x)
    assert line.endswith("... (1048576 values)")
    nbytes = int(re.search(r"read (\d+) bytes", proc.stderr).group(1))
    assert nbytes < 64 * 1024, nbytes  # the first block of each array, not 16 MiB


@pytest.mark.parametrize("fmt", ["raw", "png", "npy", "jpeg"])
def test_tiles_one_tile_out(tmp_path, fmt):
    path = FIXTURES / "gdal" / "cog_jpeg_rgb.tif"
    out = tmp_path / f"tile.{fmt}"
    run("tiles", path, "--level", "1", "--at", "1", "2", f"--{fmt}", "-o", out)
    with tiffio.open(path) as tif:
        ifd = tif.levels[1].ifd
        index = 1 * 3 + 2
        if fmt == "raw":
            assert out.read_bytes() == ifd.read_segment_bytes(index)
        elif fmt == "png":
            assert numpy.array_equal(imagecodecs.png_decode(out.read_bytes()), ifd.read_segment(index, valid=True))
        elif fmt == "npy":
            assert numpy.array_equal(numpy.load(out), ifd.read_segment(index, valid=True))
        else:  # a standalone stream: JPEGTables spliced in, decodes to the tile
            assert ifd.jpegtables is not None and out.read_bytes()[:2] == b"\xff\xd8"
            assert numpy.array_equal(imagecodecs.jpeg8_decode(out.read_bytes()), ifd.read_segment(index))


def test_tiles_index_to_stdout_and_errors(tmp_path):
    path = FIXTURES / "libtiff" / "zip_rgb_separate_tiles.tif"
    import subprocess
    import sys

    from tests.support.cli_run import ENV
    proc = subprocess.run([sys.executable, "-m", "tiffio", "tiles", str(path), "--index", "5", "--npy", "-o", "-"],
                          capture_output=True, env=ENV, check=True, timeout=120)
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert numpy.array_equal(numpy.load(io.BytesIO(proc.stdout)), ifd.read_segment(5, valid=True))
        across = -(-ifd.width // ifd.tile_shape[1])
        down = -(-ifd.length // ifd.tile_shape[0])
        run("tiles", path, "--at", "0", "1", "--plane", "2", "--raw", "-o", tmp_path / "p.bin")
        assert (tmp_path / "p.bin").read_bytes() == ifd.read_segment_bytes(2 * down * across + 1)
    proc = run("tiles", path, "--at", "99", "0", "-o", tmp_path / "x.bin", check=2)
    assert proc.stderr.count("\n") == 1 and "outside the grid" in proc.stderr and str(path) in proc.stderr


def test_urls_work_where_the_library_does(tmp_path):
    """info, dump and tiles on http://127.0.0.1 (a real range server in this process)."""
    from tests.support.rangeserver import RangeServer
    path = FIXTURES / "gdal" / "cog_jpeg_rgb.tif"
    with RangeServer({"cog.tif": path.read_bytes()}) as srv:
        url = srv.url("cog.tif")
        remote = run_json("info", "--json", url)
        run("tiles", url, "--level", "2", "--index", "1", "--raw", "-o", tmp_path / "t.bin")
        dumped = run("dump", url).stdout
        assert len(srv.requests()) >= 3  # the subprocesses really read over HTTP
    local = run_json("info", "--json", path)
    assert remote["file"] == url
    assert {**remote, "file": None} == {**local, "file": None}
    with tiffio.open(path) as tif:
        assert (tmp_path / "t.bin").read_bytes() == tif.levels[2].ifd.read_segment_bytes(1)
    assert dumped.splitlines()[1:] == run("dump", path).stdout.splitlines()[1:]


def test_console_script_is_declared_and_runs():
    import shutil
    import subprocess
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    from tests.support.cli_run import ENV
    from tests.support.paths import REPO
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"tiffio": "tiffio.cli:main"}
    exe = shutil.which("tiffio")
    if exe is None:
        pytest.skip("the tiffio console script is not installed (pip install -e . creates it)")
    proc = subprocess.run([exe, "info", "--json", str(FIXTURES / "gdal" / "cog_jpeg_rgb.tif")], env=ENV,
                          capture_output=True, text=True, timeout=120, check=True)
    assert __import__("json").loads(proc.stdout)["ifds"][0]["shape"] == [300, 280, 3]


def test_info_metadata_summary_imagej_ome_geotiff(tmp_path):
    import tifffile
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import Affine
    ij = tmp_path / "ij.tif"
    tifffile.imwrite(ij, numpy.zeros((3, 2, 32, 48), numpy.uint16), imagej=True,
                     metadata={"axes": "ZCYX", "spacing": 2.5, "unit": "um"})
    ome = tmp_path / "ome.ome.tif"
    tifffile.imwrite(ome, numpy.zeros((2, 32, 48), numpy.uint8), ome=True,
                     metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "µm"})
    geo = tmp_path / "geo.tif"
    with rasterio.open(geo, "w", driver="GTiff", width=48, height=32, count=1, dtype="uint8", crs="EPSG:32633",
                       transform=Affine(10, 0, 500000, 0, -10, 4600000), nodata=7) as ds:
        ds.write(numpy.zeros((32, 48), numpy.uint8), 1)
    docs = run_json("info", "--json", ij, ome, geo)
    with tifffile.TiffFile(ij) as t:
        expected = t.imagej_metadata
    got = docs[0]["metadata"]["imagej"]
    assert (got["images"], got["channels"], got["slices"], got["spacing"], got["unit"]) == (
        expected["images"], expected["channels"], expected["slices"], expected["spacing"], expected["unit"])
    if hasattr(tiffio.TiffFile, "series"):
        assert [(s["kind"], s["shape"], s["axes"]) for s in docs[0]["series"]] == [("imagej", [3, 2, 32, 48], "ZCYX")]
        assert [(s["kind"], s["shape"], s["axes"]) for s in docs[1]["series"]] == [("ome", [2, 32, 48], "CYX")]
    image = docs[1]["metadata"]["ome"]["images"][0]
    assert image["sizes"] == {"X": 48, "Y": 32, "Z": 1, "C": 2, "T": 1} and image["pixel_type"] == "uint8"
    assert image["physical_sizes"]["X"] == 0.5 and image["channels"] == 2
    g = docs[2]["metadata"]["geotiff"]
    assert g["epsg"] == 32633 and g["nodata"] == 7 and g["transform"][:3] == [10.0, 0.0, 500000.0]
    text = run("info", geo).stdout
    assert "geotiff: {'epsg': 32633" in text


def test_info_loads_no_codec(million):
    """Metadata-only commands never load imagecodecs' codec extensions (tiffio.codecs builds its tables
    on first use); the first decode does, and the tables are then plain module globals."""
    import ast
    import subprocess
    import sys

    from tests.support.cli_run import ENV
    script = (
        "import sys\n"
        "from tiffio.cli import main\n"
        "assert main(['info', '-q', sys.argv[1]]) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('imagecodecs.')))\n"
        "import tiffio, tiffio.codecs as c\n"
        "assert 'IMAGE_DECODERS' not in vars(c)\n"
        "with tiffio.open(sys.argv[2]) as t: t.ifds[0].read_segment(0)\n"
        "assert 'IMAGE_DECODERS' in vars(c) and c.IMAGE_DECODERS is vars(c)['IMAGE_DECODERS']\n"
        "print(len([m for m in sys.modules if m.startswith('imagecodecs._')]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(million), str(FIXTURES / "tifffile" / "comp_webp_rgb_tiles.tif")],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded, after = proc.stdout.splitlines()[-2:]
    # the package, and libdeflate's CRC-32 that tiffio.writer picks at import (with its zlib companion)
    assert set(ast.literal_eval(loaded)) <= {"imagecodecs.imagecodecs", "imagecodecs._shared", "imagecodecs._shared_cython",
                                 "imagecodecs._deflate", "imagecodecs._zlib"}, loaded
    assert int(after) >= 8  # decoding built the tables: every available codec's extension
