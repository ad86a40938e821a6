"""ImageJ, OME-TIFF and GeoTIFF written by tiffio, read by tifffile and GDAL (issue 15).

* ImageJ hyperstacks: tifffile reads the same series shape, axes, ImageJ metadata,
  resolution and pixels as from its own ``imagej=True`` file; planes written in any
  order, by several processes, give the same file;
* OME-TIFF: tifffile reads shape, axes, channel names and the SubIFD pyramid
  (NewSubfileType 1), the XML validates against the OME schema (ome-types);
* GeoTIFF: rasterio reads the CRS, transform, nodata and metadata tiffio wrote, and tiffio
  reads what GDAL (rasterio) wrote with rasterio's values.
"""

from __future__ import annotations

import subprocess
import sys

import numpy
import pytest

import tiffio
from tests.support.paths import REPO
from tiffio.metadata import GeoTiff
from tiffio.writer.imagej import ImageJWriter, write_imagej, write_imagej_plane
from tiffio.writer.ome import write_ome

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")
RNG = numpy.random.default_rng(150)

IMAGEJ_CASES = [((3, 4, 2, 32, 40), "uint16", "TZCYX"), ((5, 16, 24), "uint8", "ZYX"),
                ((3, 16, 24, 3), "uint8", "TYXS"), ((3, 16, 24), "float32", "CYX"), ((16, 24), "uint16", "YX")]


@pytest.mark.parametrize(("shape", "dtype", "axes"), IMAGEJ_CASES)
def test_imagej_read_by_tifffile_like_its_own(tmp_path, shape, dtype, axes):
    data = RNG.integers(0, 200, shape).astype(dtype)
    ours, theirs = tmp_path / "ours.tif", tmp_path / "theirs.tif"
    write_imagej(ours, data, axes=axes, resolution=(2.0, 3.0), unit="um", spacing=2.5, finterval=0.5,
                 labels=["x", "y"], ranges=(0.0, 100.0))
    tifffile.imwrite(theirs, data, imagej=True, resolution=(2.0, 3.0), photometric="rgb" if "S" in axes else None,
                     metadata={"axes": axes, "spacing": 2.5, "unit": "um", "finterval": 0.5, "Labels": ["x", "y"],
                               "Ranges": (0.0, 100.0)})
    with tifffile.TiffFile(ours) as a, tifffile.TiffFile(theirs) as b:
        assert a.is_imagej and not a.is_bigtiff
        sa, sb = a.series[0], b.series[0]
        assert (sa.kind, sa.shape, sa.axes, sa.dtype) == (sb.kind, sb.shape, sb.axes, sb.dtype)
        numpy.testing.assert_array_equal(sa.asarray(), data.reshape(sb.shape))
        assert str(a.imagej_metadata) == str(b.imagej_metadata)
        pa, pb = a.pages[0], b.pages[0]
        assert (pa.resolution, pa.resolutionunit) == (pb.resolution, pb.resolutionunit)
        assert pa.compression == 1 and not pa.is_tiled and pa.is_contiguous
        assert len(a.pages) == len(b.pages)
    with tiffio.open(ours) as tif:
        s = tif.series[0]
        assert s.kind == "imagej" and s.is_contiguous and s.shape == data.shape
        numpy.testing.assert_array_equal(s.asarray(), data)
        meta = tif.imagej_metadata
        assert meta.spacing == 2.5 and meta.unit == "um" and meta.finterval == 0.5 and meta.labels == ["x", "y"]


_WORKER = """
import sys
import numpy
from tiffio.writer.imagej import write_imagej_plane
planes = numpy.random.default_rng(3).integers(0, 60000, (20, 24, 32)).astype("uint16")
for i in map(int, sys.argv[2].split(",")):
    write_imagej_plane(sys.argv[1], i, planes[i])
"""


def test_imagej_planes_in_any_order_from_processes(tmp_path):
    path = str(tmp_path / "stack.tif")
    planes = numpy.random.default_rng(3).integers(0, 60000, (20, 24, 32)).astype("uint16")
    with ImageJWriter(path, (4, 5, 24, 32), "uint16", axes="TZYX") as w:
        assert w.plane_offset(3) == w.data_offset + 3 * 24 * 32 * 2
        w.write_plane(w.plane_index(t=3, z=4), planes[19])
    order = numpy.random.default_rng(4).permutation(19).tolist()
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, path, ",".join(map(str, part))], cwd=REPO)
             for part in (order[0::2], order[1::2])]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    numpy.testing.assert_array_equal(tifffile.imread(path), planes.reshape(4, 5, 24, 32))
    with pytest.raises(tiffio.TiffValueError, match="plane 20 out of range"):
        write_imagej_plane(path, 20, planes[0])
    with pytest.raises(tiffio.TiffValueError, match="uint8"):
        write_imagej_plane(path, 0, planes[0].astype("uint8"))


def test_imagej_rejects_what_fiji_cannot_read(tmp_path):
    with pytest.raises(tiffio.TiffValueError, match="uint8, uint16, int16 or float32"):
        ImageJWriter(tmp_path / "a.tif", (4, 4), "float64")
    with pytest.raises(tiffio.TiffValueError, match="RGB images are uint8"):
        ImageJWriter(tmp_path / "a.tif", (4, 4, 3), "uint16", axes="YXS")


@pytest.mark.parametrize(("shape", "axes", "sub", "compression"), [
    ((2, 3, 4, 64, 80), "TCZYX", 2, "zlib"),
    ((100, 120, 3), "YXS", 1, None),
    ((3, 64, 64), "CYX", 0, None),
])
def test_ome_read_by_tifffile_and_schema(tmp_path, shape, axes, sub, compression):
    data = RNG.integers(0, 200, shape).astype("uint8")
    path = tmp_path / "x.ome.tif"
    names = ["DAPI", "GFP", "RFP"]
    xml = write_ome(path, data, axes, subresolutions=sub, tile=(32, 32), compression=compression,
                    channel_names=names, physical_size={"X": 0.5, "Y": 0.5})
    with tifffile.TiffFile(path) as t:
        s = t.series[0]
        assert (s.kind, s.shape, s.axes) == ("ome", shape, axes)
        numpy.testing.assert_array_equal(s.asarray(), data)
        assert len(s.levels) == sub + 1
        for k, level in enumerate(s.levels[1:], 1):
            assert level.shape[-2 - (axes[-1] == "S"):][:2] == tuple(-(-n // 2 ** k) for n in data.shape[-2 - (axes[-1] == "S"):][:2])
            assert level.keyframe.subfiletype == 1
        if "C" in axes:
            assert 'Name="DAPI"' in t.ome_metadata
    with tiffio.open(path) as tif:
        s = tif.series[0]
        assert (s.shape, s.axes, len(s.levels)) == (shape, axes, sub + 1)
        ome = tif.ome_metadata
        if "C" in axes:
            assert ome.images[0].channel_names == names
        assert ome.images[0].physical_sizes["X"] == 0.5
    ome_types = pytest.importorskip("ome_types", reason="ome-types ships the OME schema")
    ome_types.validate_xml(xml)


# --- GeoTIFF ----------------------------------------------------------------------------------
rasterio = pytest.importorskip("rasterio")
CASES = [("EPSG:32633", (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)),
         ("EPSG:4326", (0.01, 0.0, 10.0, 0.0, -0.01, 50.0)),
         ("EPSG:3857", (5.0, 1.0, 100.0, 0.5, -5.0, 200.0))]


@pytest.mark.parametrize(("crs", "transform"), CASES)
def test_geotiff_written_by_gdal_read_by_tiffio(tmp_path, crs, transform):
    from rasterio.transform import Affine
    path = tmp_path / "gdal.tif"
    data = RNG.integers(0, 100, (2, 50, 60)).astype("int16")
    with rasterio.open(path, "w", driver="GTiff", width=60, height=50, count=2, dtype="int16", crs=crs,
                       transform=Affine(*transform), nodata=-9999) as ds:
        ds.write(data)
        ds.update_tags(AREA="x")
        ds.update_tags(1, FOO="bar")
    with rasterio.open(path) as ds:
        want = (ds.crs.to_epsg(), tuple(ds.transform)[:6], ds.nodata, ds.tags(1)["FOO"])
    with tiffio.open(path) as tif:
        geo = tif.ifds[0].geotiff
    assert (geo.epsg, geo.transform, geo.nodata, geo.band_metadata[0]["FOO"]) == want
    assert geo.metadata["AREA"] == "x"


@pytest.mark.parametrize(("crs", "transform"), CASES)
@pytest.mark.parametrize("point", [False, True])
def test_geotiff_written_by_tiffio_read_by_gdal(tmp_path, crs, transform, point):
    path = tmp_path / "tiffio.tif"
    epsg = int(crs.split(":")[1])
    geo = GeoTiff(epsg=epsg, transform=transform, nodata=-1.5, pixel_is_point=point)
    data = RNG.random((40, 48)).astype("float32")
    with tiffio.TiffWriter(path) as w:
        img = w.add_image(data.shape, data.dtype, tile=(16, 16), extratags=geo.to_tags())
        for r in range(3):
            for c in range(3):
                img.write_tile(r, c, data[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16])
    with rasterio.open(path) as ds:
        assert ds.crs.to_epsg() == epsg
        numpy.testing.assert_allclose(tuple(ds.transform)[:6], transform, rtol=0, atol=1e-9)
        assert ds.nodata == -1.5
        assert ds.tags()["AREA_OR_POINT"] == ("Point" if point else "Area")
        numpy.testing.assert_array_equal(ds.read(1), data)
    with tiffio.open(path) as tif:
        back = tif.ifds[0].geotiff
        assert (back.epsg, back.transform, back.nodata, back.pixel_is_point) == (epsg, transform, -1.5, point)
