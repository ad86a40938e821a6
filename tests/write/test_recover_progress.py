"""``tiffio.recover(path, progress=...)``: the scan of the records written after the last checkpoint
reports (bytes scanned, bytes to scan), on files a real writer process left behind (SIGKILL halfway
through a tile's record)."""

from __future__ import annotations

import shutil

import numpy
import pytest

import tiffio
from tests.support.writer_helpers import crash_writer
from tiffio.writer import LEADER
from tiffio.writer.recovery import PROGRESS_STEP

SIDE, TILE = 2048, 64            # 1,024 uncompressed tiles of 4,096 bytes: ~4 MiB after the checkpoint
RECORD = LEADER.size + TILE * TILE


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """(path of a pristine crashed file, the image its writer was given); tests work on copies."""
    path = tmp_path_factory.mktemp("crash") / "crashed.tif"
    data = crash_writer(path, side=SIDE, tile=TILE, checkpoint_after=20)
    return path, data


def _copy(src, tmp_path, name):
    dst = tmp_path / name
    shutil.copyfile(src, dst)
    return dst


def _expected(data):
    """What recovery gives: every tile but the last (torn), which stays blank."""
    out = data.copy()
    out[-TILE:, -TILE:] = 0
    return out


def _fields(report):
    return {k: v for k, v in vars(report).items() if k != "path"}


def test_progress_is_monotone_bounded_and_ends_at_total(crashed, tmp_path):
    src, data = crashed
    path = _copy(src, tmp_path, "a.tif")
    size_before = path.stat().st_size
    calls = []
    report = tiffio.recover(path, progress=lambda done, total: calls.append((done, total)))
    assert report.checkpoint_offset > 0 and report.tiles_in_checkpoint == 20
    assert report.tiles_recovered == 1024 - 21 and report.missing_tiles == [1]
    assert report.bytes_dropped == RECORD // 2
    total = calls[0][1]
    # what is scanned: every complete tile record after the checkpoint, then the torn half record
    assert total == report.tiles_recovered * RECORD + report.bytes_dropped
    assert total < size_before
    assert all(t == total for _, t in calls)
    dones = [d for d, _ in calls]
    assert dones[0] == 0 and dones[-1] == total
    assert all(b > a for a, b in zip(dones, dones[1:]))          # strictly increasing
    inner = dones[1:-1]
    assert len(inner) == total // PROGRESS_STEP == 3              # ~4 MiB: one call per MiB, no more
    assert all(d % RECORD == 0 for d in inner)                    # at record boundaries
    assert all(b - a >= PROGRESS_STEP for a, b in zip(dones[:-1], inner))
    with tiffio.open(path) as tf:
        numpy.testing.assert_array_equal(tf.ifds[0].asarray(), _expected(data))


def test_result_is_identical_with_and_without_progress(crashed, tmp_path):
    src, data = crashed
    plain, watched = _copy(src, tmp_path, "plain.tif"), _copy(src, tmp_path, "watched.tif")
    r1 = tiffio.recover(plain)
    r2 = tiffio.recover(watched, progress=lambda done, total: None)
    assert _fields(r1) == _fields(r2)
    assert plain.read_bytes() == watched.read_bytes()
    with tiffio.open(plain) as a, tiffio.open(watched) as b:
        numpy.testing.assert_array_equal(a.ifds[0].asarray(), _expected(data))
        numpy.testing.assert_array_equal(b.ifds[0].asarray(), _expected(data))


class Stop(Exception):
    pass


@pytest.mark.parametrize(("raise_at", "exc"), [(0, Stop), (2, Stop), (-1, Stop), (1, KeyboardInterrupt)])
def test_a_progress_that_raises_propagates_and_loses_nothing(crashed, tmp_path, raise_at, exc):
    """The exception comes out of recover (first call, mid-scan, the final done == total call; Ctrl-C
    too); the file is left byte for byte as it was, and a second recover without a callback gets
    the full result."""
    src, data = crashed
    path = _copy(src, tmp_path, "a.tif")
    reference = _copy(src, tmp_path, "ref.tif")
    expected_report = tiffio.recover(reference)
    before = path.read_bytes()
    calls = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) - 1 == raise_at or (raise_at == -1 and done == total):
            raise exc("stop")

    with pytest.raises(exc, match="stop"):
        tiffio.recover(path, progress=progress)
    assert path.read_bytes() == before
    report = tiffio.recover(path)
    assert _fields(report) == _fields(expected_report)
    assert path.read_bytes() == reference.read_bytes()
    with tiffio.open(path) as tf:
        numpy.testing.assert_array_equal(tf.ifds[0].asarray(), _expected(data))


def test_no_checkpoint_yet_scans_from_the_header(tmp_path):
    """Killed before its first checkpoint: the whole record log is scanned (total = size - 16)."""
    path = tmp_path / "early.tif"
    data = crash_writer(path, side=256, tile=TILE, checkpoint_after=-1)
    size_before = path.stat().st_size
    calls = []
    report = tiffio.recover(path, progress=lambda done, total: calls.append((done, total)))
    assert report.checkpoint_offset == 0 and report.tiles_recovered == 15
    assert calls == [(0, size_before - 16), (size_before - 16, size_before - 16)]
    with tiffio.open(path) as tf:
        numpy.testing.assert_array_equal(tf.ifds[0].asarray(), _expected(data))
