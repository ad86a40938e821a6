"""Single-pass pyramid benchmark (issue 14 section 3): tiffio add_image(pyramid=True) vs level 0 alone,
pyvips tiffsave(pyramid=True) and tifffile writing each level from the previous one.

    python benchmarks/bench_pyramid.py --size 40960 --rounds 1
    python benchmarks/bench_pyramid.py --size 20480 --rounds 3 --only tiffio-level0,tiffio-row-major

Image: SIZE x SIZE RGB uint8, 512 x 512 tiles, JPEG quality 75 (YCbCr 4:2:0 for every contender),
2 encoder threads (tiffio workers=2, VIPS_CONCURRENCY=2, tifffile maxworkers=2). Tile (r, c) is one
of 16 precomputed read-only tiles, tiles[(r % 4) * 4 + c % 4] (pyvips: the same 4 x 4 mosaic,
replicated), so generating pixels costs nothing. Every contender runs in its own process (time of
the write inside it, peak RSS = its ru_maxrss); contenders are interleaved round by round, rotating
the order, and ratios are paired within a round. Output files go to --dir and are deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import record  # noqa: E402

TILE = 512
QUALITY = 75
CONTENDERS = ["tiffio-level0", "tiffio-row-major", "tiffio-z-order", "tiffio-random", "pyvips", "tifffile"]


def make_tiles(n: int = 16) -> list[numpy.ndarray]:
    rng = numpy.random.default_rng(0)
    y, x = numpy.mgrid[0:TILE, 0:TILE]
    tiles = []
    for k in range(n):
        base = (numpy.sin((x + 13 * k) / 17.0) + numpy.cos((y - 7 * k) / 23.0)) * 0.25 + 0.5
        arr = (base * 200 + rng.integers(0, 40, base.shape)).astype(numpy.uint8)
        arr = numpy.ascontiguousarray(numpy.stack([arr, arr[::-1], arr[:, ::-1]], -1))
        arr.setflags(write=False)
        tiles.append(arr)
    return tiles


def z_order(n: int) -> list[tuple[int, int]]:
    def key(rc: tuple[int, int]) -> int:
        r, c = rc
        k = 0
        for bit in range(16):
            k |= ((c >> bit) & 1) << (2 * bit) | ((r >> bit) & 1) << (2 * bit + 1)
        return k
    return sorted(((r, c) for r in range(n) for c in range(n)), key=key)


def run_tiffio(path: str, size: int, order: str, pyramid: bool) -> dict:
    import tiffio
    tiles = make_tiles()
    n = -(-size // TILE)
    coords = [(r, c) for r in range(n) for c in range(n)]
    if order == "z-order":
        coords = z_order(n)
    elif order == "random":
        random.Random(0).shuffle(coords)
    start = time.perf_counter()
    with tiffio.TiffWriter(path, fsync=False) as w:
        im = w.add_image((size, size, 3), "uint8", tile=(TILE, TILE), compression="jpeg", jpeg_quality=QUALITY,
                         workers=2, pyramid=True if pyramid else None)
        for r, c in coords:
            im.write_tile(r, c, tiles[(r % 4) * 4 + c % 4])
        w.flush()
        stats = im.pyramid_stats
    elapsed = time.perf_counter() - start
    return {"time": elapsed, "stats": stats}


def run_pyvips(path: str, size: int) -> dict:
    os.environ["VIPS_CONCURRENCY"] = "2"
    import pyvips
    tiles = make_tiles()
    mosaic = pyvips.Image.arrayjoin([pyvips.Image.new_from_array(t, interpretation="srgb") for t in tiles], across=4)
    image = mosaic.replicate(-(-size // (4 * TILE)), -(-size // (4 * TILE))).crop(0, 0, size, size)
    start = time.perf_counter()
    image.tiffsave(path, tile=True, tile_width=TILE, tile_height=TILE, pyramid=True, compression="jpeg", Q=QUALITY,
                   bigtiff=True)
    return {"time": time.perf_counter() - start}


def run_tifffile(path: str, size: int) -> dict:
    """Level 0 from the tiles; level k from level k-1 read back from the file (two tile rows at a time,
    zarr), reduced 2 x 2 (mean), written as the next reduced page."""
    import tifffile
    import zarr

    from tiffio.writer.pyramid import level_shapes, reduce2
    tiles = make_tiles()
    n = -(-size // TILE)
    shapes = level_shapes(size, size, (TILE, TILE))
    opts = dict(tile=(TILE, TILE), compression="jpeg", compressionargs={"level": QUALITY}, photometric="rgb",
                maxworkers=2)
    start = time.perf_counter()
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write((tiles[(r % 4) * 4 + c % 4] for r in range(n) for c in range(n)), shape=(size, size, 3),
                 dtype="uint8", **opts)
        for k in range(1, len(shapes)):
            tw._fh.flush()
            h, w = shapes[k]
            src = tifffile.TiffFile(path)
            store = src.pages[k - 1].aszarr()
            prev = zarr.open(store, mode="r")

            def level_tiles(prev=prev, h=h, w=w):
                for r in range(-(-h // TILE)):
                    block = reduce2(numpy.asarray(prev[2 * r * TILE:(2 * r + 2) * TILE]))
                    for c in range(-(-w // TILE)):
                        yield block[:, c * TILE:(c + 1) * TILE]

            tw.write(level_tiles(), shape=(h, w, 3), dtype="uint8", subfiletype=1, **opts)
            store.close()
            src.close()
    return {"time": time.perf_counter() - start}


def floors(repeat: int = 5) -> None:
    """CPU per 512² RGB tile of the two pieces of work a pyramid adds: the JPEG encode (the same call
    tiffio makes) and the 2 x 2 mean (reduce2), interleaved; and the ratio they imply for a pyramid
    vs level 0 alone: levels add 1/3 more tiles, each level-0 and level tile below the top is reduced."""
    import tiffio
    from tiffio.writer.pyramid import reduce2
    tiles = make_tiles()
    with tiffio.TiffWriter("/tmp/bench_pyramid_floor.tif", fsync=False) as w:
        im = w.add_image((TILE, TILE, 3), "uint8", tile=(TILE, TILE), compression="jpeg", jpeg_quality=QUALITY)
        enc, red = [], []
        for _ in range(repeat):
            start = time.process_time()
            for t in tiles * 4:
                im.encode_tile(t)
            enc.append((time.process_time() - start) / 64 * 1e3)
            start = time.process_time()
            for t in tiles * 4:
                reduce2(t)
            red.append((time.process_time() - start) / 64 * 1e3)
        im.write_tile(0, 0, tiles[0])
    os.remove("/tmp/bench_pyramid_floor.tif")
    e, r = statistics.median(enc), statistics.median(red)
    print(f"floors, CPU per tile: JPEG encode {e:.3f} ms [{min(enc):.3f}..{max(enc):.3f}], "
          f"reduce2 {r:.3f} ms [{min(red):.3f}..{max(red):.3f}]; implied pyramid / level 0 = "
          f"4/3 x (E + R) / E = {4 / 3 * (e + r) / e:.2f}; 1.45 needs R <= {(1.45 * 3 / 4 - 1) * e:.3f} ms")


def child(name: str, path: str, size: int) -> None:
    if name == "pyvips":
        result = run_pyvips(path, size)
    elif name == "tifffile":
        result = run_tifffile(path, size)
    elif name == "tiffio-level0":
        result = run_tiffio(path, size, "row-major", False)
    else:
        result = run_tiffio(path, size, name.split("-", 1)[1], True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["rss_mib"] = usage.ru_maxrss / 1024
    result["cpu"] = usage.ru_utime + usage.ru_stime  # whole process, set-up included
    result["bytes"] = os.path.getsize(path)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=40960)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default=",".join(CONTENDERS))
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--floors", action="store_true", help="only the per-tile CPU of encode and reduce")
    parser.add_argument("--child", nargs=3, metavar=("NAME", "PATH", "SIZE"), help=argparse.SUPPRESS)
    record.add_json_arg(parser, "bench_pyramid")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    if args.floors:
        floors()
        return
    record.start("bench_pyramid", args.record_json)
    names = args.only.split(",")
    results: dict[str, list[dict]] = {name: [] for name in names}
    load = []
    for k in range(args.rounds):
        order = names[k % len(names):] + names[: k % len(names)]
        for name in order:
            path = os.path.join(args.dir, f"bench_pyramid_{name}.tif")
            before = os.getloadavg()[0]
            proc = subprocess.run([sys.executable, __file__, "--child", name, path, str(args.size)],
                                  capture_output=True, text=True, timeout=3600)
            if os.path.exists(path):
                os.remove(path)
            if proc.returncode:
                print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            results[name].append(result)
            load.append(before)
            print(f"round {k} {name}: {result['time']:.1f} s, CPU {result['cpu']:.1f} s, peak RSS {result['rss_mib']:.0f} MiB, "
                  f"{result['bytes'] / 2**20:.0f} MiB out, load {before:.1f}"
                  + (f", frontier peak {result['stats']['peak_bytes'] / 2**20:.1f} MiB, "
                     f"spilled {result['stats']['spills']} quadrants" if result.get("stats") else ""), flush=True)
    base = results.get("tiffio-level0", [])
    print(f"\n{args.size}² RGB JPEG q{QUALITY}, {TILE}² tiles, 2 threads, {args.rounds} round(s), "
          f"load average during runs {min(load or [0]):.1f}..{max(load or [0]):.1f}")
    print("| contender | time s (median) | x level 0 alone | CPU s | CPU x level 0 | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name in names:
        runs = results[name]
        if not runs:
            continue
        t = statistics.median(r["time"] for r in runs)
        ratios = [r["time"] / b["time"] for r, b in zip(runs, base)]
        ratio = f"{statistics.median(ratios):.2f} [{min(ratios):.2f}..{max(ratios):.2f}]" if ratios else "-"
        rss = max(r["rss_mib"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        cpu_ratio = statistics.median(r["cpu"] / b["cpu"] for r, b in zip(runs, base)) if base else float("nan")
        print(f"| {name} | {t:.1f} | {ratio} | {cpu:.1f} | {cpu_ratio:.2f} | {rss:.0f} |")
    times = {name: [r["time"] for r in runs] for name, runs in results.items() if runs}
    for name in times:
        if name.startswith("tiffio-") and name != "tiffio-level0":
            record.pair(f"add_image(pyramid=True) {args.size}² RGB JPEG q{QUALITY}, {name.split('-', 1)[1]} tile order",
                        times, name, {"pyvips tiffsave(pyramid=True)": "pyvips", "tifffile level by level": "tifffile"},
                        area="pyramid", floor="tiffio-level0", floor_name="tiffio writing level 0 alone",
                        note=f"peak RSS {max(r['rss_mib'] for r in results[name]):.0f} MiB")
    record.save()


if __name__ == "__main__":
    main()
