"""Issue 5: files written with checkpoints on - a copy taken right after a mid-write
checkpoint, and the finished file - are read identically by tiffio, tifffile, libtiff and
GDAL (missing tiles of the copy as the image's missing-tile policy says)."""

from __future__ import annotations

import shutil
import warnings

import numpy
import pytest

import tiffio

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")
imagecodecs = pytest.importorskip("imagecodecs")
rasterio = pytest.importorskip("rasterio")


def _gdal(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return numpy.moveaxis(ds.read(), 0, -1)


@pytest.mark.parametrize("bigtiff", [None, True])
@pytest.mark.parametrize("compression,predictor", [("deflate", 2), ("lzw", None), (None, None)])
def test_checkpointed_files_read_everywhere(tmp_path, bigtiff, compression, predictor):
    rng = numpy.random.default_rng(5)
    image = rng.integers(0, 60000, (100, 150, 3), dtype=numpy.uint16)
    path = tmp_path / "out.tif"
    tiles = [(r, c) for r in range(4) for c in range(5)]
    rng.shuffle(tiles)
    with tiffio.TiffWriter(path, bigtiff=bigtiff, checkpoint_every=7) as w:
        img = w.add_image(image.shape, image.dtype, tile=(32, 32), compression=compression, predictor=predictor)
        for k, (r, c) in enumerate(tiles):
            img.write_tile(r, c, image[r * 32:(r + 1) * 32, c * 32:(c + 1) * 32])
            if k == 11:
                w.checkpoint()
                shutil.copy(path, tmp_path / "mid.tif")  # what a crash here would leave
                written = set(tiles[:12])
        assert w.checkpoints >= 2
    for name in ("out.tif", "mid.tif"):
        p = tmp_path / name
        expected = image.copy()
        if name == "mid.tif":
            for r in range(4):
                for c in range(5):
                    if (r, c) not in written:  # blank tiles (the default missing-tile policy)
                        expected[r * 32:(r + 1) * 32, c * 32:(c + 1) * 32] = 0
        with tiffio.open(p) as tif:
            got = tif.ifds[0].asarray()
        assert numpy.array_equal(got, expected), name
        assert numpy.array_equal(tifffile.imread(p), expected), name
        assert numpy.array_equal(imagecodecs.tiff_decode(p.read_bytes()), expected), name
        assert numpy.array_equal(_gdal(p), expected), name
