"""Writer benchmarks (issue 4 and 5): tiffio.TiffWriter vs tifffile's tiled writer vs the bare codec.

    python benchmarks/bench_write.py jpeg        # 20480 x 20480 RGB, 512 x 512 JPEG tiles
    python benchmarks/bench_write.py deflate     # 20480 x 20480 uint16, 256 x 256 Deflate + predictor 2
    python benchmarks/bench_write.py checkpoint  # the JPEG case with a checkpoint every 1000 tiles vs none
    python benchmarks/bench_write.py rss         # 100,000 x 100,000 RGB JPEG in random tile order: peak RSS

Tiles are a few distinct precomputed arrays reused (the same for every contender), so that
generating pixels costs nothing. The encode floor is imagecodecs spread over the same number
of threads with no file at all. Output goes to --dir (default /tmp).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import imagecodecs
import numpy
import tifffile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import tiffio  # noqa: E402


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


def run_tiffio(path, name, tiles, workers, checkpoint_every=None, order=None):
    p = case_params(name)
    size, tile = p["size"], p["tile"]
    n = size // tile
    shape = (size, size, 3) if p["samples"] == 3 else (size, size)
    kwargs = dict(compression="jpeg", jpeg_quality=75) if name == "jpeg" else \
        dict(compression="deflate", compression_level=6, predictor=2)
    t = time.perf_counter()
    with tiffio.TiffWriter(path, checkpoint_every=checkpoint_every, checkpoint_seconds=None) as w:
        im = w.add_image(shape, p["dtype"], tile=(tile, tile), workers=workers, **kwargs)
        coords = order or [(r, c) for r in range(n) for c in range(n)]
        for k, (r, c) in enumerate(coords):
            im.write_tile(r, c, tiles[(r * n + c) % len(tiles)])
        checkpoints = w.checkpoints
    return time.perf_counter() - t, checkpoints


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
    t = time.perf_counter()
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        tw.write(it(), shape=shape, dtype=p["dtype"], tile=(tile, tile), maxworkers=workers, **kwargs)
    return time.perf_counter() - t


def run_floor(name, tiles, workers):
    p = case_params(name)
    n = (p["size"] // p["tile"]) ** 2
    if name == "jpeg":
        def enc(k):
            return imagecodecs.jpeg8_encode(tiles[k % len(tiles)], level=75, colorspace="RGB", outcolorspace="YCBCR",
                                            subsampling="420", optimize=False)
    else:
        def enc(k):
            return imagecodecs.deflate_encode(imagecodecs.delta_encode(tiles[k % len(tiles)], axis=-1), level=6)
    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(enc, range(n)):
            pass
    return time.perf_counter() - t


def throughput(name, workers, directory, repeat):
    p = case_params(name)
    tiles = make_tiles(p["tile"], p["samples"], p["dtype"])
    mpix = p["size"] ** 2 / 1e6
    best = {}
    for _ in range(repeat):
        for label, fn in [("floor", lambda: run_floor(name, tiles, workers)),
                          ("tiffio", lambda: run_tiffio(os.path.join(directory, "bw_tiffio.tif"), name, tiles,
                                                        workers)[0]),
                          ("tifffile", lambda: run_tifffile(os.path.join(directory, "bw_tifffile.tif"), name, tiles,
                                                            workers))]:
            dt = fn()
            best[label] = min(best.get(label, 1e9), dt)
    for label, dt in best.items():
        print(f"{name} {label:9s} {dt:7.2f} s  {mpix / dt:7.1f} MPix/s")
    print(f"{name}: tiffio / tifffile = {best['tifffile'] / best['tiffio']:.2f} x (target >= 2), "
          f"tiffio / floor = {best['floor'] / best['tiffio']:.2f} (target >= 0.85), workers={workers}")
    # sanity: the two files decode the same
    with tiffio.open(os.path.join(directory, "bw_tiffio.tif")) as tf:
        a = tf.ifds[0].read_segment(5)
    print("check tile 5 decodes:", a.shape, a.dtype)


def checkpoint_cost(workers, directory, repeat):
    tiles = make_tiles(512, 3, numpy.uint8)
    path = os.path.join(directory, "bw_ckpt.tif")
    best = {}
    for _ in range(repeat):
        for every in (None, 1000):
            dt, n = run_tiffio(path, "jpeg", tiles, workers, checkpoint_every=every)
            best[every] = min(best.get(every, 1e9), dt)
            print(f"checkpoint_every={every}: {dt:.2f} s, {n} checkpoints")
    cost = best[1000] / best[None] - 1
    print(f"checkpoint cost: {100 * cost:+.1f} % (target <= 3 %)")


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["jpeg", "deflate", "checkpoint", "rss"])
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    if args.case in ("jpeg", "deflate"):
        throughput(args.case, args.workers, args.dir, args.repeat)
    elif args.case == "checkpoint":
        checkpoint_cost(args.workers, args.dir, args.repeat)
    else:
        rss(args.dir, args.workers)


if __name__ == "__main__":
    main()
