"""Every series of every fixture and corpus file through tiffio.zarr.TiffStore and tiffio.dask.

For every series and pyramid level that tifffile describes, ``TiffStore(path, series=s,
level=k)`` and ``tiffio.dask.from_tiff(path, series=s, level=k)`` have tifffile's shape (its
default squeeze) and tifffile's pixels (its ``aszarr(series=s, level=k)``; its ``asarray``
where its store fails); page selections ``key=`` equal tifffile's (``aszarr(series=, key=)``
for one page, ``asarray(series=, key=)`` for slices). Arrays larger than ``MAX_BYTES`` are
compared on their first and last page, in a corner window (shapes are compared for all).

The differences allowed, each with its reason:

* files whose series tiffio and tifffile see differently: files tifffile cannot decode
  either (a series without a dtype or with an empty shape, as tests/read/test_series.py
  counts them), and the rows of store_differences.tsv;
* tiffio refuses a series with a TiffError where tests/read/refusals.tsv lists the page
  (``refusal``), or where tifffile's own ``asarray`` of the series raises too (a missing
  StripOffsets, say: tifffile's store then serves zeros, its reader refuses; tiffio refuses);
* pixels differ where refusals.tsv says tifffile is wrong (``tifffile_wrong``, checked
  against GDAL in test_corpus_parity.py).

A hypothesis test reads random boxes of multi-page and multi-level series through every
chunk mode against ``Series.asarray``.
"""

from __future__ import annotations

import csv
import io
import logging
import warnings
from pathlib import Path

import numpy
import pytest

zarr = pytest.importorskip("zarr")
tifffile = pytest.importorskip("tifffile")
pytest.importorskip("dask")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import tiffio  # noqa: E402
import tiffio.dask as tdask  # noqa: E402
from tests.support.paths import CORPUS, FIXTURES  # noqa: E402
from tiffio.zarr import TiffStore  # noqa: E402

pytestmark = [pytest.mark.crossval, pytest.mark.corpus]

logging.getLogger("tifffile").setLevel(logging.CRITICAL)
MAX_BYTES = 32 << 20
HERE = Path(__file__).resolve().parent
MANIFEST = CORPUS / "manifest.tsv"


def _tsv(path: Path) -> list[dict[str, str]]:
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines)), delimiter="\t"))


REFUSALS = {(r["path"], int(r["page"])): r for r in _tsv(HERE.parent / "read" / "refusals.tsv")}
DIFFERENCES = {r["path"]: r["reason"] for r in _tsv(HERE / "store_differences.tsv")}


def _names() -> list[str]:
    names = sorted(str(p.relative_to(FIXTURES.parent)) for p in FIXTURES.rglob("*.tif*") if "malformed" not in p.parts)
    if MANIFEST.exists():
        names += [r["path"] for r in csv.DictReader(MANIFEST.open(), delimiter="\t")]
    return names


NAMES = _names()


def _path(name: str) -> Path:
    return FIXTURES.parent / name if name.startswith("fixtures/") else CORPUS / name


def _decodable(tf) -> bool:
    return all(s.keyframe.dtype is not None and s.shape and 0 not in s.shape for s in tf.series)


def _describe(series) -> list:
    return [(tuple(s.shape), s.axes, s.dtype, [tuple(lv.shape) for lv in s.levels]) for s in series]


def _their_level(tf, s: int, k: int, box):
    """tifffile's pixels of series s level k in ``box``: its zarr store, else its asarray,
    else None (tifffile decodes neither way: nothing to compare)."""
    try:
        with tf.aszarr(series=s, level=k) as zs:
            fmt = 3 if "zarr.json" in zs._store else 2  # tifffile < 2026.5 serves zarr v2 metadata
            return zarr.open_array(zs, mode="r", zarr_format=fmt)[box]
    except Exception:
        try:
            return tf.series[s].levels[k].asarray()[box]
        except Exception:
            return None


def _boxes(shape: tuple[int, ...], nbytes: int) -> list[tuple[slice, ...]]:
    """The whole array, or (when large) corner windows of its first and last page."""
    if nbytes <= MAX_BYTES:
        return [tuple(slice(None) for _ in shape)]
    corner = tuple(slice(0, min(n, 256)) if i >= len(shape) - 3 else slice(0, 1) for i, n in enumerate(shape))
    last = tuple(slice(n - 1, n) if s == slice(0, 1) else s for s, n in zip(corner, shape))
    return [corner, last]


def _equal(a, b) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and numpy.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


def _their_asarray_fails(tf, s: int, k: int) -> bool:
    try:
        tf.series[s].levels[k].asarray()
    except Exception:
        return True
    return False


def _refused(name: str, page: int, exc: BaseException) -> bool:
    row = REFUSALS.get((name, page))
    return row is not None and row["kind"] == "refusal" and type(exc).__name__ == row["tiffio"]


@pytest.mark.skipif(not NAMES, reason="no fixtures and no corpus")
@pytest.mark.parametrize("name", NAMES)
def test_every_series_and_level_equals_tifffile(name):
    path = _path(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tf = tifffile.TiffFile(path)
            theirs = _describe(tf.series)
        except Exception:
            pytest.skip("tifffile does not read the file")
        with tf:
            try:
                with tiffio.open(path) as tif:
                    ours = _describe(tif.series)
            except tiffio.TiffError as exc:
                ours = exc
            _dask_imread_equals_imread(path)
            if ours != theirs:
                assert not _decodable(tf) or name in DIFFERENCES, f"tifffile {theirs}, tiffio {ours}"
                return
            for s, series in enumerate(tf.series):
                for k, level in enumerate(series.levels):
                    _compare_level(name, path, tf, s, k, level)
                if series.levels[0].keyframe.dtype is not None and len(series.pages) > 1:
                    _compare_keys(path, tf, s, series)


def _dask_imread_equals_imread(path):
    """tiffio.dask.imread(path) is the array tiffio.imread(path) reads (or both refuse the file)."""
    try:
        with tiffio.open(path) as tif:
            nbytes = tif.series[0].nbytes if tif.series else 0
    except tiffio.TiffError:
        nbytes = 0
    if nbytes > MAX_BYTES:
        return
    try:
        ref = tiffio.imread(path, strict=False)
    except tiffio.TiffError:
        with pytest.raises(tiffio.TiffError):
            tdask.imread(path).compute(scheduler="sync")
        return
    got = tdask.imread(path).compute(scheduler="sync")
    assert _equal(got, ref), "tiffio.dask.imread differs from tiffio.imread"


def _compare_level(name, path, tf, s, k, level):
    shape = tuple(level.shape)
    if level.keyframe.dtype is None or 0 in shape:
        return
    page = level.keyframe.index
    nbytes = int(numpy.prod(shape)) * level.dtype.itemsize
    window = (512, 512) if nbytes <= MAX_BYTES else (1 << 15, 1 << 15)  # a graph of few tasks for huge images
    try:
        arr = zarr.open_array(TiffStore(path, series=s, level=k), mode="r")
        darr = tdask.from_tiff(path, series=s, level=k, chunks=window)
    except tiffio.TiffError as exc:
        assert _refused(name, page, exc) or _their_asarray_fails(tf, s, k), f"series {s} level {k}: {exc!r}"
        return
    assert arr.shape == darr.shape == shape, (s, k)
    wrong = REFUSALS.get((name, page), {}).get("kind") == "tifffile_wrong"
    for box in _boxes(shape, nbytes):
        try:
            got = arr[box]
            got_dask = darr[box].compute(scheduler="threads")
        except tiffio.TiffError as exc:
            assert _refused(name, page, exc) or _their_asarray_fails(tf, s, k), f"series {s} level {k}: {exc!r}"
            return
        ref = _their_level(tf, s, k, box)
        assert _equal(got, got_dask)
        assert ref is None or _equal(got, ref) or wrong, f"series {s} level {k} box {box}"


def _compare_keys(path, tf, s, series):
    """One page (the first and the last) and a slice of pages, as tifffile selects them."""
    n = len(series.pages)
    if series.keyframe.nbytes * n > MAX_BYTES:
        return
    for key in (0, n - 1):
        try:
            with tf.aszarr(series=s, key=key) as zs:
                fmt = 3 if "zarr.json" in zs._store else 2
                ref = zarr.open_array(zs, mode="r", zarr_format=fmt)[:]
        except Exception:
            continue  # tifffile's page store does not read this page
        got = zarr.open_array(TiffStore(path, series=s, key=key), mode="r")[:]
        assert _equal(got, ref), f"series {s} key {key}"
    key = slice(n - 1, None, -2)
    try:
        ref = tf.asarray(series=s, key=key)
    except Exception:
        return
    got = zarr.open_array(TiffStore(path, series=s, key=key), mode="r")[:]
    assert _equal(got, ref.reshape(got.shape)) and got.shape[0] == len(range(n)[key]), f"series {s} key {key}"
    assert _equal(tdask.from_tiff(path, series=s, key=key).compute(), got)


def test_differences_are_still_there():
    """Every row of store_differences.tsv names a file whose series still differ from tifffile's."""
    for name, reason in DIFFERENCES.items():
        path = _path(name)
        if not path.exists():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tifffile.TiffFile(path) as tf:
                theirs = _describe(tf.series)
            try:
                with tiffio.open(path) as tif:
                    ours = _describe(tif.series)
            except tiffio.TiffError as exc:
                ours = exc
        assert ours != theirs, (name, reason)


# --- random boxes of multi-page and multi-level series, every chunk mode ------------------------
def _multi() -> list[str]:
    found = []
    for name in NAMES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with tiffio.open(_path(name)) as tif:
                    if any(s.npages > 1 or len(s.levels) > 1 for s in tif.series) or len(tif.series) > 1:
                        found.append(name)
        except tiffio.TiffError:
            continue
    return found


MULTI = _multi()


@pytest.mark.skipif(not MULTI, reason="no files with multi-page or multi-level series")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_boxes_of_series(data):
    name = data.draw(st.sampled_from(MULTI))
    path = _path(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tiffio.open(path) as tif:
            s = data.draw(st.integers(0, len(tif.series) - 1))
            k = data.draw(st.integers(0, len(tif.series[s].levels) - 1))
            level = tif.series[s].levels[k]
            if level.nbytes > MAX_BYTES:
                return
            try:
                ref = level.asarray(workers=1)
            except tiffio.TiffError:
                return
    chunks = data.draw(st.sampled_from(["segment", (64, 64), "image"]))
    box = tuple(slice(*sorted((data.draw(st.integers(0, n)), data.draw(st.integers(0, n))))) for n in ref.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = zarr.open_array(TiffStore(path, series=s, level=k, chunks=chunks), mode="r")
        assert _equal(arr[box], numpy.ascontiguousarray(ref[box]))
        darr = tdask.from_tiff(path, series=s, level=k, chunks="page" if chunks == "image" else (64, 64))
        assert _equal(darr[box].compute(scheduler="sync"), numpy.ascontiguousarray(ref[box]))
