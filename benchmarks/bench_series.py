"""Series and file-sequence benchmarks (issue 15), as ratios measured in one run.

1. open + read one plane of a 10,000-page ImageJ stack: tiffio (TiffFile.series, planes at
   computed offsets) vs tifffile (``TiffFile.pages[k].asarray()``, what ``imread(key=k)``
   does, and ``memmap(path)[k]``); metadata bytes read by tiffio for 100 and 10,000 pages.
2. ``tiffio.imread`` of 2,000 files of 512 x 512 LZW uint16 vs ``tifffile.imread(files)``
   (its default pool); results compared for equality.
3. ``tiffio.imread`` of 100 files of 4096 x 4096 JPEG (512 x 512 tiles) vs the threaded
   codec floor: every tile's bytes already in memory, decoded by imagecodecs in a thread
   pool of the same size into a preallocated array; and vs tifffile.imread(files).

The runs of the things compared are interleaved (the machine may be shared); medians and
ratios are printed. Data goes to benchmarks/data/series/ (made on the first run).

    python benchmarks/bench_series.py [--repeat 5] [--only 1,2,3] [--jpeg-files 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import imagecodecs
import numpy
import tifffile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import record

import tiffio

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "series")


def smooth(shape, seed, dtype):
    rng = numpy.random.default_rng(seed)
    h, w = shape
    y = numpy.linspace(0, 6, h)[:, None]
    x = numpy.linspace(0, 6, w)[None, :]
    base = (numpy.sin(x + seed) * numpy.cos(y * 1.3) + 1) * 0.45
    noise = rng.normal(0, 0.02, shape)
    scale = 255 if numpy.dtype(dtype) == numpy.uint8 else 4000
    return numpy.clip((base + noise) * scale, 0, scale).astype(dtype)


def make_stack(pages: int) -> str:
    path = os.path.join(DATA, f"imagej_{pages}.tif")
    if not os.path.exists(path):
        data = numpy.empty((pages, 64, 64), "uint16")
        for i in range(pages):
            data[i] = i
        tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX"})
    return path


def make_files(kind: str, count: int) -> list[str]:
    folder = os.path.join(DATA, kind)
    os.makedirs(folder, exist_ok=True)
    files = [os.path.join(folder, f"img_{i:05d}.tif") for i in range(count)]
    for i, path in enumerate(files):
        if os.path.exists(path):
            continue
        if kind == "lzw":
            tifffile.imwrite(path, smooth((512, 512), i, "uint16"), compression="lzw")
        else:
            tifffile.imwrite(path, smooth((4096, 4096), i, "uint8"), compression="jpeg", compressionargs={"level": 90},
                             tile=(512, 512))
    return files


def timed(func):
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def bench_stack(repeat: int) -> list[str]:
    small, big = make_stack(100), make_stack(10_000)
    k = 5000

    def tiffio_plane(path, key):
        with tiffio.open(path) as tif:
            plane = tif.series[0].asarray(key=key)
            return plane, tif.context.metadata_bytes, tif.source.bytes_read, tif.source.requests

    def tifffile_pages():
        with tifffile.TiffFile(big) as t:
            return t.pages[k].asarray()

    def tifffile_memmap():
        return numpy.array(tifffile.memmap(big, mode="r")[k])

    times: dict[str, list[float]] = {"tiffio": [], "tifffile pages[k]": [], "tifffile memmap": []}
    for _ in range(repeat):
        dt, (plane, meta_big, bytes_big, req_big) = timed(lambda: tiffio_plane(big, k))
        times["tiffio"].append(dt)
        assert (plane == k).all()
        dt, ref = timed(tifffile_pages)
        times["tifffile pages[k]"].append(dt)
        assert numpy.array_equal(ref, plane)
        dt, ref = timed(tifffile_memmap)
        times["tifffile memmap"].append(dt)
        assert numpy.array_equal(ref, plane)
    _, meta_small, bytes_small, req_small = tiffio_plane(small, 50)
    med = {name: statistics.median(v) for name, v in times.items()}
    record.pair(f"open + read plane {k} of a 10,000-page ImageJ stack (64² uint16)", times, "tiffio",
                {"tifffile pages[k].asarray": "tifffile pages[k]", "tifffile memmap": "tifffile memmap"}, area="whole")
    lines = [
        f"1. open + read plane {k} of a 10,000-page ImageJ stack (64 x 64 uint16), median of {repeat}:",
        *(f"   {name:<20} {1000 * t:8.3f} ms   ratio tiffio/this {med['tiffio'] / t:6.3f}" for name, t in med.items()),
        (f"   tiffio metadata bytes: {meta_small} (100 pages) vs {meta_big} (10,000 pages); "
         f"bytes read {bytes_small} vs {bytes_big}; requests {req_small} vs {req_big}"),
    ]
    return lines


def warm(files: list[str]) -> None:
    """Read every file once, untimed, so that every tool reads from the page cache: the first
    timed run must not pay the disk for the others (a cold first run measured 35 s here, the
    warm ones 4.5 s)."""
    for path in files:
        with open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass


def bench_imread_lzw(repeat: int, count: int) -> list[str]:
    files = make_files("lzw", count)
    warm(files)
    t_tiffio, t_tifffile, t_one, t_proc = [], [], [], []
    for _ in range(repeat):
        dt, a = timed(lambda: tiffio.imread(files))
        t_tiffio.append(dt)
        dt, _r = timed(lambda: tiffio.imread(files, workers=1))
        t_one.append(dt)
        dt, _r = timed(lambda: tiffio.imread(files, processes=2))
        t_proc.append(dt)
        assert numpy.array_equal(a, _r)
        del _r
        dt, b = timed(lambda: tifffile.imread(files))
        t_tifffile.append(dt)
        assert a.shape == b.shape and a.dtype == b.dtype and numpy.array_equal(a, b)
        del a, b
    mi, mf, m1 = statistics.median(t_tiffio), statistics.median(t_tifffile), statistics.median(t_one)
    mp = statistics.median(t_proc)
    record.pair(f"imread of {count} files 512² LZW uint16", {"tiffio": t_tiffio, "tifffile": t_tifffile}, "tiffio",
                {"tifffile.imread": "tifffile"}, area="whole")
    return [f"2. imread of {count} files 512 x 512 LZW uint16 (same result), median of {repeat}:",
            f"   tiffio.imread {mi:7.3f} s   tifffile.imread {mf:7.3f} s   ratio {mi / mf:5.3f} (target <= 0.6)",
            f"   tiffio.imread(workers=1) {m1:7.3f} s   ratio to tifffile {m1 / mf:5.3f}   thread speed-up {m1 / mi:5.2f}",
            f"   tiffio.imread(processes=2) {mp:7.3f} s   ratio to tifffile {mp / mf:5.3f} (spawn start-up included)"]


def bench_imread_jpeg(repeat: int, count: int, workers: int) -> list[str]:
    files = make_files("jpeg", count)
    warm(files)
    # the floor's input: every tile's bytes, read once before timing
    tiles = []
    with tiffio.open(files[0]) as tif:
        ifd = tif.ifds[0]
        shape, tile_shape = ifd.shape, ifd.tile_shape
    for path in files:
        with tiffio.open(path) as tif:
            ifd = tif.ifds[0]
            tiles.append([ifd.read_segment_bytes(i) for i in range(ifd.segment_count)])
    th, tw = tile_shape
    ncols = shape[1] // tw
    out_floor = numpy.empty((count, *shape), "uint8")
    pool = ThreadPoolExecutor(workers)
    local = threading.local()

    def floor():
        def work(item):
            # decode into a per-thread tile buffer, then copy into place (tiles are not
            # contiguous in the image, and the codec needs a contiguous output)
            f, i = item
            r, c = divmod(i, ncols)
            buf = getattr(local, "buf", None)
            if buf is None:
                buf = local.buf = numpy.empty((th, tw), "uint8")
            imagecodecs.jpeg8_decode(tiles[f][i], out=buf)
            out_floor[f, r * th:(r + 1) * th, c * tw:(c + 1) * tw] = buf
        list(pool.map(work, [(f, i) for f in range(count) for i in range(len(tiles[f]))]))
        return out_floor

    out = numpy.empty((count, *shape), "uint8")
    t_tiffio, t_floor, t_tifffile = [], [], []
    for _ in range(repeat):
        dt, _r = timed(floor)
        t_floor.append(dt)
        dt, a = timed(lambda: tiffio.imread(files, workers=workers, out=out))
        t_tiffio.append(dt)
        assert numpy.array_equal(a, out_floor)
        dt, b = timed(lambda: tifffile.imread(files, maxworkers=workers))
        t_tifffile.append(dt)
        assert numpy.array_equal(a, b)
        del b
    mi, mf, mt = (statistics.median(v) for v in (t_tiffio, t_floor, t_tifffile))
    rf = sorted(a / b for a, b in zip(t_tiffio, t_floor))
    rt = sorted(a / b for a, b in zip(t_tiffio, t_tifffile))
    record.pair(f"imread of {count} files 4096² JPEG (512² tiles), {workers} threads",
                {"tiffio": t_tiffio, "tifffile": t_tifffile, "floor": t_floor}, "tiffio", {"tifffile.imread": "tifffile"},
                area="whole", floor="floor", floor_name="threaded jpeg8_decode of the tiles in memory")
    return [f"3. imread of {count} files 4096 x 4096 JPEG (512 x 512 tiles), {workers} threads, median of {repeat}:",
            f"   tiffio.imread {mi:7.3f} s   codec floor {mf:7.3f} s   tifffile.imread {mt:7.3f} s",
            (f"   tiffio / floor {statistics.median(rf):5.3f} ({rf[0]:.3f}..{rf[-1]:.3f}) (target <= 1.15)   "
            f"tiffio / tifffile {statistics.median(rt):5.3f} ({rt[0]:.3f}..{rt[-1]:.3f}) (median of per-run ratios)")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="1,2,3")
    parser.add_argument("--lzw-files", type=int, default=2000)
    parser.add_argument("--jpeg-files", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    record.add_json_arg(parser, "bench_series")
    args = parser.parse_args(argv)
    record.start("bench_series", args.record_json)
    os.makedirs(DATA, exist_ok=True)
    only = {int(x) for x in args.only.split(",")}
    print(f"tiffio {tiffio.__version__}, tifffile {tifffile.__version__}, imagecodecs {imagecodecs.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if 1 in only:
        print("\n".join(bench_stack(args.repeat)))
    if 2 in only:
        print("\n".join(bench_imread_lzw(max(1, args.repeat // 2), args.lzw_files)))
    if 3 in only:
        print("\n".join(bench_imread_jpeg(max(1, args.repeat // 2), args.jpeg_files, args.workers)))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    record.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
