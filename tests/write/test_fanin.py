"""Fan-in: worker processes encode (concurrent.futures process pool, dask.distributed LocalCluster
with processes), one process writes; back-pressure; kill -9 of the writing process + resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy
import pytest

import tiffio
from tests.support.scale_workers import TILE, pixels, produce_tile, produce_tile_slow

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (160, 224)


def _keys(shape=SHAPE, seed=0):
    down, across = -(-shape[0] // TILE), -(-shape[1] // TILE)
    return [(seed, shape, r, c) for r in range(down) for c in range(across)]


def _coords(key):
    return key[2], key[3]


def _reference(path, shape=SHAPE):
    data = pixels(shape)
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(shape, "uint8", tile=(TILE, TILE), compression="deflate")
        for r in range(im.tiles_down):
            for c in range(im.tiles_across):
                im.write_tile(r, c, data[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE])
    return data


def _same_tiles(a, b):
    with tiffio.open(a) as ta, tiffio.open(b) as tb:
        ia, ib = ta.ifds[0], tb.ifds[0]
        assert ia.segment_count == ib.segment_count
        for i in range(ia.segment_count):
            assert ia.read_segment_bytes(i) == ib.read_segment_bytes(i), i


def test_fan_in_process_pool(tmp_path):
    data = _reference(tmp_path / "ref.tif")
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        with tiffio.TiffWriter(tmp_path / "out.tif") as w:
            im = w.add_image(SHAPE, "uint8", tile=(TILE, TILE), compression="deflate")
            report = tiffio.fan_in(im, _keys(), produce_tile, pool, coords=_coords, max_pending=3)
            assert im.missing_tiles() == []
    assert report.tiles == 35 and report.max_in_flight == 3
    _same_tiles(tmp_path / "out.tif", tmp_path / "ref.tif")
    with tiffio.open(tmp_path / "out.tif") as tif:
        numpy.testing.assert_array_equal(tif.ifds[0].asarray(), data)


def test_fan_in_arrays_threads_and_errors(tmp_path):
    data = _reference(tmp_path / "ref.tif")
    keys = [(r, c) for r in range(5) for c in range(7)]
    arrays = (data[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] for r, c in keys)
    with ThreadPoolExecutor(2) as pool, tiffio.TiffWriter(tmp_path / "out.tif") as w:
        im = w.add_image(SHAPE, "uint8", tile=(TILE, TILE), compression="deflate")
        report = tiffio.fan_in(im, keys, None, pool, arrays=arrays)
        assert report.max_in_flight <= 4
    _same_tiles(tmp_path / "out.tif", tmp_path / "ref.tif")
    with ThreadPoolExecutor(2) as pool, tiffio.TiffWriter(tmp_path / "bad.tif", missing="sparse") as w:
        im = w.add_image(SHAPE, "uint8", tile=(TILE, TILE), compression="deflate")
        with pytest.raises(tiffio.TiffError, match=r"tile \(0, 1\)"):
            tiffio.fan_in(im, [(0, 0), (0, 1)], None, pool, arrays=[data[:TILE, :TILE], numpy.zeros((3, 3), "f8")],
                          max_pending=1)
        with pytest.raises(tiffio.TiffValueError, match="key"):
            tiffio.fan_in(im, ["nope"], None, pool, arrays=[data[:TILE, :TILE]])


def test_fan_in_dask_distributed(tmp_path):
    distributed = pytest.importorskip("distributed")
    _reference(tmp_path / "ref.tif")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster) as client:
        with tiffio.TiffWriter(tmp_path / "out.tif") as w:
            im = w.add_image(SHAPE, "uint8", tile=(TILE, TILE), compression="deflate")
            report = tiffio.fan_in(im, _keys(), produce_tile, client, coords=_coords, max_pending=4)
        pids = client.run(os.getpid)
        assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    assert report.tiles == 35 and report.max_in_flight == 4
    _same_tiles(tmp_path / "out.tif", tmp_path / "ref.tif")


COORDINATOR = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
import tiffio
from tests.support.scale_workers import TILE, produce_tile
path, shape = sys.argv[1], (160, 224)
with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
    w = tiffio.TiffWriter(path, mode="resume" if "resume" in sys.argv else "w", missing="sparse", checkpoint_every=4, checkpoint_seconds=None, fsync=False)
    im = w.images[0] if w.images else w.add_image(shape, "uint8", tile=(TILE, TILE), compression="deflate")
    keys = [(0, shape, r, c) for r, c in im.missing_tiles()]
    print("started", len(keys), flush=True)
    def slow(key):
        return key[2], key[3]
    stall = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != "resume" else None
    for n, k in enumerate(keys, 1):
        tiffio.fan_in(im, [k], produce_tile, pool, coords=slow)
        if n == stall:  # wait here for the kill (the test sees the checkpoint published first)
            print("stalled", n, flush=True)
            sys.stdin.readline()
    w.close()
print("done", flush=True)
"""


def test_kill9_coordinator_then_resume(tmp_path):
    """The writing process is killed with SIGKILL at a random moment after a checkpoint; the tiles of
    the last checkpoint survive, and a resumed run completes a file equal to an uninterrupted one."""
    data = _reference(tmp_path / "ref.tif")
    path = str(tmp_path / "out.tif")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # the coordinator stalls after a random number of tiles (>= 5: the checkpoint of the first 4 is due);
    # it runs in a process group of its own, killed whole (its spawned pool workers would outlive it)
    stall = int(numpy.random.default_rng().integers(5, 35))
    p = subprocess.Popen([sys.executable, "-c", COORDINATOR, path, str(stall)], cwd=ROOT, env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert p.stdout.readline().startswith("started")
        assert p.stdout.readline().split() == ["stalled", str(stall)]
        deadline = time.monotonic() + 120  # the checkpoint's header update runs in the background
        while time.monotonic() < deadline and open(path, "rb").read(8)[4:8] in (b"", b"\0\0\0\0"):
            time.sleep(0.005)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(30)
        p.stdout.close()
        p.stdin.close()
    with tiffio.open(path) as tif:
        before = {i for i, o in enumerate(tif.ifds[0].segment_offsets.to_numpy().tolist()) if o}
    assert 4 <= len(before) <= stall < 35
    p = subprocess.Popen([sys.executable, "-c", COORDINATOR, path, "resume"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:  # pragma: no cover - hung
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(30)
    assert p.returncode == 0 and "done" in out
    remaining = int(out.split()[1])
    assert remaining <= 35 - len(before)
    with tiffio.open(path) as tif:
        numpy.testing.assert_array_equal(tif.ifds[0].asarray(), data)
    _same_tiles(path, tmp_path / "ref.tif")


def test_kill9_pool_worker_then_resume(tmp_path):
    """A process-pool worker killed with SIGKILL breaks the pool: fan_in raises TiffError, the tiles
    written before stay, and fanning in the missing tiles with a new pool completes the image."""
    _reference(tmp_path / "ref.tif")
    path = tmp_path / "out.tif"
    pool = ProcessPoolExecutor(2, mp_context=get_context("spawn"))
    pids = {pool.submit(os.getpid).result() for _ in range(4)}
    killed = []

    def keys():
        for n, key in enumerate(_keys()):
            if n == 12 and not killed:
                os.kill(next(iter(pids)), signal.SIGKILL)
                killed.append(True)
            yield key

    with tiffio.TiffWriter(path, missing="sparse") as w:
        im = w.add_image(SHAPE, "uint8", tile=(TILE, TILE), compression="deflate")
        with pytest.raises(tiffio.TiffError, match="failed"):
            tiffio.fan_in(im, keys(), produce_tile_slow, pool, coords=_coords, max_pending=2)
        pool.shutdown(wait=False, cancel_futures=True)
        done = 35 - len(im.missing_tiles())
        assert 0 < done < 35
        with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool2:
            report = tiffio.fan_in(im, [(0, SHAPE, r, c) for r, c in im.missing_tiles()], produce_tile, pool2,
                                   coords=_coords)
        assert report.tiles == 35 - done and im.missing_tiles() == []
    _same_tiles(path, tmp_path / "ref.tif")


def test_kill9_dask_worker_is_retried(tmp_path):
    """dask.distributed: a worker process killed with SIGKILL mid-run; the scheduler reruns its
    tasks elsewhere and fan_in completes the same file."""
    distributed = pytest.importorskip("distributed")
    _reference(tmp_path / "ref.tif")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        killed = []

        def keys():
            for n, key in enumerate(_keys()):
                if n == 10:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(True)
                yield key

        with tiffio.TiffWriter(tmp_path / "out.tif") as w:
            im = w.add_image(SHAPE, "uint8", tile=(TILE, TILE), compression="deflate")
            report = tiffio.fan_in(im, keys(), produce_tile_slow, client, coords=_coords, max_pending=4)
        assert killed and report.tiles == 35
    _same_tiles(tmp_path / "out.tif", tmp_path / "ref.tif")
