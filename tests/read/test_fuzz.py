"""Bounded fuzzing in the test suite (issue 6).

Hypothesis mutates small valid TIFFs (fuzz/seeds, plus small files of fixtures/):
byte-level edits and truncations, and structure-aware edits of IFD entries (field
type, count, value/offset, tag code, one element of a value), header and next-IFD
pointers. Each example is decoded strict and lenient (fuzz/harness.py ``exercise``)
under a per-example time bound (SIGALRM) and an allocation bound (tracemalloc peak).
The only allowed outcomes are success or a TiffError subclass.

``test_campaign_subprocess`` runs a short fuzz/run_fuzz.py campaign: worker processes
under RLIMIT_AS, with a watchdog for hangs and segfaults.
The long campaign is ``python fuzz/run_fuzz.py --executions 1000000 --procs 2``.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fuzz.harness import (  # noqa: E402
    FUZZ_LIMITS,
    IMPORTANT_TAGS,
    INTERESTING,
    _put_int,
    exercise,
    load_seeds,
    mutate,
    scan_structure,
)
from tests.support.timebound import BoundExceeded, cpu_bound  # noqa: E402

pytestmark = pytest.mark.fuzz

SEEDS = load_seeds(max_size=8192)
TIME_BOUND = 5  # CPU seconds per example (both modes); a typical example takes milliseconds
#: bytes a decode may allocate: the fuzz limits bound one output and one segment
ALLOC_BOUND = FUZZ_LIMITS.max_output_bytes + 2 * FUZZ_LIMITS.max_segment_bytes + (16 << 20)

SETTINGS = settings(max_examples=250, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check(data: bytes) -> None:
    """Decode ``data`` strict and lenient within the time and allocation bounds."""
    tracemalloc.start()
    try:
        with cpu_bound(TIME_BOUND):
            for strict in (True, False):
                exercise(data, strict)  # raises anything that is not a TiffError
    except BoundExceeded as exc:
        pytest.fail(f"decoding took over {TIME_BOUND} s ({exc.args[0]}): {data[:64].hex()}... ({len(data)} bytes)")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < ALLOC_BOUND, f"{peak} bytes allocated for a {len(data)}-byte input"


def test_seeds_decode():
    valid = [(name, data) for name, data in SEEDS if not name.startswith("dos_")]
    assert len(valid) >= 10
    for name, data in valid[:10]:
        assert exercise(data, True) in ("ok", "CorruptSegmentError"), name


def test_denial_of_service_seeds_are_refused():
    """The dos_* seeds (fuzz/make_seeds.py DOS_SEEDS, the two DoS classes of issue 11) are
    refused in both modes with default Limits, so mutants start from a refused file."""
    dos = [(name, data) for name, data in SEEDS if name.startswith("dos_")]
    assert len(dos) == 3
    for name, data in dos:
        for strict in (True, None):
            assert exercise(data, strict, limits=None) in ("TiffFormatError", "TruncatedError",
                                                           "CorruptSegmentError"), name


seed_data = st.sampled_from(SEEDS).map(lambda s: s[1])


@SETTINGS
@given(data=seed_data, edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1,
                                      max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 1 << 16)))
def test_byte_mutations(data: bytes, edits: list[tuple[int, int]], cut: int | None):
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    if cut is not None:
        del buf[cut % (len(buf) + 1):]
    check(bytes(buf))


numbers = st.one_of(st.sampled_from(INTERESTING), st.integers(0, (1 << 32) - 1), st.integers(0, 64))


@SETTINGS
@given(data=seed_data, ops=st.lists(st.tuples(st.integers(0, 1 << 20), st.sampled_from(
    ["type", "count", "value_field", "element", "code", "pointer", "entry_count"]), numbers), min_size=1, max_size=3))
def test_structure_mutations(data: bytes, ops: list[tuple[int, str, int]]):
    pointers, fields, ifds = scan_structure(data)
    buf = bytearray(data)
    for which, part, value in ops:
        f = fields[which % len(fields)]
        bo, big = f.bo, f.big
        if part == "type":
            _put_int(buf, f.entry + 2, 2, value % 20, bo)
        elif part == "count":
            _put_int(buf, f.entry + 4, 8 if big else 4, value, bo)
        elif part == "value_field":
            _put_int(buf, f.entry + (12 if big else 8), 8 if big else 4, value, bo)
        elif part == "element" and f.value_size:
            size = min({3: 2, 4: 4, 16: 8, 8: 2, 9: 4}.get(f.type, 1), 8)
            _put_int(buf, f.value_pos + size * (which % max(1, min(f.count, 64))), size, value, bo)
        elif part == "code":
            _put_int(buf, f.entry, 2, IMPORTANT_TAGS[value % len(IMPORTANT_TAGS)], bo)
        elif part == "pointer":
            _put_int(buf, pointers[which % len(pointers)], 8 if big else 4, value, bo)
        elif part == "entry_count":
            _put_int(buf, ifds[which % len(ifds)], 8 if big else 2, value % 70000, bo)
    check(bytes(buf))


@SETTINGS
@given(data=seed_data, seed=st.integers(0, 1 << 32))
def test_random_mutator(data: bytes, seed: int):
    """The long campaign's mutator (fuzz/harness.py ``mutate``), stacked 1-3 times."""
    rng = random.Random(seed)
    for _ in range(rng.choice((1, 2, 3))):
        data = mutate(data, rng)
    check(data)


def test_campaign_subprocess(tmp_path):
    """A short campaign in worker processes under RLIMIT_AS, with the hang/crash watchdog."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "run_fuzz.py"), "--executions", "1500", "--procs", "2",
         "--seed", "7", "--crash-dir", str(tmp_path), "--timeout", "10"],
        capture_output=True, text=True, timeout=600, check=True)
    summary = json.loads(out.stdout[out.stdout.index("{"):])
    assert summary["executions"] == 1500
    assert summary["other_exceptions"] == 0, list(tmp_path.iterdir())
    assert summary["hangs"] == 0 and summary["over_allocations"] == 0 and summary["crashes"] == 0
