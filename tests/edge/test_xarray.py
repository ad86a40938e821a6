"""The xarray backend (``engine="tiffio"``) against rioxarray on GDAL-written GeoTIFFs, named
dimensions and physical coordinates of OME and ImageJ stacks, pyramids as datasets and a
DataTree, ``xr.open_zarr(TiffStore(...))``, and pickling."""

from __future__ import annotations

import csv
import pickle
import warnings

import numpy
import pytest

xr = pytest.importorskip("xarray")
rioxarray = pytest.importorskip("rioxarray")
rasterio = pytest.importorskip("rasterio")
pyproj = pytest.importorskip("pyproj")
zarr = pytest.importorskip("zarr")
tifffile = pytest.importorskip("tifffile")
pytest.importorskip("dask")

from rasterio.transform import Affine, from_origin  # noqa: E402

import tiffio  # noqa: E402
from tests.support.paths import CORPUS  # noqa: E402
from tiffio.zarr import TiffStore  # noqa: E402

pytestmark = pytest.mark.crossval

RNG = numpy.random.default_rng(24)


def _gdal_write(path, data, *, crs="EPSG:32633", transform=None, nodata=None, point=False, **options):
    """A GeoTIFF written by GDAL (through rasterio); data is (bands, rows, columns)."""
    count, height, width = data.shape
    transform = transform or from_origin(500000.0, 4000000.0, 10.0, 20.0)
    with rasterio.open(path, "w", driver="GTiff", height=height, width=width, count=count, dtype=data.dtype,
                       crs=crs, transform=transform, nodata=nodata, **options) as ds:
        ds.write(data)
        if point:
            ds.update_tags(AREA_OR_POINT="Point")
    return path


@pytest.fixture(scope="module")
def geotiffs(tmp_path_factory):
    d = tmp_path_factory.mktemp("geo")
    return {
        "u8_strips": _gdal_write(d / "u8_strips.tif", RNG.integers(0, 255, (1, 70, 90), dtype=numpy.uint8)),
        "i16_rgb_tiled": _gdal_write(d / "i16.tif", RNG.integers(-500, 500, (3, 50, 60), dtype=numpy.int16),
                                     nodata=-9999, tiled=True, blockxsize=16, blockysize=16),
        "f32_band": _gdal_write(d / "f32.tif", RNG.random((4, 40, 30), dtype=numpy.float32), nodata=numpy.nan,
                                interleave="band", compress="deflate"),
        "point": _gdal_write(d / "point.tif", RNG.integers(0, 9, (1, 20, 25), dtype=numpy.uint16), point=True,
                             nodata=7),
        "wgs84": _gdal_write(d / "wgs84.tif", RNG.integers(0, 9, (2, 18, 36), dtype=numpy.uint8), crs="EPSG:4326",
                             transform=from_origin(-180.0, 90.0, 10.0, 10.0)),
        "cog": _gdal_write(d / "cog.tif", RNG.integers(0, 200, (1, 256, 256), dtype=numpy.uint8), tiled=True,
                           blockxsize=64, blockysize=64),
    }


def _compare_with_rioxarray(ours, theirs, values=True):
    """dims, shapes, x/y coordinates, CRS, nodata and (``values``) pixels of two DataArrays."""
    assert ours.dims == theirs.dims and ours.shape == theirs.shape
    for name in ("x", "y", "band"):
        numpy.testing.assert_array_equal(ours[name].values, theirs[name].values)
    crs_ours = pyproj.CRS(ours.spatial_ref.attrs["crs_wkt"])
    assert crs_ours == pyproj.CRS(theirs.spatial_ref.attrs["crs_wkt"]) == theirs.rio.crs
    assert ours.spatial_ref.attrs["GeoTransform"] == theirs.spatial_ref.attrs["GeoTransform"]
    assert ours.rio.crs == theirs.rio.crs and ours.rio.transform() == theirs.rio.transform()
    nodata_ours, nodata_theirs = ours.attrs.get("_FillValue"), theirs.attrs.get("_FillValue")
    if nodata_theirs is None:
        assert nodata_ours is None
    else:
        numpy.testing.assert_array_equal(nodata_ours, nodata_theirs)
        assert numpy.asarray(nodata_ours).dtype == numpy.asarray(nodata_theirs).dtype
    if values:
        numpy.testing.assert_array_equal(ours.values, theirs.values)
    for key in ("AREA_OR_POINT", "scale_factor", "add_offset"):
        assert ours.attrs.get(key) == theirs.attrs.get(key), key


@pytest.mark.parametrize("name", ["u8_strips", "i16_rgb_tiled", "f32_band", "point", "wgs84", "cog"])
def test_geotiffs_equal_rioxarray(geotiffs, name):
    path = geotiffs[name]
    ours = xr.open_dataset(path, engine="tiffio")["image"]
    theirs = rioxarray.open_rasterio(path)
    _compare_with_rioxarray(ours, theirs)
    assert ours.encoding["grid_mapping"] == "spatial_ref"


def test_pixel_is_point_coordinates(geotiffs):
    """GDAL writes a PixelIsPoint tiepoint half a pixel off and reads it back shifted: the
    coordinates are those of the Area file with the same transform, as rioxarray gives them."""
    point = xr.open_dataset(geotiffs["point"], engine="tiffio")["image"]
    assert point.attrs["AREA_OR_POINT"] == "Point"
    with tiffio.open(geotiffs["point"]) as tif:
        assert tif.ifds[0].geotiff.pixel_is_point
    numpy.testing.assert_array_equal(point.x.values, 500000.0 + 10.0 * (numpy.arange(25) + 0.5))
    numpy.testing.assert_array_equal(point.y.values, 4000000.0 - 20.0 * (numpy.arange(20) + 0.5))


def _corpus_geotiffs() -> list:
    manifest = CORPUS / "manifest.tsv"
    if not manifest.exists():
        return []
    rows = csv.DictReader(manifest.open(), delimiter="\t")
    return [CORPUS / r["path"] for r in rows if r["page0_decode"] == "ok" and r["path"].startswith("gdal/")
            and int(r["size"]) < 4 << 20]


@pytest.mark.corpus
@pytest.mark.skipif(not _corpus_geotiffs(), reason="no corpus")
def test_corpus_geotiffs_equal_rioxarray():
    """Every GDAL-autotest GeoTIFF of the corpus with an EPSG-coded CRS that GDAL reads: dims,
    shapes, coordinates, CRS, nodata and values as rioxarray.open_rasterio gives them."""
    compared = 0
    for path in _corpus_geotiffs():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with tiffio.open(path) as tif:
                    s = tif.series[0] if tif.series else None
                    geo = s.keyframe.geotiff if s is not None and len(tif.series) == 1 else None
                    if geo is None or geo.transform is None or geo.epsg is None or s.npages != 1 \
                            or s.nbytes > 16 << 20:
                        continue
                    s.asarray()
                    lossy = s.keyframe.compression in (6, 7, 34712, 34887, 50001)  # JPEG, JPEG 2000, LERC, WebP
            except tiffio.TiffError:
                continue
            try:
                theirs = rioxarray.open_rasterio(path)
                theirs.load()
            except Exception:
                continue  # GDAL does not read it (or rioxarray makes no coordinates of it)
            if "spatial_ref" not in theirs.coords or "crs_wkt" not in theirs.spatial_ref.attrs \
                    or "x" not in theirs.coords \
                    or pyproj.CRS(theirs.spatial_ref.attrs["crs_wkt"]) != pyproj.CRS.from_epsg(geo.epsg):
                # no CRS, a rotated grid, or GDAL builds more than the EPSG code's CRS from the
                # GeoKeys (a TOWGS84 datum shift, overridden parameters): tiffio takes the EPSG
                # code alone (README "xarray")
                continue
            ours = xr.open_dataset(path, engine="tiffio")["image"]
            try:
                # lossy codecs: libjpeg's upsampling of YCbCr differs from GDAL's build (pixels are
                # compared with tifffile and libtiff elsewhere)
                _compare_with_rioxarray(ours, theirs, values=not lossy)
            except AssertionError as exc:
                raise AssertionError(f"{path}: {exc}") from exc
        compared += 1
    assert compared >= 20


def test_mask_and_scale_as_rioxarray(geotiffs):
    for name in ("i16_rgb_tiled", "f32_band", "point"):
        path = geotiffs[name]
        ours = xr.open_dataset(path, engine="tiffio", mask_and_scale=True)["image"]
        theirs = rioxarray.open_rasterio(path, mask_and_scale=True)
        assert ours.dtype == theirs.dtype
        numpy.testing.assert_array_equal(ours.values, theirs.values)


def test_lazy_and_chunks_honoured(geotiffs):
    path = geotiffs["i16_rgb_tiled"]
    ds = xr.open_dataset(path, engine="tiffio", chunks={})
    arr = ds["image"]
    assert arr.chunks == ((3,), (16, 16, 16, 2), (16, 16, 16, 12))  # the file's 16 x 16 tiles
    assert xr.open_dataset(path, engine="tiffio", chunks={"x": 32, "y": 20})["image"].chunks == (
        (3,), (20, 20, 10), (32, 28))
    auto = xr.open_dataset(path, engine="tiffio", chunks="auto")["image"]
    assert all(c % 16 == 0 for c in auto.chunks[1][:-1])
    lazy = xr.open_dataset(path, engine="tiffio")["image"]
    assert not isinstance(lazy.variable._data, numpy.ndarray)  # nothing read yet
    expected = rioxarray.open_rasterio(path).values
    numpy.testing.assert_array_equal(arr[:, 5:33:3, ::-2].values, expected[:, 5:33:3, ::-2])
    numpy.testing.assert_array_equal(lazy.isel(band=1, y=7).values, expected[1, 7])
    numpy.testing.assert_array_equal(lazy[:, -3:, 4].values, expected[:, -3:, 4])


def test_pickles_and_computes_elsewhere(geotiffs):
    ds = xr.open_dataset(geotiffs["cog"], engine="tiffio", chunks={"x": 64, "y": 64})
    again = pickle.loads(pickle.dumps(ds))
    numpy.testing.assert_array_equal(again["image"].values, ds["image"].values)
    plain = xr.open_dataset(geotiffs["cog"], engine="tiffio")
    numpy.testing.assert_array_equal(pickle.loads(pickle.dumps(plain))["image"].values, ds["image"].values)


# --- microscopy: named dimensions and physical coordinates ---------------------------------------------
def test_ome_dims_and_physical_coordinates(tmp_path):
    path = tmp_path / "cells.ome.tif"
    data = RNG.integers(0, 4000, (2, 3, 4, 16, 20), dtype=numpy.uint16)
    tifffile.imwrite(path, data, ome=True, metadata={
        "axes": "TCZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0, "TimeIncrement": 30.0,
        "Channel": {"Name": ["DAPI", "GFP", "RFP"]}})
    arr = xr.open_dataset(path, engine="tiffio")["image"]
    assert arr.dims == ("t", "c", "z", "y", "x") and arr.shape == data.shape
    numpy.testing.assert_array_equal(arr.values, data)
    numpy.testing.assert_allclose(arr.x.values, numpy.arange(20) * 0.25)
    numpy.testing.assert_allclose(arr.y.values, numpy.arange(16) * 0.5)
    numpy.testing.assert_allclose(arr.z.values, numpy.arange(4) * 2.0)
    numpy.testing.assert_allclose(arr.t.values, numpy.arange(2) * 30.0)
    assert list(arr.c.values) == ["DAPI", "GFP", "RFP"] and arr.x.attrs["units"] == "µm"
    numpy.testing.assert_array_equal(arr.sel(c="GFP").isel(t=1, z=2).values, data[1, 1, 2])


def test_imagej_dims_and_calibration(tmp_path):
    path = tmp_path / "hyper.tif"
    data = RNG.integers(0, 4000, (3, 5, 2, 16, 20), dtype=numpy.uint16)
    tifffile.imwrite(path, data, imagej=True, resolution=(4.0, 4.0), metadata={
        "axes": "TZCYX", "spacing": 1.5, "unit": "um", "finterval": 0.5})
    arr = xr.open_dataset(path, engine="tiffio", chunks={})["image"]
    assert arr.dims == ("t", "z", "c", "y", "x") and arr.chunks[:3] == ((1,) * 3, (1,) * 5, (1, 1))
    numpy.testing.assert_array_equal(arr.values, data)
    numpy.testing.assert_allclose(arr.z.values, numpy.arange(5) * 1.5)
    numpy.testing.assert_allclose(arr.t.values, numpy.arange(3) * 0.5)
    numpy.testing.assert_allclose(arr.x.values, numpy.arange(20) * 0.25)
    assert arr.z.attrs["units"] == "um"
    # a page selection and another series
    one = xr.open_dataset(path, engine="tiffio", key=4)["image"]
    assert one.dims == ("y", "x")
    numpy.testing.assert_array_equal(one.values, data.reshape(-1, 16, 20)[4])


def test_levels_as_datasets_and_datatree(tmp_path):
    path = tmp_path / "pyramid.ome.tif"
    data = RNG.integers(0, 4000, (2, 64, 64), dtype=numpy.uint16)
    with tifffile.TiffWriter(path, ome=True) as w:
        w.write(data, subifds=2, tile=(16, 16), metadata={"axes": "CYX"})
        w.write(data[:, ::2, ::2], subfiletype=1, tile=(16, 16))
        w.write(data[:, ::4, ::4], subfiletype=1, tile=(16, 16))
        w.write(data[0, :8, :8], metadata={"axes": "YX"})  # a second series
    for k in range(3):
        level = xr.open_dataset(path, engine="tiffio", level=k)["image"]
        assert level.dims == ("c", "y", "x") and level.shape == (2, 64 >> k, 64 >> k)
        numpy.testing.assert_array_equal(level.values, data[:, :: 1 << k, :: 1 << k])
    tree = xr.open_datatree(path, engine="tiffio")
    assert {"0", "1", "2", "series"} <= set(tree.children)
    numpy.testing.assert_array_equal(tree["1"]["image"].values, data[:, ::2, ::2])
    numpy.testing.assert_array_equal(tree["series/1/0"]["image"].values, data[0, :8, :8])
    assert tree.attrs["series"] == 2
    second = xr.open_dataset(path, engine="tiffio", series=1)["image"]
    assert second.dims == ("y", "x")


def test_open_zarr_of_a_store_has_named_dims(tmp_path):
    stack = tmp_path / "stack.tif"
    data = RNG.integers(0, 4000, (4, 3, 32, 40), dtype=numpy.uint16)
    tifffile.imwrite(stack, data, imagej=True, metadata={"axes": "TCYX"})
    ds = xr.open_zarr(TiffStore(stack), consolidated=False)
    assert ds["0"].dims == ("t", "c", "y", "x")
    numpy.testing.assert_array_equal(ds["0"].values, data)
    pyramid = tmp_path / "pyramid.tif"
    with tifffile.TiffWriter(pyramid) as w:
        w.write(data[0, 0], tile=(16, 16), subifds=1, metadata=None)
        w.write(data[0, 0, ::2, ::2], tile=(16, 16), subfiletype=1, metadata=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no consolidated-metadata warning
        ds = xr.open_zarr(TiffStore(pyramid))
    assert ds["0"].dims == ("y", "x") and ds["1"].dims == ("y1", "x1")
    numpy.testing.assert_array_equal(ds["1"].values, data[0, 0, ::2, ::2])


def test_engine_is_registered_and_guesses_tiffs():
    from tiffio.xarray import TiffBackendEntrypoint
    engines = xr.backends.list_engines()
    assert isinstance(engines["tiffio"], TiffBackendEntrypoint)
    assert engines["tiffio"].guess_can_open("a/b.ome.tiff") and not engines["tiffio"].guess_can_open("a.nc")
    with pytest.raises(tiffio.TiffValueError, match="paths and URLs"):
        TiffBackendEntrypoint().open_dataset(open(__file__, "rb"))


def test_rotated_transform_gives_2d_coordinates(tmp_path):
    path = _gdal_write(tmp_path / "rot.tif", RNG.integers(0, 9, (1, 6, 8), dtype=numpy.uint8),
                       transform=Affine(10.0, 2.0, 1000.0, 1.0, -10.0, 5000.0))
    arr = xr.open_dataset(path, engine="tiffio")["image"]
    assert arr.xc.dims == arr.yc.dims == ("y", "x") and "x" not in arr.coords
    cols, rows = numpy.meshgrid(numpy.arange(8) + 0.5, numpy.arange(6) + 0.5)
    numpy.testing.assert_allclose(arr.xc.values, 10.0 * cols + 2.0 * rows + 1000.0)
    numpy.testing.assert_allclose(arr.yc.values, 1.0 * cols - 10.0 * rows + 5000.0)
