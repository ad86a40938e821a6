"""s3:// through obstore and fsspec (s3fs) against a real S3 API server: moto_server as a
subprocess on 127.0.0.1, started and stopped by the fixture."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy
import pytest

import tiffio

BUCKET = "tiles"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto(writer_tif):
    exe = shutil.which("moto_server")
    if exe is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]', in the test extra)")
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):  # a hang detector only: moto_server's imports take > 20 s on a loaded machine
            try:
                urllib.request.urlopen(endpoint + "/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"moto_server exited with {proc.returncode}")
                time.sleep(0.1)
        else:
            pytest.fail("moto_server did not start within 120 s")
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                              region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="slides/a.tif", Body=writer_tif.read_bytes())
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


def _obstore_options(endpoint: str) -> dict:
    return {"endpoint": endpoint, "access_key_id": "test", "secret_access_key": "test", "region": "us-east-1",
            "virtual_hosted_style_request": False, "client_options": {"allow_http": True}}


def _check(tif, local) -> None:
    ifd, lifd = tif.ifds[0], local.ifds[0]
    assert ifd.shape == lifd.shape
    numpy.testing.assert_array_equal(ifd.read_segment(20), lifd.read_segment(20))
    numpy.testing.assert_array_equal(ifd.read_region(300, 300, 1024, 1024), lifd.read_region(300, 300, 1024, 1024))


def test_s3_through_obstore(moto, writer_tif):
    pytest.importorskip("obstore")
    with tiffio.open(writer_tif) as local, \
            tiffio.open(f"s3://{BUCKET}/slides/a.tif", storage_options=_obstore_options(moto)) as tif:
        from tiffio.sources.stores import ObstoreFetcher
        assert isinstance(tif.source.fetcher, ObstoreFetcher)
        assert tif.source.round_trips == 1 and tif.source.requests == 2  # head + tail, no HEAD
        _check(tif, local)
        # open (1) + tile 20 (1) + the region's tiles (1): the IFDs and strile arrays came with the open
        assert tif.source.round_trips == 3


def test_s3_object_replaced_while_open_is_a_source_error(moto, writer_tif):
    pytest.importorskip("obstore")
    boto3 = pytest.importorskip("boto3")
    client = boto3.client("s3", endpoint_url=moto, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
    data = writer_tif.read_bytes()
    client.put_object(Bucket=BUCKET, Key="slides/b.tif", Body=data)
    with tiffio.open(f"s3://{BUCKET}/slides/b.tif", storage_options=_obstore_options(moto)) as tif:
        tif.ifds[0].read_segment(20)
        client.put_object(Bucket=BUCKET, Key="slides/b.tif", Body=data[:-1] + b"\x03")
        with pytest.raises(tiffio.SourceError, match="changed since it was opened"):
            tif.ifds[0].read_segment(30)


def test_s3_through_fsspec(moto, writer_tif):
    pytest.importorskip("s3fs")
    options = {"key": "test", "secret": "test", "client_kwargs": {"endpoint_url": moto, "region_name": "us-east-1"}}
    with tiffio.open(writer_tif) as local, \
            tiffio.open(f"s3://{BUCKET}/slides/a.tif", backend="fsspec", storage_options=options) as tif:
        from tiffio.sources.stores import FsspecFetcher
        assert isinstance(tif.source.fetcher, FsspecFetcher)
        _check(tif, local)
        assert tif.source.round_trips == 3  # (+ fsspec's own info() request at open)


def test_missing_object_is_a_source_error(moto):
    pytest.importorskip("obstore")
    with pytest.raises(tiffio.SourceError):
        tiffio.open(f"s3://{BUCKET}/nothing.tif", storage_options=_obstore_options(moto))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
