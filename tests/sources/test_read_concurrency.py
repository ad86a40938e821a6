"""Reads racing ``close()``: a closed file never yields another file's bytes.

A descriptor number is reused by the next ``open`` (close(2)), so a read that loaded the number
before ``close()`` and ran its ``pread`` after it read whatever the process opened next. Real
threads read tiles of file A without pause while the main thread closes A and at once opens
file B (which takes A's descriptor number); every tile a reader gets must be A's, and a read
after the close may only raise TiffUsageError. Bounded: a fixed number of rounds.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy
import pytest

import tiffio

ROUNDS = 300  # on the code before the fix: 10-60 foreign tiles per 300 rounds
READERS = 6
A_VALUE, B_VALUE = 0xA5, 0x5B


def _file(path, value: int, compression: str | None) -> None:
    with tiffio.TiffWriter(path) as w:
        im = w.add_image((512, 512), "uint8", tile=(32, 32), compression=compression)
        for r in range(16):
            for c in range(16):
                im.write_tile(r, c, numpy.full((32, 32), value, numpy.uint8))


@pytest.mark.parametrize("compression", [None, "deflate", "jpeg"])
def test_a_read_racing_close_never_returns_another_files_bytes(tmp_path, compression):
    """Uncompressed tiles go through the prepared reader's preadv, Deflate tiles through
    read_into, JPEG tiles through the general path's read_range: every way a tile is read."""
    a_path, b_path = tmp_path / "a.tif", tmp_path / "b.tif"
    _file(a_path, A_VALUE, compression)
    _file(b_path, B_VALUE, compression)
    current: list[tiffio.TiffFile | None] = [None]
    stop = threading.Event()
    counts = {"good": 0, "closed": 0, "foreign": 0, "other": 0}
    lock = threading.Lock()
    problems: list[str] = []

    def reader(k: int) -> None:
        index = k
        good = closed = 0
        while not stop.is_set():
            tif = current[0]
            if tif is None:
                time.sleep(0)
                continue
            index = (index + 7) % 256
            try:
                tile = tif.ifds[0].read_segment(index)
            except tiffio.TiffUsageError:
                closed += 1
                continue
            except tiffio.TiffError as exc:  # A's bytes read through B's descriptor may not even decode
                with lock:
                    counts["other"] += 1
                    problems.append(f"{type(exc).__name__}: {exc}")
                continue
            if (tile == A_VALUE).all():
                good += 1
            else:
                with lock:
                    counts["foreign"] += 1
                    problems.append(f"tile {index}: values {numpy.unique(tile)[:4]}")
        with lock:
            counts["good"] += good
            counts["closed"] += closed

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # many thread switches: many chances to land between check and pread
    threads = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(READERS)]
    try:
        for t in threads:
            t.start()
        for _ in range(ROUNDS):  # bounded
            tif = tiffio.open(a_path)
            tif.ifds[0].read_segment(0)  # strile blocks loaded: the readers take the fast path
            current[0] = tif
            time.sleep(0.0005)
            tif.close()
            # B opened at once: it gets the descriptor number A had, if A's was really closed
            fds = [os.open(b_path, os.O_RDONLY) for _ in range(3)]
            time.sleep(0.0005)
            current[0] = None
            for fd in fds:
                os.close(fd)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        sys.setswitchinterval(old)
    assert counts["foreign"] == 0 and counts["other"] == 0, (counts, problems[:5])
    assert counts["good"] > ROUNDS and counts["closed"] > 0  # the race was run: reads before and after close


def test_descriptor_stays_open_until_the_last_read_using_it_ends(tmp_path):
    """close() during a read does not close the descriptor under it: the read finishes on A's
    file (a reader holds the handle), and the descriptor is closed once it lets go."""
    a_path = tmp_path / "a.tif"
    _file(a_path, A_VALUE, None)
    tif = tiffio.open(a_path)
    source = tif.source
    handle = source.handle
    fd = handle.fd
    tif.close()
    assert source.closed and source.handle is None
    os.fstat(fd)  # still open: the reference taken above is an in-flight read
    assert os.pread(fd, 2, 0) == b"II"
    del handle
    with pytest.raises(OSError):
        os.fstat(fd)  # closed by the last reference
    with pytest.raises(tiffio.TiffUsageError):
        source.read_range(0, 8)
    with pytest.raises(tiffio.TiffUsageError):
        tif.ifds[0].read_segment(0)


def test_many_threads_share_one_file_and_close_releases_it(tmp_path):
    """One TiffFile read by 16 threads at once gives every thread the right tiles; after the
    last read, close() leaves no descriptor behind."""
    from tests.support.threads import run_in_threads
    path = tmp_path / "a.tif"
    image = numpy.random.default_rng(4).integers(0, 255, (512, 512), numpy.uint8)
    with tiffio.TiffWriter(path) as w:
        im = w.add_image((512, 512), "uint8", tile=(64, 64), compression="deflate")
        for r in range(8):
            for c in range(8):
                im.write_tile(r, c, image[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64])
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    tif = tiffio.open(path)

    def work(k: int) -> None:
        for i in range(64):
            index = (i * 5 + k) % 64
            r, c = divmod(index, 8)
            numpy.testing.assert_array_equal(tif.ifds[0].read_segment(index),
                                             image[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64])

    assert run_in_threads(work, 16) == []
    tif.close()
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before
