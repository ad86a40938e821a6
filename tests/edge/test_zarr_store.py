"""tiffio.zarr.TiffStore: zarr's own store contract suite, and arrays equal to tiffio/tifffile reads."""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys

import numpy
import pytest

zarr = pytest.importorskip("zarr")
pytest.importorskip("pytest_asyncio")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from zarr.core.buffer import cpu, default_buffer_prototype  # noqa: E402
from zarr.testing.store import StoreTests  # noqa: E402

import tiffio  # noqa: E402
from tests.support.paths import FIXTURES  # noqa: E402
from tiffio.zarr import TiffStore  # noqa: E402

pytestmark = pytest.mark.crossval

PYRAMID = FIXTURES / "libvips" / "pyramid_jpeg_subifds.tif"
SPARSE = FIXTURES / "gdal" / "sparse_tiled_u8.tif"
SPARSE_NODATA = FIXTURES / "gdal" / "sparse_tiled_f32_nodata.tif"
MASKED = FIXTURES / "gdal" / "rgb_ycbcr_jpeg_mask.tif"
STRIPS = FIXTURES / "gdal" / "gray_jpeg_strips.tif"
SEPARATE = FIXTURES / "libtiff" / "zip_rgb_separate_tiles.tif"


# --- zarr's contract suite ------------------------------------------------------------------
class TestTiffStoreContract(StoreTests[TiffStore, cpu.Buffer]):
    """The generic contract on a real file. The suite writes arbitrary keys through the
    helper ``set`` below, which puts them into the store's own key table (the table that
    serves ``zarr.json``), so every read path under test is the store's."""

    store_cls = TiffStore
    buffer_cls = cpu.Buffer

    async def set(self, store, key, value):
        store.layout.meta[key] = value.to_bytes()

    async def get(self, store, key):
        return self.buffer_cls.from_bytes(store.layout.meta[key])

    @pytest.fixture
    def store_kwargs(self):
        return {"source": str(PYRAMID)}

    def test_store_repr(self, store):
        assert repr(store) == f"TiffStore({str(PYRAMID)!r}, chunks='segment')"

    def test_store_supports_writes(self, store):
        assert not store.supports_writes

    def test_store_supports_listing(self, store):
        assert store.supports_listing


# Dropped because they need a writable or an initially empty store (a TiffStore is neither):
# writes: test_serializable_store (ends with store.set; pickling is tested below),
#   test_store_read_only, test_store_open_read_only (its read_only=False case), test_set,
#   test_set_not_open, test_set_many, test_set_if_not_exists, test_exists, test_clear,
#   test_getsize_prefix (uses _set_many);
# empty store: test_is_empty, test_list, test_list_prefix, test_list_empty_path, test_list_dir
#   (listing is tested below on the file's real keys).
for _name in ["test_serializable_store", "test_store_read_only", "test_store_open_read_only", "test_set",
              "test_set_not_open", "test_set_many", "test_set_if_not_exists", "test_exists", "test_clear",
              "test_getsize_prefix", "test_is_empty", "test_list", "test_list_prefix", "test_list_empty_path",
              "test_list_dir"]:
    setattr(TestTiffStoreContract, _name, None)


# --- TIFF semantics ---------------------------------------------------------------------------
def _levels(path):
    with tiffio.open(path) as tif:
        return [(lv.index, lv.ifd.asarray(), lv.downsample) for lv in tif.levels]


def test_multiscales_group_metadata_and_levels():
    store = TiffStore(PYRAMID)
    group = zarr.open_group(store, mode="r")
    ome = group.attrs["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["y", "x", "c"]
    assert [a["type"] for a in ms["axes"]] == ["space", "space", "channel"]
    levels = _levels(PYRAMID)
    assert [d["path"] for d in ms["datasets"]] == [str(i) for i, _, _ in levels]
    for (index, ref, (dy, dx)), ds in zip(levels, ms["datasets"]):
        assert ds["coordinateTransformations"] == [{"type": "scale", "scale": [dy, dx, 1.0]}]
        arr = group[str(index)]
        assert arr.shape == ref.shape and arr.dtype == ref.dtype
        assert arr.chunks == (64, 64, 3)  # the file's tiles
        assert numpy.array_equal(arr[:], ref)
    # one level as the root array
    one = zarr.open_array(TiffStore(PYRAMID, level=1), mode="r")
    assert numpy.array_equal(one[:], levels[1][1])
    flat = zarr.open_array(TiffStore(PYRAMID, multiscales=False), mode="r")
    assert numpy.array_equal(flat[:], levels[0][1])
    with pytest.raises(tiffio.TiffValueError, match="level 9 out of range"):
        zarr.open_array(TiffStore(PYRAMID, level=9), mode="r")


def test_masks_are_extra_arrays_not_levels():
    group = zarr.open_group(TiffStore(MASKED), mode="r")
    with tiffio.open(MASKED) as tif:
        masks = [m.asarray() for m in tif.masks]
        nlevels = len(tif.levels)
    assert len(group.attrs["ome"]["multiscales"][0]["datasets"]) == nlevels
    info = group.attrs["tiffio"]
    assert (info["masks"], info["associated"]) == (len(masks), [])
    # the mask is also series 1 (as tifffile lists it), with its own levels
    assert [(s["path"], s["axes"], s["shape"]) for s in info["series"]] == [("", "YXS", [200, 300, 3]),
                                                                           ("series/1", "YX", [200, 300])]
    assert numpy.array_equal(group["series/1/0"][:], masks[0])
    for i, ref in enumerate(masks):
        assert numpy.array_equal(group[f"masks/{i}"][:], ref)
    assert "masks" not in zarr.open_group(TiffStore(MASKED, extras=False), mode="r")


@pytest.mark.parametrize("chunks", ["segment", "image", (100, 70), (64, 128)])
@pytest.mark.parametrize("path", [PYRAMID, SPARSE, SPARSE_NODATA, STRIPS, SEPARATE, MASKED])
def test_chunk_modes_equal_asarray(path, chunks):
    for index, ref, _ in _levels(path):
        arr = zarr.open_array(TiffStore(path, level=index, chunks=chunks), mode="r")
        assert arr.shape == ref.shape and arr.dtype == ref.dtype
        assert numpy.array_equal(arr[:], ref, equal_nan=ref.dtype.kind == "f")


def test_region_chunks_are_tile_multiples():
    arr = zarr.open_array(TiffStore(PYRAMID, level=0, chunks=(100, 70)), mode="r")
    assert arr.chunks == (128, 128, 3)
    arr = zarr.open_array(TiffStore(STRIPS, level=0, chunks=(20, 1)), mode="r")
    assert arr.chunks == (32, 150)  # 16-row strips
    assert zarr.open_array(TiffStore(SEPARATE, level=0, chunks="image"), mode="r").chunks == (3, 99, 133)
    with pytest.raises(tiffio.TiffValueError, match="chunks"):
        TiffStore(PYRAMID, chunks="tile")
    with pytest.raises(tiffio.TiffValueError, match="positive"):
        TiffStore(PYRAMID, chunks=(0, 64))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_windows_equal_asarray(data):
    path = data.draw(st.sampled_from([PYRAMID, SPARSE, STRIPS, SEPARATE]))
    chunks = data.draw(st.sampled_from(["segment", (64, 64), (200, 130)]))
    levels = _levels(path)
    index, ref, _ = data.draw(st.sampled_from(levels))
    arr = zarr.open_array(TiffStore(path, level=index, chunks=chunks), mode="r")
    sel = tuple(slice(*sorted((data.draw(st.integers(0, n)), data.draw(st.integers(0, n))))) for n in ref.shape)
    assert numpy.array_equal(arr[sel], ref[sel])


async def test_sparse_chunks_are_absent():
    store = TiffStore(SPARSE, level=0)
    with tiffio.open(SPARSE) as tif:
        ifd = tif.ifds[0]
        sparse = [i for i in range(ifd.segment_count) if ifd.is_sparse(i)]
        across = ifd.grid.across
        stored = ifd.segment_count - len(sparse)
    assert sparse and stored
    proto = default_buffer_prototype()
    for index in range(ifd.segment_count):
        key = f"c/{index // across}/{index % across}"
        if index in sparse:
            assert await store.get(key, proto) is None
            assert not await store.exists(key)
            with pytest.raises(FileNotFoundError):
                await store.getsize(key)
        else:
            assert await store.exists(key)
            assert await store.getsize(key) == 64 * 64
    keys = [k async for k in store.list()]
    assert keys[0] == "zarr.json" and len(keys) == 1 + stored
    assert sorted(keys[1:]) == sorted(f"c/{i // across}/{i % across}" for i in range(ifd.segment_count)
                                      if i not in sparse)
    arr = zarr.open_array(store, mode="r")
    assert arr.nchunks_initialized == stored and arr.nchunks == ifd.segment_count
    assert arr.fill_value == 0


def test_fill_from_nodata_and_argument():
    with tiffio.open(SPARSE_NODATA) as tif:
        nodata = tif.ifds[0].nodata
        ref = tif.ifds[0].asarray()
    arr = zarr.open_array(TiffStore(SPARSE_NODATA, level=0), mode="r")
    assert nodata is not None and arr.fill_value == nodata
    assert numpy.array_equal(arr[:], ref, equal_nan=True)
    arr = zarr.open_array(TiffStore(SPARSE, level=0, fill=7), mode="r")
    with tiffio.open(SPARSE) as tif:
        assert numpy.array_equal(arr[:], tif.ifds[0].asarray(fill=7))
    assert arr.fill_value == 7


async def test_listing_and_getsize_do_not_decode():
    store = TiffStore(PYRAMID)
    tif = store.tiff
    calls = []
    for lv in tif.levels:
        original = lv.ifd.read_segment
        lv.ifd.read_segment = lambda *a, _o=original, **k: calls.append(a) or _o(*a, **k)
    try:
        keys = [k async for k in store.list()]
        sizes = [await store.getsize(k) for k in keys]
        dirs = sorted([k async for k in store.list_dir("")])
        level0 = sorted([k async for k in store.list_dir("0")])
        prefixed = [k async for k in store.list_prefix("1/")]
    finally:
        for lv in tif.levels:
            lv.ifd.__dict__.pop("read_segment", None)
    assert calls == []
    assert dirs == ["0", "1", "2", "3", "zarr.json"] and level0 == ["c", "zarr.json"]
    assert prefixed[0] == "1/zarr.json" and len(prefixed) == 1 + 6
    assert sizes[keys.index("0/c/0/0/0")] == 64 * 64 * 3
    meta = json.loads((await store.get("0/zarr.json", default_buffer_prototype())).to_bytes())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [64, 64, 3]
    assert sizes[keys.index("0/zarr.json")] == len(json.dumps(meta, indent=1).encode())


async def test_bad_keys_are_absent():
    store = TiffStore(PYRAMID)
    proto = default_buffer_prototype()
    for key in ["0/c/9/0/0", "0/c/0/0", "0/c/0/0/1", "0/c/00/0/0", "0/c/a/0/0", "7/zarr.json", "c/0/0/0", "0/x"]:
        assert await store.get(key, proto) is None, key
        assert not await store.exists(key)


async def test_concurrent_gets_decode_in_threads_and_agree():
    store = TiffStore(PYRAMID, level=0, chunks=(128, 128))  # 128 x 128 x 3 = 48 KiB chunks
    big = TiffStore(PYRAMID, level=0, chunks="image")
    proto = default_buffer_prototype()
    keys = [f"c/{i}/{j}/0" for i in range(2) for j in range(3)]
    together = await asyncio.gather(*(store.get(k, proto) for k in keys))
    alone = [await store.get(k, proto) for k in keys]
    assert [b.to_bytes() for b in together] == [b.to_bytes() for b in alone]
    whole = await big.get("c/0/0/0", proto)
    ref = _levels(PYRAMID)[0][1]
    assert whole.to_bytes() == ref.tobytes()


def test_pickle_is_small_stable_and_equal():
    store = TiffStore(PYRAMID, chunks=(256, 256), fill=3)
    data = pickle.dumps(store)
    assert data == pickle.dumps(store) == pickle.dumps(pickle.loads(data))
    assert len(data) < 400
    again = pickle.loads(data)
    assert again == store and hash(again) == hash(store)
    assert again != TiffStore(PYRAMID, chunks=(256, 256))
    assert numpy.array_equal(zarr.open_group(again, mode="r")["1"][:], _levels(PYRAMID)[1][1])
    nan = TiffStore(SPARSE_NODATA, fill=float("nan"))
    assert pickle.loads(pickle.dumps(nan)) == nan
    # a fresh interpreter produces the same bytes (no per-process state in the pickle)
    code = f"import pickle, sys; from tiffio.zarr import TiffStore; sys.stdout.buffer.write(pickle.dumps(TiffStore({str(PYRAMID)!r}, chunks=(256, 256), fill=3)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, cwd=str(FIXTURES.parent),
                         timeout=120).stdout
    assert out == data


def test_dask_from_zarr_names_are_deterministic():
    dask = pytest.importorskip("dask")
    import dask.array as da
    with dask.config.set({"tokenize.ensure-deterministic": True}):
        a = da.from_zarr(zarr.open_array(TiffStore(PYRAMID, level=0), mode="r"))
        b = da.from_zarr(zarr.open_array(TiffStore(PYRAMID, level=0), mode="r"))
        assert a.name == b.name
        assert a.name != da.from_zarr(zarr.open_array(TiffStore(PYRAMID, level=1), mode="r")).name
        assert int(a.sum().compute()) == int(_levels(PYRAMID)[0][1].sum(dtype=numpy.int64))


def test_sources_that_cannot_travel_raise():
    with open(PYRAMID, "rb") as fh:
        with pytest.raises(tiffio.TiffTypeError, match="file path or URL"):
            TiffStore(fh)
        with tiffio.open(fh) as tif, pytest.raises(tiffio.TiffTypeError, match="bytes or a file object"):
            TiffStore(tif)
    with pytest.raises(tiffio.TiffTypeError, match="not a bytes"):
        TiffStore(PYRAMID.read_bytes())
    with pytest.raises(tiffio.TiffValueError, match="read-only"):
        TiffStore(PYRAMID, read_only=False)
    with tiffio.open(PYRAMID) as tif:  # an open TiffFile of a path is used as is, and pickles as the path
        store = TiffStore(tif)
        assert store.tiff is tif and pickle.loads(pickle.dumps(store)) == TiffStore(PYRAMID)


def test_equals_tifffile_aszarr_arrays():
    tifffile = pytest.importorskip("tifffile")
    for path in [PYRAMID, SPARSE, STRIPS, SEPARATE, MASKED]:
        with tifffile.TiffFile(path) as tf:
            for k in range(len(tf.series[0].levels)):
                with tf.series[0].aszarr(level=k) as zs:
                    # tifffile < 2026.5 serves zarr v2 metadata, later versions v3
                    fmt = 3 if "zarr.json" in zs._store else 2
                    ref = zarr.open_array(zs, mode="r", zarr_format=fmt)[:]
                ours = zarr.open_array(TiffStore(path, level=k), mode="r")[:]
                assert ours.shape == ref.shape and ours.dtype == ref.dtype
                assert numpy.array_equal(ours, ref), (path, k)


# --- raw mode (the tiffio codec) and kerchunk references -------------------------------------------
def _fixture_files():
    files = []
    for sub in ("gdal", "libtiff", "libvips", "tifffile"):
        files += sorted((FIXTURES / sub).glob("*.tif"))
    return files


def _ref_or_error(path, k=0):
    """Series 0 level k as tiffio reads it (the store's default array), or the TiffError class."""
    with tiffio.open(path, strict=False) as tif:
        if not tif.series:
            try:
                tif.ifds[0].asarray()
            except tiffio.TiffError as exc:
                return type(exc), tif.ifds[0].compression
        s = tif.series[0].levels[k]
        try:
            return s.asarray(), s.keyframe.compression
        except tiffio.TiffError as exc:
            return type(exc), s.keyframe.compression


@pytest.mark.parametrize("path", _fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_raw_store_and_references_equal_asarray(path):
    """Every fixture: the stored bytes decoded by the tiffio codec, through the store and through
    kerchunk references read by fsspec's reference filesystem, equal asarray()."""
    fsspec = pytest.importorskip("fsspec")
    ref, compression = _ref_or_error(path)
    if isinstance(ref, type):
        pytest.skip(f"tiffio does not decode this file ({ref.__name__})")
    if compression == 6:
        with pytest.raises(tiffio.UnsupportedFeatureError, match="old-style JPEG"):
            zarr.open_array(TiffStore(path, level=0, decode="codec", strict=False), mode="r")
        return
    arr = zarr.open_array(TiffStore(path, level=0, decode="codec", strict=False), mode="r")
    assert numpy.array_equal(arr[:], ref, equal_nan=ref.dtype.kind == "f")
    refs = TiffStore(path, strict=False).to_references()
    assert json.loads(json.dumps(refs)) == refs  # plain JSON
    fs = fsspec.filesystem("reference", fo=refs, asynchronous=True)
    group = zarr.open_group(zarr.storage.FsspecStore(fs, read_only=True, path=""), mode="r")
    assert numpy.array_equal(group["0"][:], ref, equal_nan=ref.dtype.kind == "f")


async def test_raw_store_serves_stored_bytes_and_references_skip_sparse():
    store = TiffStore(SPARSE, level=0, decode="codec")
    proto = default_buffer_prototype()
    with tiffio.open(SPARSE) as tif:
        ifd = tif.ifds[0]
        across = ifd.grid.across
        stored = [i for i in range(ifd.segment_count) if not ifd.is_sparse(i)]
        raw = {i: ifd.read_segment_bytes(i) for i in stored}
        locations = {i: ifd.segment_location(i) for i in stored}
    for i in stored:
        key = f"c/{i // across}/{i % across}"
        assert (await store.get(key, proto)).to_bytes() == raw[i]
        assert await store.getsize(key) == len(raw[i])
    meta = json.loads((await store.get("zarr.json", proto)).to_bytes())
    assert meta["codecs"][0]["name"] == "tiffio"
    refs = TiffStore(SPARSE, level=0).to_references(url="s3://bucket/x.tif")["refs"]
    chunk_refs = {k: v for k, v in refs.items() if k.startswith("c/")}
    assert chunk_refs == {f"c/{i // across}/{i % across}": ["s3://bucket/x.tif", *locations[i]] for i in stored}
    with pytest.raises(tiffio.TiffValueError, match="chunks must be 'segment'"):
        zarr.open_array(TiffStore(SPARSE, level=0, decode="codec", chunks=(128, 128)), mode="r")
    assert pickle.loads(pickle.dumps(store)) == store != TiffStore(SPARSE, level=0)


def test_codec_round_trips_its_json():
    from tiffio._edge.zarrcodec import TiffioCodec
    meta = json.loads(TiffStore(PYRAMID, decode="codec").layout.meta["1/zarr.json"])
    codec = TiffioCodec.from_dict(meta["codecs"][0])
    assert codec.to_dict() == meta["codecs"][0]
    with tiffio.open(PYRAMID) as tif:
        assert codec.spec == tif.levels[1].ifd.spec


@pytest.mark.parametrize("path", _fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_fixture_through_store_and_dask(path):
    """Every fixture's level 0 through TiffStore (tile and window chunks) and tiffio.dask.from_tiff."""
    da = pytest.importorskip("dask.array")
    import tiffio.dask as tdask
    ref, _compression = _ref_or_error(path)
    if isinstance(ref, type):
        with pytest.raises(ref):
            zarr.open_array(TiffStore(path, level=0, strict=False), mode="r")[:]
        return
    for chunks in ("segment", (64, 64)):
        got = zarr.open_array(TiffStore(path, level=0, chunks=chunks, strict=False), mode="r")[:]
        assert got.shape == ref.shape and got.dtype == ref.dtype
        assert numpy.array_equal(got, ref, equal_nan=ref.dtype.kind == "f"), chunks
    arr = tdask.from_tiff(path, chunks=(64, 64), strict=False)
    assert isinstance(arr, da.Array)
    assert numpy.array_equal(arr.compute(scheduler="sync"), ref, equal_nan=ref.dtype.kind == "f")


def test_store_and_dask_over_http():
    """A URL source (tiffio's HTTP range reader) through the store, raw mode, pickling and from_tiff,
    against a real range server on 127.0.0.1."""
    import tiffio.dask as tdask
    from tests.support.rangeserver import RangeServer
    from tiffio.sources.http import close_idle_connections
    levels = _levels(PYRAMID)
    try:
        with RangeServer() as srv:
            srv.put_file("pyramid.tif", str(PYRAMID))
            url = srv.url("pyramid.tif")
            store = TiffStore(url)
            assert store.path == url and pickle.loads(pickle.dumps(store)) == store
            group = zarr.open_group(pickle.loads(pickle.dumps(store)), mode="r")
            for index, ref, _ in levels:
                assert numpy.array_equal(group[str(index)][:], ref)
            raw = zarr.open_array(TiffStore(url, level=1, decode="codec"), mode="r")
            assert numpy.array_equal(raw[:], levels[1][1])
            refs = TiffStore(url, level=0).to_references()["refs"]
            assert all(v[0] == url for k, v in refs.items() if k.startswith("c/"))
            arr = tdask.from_tiff(url, level=1, chunks=(64, 64))
            assert numpy.array_equal(arr.compute(scheduler="threads"), levels[1][1])
            assert all(r.status in (200, 206) for r in srv.log)
    finally:
        close_idle_connections()
