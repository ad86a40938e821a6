"""grid.py: segment index order, shapes, and region projections (pure arithmetic)."""

from __future__ import annotations

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tiffio
from tiffio.format.grid import SegmentGrid


def test_index_order_planes_outermost():
    g = SegmentGrid((2, 50, 70), (1, 16, 32), samples=3, separate=True, tiled=True)
    assert (g.planes, g.deep, g.down, g.across) == (3, 2, 4, 3)
    assert g.count == 3 * 2 * 4 * 3
    for index in range(g.count):
        c = g.coords(index)
        assert g.index(*c) == index
    assert g.coords(0) == (0, 0, 0, 0)
    assert g.coords(1) == (0, 0, 0, 1)          # columns fastest
    assert g.coords(3) == (0, 0, 1, 0)          # then rows
    assert g.coords(12) == (0, 1, 0, 0)         # then depth
    assert g.coords(24) == (1, 0, 0, 0)         # planes outermost
    with pytest.raises(tiffio.TiffIndexError):
        g.coords(g.count)
    with pytest.raises(tiffio.TiffIndexError):
        g.index(0, 0, 4, 0)


def test_edge_tiles_full_size_last_strip_short():
    tiles = SegmentGrid((1, 50, 70), (1, 16, 32), 1, False, True)
    last = tiles.count - 1
    assert tiles.stored_shape(last) == (1, 16, 32, 1)
    assert tiles.valid_shape(last) == (1, 50 - 48, 70 - 64)
    strips = SegmentGrid((1, 50, 70), (1, 16, 70), 3, False, False)
    assert strips.stored_shape(strips.count - 1) == (1, 2, 70, 3)
    assert strips.shapes(strips.count - 1) == ((1, 2, 70, 3), (1, 2, 70))
    assert strips.segment_samples == 3


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 80), w=st.integers(1, 80), th=st.integers(1, 33), tw=st.integers(1, 33),
       y=st.integers(-20, 90), x=st.integers(-20, 90), rh=st.integers(1, 60), rw=st.integers(1, 60))
def test_region_parts_tile_the_window_exactly(h, w, th, tw, y, x, rh, rw):
    g = SegmentGrid((1, h, w), (1, th, tw), 1, False, True)
    image = numpy.arange(h * w).reshape(1, h, w)
    out = numpy.full((1, rh, rw), -1)
    for part in g.region(0, y, x, 1, rh, rw):
        _, _z0, y0, x0 = g.origin(part.index)
        tile = numpy.full((1, th, tw), -2)
        _vd, vh, vw = g.valid_shape(part.index)
        tile[:, :vh, :vw] = image[:, y0:y0 + vh, x0:x0 + vw]
        assert (out[part.dst] == -1).all()      # no pixel written twice
        out[part.dst] = tile[part.src]
    expected = numpy.full((1, rh, rw), -1)
    ys, xs = max(y, 0), max(x, 0)
    ye, xe = min(y + rh, h), min(x + rw, w)
    if ys < ye and xs < xe:
        expected[:, ys - y:ye - y, xs - x:xe - x] = image[:, ys:ye, xs:xe]
    assert numpy.array_equal(out, expected)     # and no padding pixel leaks in
