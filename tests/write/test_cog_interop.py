"""COGs made by tiffio.relayout: accepted by GDAL's validator, read identically by tiffio,
tifffile, libtiff (imagecodecs.tiff_decode, tiffinfo), GDAL (rasterio) and libvips (pyvips)."""

from __future__ import annotations

import shutil
import subprocess
import warnings

import imagecodecs
import numpy
import pytest
import tifffile

import tiffio
from tests.support.cog_helpers import gdal_validate
from tiffio.read.cogcheck import check_cog
from tiffio.writer.relayout import relayout

pytestmark = pytest.mark.crossval

rasterio = pytest.importorskip("rasterio")

try:
    import pyvips
except Exception:  # pragma: no cover - libvips not installable here
    pyvips = None


def _smooth_rgb(height, width):
    y, x = numpy.mgrid[0:height, 0:width]
    return numpy.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1).astype("uint8")


def _write_pyramid(path, base, *, comp, tile=(128, 128), **kwargs):
    levels = [base]
    while max(levels[-1].shape[:2]) > tile[0]:
        levels.append(numpy.ascontiguousarray(levels[-1][::2, ::2]))
    with tiffio.TiffWriter(path, **kwargs.pop("writer", {})) as w:
        for k, lv in enumerate(levels):
            im = w.add_image(lv.shape, lv.dtype, tile=tile, compression=comp, reduced=k > 0, **kwargs)
            th, tw = tile
            for r in range(im.tiles_down):
                for c in range(im.tiles_across):
                    im.write_tile(r, c, lv[r * th:(r + 1) * th, c * tw:(c + 1) * tw])
    return levels


def _gdal_read(path, level):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {} if level == 0 else {"overview_level": level - 1}
        with rasterio.open(path, **kwargs) as ds:
            return numpy.moveaxis(ds.read(), 0, -1)


def _all_readers(path, nlevels):
    """{reader: [level arrays]} for every reader present."""
    out = {}
    with tiffio.open(path) as tif:
        out["tiffio"] = [lv.ifd.asarray() for lv in tif.levels]
    with tifffile.TiffFile(path) as tf:
        out["tifffile"] = [lv.asarray() for lv in tf.series[0].levels]
    data = open(path, "rb").read()
    out["libtiff"] = [imagecodecs.tiff_decode(data, index=k) for k in range(nlevels)]
    out["gdal"] = [_gdal_read(path, k) for k in range(nlevels)]
    if pyvips is not None:
        vips = []
        for k in range(nlevels):
            im = pyvips.Image.new_from_file(str(path), page=k, access="sequential")
            vips.append(numpy.ndarray(buffer=im.write_to_memory(), dtype=numpy.uint8 if im.format == "uchar"
                                      else numpy.uint16, shape=(im.height, im.width, im.bands)))
        out["libvips"] = vips
    for name, arrays in out.items():
        assert len(arrays) == nlevels, name
        out[name] = [a.reshape(a.shape[:2]) if a.ndim == 3 and a.shape[2] == 1 else a for a in arrays]
    return out


@pytest.mark.parametrize("bigtiff", [False, True])
def test_cog_deflate_every_reader(tmp_path, bigtiff):
    base = numpy.random.default_rng(1).integers(0, 60000, (700, 600)).astype("uint16")
    src = tmp_path / "work.tif"
    levels = _write_pyramid(src, base, comp="deflate", predictor=True)
    ok, out = gdal_validate(src)
    assert not ok and "should be" in out  # the working layout is not a COG, and GDAL says so
    dst = tmp_path / "cog.tif"
    relayout(src, dst, bigtiff=bigtiff)
    ok, out = gdal_validate(dst)
    assert ok, out
    assert check_cog(dst) == []
    got = _all_readers(dst, len(levels))
    for name, arrays in got.items():
        for k, (a, b) in enumerate(zip(arrays, levels)):
            numpy.testing.assert_array_equal(a, b, err_msg=f"{name} level {k}")
    if shutil.which("tiffinfo"):
        r = subprocess.run(["tiffinfo", "-D", str(dst)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "rror" not in r.stderr, r.stderr
        assert r.stdout.count("TIFF Directory at offset") == len(levels)


def test_cog_jpeg_every_reader(tmp_path):
    base = _smooth_rgb(900, 700)
    src = tmp_path / "work.tif"
    levels = _write_pyramid(src, base, comp="jpeg")
    dst = tmp_path / "cog.tif"
    relayout(src, dst)
    ok, out = gdal_validate(dst)
    assert ok, out
    got = _all_readers(dst, len(levels))
    ref = got["tiffio"]
    for k, lv in enumerate(levels):
        assert ref[k].shape == lv.shape
        assert numpy.abs(ref[k].astype(int) - lv).mean() < 2  # JPEG q75 of a smooth image
    for name in ("tifffile", "libtiff"):  # the same libjpeg-turbo: identical
        for k in range(len(levels)):
            numpy.testing.assert_array_equal(got[name][k], ref[k], err_msg=f"{name} level {k}")
    for name in ("gdal", "libvips"):  # other JPEG builds: chroma upsampling may differ slightly
        for k in range(len(levels) if name in got else 0):
            assert got[name][k].shape == ref[k].shape
            assert numpy.abs(got[name][k].astype(int) - ref[k]).max() <= 6, (name, k)


def test_gdal_geotiff_with_overviews_to_cog(tmp_path):
    """A GDAL-written tiled GeoTIFF + internal overviews (gdaladdo style): not a COG; relayout makes
    one with the georeferencing and every pixel unchanged."""
    from rasterio.enums import Resampling
    from rasterio.transform import from_origin

    src = tmp_path / "gdal.tif"
    data = numpy.random.default_rng(2).integers(0, 255, (3, 700, 650)).astype("uint8")
    transform = from_origin(500000.0, 4100000.0, 10.0, 10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(src, "w", driver="GTiff", width=650, height=700, count=3, dtype="uint8",
                           crs="EPSG:32633", transform=transform, tiled=True, blockxsize=256, blockysize=256,
                           compress="deflate", nodata=7) as ds:
            ds.write(data)
            ds.build_overviews([2, 4], Resampling.nearest)
    ok, out = gdal_validate(src)
    assert not ok, out
    dst = tmp_path / "cog.tif"
    report = relayout(src, dst)
    assert report.levels == 3
    ok, out = gdal_validate(dst)
    assert ok, out
    assert check_cog(dst) == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(src) as a, rasterio.open(dst) as b:
            assert b.crs == a.crs and b.transform == a.transform and b.nodata == 7
            assert b.overviews(1) == a.overviews(1) == [2, 4]
            numpy.testing.assert_array_equal(b.read(), a.read())
        for k in (1, 2):
            numpy.testing.assert_array_equal(_gdal_read(dst, k), _gdal_read(src, k))
    with tiffio.open(src) as a, tiffio.open(dst) as b:
        for code in (33550, 33922, 34735, 42113):
            assert b.ifds[0].tags[code].value == a.ifds[0].tags[code].value


def test_gdal_cog_relayout_is_identical_in_content(tmp_path):
    """A COG written by GDAL's COG driver, relaid out by tiffio: still valid, same tiles."""
    src = tmp_path / "gdal_cog.tif"
    data = numpy.random.default_rng(3).integers(0, 255, (900, 800)).astype("uint8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(src, "w", driver="COG", width=800, height=900, count=1, dtype="uint8",
                           compress="lzw", blocksize=256) as ds:
            ds.write(data[None])
    ok, out = gdal_validate(src)
    assert ok, out
    dst = tmp_path / "cog.tif"
    relayout(src, dst)
    ok, out = gdal_validate(dst)
    assert ok, out
    with tiffio.open(src) as a, tiffio.open(dst) as b:
        assert len(a.levels) == len(b.levels) > 1
        for la, lb in zip(a.levels, b.levels):
            for i in range(la.ifd.segment_count):
                assert la.ifd.read_segment_bytes(i) == lb.ifd.read_segment_bytes(i)


def test_merged_shards_as_cog(tmp_path):
    """Shards of a JPEG pyramid merged straight into a COG: GDAL's validator accepts it; every
    reader sees the image the shards hold."""
    base = _smooth_rgb(600, 520)
    plan = tiffio.Plan.create(base.shape, "uint8", workers=2, levels=3, tile=(128, 128), compression="jpeg")
    levels = [base]
    for k in range(1, 3):
        levels.append(numpy.ascontiguousarray(levels[-1][::2, ::2]))
        assert levels[-1].shape == plan.level_shape(k)
    shards = [str(tmp_path / f"s{w}.tif") for w in range(2)]
    for w in range(2):
        with plan.open_shard(shards[w], fsync=False) as writer:
            for k, im in enumerate(writer.images):
                for r, c in plan.tiles(w, k):
                    im.write_tile(r, c, levels[k][r * 128:(r + 1) * 128, c * 128:(c + 1) * 128])
    dst = tmp_path / "cog.tif"
    report = tiffio.merge(dst, shards, layout="cog")
    assert report.levels == 3 and report.sparse_tiles == 0
    ok, out = gdal_validate(dst)
    assert ok, out
    assert check_cog(dst) == []
    got = _all_readers(dst, 3)
    for name in ("tifffile", "libtiff"):
        for k in range(3):
            numpy.testing.assert_array_equal(got[name][k], got["tiffio"][k], err_msg=f"{name} level {k}")
    for k in range(3):
        assert numpy.abs(got["tiffio"][k].astype(int) - levels[k]).mean() < 2
        assert numpy.abs(got["gdal"][k].astype(int) - got["tiffio"][k]).max() <= 6


def test_gdal_cog_with_mask_relayout(tmp_path):
    """A GDAL COG with an internal mask (per-dataset mask, NewSubfileType 4/5): relayout keeps the
    masks, interleaved with their image tiles as GDAL does (MASK_INTERLEAVED_WITH_IMAGERY=YES)."""
    import subprocess as sp

    if not shutil.which("gdal_translate"):
        pytest.skip("gdal_translate (Debian gdal-bin) is absent; .ci/run installs it")
    src = tmp_path / "masked.tif"
    data = numpy.random.default_rng(4).integers(1, 255, (3, 700, 650)).astype("uint8")
    mask = numpy.full((700, 650), 255, "uint8")
    mask[:100, :130] = 0
    with warnings.catch_warnings(), rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        warnings.simplefilter("ignore")
        with rasterio.open(src, "w", driver="GTiff", width=650, height=700, count=3, dtype="uint8", tiled=True,
                           blockxsize=256, blockysize=256) as ds:
            ds.write(data)
            ds.write_mask(mask)
    gcog = tmp_path / "gdal_cog.tif"
    sp.run(["gdal_translate", "-q", "-of", "COG", "-co", "BLOCKSIZE=256", "-co", "COMPRESS=DEFLATE", str(src),
            str(gcog)], check=True, timeout=300)
    dst = tmp_path / "cog.tif"
    relayout(gcog, dst)
    ok, out = gdal_validate(dst)
    assert ok, out
    assert check_cog(dst) == []
    assert b"MASK_INTERLEAVED_WITH_IMAGERY=YES" in open(dst, "rb").read(300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(gcog) as a, rasterio.open(dst) as b:
            numpy.testing.assert_array_equal(b.read(), a.read())
            numpy.testing.assert_array_equal(b.read_masks(1), a.read_masks(1))
            numpy.testing.assert_array_equal(b.read_masks(1), mask)
            assert b.overviews(1) == a.overviews(1)
    with tiffio.open(gcog) as a, tiffio.open(dst) as b:
        assert [d.new_subfile_type for d in b.ifds] == [d.new_subfile_type for d in a.ifds]
        for da, db in zip(a.ifds, b.ifds):
            for i in range(da.segment_count):
                assert da.read_segment_bytes(i) == db.read_segment_bytes(i)
