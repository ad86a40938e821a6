"""Every page 0 of ../shared/corpus against tifffile (issue 2).

* where tifffile decodes a non-empty array, tiffio (lenient) returns the identical
  array; strict tiffio returns it too or refuses with a TiffFormatError naming the
  spec violation;
* where tifffile returns an empty array (it does so for images whose geometry
  tags are unusable) or fails, tiffio either decodes or raises a TiffError
  subclass, never another exception;
* a few files where tifffile is demonstrably wrong are listed in
  KNOWN_TIFFFILE_ERRORS and checked against GDAL (rasterio) instead.
"""

from __future__ import annotations

import csv
import logging
import signal
import warnings

import numpy
import pytest

import tiffio

from ..conftest import CORPUS

tifffile = pytest.importorskip("tifffile")

MANIFEST = CORPUS / "manifest.tsv"
ROWS = list(csv.DictReader(MANIFEST.open(), delimiter="\t")) if MANIFEST.exists() else []

#: files tifffile decodes wrongly, with the reason; GDAL gives tiffio's answer (test below)
KNOWN_TIFFFILE_ERRORS = {
    # tifffile's "contiguous" shortcut reads the single strip at offset 0 (the header)
    # although the strip is sparse; GDAL returns the nodata value, 1
    "gdal/autotest/gcore/data/gtiff/sparse_nodata_one.tif": "sparse strip read from offset 0",
    # 3 strips but one StripByteCounts/StripOffsets entry: tifffile reads 3 bytes past the
    # only strip; GDAL and tiffio read the missing strips as empty (0)
    "gdal/autotest/gcore/data/size_of_stripbytecount_at_1_and_lower_than_stripcount.tif": "missing strips",
}
#: files tifffile "decodes" only by accident; libtiff fails on them, tiffio raises
KNOWN_TIFFFILE_ACCIDENTS = {
    # StripByteCounts missing: tifffile computes 0 bytes for 1-bit data and returns zeros;
    # the PackBits data is truncated (libtiff: "Not enough data")
    "gdal/autotest/gcore/data/packbits-not-enough-data.tif",
    # 1 TileOffsets entry for 4,294,770,690 tiles: tifffile's contiguous shortcut
    # reads 4 GB; tiffio refuses the inconsistent file
    "gdal/autotest/gcore/data/toomanyblocks_separate.tif",
}
MAX_REFERENCE_BYTES = 512 << 20

logging.getLogger("tifffile").setLevel(logging.CRITICAL)


class _Timeout(Exception):
    pass


def _alarm(*_):
    raise _Timeout()


def _reference(path):
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        return page.asarray()


def _declared_bytes(row) -> int:
    try:
        shape = [int(v) for v in row["shape"].split("x")]
        return int(numpy.prod(shape)) * max(1, int(row["bitspersample"] or 8) // 8)
    except ValueError:
        return 0


def _tiffio(path, strict):
    with tiffio.open(path, strict=strict) as tif:
        return tif.ifds[0].asarray()


def _equal(a, b) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and numpy.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


@pytest.mark.skipif(not ROWS, reason=f"shared corpus not found at {CORPUS}")
@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_corpus_page0(row):
    path = CORPUS / row["path"]
    ref = None
    if row["page0_decode"] == "ok" and row["path"] not in KNOWN_TIFFFILE_ACCIDENTS \
            and row["path"] not in KNOWN_TIFFFILE_ERRORS and _declared_bytes(row) <= MAX_REFERENCE_BYTES:
        try:
            ref = _reference(path)
        except Exception:  # tifffile may fail where its manifest run did not; then no reference
            ref = None
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(30)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
            for strict in (False, True):
                try:
                    got = _tiffio(path, strict)
                except tiffio.TiffError as exc:
                    if ref is not None and ref.size:
                        # strict mode may refuse a spec violation tifffile reads; lenient may not
                        assert strict and isinstance(exc, tiffio.TiffFormatError), (
                            f"tifffile decodes {ref.shape} {ref.dtype}, tiffio (strict={strict}) raised {exc!r}")
                    continue
                if ref is not None and ref.size:
                    assert _equal(got, ref), (
                        f"strict={strict}: tiffio {got.shape} {got.dtype} != tifffile {ref.shape} {ref.dtype}")
    except _Timeout:
        pytest.fail("tiffio took more than 30 s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not ROWS, reason=f"shared corpus not found at {CORPUS}")
@pytest.mark.parametrize("name", sorted(KNOWN_TIFFFILE_ERRORS))
def test_known_tifffile_errors_match_gdal(name):
    rasterio = pytest.importorskip("rasterio")
    path = CORPUS / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            gdal = ds.read()
        got = _tiffio(path, strict=False)
    assert numpy.array_equal(got.reshape(gdal.shape), gdal)
    assert not numpy.array_equal(_reference(path), got)  # the deviation is still there


@pytest.mark.skipif(not ROWS, reason=f"shared corpus not found at {CORPUS}")
@pytest.mark.parametrize("name", sorted(KNOWN_TIFFFILE_ACCIDENTS))
def test_known_tifffile_accidents_raise(name):
    with pytest.raises(tiffio.TiffFormatError):
        _tiffio(CORPUS / name, strict=False)
