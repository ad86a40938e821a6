"""Shards + merge: workers in real processes write crash-safe shards from one Plan; tiffio.merge
builds one TIFF without re-encoding (duplicates, torn shards, kill -9, refused mismatches)."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy
import pytest

import tiffio
from tests.support.scale_workers import TILE, level_arrays, tile_of, write_shard
from tiffio.read.cogcheck import check_cog

ROOT = Path(__file__).resolve().parents[2]


def _plan(workers=3, levels=1, shape=(200, 170), **kwargs):
    return tiffio.Plan.create(shape, "uint8", workers=workers, levels=levels, tile=(TILE, TILE),
                              compression=kwargs.pop("compression", "deflate"), **kwargs)


def _read_levels(path):
    with tiffio.open(path) as tif:
        return [lv.ifd.asarray() for lv in tif.levels]


def _single_process(plan, path):
    """The same image written by one writer: the reference."""
    levels = level_arrays(plan)
    with tiffio.TiffWriter(path) as w:
        for k, lv in enumerate(levels):
            im = w.add_image(lv.shape, "uint8", tile=(TILE, TILE), compression="deflate", reduced=k > 0)
            for r in range(im.tiles_down):
                for c in range(im.tiles_across):
                    im.write_tile(r, c, tile_of(lv, r, c))
    return path


def test_plan_ownership_and_pickle():
    plan = _plan(workers=3)
    assert plan.grid() == (7, 6)
    owned = [plan.tiles(w) for w in range(3)]
    assert sorted(t for tiles in owned for t in tiles) == [(r, c) for r in range(7) for c in range(6)]
    assert all(plan.owner(r, c) == w for w, tiles in enumerate(owned) for r, c in tiles)
    assert pickle.loads(pickle.dumps(plan)) == plan
    assert _plan(levels=3).level_shape(2) == (50, 43)
    with pytest.raises(tiffio.TiffValueError):
        tiffio.Plan.create((64, 64), "uint8", workers=2, compression="nonsense")
    with pytest.raises(tiffio.TiffIndexError):
        plan.tiles(3)


@pytest.mark.parametrize("layout", ["plain", "cog"])
def test_three_processes_merge_equals_one_writer(tmp_path, layout):
    plan = _plan(workers=3, levels=3)
    dst = tmp_path / "merged.tif"
    shards = [plan.shard_path(dst, w) for w in range(plan.workers)]
    with ProcessPoolExecutor(3, mp_context=get_context("spawn")) as pool:
        list(pool.map(write_shard, [plan] * 3, shards, range(3)))
    report = tiffio.merge(dst, shards, layout=layout)
    assert report.duplicates == [] and report.recovered_shards == []
    assert report.levels == 3 and report.sparse_tiles == 0
    ref = _single_process(plan, tmp_path / "ref.tif")
    for a, b, c in zip(_read_levels(dst), _read_levels(ref), level_arrays(plan)):
        numpy.testing.assert_array_equal(a, b)
        numpy.testing.assert_array_equal(a, c)
    # the raw tiles are the shards' bytes: nothing was re-encoded
    with tiffio.open(dst) as m, tiffio.open(shards[0]) as s0:
        for i in range(6):  # worker 0 owns the first rows
            assert m.ifds[0].read_segment_bytes(i) == s0.ifds[0].read_segment_bytes(i)
    if layout == "cog":
        assert check_cog(dst) == []
    assert all(os.path.exists(s) for s in shards)  # the shards are left as they were
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_duplicates_resolve_to_newest_and_are_reported(tmp_path):
    plan = _plan(workers=2)
    dst = tmp_path / "merged.tif"
    a, b, retry = (str(tmp_path / n) for n in ("a.tif", "b.tif", "retry.tif"))
    write_shard(plan, a, 0)
    write_shard(plan, b, 1)
    # a retried task of worker 0 wrote rows of worker 0 again, later, from other pixels
    time.sleep(0.01)
    with plan.open_shard(retry, fsync=False) as w:
        im = w.images[0]
        other = level_arrays(plan, seed=9)[0]
        im.write_tile(0, 0, tile_of(other, 0, 0))
        im.write_tile(1, 2, tile_of(other, 1, 2))
    os.utime(retry, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    report = tiffio.merge(dst, [retry, a, b])
    assert sorted((img, idx) for img, idx, _ in report.duplicates) == [(0, 0), (0, 1 * 6 + 2)]
    assert all(names == [retry, a] for _, _, names in report.duplicates)
    got = _read_levels(dst)[0]
    expected = level_arrays(plan)[0].copy()
    expected[0:32, 0:32] = tile_of(other, 0, 0)
    expected[32:64, 64:96] = tile_of(other, 1, 2)
    numpy.testing.assert_array_equal(got, expected)


def test_missing_tiles_error_or_sparse(tmp_path):
    plan = _plan(workers=2)
    a, b = str(tmp_path / "a.tif"), str(tmp_path / "b.tif")
    write_shard(plan, a, 0)
    write_shard(plan, b, 1, skip={(0, 6, 1)})
    with pytest.raises(tiffio.TiffValueError, match=r"1 tiles are in no shard.*\(6, 1\)"):
        tiffio.merge(tmp_path / "m.tif", [a, b])
    assert not os.path.exists(tmp_path / "m.tif")
    calls: list[tuple[int, int]] = []
    report = tiffio.merge(tmp_path / "m.tif", [a, b], missing="sparse", progress=lambda *c: calls.append(c))
    assert report.sparse_tiles == 1
    assert calls[0] == (0, report.data_bytes) and calls[-1] == (report.data_bytes, report.data_bytes)
    with tiffio.open(tmp_path / "m.tif") as tif:
        assert tif.ifds[0].is_sparse(6 * 6 + 1)


def test_mismatched_shards_are_refused(tmp_path):
    plan = _plan(workers=2)
    a, b = str(tmp_path / "a.tif"), str(tmp_path / "b.tif")
    write_shard(plan, a, 0)
    other = tiffio.Plan.create(plan.shape, "uint8", workers=2, tile=(TILE, TILE), compression="zstd")
    write_shard(other, b, 1)
    with pytest.raises(tiffio.TiffValueError, match="compression"):
        tiffio.merge(tmp_path / "m.tif", [a, b])
    # JPEG shards of another quality: other JPEGTables
    j1 = tiffio.Plan.create((64, 64, 3), "uint8", workers=2, tile=(TILE, TILE), compression="jpeg", jpeg_quality=90)
    j2 = tiffio.Plan.create((64, 64, 3), "uint8", workers=2, tile=(TILE, TILE), compression="jpeg", jpeg_quality=50)
    for plan_, path in ((j1, tmp_path / "j1.tif"), (j2, tmp_path / "j2.tif")):
        with plan_.open_shard(path, fsync=False) as w:
            w.images[0].write_tile(0, 0, numpy.zeros((TILE, TILE, 3), "uint8"))
    with pytest.raises(tiffio.TiffValueError, match="level 50 instead of 90"):
        tiffio.merge(tmp_path / "m.tif", [tmp_path / "j1.tif", tmp_path / "j2.tif"], missing="sparse")
    with pytest.raises(tiffio.TiffValueError, match="one of the shards"):
        tiffio.merge(a, [a, b])


def test_torn_shard_is_recovered_first(tmp_path):
    plan = _plan(workers=2)
    a, b = str(tmp_path / "a.tif"), str(tmp_path / "b.tif")
    write_shard(plan, a, 0)
    # worker 1 dies: a checkpoint after 5 tiles, more tiles after it, the last record torn
    levels = level_arrays(plan)
    w = plan.open_shard(b, checkpoint_every=5, checkpoint_seconds=None, fsync=False)
    im = w.images[0]
    tiles = plan.tiles(1)
    for r, c in tiles:
        im.write_tile(r, c, tile_of(levels[0], r, c))
    w._release()  # no final checkpoint: as after kill -9 (the kernel closes the file and frees its lock)
    w._closed = True
    size = os.path.getsize(b)
    with open(b, "r+b") as fh:
        fh.truncate(size - 7)
    report = tiffio.merge(tmp_path / "m.tif", [a, b], missing="sparse")
    assert report.recovered_shards == [b]
    assert report.sparse_tiles == 1  # only the torn last tile is lost
    got = _read_levels(tmp_path / "m.tif")[0]
    last_r, last_c = tiles[-1]
    expected = levels[0].copy()
    expected[last_r * TILE:(last_r + 1) * TILE, last_c * TILE:(last_c + 1) * TILE] = 0
    numpy.testing.assert_array_equal(got, expected)
    # the worker's retry resumes its shard and completes it: then the merge is whole
    write_shard(plan, b, 1)
    tiffio.merge(tmp_path / "m2.tif", [a, b])
    numpy.testing.assert_array_equal(_read_levels(tmp_path / "m2.tif")[0], levels[0])


def _spawn_worker(plan_args, path, worker, delay, every, *stall_after):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "tests.support.scale_workers", repr(plan_args), path, str(worker),
                             str(delay), str(every), *map(str, stall_after)], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_kill9_workers_then_resume_equals_uninterrupted(tmp_path):
    """Two worker processes, each killed with SIGKILL at a random moment; every tile checkpointed
    before the kill survives; rerunning the tasks completes shards whose merge equals an
    uninterrupted run."""
    args = {"shape": (192, 160), "workers": 2}
    plan = tiffio.Plan.create(args["shape"], "uint8", workers=2, tile=(TILE, TILE), compression="deflate")
    dst = tmp_path / "merged.tif"
    shards = [plan.shard_path(dst, w) for w in range(2)]
    rng = random.Random(1234)
    # each worker stalls after a random 4..14 of its 15 tiles (its first checkpoint, of 3 tiles, is due at
    # the 4th) and is killed there once that checkpoint is published (in the background)
    stalls = [rng.randint(4, 14) for _ in range(2)]
    procs = [_spawn_worker(args, shards[w], w, 0.0, 3, stalls[w]) for w in range(2)]
    try:
        for s, p, stall in zip(shards, procs, stalls):
            assert p.stdout.readline().strip() == "started"
            assert p.stdout.readline().split() == ["stalled", str(stall)]
            deadline = time.monotonic() + 120  # a hang detector only
            while time.monotonic() < deadline and open(s, "rb").read(8)[4:8] in (b"", b"\0\0\0\0"):
                time.sleep(0.005)
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            assert p.wait(30) == -signal.SIGKILL
            p.stdout.close()
            p.stdin.close()
    checkpointed = []
    for s in shards:
        if os.path.getsize(s) >= 16:
            with open(s, "rb") as fh:
                head = fh.read(16)
            if head[4:8] != b"\0\0\0\0":  # a checkpoint was published: its tiles must survive
                with tiffio.open(s) as tif:
                    offs = tif.ifds[0].segment_offsets.to_numpy()
                    checkpointed.append((s, {i for i, o in enumerate(offs.tolist()) if o}))
    assert len(checkpointed) == 2  # killed mid-way, after their first checkpoint
    assert all(3 <= len(before) <= stall for (_, before), stall in zip(checkpointed, stalls)), checkpointed
    levels = level_arrays(plan)
    # resume: rerun both tasks; they continue their shards (tiles already there are not rewritten)
    for w in range(2):
        p = _spawn_worker(args, shards[w], w, 0.0, 0)
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0 and "done" in out
    for s, before in checkpointed:
        with tiffio.open(s) as tif:
            offs = tif.ifds[0].segment_offsets.to_numpy()
            assert before <= {i for i, o in enumerate(offs.tolist()) if o}
    report = tiffio.merge(dst, shards)
    assert report.sparse_tiles == 0
    numpy.testing.assert_array_equal(_read_levels(dst)[0], levels[0])


def test_recovered_shard_does_not_win_over_a_newer_retry(tmp_path):
    """A crashed task's shard (recovered at merge time) and its retry hold the same tiles: the retry,
    written after the crash, wins, although the recovery touches the crashed shard last."""
    plan = _plan(workers=1)
    crashed, retry = str(tmp_path / "crashed.tif"), str(tmp_path / "retry.tif")
    other = level_arrays(plan, seed=5)[0]
    w = plan.open_shard(crashed, checkpoint_every=3, checkpoint_seconds=None, fsync=False)
    for r, c in plan.tiles(0)[:8]:
        w.images[0].write_tile(r, c, tile_of(other, r, c))
    w._release()  # killed: tiles after the last checkpoint are records only (the kernel frees the lock)
    w._closed = True
    past = time.time_ns() - 10**10
    os.utime(crashed, ns=(past, past))
    write_shard(plan, retry, 0)
    report = tiffio.merge(tmp_path / "m.tif", [crashed, retry])
    assert report.recovered_shards == [crashed]
    assert len(report.duplicates) == 8 and all(names == [retry, crashed] for _, _, names in report.duplicates)
    numpy.testing.assert_array_equal(_read_levels(tmp_path / "m.tif")[0], level_arrays(plan)[0])
