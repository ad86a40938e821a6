"""tiffio.read.filesequence: names + pattern -> axes, shape, positions; same answers as tifffile."""

from __future__ import annotations

import pickle
import re

import pytest
import tifffile

import tiffio
from tiffio.read.filesequence import FileSequence, axis_code, natural_sorted, parse_filenames

pytestmark = pytest.mark.crossval

CASES = [
    # (names, pattern, kwargs)
    (["c1001.ext", "c2002.ext"], r"([^\d])(\d)(?P<t>\d+)\.ext", {}),
    (["temp_C001T002.tif", "temp_C001T001.tif"], r"_(C)(\d+)(T)(\d+)", {}),
    ([f"t{t}_c{c}.tif" for t in range(3) for c in range(2)], r"t(\d+)_c(\d+)", {}),
    ([f"img_t{t:03d}_z{z}.tif" for t in (5, 6) for z in (1, 3)], r"(t)(\d+)_(z)(\d+)", {}),
    ([f"a_ch{c}_tp{t:02d}.tif" for c in (0, 1) for t in (3, 4, 5)], "axes", {}),
    ([f"s_c{c}_t{t}.tif" for c in range(2) for t in range(3)], r"(c)(\d+)_(t)(\d+)", {"axesorder": (1, 0)}),
    ([f"w_{w}_{k}.tif" for w in ("red", "green") for k in (1, 2)], r"w_(?P<wave>[a-z]+)_(?P<k>\d+)",
     {"categories": {"wave": {"red": 0, "green": 1}}}),
    ([f"dir/sub/f{k}.tif" for k in (2, 4, 9)], r"f(\d+)", {}),
]


@pytest.mark.parametrize("names, pattern, kwargs", CASES)
def test_parse_equals_tifffile(names, pattern, kwargs):
    dims, shape, indices, _start = parse_filenames(names, pattern, **kwargs)
    tdims, tshape, tindices, _tfiles = tifffile.tifffile.parse_filenames(names, pattern, **kwargs)
    assert (dims, shape, indices) == (tuple(tdims), tuple(tshape), list(tindices))
    seq = FileSequence(names, pattern=pattern, **kwargs)
    ref = tifffile.FileSequence(lambda f: None, names, pattern=pattern, **kwargs)
    assert seq.axes == ref.axes and seq.shape == ref.shape and seq.dims == ref.dims
    assert list(seq.indices) == list(ref.indices) and list(seq) == list(ref)


def test_glob_natural_sort_and_positions(tmp_path):
    for t in (1, 2, 10):
        for c in (0, 1):
            if (t, c) != (2, 1):
                (tmp_path / f"t{t}_c{c}.tif").write_bytes(b"")
    seq = FileSequence(str(tmp_path / "t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)")
    ref = tifffile.TiffSequence(str(tmp_path / "t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)")
    assert list(seq) == list(ref)
    assert [f.rsplit("/", 1)[1] for f in seq] == ["t1_c0.tif", "t1_c1.tif", "t2_c0.tif", "t10_c0.tif", "t10_c1.tif"]
    assert seq.dims == ("t", "c") and seq.axes == "TC"
    assert seq.shape == (10, 2) and seq.start == (1, 0) and seq.size == 20
    assert seq.file_at((0, 1)).endswith("t1_c1.tif")
    assert seq.file_at((9, 1)).endswith("t10_c1.tif")
    assert seq.file_at((1, 1)) is None  # t2_c1 is missing
    missing = seq.missing()
    assert len(missing) == 15 and (1, 1) in missing and (0, 0) not in missing
    assert dict(seq.items())[(9, 0)].endswith("t10_c0.tif")
    with pytest.raises(tiffio.TiffValueError, match="outside"):
        seq.file_at((10, 0))
    assert "15 missing" in repr(seq)


def test_no_pattern_is_one_sequence_axis():
    seq = FileSequence(["b.tif", "a.tif"])
    assert seq.dims == ("sequence",) and seq.axes == "I" and seq.shape == (2,)
    assert seq.file_at((0,)) == "b.tif"
    assert list(FileSequence(["b.tif", "a10.tif", "a9.tif"], sort=True)) == ["a9.tif", "a10.tif", "b.tif"]


def test_explicit_shape_and_errors():
    seq = FileSequence(["f1.tif", "f2.tif"], pattern=r"f(\d+)", shape=(4,))
    assert seq.shape == (4,) and seq.missing() == [(2,), (3,)]
    with pytest.raises(tiffio.TiffValueError, match="does not fit"):
        FileSequence(["f1.tif", "f5.tif"], pattern=r"f(\d+)", shape=(2,))
    with pytest.raises(tiffio.TiffValueError, match="does not match"):
        FileSequence(["f1.tif", "g.tif"], pattern=r"f(\d+)")
    with pytest.raises(tiffio.TiffValueError, match="both map to position"):
        FileSequence(["a/f1.tif", "b/f1.tif"], pattern=r"f(\d+)")
    with pytest.raises(tiffio.TiffValueError, match="axes"):
        FileSequence(["t1_c1.tif", "t1.tif"], pattern=r"(t)(\d+)(?:_(c)(\d+))?")
    with pytest.raises(tiffio.TiffValueError, match="axesorder"):
        FileSequence(["t1_c1.tif"], pattern=r"(t)(\d+)_(c)(\d+)", axesorder=(0, 0))
    with pytest.raises(tiffio.TiffValueError, match="not an integer"):
        FileSequence(["w_red_1.tif"], pattern=r"w_(?P<wave>[a-z]+)_(\d+)")
    with pytest.raises(tiffio.TiffValueError, match="invalid file name pattern"):
        FileSequence(["f1.tif"], pattern="f(")
    with pytest.raises(tiffio.TiffValueError, match="no files match"):
        FileSequence("/nonexistent-dir-tiffio/*.tif")
    assert issubclass(tiffio.TiffValueError, ValueError)


def test_pickle_and_equality():
    names = [f"t{t}_c{c}.tif" for t in range(2) for c in range(3)]
    cats = {"c": {"0": 0, "1": 1, "2": 2}}
    for pattern in (r"(t)(\d+)_(c)(\d+)", re.compile(r"(T)(\d+)_(C)(\d+)", re.I)):
        seq = FileSequence(names, pattern=pattern, categories=cats if isinstance(pattern, str) else None)
        again = pickle.loads(pickle.dumps(seq))
        assert again == seq and hash(again) == hash(seq)
        assert pickle.dumps(seq) == pickle.dumps(again)
        assert again.indices == seq.indices and again.shape == seq.shape
    assert FileSequence(names, pattern=r"t(\d+)_c(\d+)") != FileSequence(names[:3], pattern=r"t(\d+)_c(\d+)")


def test_helpers():
    assert natural_sorted(["f10", "f2", "f1"]) == ["f1", "f2", "f10"]
    assert [axis_code(d) for d in ("channel", "ch", "tp", "Q", "position", "wave")] == ["C", "C", "T", "Q", "R", "W"]
