"""Each codec's own limits on samples per pixel and bits per sample are checked by
SegmentSpec.check_supported before anything is allocated (DoS class 2 of issue 11:
a 700 x 1100 JPEG image declaring 5048 samples per pixel made asarray allocate 3.6 GiB)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy
import pytest

import tiffio
from tiffio.codecs import CODEC_SHAPE_LIMITS
from tiffio.codecs.decode import SegmentSpec

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "malformed" / "codec_shape_impossible"

OK = None
CORRUPT = tiffio.CorruptSegmentError
UNSUPPORTED = tiffio.UnsupportedFeatureError


@pytest.mark.parametrize("compression, samples, bits, expected", [
    (7, 1, 8, OK), (7, 3, 8, OK), (7, 4, 8, OK), (7, 3, 12, OK), (7, 1, 16, OK), (6, 3, 8, OK),
    (34892, 3, 8, OK), (33007, 3, 8, OK),
    (7, 10, 8, OK),                  # libjpeg's MAX_COMPONENTS
    (7, 11, 8, UNSUPPORTED),         # a valid JPEG frame, but libjpeg refuses it
    (7, 255, 8, UNSUPPORTED),
    (7, 256, 8, CORRUPT),            # no JPEG frame has more than 255 components
    (7, 5048, 8, CORRUPT), (33007, 5048, 8, CORRUPT), (6, 300, 8, CORRUPT),
    (7, 3, 17, CORRUPT), (7, 3, 32, CORRUPT),
    (50001, 3, 8, OK), (50001, 4, 8, OK), (34927, 4, 8, OK),
    (50001, 1, 8, CORRUPT), (50001, 5, 8, CORRUPT), (50001, 3, 16, CORRUPT),
    (34933, 1, 1, OK), (34933, 2, 16, OK), (34933, 4, 8, OK),
    (34933, 5, 8, CORRUPT), (34933, 1, 12, CORRUPT), (34933, 3, 32, CORRUPT),
    (34712, 3, 16, OK), (34712, 16384, 8, OK), (34712, 16385, 8, CORRUPT), (34712, 1, 39, CORRUPT),
    (50002, 4, 16, OK), (52546, 3, 32, OK), (50002, 5000, 8, CORRUPT), (50002, 1, 64, CORRUPT),
    (22610, 3, 8, OK), (22610, 9, 8, OK), (22610, 10, 8, CORRUPT), (34934, 1, 64, CORRUPT),
    (4, 1, 1, OK), (3, 1, 1, OK), (2, 1, 1, OK),
    (4, 34522, 1, CORRUPT),          # fuzzing: a 1.5 KB file decoded 1 GB of CCITT "samples"
    (3, 1, 8, CORRUPT), (2, 3, 1, CORRUPT),
    (8, 5048, 8, OK),                # byte codecs carry any number of samples
    (1, 5048, 8, OK),
])
def test_codec_shape_limits(compression, samples, bits, expected):
    dtype = numpy.dtype("u1") if bits <= 8 else numpy.dtype("u2") if bits <= 16 else numpy.dtype("u4")
    spec = SegmentSpec(compression=compression, dtype=dtype, bits=bits, samples=samples, where="IFD 0")
    if expected is None:
        spec.check_supported()
        return
    with pytest.raises(expected) as info:
        spec.check_supported()
    message = str(info.value)
    assert message.startswith("IFD 0: ") and f"{samples} samples x {bits} bits" in message


def test_every_jpeg_code_shares_the_jpeg_limits():
    assert {CODEC_SHAPE_LIMITS[code].name for code in (6, 7, 33007, 34892)} == {"JPEG"}


def test_5048_sample_jpeg_refused_before_any_allocation():
    """The DoS reproducer (810 bytes: 44 strips sharing one 16 x 16 JPEG stream) declares a
    700 x 1100 x 5048 image: asarray raises without allocating the 3.6 GiB output."""
    data = (FIXTURES / "jpeg_5048_samples_700x1100.tif").read_bytes()
    for strict in (True, False):
        with tiffio.open(data, strict=strict) as tif:
            ifd = tif.ifds[0]
            assert ifd.shape == (700, 1100, 5048)
            tracemalloc.start()
            try:
                with pytest.raises(tiffio.CorruptSegmentError, match="5048 samples"):
                    ifd.asarray()
                with pytest.raises(tiffio.CorruptSegmentError, match="5048 samples"):
                    ifd.read_region(0, 0, 16, 16)
                with pytest.raises(tiffio.CorruptSegmentError, match="5048 samples"):
                    ifd.read_segment(0)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak < 1 << 20, f"{peak} bytes allocated before the refusal"


@pytest.mark.parametrize("name, error", [
    ("jpeg_12_samples.tif", UNSUPPORTED),
    ("webp_1_sample.tif", CORRUPT),
    ("png_5_samples_12_bits.tif", CORRUPT),
])
def test_fixtures_refused_in_both_modes(name, error):
    data = (FIXTURES / name).read_bytes()
    for strict in (True, False):
        with tiffio.open(data, strict=strict) as tif, pytest.raises(error):
            tif.ifds[0].asarray()
