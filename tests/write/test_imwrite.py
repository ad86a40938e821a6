"""tiffio.imwrite against tifffile.imwrite: tifffile reads tiffio's file as it reads its own (series,
pixels, storage, metadata) and tiffio reads tifffile's file; array-likes read in bounded bands; a
memmap larger than the memory left to the process (RLIMIT_AS) written with bounded RSS."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy
import pytest
import tifffile

import tiffio
from tiffio.writer.pyramid import reduce2

pytestmark = pytest.mark.crossval

ROOT = Path(__file__).resolve().parents[2]


def _data(shape, dtype):
    rng = numpy.random.default_rng(sum(shape))
    return rng.integers(0, 200, shape).astype(dtype)


def _storage(page):
    return (page.photometric, page.planarconfig, page.compression, page.predictor, page.tilewidth,
            page.tilelength, page.samplesperpixel, page.dtype, page.shape, page.extrasamples)


CASES = [
    ((100, 120), "uint16", {}),
    ((100, 120, 3), "uint8", {}),
    ((100, 120, 4), "uint16", {"compression": "zlib"}),
    ((3, 100, 120), "uint8", {}),                                  # RGB, separate planes (tifffile's guess)
    ((2, 100, 120, 3), "uint8", {"compression": "zlib"}),          # two RGB pages
    ((5, 100, 120), "uint16", {"compression": "zlib", "predictor": True}),
    ((100, 120, 2), "uint8", {}),                                  # 100 pages of 120 x 2
    ((1000, 2000), "uint16", {"compression": "zlib"}),             # strips of 65 rows, as tifffile's
    ((300, 520), "float32", {"tile": (64, 64), "compression": "zstd", "predictor": True}),
    ((300, 520, 3), "uint8", {"tile": (64, 64), "compression": "jpeg"}),
    ((2, 3, 64, 80), "int16", {"tile": (32, 32), "compression": "zlib"}),
    ((64, 80), "uint8", {"photometric": "minisblack", "planarconfig": None}),
    ((64, 80, 3), "uint8", {"photometric": "minisblack"}),         # 64 pages of 80 x 3
    ((64, 80, 5), "uint8", {"planarconfig": "contig"}),            # 5 contiguous samples
    ((300, 520), "uint16", {"metadata": None}),
    ((300, 520), "uint16", {"metadata": {"axes": "YX", "note": "x"}, "resolution": (2.0, 3.0)}),
]


@pytest.mark.parametrize("shape, dtype, kwargs", CASES, ids=[f"{c[0]}-{c[1]}-{sorted(c[2])}" for c in CASES])
def test_tifffile_reads_imwrite_as_its_own(tmp_path, shape, dtype, kwargs):
    lossy = kwargs.get("compression") == "jpeg"
    data = _data(shape, dtype)
    if lossy:  # smooth pixels: JPEG's error stays small
        y, x = numpy.mgrid[0:shape[0], 0:shape[1]]
        data = numpy.stack([(x // 3 + y // 5) % 200, (x + y) // 8 % 256, y % 200], -1).astype(dtype)
    mine, theirs = tmp_path / "tiffio.tif", tmp_path / "tifffile.tif"
    report = tiffio.imwrite(mine, data, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # tifffile's RGB guess for (3, h, w)
        tifffile.imwrite(theirs, data, **kwargs)
    with tifffile.TiffFile(mine) as a, tifffile.TiffFile(theirs) as b:
        sa, sb = a.series[0], b.series[0]
        assert (sa.shape, sa.axes, sa.dtype, len(a.pages)) == (sb.shape, sb.axes, sb.dtype, len(b.pages))
        assert [_storage(p) for p in a.pages] == [_storage(p) for p in b.pages]
        assert a.pages[0].description == b.pages[0].description
        assert a.shaped_metadata == b.shaped_metadata
        assert a.pages[0].resolution == b.pages[0].resolution
        if kwargs.get("compression") is not None:   # tifffile stores an uncompressed image as one strip
            assert a.pages[0].rowsperstrip == b.pages[0].rowsperstrip
        if lossy:   # both JPEG at quality 75, YCbCr 2 x 2
            for arr in (sa.asarray(), sb.asarray()):
                assert numpy.abs(arr.astype(int) - data).mean() < 2
        else:
            numpy.testing.assert_array_equal(sa.asarray(), data)
    # and the other way round: tiffio reads tifffile's file as tifffile does
    with tiffio.open(theirs) as tif:
        s = tif.series[0]
        assert s.shape == shape and s.dtype == data.dtype
        if not lossy:
            numpy.testing.assert_array_equal(s.asarray(), data)
    assert report.shape == shape and report.images == len(tifffile.TiffFile(mine).pages)
    assert report.file_bytes == mine.stat().st_size


def test_imagej_both_ways(tmp_path):
    data = _data((4, 3, 64, 80), "uint16")
    meta = {"axes": "TCYX", "unit": "um", "finterval": 0.5, "Labels": ["a", "b", "c"] * 4, "Ranges": (0, 100) * 3}
    tiffio.imwrite(tmp_path / "a.tif", data, imagej=True, metadata=meta, resolution=(2.0, 2.0))
    tifffile.imwrite(tmp_path / "b.tif", data, imagej=True, metadata=meta, resolution=(2.0, 2.0))
    with tifffile.TiffFile(tmp_path / "a.tif") as a, tifffile.TiffFile(tmp_path / "b.tif") as b:
        assert a.imagej_metadata == b.imagej_metadata
        assert (a.series[0].shape, a.series[0].axes) == (b.series[0].shape, b.series[0].axes) == (data.shape, "TCYX")
        assert a.pages[0].resolution == b.pages[0].resolution
        numpy.testing.assert_array_equal(a.series[0].asarray(), data)
    with tiffio.open(tmp_path / "b.tif") as tif:
        assert tif.imagej_metadata.labels == meta["Labels"]
        numpy.testing.assert_array_equal(tif.series[0].asarray(), data)
    with pytest.raises(tiffio.UnsupportedFeatureError):
        tiffio.imwrite(tmp_path / "c.tif", data, imagej=True, compression="zlib")


def test_ome_both_ways(tmp_path):
    data = _data((4, 3, 64, 80), "uint16")
    meta = {"axes": "TCYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "Channel": {"Name": ["x", "y", "z"]}}
    report = tiffio.imwrite(tmp_path / "a.ome.tif", data, tile=(32, 32), compression="zlib", pyramid=True,
                            metadata=meta)
    tifffile.imwrite(tmp_path / "b.ome.tif", data, tile=(32, 32), compression="zlib", metadata=meta)
    assert report.levels == [(64, 80), (32, 40), (16, 20)]
    for name in ("a.ome.tif", "b.ome.tif"):
        with tifffile.TiffFile(tmp_path / name) as tif:
            s = tif.series[0]
            assert (s.shape, s.axes) == (data.shape, "TCYX")
            numpy.testing.assert_array_equal(s.asarray(), data)
            pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
            assert [c["Name"] for c in pixels["Channel"]] == ["x", "y", "z"] and pixels["PhysicalSizeX"] == 0.5
        with tiffio.open(tmp_path / name) as tif:
            assert tif.ome_metadata.images[0].channel_names == ["x", "y", "z"]
    with tifffile.TiffFile(tmp_path / "a.ome.tif") as tif:
        levels = tif.series[0].levels
        assert [level.shape for level in levels] == [(4, 3, 64, 80), (4, 3, 32, 40), (4, 3, 16, 20)]
        numpy.testing.assert_array_equal(levels[1].asarray()[2, 1], reduce2(data[2, 1]))


def test_geotiff_and_pyramid_read_by_gdal(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    data = _data((700, 900), "int16")
    geo = tiffio.GeoTiff(epsg=32633, transform=(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0), nodata=-9999.0)
    report = tiffio.imwrite(tmp_path / "g.tif", data, tile=(128, 128), compression="deflate", predictor=True,
                            geotiff=geo, pyramid=True, metadata=None)
    assert report.levels == [(700, 900), (350, 450), (175, 225), (88, 113)]
    with rasterio.open(tmp_path / "g.tif") as ds:
        assert ds.crs.to_epsg() == 32633 and tuple(ds.transform)[:6] == (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)
        assert ds.nodata == -9999.0 and ds.overviews(1) == [2, 4, 8] and ds.block_shapes == [(128, 128)]
        numpy.testing.assert_array_equal(ds.read(1), data)
    with tifffile.TiffFile(tmp_path / "g.tif") as tif:
        assert [level.shape for level in tif.series[0].levels] == report.levels


class CountingArray:
    """An array-like that records the rows of every read (the reads must be bands, not the whole)."""

    def __init__(self, data, chunks=None):
        self.data = data
        self.shape, self.dtype = data.shape, data.dtype
        self.reads = []
        if chunks is not None:
            self.chunks = chunks

    def __getitem__(self, key):
        out = self.data[key]
        self.reads.append(out.nbytes)
        return out


def test_array_likes_are_read_in_bands(tmp_path):
    data = _data((1000, 600), "uint16")
    plain = CountingArray(data)
    tiffio.imwrite(tmp_path / "a.tif", plain, tile=(64, 64), compression="zstd")
    assert len(plain.reads) == 16 and max(plain.reads) == 64 * 600 * 2        # one tile row at a time
    chunked = CountingArray(data, chunks=(300, 600))                           # zarr-like chunks
    tiffio.imwrite(tmp_path / "b.tif", chunked, tile=(64, 64), compression="zstd")
    assert max(chunked.reads) == 320 * 600 * 2                                 # whole chunk rows
    for name in ("a.tif", "b.tif"):
        numpy.testing.assert_array_equal(tifffile.imread(tmp_path / name), data)


def test_dask_and_zarr_inputs(tmp_path):
    da = pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    data = _data((500, 300, 3), "uint8")
    tiffio.imwrite(tmp_path / "d.tif", da.from_array(data, chunks=(100, 100, 3)), tile=(64, 64))
    z = zarr.create_array(store=str(tmp_path / "z.zarr"), shape=data.shape, dtype=data.dtype, chunks=(128, 128, 3))
    z[:] = data
    tiffio.imwrite(tmp_path / "z.tif", z, compression="zlib")
    for name in ("d.tif", "z.tif"):
        numpy.testing.assert_array_equal(tifffile.imread(tmp_path / name), data)


def test_imwrite_refusals(tmp_path):
    data = numpy.zeros((2, 64, 64), "uint8")
    with pytest.raises(tiffio.TiffValueError, match="pages"):
        tiffio.imwrite(tmp_path / "a.tif", data, tile=(32, 32), pyramid=True)
    with pytest.raises(tiffio.TiffValueError, match="tiles"):
        tiffio.imwrite(tmp_path / "a.tif", data[0], pyramid=True)
    with pytest.raises(tiffio.TiffTypeError, match="JSON"):
        tiffio.imwrite(tmp_path / "a.tif", data, metadata={"x": object()})
    with pytest.raises(tiffio.TiffValueError, match="2 dimensions"):
        tiffio.imwrite(tmp_path / "a.tif", numpy.zeros(5, "uint8"))
    with pytest.raises(tiffio.UnsupportedFeatureError):
        tiffio.imwrite(tmp_path / "a.tif", numpy.zeros((4, 4), bool))


MEMMAP_CHILD = textwrap.dedent("""
    import resource, sys, numpy, tiffio
    path, out, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = numpy.memmap(path, dtype="uint16", mode="r", shape=(16384, 16384))   # 512 MiB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        numpy.array(data)                      # a copy of the whole array does not fit
    except MemoryError:
        print("copy refused")
    report = tiffio.imwrite(out, data, tile=(256, 256), compression="deflate", predictor=True, workers=2)
    # VmHWM: this process's peak RSS (ru_maxrss may keep the forking parent's, which exec does not reset)
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    print(report.segments, int(status["VmHWM"].split()[0]))
""")


def test_memmap_larger_than_the_memory_left(tmp_path):
    """The memmap (512 MiB) is larger than the address space left to the process (RLIMIT_AS = the
    process after start-up + the mapping + 384 MiB): a copy fails, imwrite completes, and its peak
    RSS stays far below the mapping's size (pages written are released)."""
    src = tmp_path / "big.raw"
    rows = numpy.arange(16384, dtype=numpy.uint16)[:, None]
    with open(src, "wb") as f:
        for y in range(0, 16384, 1024):
            f.write((numpy.arange(16384, dtype=numpy.uint16)[None, :] * 3 + rows[y:y + 1024]).tobytes())
    probe = subprocess.run([sys.executable, "-c", ("import resource, numpy, tiffio, imagecodecs\n"
                            "print(open('/proc/self/status').read().split('VmSize:')[1].split()[0])")],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    base = int(probe.stdout.strip()) * 1024
    limit = base + (512 << 20) + (384 << 20)
    proc = subprocess.run([sys.executable, "-c", MEMMAP_CHILD, str(src), str(tmp_path / "out.tif"), str(limit)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "MALLOC_ARENA_MAX": "2"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[0] == "copy refused"
    segments, maxrss_kib = (int(v) for v in lines[1].split())
    assert segments == 64 * 64
    assert maxrss_kib * 1024 < 256 << 20, maxrss_kib
    with tiffio.open(tmp_path / "out.tif") as tif:
        ifd = tif.ifds[0]
        numpy.testing.assert_array_equal(ifd.read_region(8000, 100, 300, 500),
                                         numpy.arange(100, 600, dtype=numpy.uint16)[None, :] * 3
                                         + numpy.arange(8000, 8300, dtype=numpy.uint16)[:, None])
