"""One writer per file, with real processes: a second writer, a retried shard task, recover or merge
on a file being written gets TiffUsageError naming it (and changes nothing); a writer killed with
SIGKILL leaves a file the next writer takes over; forked children never hold a writer's lock; and
Ctrl-C while encoder threads work always ends the writer promptly with its last checkpoint intact."""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading

import numpy
import pytest
import tifffile

import tiffio
from tests.support.cli_run import ENV, run
from tests.support.fingerprints import TILE, fingerprint, folder_listing, pixels

SHAPE = (64, 48)

#: a writer in another process: opens ``path`` (``w``: a new file; ``shard``: a shard of the plan below,
#: worker 0; ``resume``: resumes it), writes half of its tiles and a checkpoint, says "ready", then on
#: "finish" writes the rest and closes, on "exit" leaves without closing (os._exit)
HOLDER = textwrap.dedent("""
    import os, sys
    import numpy, tiffio
    how, path = sys.argv[1], sys.argv[2]
    TILE = 16
    data = numpy.random.default_rng(0).integers(0, 255, (64, 48), dtype=numpy.uint8)
    plan = tiffio.Plan.create((64, 48), "uint8", workers=1, tile=(TILE, TILE), compression="deflate")
    if how == "w":
        w = tiffio.TiffWriter(path, fsync=False, checkpoint_every=None, checkpoint_seconds=None)
        im = w.add_image(data.shape, "uint8", tile=(TILE, TILE), compression="deflate")
    elif how == "shard":
        w = plan.open_shard(path, fsync=False, checkpoint_every=None, checkpoint_seconds=None)
        im = w.images[0]
    else:
        w = tiffio.TiffWriter(path, mode="resume", fsync=False, checkpoint_every=None, checkpoint_seconds=None)
        im = w.images[0]
    tiles = [(r, c) for r in range(im.tiles_down) for c in range(im.tiles_across)]
    missing = set(im.missing_tiles())
    todo = [t for t in tiles if t in missing]
    for r, c in todo[: len(todo) // 2]:
        im.write_tile(r, c, data[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE])
    w.checkpoint()
    print("ready", os.getpid(), flush=True)
    command = sys.stdin.readline().strip()
    if command == "fork":  # a child that outlives this process, holding copies of its descriptors
        child = os.fork()
        if child == 0:
            import time
            time.sleep(60)
            os._exit(0)
        print("forked", child, flush=True)
        command = sys.stdin.readline().strip()
    if command == "open-close":  # another descriptor of the file, opened and closed in this process
        with tiffio.open(path) as tif:
            tif.ifds[0].asarray()
        print("reopened", flush=True)
        command = sys.stdin.readline().strip()
    if command == "finish":
        for r, c in todo[len(todo) // 2:]:
            im.write_tile(r, c, data[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE])
        w.close()
        print("closed", flush=True)
    else:
        os._exit(0)
""")


class Holder:
    """A writer process (HOLDER); every wait is bounded."""

    def __init__(self, tmp_path, how, path):
        script = tmp_path / "holder.py"
        script.write_text(HOLDER)
        self.proc = subprocess.Popen([sys.executable, str(script), how, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.pid = int(self.expect("ready").split()[1])

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def expect(self, word, timeout=120):
        line = self.lines.get(timeout=timeout)
        assert line.startswith(word), (line, self.proc.stderr.read() if not line else "")
        return line

    def send(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def finish(self):
        self.send("finish")
        self.expect("closed")
        assert self.proc.wait(timeout=60) == 0

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=60)


def _plan():
    return tiffio.Plan.create(SHAPE, "uint8", workers=1, tile=(TILE, TILE), compression="deflate")


def _second_writer_w(path, tmp_path):
    tiffio.TiffWriter(path)


def _second_writer_resume(path, tmp_path):
    tiffio.TiffWriter(path, mode="resume")


def _recover(path, tmp_path):
    tiffio.recover(path)


def _merge(path, tmp_path):
    tiffio.merge(tmp_path / "merged.tif", [path], missing="sparse")


def _open_shard(path, tmp_path):
    _plan().open_shard(path)


def _shared_writer(path, tmp_path):
    tiffio.SharedWriter(path, mode="resume")


def _cli_recover(path, tmp_path):
    proc = run("recover", path, check=1)
    assert proc.stderr.count("\n") == 1
    raise tiffio.TiffUsageError(proc.stderr)


SECOND = {"w": _second_writer_w, "resume": _second_writer_resume, "recover": _recover, "merge": _merge,
          "open_shard": _open_shard, "shared_writer": _shared_writer, "cli_recover": _cli_recover}


@pytest.mark.parametrize("second", sorted(SECOND))
def test_one_writer_per_file(tmp_path, second):
    """While a process writes a file, a second writer of any kind is refused with TiffUsageError naming
    the file, and changes nothing (a second mode='w' does not truncate it); the first then finishes
    a correct file."""
    path = tmp_path / "w.tif"
    holder = Holder(tmp_path, "w", path)
    try:
        before = fingerprint(path)
        with pytest.raises(tiffio.TiffUsageError) as info:
            SECOND[second](path, tmp_path)
        assert "w.tif" in str(info.value) and "one writer per file" in str(info.value)
        assert fingerprint(path) == before
        assert not (tmp_path / "merged.tif").exists()
        holder.finish()
    finally:
        holder.kill()
    numpy.testing.assert_array_equal(tifffile.imread(path), pixels(0, SHAPE))
    assert folder_listing(tmp_path) == ["holder.py", "w.tif"]  # the lock file went with its writer


def test_retried_shard_task_while_the_original_runs(tmp_path):
    """The README's shards flow: a retried task opens the same shard while the original still writes
    it: it gets the clear error instead of interleaving; once the original is done, merge is exact."""
    plan = _plan()
    shard = plan.shard_path(tmp_path / "m.tif", 0)
    holder = Holder(tmp_path, "shard", shard)
    try:
        with pytest.raises(tiffio.TiffUsageError, match="one writer per file"):
            with plan.open_shard(shard) as w:  # the retry
                w.images[0].write_tile(0, 0, numpy.full((TILE, TILE), 7, numpy.uint8))
        holder.finish()
    finally:
        holder.kill()
    report = tiffio.merge(tmp_path / "m.tif", [shard])
    assert report.duplicates == []
    numpy.testing.assert_array_equal(tifffile.imread(tmp_path / "m.tif"), pixels(0, SHAPE))


def test_two_resumes_of_one_shard(tmp_path):
    """Two retries resuming the same (crashed) shard at once: the second is refused."""
    plan = _plan()
    shard = plan.shard_path(tmp_path / "m.tif", 0)
    first = Holder(tmp_path, "shard", shard)
    first.send("exit")  # dies without closing
    first.proc.wait(timeout=60)
    second = Holder(tmp_path, "resume", shard)
    try:
        with pytest.raises(tiffio.TiffUsageError):
            plan.open_shard(shard)
        second.finish()
    finally:
        second.kill()
    tiffio.merge(tmp_path / "m.tif", [shard])
    numpy.testing.assert_array_equal(tifffile.imread(tmp_path / "m.tif"), pixels(0, SHAPE))


def test_killed_writer_is_taken_over(tmp_path):
    """SIGKILL frees the lock (the kernel closes the descriptors): the next writer resumes the file at
    once, keeps every checkpointed tile and finishes it; its lock file is then gone."""
    from tiffio.writer.lock import lock_path

    path = tmp_path / "w.tif"
    holder = Holder(tmp_path, "w", path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.proc.wait(timeout=60)
    assert os.path.exists(lock_path(path))  # left behind by the killed writer
    data = pixels(0, SHAPE)
    with tiffio.TiffWriter(path, mode="resume") as w:
        im = w.images[0]
        assert w.report.tiles_in_checkpoint == 6 and len(im.missing_tiles()) == 6
        for r, c in im.missing_tiles():
            im.write_tile(r, c, data[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE])
    numpy.testing.assert_array_equal(tifffile.imread(path), data)
    assert folder_listing(tmp_path) == ["holder.py", "w.tif"]


def test_lock_survives_another_descriptor_closed_in_the_same_process(tmp_path):
    """POSIX fcntl locks are dropped when any descriptor of the file closes in the process; the
    writer's flock is not: after the writer's process opens and closes the file with tiffio.open,
    another process is still refused."""
    path = tmp_path / "w.tif"
    holder = Holder(tmp_path, "w", path)
    try:
        holder.send("open-close")
        holder.expect("reopened")
        with pytest.raises(tiffio.TiffUsageError):
            tiffio.TiffWriter(path, mode="resume")
        holder.finish()
    finally:
        holder.kill()


def test_second_writer_in_the_same_process(tmp_path):
    path = tmp_path / "w.tif"
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(SHAPE, "uint8", tile=(TILE, TILE))
        im.write_tile(0, 0, numpy.ones((TILE, TILE), numpy.uint8))
        w.checkpoint()
        with tiffio.open(path) as tif:  # reading is never refused
            assert tif.ifds[0].shape == SHAPE
        for attempt in (lambda: tiffio.TiffWriter(path), lambda: tiffio.TiffWriter(path, mode="resume"),
                        lambda: tiffio.recover(path)):
            with pytest.raises(tiffio.TiffUsageError):
                attempt()
        assert os.path.getsize(path) > 0
    with tiffio.TiffWriter(path, mode="resume") as w:  # free again once closed
        assert w.images[0].missing_tiles()[0] == (0, 1)


def test_forked_children_do_not_keep_the_lock(tmp_path):
    """A writer's forked children (a process pool, say) outliving it do not hold its lock."""
    path = tmp_path / "w.tif"
    holder = Holder(tmp_path, "w", path)
    holder.send("fork")
    child = int(holder.expect("forked").split()[1])
    try:
        os.kill(holder.pid, signal.SIGKILL)
        holder.proc.wait(timeout=60)
        with tiffio.TiffWriter(path, mode="resume") as w:  # the child still runs
            os.kill(child, 0)
            assert w.report.tiles_in_checkpoint == 6
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:  # pragma: no cover
            pass


MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
60 27 0:50 / /mnt/nfs rw,relatime - nfs4 server:/export rw
61 27 0:51 / /mnt/smb rw,relatime - cifs //server/share rw
62 27 0:52 / /mnt/sshfs rw,relatime - fuse.sshfs user@host: rw
"""


def test_locks_are_refused_where_they_are_unreliable(tmp_path):
    from tiffio.writer.lock import require_local_filesystem

    assert require_local_filesystem("/data/x.tif", MOUNTINFO, purpose="lock") == "ext4"
    for path in ("/mnt/nfs/x.tif", "/mnt/smb/x.tif", "/mnt/sshfs/a/x.tif"):
        with pytest.raises(tiffio.UnsupportedFeatureError, match="lock=False"):
            require_local_filesystem(path, MOUNTINFO, purpose="lock")
    # lock=False: the caller's promise; no lock file is made
    with tiffio.TiffWriter(tmp_path / "x.tif", lock=False) as w:
        assert folder_listing(tmp_path) == ["x.tif"]
        w.add_image((16, 16), "uint8", tile=(16, 16)).write_tile(0, 0, numpy.zeros((16, 16), "uint8"))


# --- Ctrl-C with encoder threads -------------------------------------------------------------------

INTERRUPTED = textwrap.dedent("""
    import os, sys
    import numpy, tiffio
    folder, sessions = sys.argv[1], int(sys.argv[2])
    tile = numpy.random.default_rng(0).integers(0, 255, (16, 16, 3), "uint8")
    for k in range(sessions):
        try:
            with tiffio.TiffWriter(os.path.join(folder, f"w{k}.tif"), workers=2, checkpoint_every=64,
                                   checkpoint_seconds=None, fsync=False) as w:
                im = w.add_image((16 * 200, 16 * 200, 3), "uint8", tile=(16, 16))
                print("writing", k, flush=True)
                for r in range(im.tiles_down):
                    for c in range(im.tiles_across):
                        im.write_tile(r, c, tile)
            print("finished", k, flush=True)
        except KeyboardInterrupt:
            print("interrupted", k, flush=True)
""")


def test_ctrl_c_with_encoder_threads_always_ends_the_writer(tmp_path):
    """SIGINT at random instants of 150 writing sessions (2 encoder threads, small tiles: the main thread
    is often inside the queue) of one process: every interrupt ends its session, and its close() writes
    the final checkpoint (queue.Queue lost a wake-up in about one interrupt in 25, and close() hung).

    CPython itself drops a Ctrl-C that lands in a weakref callback ("Exception ignored in ..."): the
    session then goes on writing, and, as a user would, the test presses Ctrl-C again - only while
    the file still grows (a writer stuck in close() does not write)."""
    sessions = 150
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(sessions)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] and lines.put(""), daemon=True).start()
    rng = random.Random(11)
    pause = threading.Event().wait
    try:
        for k in range(sessions):
            assert lines.get(timeout=120).split() == ["writing", str(k)]
            pause(rng.uniform(0.0, 0.05))
            proc.send_signal(signal.SIGINT)
            path = out / f"w{k}.tif"
            for _ in range(30):  # at most 30 x 2 s for the writer to end
                try:
                    end = lines.get(timeout=2).split()
                    break
                except queue.Empty:
                    size = os.path.getsize(path)
                    pause(0.5)
                    if os.path.getsize(path) - size > 65536:  # still writing: the Ctrl-C was dropped
                        proc.send_signal(signal.SIGINT)
            else:
                pytest.fail(f"session {k}: the writer did not end within 60 s of Ctrl-C (a hang)")
            assert end in (["interrupted", str(k)], ["finished", str(k)]), end
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        proc.kill()
    tile = numpy.random.default_rng(0).integers(0, 255, (16, 16, 3), "uint8")
    for k in range(sessions):
        path = out / f"w{k}.tif"
        report = tiffio.recover(path)
        # closed on its final checkpoint: nothing after it to recover, nothing torn
        assert report.tiles_recovered == 0 and report.bytes_dropped == 0 and report.checkpoint_offset > 0, k
        with tiffio.open(path) as tif:
            ifd = tif.ifds[0]
            for index in range(0, ifd.segment_count, 997):
                got = ifd.read_segment(index)
                assert (got == tile).all() or not got.any()


def test_imagej_writer_is_one_writer_per_file_too(tmp_path):
    """ImageJWriter takes the TiffWriter's lock and checks: a second writer on the path (either
    kind) is refused while it is open, and the file it wrote is intact; a FIFO is not a target."""
    from tiffio.writer.imagej import ImageJWriter
    path = tmp_path / "stack.tif"
    planes = numpy.arange(4 * 8 * 8, dtype=numpy.uint16).reshape(4, 8, 8)
    with ImageJWriter(path, planes.shape, planes.dtype, axes="ZYX") as w:
        for i in range(4):
            w.write_plane(i, planes[i])
        for attempt in (lambda: ImageJWriter(path, (2, 8, 8), "uint16", axes="ZYX"),
                        lambda: tiffio.TiffWriter(path)):
            with pytest.raises(tiffio.TiffUsageError, match=r"stack\.tif"):
                attempt()
    numpy.testing.assert_array_equal(tifffile.imread(path), planes)
    with ImageJWriter(path, (2, 8, 8), "uint16", axes="ZYX") as w:  # free again once closed
        w.write_plane(0, planes[0])
    fifo = tmp_path / "fifo.tif"
    os.mkfifo(fifo)
    with pytest.raises(tiffio.TiffTypeError, match="FIFO"):  # as TiffWriter: refused, never opened
        ImageJWriter(fifo, (2, 8, 8), "uint16", axes="ZYX")
