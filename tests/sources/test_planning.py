"""plan_ranges (tiffio/sources/planning.py): pure arithmetic, exact spans."""

from __future__ import annotations

from tiffio.sources.planning import MAX_GAP, MIN_GAP, gap_for, plan_ranges


def _covers(plan, ranges) -> None:
    """Every input range is found where the plan says, inside its span(s)."""
    for (offset, size), where in zip(ranges, plan.where):
        if size <= 0:
            assert where is None
            continue
        k, pos = where
        assert plan.spans[k][0] + pos == offset
        end = offset + size
        while plan.spans[k][0] + plan.spans[k][1] < end:  # runs over split pieces
            assert plan.spans[k + 1][0] == plan.spans[k][0] + plan.spans[k][1]
            k += 1


def test_sparse_dropped_repeats_once_tiny_gaps_merged():
    ranges = [(1000, 100), (0, 0), (1000, 100), (1128, 50), (500_000, 10)]
    plan = plan_ranges(ranges, max_gap=1 << 20, max_connections=8)
    # 28-byte gap (a tile leader): always merged; 500 000 is far: the budget (25 % of 160 bytes) refuses it
    assert plan.spans == [(1000, 178), (500_000, 10)]
    assert plan.where[1] is None
    _covers(plan, ranges)


def test_larger_gaps_merge_within_the_overfetch_budget_smallest_first():
    ranges = [(0, 40_000), (50_000, 40_000), (100_000, 40_000), (200_000, 40_000)]
    # needed 160 000: budget 40 000 takes the two 10 000 gaps, not the 60 000 one
    plan = plan_ranges(ranges, max_gap=1 << 20, max_connections=8)
    assert plan.spans == [(0, 140_000), (200_000, 40_000)]
    _covers(plan, ranges)


def test_more_spans_than_connections_forces_merging_under_max_gap():
    ranges = [(k * 1_000_000, 1000) for k in range(6)]
    plan = plan_ranges(ranges, max_gap=2 << 20, max_connections=3)
    assert len(plan.spans) == 3  # one wave
    _covers(plan, ranges)
    # but never across a gap larger than max_gap: then a second wave is cheaper than the bytes
    plan = plan_ranges(ranges, max_gap=64 << 10, max_connections=3)
    assert len(plan.spans) == 6


def test_long_spans_are_split_into_near_equal_pieces():
    ranges = [(10, 25_000_000)]
    plan = plan_ranges(ranges, max_block=8 << 20)
    assert [n for _, n in plan.spans] == [8_333_334, 8_333_334, 8_333_332]  # ceil(25 MB / 8 MiB) = 3
    assert plan.spans[0][0] == 10 and sum(n for _, n in plan.spans) == 25_000_000
    _covers(plan, ranges)


def test_gap_is_rtt_times_bandwidth_clamped():
    assert gap_for(0.0, 1e9) == MIN_GAP
    assert gap_for(0.02, 10e6) == 200_000
    assert gap_for(0.1, 1e9) == MAX_GAP


def test_empty_plan():
    assert plan_ranges([(0, 0), (5, 0)]).spans == []
