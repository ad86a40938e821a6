"""Files written by tiffio.TiffWriter, read back by tiffio, tifffile, libtiff (imagecodecs.tiff_decode,
tiffinfo/tiffcp) and GDAL (rasterio): identical pixels for lossless codecs; for lossy codecs each
reader must match what the codec itself decodes from the stored bytes."""

from __future__ import annotations

import imagecodecs
import numpy
import pytest
import tifffile

import tiffio
from tests.support.writer_helpers import (
    HAVE_TIFFTOOLS,
    gdal_as_tifffile,
    make_image,
    read_gdal,
    read_libtiff,
    read_tifffile,
    read_tiffio,
    run_tifftools,
    write_tiles,
)

pytestmark = pytest.mark.crossval

# (dtype, shape, compression, options); libtiff/GDAL readability per codec
LIBTIFF_CODECS = {None, "lzw", "deflate", "zstd", "packbits", "lzma", "webp", "jpeg", "lerc"}

LOSSLESS = [
    ("uint8", (70, 90), None, {}),
    ("uint8", (70, 90, 3), "lzw", {}),
    ("uint8", (70, 90, 3), "lzw", {"predictor": 2}),
    ("uint16", (70, 90), "deflate", {"predictor": 2}),
    ("int16", (70, 90), "zstd", {"predictor": 2}),
    ("uint32", (50, 40, 2), "packbits", {}),
    ("int32", (50, 40), "lzma", {}),
    ("uint64", (40, 33), "deflate", {}),
    ("int8", (40, 33), "packbits", {}),
    ("float32", (70, 90), "deflate", {"predictor": 3}),
    ("float64", (70, 90, 2), "zstd", {"predictor": 3}),
    ("float16", (40, 50), "lzw", {"predictor": 3}),
    ("float32", (40, 50), None, {}),
    ("complex64", (40, 50), None, {}),
    ("uint16", (3, 70, 90), "deflate", {"planarconfig": "separate", "predictor": 2}),
    ("uint8", (4, 50, 40), "lzw", {"planarconfig": "separate"}),
    ("uint8", (60, 70, 4), "webp", {}),
    ("uint8", (60, 70, 3), "webp", {}),
    ("float32", (60, 70), "lerc", {}),
    ("uint8", (60, 70, 3), "png", {}),
    ("uint16", (60, 70), "jpeg2000", {}),
    ("uint8", (60, 70, 3), "jpegxl", {}),
]


def _ids(case):
    dtype, shape, comp, opts = case
    return f"{dtype}-{'x'.join(map(str, shape))}-{comp}-" + "-".join(f"{k}{v}" for k, v in opts.items())


@pytest.mark.parametrize("bigtiff", [False, True])
@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("case", LOSSLESS, ids=_ids)
def test_lossless_all_readers(tmp_path, case, byteorder, bigtiff):
    dtype, shape, comp, opts = case
    if comp == "lerc" and byteorder == ">":
        pytest.skip("LERC is written little-endian only")
    data = make_image(shape, dtype, seed=len(shape))
    path = tmp_path / "w.tif"
    tile = (16, 32) if bigtiff else (32, 16)
    with tiffio.TiffWriter(path, byteorder=byteorder, bigtiff=bigtiff) as w:
        im = w.add_image(shape, dtype, tile=tile, compression=comp, **opts)
        write_tiles(im, data, order="random", seed=LOSSLESS.index(case), cropped=not bigtiff)
        assert im.missing_tiles() == []
    separate = opts.get("planarconfig") == "separate"
    for reader in (read_tiffio, read_tifffile):
        got = reader(path)
        assert got.shape == data.shape and got.dtype == data.dtype
        numpy.testing.assert_array_equal(got, data)
    if comp in LIBTIFF_CODECS:
        got = read_libtiff(path)
        numpy.testing.assert_array_equal(got.reshape(data.shape) if separate else got, data)
        got = gdal_as_tifffile(read_gdal(path), len(shape), separate)
        if data.dtype == numpy.float16:
            assert got.dtype == numpy.float32  # GDAL promotes half floats
            got = got.astype(numpy.float16)
        assert got.dtype == data.dtype
        numpy.testing.assert_array_equal(got, data)
    if HAVE_TIFFTOOLS and comp in LIBTIFF_CODECS and bigtiff and byteorder == "<":
        copied = run_tifftools(path, tmp_path)
        if not separate:  # tiffcp 4.x mangles tiled separate-plane 16-bit images (tifffile's as well)
            numpy.testing.assert_array_equal(tifffile.imread(copied), data)
    with tifffile.TiffFile(path) as tf:
        assert tf.is_bigtiff == bigtiff
        assert tf.byteorder == byteorder


def _codec_decode_all(path):
    """Decode each stored tile with the bare codec (imagecodecs), assembled as the image."""
    with tiffio.open(path) as tf:
        ifd = tf.ifds[0]
        out = numpy.zeros(ifd.shape, ifd.dtype)
        th, tw = ifd.tile_shape
        tables = ifd.jpegtables
        across = -(-ifd.width // tw)
        for i in range(ifd.segment_count):
            data = ifd.read_segment_bytes(i)
            if ifd.compression == 7:
                cs = {6: None, 2: 2, 1: None}[ifd.photometric]
                tile = imagecodecs.jpeg8_decode(data, tables=tables, colorspace=cs, outcolorspace=None)
            elif ifd.compression == 50001:
                tile = imagecodecs.webp_decode(data)
            else:
                tile = imagecodecs.jpeg2k_decode(data)
            r, c = divmod(i, across)
            ys, xs = slice(r * th, (r + 1) * th), slice(c * tw, (c + 1) * tw)
            h, w = out[ys, xs].shape[:2]
            out[ys, xs] = tile[:h, :w]
        return out


LOSSY = [
    ("uint8", (300, 420, 3), "jpeg", {}),                            # YCbCr 2x2
    ("uint8", (300, 420, 3), "jpeg", {"subsampling": (1, 1)}),
    ("uint8", (300, 420, 3), "jpeg", {"subsampling": (2, 1), "jpeg_quality": 95}),
    ("uint8", (300, 420, 3), "jpeg", {"photometric": "rgb"}),
    ("uint8", (300, 420), "jpeg", {"jpeg_quality": 60}),
    ("uint8", (300, 420, 3), "webp", {"compression_level": 80}),
]


@pytest.mark.parametrize("case", LOSSY, ids=_ids)
def test_lossy_all_readers(tmp_path, case):
    dtype, shape, comp, opts = case
    y, x = numpy.mgrid[0: shape[0], 0: shape[1]]
    base = numpy.stack([x * 255 // shape[1], y * 255 // shape[0], (x + y) * 255 // (shape[0] + shape[1])], -1).astype("u1")
    data = base if len(shape) == 3 else base[..., 0].copy()
    path = tmp_path / "lossy.tif"
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(shape, dtype, tile=(128, 128), compression=comp, **opts)
        write_tiles(im, data, order="random", seed=3)
    expected = _codec_decode_all(path)
    assert numpy.abs(expected.astype(int) - data).max() <= 40  # the codec kept the colours
    ycbcr = comp == "jpeg" and len(shape) == 3 and opts.get("photometric") != "rgb"
    if ycbcr:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            assert page.photometric == 6 and page.tags["YCbCrSubSampling"].value == opts.get("subsampling", (2, 2))
            assert page.jpegtables is not None
    for reader in (read_tiffio, read_tifffile, read_libtiff):
        numpy.testing.assert_array_equal(reader(path), expected)
    got = gdal_as_tifffile(read_gdal(path), len(shape), False)
    if ycbcr:
        # libtiff's own YCbCr path rounds the colour conversion differently by a few levels
        assert numpy.abs(got.astype(int) - expected).max() <= 3
    else:
        numpy.testing.assert_array_equal(got, expected)
    if HAVE_TIFFTOOLS:
        copied = run_tifftools(path, tmp_path, data=not ycbcr, copy=not ycbcr)
        if copied is not None:
            assert numpy.abs(tifffile.imread(copied).astype(int) - expected).max() <= 3


@pytest.mark.parametrize("missing", ["blank", "sparse"])
@pytest.mark.parametrize("comp", [None, "deflate", "jpeg"])
def test_missing_tiles(tmp_path, missing, comp):
    shape = (100, 130, 3)
    data = make_image(shape, "uint8")
    skip = {(0, 0), (1, 2), (3, 4)}
    path = tmp_path / "missing.tif"
    with tiffio.TiffWriter(path, missing=missing) as w:
        im = w.add_image(shape, "uint8", tile=(32, 32), compression=comp)
        write_tiles(im, data, skip=skip)
        assert sorted(im.missing_tiles()) == sorted(skip)
    expected = data.copy()
    for r, c in skip:
        expected[r * 32: (r + 1) * 32, c * 32: (c + 1) * 32] = 0
    readers = [read_tiffio, read_tifffile, read_libtiff]
    if missing == "sparse":
        readers = [read_tiffio, read_tifffile]  # libtiff refuses zero byte counts; GDAL reads them as 0
    with tiffio.open(path) as tf:
        ifd = tf.ifds[0]
        offsets = ifd.segment_offsets.to_numpy()
        counts = ifd.segment_byte_counts.to_numpy()
        missing_index = [r * ifd.grid.across + c for r, c in skip]
        if missing == "sparse":
            assert (offsets[missing_index] == 0).all() and (counts[missing_index] == 0).all()
        else:  # one shared blank tile
            assert len(set(offsets[missing_index].tolist())) == 1 and offsets[missing_index[0]] > 0
    for reader in readers:
        got = reader(path)
        if comp == "jpeg":
            for r, c in skip:
                assert numpy.abs(got[r * 32: (r + 1) * 32, c * 32: (c + 1) * 32].astype(int)).max() <= 2
        else:
            numpy.testing.assert_array_equal(got, expected)
    if comp != "jpeg":
        numpy.testing.assert_array_equal(gdal_as_tifffile(read_gdal(path), 3, False), expected)


@pytest.mark.parametrize("style", ["subifds", "pages"])
@pytest.mark.parametrize("comp", ["deflate", "jpeg"])
def test_pyramid(tmp_path, style, comp):
    base = make_image((256, 320, 3), "uint8", seed=5)
    if comp == "jpeg":  # smooth: decoders differ in chroma upsampling at sharp edges
        y, x = numpy.mgrid[0:256, 0:320]
        base = numpy.stack([x * 255 // 320, y, (x + y) * 255 // 576], -1).astype("uint8")
    levels = [base, base[::2, ::2].copy(), base[::4, ::4].copy()]
    path = tmp_path / "pyramid.tif"
    with tiffio.TiffWriter(path) as w:
        top = w.add_image(base.shape, "uint8", tile=(64, 64), compression=comp, description="pyramid")
        ims = [top]
        for lv in levels[1:]:
            if style == "subifds":
                ims.append(w.add_image(lv.shape, "uint8", tile=(64, 64), compression=comp, parent=top))
            else:
                ims.append(w.add_image(lv.shape, "uint8", tile=(64, 64), compression=comp, reduced=True))
        # levels written interleaved, in any order
        for lv, im in reversed(list(zip(levels, ims))):
            write_tiles(im, lv, order="random", seed=im.index)
        assert w.images == ims
    with tiffio.open(path) as tf:
        if style == "subifds":
            assert len(tf.ifds) == 1
            ifds = [tf.ifds[0], *tf.ifds[0].subifds]
        else:
            ifds = list(tf.ifds)
        assert [d.shape for d in ifds] == [lv.shape for lv in levels]
        assert [d.new_subfile_type for d in ifds] == [0, 1, 1]
        got = [d.asarray() for d in ifds]
    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        assert len(series.levels) == 3
        ref = [lvl.asarray() for lvl in series.levels]
    for a, b in zip(got, ref):
        numpy.testing.assert_array_equal(a, b)
    if comp == "deflate":
        for a, lv in zip(got, levels):
            numpy.testing.assert_array_equal(a, lv)
    if style == "pages":  # GDAL sees the reduced IFDs as overviews
        for k in (1, 2):
            ov = gdal_as_tifffile(read_gdal(path, k), 3, False)
            if comp == "deflate":
                numpy.testing.assert_array_equal(ov, levels[k])
            else:
                assert numpy.abs(ov.astype(int) - got[k]).max() <= 6  # chroma upsampling differs
            numpy.testing.assert_array_equal(read_libtiff(path, k), got[k]) if comp == "deflate" else None


def test_metadata_passthrough(tmp_path):
    data = make_image((64, 64), "uint16")
    geokeys = (1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326)
    path = tmp_path / "meta.tif"
    desc = '<?xml version="1.0"?><OME>µ</OME>'
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(data.shape, data.dtype, tile=(32, 32), compression="zstd", description=desc,
                         resolution=(300, 150.5, "inch"), datetime="2024:01:02 03:04:05",
                         extratags=[(33550, 12, 3, (0.5, 0.5, 0.0)),
                                    (33922, 12, 6, (0, 0, 0, 100.0, 200.0, 0)),
                                    (34735, 3, len(geokeys), geokeys),
                                    (42113, 2, 0, "7"),
                                    (65000, 7, 4, b"\x01\x02\x03\x04")])
        write_tiles(im, data)
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        assert page.description == desc
        assert page.tags["Software"].value == "tiffio"
        assert page.tags["DateTime"].value == "2024:01:02 03:04:05"
        assert page.tags["XResolution"].value == (300, 1)
        assert page.tags["YResolution"].value == (301, 2)
        assert page.tags["ResolutionUnit"].value == 2
        assert page.tags["ModelPixelScaleTag"].value == (0.5, 0.5, 0.0)
        assert page.tags["GeoKeyDirectoryTag"].value == geokeys
        assert page.tags["GDAL_NODATA"].value == "7"
        assert page.tags[65000].value == b"\x01\x02\x03\x04"
        numpy.testing.assert_array_equal(page.asarray(), data)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import rasterio
        with rasterio.open(path) as ds:
            assert ds.crs is not None and ds.crs.to_epsg() == 4326
            assert ds.transform.a == 0.5 and ds.transform.c == 100.0
            assert ds.nodata == 7
            numpy.testing.assert_array_equal(ds.read(1), data)


def test_overwrite_last_wins(tmp_path):
    data = make_image((64, 64), "uint8")
    path = tmp_path / "over.tif"
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(data.shape, "uint8", tile=(32, 32), compression="lzw")
        im.write_tile(0, 0, numpy.full((32, 32), 9, "uint8"))
        write_tiles(im, data)
        im.write_tile(1, 1, numpy.full((32, 32), 5, "uint8"))
    expected = data.copy()
    expected[32:, 32:] = 5
    for reader in (read_tiffio, read_tifffile, read_libtiff):
        numpy.testing.assert_array_equal(reader(path), expected)
