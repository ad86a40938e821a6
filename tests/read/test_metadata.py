"""tiffio.metadata: ImageJ, OME-XML, GeoTIFF, resolution / ICC / XMP parse and build (issue 15).

Pure functions: compared with tifffile's own implementations of the same formats where it
has one, and round-tripped otherwise. Malformed values raise TiffFormatError saying where.
"""

from __future__ import annotations

import struct

import numpy
import pytest

import tiffio
from tiffio.metadata import (
    GdalItem,
    GeoTiff,
    ImageJMetadata,
    build_imagej_description,
    build_ome_xml,
    imagej_shape,
    pack_ijmetadata,
    parse_icc_profile,
    parse_ijmetadata,
    parse_imagej_description,
    parse_ome_xml,
    parse_resolution,
    parse_xmp,
)
from tiffio.metadata.geotiff import parse_gdal_metadata, parse_geokeys

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")


# --- ImageJ -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "axes", "extra"), [
    ((51, 5, 2, 196, 171), None, {}),
    ((3, 4, 2, 32, 40), "TZCYX", {"spacing": 2.5, "unit": "um", "finterval": 0.5}),
    ((5, 16, 24), "ZYX", {"mode": "composite", "loop": True}),
    ((3, 16, 24, 3), "TYXS", {}),
    ((16, 24), "YX", {"hyperstack": False}),
])
def test_imagej_description_equals_tifffile(shape, axes, extra):
    ours = build_imagej_description(shape, axes, **extra)
    theirs = tifffile.imagej_description(shape, axes=axes, **extra)
    assert ours == theirs
    assert parse_imagej_description(ours) == tifffile.tifffile.imagej_description_metadata(theirs)


def test_imagej_shape_equals_tifffile():
    for shape, axes in [((2, 3, 4, 5, 3), None), ((4, 5), None), ((3, 16, 24, 3), "TYXS"), ((7, 8, 9), "CYX")]:
        assert imagej_shape(shape, axes) == tifffile.tifffile.imagej_shape(shape, axes=axes)
    with pytest.raises(tiffio.TiffValueError, match="TZCYXS"):
        imagej_shape((2, 3, 4), "YZX")
    with pytest.raises(tiffio.TiffValueError, match="1, 3 or 4 samples"):
        imagej_shape((2, 3, 5), "YXS")


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_ijmetadata_bytes_equal_tifffile_and_parse_back(byteorder):
    luts = [numpy.arange(768, dtype=numpy.uint16).astype(numpy.uint8).reshape(3, 256)] * 2
    meta = {"Info": "hello", "Labels": ["a", "bé"], "Ranges": (0.0, 255.0, 10.0, 20.0), "LUTs": luts,
            "ROI": b"Iout\x00\x01", "Overlays": [b"ov1", b"ov22"], "Properties": {"k": "v", "x": "y"}}
    data, counts = pack_ijmetadata(meta, byteorder)
    tags = tifffile.tifffile.imagej_metadata_tag(meta, byteorder)
    assert data == tags[0][3]
    assert struct.pack(f"{byteorder}{len(counts)}I", *counts) == tags[1][3]
    parsed = parse_ijmetadata(data, counts, byteorder)
    theirs = tifffile.tifffile.imagej_metadata(data, counts, byteorder)
    assert parsed.keys() == theirs.keys()
    for key in parsed:
        if key == "LUTs":
            for a, b in zip(parsed[key], theirs[key]):
                numpy.testing.assert_array_equal(a, b)
        else:
            assert parsed[key] == theirs[key], key
    info = ImageJMetadata.from_values("ImageJ=1.11a\nimages=6\nchannels=2\nslices=3\nunit=um\nspacing=0.5\n", parsed)
    assert (info.images, info.channels, info.slices, info.frames) == (6, 2, 3, 1)
    assert info.unit == "um" and info.spacing == 0.5 and info.labels == ["a", "bé"]
    assert info.rois == [b"Iout\x00\x01"] and info.overlays == [b"ov1", b"ov22"]
    assert info.ranges == (0.0, 255.0, 10.0, 20.0) and info.properties == {"k": "v", "x": "y"}


def test_ijmetadata_malformed():
    data, counts = pack_ijmetadata({"Info": "abc"}, "<")
    with pytest.raises(tiffio.TiffFormatError, match="IJIJ"):
        parse_ijmetadata(b"XXXX" + data[4:], counts, "<")
    with pytest.raises(tiffio.TiffFormatError, match="past the value"):
        parse_ijmetadata(data[:-2], counts, "<")
    with pytest.raises(tiffio.TiffFormatError, match="header size"):
        parse_ijmetadata(data, (4, *counts[1:]), "<")
    with pytest.raises(tiffio.TiffFormatError, match="not an ImageJ description"):
        parse_imagej_description("images=3\n")


# --- OME-XML ----------------------------------------------------------------------------------
def test_ome_xml_build_parse_and_schema():
    xml = build_ome_xml([
        {"shape": (2, 3, 4, 16, 24), "axes": "TCZYX", "dtype": "uint16", "ifd": 0, "name": "cells",
         "channel_names": ["DAPI", "GFP", "RFP"], "physical_size": {"X": 0.5, "Y": 0.25, "Z": 2.0},
         "physical_unit": {"X": "µm", "Y": "µm", "Z": "µm"}, "time_increment": 1.5},
        {"shape": (16, 24, 3), "axes": "YXS", "dtype": "uint8", "ifd": 24},
    ])
    meta = parse_ome_xml(xml)
    a, b = meta.images
    assert a.name == "cells" and a.dimension_order == "XYZCT" and a.axes == "TCZYX"
    assert a.sizes == {"X": 24, "Y": 16, "C": 3, "Z": 4, "T": 2} and a.dtype == numpy.uint16
    assert a.channel_names == ["DAPI", "GFP", "RFP"] and a.physical_sizes == {"X": 0.5, "Y": 0.25, "Z": 2.0, "T": 1.5}
    assert [(t.ifd, t.plane_count) for t in a.tiffdata] == [(0, 24)]
    assert b.samples_per_pixel == 3 and b.sizes["C"] == 3 and b.interleaved is True and b.tiffdata[0].ifd == 24
    assert meta.uuid.startswith("urn:uuid:")
    ome_types = pytest.importorskip("ome_types", reason="ome-types ships the OME schema (test extra)")
    ome_types.validate_xml(xml)  # raises on a schema violation
    parsed = ome_types.from_xml(xml)
    assert parsed.images[0].pixels.size_c == 3 and parsed.images[0].pixels.channels[1].name == "GFP"


def test_ome_xml_parses_tifffile_output():
    omexml = tifffile.OmeXml()
    omexml.addimage("uint16", (5, 2, 32, 48), (10, 1, 1, 32, 48, 1), axes="ZCYX", Name="x", PhysicalSizeX=0.3)
    meta = parse_ome_xml(omexml.tostring())
    image = meta.images[0]
    assert image.axes[-2:] == "YX" and image.sizes["Z"] == 5 and image.sizes["C"] == 2
    assert image.name == "x" and image.physical_sizes["X"] == 0.3


def test_ome_xml_malformed():
    with pytest.raises(tiffio.TiffFormatError, match="does not parse"):
        parse_ome_xml("<OME><Image>")
    with pytest.raises(tiffio.TiffFormatError, match="DimensionOrder"):
        parse_ome_xml('<OME><Image><Pixels DimensionOrder="XYZ" SizeX="1"/></Image></OME>')
    with pytest.raises(tiffio.TiffFormatError, match="SizeX"):
        parse_ome_xml('<OME><Image><Pixels DimensionOrder="XYZCT" SizeX="a"/></Image></OME>')
    with pytest.raises(tiffio.TiffValueError, match="YX"):
        build_ome_xml([{"shape": (4, 5, 6), "axes": "YXZ", "dtype": "uint8"}])


# --- GeoTIFF ----------------------------------------------------------------------------------
def _values(tags):
    return {code: value for code, _type, _count, value in tags}


def test_geotiff_round_trip_projected_geographic_rotated():
    cases = [
        GeoTiff(epsg=32633, transform=(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0), nodata=-9999.0),
        GeoTiff(epsg=4326, transform=(0.01, 0.0, 10.0, 0.0, -0.01, 50.0), nodata=float("nan"),
                items=[GdalItem("AREA", "x"), GdalItem("FOO", "bar", 0), GdalItem("scale", "2.5", 1, "scale")]),
        GeoTiff(epsg=3857, transform=(5.0, 1.0, 100.0, 0.5, -5.0, 200.0)),
        GeoTiff(epsg=32633, transform=(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0), pixel_is_point=True),
    ]
    for geo in cases:
        back = GeoTiff.from_tags(_values(geo.to_tags()))
        assert back.epsg == geo.epsg and back.transform == geo.transform
        assert back.pixel_is_point == geo.pixel_is_point
        assert (back.nodata == geo.nodata) or (numpy.isnan(back.nodata) and numpy.isnan(geo.nodata))
        assert back.metadata == geo.metadata and back.band_metadata == geo.band_metadata
    assert cases[1].band_metadata == {0: {"FOO": "bar"}, 1: {"scale": "2.5"}}
    assert GeoTiff.from_tags({}) is None


def test_geokeys_parse_and_errors():
    keys = parse_geokeys((1, 1, 0, 3, 1024, 0, 1, 1, 1026, 34737, 6, 0, 2057, 34736, 1, 0), (6378137.0,), "WGS84|")
    assert keys == {1024: 1, 1026: "WGS84", 2057: 6378137.0}
    with pytest.raises(tiffio.TiffFormatError, match="declares 2 keys"):
        parse_geokeys((1, 1, 0, 2, 1024, 0, 1, 1), None, None)
    with pytest.raises(tiffio.TiffFormatError, match="GeoDoubleParams"):
        parse_geokeys((1, 1, 0, 1, 2057, 34736, 1, 5), (1.0,), None)
    with pytest.raises(tiffio.TiffFormatError, match="GDAL_NODATA"):
        GeoTiff.from_tags({42113: "abc"})
    with pytest.raises(tiffio.TiffFormatError, match="GDAL_METADATA"):
        parse_gdal_metadata("<GDALMetadata><Item>")


# --- resolution, ICC, XMP ---------------------------------------------------------------------
def test_resolution_icc_xmp():
    res = parse_resolution((300, 1), (150, 1), 3)
    assert (res.x, res.y, res.unit) == (300.0, 150.0, "centimeter") and res.pixel_size == (1 / 300, 1 / 150)
    assert parse_resolution(None, None, None) is None
    assert parse_resolution((72, 1), (72, 1), None).unit == "inch"
    icc = bytearray(200)
    struct.pack_into(">I4sI4s4s4s", icc, 0, 200, b"lcms", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    icc[36:40] = b"acsp"
    struct.pack_into(">I4sII", icc, 128, 1, b"desc", 144, 40)
    struct.pack_into(">4sII", icc, 144, b"desc", 0, 5)
    icc[156:161] = b"sRGB\x00"
    prof = parse_icc_profile(bytes(icc))
    assert (prof.version, prof.device_class, prof.color_space, prof.connection_space, prof.description) == \
        ("2.1", "mntr", "RGB", "XYZ", "sRGB")
    with pytest.raises(tiffio.TiffFormatError, match="128-byte header"):
        parse_icc_profile(b"short")
    with pytest.raises(tiffio.TiffFormatError, match="acsp"):
        parse_icc_profile(bytes(200))
    assert parse_xmp(b"<x:xmpmeta>\xc3\xa9</x:xmpmeta>\x00") == "<x:xmpmeta>é</x:xmpmeta>"
