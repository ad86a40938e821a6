"""Every page of ../shared/corpus and every fixture against tifffile (issues 2 and 11).

* where tifffile decodes a non-empty array, tiffio in its DEFAULT mode (lenient, as libtiff)
  returns the identical array; strict tiffio returns it too or refuses with a TiffFormatError
  naming the spec violation;
* where tifffile returns an empty array (it does so for images whose geometry
  tags are unusable) or fails, tiffio either decodes or raises a TiffError
  subclass, never another exception;
* the exceptions are rows of refusals.tsv, each with its reason: pages tiffio refuses
  (limits, corrupt or impossible data), files where tifffile is demonstrably wrong
  (checked against GDAL), files tifffile cannot be run on. Every row is checked too, so
  the table cannot go stale.
"""

from __future__ import annotations

import csv
import io
import logging
import warnings
from pathlib import Path

import numpy
import pytest

import tiffio
from tests.support.paths import CORPUS, FIXTURES
from tests.support.timebound import BoundExceeded, cpu_bound

pytestmark = [pytest.mark.crossval, pytest.mark.corpus]

tifffile = pytest.importorskip("tifffile")

MANIFEST = CORPUS / "manifest.tsv"
ROWS = list(csv.DictReader(MANIFEST.open(), delimiter="\t")) if MANIFEST.exists() else []
REFUSALS_TSV = Path(__file__).resolve().parent / "refusals.tsv"


def _load_refusals() -> dict[tuple[str, int], dict[str, str]]:
    lines = [ln for ln in REFUSALS_TSV.read_text().splitlines() if ln and not ln.startswith("#")]
    return {(r["path"], int(r["page"])): r for r in csv.DictReader(io.StringIO("\n".join(lines)), delimiter="\t")}


REFUSALS = _load_refusals()
#: files tifffile decodes wrongly, with the reason; GDAL gives tiffio's answer (test below)
KNOWN_TIFFFILE_ERRORS = {p: r["reason"] for (p, _), r in REFUSALS.items()
                         if r["kind"] == "tifffile_wrong" and not p.startswith("fixtures/")}
#: corpus pages tiffio refuses although tifffile returns pixels (the reason is in refusals.tsv)
KNOWN_TIFFFILE_ACCIDENTS = {p for (p, page), r in REFUSALS.items()
                            if r["kind"] == "refusal" and page == 0 and not p.startswith("fixtures/")}
NO_REFERENCE = {p for (p, _), r in REFUSALS.items() if r["kind"] == "no_reference"}
#: pages compared per file (tifffile's main chain)
MAX_PAGES = 16
MAX_REFERENCE_BYTES = 512 << 20

logging.getLogger("tifffile").setLevel(logging.CRITICAL)


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
    """Page 0; ``strict`` None: the default mode (no strict argument)."""
    with (tiffio.open(path) if strict is None else tiffio.open(path, strict=strict)) as tif:
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
    try:
        with cpu_bound(30), warnings.catch_warnings():  # 30 CPU seconds; a wall-clock hang detector far above
            warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
            for strict in (None, True):
                try:
                    got = _tiffio(path, strict)
                except tiffio.TiffError as exc:
                    if ref is not None and ref.size:
                        # strict mode may refuse a spec violation tifffile reads; the default may not
                        assert strict and isinstance(exc, tiffio.TiffFormatError), (
                            f"tifffile decodes {ref.shape} {ref.dtype}, tiffio (strict={strict}) raised {exc!r}")
                    continue
                if ref is not None and ref.size:
                    assert _equal(got, ref), (
                        f"strict={strict}: tiffio {got.shape} {got.dtype} != tifffile {ref.shape} {ref.dtype}")
    except BoundExceeded as exc:
        pytest.fail(f"tiffio took more than 30 s ({exc.args[0]})")


@pytest.mark.skipif(not ROWS, reason=f"shared corpus not found at {CORPUS}")
@pytest.mark.parametrize("name", sorted(KNOWN_TIFFFILE_ERRORS))
def test_known_tifffile_errors_match_gdal(name):
    rasterio = pytest.importorskip("rasterio")
    path = CORPUS / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            gdal = ds.read()
        got = _tiffio(path, strict=None)
    assert numpy.array_equal(got.reshape(gdal.shape), gdal)
    assert not numpy.array_equal(_reference(path), got)  # the deviation is still there


@pytest.mark.skipif(not ROWS, reason=f"shared corpus not found at {CORPUS}")
@pytest.mark.parametrize("name", sorted(KNOWN_TIFFFILE_ACCIDENTS))
def test_known_tifffile_accidents_raise(name):
    expected = getattr(tiffio, REFUSALS[(name, 0)]["tiffio"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
        for strict in (None, False):
            with pytest.raises(expected):
                _tiffio(CORPUS / name, strict=strict)


def _compare_pages(path: Path, key: str, first_page: int = 0) -> list[str]:
    """Compare tiffio's default mode with tifffile on pages ``first_page``..MAX_PAGES-1 of the
    main chain; return the problems (pages listed in refusals.tsv are checked against their row)."""
    problems: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tf = tifffile.TiffFile(path)
        except Exception:
            return problems  # tifffile cannot open it: nothing to compare against
        with tf:
            try:
                tif = tiffio.open(path)
            except tiffio.TiffError as exc:
                tif, open_error = None, exc
            try:
                for index in range(first_page, min(len(tf.pages), MAX_PAGES)):
                    try:
                        ref = tf.pages[index].asarray()
                    except Exception:
                        continue  # tifffile does not decode this page
                    row = REFUSALS.get((key, index))
                    if ref.size == 0 or (row is not None and row["kind"] != "refusal"):
                        continue
                    try:
                        if tif is None:
                            raise open_error
                        if index >= len(tif.ifds):
                            problems.append(f"page {index}: tiffio's chain has {len(tif.ifds)} IFDs")
                            continue
                        got = tif.ifds[index].asarray()
                    except tiffio.TiffError as exc:
                        if row is None or type(exc).__name__ != row["tiffio"]:
                            problems.append(f"page {index}: tifffile decodes {ref.shape} {ref.dtype}, tiffio raised "
                                            f"{exc!r} (refusals.tsv: {row and row['tiffio']})")
                        continue
                    if row is not None:
                        problems.append(f"page {index}: refusals.tsv says {row['tiffio']}, tiffio decodes it")
                    elif not _equal(got, ref):
                        problems.append(f"page {index}: tiffio {got.shape} {got.dtype} != tifffile {ref.shape} {ref.dtype}")
            finally:
                if tif is not None:
                    tif.close()
    return problems


MULTIPAGE = [r for r in ROWS if r["npages"].isdigit() and int(r["npages"]) > 1]


@pytest.mark.skipif(not MULTIPAGE, reason=f"shared corpus not found at {CORPUS}")
@pytest.mark.parametrize("row", MULTIPAGE, ids=[r["path"] for r in MULTIPAGE])
def test_corpus_later_pages_default_mode(row):
    """Pages 1..15 of every multi-page corpus file (page 0 is test_corpus_page0)."""
    assert _compare_pages(CORPUS / row["path"], row["path"], first_page=1) == []


#: malformed fixture folders whose reference is not computed: tifffile decodes the bombs they hold
#: (up to 25 s and GBs per file); tiffio refuses them by design (fixtures/malformed/README.md)
SLOW_REFERENCE = {
    "image_stream_too_large": "decompression bombs: tifffile decodes the whole stream (up to 25 s per file)",
    "limit_exceeded": "declared sizes past tiffio's Limits: tifffile allocates them (GBs)",
}
MALFORMED = sorted(str(p.relative_to(FIXTURES.parent)) for p in (FIXTURES / "malformed").rglob("*.tif"))


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_fixtures_default_mode_match_tifffile(name):
    """fixtures/malformed in the default mode: tifffile's pixels wherever tifffile decodes
    (the valid fixtures are compared IFD by IFD and segment by segment in
    tests/read/test_segments_fixtures.py, in the default mode too)."""
    if name in NO_REFERENCE:
        pytest.skip(REFUSALS[(name, 0)]["reason"])
    if name.split("/")[2] in SLOW_REFERENCE:
        pytest.skip(SLOW_REFERENCE[name.split("/")[2]])
    assert _compare_pages(FIXTURES.parent / name, name) == []


@pytest.mark.parametrize("key", sorted(REFUSALS), ids=[f"{p}:{i}" for p, i in sorted(REFUSALS)])
def test_every_refusal_row_is_current(key):
    """Each row of refusals.tsv still describes what happens: the file exists, refusals
    still raise their class in the default mode, and every row has a reason."""
    path_text, page = key
    row = REFUSALS[key]
    assert row["kind"] in ("refusal", "tifffile_wrong", "no_reference") and len(row["reason"]) > 20
    path = FIXTURES.parent / path_text if path_text.startswith("fixtures/") else CORPUS / path_text
    if not path_text.startswith("fixtures/") and not ROWS:
        pytest.skip(f"shared corpus not found at {CORPUS}")
    assert path.exists()
    if row["kind"] != "refusal":
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
        with pytest.raises(getattr(tiffio, row["tiffio"])):
            with tiffio.open(path) as tif:
                tif.ifds[page].asarray()
