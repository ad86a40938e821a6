"""A worker process that decodes files and reports one JSON line per file.

Reads file paths (one per line) on stdin; for each prints
``{"path", "strict", "lenient", "seconds_strict", "seconds_lenient", "maxrss"}`` where
strict/lenient is "ok", a TiffError class name, or "OTHER:<type>: <message>".
``maxrss`` is this process's peak RSS in bytes after the file (monotonic).

Run by tests/corpus/test_corpus_limits.py and fuzz/run_corpus.py under resource limits.
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


def run_one(data: bytes, strict: bool, limits) -> tuple[str, float]:
    t0 = time.perf_counter()
    try:
        outcome = exercise(data, strict, limits=limits, max_ifds=10_000)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        tb = traceback.format_exc(limit=-3).strip().splitlines()
        outcome = f"OTHER:{type(exc).__name__}: {str(exc)[:200]} | {' / '.join(tb[-4:])[:400]}"
    return outcome, time.perf_counter() - t0


def main() -> None:
    limits = None  # the defaults users get
    for line in sys.stdin:
        path = line.rstrip("\n")
        if not path:
            continue
        data = Path(path).read_bytes()
        strict, ts = run_one(data, True, limits)
        lenient, tl = run_one(data, False, limits)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"path": path, "strict": strict, "lenient": lenient, "seconds_strict": round(ts, 3),
                          "seconds_lenient": round(tl, 3), "maxrss": rss}), flush=True)


if __name__ == "__main__":
    main()
