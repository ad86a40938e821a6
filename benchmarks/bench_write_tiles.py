"""Per-tile overhead of TiffWriter.write_tile: many small uncompressed tiles, so that the writer's own
work (checks, the encoder queue, the record append) is most of the time, not the codec.

    python benchmarks/bench_write_tiles.py                      # this checkout's tiffio
    python benchmarks/bench_write_tiles.py --repo /tmp/base     # another checkout's (A/B)

Writes a 4096 x 4096 uint8 image in 16 x 16 tiles (65,536 tiles) with workers=1 and workers=2,
fsync=False, default checkpoints, to --dir; prints one JSON line per run with the tiles per second,
and the median over --repeat runs (the order of the worker counts rotates run by run). Then the cost
of a writer's life: --files one-tile files created, written and closed (fsync=False), per file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=16)
    parser.add_argument("--files", type=int, default=1000)
    record.add_json_arg(parser, "bench_write_tiles")
    args = parser.parse_args()
    record.start("bench_write_tiles", args.record_json)
    sys.path.insert(0, os.path.abspath(args.repo))
    import numpy

    import tiffio

    tile = numpy.full((args.tile, args.tile), 7, numpy.uint8)
    tile.setflags(write=False)  # no defensive copy: the writer's overhead only
    n = args.size // args.tile
    path = os.path.join(args.dir, f"bench_write_tiles_{os.getpid()}.tif")
    results: dict[int, list[float]] = {1: [], 2: []}
    for run in range(args.repeat):
        for workers in ((1, 2) if run % 2 == 0 else (2, 1)):
            if os.path.exists(path):
                os.remove(path)
            start = time.perf_counter()
            with tiffio.TiffWriter(path, fsync=False) as w:
                im = w.add_image((args.size, args.size), "uint8", tile=(args.tile, args.tile), workers=workers)
                for r in range(n):
                    for c in range(n):
                        im.write_tile(r, c, tile)
            seconds = time.perf_counter() - start
            results[workers].append(n * n / seconds)
            print(json.dumps({"repo": os.path.abspath(args.repo), "workers": workers, "tiles": n * n,
                              "seconds": round(seconds, 3), "tiles_per_s": round(n * n / seconds)}))
    os.remove(path)
    per_file = []
    folder = os.path.join(args.dir, f"bench_write_files_{os.getpid()}")
    os.makedirs(folder, exist_ok=True)
    for _ in range(args.repeat):
        start = time.perf_counter()
        for k in range(args.files):
            with tiffio.TiffWriter(os.path.join(folder, f"{k}.tif"), fsync=False) as w:
                w.add_image((args.tile, args.tile), "uint8", tile=(args.tile, args.tile)).write_tile(0, 0, tile)
        per_file.append((time.perf_counter() - start) / args.files)
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
    os.rmdir(folder)
    print(json.dumps({"repo": os.path.abspath(args.repo),
                      "median_tiles_per_s": {str(k): round(statistics.median(v)) for k, v in results.items()},
                      "median_us_per_file": round(statistics.median(per_file) * 1e6)}))
    for workers, rates in results.items():
        record.add(f"write_tile of {n * n:,} uncompressed {args.tile}² tiles, workers={workers}, per tile", area="write",
                   tiffio=1 / statistics.median(rates), runs=len(rates),
                   note=f"{statistics.median(rates):,.0f} tiles/s")
    record.add("a writer's life: one-tile file created, written, closed (fsync=False), per file", area="write",
               tiffio=statistics.median(per_file), runs=len(per_file))
    record.save()


if __name__ == "__main__":
    main()
