"""layout.py (classic/BigTIFF x byte order in one object), limits.py, errors.py."""

from __future__ import annotations

import pytest

import tiffio
from tiffio.format.layout import FIELD_TYPE_SIZE, get_layout


@pytest.mark.parametrize("bo,big,entry,inline,count,header", [
    ("<", False, 12, 4, 2, 8), (">", False, 12, 4, 2, 8), ("<", True, 20, 8, 8, 16), (">", True, 20, 8, 8, 16)])
def test_layout_sizes(bo, big, entry, inline, count, header):
    layout = get_layout(bo, big)
    assert (layout.entry_size, layout.inline_size, layout.count_size, layout.header_size) == (entry, inline, count, header)
    assert layout.entry_struct.size == entry
    assert layout.max_offset == (2**64 - 1 if big else 2**32 - 1)
    assert layout.pack_offset(258) == (258).to_bytes(layout.offset_size, "little" if bo == "<" else "big")
    assert get_layout(bo, big) is layout


def test_field_type_sizes_are_the_spec_table():
    assert FIELD_TYPE_SIZE == {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
                               16: 8, 17: 8, 18: 8}


def test_limits_message_says_how_to_raise():
    limits = tiffio.Limits(max_ifds=5)
    limits.check("max_ifds", 5, "here")
    with pytest.raises(tiffio.LimitExceededError, match=r"here: 6 exceeds Limits.max_ifds=5.*Limits\(max_ifds=") as info:
        limits.check("max_ifds", 6, "here")
    assert isinstance(info.value, tiffio.TiffError)


def test_error_hierarchy_mixins():
    assert issubclass(tiffio.TiffFormatError, ValueError)
    assert issubclass(tiffio.CorruptSegmentError, tiffio.TiffFormatError)
    assert issubclass(tiffio.UnsupportedFeatureError, NotImplementedError)
    assert issubclass(tiffio.SourceError, OSError)
    assert issubclass(tiffio.TiffIndexError, IndexError) and issubclass(tiffio.TiffIndexError, tiffio.TiffUsageError)
    for cls in (tiffio.TiffFormatError, tiffio.UnsupportedFeatureError, tiffio.LimitExceededError,
                tiffio.TiffUsageError, tiffio.SourceError):
        assert issubclass(cls, tiffio.TiffError)
