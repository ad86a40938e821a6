"""predictors.py: predictor 2 and 3 round trips, and what libtiff's encoders produce."""

from __future__ import annotations

import numpy
import pytest

import tiffio
from tiffio.codecs.predictors import apply_predictor, undo_predictor

RNG = numpy.random.default_rng(7)


@pytest.mark.parametrize("dtype", ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"])
def test_horizontal_roundtrip_and_definition(dtype):
    info = numpy.iinfo(dtype)
    a = RNG.integers(info.min, info.max, size=(1, 5, 9, 3), dtype=dtype, endpoint=True)
    enc = apply_predictor(2, a)
    # definition: first column kept, then per-sample differences modulo 2**bits
    assert numpy.array_equal(enc[:, :, 0], a[:, :, 0])
    assert numpy.array_equal(enc[:, :, 1:], (a[:, :, 1:] - a[:, :, :-1]).astype(dtype))
    assert numpy.array_equal(undo_predictor(2, enc.copy(), "test"), a)


@pytest.mark.parametrize("dtype", ["f2", "f4", "f8"])
def test_floating_point_roundtrip(dtype):
    a = (RNG.standard_normal((1, 4, 11, 2)) * 1000).astype(dtype)
    enc = apply_predictor(3, a)
    assert enc.dtype == a.dtype and not numpy.array_equal(enc, a)
    assert numpy.array_equal(undo_predictor(3, enc, "test"), a)


def test_float_bits_with_predictor_2_as_libtiff():
    a = RNG.standard_normal((1, 3, 6, 1)).astype("f8")
    ints = a.view("u8")
    diff = ints.copy()
    diff[:, :, 1:] = ints[:, :, 1:] - ints[:, :, :-1]
    assert numpy.array_equal(undo_predictor(2, diff.view("f8").copy(), "test"), a)


def test_unsupported_predictors():
    with pytest.raises(tiffio.UnsupportedFeatureError):
        undo_predictor(4, numpy.zeros((1, 1, 2, 1), "u1"), "here")
    with pytest.raises(tiffio.UnsupportedFeatureError):
        undo_predictor(3, numpy.zeros((1, 1, 2, 1), "u2"), "here")
    with pytest.raises(tiffio.UnsupportedFeatureError):
        undo_predictor(2, numpy.zeros((1, 1, 2, 1), bool), "here")


@pytest.mark.parametrize("dtype", ["u1", "i1", "u2", "i4", "u8", "f4", "f8"])
def test_many_samples_take_the_column_path_with_the_same_result(dtype):
    """From 64 samples per pixel on, predictor 2 is undone a column at a time (imagecodecs'
    loop took 15 s on a fuzzed 833 MB image of 65,535 samples); the result is bit-identical."""
    from tiffio.codecs import predictors
    shape = (2, 3, 7, predictors._COLUMN_LOOP_SAMPLES + 1)
    bits = RNG.integers(0, 256, size=(*shape[:-1], shape[-1] * numpy.dtype(dtype).itemsize), dtype="u1")
    a = bits.view(dtype)
    enc = apply_predictor(2, a.view(f"u{a.dtype.itemsize}")).view(dtype)
    got = undo_predictor(2, enc.copy(), "test")
    assert got.tobytes() == a.tobytes()
    reference = enc.view(f"u{a.dtype.itemsize}").cumsum(axis=-2, dtype=f"u{a.dtype.itemsize}")
    assert got.view(f"u{a.dtype.itemsize}").tobytes() == reference.tobytes()


def test_many_samples_file_equals_tifffile(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    data = RNG.integers(0, 65535, size=(16, 12, 100), dtype="u2")
    path = tmp_path / "samples100.tif"
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig="contig", compression="zlib",
                     predictor=True, rowsperstrip=5)
    with tiffio.open(path) as tif:
        assert tif.ifds[0].predictor == 2 and tif.ifds[0].samples_per_pixel == 100
        assert numpy.array_equal(tif.ifds[0].asarray(), tifffile.imread(path))
