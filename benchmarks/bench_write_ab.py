"""A/B of the writer between two checkouts, interleaved run by run: bench_write.py's tiffio contender
(its "jpeg" or "deflate" case, 2 encoder threads, fsync=True) in a fresh process per run, alternating
the checkouts, so that both see the same machine load.

    python benchmarks/bench_write_ab.py jpeg --a /tmp/base --b . --runs 6

Prints each run's seconds and, per checkout, the median; then the median of the per-pair ratios b / a
(below 1: b is faster). Each process imports tiffio from its checkout (bench_write.py puts the
checkout first on sys.path).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import record

CHILD = """
import json, os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "benchmarks"))
import bench_write
p = bench_write.case_params(sys.argv[2])
tiles = bench_write.make_tiles(p["tile"], p["samples"], p["dtype"])
seconds, checkpoints = bench_write.run_tiffio(sys.argv[3], sys.argv[2], tiles, 2)
bench_write.remove(sys.argv[3])
print(json.dumps({"seconds": seconds, "tiffio": bench_write.tiffio.__file__}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=("jpeg", "deflate"))
    parser.add_argument("--a", required=True, help="checkout A (e.g. main)")
    parser.add_argument("--b", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--dir", default="/tmp")
    record.add_json_arg(parser, "bench_write_ab")
    args = parser.parse_args()
    record.start("bench_write_ab", args.record_json)
    times: dict[str, list[float]] = {"a": [], "b": []}
    for run in range(args.runs):
        for key in (("a", "b") if run % 2 == 0 else ("b", "a")):
            repo = os.path.abspath(getattr(args, key))
            path = os.path.join(args.dir, f"bench_write_ab_{os.getpid()}.tif")
            out = subprocess.run([sys.executable, "-c", CHILD, repo, args.case, path], capture_output=True,
                                 text=True, check=True, timeout=3600)
            doc = json.loads(out.stdout.strip().splitlines()[-1])
            assert doc["tiffio"].startswith(repo), doc
            times[key].append(doc["seconds"])
            print(json.dumps({"run": run, "checkout": key, "repo": repo, "seconds": round(doc["seconds"], 3)}),
                  flush=True)
    ratios = [b / a for a, b in zip(times["a"], times["b"])]
    print(json.dumps({"case": args.case, "median_a": round(statistics.median(times["a"]), 3),
                      "median_b": round(statistics.median(times["b"]), 3),
                      "median_ratio_b_over_a": round(statistics.median(ratios), 3),
                      "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)]}))
    record.pair(f"bench_write_ab {args.case}: bench_write.py's tiffio contender, 2 threads, fsync, B vs A",
                {"b": times["b"], "a": times["a"]}, "b", {"checkout A": "a"}, area="ab")
    record.save()


if __name__ == "__main__":
    main()
