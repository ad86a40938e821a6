"""tiffio.imread against tifffile.imread (issue 15): file sequences stacked into one array.

Same array as tifffile for globs, lists and patterns; ``out=``, ``axes=``, progress
callbacks; every bad file (missing, not a TIFF, truncated, another shape or dtype) raises
one TiffError naming it, and no array is returned.
"""

from __future__ import annotations

import numpy
import pytest

import tiffio
from tiffio import imread

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")


@pytest.fixture
def grid(tmp_path):
    rng = numpy.random.default_rng(7)
    data = rng.integers(0, 5000, (3, 4, 40, 56)).astype("uint16")
    for t in range(3):
        for c in range(4):
            tifffile.imwrite(tmp_path / f"img_t{t}_c{c}.tif", data[t, c], compression="lzw")
    return tmp_path, data


PATTERN = r"(t)(\d+)_(c)(\d+)"


def test_grid_equals_tifffile(grid):
    folder, data = grid
    ours = imread(str(folder / "*.tif"), pattern=PATTERN, workers=3)
    theirs = tifffile.imread(str(folder / "*.tif"), pattern=PATTERN)
    assert ours.shape == theirs.shape == (3, 4, 40, 56) and ours.dtype == theirs.dtype
    numpy.testing.assert_array_equal(ours, theirs)
    numpy.testing.assert_array_equal(ours, data)
    # a plain list: one axis in list order, as tifffile.imread(files)
    files = sorted(str(p) for p in folder.glob("*.tif"))
    numpy.testing.assert_array_equal(imread(files, workers=1), tifffile.imread(files))


def test_out_axes_progress(grid):
    folder, data = grid
    out = numpy.zeros((3, 4, 40, 56), "uint16")
    calls = []
    result = imread(str(folder / "*.tif"), pattern=PATTERN, out=out, progress=lambda done, total: calls.append((done, total)))
    assert result is out
    numpy.testing.assert_array_equal(out, data)
    assert sorted(calls) == [(i, 12) for i in range(1, 13)]
    swapped = imread(str(folder / "*.tif"), pattern=PATTERN, axes="CTYX")
    numpy.testing.assert_array_equal(swapped, data.transpose(1, 0, 2, 3))
    with pytest.raises(tiffio.TiffValueError, match="permutation"):
        imread(str(folder / "*.tif"), pattern=PATTERN, axes="CTY")
    with pytest.raises(tiffio.TiffValueError, match="out must be"):
        imread(str(folder / "*.tif"), pattern=PATTERN, out=numpy.zeros((3, 4, 40, 55), "uint16"))


def test_single_file_and_series(tmp_path):
    stack = numpy.arange(5 * 8 * 9, dtype="float32").reshape(5, 8, 9)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZYX"})
    numpy.testing.assert_array_equal(imread(path), stack)
    numpy.testing.assert_array_equal(imread(path, key=2), stack[2])
    numpy.testing.assert_array_equal(imread(path, axes="YXZ"), stack.transpose(1, 2, 0))


def test_gaps_are_filled(tmp_path):
    for t in (0, 2):
        tifffile.imwrite(tmp_path / f"t{t}.tif", numpy.full((4, 4), t + 1, "uint8"))
    ours = imread(str(tmp_path / "*.tif"), pattern=r"(t)(\d+)", fill=9)
    assert ours.shape == (3, 4, 4)
    assert (ours[0] == 1).all() and (ours[1] == 9).all() and (ours[2] == 3).all()


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated", "shape", "dtype"])
def test_bad_file_raises_naming_it(grid, damage):
    folder, _data = grid
    bad = folder / "img_t1_c2.tif"
    files = sorted(str(p) for p in folder.glob("*.tif"))
    if damage == "missing":
        bad.unlink()
    elif damage == "garbage":
        bad.write_bytes(b"this is not a tiff file at all")
    elif damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:300])
    elif damage == "shape":
        tifffile.imwrite(bad, numpy.zeros((40, 57), "uint16"))
    else:
        tifffile.imwrite(bad, numpy.zeros((40, 56), "uint8"))
    out = numpy.zeros((len(files), 40, 56), "uint16")
    if damage == "truncated":
        # imread is lenient by default, as tiffio.open: the bytes that are there are read, and
        # every warning names the file; strict=True raises, naming it too
        with pytest.warns(tiffio.TiffFormatWarning) as caught:
            imread(files, out=out, workers=2)
        assert caught and all(str(bad) in str(w.message) for w in caught
                              if issubclass(w.category, tiffio.TiffFormatWarning))
    with pytest.raises(tiffio.TiffError) as info:
        imread(files, out=out, workers=2, strict=damage == "truncated")
    assert str(bad) in str(info.value)
    expected = {"missing": FileNotFoundError, "garbage": tiffio.NotATiffError, "truncated": tiffio.TruncatedError,
                "shape": tiffio.TiffValueError, "dtype": tiffio.TiffValueError}[damage]
    assert isinstance(info.value, expected)


def test_worker_processes(grid):
    """processes=2: spawned worker processes decode, the result equals tifffile's; a bad file's
    error comes back from the worker naming the file."""
    folder, data = grid
    calls = []
    ours = imread(str(folder / "*.tif"), pattern=PATTERN, processes=2, progress=lambda d, t: calls.append(d))
    numpy.testing.assert_array_equal(ours, data)
    assert sorted(calls) == list(range(1, 13))
    bad = folder / "img_t2_c3.tif"
    bad.write_bytes(b"II*\x00" + b"\xff" * 4)
    with pytest.raises(tiffio.TiffFormatError) as info:
        imread(str(folder / "*.tif"), pattern=PATTERN, processes=2)
    assert str(bad) in str(info.value)
