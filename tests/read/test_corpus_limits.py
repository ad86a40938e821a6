"""Every file of ../shared/corpus: success or a TiffError subclass, never another exception,
never over 10 s, never over 2 GiB of RSS (issue 6 acceptance).

Files are decoded (fuzz/harness.py ``exercise``: open, all IFDs, all tag values, SubIFDs,
read_segment(0), asarray; strict and lenient) with the *default* Limits, in worker
subprocesses (fuzz/driver.py) that run under RLIMIT_AS and report one JSON line per file;
a watchdog kills and restarts a worker stuck on one file. The peak RSS of the workers
(ru_maxrss) is checked against 2 GiB.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
sys.path.insert(0, str(ROOT))

import tiffio  # noqa: E402
from fuzz.driver import run_files  # noqa: E402

#: CPU seconds (user + system, all threads, measured in the worker) one decode of a file may take:
#: the bound against decode blow-ups, independent of the machine's load
CPU_BOUND = 10.0
#: wall seconds per file (both decodes) before the watchdog kills the worker: a hang detector only,
#: far above what a loaded machine needs for CPU_BOUND of work
HANG_TIMEOUT = 120.0
RSS_BOUND = 2 << 30
TIFF_ERRORS = {name for name in dir(tiffio) if isinstance(getattr(tiffio, name), type)
               and issubclass(getattr(tiffio, name), tiffio.TiffError)}

pytestmark = [pytest.mark.corpus,
              pytest.mark.skipif(not (CORPUS / "manifest.tsv").exists(),
                                 reason=f"the shared corpus is not at {CORPUS} (../shared/corpus)")]


@pytest.fixture(scope="module")
def results() -> list[dict]:
    with open(CORPUS / "manifest.tsv", newline="") as fh:
        paths = [CORPUS / row["path"] for row in csv.DictReader(fh, delimiter="\t")]
    return run_files(paths, timeout=HANG_TIMEOUT, procs=2)


def test_every_file_reported(results):
    with open(CORPUS / "manifest.tsv", newline="") as fh:
        n = sum(1 for _ in csv.DictReader(fh, delimiter="\t"))
    assert len(results) == n


def test_only_tiff_errors(results):
    bad = [(r["path"], mode, r[mode]) for r in results for mode in ("strict", "lenient")
           if r[mode] != "ok" and r[mode] not in TIFF_ERRORS]
    assert not bad, "\n".join(map(str, bad))


def test_time_bound(results):
    """No file hangs the decoder (watchdog) and none needs more than CPU_BOUND CPU seconds per decode."""
    hung = [r["path"] for r in results if r.get("timeout")]
    assert not hung, f"killed after {HANG_TIMEOUT} s wall: {hung}"
    slow = [(r["path"], r["cpu_strict"], r["cpu_lenient"]) for r in results
            if "cpu_strict" in r and max(r["cpu_strict"], r["cpu_lenient"]) > CPU_BOUND]
    assert not slow, slow


def test_rss_bound(results):
    peak = max(r.get("maxrss", 0) for r in results)
    big = [(r["path"], r["maxrss"] >> 20) for r in results if r.get("maxrss", 0) > RSS_BOUND]
    assert not big, big
    assert peak > 0


def test_summary(results, capsys):
    counts = Counter((mode, r[mode]) for r in results for mode in ("strict", "lenient"))
    with capsys.disabled():
        print("\ncorpus outcomes:", dict(sorted(counts.items())))
        print("peak worker RSS MiB:", max(r.get("maxrss", 0) for r in results) >> 20)
