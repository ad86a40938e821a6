"""Regenerate the tables of benchmarks/README.md from the JSON records in benchmarks/results/.

    python benchmarks/report.py            # rewrite the tables between the README's marker comments
    python benchmarks/report.py --check    # exit 1 (and say which table) if the README is not up to date

One table per area (record.AREAS), between ``<!-- table:AREA:begin -->`` and ``<!-- table:AREA:end -->``;
everything outside the markers is left as written. A row is one record: the case, tiffio's time, the
fastest peer measured and its time, ratio = tiffio time / peer time (below 1: tiffio is faster), the
spread of the per-run ratios (lowest..highest), tiffio / floor where the benchmark measures a floor,
the date (marked "diary" for figures copied from benchmarks/history/, "loaded" for runs on a busy
machine) and the command that produced it. The output depends on the records only (no clock, no
machine), so tests/docs/test_benchmarks_doc.py can check that the README matches the committed JSON.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import record  # noqa: E402

README = os.path.join(HERE, "README.md")

#: the order of the benchmarks inside a table (others follow, by name)
BENCH_ORDER = ["bench_read", "bench_region", "bench_deflate", "bench_asarray", "bench_threads", "bench_series",
               "bench_zarr", "bench_write", "bench_write_tiles", "bench_scale", "bench_pyramid", "bench_arrays",
               "bench_cli", "bench_remote", "bench_ab", "bench_write_ab"]

#: what to run when an area has no record yet
EMPTY_HINT = {
    "arrays": "`python benchmarks/bench_arrays.py imwrite` (also `to_tiff`, `map_tiles`)",
    "ab": "`python benchmarks/bench_ab.py --base PATH`, `python benchmarks/bench_write_ab.py jpeg --a PATH`",
}


def load_records(folder: str = record.RESULTS_DIR) -> list[dict[str, Any]]:
    """Every record of every results/*.json, in table order (benchmark, then the file's order)."""
    out: list[tuple[int, str, int, dict[str, Any]]] = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        for k, rec in enumerate(record.load(path)):
            bench = rec["bench"]
            rank = BENCH_ORDER.index(bench) if bench in BENCH_ORDER else len(BENCH_ORDER)
            out.append((rank, bench, k, rec))
    out.sort(key=lambda item: item[:3])
    return [rec for *_, rec in out]


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def date_cell(rec: dict[str, Any]) -> str:
    text = rec["date"][:10]
    marks = []
    if rec["source"] == "history":
        marks.append("diary")
    if rec["source"] == "loaded" or "machine loaded" in (rec.get("note") or ""):
        marks.append("loaded")
    return text + (f" ({', '.join(marks)})" if marks else "")


def row(rec: dict[str, Any]) -> str:
    peer = rec["peer"] or "-"
    if rec["peer"] is not None and rec["peer_time"] is not None:
        peer += f" {fmt_time(rec['peer_time'])}"
    spread = "-" if rec["spread"] is None else f"{fmt_ratio(rec['spread'][0])}..{fmt_ratio(rec['spread'][1])}"
    cells = [rec["case"], fmt_time(rec["tiffio"]), peer, fmt_ratio(rec["ratio"]), spread,
             fmt_ratio(rec["floor_ratio"]), date_cell(rec), f"`{rec['command']}`"]
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def table(area: str, records: list[dict[str, Any]]) -> str:
    rows = [rec for rec in records if rec["area"] == area]
    if not rows:
        hint = EMPTY_HINT.get(area, "the benchmarks of this area")
        return f"No figure yet: run {hint}, then `python benchmarks/report.py`."
    lines = ["| case | tiffio | best peer | ratio | spread | floor ratio | date | command |",
             "|---|---:|---|---:|---:|---:|---|---|"]
    lines += [row(rec) for rec in rows]
    notes = [f"{rec['case']}: {rec['note']}" for rec in rows if rec.get("note")]
    floors = sorted({rec["floor"] for rec in rows if rec.get("floor")})
    if floors:
        lines += ["", "Floors: " + "; ".join(floors) + "."]
    if notes:
        lines += ["", "<details><summary>Notes</summary>", ""] + [f"- {cell(n)}" for n in notes] + ["", "</details>"]
    return "\n".join(lines)


def render(text: str, records: list[dict[str, Any]]) -> str:
    """``text`` with every marked table replaced by the one the records give."""
    for area in record.AREAS:
        begin, end = f"<!-- table:{area}:begin -->", f"<!-- table:{area}:end -->"
        pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
        if not pattern.search(text):
            raise SystemExit(f"README has no {begin} ... {end} markers")
        block = f"{begin}\n{table(area, records)}\n{end}"
        text = pattern.sub(lambda _m, block=block: block, text, count=1)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the README is out of date")
    parser.add_argument("--readme", default=README)
    parser.add_argument("--results", default=record.RESULTS_DIR, help="the folder of the JSON records")
    args = parser.parse_args(argv)
    with open(args.readme, encoding="utf-8") as fh:
        old = fh.read()
    records = load_records(args.results)
    new = render(old, records)
    if args.check:
        if new != old:
            print(f"{args.readme} is out of date: run python benchmarks/report.py", file=sys.stderr)
            return 1
        return 0
    if new != old:
        with open(args.readme, "w", encoding="utf-8") as fh:
            fh.write(new)
    print(f"{len(records)} records, {len(record.AREAS)} tables: {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
