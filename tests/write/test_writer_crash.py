"""Issue 5: crash-safe, resumable writing.

A child process writes an image and is killed with SIGKILL at a random write (before it,
or after half of its bytes: during tile writes, during a checkpoint, between the IFD write
and the header update). After each kill, tiffio, tifffile and libtiff must read every tile
of the last checkpoint; recover() + resume must finish the file to the pixels of an
uninterrupted run. Disk full (ENOSPC) is simulated at many positions with a file object.
"""

from __future__ import annotations

import errno
import io
import os
import random
import signal
import subprocess
import sys
import textwrap

import imagecodecs
import numpy
import pytest
import tifffile

import tiffio
from tests.support.writer_helpers import FullDisk

pytestmark = pytest.mark.crossval

SHAPE = (150, 170, 3)
TILE = (32, 32)

CHILD = textwrap.dedent("""
    import os, random, signal, sys
    import numpy
    sys.path.insert(0, {repo!r})
    import tiffio
    from tiffio.writer.sink import Sink

    kill_at, partial, seed, path = int(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
    workers, fsync = int(sys.argv[5]), sys.argv[6] == "1"
    calls = [0]
    real = Sink.pwrite

    def pwrite(self, offset, *parts):
        calls[0] += 1  # with encoder threads the count is approximate: fine for a random kill point
        if calls[0] == kill_at:
            if partial:
                data = b"".join(bytes(p) for p in parts)
                real(self, offset, data[: max(1, len(data) // 2)])
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, offset, *parts)

    Sink.pwrite = pwrite
    rng = numpy.random.default_rng(0)
    data = (numpy.indices({shape}).sum(0) * 5 + rng.integers(0, 9, {shape})).astype("uint8")
    th, tw = {tile}
    with tiffio.TiffWriter(path, checkpoint_every=5, checkpoint_seconds=None, fsync=fsync) as w:
        im = w.add_image(data.shape, "uint8", tile=(th, tw), compression="deflate", predictor=2, workers=workers)
        coords = [(r, c) for r in range(im.tiles_down) for c in range(im.tiles_across)]
        random.Random(seed).shuffle(coords)
        for r, c in coords:
            im.write_tile(r, c, data[r * th:(r + 1) * th, c * tw:(c + 1) * tw])
    print(calls[0])
""")


def expected_image():
    rng = numpy.random.default_rng(0)
    return (numpy.indices(SHAPE).sum(0) * 5 + rng.integers(0, 9, SHAPE)).astype("uint8")


def run_child(tmp_path, kill_at, partial, seed, workers=1, fsync=False):
    script = tmp_path / "child.py"
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script.write_text(CHILD.format(repo=repo, shape=SHAPE, tile=TILE))
    path = tmp_path / "crash.tif"
    proc = subprocess.run([sys.executable, str(script), str(kill_at), "1" if partial else "0", str(seed), str(path),
                           str(workers), "1" if fsync else "0"],
                          capture_output=True, text=True, timeout=120)
    return path, proc


def check_checkpoint_readable(path, data):
    """Every tile of the last checkpoint reads as written (or blank) in tiffio, tifffile and libtiff."""
    head = path.read_bytes()[:16]
    if head == b"\0" * 16:
        return 0  # killed before the first checkpoint: nothing to read yet
    th, tw = TILE
    with tiffio.open(path) as tf:
        ifd = tf.ifds[0]
        got = ifd.asarray()
        offsets = ifd.segment_offsets.to_numpy()
    raw = path.read_bytes()
    leader = tiffio.writer.LEADER.size
    written = 0
    for i, off in enumerate(offsets.tolist()):
        r, c = divmod(i, ifd.grid.across)
        part = got[r * th:(r + 1) * th, c * tw:(c + 1) * tw]
        if raw[off - leader: off - leader + 4] == tiffio.writer.MAGIC_BLANK:  # the shared blank tile
            assert not part.any()
        else:
            numpy.testing.assert_array_equal(part, data[r * th:(r + 1) * th, c * tw:(c + 1) * tw])
            written += 1
    numpy.testing.assert_array_equal(tifffile.imread(path), got)
    numpy.testing.assert_array_equal(imagecodecs.tiff_decode(path.read_bytes()), got)
    return written


def finish(path, data):
    report = tiffio.recover(path)
    assert isinstance(report, tiffio.RecoveryReport)
    if report.images:
        check_checkpoint_readable(path, data)  # the recovered file is a valid TIFF
    th, tw = TILE
    with tiffio.TiffWriter(path, mode="resume") as w:
        if not w.images:  # killed before add_image was stored
            im = w.add_image(data.shape, "uint8", tile=TILE, compression="deflate", predictor=2)
        im = w.images[0]
        assert len(im.missing_tiles()) == sum(report.missing_tiles) or not report.images
        for r, c in im.missing_tiles():
            im.write_tile(r, c, data[r * th:(r + 1) * th, c * tw:(c + 1) * tw])
        assert im.missing_tiles() == []
    for reader in (lambda p: tiffio.open(p).ifds[0].asarray(), tifffile.imread,
                   lambda p: imagecodecs.tiff_decode(p.read_bytes())):
        numpy.testing.assert_array_equal(reader(path), data)
    return report


def test_uninterrupted_run_counts_writes(tmp_path):
    path, proc = run_child(tmp_path, 10**9, False, 0)
    assert proc.returncode == 0, proc.stderr
    numpy.testing.assert_array_equal(tifffile.imread(path), expected_image())


@pytest.mark.parametrize("run", range(24))
def test_kill9_recover_resume(tmp_path, run):
    rng = random.Random(run)
    # an uninterrupted run makes about 1 + 1 + 30 + 7 * 3 writes (header, image, tiles, checkpoints)
    kill_at = rng.randint(2, 60)
    partial = rng.random() < 0.5
    data = expected_image()
    path, proc = run_child(tmp_path, kill_at, partial, seed=run)
    assert proc.returncode in (-signal.SIGKILL, 0), proc.stderr
    written = check_checkpoint_readable(path, data)
    report = finish(path, data)
    assert report.tiles_in_checkpoint + report.tiles_recovered >= written


@pytest.mark.parametrize("run", range(12))
def test_kill9_encoder_threads_background_checkpoints(tmp_path, run):
    """The same with 2 encoder threads and fsync=True: automatic checkpoints are then written
    without draining, and their fsync + header update run in a background thread."""
    rng = random.Random(1000 + run)
    kill_at = rng.randint(2, 60)
    partial = rng.random() < 0.5
    data = expected_image()
    path, proc = run_child(tmp_path, kill_at, partial, seed=run, workers=2, fsync=True)
    assert proc.returncode in (-signal.SIGKILL, 0), proc.stderr
    written = check_checkpoint_readable(path, data)
    report = finish(path, data)
    assert report.tiles_in_checkpoint + report.tiles_recovered >= written


def test_recover_reports_torn_tile(tmp_path):
    data = expected_image()
    path, proc = run_child(tmp_path, 13, True, seed=1)  # the 13th write is a tile, torn in half
    assert proc.returncode == -signal.SIGKILL
    report = tiffio.recover(path)
    assert report.bytes_dropped > 0
    assert report.images == 1 and report.checkpoint_offset > 0
    assert report.tiles_in_checkpoint + report.tiles_recovered == 30 - report.missing_tiles[0]
    assert report.tiles_recovered > 0
    finish(path, data)


def test_reader_sees_last_checkpoint_while_writing(tmp_path):
    data = expected_image()
    path = tmp_path / "live.tif"
    th, tw = TILE
    with tiffio.TiffWriter(path, checkpoint_every=None, checkpoint_seconds=None) as w:
        im = w.add_image(data.shape, "uint8", tile=TILE, compression="zstd")
        coords = [(r, c) for r in range(im.tiles_down) for c in range(im.tiles_across)]
        for k, (r, c) in enumerate(coords):
            im.write_tile(r, c, data[r * th:(r + 1) * th, c * tw:(c + 1) * tw])
            if k == 9:
                w.checkpoint()
            if k == 12:  # another process reads the last checkpoint: 10 tiles, the rest blank
                out = subprocess.run([sys.executable, "-c", ("import sys, tifffile; a = tifffile.imread(sys.argv[1]);"
                                      "sys.stdout.write(str(int(a.astype('int64').sum())))"), str(path)],
                                     capture_output=True, text=True, timeout=60)
                expected = data.copy()
                for r2, c2 in coords[10:]:
                    expected[r2 * th:(r2 + 1) * th, c2 * tw:(c2 + 1) * tw] = 0
                assert out.stdout == str(int(expected.astype("int64").sum())), out.stderr
    numpy.testing.assert_array_equal(tifffile.imread(path), data)


@pytest.mark.parametrize("limit", [60, 700, 1500, 3000, 4500, 6000, 8000, 10000, 14000, 20000])
def test_enospc_then_resume(limit):
    data = expected_image()
    th, tw = TILE
    sink = FullDisk(limit)
    w = tiffio.TiffWriter(sink, checkpoint_every=4, checkpoint_seconds=None)
    coords = [(r, c) for r in range(5) for c in range(6)]
    random.Random(limit).shuffle(coords)
    with pytest.raises(tiffio.SourceError) as info:
        im = w.add_image(data.shape, "uint8", tile=TILE, compression="lzw")
        for r, c in coords:
            im.write_tile(r, c, data[r * th:(r + 1) * th, c * tw:(c + 1) * tw])
        w.close()
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    try:
        w.close()
    except tiffio.SourceError:
        pass
    content = sink.getvalue()
    if content[:2] == b"II":  # the last checkpoint is valid
        got = tiffio.open(content).ifds[0].asarray()
        numpy.testing.assert_array_equal(tifffile.imread(io.BytesIO(content)), got)
    sink.limit = 10**9  # space freed
    sink.seek(0)
    # a writer that could not store its first image leaves nothing (not a file to resume): start again
    with tiffio.TiffWriter(sink, mode="resume" if content else "w") as w2:
        if not w2.images:
            w2.add_image(data.shape, "uint8", tile=TILE, compression="lzw")
        im = w2.images[0]
        for r, c in im.missing_tiles():
            im.write_tile(r, c, data[r * th:(r + 1) * th, c * tw:(c + 1) * tw])
    numpy.testing.assert_array_equal(tifffile.imread(io.BytesIO(sink.getvalue())), data)


def test_resume_refuses_foreign_files(tmp_path):
    path = tmp_path / "foreign.tif"
    tifffile.imwrite(path, numpy.zeros((16, 16), "uint8"))
    with pytest.raises(tiffio.TiffFormatError):
        tiffio.recover(path)
