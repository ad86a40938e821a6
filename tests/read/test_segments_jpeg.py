"""``IFD.read_segment_jpeg``: a JPEG tile or strip as a complete .jpg that libjpeg (imagecodecs) and
Pillow decode to exactly ``read_segment``'s pixels, on files written by tiffio, libvips (pyvips),
GDAL (rasterio) and tifffile, YCbCr-subsampled and RGB, and on every JPEG segment of fixtures/ and
the shared corpus."""

from __future__ import annotations

import io
import warnings

import imagecodecs
import numpy
import pytest

import tiffio
from tests.support.paths import CORPUS, FIXTURES
from tests.support.timebound import cpu_bound
from tiffio.codecs import JPEG_COMPRESSIONS
from tiffio.format.jpeg import parse_header

pytestmark = pytest.mark.crossval

PIL = pytest.importorskip("PIL.Image")

SHAPE = (150, 200, 3)  # 3 x 4 tiles of 64 x 64, edge tiles partly outside the image
TILE = 64


def picture(shape=SHAPE) -> numpy.ndarray:
    """Colour gradients with noise: chroma that subsampling and colour conversion visibly change."""
    y, x = numpy.mgrid[: shape[0], : shape[1]]
    rng = numpy.random.default_rng(24)
    rgb = numpy.stack([(x * 255 // shape[1]), (y * 255 // shape[0]), 255 - (x + y) % 256], axis=-1)
    return (rgb + rng.integers(-25, 25, rgb.shape)).clip(0, 255).astype(numpy.uint8)


def write_tiffio(path, photometric):
    with tiffio.TiffWriter(path) as w:
        kwargs = {} if photometric == "ycbcr" else {"photometric": "rgb"}
        im = w.add_image(SHAPE, "uint8", tile=(TILE, TILE), compression="jpeg", jpeg_quality=90, **kwargs)
        data = picture()
        for row in range(-(-SHAPE[0] // TILE)):
            for col in range(-(-SHAPE[1] // TILE)):
                im.write_tile(row, col, data[row * TILE: (row + 1) * TILE, col * TILE: (col + 1) * TILE])


def write_libvips(path, photometric):
    pyvips = pytest.importorskip("pyvips")
    data = picture()
    image = pyvips.Image.new_from_memory(data.tobytes(), SHAPE[1], SHAPE[0], 3, "uchar")
    # libvips stores RGB instead of subsampled YCbCr from Q 90 on, or with rgbjpeg
    image.tiffsave(str(path), tile=True, tile_width=TILE, tile_height=TILE, compression="jpeg", Q=85,
                   rgbjpeg=photometric == "rgb")


def write_gdal(path, photometric):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=SHAPE[1], height=SHAPE[0], count=3, dtype="uint8",
                           tiled=True, blockxsize=TILE, blockysize=TILE, compress="JPEG", jpeg_quality=90,
                           photometric=photometric.upper()) as ds:
            ds.write(numpy.moveaxis(picture(), -1, 0))


def write_tifffile(path, photometric):
    tifffile = pytest.importorskip("tifffile")
    # tifffile stores RGB input as subsampled YCbCr unless told the stream's colour space
    args = {"level": 90} if photometric == "ycbcr" else {"level": 90, "outcolorspace": "RGB"}
    tifffile.imwrite(path, picture(), tile=(TILE, TILE), compression="jpeg", compressionargs=args,
                     photometric="rgb", subsampling=(2, 2) if photometric == "ycbcr" else (1, 1))


WRITERS = {"tiffio": write_tiffio, "libvips": write_libvips, "gdal": write_gdal, "tifffile": write_tifffile}


def pil_decode(data: bytes) -> numpy.ndarray:
    return numpy.asarray(PIL.open(io.BytesIO(data)))


@pytest.mark.parametrize("photometric", ["ycbcr", "rgb"])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_tile_decodes_to_read_segment(tmp_path, writer, photometric):
    path = tmp_path / f"{writer}_{photometric}.tif"
    WRITERS[writer](path, photometric)
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert ifd.compression == tiffio.Compression.JPEG and ifd.is_tiled
        if photometric == "ycbcr":  # the case this test is about: subsampled YCbCr streams
            assert ifd.photometric == 6
            frame = parse_header(ifd.read_segment_bytes(0)).frame
            assert frame is not None and frame.sampling == ((2, 2), (1, 1), (1, 1))
        else:
            assert ifd.photometric == 2
        assert ifd.segment_count == 12
        for index in range(ifd.segment_count):
            expected = ifd.read_segment(index)
            assert expected.shape == (TILE, TILE, 3)
            jpeg = ifd.read_segment_jpeg(index)
            assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
            assert numpy.array_equal(imagecodecs.jpeg8_decode(jpeg), expected), (writer, index, "libjpeg")
            assert numpy.array_equal(pil_decode(jpeg), expected), (writer, index, "Pillow")
            header = parse_header(jpeg)
            assert header.qtables and header.htables  # complete: no tables left in JPEGTables
            # the colour space is declared, not left to a decoder's guess
            assert header.adobe_transform == (0 if photometric == "rgb" else 1) or (
                photometric == "ycbcr" and header.jfif)


def _rgb_tiff_without_colour_markers(path) -> numpy.ndarray:
    """An RGB JPEG TIFF (one 64 x 64 tile) whose stream has no APP14 and the component IDs 1, 2, 3,
    as Aperio SVS tiles have: decoders that read only the stream assume YCbCr. Returns the tile
    as stored (RGB)."""
    from tests.support.tiffbuild import Builder

    tile = numpy.ascontiguousarray(picture()[:TILE, :TILE])
    stream = bytearray(imagecodecs.jpeg8_encode(tile, level=95, colorspace="RGB", outcolorspace="RGB"))
    header = parse_header(bytes(stream))
    adobe = next(s for s in header.segments if s.marker == 0xEE)
    del stream[adobe.offset: adobe.end]
    header = parse_header(bytes(stream))
    sof = next(s for s in header.segments if s.marker == 0xC0)
    sos = header.segments[-1]
    for k in range(3):
        stream[sof.offset + 10 + 3 * k] = k + 1
        stream[sos.offset + 5 + 2 * k] = k + 1
    b = Builder("<")
    offset = b.blob(bytes(stream))
    entries = [(256, 3, TILE), (257, 3, TILE), (258, 3, [8, 8, 8]), (259, 3, 7), (262, 3, 2), (277, 3, 3),
               (322, 3, TILE), (323, 3, TILE), (324, 4, offset), (325, 4, len(stream))]
    path.write_bytes(b.build(b.ifd(entries)))
    return imagecodecs.jpeg8_decode(bytes(stream), colorspace="RGB", outcolorspace="RGB")


def test_rgb_stream_without_markers_keeps_its_colours(tmp_path):
    """The reader decodes an RGB-photometric stream without JFIF as RGB (as tifffile does). The
    command line's former .jpg only spliced the tables in, so libjpeg and Pillow took the stream
    for YCbCr and converted it: other colours than read_segment. The Adobe marker now says RGB."""
    from tests.support.cli_run import run

    path = tmp_path / "svs_like.tif"
    stored = _rgb_tiff_without_colour_markers(path)
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        expected = ifd.read_segment(0)
        assert numpy.array_equal(expected, stored)
        assert not numpy.array_equal(imagecodecs.jpeg8_decode(ifd.read_segment_bytes(0)), expected)
        jpeg = ifd.read_segment_jpeg(0)
    for data in (jpeg, (run("tiles", path, "--index", "0", "--jpeg", "-o", tmp_path / "t.jpg"),
                        (tmp_path / "t.jpg").read_bytes())[1]):
        assert numpy.array_equal(imagecodecs.jpeg8_decode(data), expected)
        assert numpy.array_equal(pil_decode(data), expected)


def test_gray_strips_old_style_and_separate_planes():
    cases = {
        FIXTURES / "libtiff" / "jpeg_gray_strips.tif": (tiffio.Compression.JPEG, 1),
        FIXTURES / "libtiff" / "jpeg_rgb_separate.tif": (tiffio.Compression.JPEG, 1),
        FIXTURES / "libtiff" / "jpeg_ycbcr_strips.tif": (tiffio.Compression.JPEG, 3),
        FIXTURES / "corpus" / "Pillow" / "Tests" / "images" / "old-style-jpeg-compression.tif":
            (tiffio.Compression.OJPEG, 3),
    }
    for path, (compression, components) in cases.items():
        with tiffio.open(path) as tif:
            ifd = tif.ifds[0]
            assert ifd.compression == compression
            for index in range(ifd.segment_count):
                jpeg = ifd.read_segment_jpeg(index)
                frame = parse_header(jpeg).frame
                assert frame is not None and len(frame.components) == components
                expected = ifd.read_segment(index)
                assert numpy.array_equal(imagecodecs.jpeg8_decode(jpeg), expected), (path, index)
                assert numpy.array_equal(pil_decode(jpeg), expected), (path, index)


def test_errors_name_the_segment(tmp_path):
    with tiffio.open(FIXTURES / "libtiff" / "zip_rgb_separate_tiles.tif") as tif:
        with pytest.raises(tiffio.TiffValueError, match=r"IFD 0 .*segment 3 is ADOBE_DEFLATE \(8\), not JPEG"):
            tif.ifds[0].read_segment_jpeg(3)
    from tests.support.tiffbuild import Builder

    stream = bytes(imagecodecs.jpeg8_encode(numpy.full((64, 64), 9, numpy.uint8), level=90))
    b = Builder("<")
    offset = b.blob(stream)
    entries = [(256, 3, 128), (257, 3, 64), (258, 3, 8), (259, 3, 7), (262, 3, 1), (277, 3, 1), (322, 3, 64),
               (323, 3, 64), (324, 4, [0, offset]), (325, 4, [0, len(stream)])]
    path = tmp_path / "sparse.tif"
    path.write_bytes(b.build(b.ifd(entries)))
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        with pytest.raises(tiffio.TiffValueError, match="segment 0 is sparse"):
            ifd.read_segment_jpeg(0)
        with pytest.raises(tiffio.TiffIndexError):
            ifd.read_segment_jpeg(2)
        offset, count = ifd.segment_location(1)
    raw = bytearray(path.read_bytes())
    raw[offset: offset + count] = b"\x00" * count  # no SOI
    path.write_bytes(raw)
    with tiffio.open(path) as tif:
        with pytest.raises(tiffio.CorruptSegmentError, match=r"segment 1: not a complete JPEG stream: .*SOI"):
            tif.ifds[0].read_segment_jpeg(1)


@pytest.mark.corpus
def test_every_jpeg_segment_of_fixtures_and_corpus():
    """libjpeg decodes every standalone file to read_segment's pixels; Pillow too, except where it
    cannot: 12-bit and lossless streams (Pillow decodes 8-bit only) and four-component streams
    (Pillow assumes Adobe's inverted CMYK for every four-component JPEG)."""
    counts = {"libjpeg": 0, "pillow": 0}
    failures = []
    roots = [FIXTURES] + ([CORPUS] if CORPUS.is_dir() else [])
    with cpu_bound(120), warnings.catch_warnings():
        warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
        for root in roots:
            for path in sorted(p for p in root.rglob("*.tif*") if p.is_file() and "malformed" not in p.parts):
                try:
                    tif = tiffio.open(path)
                except tiffio.TiffError:
                    continue
                with tif:
                    for ifd in tif.ifds:
                        try:
                            if ifd.compression not in JPEG_COMPRESSIONS:
                                continue
                            count = ifd.segment_count
                        except tiffio.TiffError:
                            continue
                        for index in range(count):
                            try:
                                expected = ifd.read_segment(index)
                            except tiffio.TiffError:
                                continue  # corrupt corpus files: the reader refuses the segment
                            jpeg = ifd.read_segment_jpeg(index)
                            frame = parse_header(jpeg).frame
                            assert frame is not None
                            got = imagecodecs.jpeg8_decode(jpeg)
                            if got.size == expected.size and numpy.array_equal(got.reshape(expected.shape), expected):
                                counts["libjpeg"] += 1
                            else:
                                failures.append(f"{path}: {ifd.where}: segment {index}: libjpeg")
                            if frame.precision == 8 and not frame.lossless and len(frame.components) in (1, 3):
                                got = pil_decode(jpeg)
                                if got.size == expected.size and numpy.array_equal(got.reshape(expected.shape),
                                                                                   expected):
                                    counts["pillow"] += 1
                                else:
                                    failures.append(f"{path}: {ifd.where}: segment {index}: Pillow")
    assert not failures, "\n".join(failures[:20])
    assert counts["libjpeg"] >= (900 if CORPUS.is_dir() else 400) and counts["pillow"] >= counts["libjpeg"] * 0.9, counts


def test_old_style_jpeg_without_tables_is_refused_clearly(tmp_path):
    """Old-style JPEG strips holding only entropy-coded data and no tables the reader can map:
    the same UnsupportedFeatureError as read_segment, naming the segment."""
    from tests.support.tiffbuild import Builder

    b = Builder("<")
    offset = b.blob(b"\x12\x34" * 16)
    entries = [(256, 3, 16), (257, 3, 16), (258, 3, 8), (259, 3, 6), (262, 3, 1), (277, 3, 1), (278, 3, 16),
               (273, 4, offset), (279, 4, 32)]
    path = tmp_path / "ojpeg.tif"
    path.write_bytes(b.build(b.ifd(entries)))
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        with pytest.raises(tiffio.UnsupportedFeatureError, match="segment 0: old-style JPEG data without"):
            ifd.read_segment(0)
        with pytest.raises(tiffio.UnsupportedFeatureError, match="segment 0: old-style JPEG data without"):
            ifd.read_segment_jpeg(0)
