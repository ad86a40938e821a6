"""The long fuzz campaign: mutate the seeds, decode every mutant, classify the outcome.

    python fuzz/run_fuzz.py --executions 1000000 --procs 2

One *execution* is one mutated input decoded twice: ``strict=True`` and
``strict=False`` (open, every IFD, every tag value, SubIFDs, read_segment(0),
asarray; see fuzz/harness.py). Inputs are derived deterministically from
``--seed``, the worker number and the execution number, so every finding can be
regenerated (``--replay W:I``).

Allowed outcomes: success, or a ``tiffio.TiffError`` subclass - within ``--timeout``
seconds and without the worker's peak RSS passing ``--max-rss`` MiB (the worker also
runs under RLIMIT_AS so that a runaway allocation becomes a MemoryError, reported
as an over-allocation). Anything else is saved to ``--crash-dir`` (input + report).

Prints a progress line every ``--report`` seconds and a final summary: executions,
ok, TiffError by class, other exceptions, hangs, over-allocations, crashes, exec/s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import resource
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tiffio
from fuzz.harness import FUZZ_LIMITS, MUTATORS, exercise, load_seeds

#: --limits: the Limits every decode runs with
LIMITS = {"fuzz": FUZZ_LIMITS, "default": tiffio.Limits()}


class Hang(BaseException):
    """Raised by the interval timer inside a worker."""


def _alarm(signum, frame):
    raise Hang()


def make_input(seeds: list[tuple[str, bytes]], campaign_seed: int, worker: int, index: int,
               mutator: str) -> tuple[str, bytes]:
    rng = random.Random(f"{campaign_seed}:{worker}:{index}")
    name, data = seeds[rng.randrange(len(seeds))]
    mutate = MUTATORS[mutator]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        data = mutate(data, rng)
    return name, data


def _save(crash_dir: Path, kind: str, data: bytes, report: str, key: str) -> Path:
    crash_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    path = crash_dir / f"{kind}-{digest}.tif"
    if not path.exists():
        path.write_bytes(data)
        path.with_suffix(".txt").write_text(report)
    return path


def worker_main(worker: int, start: int, stop: int, args: argparse.Namespace, progress, queue) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (args.rlimit_as << 20, args.rlimit_as << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGALRM, _alarm)
    seeds = load_seeds()
    crash_dir = Path(args.crash_dir)
    counts: Counter = Counter()
    last_flush = time.monotonic()
    max_rss = args.max_rss << 20
    for index in range(start, stop):
        if args.deadline and time.time() > args.deadline:
            # --max-seconds: stop here; report this worker's range as finished
            counts["stopped_at_deadline"] += 1
            counts[f"peak_rss_mib_w{worker}"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
            queue.put((worker, dict(counts), stop, index))
            queue.close()
            queue.join_thread()
            return
        progress.value = index
        name, data = make_input(seeds, args.seed, worker, index, args.mutator)
        for strict in (True, False):
            mode = "strict" if strict else "lenient"
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, args.timeout)
            try:
                outcome = exercise(data, strict, limits=LIMITS[args.limits])
                signal.setitimer(signal.ITIMER_REAL, 0)
            except Hang:
                outcome = "HANG"
                _save(crash_dir, "hang", data, f"seed {name}, worker {worker}, index {index}, {mode}: over "
                      f"{args.timeout} s\n", f"hang{worker}:{index}")
            except MemoryError:
                signal.setitimer(signal.ITIMER_REAL, 0)
                outcome = "OVERALLOC"
                _save(crash_dir, "overalloc", data, f"seed {name}, worker {worker}, index {index}, {mode}\n"
                      + traceback.format_exc(), "mem" + traceback.format_exc(limit=-2))
            except Exception as exc:
                signal.setitimer(signal.ITIMER_REAL, 0)
                outcome = "OTHER:" + type(exc).__name__
                tb = traceback.extract_tb(exc.__traceback__)
                site = f"{type(exc).__name__}@{tb[-1].filename}:{tb[-1].lineno}" if tb else type(exc).__name__
                _save(crash_dir, "other", data, f"seed {name}, worker {worker}, index {index}, {mode}\n"
                      + traceback.format_exc(), site)
            elapsed = time.perf_counter() - t0
            counts[f"{mode}:{outcome}"] += 1
            if elapsed > args.slow:
                counts["slow"] += 1
        counts["executions"] += 1
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
        if rss > max_rss:
            counts["OVERALLOC_RSS"] += 1
            _save(crash_dir, "rss", data, f"seed {name}, worker {worker}, index {index}: peak RSS "
                  f"{rss >> 20} MiB\n", f"rss{worker}:{index}")
            queue.put((worker, dict(counts), index + 1, index + 1))
            queue.close()
            queue.join_thread()
            os._exit(3)  # restart with a fresh peak
        now = time.monotonic()
        if now - last_flush > 2:
            queue.put((worker, dict(counts), None, index + 1))
            counts.clear()
            last_flush = now
    # the peak over this worker process's life (since its last restart): a slow leak shows here
    counts[f"peak_rss_mib_w{worker}"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    queue.put((worker, dict(counts), stop, stop))
    queue.close()
    queue.join_thread()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--limits", choices=sorted(LIMITS), default="fuzz",
                        help="fuzz: 64 MiB output/segment bounds (fast); default: tiffio's default Limits "
                             "(4 GiB output: pair with --rlimit-as to check that a result that cannot be "
                             "allocated is a LimitExceededError, not a MemoryError)")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=0,
                        help="stop after this many seconds even if fewer executions ran (the summary "
                             "counts the executions that did run); 0: no bound")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed")
    parser.add_argument("--mutator", choices=sorted(MUTATORS), default="mixed")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per decode")
    parser.add_argument("--max-rss", type=int, default=1024, help="MiB of peak RSS counted as an over-allocation")
    parser.add_argument("--rlimit-as", type=int, default=3072, help="MiB of address space per worker")
    parser.add_argument("--slow", type=float, default=1.0, help="seconds that count a decode as slow")
    parser.add_argument("--crash-dir", default=str(Path(__file__).resolve().parent / "crashes"))
    parser.add_argument("--report", type=float, default=30.0, help="seconds between progress lines")
    parser.add_argument("--replay", help="W:I - decode the input of worker W, execution I, and show the outcome")
    args = parser.parse_args()
    args.deadline = time.time() + args.max_seconds if args.max_seconds else 0.0

    if args.replay:
        w, i = (int(x) for x in args.replay.split(":"))
        name, data = make_input(load_seeds(), args.seed, w, i, args.mutator)
        out = Path(args.crash_dir) / f"replay-{w}-{i}.tif"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        print(name, len(data), "->", out)
        for strict in (True, False):
            print("strict" if strict else "lenient", exercise(data, strict, limits=LIMITS[args.limits]))
        return

    ctx = mp.get_context("fork")
    per = -(-args.executions // args.procs)
    ranges = [(w * per, min(args.executions, (w + 1) * per)) for w in range(args.procs)]
    queue = ctx.Queue()
    totals: Counter = Counter()
    state = {}  # worker -> [process, progress Value, next start, stop, last progress, last change time]
    counted = {}  # worker -> executions before this index are in totals

    def launch(w: int, start: int, stop: int) -> None:
        progress = ctx.Value("q", start, lock=False)
        p = ctx.Process(target=worker_main, args=(w, start, stop, args, progress, queue), daemon=True)
        p.start()
        state[w] = [p, progress, start, stop, start, time.monotonic()]
        counted[w] = start

    t0 = time.monotonic()
    for w, (a, b) in enumerate(ranges):
        if a < b:
            launch(w, a, b)
    finished: set[int] = set()
    last_report = t0
    seeds = load_seeds()
    print(f"{len(seeds)} seeds, {args.executions} executions on {args.procs} processes, seed {args.seed}", flush=True)
    while len(finished) < len(state):
        try:
            while True:
                w, counts, done, upto = queue.get(timeout=1)
                totals.update(counts)
                counted[w] = max(counted[w], upto)
                if done is not None:
                    if done >= state[w][3]:
                        finished.add(w)
                    else:
                        state[w][2] = done
        except Exception:  # queue.Empty
            pass
        now = time.monotonic()
        for w, st in list(state.items()):
            if w in finished:
                continue
            p, progress, _, stop, last, _since = st
            cur = progress.value
            if cur != last:
                st[4], st[5] = cur, now
            if not p.is_alive():
                p.join()
                if w in finished:
                    continue
                # drained its queue messages? give them a moment
                time.sleep(0.2)
                try:
                    while True:
                        w2, counts, done, upto = queue.get_nowait()
                        totals.update(counts)
                        counted[w2] = max(counted[w2], upto)
                        if done is not None and done >= state[w2][3]:
                            finished.add(w2)
                        elif done is not None:
                            state[w2][2] = done
                except Exception:
                    pass
                if w in finished:
                    continue
                if p.exitcode == 3:
                    launch(w, state[w][2], stop)
                else:
                    cur = progress.value
                    name, data = make_input(seeds, args.seed, w, cur, args.mutator)
                    totals["CRASH"] += 1
                    # the crashed worker's unreported executions ran (outcomes lost) + the crashing one
                    totals["executions"] += cur - counted[w] + 1
                    totals["outcome_lost_in_crash"] += cur - counted[w]
                    _save(Path(args.crash_dir), "crash", data, f"seed {name}, worker {w}, index {cur}: "
                          f"exit code {p.exitcode}\n", f"crash{w}:{cur}")
                    launch(w, cur + 1, stop)
            elif now - st[5] > 3 * args.timeout + 5:
                cur = progress.value
                p.kill()
                p.join()
                name, data = make_input(seeds, args.seed, w, cur, args.mutator)
                totals["HANG_KILLED"] += 1
                totals["executions"] += cur - counted[w] + 1
                totals["outcome_lost_in_crash"] += cur - counted[w]
                _save(Path(args.crash_dir), "hang", data, f"seed {name}, worker {w}, index {cur}: killed "
                      "by the watchdog\n", f"hangk{w}:{cur}")
                launch(w, cur + 1, stop)
        if now - last_report > args.report:
            last_report = now
            n = totals["executions"]
            print(f"[{now - t0:7.0f} s] {n} executions, {n / (now - t0):.0f}/s, other "
                  f"{sum(v for k, v in totals.items() if 'OTHER' in k)}, hangs "
                  f"{sum(v for k, v in totals.items() if 'HANG' in k)}, overalloc "
                  f"{sum(v for k, v in totals.items() if 'OVERALLOC' in k)}", flush=True)
    elapsed = time.monotonic() - t0
    n = totals["executions"]
    summary = {
        "command": " ".join(sys.argv),
        "executions": n,
        "decodes": 2 * n,
        "seconds": round(elapsed, 1),
        "executions_per_second": round(n / elapsed, 1),
        "stopped_by_max_seconds": bool(totals.get("stopped_at_deadline")),
        "outcomes": dict(sorted((k, v) for k, v in totals.items() if ":" in k)),
        "other_exceptions": sum(v for k, v in totals.items() if "OTHER" in k),
        "hangs": sum(v for k, v in totals.items() if "HANG" in k),
        "over_allocations": sum(v for k, v in totals.items() if "OVERALLOC" in k),
        "crashes": totals["CRASH"],
        "outcomes_lost_in_crashes": totals["outcome_lost_in_crash"],
        "slow_decodes": totals["slow"],
        "final_worker_peak_rss_mib": {k[len("peak_rss_mib_"):]: v for k, v in sorted(totals.items())
                                      if k.startswith("peak_rss_mib_")},
    }
    print(json.dumps(summary, indent=1), flush=True)


if __name__ == "__main__":
    main()
