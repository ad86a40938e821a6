"""Regions, levels, chunked passes and concurrency (issue 3), on every fixture."""

from __future__ import annotations

import csv
import logging
import warnings
import weakref

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiffio
from tests.support.paths import FIXTURES
from tests.support.threads import run_in_threads

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")
logging.getLogger("tifffile").setLevel(logging.CRITICAL)

ROWS = list(csv.DictReader((FIXTURES / "MANIFEST.tsv").open(), delimiter="\t"))


def _decodable(path):
    try:
        with tiffio.open(path) as tif:
            tif.ifds[0].asarray()
        return True
    except tiffio.UnsupportedFeatureError:
        return False


PATHS = [FIXTURES / r["path"] for r in ROWS]
PATHS = [p for p in PATHS if _decodable(p)]


def _expected(full, ifd, z, y, x, d, h, w, fill):
    """asarray() cut to the window, with out-of-image parts filled."""
    sep = ifd.is_separate
    vol = ifd.depth > 1
    arr = full
    if sep:
        arr = numpy.moveaxis(arr, 0, -1)  # (..., y, x, s)
    if not vol:
        arr = arr[None]
    has_s = arr.ndim == 4
    if not has_s:
        arr = arr[..., None]
    out = numpy.full((d, h, w, arr.shape[-1]), fill, arr.dtype)
    z0, y0, x0 = max(z, 0), max(y, 0), max(x, 0)
    z1, y1, x1 = min(z + d, ifd.depth), min(y + h, ifd.length), min(x + w, ifd.width)
    if z0 < z1 and y0 < y1 and x0 < x1:
        out[z0 - z: z1 - z, y0 - y: y1 - y, x0 - x: x1 - x] = arr[z0:z1, y0:y1, x0:x1]
    if not has_s:
        out = out[..., 0]
    if not vol:
        out = out[0]
    if sep:
        out = numpy.moveaxis(out, -1, 0)
    return out


@pytest.mark.parametrize("path", PATHS, ids=[str(p.relative_to(FIXTURES)) for p in PATHS])
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_windows_equal_asarray(path, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
        with tiffio.open(path) as tif:
            ifd = tif.ifds[0]
            full = ifd.asarray(fill=0)
            H, W, D = ifd.length, ifd.width, ifd.depth
            y = data.draw(st.integers(-8, H - 1))
            x = data.draw(st.integers(-8, W - 1))
            h = data.draw(st.integers(1, H + 16))
            w = data.draw(st.integers(1, W + 16))
            z, d = 0, D
            if D > 1:
                z = data.draw(st.integers(0, D - 1))
                d = data.draw(st.integers(1, D - z))
            workers = data.draw(st.sampled_from([1, 2, 4]))
            got = ifd.read_region(y, x, h, w, z=z, depth=d, fill=0, workers=workers)
            exp = _expected(full, ifd, z, y, x, d, h, w, 0)
            assert got.shape == exp.shape and got.dtype == exp.dtype
            assert numpy.array_equal(got, exp, equal_nan=got.dtype.kind in "fc")


TILED = [p for p in PATHS if tifffile.TiffFile(p).pages[0].is_tiled]


@pytest.mark.parametrize("path", TILED, ids=[str(p.relative_to(FIXTURES)) for p in TILED])
def test_windows_equal_tifffile_zarr_store(path):
    zarr = pytest.importorskip("zarr")
    rng = numpy.random.default_rng(0)
    with tifffile.TiffFile(path) as tf, tiffio.open(path) as tif:
        page = tf.pages[0]
        try:
            store = zarr.open(page.aszarr(), mode="r")
        except Exception as exc:  # pragma: no cover - tifffile cannot build a store
            pytest.skip(f"tifffile's zarr store: {exc}")
        ifd = tif.ifds[0]
        for _ in range(5):
            y = int(rng.integers(0, ifd.length))
            x = int(rng.integers(0, ifd.width))
            h = int(rng.integers(1, ifd.length - y + 1))
            w = int(rng.integers(1, ifd.width - x + 1))
            got = ifd.read_region(y, x, h, w)
            if ifd.depth > 1:
                continue
            try:
                ref = store[:, y:y + h, x:x + w] if ifd.is_separate else store[y:y + h, x:x + w]
            except Exception as exc:
                pytest.skip(f"tifffile's zarr store cannot read it: {exc}")
            assert numpy.array_equal(got, numpy.asarray(ref), equal_nan=got.dtype.kind in "fc")


def test_sixteen_threads_share_one_file():
    path = FIXTURES / "gdal" / "cog_jpeg_rgb.tif"
    rng = numpy.random.default_rng(1)
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        windows = [(int(rng.integers(0, ifd.length - 1)), int(rng.integers(0, ifd.width - 1)),
                    int(rng.integers(1, 120)), int(rng.integers(1, 120))) for _ in range(160)]
        expected = [ifd.read_region(*w, workers=1) for w in windows]
        results: dict[int, numpy.ndarray] = {}

        def reader(k):
            for i in range(k, len(windows), 16):
                results[i] = ifd.read_region(*windows[i], workers=2)

        errors = run_in_threads(reader, 16)
        assert not errors, errors[:3]
        for i, exp in enumerate(expected):
            assert numpy.array_equal(results[i], exp)


@pytest.mark.parametrize("name,levels", [
    ("tifffile/pyramid_subifds.tif", None),
    ("libvips/pyramid_jpeg_subifds.tif", None),
    ("libvips/pyramid_jpeg_pages.tif", None),
    ("gdal/rgb_ycbcr_jpeg_tiled_ovr.tif", None),
    ("gdal/cog_jpeg_rgb.tif", None),
])
def test_levels_match_tifffile_series(name, levels):
    path = FIXTURES / name
    with tifffile.TiffFile(path) as tf, tiffio.open(path) as tif:
        ref_levels = tf.series[0].levels
        got = tif.levels
        assert [lv.shape for lv in got] == [lvl.shape for lvl in ref_levels]
        assert got[0].downsample == (1.0, 1.0)
        for k, (lv, ref) in enumerate(zip(got, ref_levels)):
            assert lv.index == k
            h, w = lv.shape[0], lv.shape[1]
            assert lv.downsample == (got[0].shape[0] / h, got[0].shape[1] / w)
            y, x = h // 3, w // 4
            region = tif.read_region(y, x, h // 2, w // 2, level=k)
            assert numpy.array_equal(region, ref.asarray()[y: y + h // 2, x: x + w // 2])


def test_masks_kept_apart_from_levels():
    with tiffio.open(FIXTURES / "gdal" / "rgb_ycbcr_jpeg_mask.tif") as tif:
        assert tif.masks, "the GDAL internal mask is found"
        assert all(m not in [lv.ifd for lv in tif.levels] for m in tif.masks)
        assert all(m.new_subfile_type & 4 for m in tif.masks)


def test_iter_regions_halo_and_cover():
    path = FIXTURES / "gdal" / "u16_tiled_deflate_pred2_ovr.tif"
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        full = ifd.asarray()
        covered = numpy.zeros(full.shape[:2], int)
        for win, arr in ifd.iter_regions((37, 50), overlap=5):
            assert numpy.array_equal(arr, full[win.y: win.y + win.height, win.x: win.x + win.width])
            ys, xs = win.core
            covered[win.y + ys.start: win.y + ys.stop, win.x + xs.start: win.x + xs.stop] += 1
            assert win.y == max(0, win.y + ys.start - 5)
        assert (covered == 1).all()


def test_memmap_and_refusal(tmp_path):
    data = numpy.arange(60 * 70 * 3, dtype=">u2").reshape(60, 70, 3)
    tifffile.imwrite(tmp_path / "a.tif", data, rowsperstrip=7, byteorder=">")
    with tiffio.open(tmp_path / "a.tif") as tif:
        mm = tif.ifds[0].memmap()
        assert isinstance(mm, numpy.memmap) and mm.shape == (60, 70, 3)
        assert numpy.array_equal(mm, data)
        assert not mm.flags.writeable
    tifffile.imwrite(tmp_path / "b.tif", data, compression="zlib")
    with tiffio.open(tmp_path / "b.tif") as tif:
        with pytest.raises(tiffio.TiffUsageError, match="compressed"):
            tif.ifds[0].memmap()
    with tiffio.open((tmp_path / "a.tif").read_bytes()) as tif:
        with pytest.raises(tiffio.TiffUsageError, match="local file"):
            tif.ifds[0].memmap()


def test_read_after_close_raises_usage_error():
    tif = tiffio.open(FIXTURES / "gdal" / "cog_jpeg_rgb.tif")
    ifd = tif.ifds[0]
    tif.close()
    with pytest.raises(tiffio.TiffUsageError):
        ifd.read_region(0, 0, 10, 10)
    with pytest.raises(tiffio.TiffUsageError):
        ifd.read_segment(0)
    with pytest.raises(tiffio.TiffUsageError):
        tif.ifds[0]


def test_close_releases_decode_buffers():
    # read_region keeps one decode buffer per thread and segment shape; close() drops
    # them at once rather than when the IFD happens to be garbage-collected
    tif = tiffio.open(FIXTURES / "gdal" / "cog_jpeg_rgb.tif")
    ifd = tif.ifds[0]
    ifd.read_region(0, 0, 300, 280, workers=1)
    refs = [weakref.ref(buf) for buf in ifd._local.buffers.values()]
    assert refs and all(ref() is not None for ref in refs)
    assert hasattr(ifd._local, "read_view")  # the reusable read buffer of this thread
    tif.close()
    assert all(ref() is None for ref in refs)
    assert not hasattr(ifd._local, "read_view")  # the reusable read buffer went with them


def test_region_argument_errors():
    with tiffio.open(FIXTURES / "gdal" / "cog_jpeg_rgb.tif") as tif:
        ifd = tif.ifds[0]
        with pytest.raises(tiffio.TiffValueError):
            ifd.read_region(0, 0, 0, 10)
        with pytest.raises(tiffio.TiffValueError):
            ifd.read_region(0.5, 0, 10, 10)
        with pytest.raises(tiffio.TiffValueError):
            ifd.read_region(0, 0, 10, 10, out=numpy.zeros((5, 5, 3), numpy.uint8))
        with pytest.raises(tiffio.TiffIndexError):
            tif.read_region(0, 0, 10, 10, level=99)
        out = numpy.zeros((10, 12, 3), ifd.dtype)
        assert ifd.read_region(3, 4, 10, 12, out=out) is out
        assert numpy.array_equal(out, ifd.asarray()[3:13, 4:16])
