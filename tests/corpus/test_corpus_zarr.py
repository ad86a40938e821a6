"""Corpus files with pyramid levels or masks, through tiffio.zarr.TiffStore and tiffio.dask (issue 12).

Every level and mask array of the store equals ``ifd.asarray()`` (whole and on hypothesis
windows, for tile chunks and tile-aligned windows); where ``asarray`` refuses the image with a
TiffError, the store refuses it with the same class. Where tifffile's ``aszarr`` reads a level,
its array is equal too.
"""

from __future__ import annotations

import logging
import os
import warnings

import numpy
import pytest

zarr = pytest.importorskip("zarr")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import tiffio  # noqa: E402
from tiffio.zarr import TiffStore  # noqa: E402

from ..conftest import CORPUS  # noqa: E402

logging.getLogger("tifffile").setLevel(logging.CRITICAL)
MAX_BYTES = 64 << 20


def _with_levels() -> list[str]:
    if not CORPUS.is_dir():
        return []
    found = []
    for dirpath, _dirs, files in os.walk(CORPUS):
        for name in sorted(files):
            if not name.lower().endswith((".tif", ".tiff")):
                continue
            path = os.path.join(dirpath, name)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with tiffio.open(path, strict=False) as tif:
                        if len(tif.levels) > 1 or tif.masks:
                            found.append(os.path.relpath(path, CORPUS))
            except tiffio.TiffError:
                continue
    return sorted(found)


FILES = _with_levels()


def _arrays(path):
    """(store key, reference array or the TiffError class asarray raises) per level and mask."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tiffio.open(path, strict=False) as tif:
            items = [(str(lv.index), lv.ifd) for lv in tif.levels] + [(f"masks/{i}", m) for i, m in enumerate(tif.masks)]
            for key, ifd in items:
                try:
                    if ifd.length * ifd.width * ifd.samples_per_pixel * 8 > MAX_BYTES:
                        continue
                    out.append((key, ifd.asarray()))
                except tiffio.TiffError as exc:
                    out.append((key, type(exc)))
    return out


@pytest.mark.skipif(not FILES, reason=f"no corpus files with levels under {CORPUS}")
@pytest.mark.parametrize("name", FILES)
def test_corpus_levels_through_store(name):
    path = CORPUS / name
    for chunks in ("segment", (256, 256)):
        group = zarr.open_group(TiffStore(path, chunks=chunks, strict=False), mode="r")
        for key, ref in _arrays(path):
            if isinstance(ref, type):
                with pytest.raises(ref), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    group[key][:]
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = group[key][:]
            assert got.shape == ref.shape and got.dtype == ref.dtype, (name, key)
            assert numpy.array_equal(got, ref, equal_nan=ref.dtype.kind == "f"), (name, key, chunks)


@pytest.mark.skipif(not FILES, reason=f"no corpus files with levels under {CORPUS}")
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corpus_windows(data):
    name = data.draw(st.sampled_from(FILES))
    arrays = [(k, r) for k, r in _arrays(CORPUS / name) if not isinstance(r, type)]
    if not arrays:
        return
    key, ref = data.draw(st.sampled_from(arrays))
    chunks = data.draw(st.sampled_from(["segment", (64, 64), "image"]))
    arr = zarr.open_group(TiffStore(CORPUS / name, chunks=chunks, strict=False), mode="r")[key]
    sel = tuple(slice(*sorted((data.draw(st.integers(0, n)), data.draw(st.integers(0, n))))) for n in ref.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert numpy.array_equal(arr[sel], ref[sel], equal_nan=ref.dtype.kind == "f")


@pytest.mark.skipif(not FILES, reason=f"no corpus files with levels under {CORPUS}")
@pytest.mark.parametrize("name", FILES)
def test_corpus_levels_equal_tifffile_aszarr(name):
    tifffile = pytest.importorskip("tifffile")
    path = CORPUS / name
    refs = dict(_arrays(path))
    try:
        tf = tifffile.TiffFile(path)
        levels = tf.series[0].levels
    except Exception:
        pytest.skip("tifffile does not read the file's series")
    compared = 0
    with tf:
        for k in range(len(levels)):
            if str(k) not in refs or isinstance(refs[str(k)], type):
                continue
            try:
                with tf.series[0].aszarr(level=k) as zs:
                    theirs = zarr.open_array(zs, mode="r", zarr_format=3 if "zarr.json" in zs._store else 2)[:]
            except Exception:
                continue  # tifffile's store does not read this level
            if theirs.shape != refs[str(k)].shape:
                continue  # tifffile's series shapes this level differently (e.g. squeezed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ours = zarr.open_array(TiffStore(path, level=k, strict=False), mode="r")[:]
            assert numpy.array_equal(ours, theirs, equal_nan=theirs.dtype.kind == "f"), (name, k)
            compared += 1
    if not compared:
        pytest.skip("tifffile's aszarr reads no level of this file the way tiffio shapes it")
