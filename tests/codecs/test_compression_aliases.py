"""Compression codes that are other writers' names for codecs tiffio has (spec-notes/compression.md
"Aliases"): real encoded data under the alias code decodes to tifffile's pixels and to the same
pixels as under the canonical code."""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest

import tiffio
from tiffio.codecs import BYTE_DECODERS, IMAGE_DECODERS, JPEG_COMPRESSIONS

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")


def _smooth_rgb() -> numpy.ndarray:
    y, x = numpy.mgrid[0:64, 0:48]
    return numpy.stack([(x * 5) % 256, (y * 4) % 256, ((x + y) * 2) % 256], -1).astype(numpy.uint8)


def _relabel(path: Path, code: int) -> None:
    """Overwrite the Compression tag in place: the segments keep their real encoded bytes."""
    with tifffile.TiffFile(path, mode="r+b") as tf:
        for page in tf.pages:
            page.tags["Compression"].overwrite(code)


def _read(path: Path) -> numpy.ndarray:
    with tiffio.open(path) as tif:
        assert all(ifd.compression == tif.ifds[0].compression for ifd in tif.ifds)
        return tif.ifds[0].asarray()


@pytest.mark.parametrize("predictor", [False, True])
@pytest.mark.parametrize("tile", [None, (16, 16)])
def test_pixtiff_deflate_50013(tmp_path, predictor, tile):
    data = (numpy.arange(40 * 56, dtype=numpy.uint16).reshape(40, 56) * 29)
    path = tmp_path / "pixtiff.tif"
    # tifffile encodes 50013 with its Deflate encoder: a real zlib stream under the PixTIFF code
    tifffile.imwrite(path, data, compression=50013, predictor=predictor, tile=tile, rowsperstrip=7)
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert ifd.compression == tiffio.Compression.PIXTIFF == 50013
        got = ifd.asarray()
    assert got.dtype == numpy.uint16 and numpy.array_equal(got, data)
    assert numpy.array_equal(got, tifffile.imread(path))


@pytest.mark.parametrize("photometric", ["rgb", "minisblack"])
def test_bioformats_alt_jpeg_33007(tmp_path, photometric):
    data = _smooth_rgb() if photometric == "rgb" else _smooth_rgb()[..., 0].copy()
    canonical = tmp_path / "jpeg7.tif"
    alias = tmp_path / "jpeg33007.tif"
    for path in (canonical, alias):
        tifffile.imwrite(path, data, compression="jpeg", tile=(32, 32), photometric=photometric)
    _relabel(alias, 33007)
    got = _read(alias)
    assert tiffio.open(alias).ifds[0].compression == tiffio.Compression.ALT_JPEG
    assert got.shape == data.shape and got.dtype == numpy.uint8
    assert numpy.array_equal(got, _read(canonical))
    assert numpy.array_equal(got, tifffile.imread(alias))
    assert numpy.abs(got.astype(int) - data).mean() < 3  # a real decode, not zeros


def test_jpeg2000_lossy_33004(tmp_path):
    imagecodecs = pytest.importorskip("imagecodecs")
    if not imagecodecs.JPEG2K.available:
        pytest.skip("imagecodecs was built without JPEG 2000")
    data = _smooth_rgb()
    canonical = tmp_path / "j2k.tif"
    alias = tmp_path / "j2k33004.tif"
    for path in (canonical, alias):
        tifffile.imwrite(path, data, compression="jpeg2000", tile=(32, 32), photometric="rgb")
    _relabel(alias, 33004)
    got = _read(alias)
    assert numpy.array_equal(got, _read(canonical))
    assert numpy.array_equal(got, tifffile.imread(alias))


def test_every_alias_of_a_tifffile_decoder_is_decoded():
    """Each code that tifffile maps to a decoder tiffio also has (tifffile's CompressionCodec
    table, 2026.3) is decoded by tiffio; the codes tiffio leaves out need codecs it does not have."""
    aliases = {
        50013: "PixTIFF Deflate", 32946: "Deflate (old code)", 33007: "Bio-Formats JPEG",
        34892: "DNG lossy JPEG", 33003: "Aperio JPEG 2000 YCbCr", 33004: "JPEG 2000 lossy",
        33005: "Aperio JPEG 2000 RGB", 34926: "ZSTD (old code)", 34927: "WebP (old code)",
        52546: "DNG JPEG XL", 22610: "NDPI JPEG XR", 34934: "JPEG XR (ZIF)",
    }
    decoded = set(BYTE_DECODERS) | set(IMAGE_DECODERS) | set(JPEG_COMPRESSIONS)
    missing = {code: name for code, name in aliases.items() if code not in decoded}
    assert not missing, f"aliases not decoded: {missing}"


def test_unknown_code_is_still_refused(tmp_path):
    path = tmp_path / "unknown.tif"
    tifffile.imwrite(path, numpy.zeros((8, 8), numpy.uint8), compression="zlib")
    _relabel(path, 50014)
    with tiffio.open(path) as tif, pytest.raises(tiffio.UnsupportedFeatureError, match="50014"):
        tif.ifds[0].asarray()
