"""How a region read spreads its segments over threads: runs of segments per pool task, one
thread for segments too small to pay for a hand-off when the caller gives no ``workers``,
the same pixels and the same first error whatever the thread count."""

from __future__ import annotations

import threading

import numpy
import pytest

import tiffio
from tiffio.regions import _batches, default_workers
from tiffio.segment_read import IFDSegments

tifffile = pytest.importorskip("tifffile")


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 64, 1001])
@pytest.mark.parametrize("workers", [1, 2, 3, 16])
def test_batches_cover_every_item_once_in_order(n, workers):
    items = list(range(n))
    runs = _batches(items, workers)
    if workers == 1 or n < 2:
        assert runs is None
        return
    assert [i for run in runs for i in run] == items
    assert len(runs) <= workers * 4 and all(runs)
    assert max(map(len, runs)) - min(map(len, runs)) <= max(map(len, runs)) // 2 + 1


@pytest.fixture
def decode_threads(monkeypatch):
    """Records the thread each segment is decoded in (the real decoder still runs)."""
    seen: list[str] = []
    decode = IFDSegments._decode

    def recording(self, *args, **kwargs):
        seen.append(threading.current_thread().name)
        return decode(self, *args, **kwargs)
    monkeypatch.setattr(IFDSegments, "_decode", recording)
    return seen


def _image(shape, dtype=numpy.uint16):
    return (numpy.arange(numpy.prod(shape)).reshape(shape) * 2654435761 % 65521).astype(dtype)


@pytest.mark.parametrize(("tile", "compression", "dtype", "threads"), [
    ((64, 64), "zlib", numpy.uint16, False),     # 8 KiB segments: the calling thread
    ((64, 64), None, numpy.uint8, False),        # uncompressed, 4 KiB
    ((256, 256), None, numpy.uint8, False),      # uncompressed under 1 MiB
    ((128, 128), "zlib", numpy.uint16, True),    # 32 KiB compressed: the pool
    ((256, 256), "lzw", numpy.uint16, True),
])
def test_small_segments_stay_in_the_calling_thread(tmp_path, decode_threads, tile, compression, dtype, threads):
    if threads and default_workers() == 1:
        pytest.skip("one CPU: every read stays in the calling thread")
    data = _image((512, 768), dtype)
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, data, tile=tile, compression=compression)
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        got = ifd.read_region(0, 0, 512, 768, fill=0)  # fill=: the general path for every segment
        assert numpy.array_equal(got, data)
        assert len(decode_threads) == ifd.segment_count
        in_pool = {name for name in decode_threads if name != threading.current_thread().name}
        assert bool(in_pool) is threads
        decode_threads.clear()
        assert numpy.array_equal(ifd.read_region(0, 0, 512, 768, fill=0, workers=2), data)
        assert any(name != threading.current_thread().name for name in decode_threads)  # asked: threads


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
def test_zarr_window_chunks_of_small_segments_decode_inline(tmp_path, decode_threads, tile, compression, inline):
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
    names = set(decode_threads)
    assert len(decode_threads) == (1024 // tile[0]) ** 2
    assert all(not name.startswith("asyncio") for name in names) is inline
