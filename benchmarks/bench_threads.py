"""Threads of a whole-image read: tiffio's default (``workers=None``), one thread, two threads,
tifffile's default, and optionally another tiffio checkout, interleaved in one run.

    python benchmarks/bench_threads.py [--repeat 7] [--baseline PATH] [--write-results]

Files (benchmarks/data, made by bench_deflate.py, bench_zarr.py and make_data.py; the three
``threads_*`` files are made here from zarr_u16_4096.tif with tifffile):
  threads_u16_32.tif    4096² uint16 Deflate, 32² tiles (2 KiB segments)
  zarr_u16_4096.tif     4096² uint16 Deflate, 64² tiles (8 KiB segments)
  deflate_u16_64.tif    2048² uint16 Deflate, 64² tiles
  threads_u8_64_raw.tif 4096² uint8 uncompressed, 64² tiles (4 KiB)
  threads_u8_256_raw.tif 4096² uint8 uncompressed, 256² tiles (64 KiB)
  deflate_u16_8192.tif  8192² uint16 Deflate + predictor 2, 512² tiles
  zarr_jpeg_8192.tif    8192² RGB JPEG, 256² tiles
  wsi_40960_jpeg.tif    a 8192² window of a 40960² RGB JPEG, 512² tiles

Per file: ``ifd.asarray()`` (or ``read_region`` for the window) with ``workers=None`` (what
``IFD.read_workers`` picks), ``workers=1`` and ``workers=2``, against ``tifffile``'s
``page.asarray()`` (its default threads) and, with ``--baseline``, the same reads (default and
one thread) of a tiffio checkout at PATH (``git worktree add --detach PATH <rev>``) imported under
another name.
Ratios are medians of per-run ratios of interleaved runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

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
from tiffio.enums import Compression  # noqa: E402

DATA = os.path.join(HERE, "data")
CASES = [("threads_u16_32.tif", None), ("zarr_u16_4096.tif", None), ("deflate_u16_64.tif", None),
         ("threads_u8_64_raw.tif", None), ("threads_u8_256_raw.tif", None), ("deflate_u16_8192.tif", None),
         ("zarr_jpeg_8192.tif", None), ("wsi_40960_jpeg.tif", (7001, 9003, 8192, 8192))]


def make_data() -> None:
    """The three files of other tile sizes, from zarr_u16_4096.tif (when it exists)."""
    source = os.path.join(DATA, "zarr_u16_4096.tif")
    wanted = {"threads_u16_32.tif": ((32, 32), "zlib", False), "threads_u8_64_raw.tif": ((64, 64), None, True),
              "threads_u8_256_raw.tif": ((256, 256), None, True)}
    if not os.path.exists(source) or all(os.path.exists(os.path.join(DATA, k)) for k in wanted):
        return
    with tiffio.open(source) as tif:
        image = tif.ifds[0].asarray()
    for name, (tile, compression, to_u8) in wanted.items():
        data = (image >> 8).astype("uint8") if to_u8 else image
        tifffile.imwrite(os.path.join(DATA, name), data, tile=tile, compression=compression)


def codec_name(code: int) -> str:
    try:
        return {1: "raw", 7: "JPEG", 8: "Deflate", 5: "LZW"}.get(code) or Compression(code).name
    except ValueError:
        return str(code)


def reader(ifd: Any, window: tuple[int, int, int, int] | None, workers: Any) -> Any:
    if window is None:
        return lambda: ifd.asarray(workers=workers)
    return lambda: ifd.read_region(*window, workers=workers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--baseline", help="another tiffio checkout to time in the same runs")
    parser.add_argument("--write-results", action="store_true")
    record.add_json_arg(parser, "bench_threads")
    args = parser.parse_args(argv)
    record.start("bench_threads", args.record_json)
    make_data()
    base = load_baseline(args.baseline) if args.baseline else None
    info = machine_info()
    load0 = loadavg()
    rows = []
    for name, window in CASES:
        path = os.path.join(DATA, name)
        if not os.path.exists(path):
            print(f"skipping {name}: not in benchmarks/data (run the benchmark that makes it)")
            continue
        tif = tiffio.open(path)
        ifd = tif.ifds[0]
        funcs = {"default": reader(ifd, window, None), "1 thread": reader(ifd, window, 1),
                 "2 threads": reader(ifd, window, 2)}
        tf = tifffile.TiffFile(path)
        page = tf.pages[0]
        if window is None:
            funcs["tifffile"] = page.asarray
        if base is not None:
            bifd = base.open(path).ifds[0]
            funcs["baseline"] = reader(bifd, window, None)
            funcs["baseline 1 thread"] = reader(bifd, window, 1)
        for f in funcs.values():
            f()  # warm the page cache and the codecs
        t = run_interleaved(funcs, args.repeat)
        seg = ifd.grid.stored_shape(0)
        rows.append((name, window, ifd.read_workers, seg, t, ifd.dtype.itemsize, codec_name(ifd.compression)))
        print(name, {k: fmt_time(med(v)) for k, v in t.items()}, flush=True)
    cmd = f"python benchmarks/bench_threads.py --repeat {args.repeat}" + (" --baseline PATH" if base else "")
    lines = [f"### Threads of a whole-image read: `{cmd}`", "",
             (f"{machine_text(info)}; load average {load0} at the start, {loadavg()} at the end. Ratios: median of "
              f"{args.repeat} per-run ratios of interleaved runs (spread in brackets)."), "",
             "| file | segment | read_workers | default | 1 thread | 2 threads | 2 threads / 1 | default / best of 1, 2 "
             "| default / tifffile |"
             + (" default / baseline | 1 thread / baseline 1 thread |" if base else ""),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if base else "")]
    for name, window, chosen, seg, t, itemsize, codec in rows:
        best = "1 thread" if med(t["1 thread"]) <= med(t["2 threads"]) else "2 threads"
        label = name + (f" window {window[2]}²" if window else "")
        d, h, w, s = seg
        size = f"{h}² {codec}, {d * h * w * s * itemsize // 1024} KiB"
        row = (f"| {label} | {size} | {chosen} | {fmt_time(med(t['default']))} | {fmt_time(med(t['1 thread']))} | "
               f"{fmt_time(med(t['2 threads']))} | {paired_ratio(t, '2 threads', '1 thread'):.2f} "
               f"({ratio_spread(t, '2 threads', '1 thread')}) | {paired_ratio(t, 'default', best):.2f} "
               f"({ratio_spread(t, 'default', best)}) | ")
        row += (f"{paired_ratio(t, 'default', 'tifffile'):.2f} ({ratio_spread(t, 'default', 'tifffile')}) |"
                if "tifffile" in t else "- |")
        if base:
            row += (f" {paired_ratio(t, 'default', 'baseline'):.2f} ({ratio_spread(t, 'default', 'baseline')}) |"
                    f" {paired_ratio(t, '1 thread', 'baseline 1 thread'):.2f}"
                    f" ({ratio_spread(t, '1 thread', 'baseline 1 thread')}) |")
        lines.append(row)
        case = f"{label} ({size}), workers=None"
        record.pair(case, t, "default", {"tifffile default threads": "tifffile"} if "tifffile" in t else None,
                    area="whole", note=f"read_workers {chosen}; 1 thread {fmt_time(med(t['1 thread']))}, "
                                       f"2 threads {fmt_time(med(t['2 threads']))}")
        if base:
            record.pair(f"bench_threads {case}", t, "default", {"baseline checkout": "baseline"}, area="ab")
    text = "\n".join(lines)
    print(text)
    record.save()
    if args.write_results:
        update_results("bench_threads", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
