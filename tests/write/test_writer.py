"""Unit tests of tiffio.writer / tiffio.codecs.encode: API contract, errors, BigTIFF decision, threads,
pickling, file objects, disk-full behaviour and golden byte layouts."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy
import pytest
import tifffile

import tiffio
from tests.support.writer_helpers import FullDisk
from tiffio.codecs.encode import split_jpeg_tables

GOLDEN = Path(__file__).parent / "golden"


def image(shape, dtype="uint8", seed=0):
    rng = numpy.random.default_rng(seed)
    return (numpy.indices(shape).sum(0) * 7 + rng.integers(0, 4, shape)).astype(dtype)


def write_all(im, data, order=None):
    th, tw = im.tile
    coords = [(r, c) for r in range(im.tiles_down) for c in range(im.tiles_across)]
    for r, c in order or coords:
        im.write_tile(r, c, data[r * th:(r + 1) * th, c * tw:(c + 1) * tw])


# --- API and errors -------------------------------------------------------------------------------

def test_images_and_missing_tiles(tmp_path):
    with tiffio.TiffWriter(tmp_path / "a.tif") as w:
        a = w.add_image((40, 50), "uint8", tile=(16, 16))
        b = w.add_image((3, 20, 20), "uint16", tile=(16, 16), planarconfig="separate")
        assert w.images == [a, b]
        assert (a.tiles_down, a.tiles_across, a.tile_count) == (3, 4, 12)
        assert len(a.missing_tiles()) == 12
        a.write_tile(2, 3, numpy.ones((8, 2), "uint8"))  # cropped edge tile
        assert (2, 3) not in a.missing_tiles() and len(a.missing_tiles()) == 11
        b.write_tile(1, 0, numpy.ones((4, 16), "uint16"), plane=2)
        assert (1, 0, 2) not in b.missing_tiles() and len(b.missing_tiles()) == 3 * 4 - 1
    with tifffile.TiffFile(tmp_path / "a.tif") as tf:
        assert [p.shape for p in tf.pages] == [(40, 50), (3, 20, 20)]
        arr = tf.pages[0].asarray()
        assert arr[32:, 48:].tolist() == [[1, 1]] * 8 and arr[:32].sum() == 0


@pytest.mark.parametrize("bad, exc", [
    (numpy.zeros((16, 15), "uint8"), tiffio.TiffValueError),      # interior tile cropped
    (numpy.zeros((17, 16), "uint8"), tiffio.TiffValueError),
    (numpy.zeros((16, 16, 3), "uint8"), tiffio.TiffValueError),
    (numpy.zeros((16, 16), "uint16"), tiffio.TiffTypeError),
    (numpy.zeros((16, 16), "float32"), tiffio.TiffTypeError),
])
def test_bad_tiles(tmp_path, bad, exc):
    with tiffio.TiffWriter(tmp_path / "a.tif") as w:
        im = w.add_image((40, 50), "uint8", tile=(16, 16), compression="lzw")
        im.write_tile(0, 0, numpy.full((16, 16), 3, "uint8"))
        with pytest.raises(exc):
            im.write_tile(0, 1, bad)
    # what was written before stays readable
    assert tiffio.open(tmp_path / "a.tif").ifds[0].asarray()[:16, :16].tolist() == [[3] * 16] * 16


def test_bad_indices(tmp_path):
    with tiffio.TiffWriter(tmp_path / "a.tif") as w:
        im = w.add_image((40, 50), "uint8", tile=(16, 16))
        for r, c, p in [(3, 0, 0), (0, 4, 0), (-1, 0, 0), (0, 0, 1)]:
            with pytest.raises(tiffio.TiffIndexError):
                im.write_tile(r, c, numpy.zeros((16, 16), "uint8"), plane=p)
        with pytest.raises(tiffio.TiffTypeError):
            im.write_tile(0.5, 0, numpy.zeros((16, 16), "uint8"))
        with pytest.raises(tiffio.TiffTypeError):
            im.write_raw_tile(0, 0, "text")
        with pytest.raises(tiffio.TiffValueError):
            im.write_raw_tile(0, 0, b"")


@pytest.mark.parametrize("kwargs, exc", [
    (dict(compression="nope"), tiffio.TiffValueError),
    (dict(compression=2), tiffio.UnsupportedFeatureError),                 # CCITT
    (dict(compression="jpeg", predictor=2), tiffio.TiffValueError),
    (dict(predictor=3), tiffio.TiffValueError),                            # float predictor on ints
    (dict(predictor=2), tiffio.TiffValueError),                            # libtiff ignores it uncompressed
    (dict(compression="packbits", predictor=2), tiffio.TiffValueError),    # ... and with PackBits
    (dict(predictor=7), tiffio.TiffValueError),
    (dict(tile=(20, 16)), tiffio.TiffValueError),
    (dict(tile=16), tiffio.TiffTypeError),
    (dict(photometric="ycbcr"), tiffio.UnsupportedFeatureError),
    (dict(planarconfig="diagonal"), tiffio.TiffValueError),
    (dict(missing="maybe"), tiffio.TiffValueError),
    (dict(jpeg_quality=80), tiffio.TiffValueError),
    (dict(compression="jpeg", jpeg_quality=0), tiffio.TiffValueError),
    (dict(resolution=(1,)), tiffio.TiffValueError),
])
def test_bad_add_image(tmp_path, kwargs, exc):
    with tiffio.TiffWriter(tmp_path / "a.tif") as w:
        with pytest.raises(exc):
            w.add_image((40, 50, 3), "uint8", **kwargs)
        w.add_image((16, 16), "uint8", tile=(16, 16))


def test_bad_dtype_and_shape(tmp_path):
    with tiffio.TiffWriter(tmp_path / "a.tif") as w:
        with pytest.raises(tiffio.UnsupportedFeatureError):
            w.add_image((16, 16), bool)
        with pytest.raises(tiffio.UnsupportedFeatureError):
            w.add_image((16, 16), "uint16", compression="jpeg")
        with pytest.raises(tiffio.TiffValueError):
            w.add_image((16,), "uint8")
        with pytest.raises(tiffio.TiffValueError):
            w.add_image((0, 16), "uint8")
        w.add_image((16, 16), "uint8", tile=(16, 16))
    with pytest.raises(tiffio.TiffValueError):
        tiffio.TiffWriter(tmp_path / "b.tif", byteorder="=")
    with pytest.raises(tiffio.TiffTypeError):
        tiffio.TiffWriter(12.5)
    with pytest.raises(tiffio.SourceError) as info:
        tiffio.TiffWriter(tmp_path / "no" / "such" / "dir.tif")
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOENT


def test_missing_error_policy(tmp_path):
    path = tmp_path / "a.tif"
    w = tiffio.TiffWriter(path, missing="error")
    im = w.add_image((32, 32), "uint8", tile=(16, 16), compression="deflate")
    im.write_tile(0, 0, numpy.full((16, 16), 7, "uint8"))
    with pytest.raises(tiffio.TiffValueError, match="3 tiles were never written"):
        w.close()
    with tiffio.open(path) as tf:  # written anyway, missing tiles sparse
        ifd = tf.ifds[0]
        assert ifd.segment_offsets.to_numpy().tolist()[1:] == [0, 0, 0]
        assert ifd.asarray()[:16, :16].min() == 7 and ifd.asarray()[16:].max() == 0


def test_closed_writer(tmp_path):
    w = tiffio.TiffWriter(tmp_path / "a.tif")
    im = w.add_image((16, 16), "uint8", tile=(16, 16))
    w.close()
    w.close()  # idempotent
    with pytest.raises(tiffio.TiffUsageError):
        im.write_tile(0, 0, numpy.zeros((16, 16), "uint8"))
    with pytest.raises(tiffio.TiffUsageError):
        w.add_image((16, 16), "uint8")


# --- BigTIFF decision -----------------------------------------------------------------------------

def test_bigtiff_auto_switches(tmp_path):
    path = tmp_path / "a.tif"
    data = image((64, 64))
    with tiffio.TiffWriter(path) as w:
        w._appender.max_classic = 3000  # pretend 4 GiB is 3000 bytes
        im = w.add_image(data.shape, data.dtype, tile=(16, 16))
        write_all(im, data)
    with tifffile.TiffFile(path) as tf:
        assert tf.is_bigtiff
        numpy.testing.assert_array_equal(tf.asarray(), data)
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(data.shape, data.dtype, tile=(16, 16))
        write_all(im, data)
    with tifffile.TiffFile(path) as tf:
        assert not tf.is_bigtiff
        numpy.testing.assert_array_equal(tf.asarray(), data)


def test_bigtiff_false_overflow_is_clear(tmp_path):
    path = tmp_path / "a.tif"
    data = image((64, 64))
    w = tiffio.TiffWriter(path, bigtiff=False)
    w._appender.max_classic = 10000
    im = w.add_image(data.shape, data.dtype, tile=(16, 16))
    written = 0
    with pytest.raises(tiffio.LimitExceededError):
        for r in range(4):
            for c in range(4):
                im.write_tile(r, c, data[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16])
                written += 1
    assert 0 < written < 16
    w.close()
    with tifffile.TiffFile(path) as tf:
        assert not tf.is_bigtiff
        got = tf.asarray()
    for k in range(written):
        r, c = divmod(k, 4)
        numpy.testing.assert_array_equal(got[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16],
                                         data[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16])


# --- threads, pickling, raw tiles ----------------------------------------------------------------

@pytest.mark.parametrize("comp", ["deflate", "jpeg"])
def test_workers_equal_single_thread(tmp_path, comp):
    data = image((200, 300, 3))
    outs = []
    for workers in (1, 4):
        path = tmp_path / f"w{workers}.tif"
        with tiffio.TiffWriter(path) as w:
            im = w.add_image(data.shape, "uint8", tile=(32, 64), compression=comp, workers=workers)
            write_all(im, data)
            im.write_tile(0, 0, numpy.full((32, 64, 3), 99, "uint8"))  # the last write wins
        outs.append(tiffio.open(path).ifds[0].asarray())
    numpy.testing.assert_array_equal(outs[0], outs[1])
    if comp == "deflate":
        expected = data.copy()
        expected[:32, :64] = 99
        numpy.testing.assert_array_equal(outs[1], expected)


def _gated_encoder(monkeypatch, fail_value=None):
    """Make the writer's encoder threads wait for an event (and fail on tiles full of ``fail_value``)."""
    from tiffio.writer import feed as W
    gate = threading.Event()
    started = threading.Semaphore(0)
    real = W.encode_segment_parts

    def encode(spec, array):
        started.release()
        assert gate.wait(30)
        if fail_value is not None and (numpy.asarray(array) == fail_value).all():
            raise RuntimeError("encoder failed")
        return real(spec, array)

    monkeypatch.setattr(W, "encode_segment_parts", encode)
    return gate, started


def test_worker_error_is_raised(tmp_path, monkeypatch):
    gate, _started = _gated_encoder(monkeypatch, fail_value=7)
    gate.set()
    w = tiffio.TiffWriter(tmp_path / "a.tif")
    im = w.add_image((64, 64), "uint8", tile=(16, 16), compression="lzw", workers=2)
    im.write_tile(0, 0, numpy.zeros((16, 16), "uint8"))
    im.write_tile(0, 1, numpy.full((16, 16), 7, "uint8"))
    with pytest.raises(tiffio.TiffError, match="encoder failed"):
        w.flush()
    assert (0, 0) not in im.missing_tiles() and (0, 1) in im.missing_tiles()  # the failed tile is missing
    w.flush()  # the error was raised once
    w.close()
    assert tifffile.imread(tmp_path / "a.tif")[:16, 16:32].sum() == 0


def test_tiles_in_encoder_threads_are_not_missing(tmp_path, monkeypatch):
    gate, started = _gated_encoder(monkeypatch)
    data = image((64, 80))
    with tiffio.TiffWriter(tmp_path / "a.tif") as w:
        im = w.add_image(data.shape, "uint8", tile=(16, 16), compression="deflate", workers=2)
        assert len(im.missing_tiles()) == 20
        im.write_tile(1, 2, data[16:32, 32:48])
        im.write_tile(3, 4, data[48:64, 64:80])
        assert started.acquire(timeout=30) and started.acquire(timeout=30)  # both held in encoder threads
        assert not im.tiles.offsets.any()  # nothing stored yet ...
        missing = im.missing_tiles()  # ... but what was given counts as written
        assert len(missing) == 18 and (1, 2) not in missing and (3, 4) not in missing
        gate.set()
        w.flush()
        assert len(im.missing_tiles()) == 18
        assert int((im.tiles.offsets != 0).sum()) == 2
    got = tifffile.imread(tmp_path / "a.tif")
    numpy.testing.assert_array_equal(got[16:32, 32:48], data[16:32, 32:48])
    numpy.testing.assert_array_equal(got[48:64, 64:80], data[48:64, 64:80])
    assert got[:16].sum() == 0


def test_encoder_threads_exactly_workers(tmp_path):
    before = {t.ident for t in threading.enumerate()}
    with tiffio.TiffWriter(tmp_path / "a.tif") as w:
        im = w.add_image((256, 256), "uint8", tile=(16, 16), compression="zstd", workers=3)
        write_all(im, image((256, 256)))
        new = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("tiffio-encode")]
        assert len(new) == 3
        w.add_image((32, 32), "uint8", tile=(16, 16), workers=2)  # fewer: no new threads
        assert len([t for t in threading.enumerate() if t.name.startswith("tiffio-encode")
                    and t.ident not in before]) == 3
    for t in new:
        t.join(10)
        assert not t.is_alive()  # close() stops them


def _encode_in_process(args):
    encoder, tile = args
    return encoder.encode_tile(tile)


def test_pickled_encoder_in_processes(tmp_path):
    data = image((64, 96, 3))
    path = tmp_path / "p.tif"
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(data.shape, "uint8", tile=(32, 32), compression="jpeg", jpeg_quality=90)
        clone = pickle.loads(pickle.dumps(im))
        tiles = [data[r * 32:(r + 1) * 32, c * 32:(c + 1) * 32] for r in range(2) for c in range(3)]
        assert clone.encode_tile(tiles[0]) == im.encode_tile(tiles[0])
        with ProcessPoolExecutor(2) as pool:
            encoded = list(pool.map(im.encode_tile, tiles))
        for k, payload in enumerate(encoded):
            im.write_raw_tile(*divmod(k, 3), payload)
    ref = tiffio.TiffWriter(tmp_path / "ref.tif")
    im2 = ref.add_image(data.shape, "uint8", tile=(32, 32), compression="jpeg", jpeg_quality=90)
    write_all(im2, data)
    ref.close()
    numpy.testing.assert_array_equal(tifffile.imread(path), tifffile.imread(tmp_path / "ref.tif"))


def test_jpeg_abbreviated_streams(tmp_path):
    data = image((64, 64, 3))
    path = tmp_path / "j.tif"
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(data.shape, "uint8", tile=(32, 32), compression="jpeg")
        write_all(im, data)
    with tiffio.open(path) as tf:
        ifd = tf.ifds[0]
        tables = ifd.jpegtables
        assert tables[:2] == b"\xff\xd8" and tables[-2:] == b"\xff\xd9" and b"\xff\xdb" in tables
        assert ifd.photometric == 6 and ifd.subsampling == (2, 2)
        for i in range(ifd.segment_count):
            stream = ifd.read_segment_bytes(i)
            t, rest = split_jpeg_tables(stream)
            assert t == b"\xff\xd8\xff\xd9"  # no DQT/DHT in tiles
            assert rest == stream


# --- file objects and disk full -------------------------------------------------------------------

def test_file_object_target():
    buf = io.BytesIO()
    data = image((40, 40), "uint16")
    with tiffio.TiffWriter(buf, byteorder=">") as w:
        im = w.add_image(data.shape, data.dtype, tile=(16, 16), compression="zstd", predictor=2)
        write_all(im, data)
    numpy.testing.assert_array_equal(tifffile.imread(io.BytesIO(buf.getvalue())), data)


@pytest.mark.parametrize("limit", [3000, 9000])
def test_disk_full_in_encoder_threads(limit):
    """ENOSPC while an encoder thread stores its tile: raised by a later call, the tile is missing."""
    data = image((128, 128))
    sink = FullDisk(limit)
    w = tiffio.TiffWriter(sink, checkpoint_every=None, checkpoint_seconds=None)
    im = w.add_image(data.shape, "uint8", tile=(16, 16), compression="zstd", workers=2)
    with pytest.raises(tiffio.SourceError) as info:
        write_all(im, data)
        w.flush()
    assert info.value.errno == errno.ENOSPC
    for _ in range(100):  # tiles still in flight when it was raised fail too
        try:
            w.flush()
            break
        except tiffio.SourceError:
            pass
    w.flush()
    stored = int((im.tiles.offsets != 0).sum())
    assert len(im.missing_tiles()) >= 64 - stored > 0
    with pytest.raises(tiffio.SourceError):
        w.close()
    assert w.closed


@pytest.mark.parametrize("limit", [100, 900, 2000, 3500, 5000, 7000])
def test_disk_full(limit):
    data = image((64, 64))
    sink = FullDisk(limit)
    w = tiffio.TiffWriter(sink, checkpoint_every=4, checkpoint_seconds=None)
    im = None
    with pytest.raises(tiffio.SourceError) as info:
        im = w.add_image(data.shape, "uint8", tile=(16, 16), compression="deflate")
        write_all(im, data)
        w.close()
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    if w.images:
        with pytest.raises(tiffio.SourceError):
            w.close()  # the final checkpoint cannot be written either; the file is closed
    else:
        w.close()
    assert w.closed
    content = sink.getvalue()
    if content[:4] in (b"II*\0",):  # a checkpoint was reached: it is readable and holds whole tiles
        with tiffio.open(content) as tf:
            got = tf.ifds[0].asarray()
        tiles = [(r, c) for r in range(4) for c in range(4)]
        for r, c in tiles:
            part = got[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16]
            ref = data[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16]
            assert (part == ref).all() or (part == 0).all()
        numpy.testing.assert_array_equal(tifffile.imread(io.BytesIO(content)), got)
    elif w.images:  # images but no checkpoint: the header is still zero
        assert content[:16] == b"\0" * 16
    else:  # no image: the writer leaves nothing behind
        assert content == b""


# --- golden byte layouts --------------------------------------------------------------------------

def _golden_files():
    def gray_lzw(path):
        with tiffio.TiffWriter(path) as w:
            im = w.add_image((40, 50), "uint8", tile=(16, 32), compression="lzw", predictor=2,
                             description="golden", resolution=(72, 72))
            write_all(im, image((40, 50)), order=[(2, 1), (0, 0), (1, 1), (0, 1), (2, 0)])

    def rgb_jpeg_pyramid(path):
        with tiffio.TiffWriter(path, byteorder=">", bigtiff=True) as w:
            top = w.add_image((64, 64, 3), "uint8", tile=(32, 32), compression="jpeg", jpeg_quality=80)
            sub = w.add_image((32, 32, 3), "uint8", tile=(32, 32), compression="jpeg", jpeg_quality=80, parent=top)
            write_all(top, image((64, 64, 3)))
            write_all(sub, image((32, 32, 3), seed=1))

    def float_sparse(path):
        with tiffio.TiffWriter(path, missing="sparse") as w:
            im = w.add_image((32, 48), "float32", tile=(16, 16), compression="deflate", predictor=3)
            im.write_tile(1, 2, numpy.linspace(0, 1, 256, dtype="float32").reshape(16, 16))

    return {"gray_lzw.tif": gray_lzw, "rgb_jpeg_pyramid_be_big.tif": rgb_jpeg_pyramid,
            "float_sparse.tif": float_sparse}


@pytest.mark.parametrize("name", sorted(_golden_files()))
def test_golden(tmp_path, name):
    """The writer's byte layout is frozen: regenerate with TIFFIO_REGEN_GOLDEN=1 only on purpose."""
    path = tmp_path / name
    _golden_files()[name](path)
    data = path.read_bytes()
    golden = GOLDEN / name
    if os.environ.get("TIFFIO_REGEN_GOLDEN"):
        golden.write_bytes(data)
    assert golden.exists(), f"{golden} is missing; run with TIFFIO_REGEN_GOLDEN=1"
    expected = golden.read_bytes()
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(expected).hexdigest()
    with tifffile.TiffFile(golden) as tf:  # and it still reads
        assert tf.pages[0].asarray().shape == tf.pages[0].shape


# --- automatic checkpoints in the background ------------------------------------------------------

def test_background_checkpoints_sync_before_header(tmp_path, monkeypatch):
    """Automatic checkpoints with encoder threads: the header is rewritten only after an fsync that
    follows the write of the IFDs it points to; every header seen on disk is a valid checkpoint."""
    from tiffio.writer.sink import Sink
    events = []
    lock = threading.Lock()
    real_pwrite, real_sync = Sink.pwrite, Sink.sync

    def pwrite(self, offset, *parts):
        real_pwrite(self, offset, *parts)
        with lock:
            events.append(("write", offset, sum(memoryview(p).nbytes for p in parts), b"".join(parts)[:16]))

    def sync(self):
        real_sync(self)
        with lock:
            events.append(("sync", 0, 0, b""))

    monkeypatch.setattr(Sink, "pwrite", pwrite)
    monkeypatch.setattr(Sink, "sync", sync)
    data = image((160, 160, 3))
    path = tmp_path / "bg.tif"
    with tiffio.TiffWriter(path, checkpoint_every=7, checkpoint_seconds=None, fsync=True) as w:
        im = w.add_image(data.shape, "uint8", tile=(16, 16), compression="jpeg", workers=2)
        write_all(im, data)
        assert w.checkpoints >= 10
    headers = [k for k, e in enumerate(events) if e[0] == "write" and e[1] == 0 and e[3] != b"\0" * 16]
    assert len(headers) == w.checkpoints
    for k in headers:
        first_ifd = int.from_bytes(events[k][3][4:8], "little")
        blob = max(j for j, e in enumerate(events[:k]) if e[0] == "write" and e[1] < first_ifd <= e[1] + e[2])
        assert any(e[0] == "sync" for e in events[blob + 1:k])
    assert headers == sorted(headers)
    numpy.testing.assert_array_equal(tiffio.open(path).ifds[0].asarray(), tifffile.imread(path))


def test_background_writeback(tmp_path, monkeypatch):
    """With fsync=True, every so many bytes an fdatasync runs in a background thread (at most one
    at a time); close() waits for it. fsync=False never syncs."""
    from tiffio.writer import appender as W
    from tiffio.writer.sink import Sink
    calls = []
    real = Sink.datasync

    def datasync(self):
        calls.append(threading.current_thread().name)
        real(self)

    monkeypatch.setattr(Sink, "datasync", datasync)
    monkeypatch.setattr(W, "WRITEBACK_BYTES", 2000)
    data = image((128, 128, 3))
    for fsync in (True, False):
        calls.clear()
        path = tmp_path / f"wb{fsync}.tif"
        with tiffio.TiffWriter(path, fsync=fsync, checkpoint_every=None) as w:
            im = w.add_image(data.shape, "uint8", tile=(16, 16), compression="zstd", workers=2)
            write_all(im, data)
        assert (len(calls) > 0) == fsync and set(calls) <= {"tiffio-writeback"}
        assert not any(t.name == "tiffio-writeback" and t.is_alive() for t in threading.enumerate())
        numpy.testing.assert_array_equal(tifffile.imread(path), data)
