"""A file tiffio's writer did not make is never modified; what the writer makes survives a crash; its
temporaries cannot be redirected.

Every public entry point that repairs, resumes, appends to or merges a file is run on a set of
foreign files (zeros, sparse and preallocated zeros, 16 zero bytes then data, random bytes, TIFFs
written by GDAL and tifffile, a tiffio file whose first record is damaged, a folder, a FIFO): each
must raise a TiffError and leave the file byte for byte as it was (sha256, size, mtime), with
nothing created next to it. A complete tiffio file goes through the same entry points unchanged.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys

import numpy
import pytest
import tifffile

import tiffio
from tests.support.cli_run import ENV, run
from tests.support.fingerprints import (
    FOREIGN,
    TILE,
    complete_tiffio_file,
    fingerprint,
    folder_listing,
    make_foreign,
    pixels,
    write_tiles,
)
from tests.support.paths import FIXTURES, REPO
from tests.support.writer_helpers import FullDisk

GOLDEN = REPO / "tests" / "write" / "golden"


def _plan() -> tiffio.Plan:
    return tiffio.Plan.create((64, 48), "uint8", workers=1, tile=(TILE, TILE), compression="deflate")


def _recover(path, out):
    tiffio.recover(path)


def _resume(path, out):
    tiffio.TiffWriter(path, mode="resume").close()


def _open_shard(path, out):
    _plan().open_shard(path).close()


def _merge(path, out):
    tiffio.merge(out / "merged.tif", [path], missing="sparse")


def _shared_writer(path, out):
    tiffio.SharedWriter(path, mode="resume").close()


def _shared_appender(path, out):
    tiffio.SharedAppender(path).close()


def _cli_recover(path, out):
    proc = run("recover", path, check=None)
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr and "internal error" not in proc.stderr, \
        proc.stderr
    assert proc.stderr.count("\n") == 1 and os.path.basename(path) in proc.stderr, proc.stderr
    raise tiffio.TiffError(proc.stderr)


def _cli_merge(path, out):
    proc = run("merge", out / "merged.tif", path, check=None)
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr and "internal error" not in proc.stderr, \
        proc.stderr
    raise tiffio.TiffError(proc.stderr)


ENTRY_POINTS = {"recover": _recover, "resume": _resume, "open_shard": _open_shard, "merge": _merge,
                "shared_writer": _shared_writer, "shared_appender": _shared_appender, "cli_recover": _cli_recover,
                "cli_merge": _cli_merge}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("kind", FOREIGN)
def test_foreign_files_are_refused_and_left_unchanged(tmp_path, kind, entry):
    folder = tmp_path / "data"
    folder.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    path = make_foreign(kind, folder / "victim.tif")
    before, listing = fingerprint(path), folder_listing(folder)
    with pytest.raises(tiffio.TiffError):
        ENTRY_POINTS[entry](path, out)
    assert fingerprint(path) == before
    assert folder_listing(folder) == listing  # no lock file, no temporary left next to it
    assert folder_listing(out) == []          # merge wrote nothing


@pytest.mark.parametrize("entry", sorted(set(ENTRY_POINTS) - {"cli_recover", "cli_merge"}))
def test_complete_tiffio_file_is_left_unchanged(tmp_path, entry):
    """A file a writer closed cleanly: every entry point opens it and writes nothing (a plan of the
    same image resumes it as a finished shard; merge copies it elsewhere)."""
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "done.tif"
    data = complete_tiffio_file(path)
    before, listing = fingerprint(path), folder_listing(folder)
    ENTRY_POINTS[entry](path, tmp_path)
    assert fingerprint(path) == before
    assert folder_listing(folder) == listing
    numpy.testing.assert_array_equal(tifffile.imread(path), data)
    if entry == "merge":
        numpy.testing.assert_array_equal(tifffile.imread(tmp_path / "merged.tif"), data)


def test_cli_recover_complete_file_twice_is_byte_identical(tmp_path):
    path = tmp_path / "done.tif"
    complete_tiffio_file(path)
    before = fingerprint(path)
    for _ in range(2):
        doc = json.loads(run("recover", "--json", path).stdout)
        assert doc["tiles_recovered"] == 0 and doc["bytes_dropped"] == 0
        assert fingerprint(path) == before


def test_recover_is_idempotent(tmp_path):
    """A crashed file: the first recover writes a checkpoint; the second finds it complete and writes
    nothing (the file does not grow)."""
    path = tmp_path / "crashed.tif"
    data = pixels(3)
    w = tiffio.TiffWriter(path, checkpoint_every=None, checkpoint_seconds=None, fsync=False)
    im = w.add_image(data.shape, "uint8", tile=(TILE, TILE), compression="zstd")
    tiles = [(r, c) for r in range(im.tiles_down) for c in range(im.tiles_across)]
    write_tiles(im, data, tiles[:5])
    w.checkpoint()
    write_tiles(im, data, tiles[5:])
    w._release()  # as after kill -9: no final checkpoint, the kernel closes the file and frees its lock
    w._closed = True
    first = tiffio.recover(path)
    assert first.tiles_in_checkpoint == 5 and first.tiles_recovered == len(tiles) - 5
    after_first = fingerprint(path)
    second = tiffio.recover(path)
    assert second.tiles_in_checkpoint == len(tiles) and second.tiles_recovered == 0
    assert fingerprint(path) == after_first
    numpy.testing.assert_array_equal(tifffile.imread(path), data)


def test_recover_of_complete_file_writes_nothing(tmp_path):
    path = tmp_path / "done.tif"
    complete_tiffio_file(path)
    before = fingerprint(path)
    report = tiffio.recover(path)
    assert report.tiles_recovered == 0 and report.changes == 0
    assert fingerprint(path) == before


# --- a writer that stores no image leaves no file ------------------------------------------------

def test_writer_closed_without_image_leaves_no_file(tmp_path):
    path = tmp_path / "nothing.tif"
    tiffio.TiffWriter(path).close()
    assert folder_listing(tmp_path) == []
    with tiffio.TiffWriter(path):
        pass
    assert folder_listing(tmp_path) == []


def test_failed_add_image_leaves_no_file(tmp_path):
    path = tmp_path / "failed.tif"
    with pytest.raises(tiffio.TiffValueError), tiffio.TiffWriter(path) as w:
        w.add_image((32, 32), "uint8", tile=(16, 16), resolution=(float("nan"), 72))
    assert folder_listing(tmp_path) == []
    # an image stored before the failing one: a valid file holding it
    data = pixels(0, (32, 32))
    with pytest.raises(tiffio.TiffValueError), tiffio.TiffWriter(path) as w:
        im = w.add_image((32, 32), "uint8", tile=(16, 16))
        write_tiles(im, data)
        w.add_image((32, 32), "uint8", tile=(16, 16), extratags=[(70000, 3, 1, 1)])
    numpy.testing.assert_array_equal(tifffile.imread(path), data)


def test_file_object_without_image_is_left_empty():
    sink = FullDisk(10**9)
    sink.write(b"old content")
    tiffio.TiffWriter(sink).close()
    assert sink.getvalue() == b""


def test_file_that_holds_nothing_is_not_resumed(tmp_path):
    """An empty file (a writer killed before its first image) is not a working file: resume refuses it
    and leaves it; Plan.open_shard starts such a shard again."""
    path = tmp_path / "empty.tif"
    path.write_bytes(b"")
    with pytest.raises(tiffio.TiffFormatError):
        tiffio.recover(path)
    assert path.read_bytes() == b""
    with _plan().open_shard(path) as w:
        write_tiles(w.images[0], pixels(0))
    numpy.testing.assert_array_equal(tifffile.imread(path), pixels(0))


# --- what survives a crash -----------------------------------------------------------------------

def _three_checkpoints(path):
    """A file with checkpoints after 4, 8 and 12 of its 12 tiles, and the header of each moment."""
    data = pixels(5)
    headers, ends = [], []
    w = tiffio.TiffWriter(path, checkpoint_every=None, checkpoint_seconds=None, fsync=False)
    im = w.add_image(data.shape, "uint8", tile=(TILE, TILE), compression="deflate")
    tiles = [(r, c) for r in range(im.tiles_down) for c in range(im.tiles_across)]
    for k in range(3):
        write_tiles(im, data, tiles[4 * k: 4 * k + 4])
        w.checkpoint()
        headers.append(path.read_bytes()[:16])
        ends.append(os.path.getsize(path))
    w._release()
    w._closed = True
    return data, headers, ends


def test_tiles_after_an_unpublished_checkpoint_are_recovered(tmp_path):
    """A checkpoint whose header update never happened (the writer died, or the fsync before it
    failed) must not make the tiles written after it unrecoverable: the scan passes over its IFDs."""
    path = tmp_path / "w.tif"
    data, headers, _ = _three_checkpoints(path)
    raw = bytearray(path.read_bytes())
    raw[:16] = headers[0]  # the header still points at the first checkpoint
    path.write_bytes(bytes(raw))
    report = tiffio.recover(path)
    assert report.tiles_in_checkpoint == 4 and report.tiles_recovered == 8 and report.bytes_dropped == 0
    numpy.testing.assert_array_equal(tifffile.imread(path), data)


@pytest.mark.parametrize("cut", [1, 40, 200, -30])
def test_cut_off_checkpoint_recovers_from_the_tile_records(tmp_path, cut):
    """A truncated copy whose header points at a checkpoint cut off: every tile record before the cut
    is recovered (the images are rebuilt from the records), not given up."""
    path = tmp_path / "w.tif"
    data, _headers, ends = _three_checkpoints(path)
    size = ends[1] + cut if cut > 0 else ends[2] + cut  # inside the second / third checkpoint
    raw = path.read_bytes()[:size]
    copy = tmp_path / "copy.tif"
    copy.write_bytes(raw)
    report = tiffio.recover(copy)
    assert report.ignored_checkpoint > 0 and report.checkpoint_offset == 0
    expected_tiles = 8 if cut > 0 else 12
    assert report.tiles_recovered == expected_tiles
    got = tifffile.imread(copy)
    th = TILE
    for index in range(12):
        r, c = divmod(index, 3)
        part = got[r * th:(r + 1) * th, c * th:(c + 1) * th]
        if index < expected_tiles:
            numpy.testing.assert_array_equal(part, data[r * th:(r + 1) * th, c * th:(c + 1) * th])
        else:
            assert not part.any()


def test_checkpoint_that_fails_keeps_earlier_tiles_recoverable():
    """Disk full during a checkpoint: the tiles stored before it, and those stored after space came
    back, are all recovered (the failed checkpoint's bytes are overwritten, never trusted)."""
    data = pixels(7)
    sink = FullDisk(10**9)
    w = tiffio.TiffWriter(sink, checkpoint_every=None, checkpoint_seconds=None)
    im = w.add_image(data.shape, "uint8", tile=(TILE, TILE), compression="deflate")
    tiles = [(r, c) for r in range(im.tiles_down) for c in range(im.tiles_across)]
    write_tiles(im, data, tiles[:4])
    w.checkpoint()
    write_tiles(im, data, tiles[4:8])
    sink.limit = len(sink.getvalue()) + 40  # the next checkpoint does not fit
    with pytest.raises(tiffio.SourceError):
        w.checkpoint()
    sink.limit = 10**9
    write_tiles(im, data, tiles[8:])
    content = sink.getvalue()  # the writer dies here (no close)
    crashed = FullDisk(10**9)
    crashed.write(content)
    with tiffio.TiffWriter(crashed, mode="resume") as w2:
        assert w2.report.tiles_in_checkpoint == 4 and w2.report.tiles_recovered == 8
        assert w2.images[0].missing_tiles() == []
    numpy.testing.assert_array_equal(tifffile.imread(io.BytesIO(crashed.getvalue())), data)


# --- temporaries that cannot be redirected -------------------------------------------------------

def _plant(link, sentinel):
    sentinel.write_bytes(b"precious")
    os.symlink(sentinel, link)


def _check_sentinel(sentinel):
    assert sentinel.read_bytes() == b"precious"


def test_relayout_temporary_not_redirected(tmp_path):
    src = FIXTURES / "gdal" / "cog_jpeg_rgb.tif"
    dst = tmp_path / "out.tif"
    sentinel = tmp_path / "sentinel"
    _plant(tmp_path / f"out.tif.tmp-{os.getpid()}", sentinel)  # the name relayout used to write
    tiffio.relayout(src, dst, layout="plain")
    _check_sentinel(sentinel)
    assert not os.path.islink(dst)
    numpy.testing.assert_array_equal(tiffio.open(dst).ifds[0].asarray(), tiffio.open(src).ifds[0].asarray())
    assert folder_listing(tmp_path) == sorted(["out.tif", "sentinel", f"out.tif.tmp-{os.getpid()}"])


def test_merge_temporary_not_redirected(tmp_path):
    shard = tmp_path / "shard.tif"
    data = complete_tiffio_file(shard)
    sentinel = tmp_path / "sentinel"
    _plant(tmp_path / f"m.tif.tmp-{os.getpid()}", sentinel)
    tiffio.merge(tmp_path / "m.tif", [shard])
    _check_sentinel(sentinel)
    numpy.testing.assert_array_equal(tifffile.imread(tmp_path / "m.tif"), data)


def test_convert_temporary_not_redirected(tmp_path):
    sentinel = tmp_path / "sentinel"
    _plant(tmp_path / "out.tif.partial", sentinel)  # the name convert used to write
    run("convert", FIXTURES / "gdal" / "cog_jpeg_rgb.tif", tmp_path / "out.tif", "--compression", "zstd", "-q")
    _check_sentinel(sentinel)
    assert not os.path.islink(tmp_path / "out.tif")
    numpy.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"),
                                     tifffile.imread(FIXTURES / "gdal" / "cog_jpeg_rgb.tif"))
    assert folder_listing(tmp_path) == ["out.tif", "out.tif.partial", "sentinel"]


def test_convert_cog_leaves_no_temporary(tmp_path):
    sentinel = tmp_path / "sentinel"
    _plant(tmp_path / "out.tif.tiled.partial", sentinel)
    run("convert", FIXTURES / "gdal" / "cog_jpeg_rgb.tif", tmp_path / "out.tif", "--cog", "--tile", "64",
        "--compression", "zstd", "-q")
    _check_sentinel(sentinel)
    assert tiffio.check_cog(tmp_path / "out.tif") == []
    assert folder_listing(tmp_path) == ["out.tif", "out.tif.tiled.partial", "sentinel"]


def test_lock_file_symlink_is_not_followed(tmp_path):
    sentinel = tmp_path / "sentinel"
    _plant(tmp_path / ".w.tif.tiffio-lock", sentinel)
    with pytest.raises(tiffio.TiffUsageError, match="symbolic link"):
        tiffio.TiffWriter(tmp_path / "w.tif")
    _check_sentinel(sentinel)
    assert not (tmp_path / "w.tif").exists()


def test_temporaries_removed_on_error(tmp_path):
    # relayout from a source whose tile data is cut off: the copy fails, nothing is left
    src = tmp_path / "cut.tif"
    raw = (FIXTURES / "gdal" / "cog_jpeg_rgb.tif").read_bytes()
    src.write_bytes(raw[: len(raw) - 4000])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(tiffio.TiffError):
        tiffio.relayout(src, out / "x.tif", layout="plain")
    assert folder_listing(out) == []
    # an atomic writer left by an exception, or closed with no image: its temporary is removed
    with pytest.raises(RuntimeError), tiffio.TiffWriter(out / "a.tif", atomic=True) as w:
        im = w.add_image((64, 48), "uint8", tile=(TILE, TILE))
        write_tiles(im, pixels(0), [(0, 0)])
        assert [n for n in folder_listing(out) if n.startswith(".a.tif.") and n.endswith(".partial")]
        raise RuntimeError("stop")
    tiffio.TiffWriter(out / "b.tif", atomic=True).close()
    assert folder_listing(out) == []
    # convert from a source that fails half-way
    run("convert", src, out / "c.tif", "--tile", "16", check=1)
    assert folder_listing(out) == []


def test_atomic_writer_replaces_only_when_complete(tmp_path):
    path = tmp_path / "a.tif"
    path.write_bytes(b"old")
    with tiffio.TiffWriter(path, atomic=True) as w:
        im = w.add_image((64, 48), "uint8", tile=(TILE, TILE), compression="zstd")
        write_tiles(im, pixels(1))
        assert path.read_bytes() == b"old"  # untouched until close
    numpy.testing.assert_array_equal(tifffile.imread(path), pixels(1))
    assert folder_listing(tmp_path) == ["a.tif"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_have_the_permissions_of_a_normal_file(tmp_path, umask):
    """Final files get 0o666 less the umask, as a file the user creates (not a temporary's 0600)."""
    script = f"""
import os, numpy, tiffio
os.umask({umask})
with tiffio.TiffWriter("atomic.tif", atomic=True) as w:
    im = w.add_image((16, 16), "uint8", tile=(16, 16))
    im.write_tile(0, 0, numpy.zeros((16, 16), "uint8"))
with tiffio.TiffWriter("plain.tif") as w:
    im = w.add_image((16, 16), "uint8", tile=(16, 16))
    im.write_tile(0, 0, numpy.zeros((16, 16), "uint8"))
tiffio.relayout("plain.tif", "relayout.tif", layout="plain")
tiffio.merge("merged.tif", ["plain.tif"])
"""
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=ENV, check=True, timeout=120)
    src = FIXTURES / "gdal" / "cog_jpeg_rgb.tif"
    subprocess.run([sys.executable, "-c", (f"import os, sys; os.umask({umask}); from tiffio.cli import main; "
                    f"sys.exit(main(['convert', {str(src)!r}, 'converted.tif', '-q']))")],
                   cwd=tmp_path, env=ENV, check=True, timeout=120)
    expected = 0o666 & ~umask
    for name in ("atomic.tif", "plain.tif", "relayout.tif", "merged.tif", "converted.tif"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == expected, name


def test_publish_syncs_file_then_renames_then_syncs_folder(tmp_path, monkeypatch):
    """The order that makes a rename durable and never exposes a partial file: fsync of the
    temporary, rename, fsync of the folder (recorded, the calls still made)."""
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        calls.append(("fsync", kind))
        return real_fsync(fd)

    def replace(a, b):
        calls.append(("replace", os.path.basename(b)))
        return real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    tiffio.relayout(FIXTURES / "gdal" / "cog_jpeg_rgb.tif", tmp_path / "r.tif", layout="plain")
    assert calls == [("fsync", "file"), ("replace", "r.tif"), ("fsync", "folder")]


def test_pyramid_spill_leaves_nothing(tmp_path):
    data = numpy.random.default_rng(0).integers(0, 255, (256, 256), numpy.uint8)
    tiles = [(r, c) for r in range(16) for c in range(16)]
    numpy.random.default_rng(1).shuffle(tiles)
    with tiffio.TiffWriter(tmp_path / "p.tif") as w:
        im = w.add_image(data.shape, "uint8", tile=(TILE, TILE), pyramid=True, pyramid_budget=256)
        for r, c in tiles:
            im.write_tile(r, c, data[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE])
        assert im.pyramid_stats["spills"] > 0
    assert folder_listing(tmp_path) == ["p.tif"]


# --- non-regular files --------------------------------------------------------------------------

def test_cli_recover_refuses_devices(tmp_path):
    proc = run("recover", "/dev/zero", check=2)
    assert "character device" in proc.stderr and "torn" not in proc.stderr and proc.stderr.count("\n") == 1
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = run("recover", fifo, check=2, timeout=60)
    assert "FIFO" in proc.stderr


def test_writer_refuses_non_regular_targets(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target, mode in ((fifo, "w"), (fifo, "resume"), (tmp_path, "w"), ("/dev/null", "w")):
        with pytest.raises(tiffio.TiffTypeError):
            tiffio.TiffWriter(target, mode=mode)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_shard_folder_listing_is_clean_after_merge(tmp_path):
    """Locks are released (their hidden files removed) once a merge is done."""
    shards = []
    plan = tiffio.Plan.create((64, 48), "uint8", workers=2, tile=(TILE, TILE))
    for k in range(2):
        path = plan.shard_path(tmp_path / "m.tif", k)
        with plan.open_shard(path) as w:
            for r, c in plan.tiles(k):
                w.images[0].write_tile(r, c, pixels(0)[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE])
        shards.append(path)
    tiffio.merge(tmp_path / "m.tif", shards)
    assert folder_listing(tmp_path) == sorted(["m.tif"] + [os.path.basename(s) for s in shards])
    numpy.testing.assert_array_equal(tifffile.imread(tmp_path / "m.tif"), pixels(0))


def test_outputs_never_replace_a_folder_device_or_fifo(tmp_path):
    """relayout, merge and atomic writers rename their output into place: never over a FIFO or a folder
    (or, run as root, a device such as /dev/null)."""
    shard = tmp_path / "shard.tif"
    complete_tiffio_file(shard)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    for dst in (fifo, folder):
        before = fingerprint(dst)
        with pytest.raises(tiffio.TiffTypeError):
            tiffio.relayout(shard, dst, layout="plain")
        with pytest.raises(tiffio.TiffTypeError):
            tiffio.merge(dst, [shard])
        with pytest.raises(tiffio.TiffTypeError):
            tiffio.TiffWriter(dst, atomic=True)
        assert fingerprint(dst) == before
    assert folder_listing(tmp_path) == ["fifo", "folder", "shard.tif"]


@pytest.mark.parametrize("name", ["gray_lzw.tif", "rgb_jpeg_pyramid_be_big.tif", "float_sparse.tif"])
def test_files_of_the_current_format_are_accepted(tmp_path, name):
    """No format change: the frozen golden files (written before the signature was checked) prove to
    be working files, recover as complete (unchanged) and resume."""
    path = tmp_path / name
    shutil.copyfile(GOLDEN / name, path)
    before = fingerprint(path)
    report = tiffio.recover(path)
    assert report.changes == 0 and report.checkpoint_offset > 0
    assert fingerprint(path) == before
    with tiffio.TiffWriter(path, mode="resume") as w:
        assert len(w.images) == report.images
    assert fingerprint(path) == before
