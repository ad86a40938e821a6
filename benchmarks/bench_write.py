"""Writer benchmarks (issue 4 and 5): tiffio.TiffWriter vs tifffile's tiled writer vs the bare codec.

    python benchmarks/bench_write.py jpeg        # 20480 x 20480 RGB, 512 x 512 JPEG tiles
    python benchmarks/bench_write.py deflate     # 20480 x 20480 uint16, 256 x 256 Deflate + predictor 2
    python benchmarks/bench_write.py checkpoint  # the JPEG case with a checkpoint every 1000 tiles vs none
    python benchmarks/bench_write.py rss         # 100,000 x 100,000 RGB JPEG in random tile order: peak RSS

Tiles are a few distinct precomputed read-only arrays reused (the same for every contender), so
that generating pixels costs nothing; the previous output file is deleted before each timed run.
The encode floor is the same imagecodecs call tiffio makes per tile (checked: identical
bytes), spread over the same number of threads, with no file at all; tifffile uses the same codec library (libjpeg-turbo via jpeg_encode, libdeflate). Contenders run
interleaved run by run (rotating order); the report gives medians and the median of the per-run
ratios [min..max]. Before each section the script waits for a quiet machine (--quiet-limit) and
records the CPU share other processes took meanwhile. Output goes to --dir (default /tmp).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import imagecodecs
import numpy
import tifffile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import record  # noqa: E402
from bench_read import ForeignLoad, add_quiet_args, loadavg, machine_info, machine_text, run_interleaved, wait_quiet  # noqa: E402

import tiffio  # noqa: E402
from tiffio.codecs.encode import split_jpeg_tables  # noqa: E402


def make_tiles(tile, samples, dtype, n=16):
    rng = numpy.random.default_rng(0)
    y, x = numpy.mgrid[0:tile, 0:tile]
    tiles = []
    for k in range(n):
        base = (numpy.sin((x + 13 * k) / 17.0) + numpy.cos((y - 7 * k) / 23.0)) * 0.25 + 0.5
        if numpy.dtype(dtype) == numpy.uint8:
            arr = (base * 200 + rng.integers(0, 40, base.shape)).astype(numpy.uint8)
        else:
            arr = (base * 50000 + rng.integers(0, 400, base.shape)).astype(dtype)
        if samples > 1:
            arr = numpy.stack([arr, arr[::-1], arr[:, ::-1]], -1)
        arr = numpy.ascontiguousarray(arr)
        arr.setflags(write=False)  # tells tiffio the buffer will not change (no defensive copy)
        tiles.append(arr)
    return tiles


def case_params(name):
    if name == "jpeg":
        return dict(size=20480, tile=512, samples=3, dtype=numpy.uint8)
    return dict(size=20480, tile=256, samples=1, dtype=numpy.uint16)


#: what the last tiffio run spent in close() (the final checkpoint and its fsync)
LAST_CLOSE = [0.0]


def remove(path):
    """Delete the previous run's output before the timer starts: truncating a 75 MB file on open
    takes 20-50 ms here, which is not the writer's work (the floor writes no file)."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def run_tiffio(path, name, tiles, workers, checkpoint_every=None, order=None, fsync=True):
    p = case_params(name)
    size, tile = p["size"], p["tile"]
    n = size // tile
    shape = (size, size, 3) if p["samples"] == 3 else (size, size)
    kwargs = dict(compression="jpeg", jpeg_quality=75) if name == "jpeg" else \
        dict(compression="deflate", compression_level=6, predictor=2)
    remove(path)
    t = time.perf_counter()
    w = tiffio.TiffWriter(path, checkpoint_every=checkpoint_every, checkpoint_seconds=None, fsync=fsync)
    im = w.add_image(shape, p["dtype"], tile=(tile, tile), workers=workers, **kwargs)
    coords = order or [(r, c) for r in range(n) for c in range(n)]
    for r, c in coords:
        im.write_tile(r, c, tiles[(r * n + c) % len(tiles)])
    t_close = time.perf_counter()
    w.close()
    end = time.perf_counter()
    LAST_CLOSE[0] = end - t_close
    return end - t, w.checkpoints


def run_tifffile(path, name, tiles, workers):
    p = case_params(name)
    size, tile = p["size"], p["tile"]
    n = size // tile
    shape = (size, size, 3) if p["samples"] == 3 else (size, size)

    def it():
        for r in range(n):
            for c in range(n):
                yield tiles[(r * n + c) % len(tiles)]

    kwargs = dict(compression="jpeg", compressionargs={"level": 75}, photometric="rgb") if name == "jpeg" else \
        dict(compression="zlib", compressionargs={"level": 6}, predictor=2, photometric="minisblack")
    remove(path)
    t = time.perf_counter()
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        tw.write(it(), shape=shape, dtype=p["dtype"], tile=(tile, tile), maxworkers=workers, **kwargs)
    return time.perf_counter() - t


def floor_encoder(name):
    if name == "jpeg":
        def enc(tile):
            return imagecodecs.jpeg8_encode(tile, level=75, colorspace="RGB", outcolorspace="YCBCR",
                                            subsampling="420", optimize=False)
    else:
        def enc(tile):
            return imagecodecs.deflate_encode(imagecodecs.delta_encode(tile, axis=-1), level=6)
    return enc


def run_floor(name, tiles, workers):
    p = case_params(name)
    n = (p["size"] // p["tile"]) ** 2
    enc = floor_encoder(name)
    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(lambda k: enc(tiles[k % len(tiles)]), range(n)):
            pass
    return time.perf_counter() - t


def same_work(name, tiles, path):
    """The floor's bytes for tile 5 are what tiffio stored (JPEG: minus the tables in JPEGTables)."""
    floor = floor_encoder(name)(tiles[5])
    if name == "jpeg":
        floor = split_jpeg_tables(floor)[1]
    with tiffio.open(path) as tf:
        stored = tf.ifds[0].read_segment_bytes(5)
    return bytes(stored) == bytes(floor)


def med(values):
    return statistics.median(values)


def ratio(times, a, b):
    """Median and range of time[a] / time[b] paired run by run."""
    values = sorted(x / y for x, y in zip(times[a], times[b]))
    return statistics.median(values), values[0], values[-1]


def fmt_ratio(r):
    return f"{r[0]:.2f} [{r[1]:.2f}..{r[2]:.2f}]"


def throughput(args, name):
    p = case_params(name)
    tiles = make_tiles(p["tile"], p["samples"], p["dtype"])
    mpix = p["size"] ** 2 / 1e6
    workers = args.workers
    d = args.dir
    closes = []

    def tiffio_run(fsync=True):
        dt = run_tiffio(os.path.join(d, "bw_tiffio.tif"), name, tiles, workers, fsync=fsync)[0]
        if fsync:
            closes.append(LAST_CLOSE[0])
        return dt

    funcs = {
        "floor": lambda: run_floor(name, tiles, workers),
        "tiffio": tiffio_run,
        "tifffile": lambda: run_tifffile(os.path.join(d, "bw_tifffile.tif"), name, tiles, workers),
    }
    if args.nofsync:
        funcs["tiffio_nofsync"] = lambda: run_tiffio(os.path.join(d, "bw_tiffio_nf.tif"), name, tiles, workers,
                                                     fsync=False)[0]
    if args.single:
        funcs["floor_1"] = lambda: run_floor(name, tiles, 1)
        funcs["tiffio_1"] = lambda: run_tiffio(os.path.join(d, "bw_tiffio1.tif"), name, tiles, 1)[0]
    wait_quiet(args.quiet_limit, args.quiet_timeout, name)
    load_start = loadavg()
    with ForeignLoad() as load:
        times = run_interleaved(funcs, args.repeat, warmup=args.warmup)
    closes = closes[args.warmup:]
    res = dict(name=name, times=times, mpix=mpix, workers=workers, foreign=load.fraction, load=(load_start, loadavg()),
               close=med(closes), same=same_work(name, tiles, os.path.join(d, "bw_tiffio.tif")), repeat=args.repeat)
    for label, ts in times.items():
        print(f"{name} {label:15s} median {med(ts):7.2f} s  {mpix / med(ts):7.1f} MPix/s  runs "
              + " ".join(f"{t:.2f}" for t in ts))
    vs_tifffile = ratio(times, "tifffile", "tiffio")
    vs_floor = ratio(times, "floor", "tiffio")
    tifffile_floor = ratio(times, "floor", "tifffile")
    print(f"{name}: tiffio / tifffile = {fmt_ratio(vs_tifffile)} (target >= 2), "
          f"tiffio / floor = {fmt_ratio(vs_floor)} (target >= 0.85), tifffile / floor = {fmt_ratio(tifffile_floor)}; "
          f"workers={workers}; close() incl. final fsync {res['close']:.3f} s; same bytes as the floor: {res['same']}; "
          f"other processes used {load.fraction:.0%} of the CPUs")
    res.update(vs_tifffile=vs_tifffile, vs_floor=vs_floor, tifffile_floor=tifffile_floor)
    p = case_params(name)
    record.pair(f"{name}: {p['size']}² {'RGB' if p['samples'] == 3 else 'uint16'}, {p['tile']}² tiles, "
                f"{workers} threads, fsync", times, "tiffio", {"tifffile": "tifffile"}, area="write", floor="floor",
                floor_name="the same imagecodecs encode on the same threads, no file")
    for os_name in ("bw_tiffio.tif", "bw_tifffile.tif", "bw_tiffio_nf.tif", "bw_tiffio1.tif"):
        try:
            os.remove(os.path.join(d, os_name))
        except OSError:
            pass
    return res


def checkpoint_cost(args):
    tiles = make_tiles(512, 3, numpy.uint8)
    path = os.path.join(args.dir, "bw_ckpt.tif")
    counts = {}

    def run(every):
        dt, n = run_tiffio(path, "jpeg", tiles, args.workers, checkpoint_every=every)
        counts[every] = n
        return dt

    # the calling thread's time in each automatic checkpoint (what the encoders may wait for;
    # the fsync + header update run in a background thread)
    blocked = []
    real = tiffio.TiffWriter._checkpoint

    def timed(self, final, drain=True, background=False):
        t0 = time.perf_counter()
        try:
            return real(self, final, drain, background)
        finally:
            if not final:
                blocked.append(time.perf_counter() - t0)

    tiffio.TiffWriter._checkpoint = timed
    wait_quiet(args.quiet_limit, args.quiet_timeout, "checkpoint")
    load_start = loadavg()
    with ForeignLoad() as load:
        times = run_interleaved({"none": lambda: run(None), "every_1000": lambda: run(1000)}, args.repeat,
                                warmup=args.warmup)
    tiffio.TiffWriter._checkpoint = real
    for label, ts in times.items():
        print(f"checkpoint {label:10s} median {med(ts):.3f} s  runs " + " ".join(f"{t:.3f}" for t in ts))
    cost = ratio(times, "every_1000", "none")
    print(f"checkpoint cost: {100 * (cost[0] - 1):+.1f} % [{100 * (cost[1] - 1):+.1f}..{100 * (cost[2] - 1):+.1f}] "
          f"(target <= 3 %), checkpoints per run incl. the final one: {counts}; "
          f"other processes used {load.fraction:.0%} of the CPUs")
    print(f"automatic checkpoint: the writing thread spent {1e3 * med(blocked):.2f} ms per checkpoint in it "
          f"(median of {len(blocked)}; max {1e3 * max(blocked):.2f} ms)")
    os.remove(path)
    record.pair(f"checkpoint every 1000 tiles (jpeg case, {args.workers} threads)", times, "every_1000",
                {"tiffio without checkpoints": "none"}, area="write")
    return dict(times=times, cost=cost, counts=counts, foreign=load.fraction, load=(load_start, loadavg()),
                repeat=args.repeat, blocked=med(blocked))


def rss(directory, workers):
    size, tile = 100_000, 512
    n = -(-size // tile)
    tiles = make_tiles(tile, 3, numpy.uint8)
    coords = [(r, c) for r in range(n) for c in range(n)]
    random.Random(0).shuffle(coords)
    path = os.path.join(directory, "bw_rss.tif")
    t = time.perf_counter()
    with tiffio.TiffWriter(path) as w:
        im = w.add_image((size, size, 3), numpy.uint8, tile=(tile, tile), compression="jpeg", workers=workers)
        for r, c in coords:
            arr = tiles[(r * n + c) % len(tiles)]
            h, wd = im.valid_shape(r, c)[:2]
            im.write_tile(r, c, arr[:h, :wd])
        checkpoints = w.checkpoints
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_gb = os.path.getsize(path) / 1e9
    print(f"rss: {n * n} tiles in random order, {dt:.1f} s, file {size_gb:.2f} GB, {checkpoints} checkpoints, "
          f"peak RSS {peak:.0f} MB (target <= 200 MB)")
    with tiffio.open(path) as tf:
        print("bigtiff:", tf.bigtiff, "shape:", tf.ifds[0].shape)
    os.remove(path)
    record.add(f"rss: 100,000² RGB JPEG in random tile order, {workers} threads", area="write", tiffio=dt, runs=1,
               note=f"peak RSS {peak:.0f} MB, {checkpoints} checkpoints")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["jpeg", "deflate", "checkpoint", "rss"])
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--single", action="store_true", help="also time the floor and tiffio with 1 thread")
    ap.add_argument("--nofsync", action="store_true", help="also time tiffio with fsync=False")
    add_quiet_args(ap)
    record.add_json_arg(ap, "bench_write")
    args = ap.parse_args()
    record.start("bench_write", args.record_json)
    print(machine_text(machine_info()))
    if args.case in ("jpeg", "deflate"):
        throughput(args, args.case)
    elif args.case == "checkpoint":
        checkpoint_cost(args)
    else:
        rss(args.dir, args.workers)
    record.save()


if __name__ == "__main__":
    main()
