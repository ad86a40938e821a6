"""How a region read spreads its segments over threads: runs of segments per pool task, one
thread for segments too small to pay for a hand-off when the caller gives no ``workers``,
the same pixels and the same first error whatever the thread count."""

from __future__ import annotations

import threading

import numpy
import pytest

import tiffio
from tiffio.read.ifd.regions import IFDRegions
from tiffio.read.pool import default_workers, parallel_map, shared_pool

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")


@pytest.mark.parametrize("n", [2, 3, 7, 64, 1001])
@pytest.mark.parametrize("workers", [2, 3, 16])
def test_parallel_returns_every_result_in_order(n, workers):
    threads = set()

    def square(i):
        threads.add(threading.current_thread().name)
        return i * i
    assert parallel_map(square, list(range(n)), workers) == [i * i for i in range(n)]
    assert len(threads) <= min(n, workers)


@pytest.mark.parametrize("workers", [2, 4])
def test_parallel_raises_the_first_failing_item_and_starts_none_after_it(workers):
    """Item 10 fails first in time, item 3 (slower) fails later: the error is item 3's, as a
    loop would raise it; no item after 10 is started once it failed."""
    started = []
    failed_10 = threading.Event()

    def func(i):
        started.append(i)
        if i == 3:
            assert failed_10.wait(10)
            raise ValueError(3)
        if i == 10:
            failed_10.set()
            raise KeyError(10)
        return i
    with pytest.raises(ValueError, match="3"):
        parallel_map(func, list(range(200)), workers)
    assert max(started) <= 10 + workers  # only what other threads had already taken


def test_parallel_inside_a_pool_task_does_not_wait_for_tasks_that_never_start():
    """A read made from a task of the same pool (every thread busy) finishes on its own."""
    pool = shared_pool(2)
    inner = [pool.submit(parallel_map, lambda i: i + 1, list(range(50)), 2) for _ in range(4)]
    assert [f.result(timeout=20) for f in inner] == [list(range(1, 51))] * 4


@pytest.fixture
def pool_calls(monkeypatch):
    """Records the thread count of every parallel_map call of a read that runs threads (more than one
    worker and item; the others are plain loops). The real one runs."""
    import tiffio.read.ifd.segments as segments
    calls: list[int] = []
    parallel = segments.parallel_map

    def recording(func, items, workers):
        if workers > 1 and len(items) > 1:
            calls.append(workers)
        return parallel(func, items, workers)
    monkeypatch.setattr(segments, "parallel_map", recording)
    return calls


@pytest.fixture
def region_threads(monkeypatch):
    """Records the thread each read_region runs in (the real one runs)."""
    seen: list[str] = []
    read_region = IFDRegions.read_region

    def recording(self, *args, **kwargs):
        seen.append(threading.current_thread().name)
        return read_region(self, *args, **kwargs)
    monkeypatch.setattr(IFDRegions, "read_region", recording)
    return seen


def _image(shape, dtype=numpy.uint16):
    return (numpy.arange(numpy.prod(shape)).reshape(shape) * 2654435761 % 65521).astype(dtype)


@pytest.mark.parametrize(("tile", "compression", "dtype", "threads"), [
    ((32, 32), "zlib", numpy.uint16, False),     # 2 KiB compressed segments: the calling thread
    ((64, 64), "zlib", numpy.uint16, True),      # 8 KiB: the pool
    ((64, 64), None, numpy.uint8, False),        # uncompressed, 4 KiB
    ((128, 128), None, numpy.uint8, False),      # uncompressed, 16 KiB
    ((256, 256), None, numpy.uint8, True),       # uncompressed, 64 KiB
    ((256, 256), "lzw", numpy.uint16, True),
])
def test_small_segments_stay_in_the_calling_thread(tmp_path, pool_calls, tile, compression, dtype, threads):
    if threads and default_workers() == 1:
        pytest.skip("one CPU: every read stays in the calling thread")
    data = _image((512, 768), dtype)
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, data, tile=tile, compression=compression)
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert ifd.read_workers == (default_workers() if threads else 1)
        assert numpy.array_equal(ifd.read_region(0, 0, 512, 768), data)
        assert numpy.array_equal(ifd.asarray(), data)
        assert pool_calls == ([default_workers()] * 2 if threads else [])
        pool_calls.clear()
        assert numpy.array_equal(ifd.read_region(0, 0, 512, 768, workers=2), data)
        assert pool_calls == [2]  # asked for: threads whatever the segment size


@pytest.mark.parametrize("workers", [None, 1, 2, 3, 5])
def test_same_pixels_and_same_first_error_for_any_thread_count(tmp_path, workers):
    data = _image((300, 500))
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, data, tile=(32, 48), compression="zlib")
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        assert numpy.array_equal(ifd.asarray(workers=workers), data)
        assert numpy.array_equal(ifd.read_region(17, 33, 250, 400, workers=workers), data[17:267, 33:433])
        broken = [ifd.segment_location(i) for i in (5, 40)]
    raw = bytearray(path.read_bytes())
    for offset, count in broken:
        raw[offset: offset + count] = b"\x78\x9c" + b"\xff" * (count - 2)
    path.write_bytes(bytes(raw))
    with tiffio.open(path) as tif:
        with pytest.raises(tiffio.CorruptSegmentError, match=r"segment 5\b"):
            tif.ifds[0].read_region(0, 0, 300, 500, fill=0, workers=workers)


@pytest.mark.parametrize(("tile", "compression", "inline"), [((64, 64), "zlib", True), ((256, 256), "lzw", False)])
def test_zarr_window_chunks_of_small_segments_decode_inline(tmp_path, region_threads, tile, compression, inline):
    """TiffStore's window chunks of small segments are decoded in zarr's event-loop thread,
    not in zarr's pool of threads (which contend for the GIL over tiny tiles)."""
    zarr = pytest.importorskip("zarr")
    from tiffio.zarr import TiffStore
    if not inline and default_workers() == 1:
        pytest.skip("one CPU")
    data = _image((1024, 1024))
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, data, tile=tile, compression=compression)
    z = zarr.open_array(TiffStore(path, level=0, chunks=(512, 512)), mode="r")
    assert numpy.array_equal(z[:], data)
    assert len(region_threads) == 4  # one read_region per 512² chunk
    assert all(not name.startswith("asyncio") for name in region_threads) is inline
