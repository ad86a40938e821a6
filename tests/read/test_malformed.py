"""Every file of fixtures/malformed/<failure mode>/ gives the expected outcome.

``expected.tsv`` in each folder: file, the exception class in strict mode (or "ok"),
the outcome in the default mode (lenient: "ok" or an exception class; the same with
strict=False), and the source
("generated" by make_malformed.py, or the corpus path of a copied file).
The decode is fuzz/harness.py's ``exercise``: open, every IFD, every tag value, SubIFDs,
read_segment(0), asarray - in a subprocess-free, time-bounded way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import tiffio  # noqa: E402
from fuzz.harness import exercise  # noqa: E402
from tests.support.timebound import cpu_bound  # noqa: E402

MALFORMED = ROOT / "fixtures" / "malformed"


def _cases():
    for tsv in sorted(MALFORMED.glob("*/expected.tsv")):
        for line in tsv.read_text().splitlines()[1:]:
            if not line.strip():
                continue
            name, strict, lenient, *_ = line.split("\t")
            yield pytest.param(tsv.parent / name, strict, lenient, id=f"{tsv.parent.name}/{name}")


CASES = list(_cases())


def _bounded(data: bytes, strict: bool | None, seconds: int = 10) -> str:
    with cpu_bound(seconds):  # CPU seconds (a wall-clock hang detector far above)
        return exercise(data, strict, limits=None, max_ifds=1000)


def test_every_mode_has_files():
    assert len(CASES) >= 20
    assert all(p.values[0].exists() for p in CASES)


@pytest.mark.parametrize("path, strict, lenient", CASES)
def test_malformed(path: Path, strict: str, lenient: str):
    data = path.read_bytes()
    assert _bounded(data, True) == strict
    assert _bounded(data, None) == lenient  # the default mode (no strict argument) is lenient
    assert _bounded(data, False) == lenient


@pytest.mark.parametrize("path, strict, lenient", [c for c in CASES if c.values[1] != "ok"][:40])
def test_exact_exception_class_escapes_open_or_decode(path: Path, strict: str, lenient: str):
    """The error the harness classifies is a real exception of that class (and a TiffError)."""
    cls = getattr(tiffio, strict)
    assert issubclass(cls, tiffio.TiffError)


def test_sparse_segment_costs_no_temporary():
    """asarray of an all-sparse image allocates the output only (a 418-byte corpus file
    declares a single sparse 920 MiB strip: the peak RSS was twice that)."""
    import tracemalloc
    data = (MALFORMED / "sparse_huge_segment" / "one_sparse_strip_16mib.tif").read_bytes()
    with tiffio.open(data) as tif:
        ifd = tif.ifds[0]
        tracemalloc.start()
        try:
            arr = ifd.asarray(workers=1)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert arr.shape == (4096, 4096) and not arr.any()
    assert peak < arr.nbytes * 1.25


def test_tile_size_not_multiple_of_16_warns_in_both_modes():
    """libtiff accepts nonstandard tile sizes with a warning ("Nonstandard tile width"); so does tiffio."""
    data = (MALFORMED / "tile_not_multiple_of_16" / "tiles_12x20.tif").read_bytes()
    for strict in (True, False):
        with pytest.warns(tiffio.TiffFormatWarning, match="not a multiple of 16"):
            with tiffio.open(data, strict=strict) as tif:
                assert tif.ifds[0].asarray().shape == (20, 24)


def test_missing_byte_counts_do_not_read_the_file_per_strip():
    """Without StripByteCounts, a compressed strip is read up to the end of the file (as libtiff)
    but no further than its raw size justifies: 2000 strips of a 30 KB file used to read 60 MB."""
    import warnings
    data = (MALFORMED / "byte_count_wrong" / "no_bytecounts_2000_deflate_strips_one_offset.tif").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
        with tiffio.open(data, strict=False) as tif:
            tif.source.reset_counters()
            arr = tif.ifds[0].asarray(workers=1)
            assert arr.shape == (2000, 1)
            assert tif.source.bytes_read < 2000 * (2 + 4096) + 65536


@pytest.mark.parametrize("name, index", [("webp_6000x6000_in_16x16_tile.tif", 0),
                                         ("png_header_100000x100000_in_16x16_tile.tif", 0),
                                         ("jpegxl_4000x4000_in_16x16_tile.tif", 0),
                                         ("fuzz_jpeg_strip_declares_48230x18326.tif", 4),
                                         ("fuzz_jpeg_ycbcr_strip_declares_15041x43939.tif", 2),
                                         ("fuzz_jpeg_bigtiff_tile_declares_19304x56864.tif", 10)])
def test_image_stream_larger_than_segment_is_not_decoded(name, index):
    """An image codec allocates what its stream declares: a 1.4 KB WebP tile of a 16 x 16 image
    decoded 108 MB before being rejected. The stream header is checked first now."""
    import tracemalloc
    data = (MALFORMED / "image_stream_too_large" / name).read_bytes()
    with tiffio.open(data) as tif:
        tracemalloc.start()
        try:
            with pytest.raises(tiffio.CorruptSegmentError, match="declares"):
                tif.ifds[0].read_segment(index)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 1 << 20


def test_limit_messages_say_which_and_how_to_raise():
    for folder in ("limit_exceeded",):
        for path in sorted((MALFORMED / folder).glob("*.tif")):
            with pytest.raises(tiffio.LimitExceededError) as info:
                with tiffio.open(path.read_bytes()) as tif:
                    todo = list(tif.ifds)
                    while todo:
                        ifd = todo.pop()
                        ifd.asarray()
                        todo += ifd.subifds
            assert "Limits." in str(info.value) and "tiffio.Limits(" in str(info.value), (path.name, info.value)
