"""Plan the requests for a set of byte ranges (pure arithmetic, no I/O).

A remote read costs one round trip however many requests run in parallel, up to the
connections a host allows; bytes cost time at the link's bandwidth. So the planner:

* drops empty (sparse) ranges and fetches ranges that overlap or repeat only once;
* always merges ranges separated by a tiny gap (tile leaders, padding: cheaper than a request);
* merges larger gaps, smallest first and never above ``max_gap`` (RTT x bandwidth: past it a
  separate request costs less than the gap's bytes), while the merged bytes stay within
  ``overfetch`` of the bytes needed, or while there are more spans than connections
  (a second wave would cost a whole round trip);
* splits spans longer than ``max_block`` so that one large read uses several connections
  (object_store's coalescing has no such cap).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["Plan", "plan_ranges", "gap_for", "TINY_GAP", "MIN_GAP", "MAX_GAP"]

#: gaps up to this size are always fetched (a request costs more than 4 KiB on any link)
TINY_GAP = 4096
#: bounds of the RTT x bandwidth gap (64 KiB - 2 MiB)
MIN_GAP = 64 << 10
MAX_GAP = 2 << 20


def gap_for(rtt: float, bandwidth: float) -> int:
    """The largest gap worth fetching rather than paying another request: the bytes the link
    moves in one round trip, clamped to [MIN_GAP, MAX_GAP]."""
    return int(min(MAX_GAP, max(MIN_GAP, rtt * bandwidth)))


class Plan(NamedTuple):
    """``spans``: the (offset, length) requests; ``where[i]``: for input range i, the index of
    the first span holding it and its position in that span (None for an empty range).
    A range may run over several consecutive spans when a long span was split."""

    spans: list[tuple[int, int]]
    where: list[tuple[int, int] | None]


def plan_ranges(ranges: Sequence[tuple[int, int]], *, max_gap: int = MAX_GAP, max_connections: int = 8,
                max_block: int = 8 << 20, overfetch: float = 0.25) -> Plan:
    """Coalesce and split ``ranges`` ((offset, size) pairs) into request spans."""
    order = sorted((o, n) for o, n in set(ranges) if n > 0)
    if not order:
        return Plan([], [None] * len(ranges))
    # 1. union of overlapping or touching ranges (each byte fetched once)
    merged: list[list[int]] = []
    for o, n in order:
        if merged and o <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], o + n)
        else:
            merged.append([o, o + n])
    needed = sum(e - s for s, e in merged)
    # 2. merge gaps, smallest first: tiny ones always, larger ones within the overfetch budget
    # or while there are more spans than connections, never above max_gap
    gaps = sorted((merged[i + 1][0] - merged[i][1], i) for i in range(len(merged) - 1))
    join = [False] * len(merged)
    spans_left = len(merged)
    extra = 0
    for gap, i in gaps:
        if gap > max_gap:
            break
        if gap <= TINY_GAP or extra + gap <= overfetch * needed or spans_left > max_connections:
            join[i] = True
            extra += gap
            spans_left -= 1
        else:
            break  # gaps are sorted: no larger gap fits the budget either, unless forced (handled above)
    spans: list[tuple[int, int]] = []
    start, end = merged[0]
    for i in range(1, len(merged)):
        if join[i - 1]:
            end = merged[i][1]
        else:
            spans.append((start, end - start))
            start, end = merged[i]
    spans.append((start, end - start))
    # 3. split long spans into near-equal pieces (several connections for one big read)
    if max_block > 0:
        split: list[tuple[int, int]] = []
        for o, n in spans:
            pieces = -(-n // max_block)
            step = -(-n // pieces)
            split.extend((o + k, min(step, n - k)) for k in range(0, n, step))
        spans = split
    # 4. locate each input range
    starts = [o for o, _ in spans]
    where: list[tuple[int, int] | None] = []
    for o, n in ranges:
        if n <= 0:
            where.append(None)
            continue
        k = bisect.bisect_right(starts, o) - 1
        where.append((k, o - starts[k]))
    return Plan(spans, where)
