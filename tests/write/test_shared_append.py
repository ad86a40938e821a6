"""Shared append: several processes append tile records to one file (O_APPEND, one os.write each),
one coordinator absorbs and checkpoints; torn records mid-file are passed over; kill -9 of a producer
and of the coordinator, then resume; network filesystems refused."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy
import pytest

import tiffio
from tests.support.scale_workers import TILE, append_tiles, pixels, tile_of
from tiffio.writer.records import LEADER, MAGIC_TILE, crc32
from tiffio.writer.shared import filesystem_type, require_local_filesystem

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (192, 160)   # 6 x 5 tiles of 32

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /tmp rw shared:5 - tmpfs tmpfs rw
31 22 0:40 / /mnt/nfs rw - nfs4 server:/export rw,vers=4.2
32 22 0:41 / /mnt/smb rw - cifs //server/share rw
33 22 0:42 / /mnt/sshfs rw - fuse.sshfs user@host:/ rw
34 31 8:2 / /mnt/nfs/local rw - xfs /dev/sdb1 rw
"""


def _reference(path):
    data = pixels(SHAPE)
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(SHAPE, "uint8", tile=(TILE, TILE), compression="deflate")
        for r in range(im.tiles_down):
            for c in range(im.tiles_across):
                im.write_tile(r, c, tile_of(data, r, c))
    return data


def _same_tiles(a, b):
    with tiffio.open(a) as ta, tiffio.open(b) as tb:
        for i in range(ta.ifds[0].segment_count):
            assert ta.ifds[0].read_segment_bytes(i) == tb.ifds[0].read_segment_bytes(i), i


def test_filesystem_detection():
    assert filesystem_type("/data/x.tif", MOUNTINFO) == "ext4"
    assert filesystem_type("/tmp/a/b.tif", MOUNTINFO) == "tmpfs"
    assert filesystem_type("/mnt/nfs/local/x.tif", MOUNTINFO) == "xfs"
    assert require_local_filesystem("/mnt/nfs/local/x.tif", MOUNTINFO) == "xfs"
    for path, kind in [("/mnt/nfs/x.tif", "nfs4"), ("/mnt/smb/x", "cifs"), ("/mnt/sshfs/a/b", "fuse.sshfs")]:
        with pytest.raises(tiffio.UnsupportedFeatureError, match=kind.replace(".", r"\.")):
            require_local_filesystem(path, MOUNTINFO)
    require_local_filesystem(os.getcwd())  # the real table: this test's folder is local


def _coordinator(path):
    sw = tiffio.SharedWriter(path, missing="sparse", fsync=False)
    sw.add_image(SHAPE, "uint8", tile=(TILE, TILE), compression="deflate")
    return sw


def test_three_processes_append_one_file(tmp_path):
    data = _reference(tmp_path / "ref.tif")
    path = str(tmp_path / "shared.tif")
    sw = _coordinator(path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "tests.support.scale_workers", "append", path, str(w), "3", "0.005"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) for w in range(3)]
    checkpoints = 0
    deadline = time.monotonic() + 300  # a hang detector only
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        sw.checkpoint()  # absorbs while the producers append
        checkpoints += 1
        time.sleep(0.02)
    for p in procs:
        if p.poll() is None:  # pragma: no cover - hung
            p.kill()
    assert all(p.wait(60) == 0 for p in procs)
    sw.checkpoint()
    assert sw.missing_tiles() == [] and sw.skipped == []
    sw.close()
    with tiffio.open(path) as tif:
        numpy.testing.assert_array_equal(tif.ifds[0].asarray(), data)
    _same_tiles(path, tmp_path / "ref.tif")
    assert checkpoints >= 1


def test_torn_record_mid_file_is_passed_over(tmp_path):
    data = _reference(tmp_path / "ref.tif")
    path = str(tmp_path / "shared.tif")
    sw = _coordinator(path)
    app = tiffio.SharedAppender(path)
    app.write_tile(0, 0, tile_of(data, 0, 0))
    # a producer killed (or out of space) in the middle of its write: half a record
    payload = app.images[0].encode_tile(tile_of(data, 0, 1))
    record = LEADER.pack(MAGIC_TILE, 0, 1, len(payload), crc32(payload)) + payload
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, record[: len(record) // 2])
    os.close(fd)
    torn_at = os.path.getsize(path) - len(record) // 2
    for r in range(6):  # the others go on appending after the torn bytes
        for c in range(5):
            if (r, c) != (0, 0):
                app.write_tile(r, c, tile_of(data, r, c))
    app.close()
    assert sw.absorb() == 30
    assert sw.skipped == [(torn_at, len(record) // 2)]
    sw.close()
    with tiffio.open(path) as tif:
        numpy.testing.assert_array_equal(tif.ifds[0].asarray(), data)
    # the same torn stretch after a coordinator crash: resume passes over it too, and truncates nothing
    path2 = str(tmp_path / "shared2.tif")
    sw = _coordinator(path2)
    size_at_checkpoint = os.path.getsize(path2)
    app = tiffio.SharedAppender(path2)
    fd = os.open(path2, os.O_WRONLY | os.O_APPEND)
    os.write(fd, record[:100])
    os.close(fd)
    for r in range(6):
        for c in range(5):
            app.write_tile(r, c, tile_of(data, r, c))
    app.close()
    sw._writer._release()  # the coordinator dies without absorbing (the kernel frees its lock)
    size = os.path.getsize(path2)
    sw2 = tiffio.SharedWriter(path2, mode="resume", fsync=False)
    assert sw2.report.tiles_recovered == 30 and sw2.report.bytes_dropped == 100
    assert os.path.getsize(path2) == size > size_at_checkpoint
    sw2.close()
    with tiffio.open(path2) as tif:
        numpy.testing.assert_array_equal(tif.ifds[0].asarray(), data)


COORDINATOR = """
import sys, time
import tiffio
path = sys.argv[1]
sw = tiffio.SharedWriter(path, missing="sparse", fsync=True)
sw.add_image((192, 160), "uint8", tile=(32, 32), compression="deflate")
print("ready", flush=True)
while True:
    sw.checkpoint()
    print("checkpoint", 30 - len(sw.missing_tiles()), flush=True)  # tiles held by the checkpoint on disk
    time.sleep(0.03)
"""


def test_kill9_producer_and_coordinator_then_resume(tmp_path):
    """2 producers append while the coordinator checkpoints; one producer and the coordinator are
    killed with SIGKILL at random moments; every tile of the last checkpoint survives; resume +
    rerunning the producers for the missing tiles gives the file an uninterrupted run gives."""
    data = _reference(tmp_path / "ref.tif")
    path = str(tmp_path / "shared.tif")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rng = random.Random()
    stall_after = rng.randint(1, 14)  # producer 0 appends this many of its 15 tiles, then waits for its kill
    coord = subprocess.Popen([sys.executable, "-c", COORDINATOR, path], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
    procs = []
    # hang detectors only (nothing here waits on time): kill whatever still runs after 120 s
    watchdogs = [threading.Timer(120, coord.kill)]
    watchdogs[0].start()
    try:
        assert coord.stdout.readline().strip() == "ready"
        # producer 0 (killed) stalls after stall_after tiles; producer 1 finishes
        for w, delay, extra in ((0, "0.02", [str(stall_after)]), (1, "0.02", [])):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.support.scale_workers", "append", path, str(w), "2", delay, *extra],
                cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            watchdogs.append(threading.Timer(120, procs[-1].kill))
            watchdogs[-1].start()
        for p in procs:
            assert p.stdout.readline().strip() == "started"
        assert procs[0].stdout.readline().split() == ["stalled", str(stall_after)]
        # kill the coordinator once a checkpoint holds at least `held` tiles (producer 0's are appended,
        # so one will), then at a random moment of a later checkpoint
        held = rng.randint(1, stall_after)
        while int(coord.stdout.readline().split()[1]) < held:
            pass
        procs[0].send_signal(signal.SIGKILL)
        time.sleep(rng.uniform(0.0, 0.2))
        coord.send_signal(signal.SIGKILL)
        assert coord.wait(60) == -signal.SIGKILL
        assert procs[0].wait(60) == -signal.SIGKILL
        assert procs[1].wait(60) == 0  # the other producer finishes (tiles after the checkpoint: records only)
    finally:
        for t in watchdogs:
            t.cancel()
        for p in [coord, *procs]:
            if p.poll() is None:  # pragma: no cover
                p.kill()
                p.wait()
            p.stdout.close()
            if p.stdin:
                p.stdin.close()
    with tiffio.open(path) as tif:
        before = {i for i, o in enumerate(tif.ifds[0].segment_offsets.to_numpy().tolist()) if o}
    assert held <= len(before) < 30
    sw = tiffio.SharedWriter(path, mode="resume", fsync=False)
    absorbed = {(r * 5 + c) for r in range(6) for c in range(5)} - {r * 5 + c for r, c in sw.missing_tiles()}
    assert before <= absorbed  # nothing checkpointed was lost
    assert {i for i in range(30) if (i // 5) % 2 == 1} <= absorbed  # the producer that finished: all found
    missing = set(sw.missing_tiles())
    assert missing  # the killed producer's rows are incomplete
    append_tiles(path, 0, 2, SHAPE, only_missing=missing)
    sw.close()
    with tiffio.open(path) as tif:
        numpy.testing.assert_array_equal(tif.ifds[0].asarray(), data)
    _same_tiles(path, tmp_path / "ref.tif")


def test_appender_needs_published_images(tmp_path):
    path = str(tmp_path / "shared.tif")
    sw = tiffio.SharedWriter(path, fsync=False)
    with pytest.raises(tiffio.TiffFormatError, match="no checkpoint"):
        tiffio.SharedAppender(path)
    sw.add_image(SHAPE, "uint8", tile=(TILE, TILE), compression="deflate")
    with tiffio.SharedAppender(path) as app:
        with pytest.raises(tiffio.TiffUsageError, match="image 1"):
            app.write_tile(0, 0, numpy.zeros((TILE, TILE), "uint8"), image=1)
        with pytest.raises(tiffio.TiffIndexError):
            app.write_tile(9, 0, numpy.zeros((TILE, TILE), "uint8"))
    sw.close()
