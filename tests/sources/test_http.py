"""HTTP(S) reading against a real range server on 127.0.0.1: request counts, round trips and
every misbehaviour the issue lists (no transport mocks)."""

from __future__ import annotations

import threading
from collections import Counter

import numpy
import pytest

import tiffio
from tests.support.rangeserver import RangeServer
from tests.support.tiffbuild import simple_image
from tiffio.sources import RemoteSource, open_url
from tiffio.sources.http import HTTPFetcher, _content_range, _retry_after


def _ranges(srv: RangeServer) -> list[str | None]:
    return [r.range for r in srv.requests()]


def test_open_is_one_round_trip_without_head(slow_server, writer_tif):
    server = slow_server
    server.put("a.tif", writer_tif.read_bytes())
    with tiffio.open(server.url("a.tif")) as tif:
        assert tif.ifds[0].shape == (2048, 2048, 3)
        assert sorted(_ranges(server)) == ["bytes=-262144", "bytes=0-65535"]
        assert server.requests("HEAD") == []
        assert server.round_trips() == 1
        assert tif.source.round_trips == 1 and tif.source.requests == 2
        assert tif.source.size == writer_tif.stat().st_size


def test_open_plus_tile_matches_local_within_three_round_trips(slow_server, writer_tif):
    server = slow_server
    server.put("a.tif", writer_tif.read_bytes())
    with tiffio.open(writer_tif) as local, tiffio.open(server.url("a.tif")) as tif:
        tile = tif.ifds[0].read_segment(27)
        numpy.testing.assert_array_equal(tile, local.ifds[0].read_segment(27))
        assert server.round_trips() <= 3
        assert server.bytes_sent() < 400_000
        assert tif.source.round_trips == server.round_trips()
        # the tile's bytes were fetched once, exactly
        offset, count = local.ifds[0].segment_location(27)
        assert _ranges(server).count(f"bytes={offset}-{offset + count - 1}") == 1


def test_small_object_is_served_from_the_open_round_trip(slow_server):
    server = slow_server
    data = simple_image(numpy.arange(64 * 64, dtype=numpy.uint16).reshape(64, 64), tile=(16, 16))
    server.put("s.tif", data)
    with tiffio.open(server.url("s.tif")) as tif:
        image = tif.ifds[0].asarray()
    numpy.testing.assert_array_equal(image, numpy.arange(64 * 64, dtype=numpy.uint16).reshape(64, 64))
    assert len(server.requests()) == 2 and server.round_trips() == 1  # everything was in the head


def _many_strips(n: int = 100_000) -> tuple[bytes, numpy.ndarray]:
    """A strip image whose offset and byte-count arrays (400 KB each) lie outside the
    64 KiB head and the 256 KiB tail."""
    image = (numpy.arange(n * 16) % 251).astype(numpy.uint8).reshape(n, 16)
    return simple_image(image, rows_per_strip=1), image


def test_strile_block_single_flight(server):
    data, image = _many_strips()
    server.put("m.tif", data)
    with tiffio.open(server.url("m.tif")) as tif:
        ifd = tif.ifds[0]
        server.reset_log()
        barrier = threading.Barrier(16)
        results: dict[int, tuple[int, int]] = {}

        def work(k: int) -> None:
            barrier.wait()
            results[k] = ifd.segment_location(5 + k)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        ranges = _ranges(server)
        assert len(ranges) == len(set(ranges)), f"a block was fetched twice: {Counter(ranges)}"
        assert len(ranges) <= 2  # the offsets block and the byte-counts block, once each
        for k in range(16):
            assert results[k][1] == 16
        numpy.testing.assert_array_equal(ifd.read_segment(99_000), image[99_000:99_001])


def test_read_ranges_plans_coalesces_and_never_fetches_twice(slow_server):
    server = slow_server
    payload = bytes(range(256)) * 4096  # 1 MiB
    server.put("r.bin", payload)
    source = open_url(server.url("r.bin"), max_gap=64 << 10)
    server.reset_log()
    ranges = [(300_000, 1000), (300_000, 1000), (301_010, 500), (0, 0), (600_000, 50), (700_000, 0), (1000, 10)]
    out = source.read_ranges(ranges)
    for (o, n), data in zip(ranges, out):
        assert bytes(data) == payload[o: o + n]
    # (1000, 10) is in the cached head; the two 300 000 ranges and the one 10 bytes after them
    # make one request; 600 000 is 299 KB away (over max_gap): its own request; sparse ones none
    assert sorted(_ranges(server)) == ["bytes=300000-301509", "bytes=600000-600049"]
    assert source.round_trips == 2 and server.round_trips() == 1 + 0  # the log was reset after open
    source.close()


def test_large_span_is_split_over_connections(slow_server):
    server = slow_server
    payload = numpy.random.default_rng(1).integers(0, 255, 3 << 20, dtype=numpy.uint8).tobytes()
    server.put("big.bin", payload)
    source = open_url(server.url("big.bin"), max_block=1 << 20)
    server.reset_log()
    (data,) = source.read_ranges([(100_000, 2_500_000)])
    assert bytes(data) == payload[100_000:2_600_000]
    assert len(server.requests()) == 3 and server.round_trips() == 1
    source.close()


def test_user_fetcher_protocol():
    payload = simple_image(numpy.arange(256, dtype=numpy.uint8).reshape(16, 16), tile=(16, 16))

    class BytesFetcher:  # the protocol a user implements: size and fetch(spans)
        def __init__(self, data: bytes) -> None:
            self.data = data
            self.size = len(data)
            self.calls: list[list[tuple[int, int]]] = []

        def fetch(self, spans):
            self.calls.append(list(spans))
            return [self.data[o: o + n] for o, n in spans]

    fetcher = BytesFetcher(payload)
    with tiffio.open(fetcher) as tif:
        numpy.testing.assert_array_equal(tif.ifds[0].asarray(), numpy.arange(256, dtype=numpy.uint8).reshape(16, 16))
        assert isinstance(tif.source, RemoteSource)
    assert fetcher.calls == [[(0, len(payload))]]  # the whole small file in the open round trip


# --- robustness -----------------------------------------------------------------------------------

def test_server_ignoring_range_is_aborted_not_buffered(server):
    big = b"II*\x00" + bytes(5 << 20)
    server.put("big.tif", big)
    server.ignore_range = True
    fetcher = HTTPFetcher(server.url("big.tif"))
    with pytest.raises(tiffio.SourceError, match="ignored the Range header"):
        RemoteSource(fetcher)
    assert fetcher.size is None  # nothing was accepted
    # a whole object no larger than what was asked for is fine
    small = simple_image(numpy.ones((8, 8), numpy.uint8))
    server.put("small.tif", small)
    with tiffio.open(server.url("small.tif")) as tif:
        numpy.testing.assert_array_equal(tif.ifds[0].asarray(), numpy.ones((8, 8), numpy.uint8))


def test_416_is_a_clear_error(server):
    server.put("empty.tif", b"")
    with pytest.raises(tiffio.SourceError, match="416"):
        tiffio.open(server.url("empty.tif"))
    server.put("a.bin", bytes(1000))
    fetcher = HTTPFetcher(server.url("a.bin"))
    fetcher.fetch_open(100, 100)
    with pytest.raises(tiffio.SourceError, match=r"416 range not satisfiable.*1000 bytes"):
        fetcher.fetch([(5000, 10)])


def test_429_and_503_are_retried_with_bounded_backoff(server):
    payload = bytes(range(256)) * 1024
    server.put("a.bin", payload)
    fetcher = HTTPFetcher(server.url("a.bin"), retry_backoff=0.001)
    fetcher.fetch_open(1024, 1024)
    server.faults = ["429", "503"]
    assert fetcher.fetch([(5000, 100)]) == [payload[5000:5100]]
    assert fetcher.retries == 2
    assert [r.status for r in server.requests()][-3:] == [429, 503, 206]
    server.reset_log()
    server.faults = ["503"] * 10
    limited = HTTPFetcher(server.url("a.bin"), retry_backoff=0.001, max_retries=2)
    with pytest.raises(tiffio.SourceError, match=r"HTTP 503.*gave up after 3 attempts"):
        limited.fetch([(0, 10)])
    assert len(server.requests()) == 3
    server.faults = []


def test_retry_after_and_content_range_parsing():
    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    assert 0 <= _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    assert _content_range("bytes 0-99/1234") == (0, 99, 1234)
    assert _content_range("bytes 0-99/*") == (0, 99, None)
    assert _content_range("items 0-1/2") is None


def test_redirect_is_followed_and_remembered(server, writer_tif):
    server.put("a.tif", writer_tif.read_bytes())
    with tiffio.open(server.url("redirect/a.tif")) as tif, tiffio.open(writer_tif) as local:
        numpy.testing.assert_array_equal(tif.ifds[0].read_segment(3), local.ifds[0].read_segment(3))
        statuses = [r.status for r in server.requests()]
        assert statuses.count(302) <= 2  # the two open requests at most; later ones go straight there
        assert all(r.path == "/a.tif" for r in server.requests() if r.status != 302)


def test_object_changing_under_us_is_a_source_error(server, writer_tif):
    data = writer_tif.read_bytes()
    server.put("a.tif", data)
    with tiffio.open(server.url("a.tif")) as tif:
        ifd = tif.ifds[0]
        ifd.read_segment(0)
        server.put("a.tif", data[:-1] + b"\x01")  # new ETag
        with pytest.raises(tiffio.SourceError, match="changed since it was opened"):
            ifd.read_segment(40)
        assert server.requests()[-1].status == 412


def test_short_reads_and_resets_are_retried(server):
    payload = bytes(range(256)) * 1024
    server.put("a.bin", payload)
    fetcher = HTTPFetcher(server.url("a.bin"), retry_backoff=0.001)
    fetcher.fetch_open(1024, 1024)
    server.faults = ["short"]
    assert fetcher.fetch([(10_000, 50_000)]) == [payload[10_000:60_000]]
    server.faults = ["reset"]
    assert fetcher.fetch([(70_000, 100)]) == [payload[70_000:70_100]]
    assert fetcher.retries + 0 >= 1
    server.faults = ["short"] * 10
    limited = HTTPFetcher(server.url("a.bin"), retry_backoff=0.001, max_retries=1)
    with pytest.raises(tiffio.SourceError, match="short read"):
        limited.fetch([(0, 20_000)])
    server.faults = []


def test_source_error_for_missing_object(server):
    with pytest.raises(tiffio.SourceError, match="404"):
        tiffio.open(server.url("nothing.tif"))


def test_reopen_uses_kept_metadata_and_checks_the_etag(slow_server, writer_tif):
    server = slow_server
    data = writer_tif.read_bytes()
    server.put("a.tif", data)
    url = server.url("a.tif")
    with tiffio.open(writer_tif) as local:
        expected = local.ifds[0].read_segment(30)
    with tiffio.open(url) as tif:
        tif.ifds[0].read_segment(30)
    server.reset_log()
    with tiffio.open(url) as tif:  # no round trip before the tile; the tile's request carries If-Match
        assert tif.source.reopened and tif.source.round_trips == 0
        numpy.testing.assert_array_equal(tif.ifds[0].read_segment(30), expected)
    assert len(server.requests()) == 1 and server.round_trips() == 1
    server.put("a.tif", data[:-1] + b"\x02")  # the object changes between opens
    with tiffio.open(url) as tif, pytest.raises(tiffio.SourceError, match="changed since it was opened"):
        tif.ifds[0].read_segment(31)
    with tiffio.open(url) as tif:  # the kept metadata was dropped: a normal open
        assert not tif.source.reopened
        numpy.testing.assert_array_equal(tif.ifds[0].read_segment(30), expected)
    with tiffio.open(url, metadata_cache=False) as tif:
        assert not tif.source.reopened


def test_presigned_url_keeps_its_query_and_never_sends_head(server, writer_tif):
    server.put("a.tif", writer_tif.read_bytes())
    url = server.url("a.tif") + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0123abcd"
    with tiffio.open(url) as tif, tiffio.open(writer_tif) as local:
        numpy.testing.assert_array_equal(tif.ifds[0].read_segment(40), local.ifds[0].read_segment(40))
    assert server.requests("HEAD") == []
    assert all(r.path.endswith("?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0123abcd")
               for r in server.requests())


def test_https(tmp_path, writer_tif):
    import shutil
    import ssl
    import subprocess
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a self-signed certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    srv = RangeServer({"a.tif": writer_tif.read_bytes()}).start(tls=(str(cert), str(key)))
    try:
        url = srv.url("a.tif")
        assert url.startswith("https://127.0.0.1:")
        with pytest.raises(tiffio.SourceError):  # an unknown certificate is refused
            tiffio.open(url, metadata_cache=False)
        context = ssl.create_default_context(cafile=str(cert))
        source = RemoteSource(HTTPFetcher(url, ssl_context=context), metadata_cache=False)
        with tiffio.open(source) as tif, tiffio.open(writer_tif) as local:
            numpy.testing.assert_array_equal(tif.ifds[0].read_region(100, 200, 600, 700),
                                             local.ifds[0].read_region(100, 200, 600, 700))
        source.close()
    finally:
        srv.stop()


def test_range_server_helper_answers_suffix_and_multipart_ranges(server):
    """The test server itself (tests/support/rangeserver.py): single, suffix, multipart, 416."""
    import http.client
    server.put("x.bin", bytes(range(100)))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        def get(rng: str) -> tuple[int, bytes, str]:
            conn.request("GET", "/x.bin", headers={"Range": rng})
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheader("Content-Type") or ""

        assert get("bytes=10-19")[:2] == (206, bytes(range(10, 20)))
        assert get("bytes=-5")[:2] == (206, bytes(range(95, 100)))
        status, body, ctype = get("bytes=0-1,50-51")
        assert status == 206 and ctype.startswith("multipart/byteranges")
        assert b"Content-Range: bytes 0-1/100" in body and b"Content-Range: bytes 50-51/100" in body
        assert bytes([50, 51]) in body
        assert get("bytes=200-300")[0] == 416
    finally:
        conn.close()
    assert server.connections == 1  # keep-alive: four requests, one connection


def test_http_through_fsspec_backend(server, writer_tif):
    pytest.importorskip("aiohttp")
    pytest.importorskip("fsspec")
    server.put("a.tif", writer_tif.read_bytes())
    with tiffio.open(server.url("a.tif"), backend="fsspec") as tif, tiffio.open(writer_tif) as local:
        from tiffio.sources.stores import FsspecFetcher
        assert isinstance(tif.source.fetcher, FsspecFetcher)
        numpy.testing.assert_array_equal(tif.ifds[0].read_region(0, 0, 700, 900), local.ifds[0].read_region(0, 0, 700, 900))
        ranges = [r.range for r in server.requests()]
        assert len(ranges) == len(set(ranges))  # planned by tiffio; fsspec's read-ahead never involved
