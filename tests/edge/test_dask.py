"""tiffio.dask and the stores on dask: threads, a spawn process pool, a real 2-process LocalCluster."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr")
tifffile = pytest.importorskip("tifffile")

import tiffio  # noqa: E402
import tiffio.dask as tdask  # noqa: E402
from tests.support.paths import FIXTURES  # noqa: E402
from tiffio.zarr import FileSequenceStore, TiffStore  # noqa: E402

pytestmark = pytest.mark.crossval

PYRAMID = FIXTURES / "libvips" / "pyramid_jpeg_subifds.tif"
SPARSE = FIXTURES / "gdal" / "sparse_tiled_u8.tif"
STRIPS = FIXTURES / "gdal" / "gray_jpeg_strips.tif"
SEPARATE = FIXTURES / "libtiff" / "zip_rgb_separate_tiles.tif"


def _level(path, k):
    with tiffio.open(path) as tif:
        return tif.levels[k].ifd.asarray()


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    """A t x c sequence of tiled 40 x 50 uint16 files with one file (t=1, c=2) missing."""
    root = tmp_path_factory.mktemp("seq")
    rng = numpy.random.default_rng(12)
    data = rng.integers(0, 60000, (3, 3, 40, 50), dtype=numpy.uint16)
    for t in range(3):
        for c in range(3):
            if (t, c) != (1, 2):
                tifffile.imwrite(root / f"img_t{t + 1}_c{c}.tif", data[t, c], tile=(16, 16), compression="zlib")
    data[1, 2] = 0
    return root, data


# --- from_tiff ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [PYRAMID, SPARSE, STRIPS, SEPARATE])
@pytest.mark.parametrize("chunks", [(64, 64), (100, 70), "auto"])
def test_from_tiff_equals_asarray(path, chunks):
    with tiffio.open(path) as tif:
        nlevels = len(tif.levels)
    for k in range(nlevels):
        ref = _level(path, k)
        arr = tdask.from_tiff(path, level=k, chunks=chunks)
        assert arr.shape == ref.shape and arr.dtype == ref.dtype
        assert numpy.array_equal(arr.compute(scheduler="threads"), ref)
        assert numpy.array_equal(arr[5:37, 11:60].compute(scheduler="sync"), ref[5:37, 11:60])


def test_from_tiff_chunks_are_tile_aligned():
    arr = tdask.from_tiff(PYRAMID, chunks=(100, 70))
    assert arr.chunks == ((128, 122), (128, 128, 44), (3,))
    assert tdask.from_tiff(STRIPS, chunks=(20, 20)).chunks == ((32,) * 4 + (2,), (150,))
    sep = tdask.from_tiff(SEPARATE, chunks=(32, 48))
    assert sep.chunks == ((3,), (32, 32, 32, 3), (48, 48, 37))
    with pytest.raises(tiffio.TiffValueError, match="chunks"):
        tdask.from_tiff(PYRAMID, chunks="tiles")


def test_from_tiff_names_pickles_and_fill():
    with dask.config.set({"tokenize.ensure-deterministic": True}):
        a = tdask.from_tiff(PYRAMID, level=1)
        assert a.name == tdask.from_tiff(PYRAMID, level=1).name
        assert a.name != tdask.from_tiff(PYRAMID, level=0).name
        assert a.name != tdask.from_tiff(PYRAMID, level=1, chunks=(64, 64)).name
    reader = tdask.TiffRegionArray(PYRAMID, level=1)
    data = pickle.dumps(reader)
    assert data == pickle.dumps(pickle.loads(data)) and len(data) < 400
    assert numpy.array_equal(pickle.loads(data)[10:20, 30:40], _level(PYRAMID, 1)[10:20, 30:40])
    with tiffio.open(SPARSE) as tif:
        ref = tif.ifds[0].asarray(fill=9)
    assert numpy.array_equal(tdask.from_tiff(SPARSE, fill=9, chunks=(64, 64)).compute(), ref)
    with open(PYRAMID, "rb") as fh, pytest.raises(tiffio.TiffTypeError, match="file path or URL"):
        tdask.from_tiff(fh)


# --- file sequences -----------------------------------------------------------------------------
def test_imread_sequence_and_missing_file(sequence):
    root, data = sequence
    arr = tdask.imread(str(root / "img_t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)")
    assert arr.shape == (3, 3, 40, 50) and arr.chunks[:2] == ((1, 1, 1), (1, 1, 1))
    assert numpy.array_equal(arr.compute(), data)
    assert (tdask.imread(str(root / "img_t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)", fill=5)[1, 2] == 5).all().compute()
    tiles = tdask.imread(str(root / "img_t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)", chunks=(16, 32))
    assert tiles.chunks[2:] == ((16, 16, 8), (32, 18))
    assert numpy.array_equal(tiles[:, 1:, 3:30, 7:44].compute(), data[:, 1:, 3:30, 7:44])
    ref = tifffile.TiffSequence(str(root / "img_t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)")
    assert ref.shape == arr.shape[:2]
    with dask.config.set({"tokenize.ensure-deterministic": True}):
        assert arr.name == tdask.imread(str(root / "img_t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)").name


def test_whole_file_chunks_open_each_file_once_and_keep_none_open(sequence):
    """chunks="file": each file is opened, read and closed by its task; the process's file cache
    (for window chunks, which read one file many times) keeps none of them."""
    from tiffio._edge import filecache
    root, data = sequence
    filecache.clear_cache()
    arr = tdask.imread(str(root / "img_t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)")
    cached = set(filecache._cache)
    assert numpy.array_equal(arr.compute(scheduler="threads"), data)
    assert set(filecache._cache) == cached  # only what building the array opened (the first file)
    tiles = tdask.imread(str(root / "img_t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)", chunks=(16, 32))
    assert numpy.array_equal(tiles.compute(scheduler="sync"), data)
    assert len(filecache._cache) == 8  # window chunks share one open file per path (8 files, 1 missing)


@pytest.mark.parametrize("chunks", ["file", "segment"])
def test_file_sequence_store(sequence, chunks):
    root, data = sequence
    store = FileSequenceStore(str(root / "img_t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)", chunks=chunks)
    arr = zarr.open_array(store, mode="r")
    assert arr.shape == (3, 3, 40, 50)
    assert arr.chunks == ((1, 1, 40, 50) if chunks == "file" else (1, 1, 16, 16))
    assert arr.metadata.dimension_names == ("t", "c", "y", "x")
    assert numpy.array_equal(arr[:], data)
    per_file = 1 if chunks == "file" else 3 * 4
    assert arr.nchunks_initialized == 8 * per_file
    assert pickle.loads(pickle.dumps(store)) == store
    assert pickle.dumps(store) == pickle.dumps(pickle.loads(pickle.dumps(store)))
    filled = zarr.open_array(FileSequenceStore(str(root / "img_t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)",
                                               chunks=chunks, fill=7), mode="r")
    assert filled.fill_value == 7 and (filled[1, 2] == 7).all()
    assert numpy.array_equal(filled[0], data[0])


def test_file_sequence_shape_mismatch_raises(tmp_path):
    tifffile.imwrite(tmp_path / "f1.tif", numpy.zeros((8, 8), numpy.uint8))
    tifffile.imwrite(tmp_path / "f2.tif", numpy.zeros((8, 9), numpy.uint8))
    arr = zarr.open_array(FileSequenceStore(str(tmp_path / "f*.tif"), pattern=r"f(\d+)"), mode="r")
    with pytest.raises(tiffio.TiffValueError, match="differs from the first file"):
        arr[:]
    with pytest.raises(tiffio.TiffValueError, match="differs from the first file"):
        tdask.imread(str(tmp_path / "f*.tif"), pattern=r"f(\d+)").compute()


# --- processes ------------------------------------------------------------------------------
def _chunk_sum(store, key):
    buf = store.get_sync(key)
    return int(numpy.frombuffer(buf.to_bytes(), numpy.uint8).sum(dtype=numpy.int64))


def _region(reader):
    return reader[0:50, 0:60]


_POOL_SCRIPT = """
import json, multiprocessing, sys
import tiffio.dask as tdask
from tiffio.zarr import TiffStore
from tests.edge.test_dask import _chunk_sum, _region
path, keys = sys.argv[1], sys.argv[2:]
store = TiffStore(path, level=0, chunks=(128, 128))
if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        sums = pool.starmap(_chunk_sum, [(store, k) for k in keys])
        region = pool.apply(_region, (tdask.TiffRegionArray(path, level=1),))
    print(json.dumps({"sums": sums, "region": region.tolist()}))
"""


def test_spawn_process_pool():
    """A spawn-method Pool unpickles the store and a TiffRegionArray in fresh processes. The pool
    runs in a subprocess of its own (bounded by a timeout), so no state of this pytest process
    (threads of zarr, dask, other tests) can interfere with it, nor it hang the suite."""
    store = TiffStore(PYRAMID, level=0, chunks=(128, 128))
    keys = [f"c/{i}/{j}/0" for i in range(2) for j in range(3)]
    here = [_chunk_sum(store, k) for k in keys]
    root = str(FIXTURES.parent)
    out = subprocess.run([sys.executable, "-c", _POOL_SCRIPT, str(PYRAMID), *keys], capture_output=True,
                         text=True, timeout=300, cwd=root, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["sums"] == here
    assert numpy.array_equal(numpy.array(result["region"], numpy.uint8), _level(PYRAMID, 1)[0:50, 0:60])


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def test_distributed_levels_and_sequence(client, sequence):
    root, data = sequence
    for k in (0, 1):
        ref = _level(PYRAMID, k)
        expected = int(ref.sum(dtype=numpy.int64))
        assert int(tdask.from_tiff(PYRAMID, level=k, chunks=(64, 64)).sum().compute()) == expected
        store = TiffStore(PYRAMID, level=k)
        assert int(da.from_zarr(zarr.open_array(store, mode="r")).sum().compute()) == expected
        group = zarr.open_group(TiffStore(PYRAMID, chunks=(128, 128)), mode="r")
        assert int(da.from_zarr(group[str(k)]).sum().compute()) == expected
    seq = tdask.imread(str(root / "img_t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)")
    assert int(seq.sum().compute()) == int(data.sum(dtype=numpy.int64))
    zseq = zarr.open_array(FileSequenceStore(str(root / "img_t*_c*.tif"), pattern=r"(t)(\d+)_(c)(\d+)"), mode="r")
    assert numpy.array_equal(da.from_zarr(zseq).compute(), data)
    # the work ran in the worker processes, which opened the file themselves
    cached = client.run(lambda: [key[0] for key in tiffio._edge.filecache._cache])
    assert len(cached) == 2 and any(str(PYRAMID) in paths for paths in cached.values())


def test_distributed_multipage_series(client, tmp_path):
    """A multi-page series on a 2-process cluster: an ImageJ hyperstack (contiguous planes read
    from computed offsets) and a tiled Deflate stack, through from_tiff, dask.imread and the store."""
    rng = numpy.random.default_rng(23)
    hyper = rng.integers(0, 60000, (3, 2, 48, 40), dtype=numpy.uint16)
    tifffile.imwrite(tmp_path / "hyper.tif", hyper, imagej=True, metadata={"axes": "TCYX"})
    stack = rng.integers(0, 60000, (5, 48, 40), dtype=numpy.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, tile=(16, 16), compression="zlib")
    for name, ref in (("hyper.tif", hyper), ("stack.tif", stack)):
        path = str(tmp_path / name)
        lazy = tdask.from_tiff(path, chunks=(16, 16))
        assert lazy.shape == ref.shape and lazy.chunksize[: ref.ndim - 2] == (1,) * (ref.ndim - 2)
        assert numpy.array_equal(lazy.compute(), ref)
        assert int(tdask.imread(path).sum().compute()) == int(ref.sum(dtype=numpy.int64))
        group = zarr.open_group(TiffStore(path), mode="r")
        assert numpy.array_equal(da.from_zarr(group["0"]).compute(), ref)
        assert numpy.array_equal(tdask.from_tiff(path, key=slice(1, None)).compute(),
                                 ref.reshape(-1, 48, 40)[1:])


def test_distributed_xarray_dataset(client, tmp_path):
    """xr.open_dataset(engine="tiffio", chunks=...) on the 2-process cluster: the lazy arrays
    travel pickled to the workers, which reopen the file."""
    xr = pytest.importorskip("xarray")
    data = numpy.random.default_rng(5).integers(0, 60000, (6, 2, 40, 48), dtype=numpy.uint16)
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TCYX"})
    ds = xr.open_dataset(path, engine="tiffio", chunks={"y": 16, "x": 16})
    assert ds["image"].dims == ("t", "c", "y", "x")
    means = ds["image"].mean(dim=("y", "x")).compute()
    numpy.testing.assert_allclose(means.values, data.mean(axis=(2, 3)))
