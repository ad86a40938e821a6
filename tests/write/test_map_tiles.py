"""tiffio.map_tiles: a 9 x 9 LoG over a tiled GeoTIFF equals the whole-image run everywhere (threads
and processes), the grid and georeferencing are kept (read by GDAL), memory stays a few tile rows."""

from __future__ import annotations

import tracemalloc

import numpy
import pytest

import tiffio
from tests.support.array_workers import log9

pytestmark = pytest.mark.crossval

ndimage = pytest.importorskip("scipy.ndimage")

GEO = tiffio.GeoTiff(epsg=32633, transform=(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0), nodata=0.0)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("map") / "src.tif"
    data = numpy.random.default_rng(3).integers(0, 255, (700, 900), numpy.uint8)
    tiffio.imwrite(path, data, tile=(128, 128), compression="deflate", geotiff=GEO, resolution=(2.0, 2.0, "cm"),
                   metadata=None, pyramid=True)
    return path, data


@pytest.mark.parametrize("processes", [False, True])
def test_log_equals_the_whole_image_run(tmp_path, source, processes):
    path, data = source
    out = tmp_path / "log.tif"
    report = tiffio.map_tiles(path, out, log9, overlap=4, workers=2, processes=processes)
    assert report.blocks == 6 * 8 and report.shape == (700, 900) and report.dtype == "<f4"
    with tiffio.open(out) as tif:
        ifd = tif.ifds[0]
        assert ifd.grid.segment[1:] == (128, 128) and ifd.dtype == numpy.float32
        numpy.testing.assert_array_equal(ifd.asarray(), log9(data))        # the halo makes it exact everywhere
        assert ifd.geotiff.epsg == 32633 and ifd.geotiff.transform == GEO.transform
        assert (ifd.resolution.x, ifd.resolution.unit) == (2.0, "centimeter")


def test_grid_and_georeferencing_read_by_gdal(tmp_path, source):
    rasterio = pytest.importorskip("rasterio")
    path, data = source
    tiffio.map_tiles(path, tmp_path / "o.tif", lambda a: a // 2, compression="zstd")
    with rasterio.open(path) as src, rasterio.open(tmp_path / "o.tif") as dst:
        assert dst.crs == src.crs and dst.transform == src.transform and dst.block_shapes == [(128, 128)]
        numpy.testing.assert_array_equal(dst.read(1), data // 2)


def test_level_tile_multiple_and_pyramid(tmp_path, source):
    path, _ = source
    with tiffio.open(path) as tif:
        level1 = tif.levels[1].ifd.asarray()

    def whole(window):
        return ndimage.uniform_filter(window.astype(numpy.int32), 3)

    tiffio.map_tiles(path, tmp_path / "l1.tif", whole, overlap=1, level=1, tile=(256, 256), workers=1)
    with tiffio.open(tmp_path / "l1.tif") as tif:
        ifd = tif.ifds[0]
        assert ifd.shape == level1.shape and ifd.grid.segment[1:] == (256, 256)
        numpy.testing.assert_array_equal(ifd.asarray(), whole(level1))
        assert ifd.geotiff.transform == (20.0, 0.0, 500000.0, 0.0, -20.0, 4000000.0)      # level 1: pixels twice as large
    report = tiffio.map_tiles(path, tmp_path / "p.tif", lambda w: w, pyramid=True, compression="zstd")
    assert report.levels == [(700, 900), (350, 450), (175, 225), (88, 113)]
    with tiffio.open(tmp_path / "p.tif") as tif, tiffio.open(path) as src:
        for got, ref in zip(tif.ifds, src.ifds):
            numpy.testing.assert_array_equal(got.asarray(), ref.asarray())


def test_errors_name_the_tile(tmp_path, source):
    path, _ = source

    with pytest.raises(tiffio.TiffValueError, match=r"shape \(5, 132\) for the window of tile \(row 0, col 0\)"):
        tiffio.map_tiles(path, tmp_path / "b.tif", lambda w: w[:5], overlap=4, workers=1)
    with pytest.raises(tiffio.TiffValueError, match="overlap"):
        tiffio.map_tiles(path, tmp_path / "b.tif", log9, overlap=-1)
    with pytest.raises(tiffio.TiffValueError, match="level"):
        tiffio.map_tiles(path, tmp_path / "b.tif", log9, level=9)

    def boom(window):
        if boom.n == 3:
            raise RuntimeError("boom")
        boom.n += 1
        return window
    boom.n = 0
    with pytest.raises(tiffio.TiffError, match="RuntimeError: boom"):
        tiffio.map_tiles(path, tmp_path / "c.tif", boom, workers=1)
    with tiffio.TiffWriter(tmp_path / "c.tif", mode="resume") as w:   # what was written is kept
        assert 0 < len(w.images[0].missing_tiles()) < 48


def test_memory_is_a_few_tile_rows(tmp_path):
    """Python-heap peak (numpy arrays included) while filtering a 4096 x 4096 image of 256 x 256 tiles:
    a few full-width tile rows and the windows in flight, below the 16 MiB source and far below the 64 MiB
    float32 output."""
    path = tmp_path / "big.tif"
    data = numpy.random.default_rng(0).integers(0, 255, (4096, 4096), numpy.uint8)
    tiffio.imwrite(path, data, tile=(256, 256), compression="deflate")
    del data
    tracemalloc.start()
    try:
        tiffio.map_tiles(path, tmp_path / "out.tif", log9, overlap=4, workers=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 14 << 20, peak
