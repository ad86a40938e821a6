"""Hypothesis roundtrip matrix of the writer (DESIGN.md).

dtype x lossless compression (none, lzw, deflate, zstd, packbits, lzma) x predictor (1; 2 for
integers, 3 for floats, with LZW, Deflate, ZSTD, LZMA) x planar configuration (contig / separate)
x tile size (multiples of 16) x classic / BigTIFF x byte order x random tile order x missing-tile
policy (blank / sparse) x pyramid style (none / SubIFDs / reduced pages), plus encoder threads
and checkpoints during the write. Every example is read back identically by tiffio and tifffile, and the main IFD by libtiff
(imagecodecs.tiff_decode) unless it has sparse tiles (libtiff refuses zero byte counts).

Derandomized (a fixed sequence of examples) and bounded: CI sees the same cases every run.
"""

from __future__ import annotations

import random

import imagecodecs
import numpy
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiffio

pytestmark = pytest.mark.crossval

INTS = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"]
FLOATS = ["float16", "float32", "float64"]
COMPLEX = ["complex64", "complex128"]
COMPRESSIONS = [None, "lzw", "deflate", "zstd", "packbits", "lzma"]
PREDICTED = {"lzw", "deflate", "zstd", "lzma"}  # libtiff applies predictors only to these (the writer refuses others)

AXES = ("dtype", "compression", "predictor", "planar", "samples", "bigtiff", "byteorder", "missing",
        "skip_fraction", "pyramid", "workers", "checkpoint_every", "tile")
SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=700,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def make_data(shape, dtype, seed, special):
    """Random samples over the dtype's whole range (floats: wide magnitudes, optionally inf/nan/-0)."""
    rng = numpy.random.default_rng(seed)
    dtype = numpy.dtype(dtype)
    if dtype.kind in "ui":
        info = numpy.iinfo(dtype)
        smooth = (numpy.indices(shape).sum(0) * 3) % 251
        noise = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        # half the rows compress (smooth), half exercise every bit
        out = numpy.where(numpy.indices(shape)[-2 if len(shape) > 1 else 0] % 2 == 0,
                          (smooth + info.min).astype(dtype), noise)
        return out.astype(dtype)
    if dtype.kind == "c":
        parts = rng.standard_normal((2,) + tuple(shape)) * 10.0 ** rng.integers(-3, 4, (2,) + tuple(shape))
        return (parts[0] + 1j * parts[1]).astype(dtype)
    out = (rng.standard_normal(shape) * 10.0 ** rng.integers(-4, 5, shape)).astype(dtype)
    if special:
        flat = out.reshape(-1)
        k = rng.integers(0, flat.size, 4)
        flat[k] = numpy.array([numpy.inf, -numpy.inf, numpy.nan, -0.0], dtype)
    return out


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(["int"] * 5 + ["float"] * 3 + ["complex"]))
    dtype = draw(st.sampled_from({"int": INTS, "float": FLOATS, "complex": COMPLEX}[kind]))
    compression = draw(st.sampled_from(COMPRESSIONS))
    predictors = [1]
    if compression in PREDICTED:
        predictors += {"int": [2], "float": [3], "complex": []}[kind]
    predictor = draw(st.sampled_from(predictors))
    samples = draw(st.sampled_from([1, 1, 2, 3, 4]))
    planar = "separate" if samples > 1 and draw(st.booleans()) else "contig"
    tile = (16 * draw(st.integers(1, 4)), 16 * draw(st.integers(1, 4)))
    height = draw(st.integers(1, 3 * tile[0] + 5))
    width = draw(st.integers(1, 3 * tile[1] + 5))
    return dict(
        dtype=dtype, compression=compression, predictor=predictor, samples=samples, planar=planar, tile=tile,
        height=height, width=width,
        bigtiff=draw(st.sampled_from([False, True, None])),
        byteorder=draw(st.sampled_from(["<", ">"])),
        missing=draw(st.sampled_from(["blank", "sparse"])),
        skip_fraction=draw(st.sampled_from([0.0, 0.0, 0.2, 0.5])),
        pyramid=draw(st.sampled_from([None, None, "subifds", "pages"])),
        levels=draw(st.integers(1, 2)),
        workers=draw(st.sampled_from([1, 2])),
        checkpoint_every=draw(st.sampled_from([None, 1, 3])),
        cropped=draw(st.booleans()),
        special=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def image_shape(case, height, width):
    s = case["samples"]
    if s == 1:
        return (height, width)
    return (s, height, width) if case["planar"] == "separate" else (height, width, s)


def write_image(im, data, rng, case):
    """Write every tile of ``data`` in a random order except a random subset; returns the
    expected array (skipped tiles are 0 for both policies)."""
    separate = im.planarconfig == "separate"
    th, tw = im.tile
    coords = [(r, c, p) for p in range(im.planes) for r in range(im.tiles_down) for c in range(im.tiles_across)]
    rng.shuffle(coords)
    skip = set(coords[: int(len(coords) * case["skip_fraction"])])
    expected = data.copy()
    for r, c, p in coords:
        ys, xs = slice(r * th, (r + 1) * th), slice(c * tw, (c + 1) * tw)
        if (r, c, p) in skip:
            if separate:
                expected[p, ys, xs] = 0
            else:
                expected[ys, xs] = 0
            continue
        part = data[p, ys, xs] if separate else data[ys, xs]
        if not case["cropped"] and part.shape[:2] != (th, tw):
            full = numpy.zeros((th, tw) + part.shape[2:], part.dtype)
            full[: part.shape[0], : part.shape[1]] = part
            part = full
        if rng.random() < 0.5:  # Fortran order (the slices themselves are strided views): the writer must not care
            part = numpy.asfortranarray(part)
        im.write_tile(r, c, part, plane=p)
    assert len(im.missing_tiles()) == len(skip)
    return expected, bool(skip)


def assert_identical(got, expected, what):
    assert got.dtype == expected.dtype, (what, got.dtype, expected.dtype)
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    numpy.testing.assert_array_equal(got, expected, err_msg=what)
    if expected.dtype.kind == "f":  # -0.0 and NaN payloads survive bit for bit
        assert got.tobytes() == expected.tobytes() or numpy.isnan(expected).any(), what


def roundtrip(tmp_path_factory, case):
    """Write one case, read it back with every reader."""
    path = tmp_path_factory.mktemp("rt") / "rt.tif"
    rng = random.Random(case["seed"])
    shape = image_shape(case, case["height"], case["width"])
    base = make_data(shape, case["dtype"], case["seed"], case["special"])
    kwargs = dict(tile=case["tile"], compression=case["compression"], predictor=case["predictor"],
                  planarconfig=case["planar"], workers=case["workers"])
    expected = []
    sparse_main = False
    with tiffio.TiffWriter(path, bigtiff=case["bigtiff"], byteorder=case["byteorder"], missing=case["missing"],
                           checkpoint_every=case["checkpoint_every"], checkpoint_seconds=None, fsync=False) as w:
        top = w.add_image(shape, case["dtype"], **kwargs)
        images = [(top, base)]
        if case["pyramid"]:
            for k in range(1, case["levels"] + 1):
                h, wd = -(-case["height"] // 2 ** k), -(-case["width"] // 2 ** k)
                lv_shape = image_shape(case, h, wd)
                level = make_data(lv_shape, case["dtype"], case["seed"] + k, False)
                extra = dict(parent=top) if case["pyramid"] == "subifds" else dict(reduced=True)
                images.append((w.add_image(lv_shape, case["dtype"], **kwargs, **extra), level))
        for k, (im, data) in enumerate(images):
            exp, skipped = write_image(im, data, rng, case)
            expected.append(exp)
            if k == 0:
                sparse_main = skipped and case["missing"] == "sparse"
    # tiffio
    with tiffio.open(path) as tf:
        assert tf.bigtiff == bool(case["bigtiff"])  # None: small files stay classic
        assert tf.byteorder == case["byteorder"]
        if case["pyramid"] == "subifds":
            ifds = [tf.ifds[0], *tf.ifds[0].subifds]
        else:
            ifds = list(tf.ifds)
        assert len(ifds) == len(expected)
        for k, (ifd, exp) in enumerate(zip(ifds, expected)):
            assert_identical(ifd.asarray(), exp, f"tiffio level {k}")
    # tifffile
    with tifffile.TiffFile(path) as tf:
        pages = [tf.pages[0], *tf.pages[0].pages] if case["pyramid"] == "subifds" else list(tf.pages)
        assert len(pages) == len(expected)
        for k, (page, exp) in enumerate(zip(pages, expected)):
            assert_identical(page.asarray(), exp, f"tifffile level {k}")
    # libtiff: the main IFD
    if not sparse_main:
        got = imagecodecs.tiff_decode(path.read_bytes(), index=0)
        assert_identical(got.reshape(expected[0].shape), expected[0], "libtiff")


def test_roundtrip(tmp_path_factory):
    """The matrix; then check that the (derandomized) examples reached every value of every axis,
    a guard against a strategy edit silently narrowing it."""
    seen: dict[str, set] = {}

    @SETTINGS
    @given(case=cases())
    def run(case):
        for key in AXES:
            seen.setdefault(key, set()).add(case[key])
        roundtrip(tmp_path_factory, case)

    run()
    assert seen["dtype"] == set(INTS + FLOATS + COMPLEX)
    assert seen["compression"] == set(COMPRESSIONS)
    assert seen["predictor"] == {1, 2, 3}
    assert seen["planar"] == {"contig", "separate"}
    assert seen["samples"] == {1, 2, 3, 4}
    assert seen["bigtiff"] == {None, False, True}
    assert seen["byteorder"] == {"<", ">"}
    assert seen["missing"] == {"blank", "sparse"}
    assert seen["skip_fraction"] == {0.0, 0.2, 0.5}
    assert seen["pyramid"] == {None, "subifds", "pages"}
    assert seen["workers"] == {1, 2}
    assert seen["checkpoint_every"] == {None, 1, 3}
    assert seen["tile"] == {(16 * a, 16 * b) for a in range(1, 5) for b in range(1, 5)}


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize("planar", ["contig", "separate"])
def test_separate_planes_with_predictor(tmp_path, dtype, planar):
    """A fixed corner of the matrix, always run: 3 samples, each planar configuration, predictor."""
    shape = (3, 45, 70) if planar == "separate" else (45, 70, 3)
    data = make_data(shape, dtype, 7, False)
    path = tmp_path / "p.tif"
    with tiffio.TiffWriter(path, byteorder=">") as w:
        im = w.add_image(shape, dtype, tile=(16, 32), compression="deflate", predictor=True, planarconfig=planar)
        write_image(im, data, random.Random(1), dict(skip_fraction=0.0, cropped=True))
    for got in (tiffio.open(path).ifds[0].asarray(), tifffile.imread(path),
                imagecodecs.tiff_decode(path.read_bytes()).reshape(shape)):
        assert_identical(got, data, planar)
