"""IFD.exif / .xmp / .resolution / .icc_profile and TiffFile.imagej_metadata / .ome_metadata on
real files, against tifffile's values (issue 15)."""

from __future__ import annotations

import struct

import numpy
import pytest

import tiffio
from tests.support.paths import CORPUS, FIXTURES

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")


def test_exif_xmp_resolution_of_pillow_file():
    path = FIXTURES / "corpus" / "Pillow" / "Tests" / "images" / "lab.tif"
    with tifffile.TiffFile(path) as t:
        page = t.pages[0]
        want_exif = page.tags[34665].value
        want_xmp = bytes(page.tags[700].value).decode("utf-8")
        want_res = page.resolution
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert ifd.exif == want_exif
        assert ifd.xmp == want_xmp.rstrip("\x00") and ifd.xmp.startswith("<?xpacket")
        assert (ifd.resolution.x, ifd.resolution.y, ifd.resolution.unit) == (*want_res, "inch")


def test_exif_and_gps_of_gdal_file():
    path = CORPUS / "gdal" / "autotest" / "gcore" / "data" / "exif_and_gps.tif"
    if not path.exists():
        pytest.skip(f"corpus file {path} absent")
    with tiffio.open(path) as tif:
        exif = tif.ifds[0].exif
    assert exif["SpectralSensitivity"] == "EXIF Spectral Sensitivity"
    assert exif["GPS"]["GPSLatitudeRef"] == "S" and exif["GPS"]["GPSLatitude"] == ((77, 1), (5, 1), (60, 1))


def test_icc_profile_and_imagej_ome_metadata(tmp_path):
    icc = bytearray(200)
    struct.pack_into(">I4sI4s4s4s", icc, 0, 200, b"lcms", 0x04300000, b"mntr", b"RGB ", b"XYZ ")
    icc[36:40] = b"acsp"
    path = tmp_path / "icc.tif"
    tifffile.imwrite(path, numpy.zeros((8, 8, 3), "uint8"), photometric="rgb", iccprofile=bytes(icc),
                     resolution=(4.0, 2.0), resolutionunit="CENTIMETER")
    with tiffio.open(path) as tif:
        prof = tif.ifds[0].icc_profile
        assert (prof.data, prof.version, prof.color_space, prof.device_class) == (bytes(icc), "4.3", "RGB", "mntr")
        assert tif.ifds[0].resolution == tiffio.metadata.Resolution(4.0, 2.0, "centimeter")
        assert tif.imagej_metadata is None and tif.ome_metadata is None and tif.ifds[0].geotiff is None
        assert tif.ifds[0].exif == {} and tif.ifds[0].xmp is None
    ij = tmp_path / "ij.tif"
    tifffile.imwrite(ij, numpy.zeros((2, 3, 8, 8), "uint16"), imagej=True,
                     metadata={"axes": "ZCYX", "unit": "um", "spacing": 0.25, "Labels": list("abcdef")})
    with tifffile.TiffFile(ij) as t:
        raw = t.imagej_metadata
    with tiffio.open(ij) as tif:
        meta = tif.imagej_metadata
        assert meta.raw == raw
        assert (meta.images, meta.channels, meta.slices, meta.unit, meta.spacing) == (6, 3, 2, "um", 0.25)
        assert meta.labels == list("abcdef")
