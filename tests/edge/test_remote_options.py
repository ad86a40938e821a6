"""The zarr store, the dask arrays and the xarray backend take tiffio.open's remote keywords
(``timeout=``, ``headers=``, ...): a chunk read from a stalled server ends with a
SourceTimeoutError inside its deadline instead of hanging the store or the task; the options
travel with the pickled object to other processes; credentials never share a cached file with
other credentials and never show in a repr.

Wall-clock bounds here are hang guards only, never performance assertions.
"""

from __future__ import annotations

import pickle
import time

import numpy
import pytest

import tiffio
from tests.support.remote import fresh_server, index_tiles_bytes
from tiffio._edge.filecache import clear_cache, open_cached
from tiffio.sources import Timeout

SECRET = "s3cr3t-api-key"


@pytest.fixture
def server():
    with fresh_server(hold_timeout=30.0) as srv:
        yield srv


@pytest.fixture(scope="module")
def tiled_bytes(tmp_path_factory) -> bytes:
    """16 MiB of uncompressed 256 x 256 tiles, tile (r, c) filled with r * 16 + c: far tiles
    need requests of their own (the source reads ahead and caches only near what was asked)."""
    return index_tiles_bytes(tmp_path_factory.mktemp("edge-remote") / "big.tif", 4096, 256)


def _stalls(call) -> tiffio.SourceError:
    started = time.monotonic()
    with pytest.raises(tiffio.SourceError) as info:
        call()
    assert isinstance(info.value, TimeoutError), repr(info.value)
    assert time.monotonic() - started < 30  # hang guard only: the deadline is 2 s
    return info.value


def test_zarr_store_chunk_from_a_silent_server_times_out(server, tiled_bytes):
    zarr = pytest.importorskip("zarr")
    from tiffio.zarr import TiffStore
    server.put("a.tif", tiled_bytes)
    timeout = Timeout(read=0.5, total=2)
    store = TiffStore(server.url("a.tif"), timeout=timeout, headers={"X-Api-Key": SECRET})
    arr = zarr.open_array(store, path="0", mode="r")
    assert arr[0:64, 0:64].tolist() == numpy.zeros((64, 64), numpy.uint8).tolist()
    assert store.tiff.source.fetcher.timeout == timeout
    assert server.requests()[-1].header("X-Api-Key") == SECRET
    assert SECRET not in repr(store)
    # the pickled store carries its options: the copy opens the URL with the same deadline
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store and copy.remote == store.remote
    server.hostile = "silent"
    _stalls(lambda: arr[2048:2304, 1024:1280])


def test_dask_array_task_from_a_silent_server_times_out(server, tiled_bytes):
    pytest.importorskip("dask.array")
    import dask

    from tiffio.dask import TiffRegionArray, from_tiff
    server.put("a.tif", tiled_bytes)
    timeout = Timeout(read=0.5, total=2)
    x = from_tiff(server.url("a.tif"), chunks=(512, 512), timeout=timeout)
    with dask.config.set(scheduler="synchronous"):
        assert int(x[:64, :64].sum()) == 0
    region = TiffRegionArray(server.url("a.tif"), timeout=timeout)
    copy = pickle.loads(pickle.dumps(region))
    assert copy.remote == {"timeout": timeout}
    clear_cache()
    assert copy.selection.keyframe.shape == (4096, 4096)  # reopened by the copy, with its own options
    assert open_cached(server.url("a.tif"), None, {"timeout": timeout}).source.fetcher.timeout == timeout
    server.hostile = "silent"
    with dask.config.set(scheduler="threads"):
        _stalls(lambda: x[2048:2560, 1024:1536].sum().compute())


def test_xarray_backend_passes_remote_keywords(server, tiled_bytes):
    xr = pytest.importorskip("xarray")
    server.put("a.tif", tiled_bytes)
    ds = xr.open_dataset(server.url("a.tif"), engine="tiffio", headers={"X-Api-Key": SECRET},
                         timeout=Timeout(read=0.5, total=2))
    assert int(ds["image"][0:64, 256:320].values.max()) == 1
    assert server.requests()[-1].header("X-Api-Key") == SECRET
    server.hostile = "silent"
    _stalls(lambda: ds["image"][2048:2304, 1024:1280].values)


def test_different_credentials_never_share_an_open_file(server, tiled_bytes):
    server.put("a.tif", tiled_bytes)
    url = server.url("a.tif")
    a = open_cached(url, None, {"headers": {"X-Api-Key": "alice"}})
    b = open_cached(url, None, {"headers": {"X-Api-Key": "bob"}})
    assert a is not b
    assert open_cached(url, None, {"headers": {"X-Api-Key": "alice"}}) is a


def test_remote_keywords_are_refused_for_local_files_and_unknown_names(tmp_path, tiled_bytes):
    from tiffio.dask import from_tiff
    from tiffio.zarr import TiffStore
    path = tmp_path / "local.tif"
    path.write_bytes(tiled_bytes)
    with pytest.raises(tiffio.TiffTypeError, match="options for remote sources"):
        from_tiff(path, timeout=5)
    with pytest.raises(tiffio.TiffTypeError, match="options for remote sources"):
        TiffStore(path, timeout=5).tiff  # noqa: B018 - the store opens its file on first use
