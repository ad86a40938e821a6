"""In-process A/B of two tiffio checkouts on the reader's hot paths.

    python benchmarks/bench_ab.py --base /tmp/main-checkout [--new .] [--cases tiles16,wsi,region]

Both packages are copied into a temporary folder as ``tiffio_base`` and ``tiffio_new`` (tiffio
imports itself relatively, so both load side by side) and each case calls them alternately,
tile by tile, in one process: load from other jobs on a shared machine hits both alike,
which separate processes run one after the other cannot promise. Times are this thread's
CPU time; the ratio new/base is the median of the per-round ratios [range].

Cases (files of benchmarks/make_data.py):
  tiles16  ``read_segment`` of 16 x 16 uint8 uncompressed tiles (the per-call overhead)
  bytes    ``read_segment_bytes`` of the same tiles
  wsi      ``read_segment`` of 512 x 512 JPEG tiles
  region   ``read_region`` of 2048 x 2048 windows of the JPEG file, workers=1
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
sys.path.insert(0, HERE)

import record  # noqa: E402

CASES: dict[str, tuple[str, int, int, Callable[[Any, int], Any]]] = {
    "tiles16": ("tiles16_16384_u8.tif", 4000, 9, lambda ifd, i: ifd.read_segment(i % 8192)),
    "bytes": ("tiles16_16384_u8.tif", 4000, 9, lambda ifd, i: ifd.read_segment_bytes(i % 8192)),
    "wsi": ("wsi_40960_jpeg.tif", 150, 7, lambda ifd, i: ifd.read_segment(i)),
    "region": ("wsi_40960_jpeg.tif", 6, 7,
               lambda ifd, i: ifd.read_region((i % 70) * 512 + 100, (i // 70 % 70) * 512 + 100, 2048, 2048,
                                              workers=1)),
}

CASE_TEXT = {"tiles16": "read_segment of 16² uncompressed tiles", "bytes": "read_segment_bytes of 16² tiles",
             "wsi": "read_segment of 512² JPEG tiles", "region": "read_region 2048² of the JPEG WSI, workers=1"}


def run(name: str, modules: dict[str, Any]) -> str:
    path, n, rounds, op = CASES[name]
    tifs = {k: m.open(os.path.join(DATA, path)) for k, m in modules.items()}
    ifds = {k: t.ifds[0] for k, t in tifs.items()}
    rng = random.Random(7)
    count = ifds["base"].segment_count
    ratios: list[float] = []
    per_call: dict[str, list[float]] = {"base": [], "new": []}
    for r in range(rounds):
        indices = [rng.randrange(count) for _ in range(n)]
        for ifd in ifds.values():  # warm: strile blocks and buffers of these tiles
            for i in indices[:50]:
                op(ifd, i)
        spent = {"base": 0, "new": 0}
        order = ["base", "new"] if r % 2 == 0 else ["new", "base"]
        for i in indices:
            for k in order:
                t0 = time.thread_time_ns()
                op(ifds[k], i)
                spent[k] += time.thread_time_ns() - t0
        ratios.append(spent["new"] / spent["base"])
        for k, ns in spent.items():
            per_call[k].append(ns / n / 1e3)
    for tif in tifs.values():
        tif.close()
    record.add(f"bench_ab {name}: {CASE_TEXT[name]}, CPU per call, new vs base", area="ab",
               tiffio=statistics.median(per_call["new"]) / 1e6, peer="base checkout",
               peer_time=statistics.median(per_call["base"]) / 1e6, ratio=statistics.median(ratios),
               spread=(min(ratios), max(ratios)), runs=rounds)
    return (f"{name}: base {statistics.median(per_call['base']):.2f} us, new {statistics.median(per_call['new']):.2f} "
            f"us per call; new/base {statistics.median(ratios):.3f} [{min(ratios):.3f}..{max(ratios):.3f}] over "
            f"{rounds} rounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="a tiffio checkout (the folder holding tiffio/)")
    parser.add_argument("--new", default=os.path.dirname(HERE), help="the checkout to compare (default: this one)")
    parser.add_argument("--cases", default="tiles16,wsi,region", help=f"comma-separated, of {', '.join(CASES)}")
    record.add_json_arg(parser, "bench_ab")
    args = parser.parse_args()
    record.start("bench_ab", args.record_json)
    with tempfile.TemporaryDirectory(prefix="tiffio-ab-") as folder:
        for name, checkout in (("tiffio_base", args.base), ("tiffio_new", args.new)):
            shutil.copytree(os.path.join(checkout, "tiffio"), os.path.join(folder, name))
        sys.path.insert(0, folder)
        import tiffio_base  # type: ignore[import-not-found]
        import tiffio_new  # type: ignore[import-not-found]
        modules = {"base": tiffio_base, "new": tiffio_new}
        for case in args.cases.split(","):
            print(run(case.strip(), modules), flush=True)
    record.save()


if __name__ == "__main__":
    main()
