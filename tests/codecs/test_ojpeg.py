"""Old-style JPEG (compression 6) mapped to JPEG streams, against libtiff.

tifffile decodes none of these two files. libtiff's RGBA interface (imagecodecs.tiff_decode)
applies ReferenceBlackWhite to the YCbCr samples; tiffio, like libjpeg (and tifffile for
new-style JPEG), converts full-range YCbCr, so the comparison rescales by
ReferenceBlackWhite where it is not (0, 255)."""

from __future__ import annotations

import numpy
import pytest

import tiffio
from tests.support.paths import CORPUS

pytestmark = pytest.mark.crossval

imagecodecs = pytest.importorskip("imagecodecs")


def _psnr(a, b):
    mse = numpy.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * numpy.log10(255.0**2 / mse)


@pytest.mark.parametrize("name,how", [
    ("gdal/autotest/gcore/data/zackthecat.tif", "tables rebuilt from JPEGQTables/DCTables/ACTables (tiled)"),
    ("image-tiff/tests/libtiffpic/smallliz.tif", "JPEGInterchangeFormat stream holding the strip"),
    ("Pillow/Tests/images/old-style-jpeg-compression.tif", "strip is a complete stream"),
])
def test_old_style_jpeg_matches_libtiff(name, how):
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"shared corpus file {name} not found")
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert ifd.compression == tiffio.Compression.OJPEG
        got = ifd.asarray()
        rbw = ifd.get("ReferenceBlackWhite")
    ref = imagecodecs.tiff_decode(path.read_bytes())
    assert got.shape == ref.shape and got.dtype == ref.dtype
    # ReferenceBlackWhite is RATIONAL in the spec; some writers store integers; absent means (0, 255)
    values = [v[0] / v[1] if isinstance(v, tuple) else v for v in (rbw or (0, 255))]
    black, white = values[0], values[1]
    if (black, white) != (0, 255):
        # libtiff expands luma from [black, white] to [0, 255]; do the same to ours, per channel
        got = numpy.clip((got.astype(float) - black) * 255.0 / (white - black), 0, 255)
    assert _psnr(got, ref) > 38, how
