"""Every fixture, every IFD (SubIFDs included) and every segment against tifffile,
and against libtiff (imagecodecs.tiff_decode; Debian's tiffcp where installed)
where libtiff reads the file the way tifffile does (fixtures/MANIFEST.tsv records
where it does not, e.g. libtiff converting CMYK to RGB)."""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess

import numpy
import pytest

import tiffio
from tests.support.paths import FIXTURES

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")
imagecodecs = pytest.importorskip("imagecodecs")
logging.getLogger("tifffile").setLevel(logging.CRITICAL)

ROWS = list(csv.DictReader((FIXTURES / "MANIFEST.tsv").open(), delimiter="\t"))
IDS = [r["path"] for r in ROWS]


def _equal(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and numpy.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


def _pages(tf):
    """tifffile pages of the main chain, each followed by its SubIFDs (tiffio's order)."""
    out = []
    for page in tf.pages:
        out.append(page)
        for sub in page.pages if hasattr(page, "pages") and page.pages is not None else ():
            out.append(sub)
    return out


def _ifds(tif):
    out = []
    for ifd in tif.ifds:
        out.append(ifd)
        out.extend(ifd.subifds)
    return out


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_every_ifd_and_segment_matches_tifffile(row):
    path = FIXTURES / row["path"]
    with tifffile.TiffFile(path) as tf, tiffio.open(path) as tif:
        assert tif.byteorder == tf.byteorder
        assert tif.bigtiff == tf.is_bigtiff
        pages = _pages(tf)
        ifds = _ifds(tif)
        assert len(ifds) == len(pages)
        for page, ifd in zip(pages, ifds):
            assert ifd.offset == page.offset
            assert ifd.shape == page.shape, ifd.path
            if page.dtype is None:  # tifffile has no dtype (e.g. Int24): libtiff is the reference
                _check_against_libtiff(path, tif, ifd, "no dtype")
                continue
            assert ifd.dtype == page.dtype, ifd.path
            assert ifd.is_tiled == page.is_tiled
            assert ifd.segment_count == len(page.dataoffsets)
            try:
                ref = page.asarray()
            except Exception as exc:  # documented tifffile failures (fixtures/README.md)
                _check_against_libtiff(path, tif, ifd, exc)
                continue
            got = ifd.asarray()
            assert _equal(got, ref), ifd.path
            # every segment by index, raw and decoded
            decode = page.decode
            for i in range(ifd.segment_count):
                raw = ifd.read_segment_bytes(i)
                offset, count = page.dataoffsets[i], page.databytecounts[i]
                if offset and count:
                    with open(path, "rb") as fh:
                        fh.seek(offset)
                        assert raw == fh.read(count)
                else:
                    assert raw == b""
                seg = ifd.read_segment(i, valid=True)
                assert seg.shape == ifd.segment_valid_shape(i)
                ref_seg, (_s, _d, _h, _w, _), _ = decode(raw or None, i, jpegtables=page.jpegtables)
                if ref_seg is None:
                    assert (seg == 0).all() or (ifd.nodata is not None and (seg == ifd.nodata).all())
                    continue
                vd, vh, vw = ifd.grid.valid_shape(i)
                ref_valid = ref_seg[:vd, :vh, :vw].reshape(seg.shape)
                # tifffile's per-segment decoders may return a wider dtype (CCITT: uint8 for
                # bilevel) that its asarray() narrows; tiffio returns the image dtype directly
                assert seg.dtype == ifd.dtype
                assert _equal(seg, ref_valid.astype(seg.dtype)), f"{ifd.path} segment {i}"


def _check_against_libtiff(path, tif, ifd, tifffile_exc):
    """Where tifffile fails, tiffio must decode what libtiff decodes, identically."""
    try:
        got = ifd.asarray()
    except tiffio.UnsupportedFeatureError as exc:
        # tiffio says exactly what it does not do (e.g. subsampled YCbCr without JPEG)
        assert "YCbCr" in str(exc), exc
        return
    index = list(tif.ifds).index(ifd)
    ref = imagecodecs.tiff_decode(path.read_bytes(), index=index)
    if ifd.is_separate and ref.ndim == got.ndim:
        ref = numpy.moveaxis(ref, -1, 0)
    assert got.shape == ref.shape and numpy.array_equal(got, ref), (
        f"tifffile failed ({tifffile_exc!r}); tiffio differs from libtiff")


LIBTIFF_ROWS = [r for r in ROWS if r["imagecodecs_libtiff"] == "equal"]


@pytest.mark.parametrize("row", LIBTIFF_ROWS, ids=[r["path"] for r in LIBTIFF_ROWS])
def test_matches_libtiff_tiff_decode(row):
    path = FIXTURES / row["path"]
    with tiffio.open(path) as tif:
        got = tif.ifds[0].asarray()
    ref = imagecodecs.tiff_decode(path.read_bytes())
    if got.dtype == bool:
        ref = ref.astype(bool)
    assert got.size == ref.size
    assert numpy.array_equal(got.reshape(-1), ref.reshape(-1).astype(got.dtype), equal_nan=got.dtype.kind in "fc")


TIFFCP = shutil.which("tiffcp")
TIFFCP_ROWS = [r for r in ROWS if r["tiffcp_libtiff"] == "equal"]


@pytest.mark.skipif(TIFFCP is None, reason="Debian's libtiff-tools (tiffcp) is not installed")
@pytest.mark.parametrize("row", TIFFCP_ROWS, ids=[r["path"] for r in TIFFCP_ROWS])
def test_matches_libtiff_tiffcp(row, tmp_path):
    """libtiff decompresses the file (tiffcp -c none); tiffio must read the same pixels
    from the original and from libtiff's uncompressed copy."""
    path = FIXTURES / row["path"]
    out = tmp_path / "none.tif"
    result = subprocess.run([TIFFCP, "-c", "none", str(path) + ",0", str(out)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    with tiffio.open(path) as a, tiffio.open(out) as b:
        x, y = a.ifds[0].asarray(), b.ifds[0].asarray()
    assert numpy.array_equal(x.reshape(-1), y.reshape(-1), equal_nan=x.dtype.kind in "fc")
