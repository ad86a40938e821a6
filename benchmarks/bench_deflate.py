"""Deflate reading benchmark: tiles and regions of a GeoTIFF-like Deflate file.

    python benchmarks/bench_deflate.py [--repeat 7] [--workers 2] [--baseline PATH] [--write-results]

File (generated on first run into benchmarks/data/ with tifffile): deflate_u16_8192.tif,
8192 x 8192 uint16, 512 x 512 tiles, Deflate (zlib level 6) with horizontal predictor 2
(what GDAL writes for COMPRESS=DEFLATE PREDICTOR=2), and a 64 x 64-tile copy without predictor
(deflate_u16_64.tif, 2048 x 2048).

Measured (time.perf_counter, methods interleaved run by run in rotating order, ratio = median
of per-run ratios):
  1. 200 seeded random ``IFD.read_segment`` calls, one thread: tiffio vs tifffile
     (``page.decode`` of the bytes, read with the file handle in the same loop) vs the floor
     (bare ``imagecodecs.deflate_decode`` + ``delta_decode`` of bytes already in memory).
  2. The whole level: ``ifd.asarray(workers=N)`` vs ``tifffile.TiffFile.asarray(maxworkers=N)``
     vs the floor (N threads decoding bytes in memory into a preallocated array, no assembly).
  3. The same two on the 64 x 64-tile file (4,096 tiny tiles: per-tile overhead).
``--baseline PATH``: also time a tiffio checkout at PATH (e.g. ``git archive <rev> tiffio | tar
-x -C PATH``) in the same interleaved runs, imported under another name.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import imagecodecs
import numpy
import tifffile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import record  # noqa: E402
from bench_read import (  # noqa: E402
    fmt_time,
    load_baseline,
    loadavg,
    machine_info,
    machine_text,
    med,
    paired_ratio,
    ratio_spread,
    run_interleaved,
    update_results,
)

import tiffio  # noqa: E402

DATA = os.path.join(HERE, "data")
BIG = os.path.join(DATA, "deflate_u16_8192.tif")
SMALL = os.path.join(DATA, "deflate_u16_64.tif")


def make_data() -> None:
    os.makedirs(DATA, exist_ok=True)
    rng = numpy.random.default_rng(7)
    for path, size, tile, predictor in ((BIG, 8192, 512, 2), (SMALL, 2048, 64, 1)):
        if os.path.exists(path):
            continue
        y, x = numpy.mgrid[0:size, 0:size].astype(numpy.float32)
        img = (numpy.sin(x / 97.0) * numpy.cos(y / 131.0) + 1) * 1800 + rng.normal(0, 12, (size, size))
        tifffile.imwrite(path, img.astype(numpy.uint16), tile=(tile, tile), compression="zlib",
                         compressionargs={"level": 6}, predictor=predictor)


def floor_tile(data: bytes, shape: tuple[int, int], predictor: int) -> numpy.ndarray:
    out = numpy.frombuffer(imagecodecs.deflate_decode(data, out=shape[0] * shape[1] * 2), numpy.uint16)
    out = out.reshape(shape)
    if predictor == 2:
        out = imagecodecs.delta_decode(out, axis=-1)
    return out


def bench_path(path: str, repeat: int, workers: int, base: Any) -> dict[str, Any]:
    tf = tifffile.TiffFile(path)
    page = tf.pages[0]
    fh = tf.filehandle
    tif = tiffio.open(path)
    ifd = tif.ifds[0]
    th, tw = ifd.tile_shape
    predictor = ifd.predictor
    n = ifd.segment_count
    stored = [ifd.read_segment_bytes(i) for i in range(n)]
    rng = numpy.random.default_rng(200)
    picks = [int(i) for i in rng.integers(0, n, 200)]
    ref = tf.asarray()
    assert numpy.array_equal(ifd.asarray(), ref)
    for i in picks[:5]:
        assert numpy.array_equal(ifd.read_segment(i), floor_tile(stored[i], (th, tw), predictor))
    funcs_tiles: dict[str, Any] = {
        "tiffio": lambda: [ifd.read_segment(i) for i in picks],
        "tifffile": lambda: [page.decode(_read(fh, page, i), i)[0] for i in picks],
        "floor": lambda: [floor_tile(stored[i], (th, tw), predictor) for i in picks],
    }
    pool = ThreadPoolExecutor(workers)
    out = numpy.empty(ref.shape, ref.dtype)
    across = ifd.width // tw

    def floor_level() -> None:
        def work(i: int) -> None:
            r, c = divmod(i, across)
            out[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = floor_tile(stored[i], (th, tw), predictor)
        list(pool.map(work, range(n)))

    funcs_level: dict[str, Any] = {
        "tiffio": lambda: ifd.asarray(workers=workers),
        "tifffile": lambda: tf.asarray(maxworkers=workers),
        "floor": floor_level,
    }
    if base is not None:
        btif = base.open(path)
        bifd = btif.ifds[0]
        assert numpy.array_equal(bifd.asarray(), ref)
        funcs_tiles["baseline"] = lambda: [bifd.read_segment(i) for i in picks]
        funcs_level["baseline"] = lambda: bifd.asarray(workers=workers)
    tiles = run_interleaved(funcs_tiles, repeat)
    level = run_interleaved(funcs_level, repeat)
    pool.shutdown()
    return {"tiles": tiles, "level": level, "ntiles": n, "tile": (th, tw), "predictor": predictor,
            "shape": ref.shape}


def _read(fh: Any, page: Any, i: int) -> bytes:
    fh.seek(page.dataoffsets[i])
    return fh.read(page.databytecounts[i])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", help="another tiffio checkout to time in the same runs")
    parser.add_argument("--write-results", action="store_true")
    record.add_json_arg(parser, "bench_deflate")
    args = parser.parse_args(argv)
    record.start("bench_deflate", args.record_json)
    make_data()
    base = load_baseline(args.baseline) if args.baseline else None
    info = machine_info()
    load0 = loadavg()
    results = {os.path.basename(p): bench_path(p, args.repeat, args.workers, base) for p in (BIG, SMALL)}
    cmd = f"python benchmarks/bench_deflate.py --repeat {args.repeat} --workers {args.workers}"
    if args.baseline:
        cmd += " --baseline PATH"
    lines = [f"### Deflate reading: `{cmd}`", "",
             (f"{machine_text(info)}; load average {load0} at the start, {loadavg()} at the end. Ratios: median of "
             f"{args.repeat} per-run ratios of interleaved runs (spread in brackets)."), "",
             "| file | measure | tiffio | tifffile | floor | tiffio / tifffile | tiffio / floor |"
             + (" baseline / tifffile |" if base is not None else ""),
             "|---|---|---:|---:|---:|---:|---:|" + ("---:|" if base is not None else "")]
    for name, res in results.items():
        label = f"{name} ({res['shape'][0]}², {res['tile'][0]}² tiles, predictor {res['predictor']})"
        for key, what in (("tiles", "200 random read_segment, 1 thread"),
                          ("level", f"whole level, {args.workers} threads")):
            t = res[key]
            row = (f"| {label} | {what} | {fmt_time(med(t['tiffio']))} | {fmt_time(med(t['tifffile']))} | "
                   f"{fmt_time(med(t['floor']))} | {paired_ratio(t, 'tiffio', 'tifffile'):.2f} "
                   f"({ratio_spread(t, 'tiffio', 'tifffile')}) | {paired_ratio(t, 'tiffio', 'floor'):.2f} "
                   f"({ratio_spread(t, 'tiffio', 'floor')}) |")
            if base is not None:
                row += f" {paired_ratio(t, 'baseline', 'tifffile'):.2f} ({ratio_spread(t, 'baseline', 'tifffile')}) |"
            lines.append(row)
            record.pair(f"{label}: {what}", t, "tiffio", {"tifffile": "tifffile"},
                        area="read" if key == "tiles" else "whole", floor="floor",
                        floor_name="imagecodecs deflate_decode (+ delta_decode) of bytes in memory")
            if base is not None:
                record.pair(f"bench_deflate {label}: {what}", t, "tiffio", {"baseline checkout": "baseline"},
                            area="ab")
    text = "\n".join(lines)
    print(text)
    record.save()
    if args.write_results:
        update_results("deflate-read", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
