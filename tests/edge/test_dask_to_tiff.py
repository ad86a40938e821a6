"""tiffio.dask.to_tiff: threads, a spawn process pool, the synchronous scheduler and a real 2-process
LocalCluster; pyramids from the blocks' levels; compute=False; a writing process killed with
SIGKILL and the run resumed (only the blocks with missing tiles are computed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy
import pytest

da = pytest.importorskip("dask.array")

import tiffio  # noqa: E402
import tiffio.dask as tdask  # noqa: E402
from tests.support.array_workers import synthetic, synthetic_reference  # noqa: E402

pytestmark = pytest.mark.crossval

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (700, 900)


def _levels(path):
    with tiffio.open(path) as tif:
        return [ifd.asarray() for ifd in tif.ifds]


def _reference_pyramid(path, data, tile):
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(data.shape, data.dtype, tile=tile, compression="zstd", pyramid=True)
        for r in range(im.tiles_down):
            for c in range(im.tiles_across):
                im.write_tile(r, c, data[r * tile[0]:(r + 1) * tile[0], c * tile[1]:(c + 1) * tile[1]])
    return _levels(path)


@pytest.mark.parametrize("scheduler", ["threads", "sync", "processes"])
def test_to_tiff_schedulers(tmp_path, scheduler):
    x = synthetic(SHAPE, (200, 300))                  # chunks not on the 64 x 64 grid: rechunked to 256 x 320
    report = tdask.to_tiff(x, tmp_path / "a.tif", tile=(64, 64), compression="zstd", scheduler=scheduler,
                           workers=2, max_pending=3)
    assert report.blocks == 3 * 3 and report.max_in_flight <= 3 and report.segments == 11 * 15
    assert report.levels == [SHAPE + (3,)]
    numpy.testing.assert_array_equal(_levels(tmp_path / "a.tif")[0], synthetic_reference(SHAPE))


def test_to_tiff_pyramid_levels_from_the_blocks(tmp_path):
    data = synthetic_reference(SHAPE)
    ref = _reference_pyramid(tmp_path / "ref.tif", data, (64, 64))
    x = synthetic(SHAPE, (256, 256))
    report = tdask.to_tiff(x, tmp_path / "p.tif", tile=(64, 64), compression="zstd", pyramid=True, scheduler="threads")
    assert report.blocks == 3 * 4                     # blocks of 4 x 4 tiles: levels 1 and 2 made in the tasks
    got = _levels(tmp_path / "p.tif")
    assert [a.shape for a in got] == [a.shape for a in ref] == [(700, 900, 3), (350, 450, 3), (175, 225, 3),
                                                                 (88, 113, 3), (44, 57, 3)]
    for a, b in zip(got, ref):
        numpy.testing.assert_array_equal(a, b)
    with pytest.raises(tiffio.TiffValueError, match="resume=True"):
        tdask.to_tiff(x, tmp_path / "p.tif", tile=(128, 128), compression="zstd", pyramid=True, resume=True)


def test_to_tiff_metadata_and_gdal(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    data = numpy.arange(300 * 400, dtype="int16").reshape(300, 400)
    geo = tiffio.GeoTiff(epsg=4326, transform=(0.01, 0.0, 10.0, 0.0, -0.01, 50.0), nodata=-1.0)
    tdask.to_tiff(da.from_array(data, chunks=(128, 128)), tmp_path / "g.tif", tile=(128, 128),
                  compression="deflate", predictor=True, geotiff=geo, metadata=None, scheduler="sync")
    with rasterio.open(tmp_path / "g.tif") as ds:
        assert ds.crs.to_epsg() == 4326 and ds.nodata == -1.0 and ds.block_shapes == [(128, 128)]
        numpy.testing.assert_array_equal(ds.read(1), data)
    with pytest.raises(tiffio.TiffTypeError):
        tdask.to_tiff(data, tmp_path / "n.tif")


def test_to_tiff_distributed_and_compute_false(tmp_path):
    distributed = pytest.importorskip("distributed")
    data = synthetic_reference(SHAPE)
    ref = _reference_pyramid(tmp_path / "ref.tif", data, (64, 64))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        x = synthetic(SHAPE, (128, 128))
        report = tdask.to_tiff(x, tmp_path / "d.tif", tile=(64, 64), compression="zstd", pyramid=True,
                               max_pending=4)              # the default Client is found
        assert report.blocks == 6 * 8 and report.max_in_flight == 4
        for a, b in zip(_levels(tmp_path / "d.tif"), ref):
            numpy.testing.assert_array_equal(a, b)
        lazy = tdask.to_tiff(x, tmp_path / "lazy.tif", tile=(64, 64), compression="zstd", compute=False)
        assert not (tmp_path / "lazy.tif").exists()
        result = client.compute(lazy).result()            # the write runs in a worker, fanning in there
        assert result.blocks == 6 * 8
        numpy.testing.assert_array_equal(_levels(tmp_path / "lazy.tif")[0], data)
        # the blocks were computed in the worker processes
        assert sum(client.run(lambda: 1).values()) == 2


def test_to_tiff_compute_false_threads(tmp_path):
    import dask
    lazy = tdask.to_tiff(synthetic(SHAPE, (256, 256)), tmp_path / "t.tif", tile=(64, 64), compute=False)
    (report,) = dask.compute(lazy, scheduler="threads")
    assert report.blocks == 12
    numpy.testing.assert_array_equal(_levels(tmp_path / "t.tif")[0], synthetic_reference(SHAPE))


WRITER = textwrap.dedent("""
    import sys, numpy, dask.array as da, tiffio.dask
    from tests.support.array_workers import logged_chunk
    path, log, delay, resume = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "resume"
    x = da.map_blocks(logged_chunk, log, delay, dtype=numpy.uint8, chunks=((128,) * 5 + (60,), (128,) * 7 + (4,), (3,)),
                      meta=numpy.empty((0, 0, 0), numpy.uint8))
    report = tiffio.dask.to_tiff(x, path, tile=(64, 64), compression="zstd", pyramid=True, resume=resume,
                                 scheduler="threads", workers=2, max_pending=2)
    print(report.blocks, report.skipped, flush=True)
""")


def test_killed_writer_resumes_only_missing_blocks(tmp_path):
    """The process running to_tiff is killed with SIGKILL mid-run; to_tiff(resume=True) computes only
    the blocks with tiles missing from the file, and the file equals an uninterrupted run."""
    shape = (700, 900)
    path, log = tmp_path / "k.tif", tmp_path / "log"
    log.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(log), "0.15", "new"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(os.listdir(log)) < 20 and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.05)
        assert p.poll() is None, "the writer finished before it was killed"
        os.killpg(p.pid, signal.SIGKILL)
    finally:
        p.wait(timeout=60)
    computed_before = len(os.listdir(log))
    for name in os.listdir(log):
        os.remove(log / name)
    p = subprocess.run([sys.executable, "-c", WRITER, str(path), str(log), "0", "resume"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    blocks, skipped = (int(v) for v in p.stdout.split())
    assert blocks + skipped == 6 * 8 and skipped > 0 and blocks > 0
    assert len(os.listdir(log)) == blocks < 48                    # only the missing blocks were computed
    assert skipped <= computed_before
    ref = _reference_pyramid(tmp_path / "ref.tif", synthetic_reference(shape), (64, 64))
    got = _levels(path)
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        numpy.testing.assert_array_equal(a, b)

