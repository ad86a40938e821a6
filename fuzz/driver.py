"""Run many files through fuzz/worker.py subprocesses under rlimits, with a watchdog.

``run_files(paths)`` returns one result dict per path (see worker.py), adding
``"timeout": True`` for a file whose worker had to be killed, and
``"crashed": "<returncode>"`` for a worker that died (e.g. a segfault or a rlimit kill).
"""

from __future__ import annotations

import json
import os
import resource
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "worker.py"
#: address-space limit of a worker: generous for numpy/imagecodecs imports and thread
#: stacks/arenas; the RSS bound (2 GiB) is checked separately from ru_maxrss
RLIMIT_AS_BYTES = 3 << 30


def _limit(as_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _run_chunk(paths: Sequence[str], timeout: float, as_bytes: int) -> list[dict]:
    results: list[dict] = []
    todo = list(paths)
    while todo:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=env,
                                preexec_fn=lambda: _limit(as_bytes))
        assert proc.stdin and proc.stdout
        proc.stdin.write("".join(p + "\n" for p in todo))
        proc.stdin.close()
        deadline = time.monotonic() + timeout
        buffer = ""
        done_here = 0
        failure: dict | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.kill()
                failure = {"timeout": True}
                break
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            if not ready:
                continue
            line = proc.stdout.readline()
            if not line:
                rc = proc.wait()
                if done_here < len(todo):
                    failure = {"crashed": str(rc)}
                break
            buffer = line
            results.append(json.loads(buffer))
            done_here += 1
            deadline = time.monotonic() + timeout
            if done_here == len(todo):
                break
        proc.stdout.close()
        proc.wait()
        if failure is not None:
            results.append({"path": todo[done_here], "strict": "KILLED", "lenient": "KILLED", **failure})
            done_here += 1
        todo = todo[done_here:]
    return results


def run_files(paths: Sequence[str | os.PathLike], *, timeout: float = 25.0, procs: int = 2,
              as_bytes: int = RLIMIT_AS_BYTES, chunk: int = 50) -> list[dict]:
    """Decode every path (strict and lenient) in ``procs`` parallel workers.

    ``timeout`` bounds one file (both modes) before the worker is killed and restarted.
    """
    items = [os.fspath(p) for p in paths]
    chunks = [items[i: i + chunk] for i in range(0, len(items), chunk)]
    with ThreadPoolExecutor(procs) as pool:
        parts = list(pool.map(lambda c: _run_chunk(c, timeout, as_bytes), chunks))
    return [r for part in parts for r in part]


def main() -> None:
    import argparse
    from collections import Counter
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", help="a folder of TIFF files (searched recursively), e.g. ../shared/corpus")
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args()
    root = Path(args.folder)
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".tif", ".tiff", ".gtif", ".btf", ".tf8", ".dng", ""))
    t0 = time.time()
    results = run_files(paths, procs=args.procs)
    counts: Counter = Counter()
    for r in results:
        for mode in ("strict", "lenient"):
            outcome = r[mode]
            counts[(mode, outcome.split(":")[0] if outcome.startswith("OTHER") else outcome)] += 1
            if outcome.startswith(("OTHER", "KILLED")):
                print(mode, r["path"], outcome, r.get("timeout", ""), r.get("crashed", ""))
        slow = max(r.get("seconds_strict", 0), r.get("seconds_lenient", 0))
        if slow > 2:
            print("slow", r["path"], slow)
    for key, n in sorted(counts.items()):
        print(*key, n, sep="\t")
    print("max rss", max(r.get("maxrss", 0) for r in results) / 2**20, "MiB", "files", len(results),
          "seconds", round(time.time() - t0, 1))


if __name__ == "__main__":
    main()
