"""A worker process that decodes files and reports one JSON line per file.

Reads file paths (one per line) on stdin; for each prints
``{"path", "strict", "lenient", "seconds_strict", "seconds_lenient", "cpu_strict", "cpu_lenient", "maxrss"}``
(``seconds_*``: wall clock; ``cpu_*``: user + system CPU seconds, independent of the machine's load) where
strict/lenient is "ok", a TiffError class name, or "OTHER:<type>: <message>".
``maxrss`` is this process's peak RSS in bytes after the file (monotonic).

Run by tests/read/test_corpus_limits.py and fuzz/run_corpus.py under resource limits.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.harness import exercise


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) and of its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_one(data: bytes, strict: bool, limits) -> tuple[str, float, float]:
    """Decode ``data``; returns (outcome, wall seconds, CPU seconds)."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    try:
        outcome = exercise(data, strict, limits=limits, max_ifds=10_000)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        tb = traceback.format_exc(limit=-3).strip().splitlines()
        outcome = f"OTHER:{type(exc).__name__}: {str(exc)[:200]} | {' / '.join(tb[-4:])[:400]}"
    return outcome, time.perf_counter() - t0, cpu_seconds() - c0


def main() -> None:
    limits = None  # the defaults users get
    for line in sys.stdin:
        path = line.rstrip("\n")
        if not path:
            continue
        data = Path(path).read_bytes()
        strict, ts, cs = run_one(data, True, limits)
        lenient, tl, cl = run_one(data, False, limits)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"path": path, "strict": strict, "lenient": lenient, "seconds_strict": round(ts, 3),
                          "seconds_lenient": round(tl, 3), "cpu_strict": round(cs, 3), "cpu_lenient": round(cl, 3),
                          "maxrss": rss}), flush=True)


if __name__ == "__main__":
    main()
