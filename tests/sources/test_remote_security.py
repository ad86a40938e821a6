"""Remote reads get exactly the bytes they asked for, and credentials never leave their origin.

Real servers on 127.0.0.1 (tests/support/rangeserver.py), lying on purpose: a gzip-encoded 206, a
shifted Content-Range, a Content-Length that disagrees, a longer body, an HTML page, a new
version of the object. Redirects between two servers on different ports (another origin), to
``localhost`` (another host name) and from https to http; the assertions are on what each
server received. Every secret of a URL (password, presigned signature) must be absent from
messages, reprs, warnings, tracebacks, ``TiffFile.name`` and the command line's output.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import numpy
import pytest

import tiffio
from tests.support.rangeserver import RangeServer
from tests.support.tiffbuild import Builder
from tiffio.sources import RemoteSource
from tiffio.sources.http import HTTPFetcher, close_idle_connections
from tiffio.sources.remote import clear_metadata_cache

REPO = Path(__file__).resolve().parents[2]
SECRETS = ("PW-s3cr3t", "SIG-aaa", "SIG-bbb", "SIG-ccc", "CRED-ddd", "TOKEN-eee", "SIG-fff", "T0KEN-auth", "C00KIE",
           "PROXY-pw", "K3Y-api")
SIGNED_QUERY = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=SIG-aaa&x-goog-signature=SIG-bbb&sig=SIG-ccc"
                "&X-Amz-Credential=CRED-ddd&x-amz-security-token=TOKEN-eee&Signature=SIG-fff&X-Amz-Expires=300")
#: what messages must show of SIGNED_QUERY: the names, every secret value REDACTED
SHOWN_QUERY = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=REDACTED&x-goog-signature=REDACTED&sig=REDACTED"
               "&X-Amz-Credential=REDACTED&x-amz-security-token=REDACTED&Signature=REDACTED&X-Amz-Expires=300")
CALLER_HEADERS = {"authorization": "Bearer T0KEN-auth", "Cookie": "session=C00KIE",
                  "Proxy-Authorization": "Basic PROXY-pw", "X-Api-Key": "K3Y-api"}


def _image() -> numpy.ndarray:
    rng = numpy.random.default_rng(22)
    return rng.integers(0, 255, (1024, 1024), dtype=numpy.uint8)


def _tile(index: int) -> numpy.ndarray:
    r, c = divmod(index, 16)
    return _image()[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64]


@pytest.fixture(scope="module")
def tiff_bytes(tmp_path_factory) -> bytes:
    """A 1024 x 1024 uint8 image in 64 x 64 uncompressed tiles (its IFD at the end): 1 MiB, so
    the tiles between the first 64 KiB and the last 256 KiB (which the open fetches) need
    requests of their own: tiles 20..180."""
    path = tmp_path_factory.mktemp("remote-security") / "a.tif"
    with tiffio.TiffWriter(path) as w:
        im = w.add_image((1024, 1024), "uint8", tile=(64, 64))
        image = _image()
        for r in range(16):
            for c in range(16):
                im.write_tile(r, c, image[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64])
    return path.read_bytes()


@pytest.fixture
def servers():
    """Two range servers on 127.0.0.1, on different ports (two origins)."""
    clear_metadata_cache()
    with RangeServer() as a, RangeServer() as b:
        yield a, b
    close_idle_connections()
    clear_metadata_cache()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a self-signed certificate)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def _assert_no_secret(text: str, where: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{where} shows {leaked}: {text!r}"


def _everything_shown(exc: BaseException) -> str:
    """The text a user sees of an exception: message, repr and the whole traceback with causes."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


# --- bodies are what was asked for ---------------------------------------------------------------------

def test_every_request_asks_for_identity_whatever_the_caller_sends(servers, tiff_bytes):
    a, _ = servers
    a.put("a.tif", tiff_bytes)
    with tiffio.open(a.url("a.tif"), headers={"Accept-Encoding": "gzip, br"}) as tif:
        numpy.testing.assert_array_equal(tif.ifds[0].read_region(0, 0, 1024, 1024), _image())
    assert a.requests() and all(r.header("Accept-Encoding") == "identity" for r in a.requests())


def test_gzip_encoded_range_is_refused_not_decoded_as_pixels(servers, tiff_bytes):
    a, _ = servers
    a.put("a.tif", tiff_bytes)
    with tiffio.open(a.url("a.tif")) as tif:
        ifd = tif.ifds[0]
        numpy.testing.assert_array_equal(ifd.read_segment(0), _tile(0))
        a.hostile = "gzip"
        for index in (30, 90, 150):
            with pytest.raises(tiffio.SourceError, match="Content-Encoding 'gzip'"):
                ifd.read_segment(index)
        with pytest.raises(tiffio.SourceError, match="Content-Encoding"):
            ifd.read_region(300, 300, 300, 300)
    a.hostile = "gzip"
    with pytest.raises(tiffio.SourceError, match="Content-Encoding"):
        tiffio.open(a.url("a.tif"), metadata_cache=False)


@pytest.mark.parametrize("mode, message", [("shifted", "not the range asked for"),
                                           ("length-1", "Content-Length"),
                                           ("longer", "longer than")])
def test_a_body_other_than_the_span_asked_for_is_refused(servers, tiff_bytes, mode, message):
    """Content-Range one byte off, a Content-Length that disagrees with it, a body one byte
    longer: each is refused before a byte is used, at once (no retry can make it right)."""
    a, _ = servers
    a.put("a.tif", tiff_bytes)
    with tiffio.open(a.url("a.tif")) as tif:
        ifd = tif.ifds[0]
        a.hostile = mode
        a.reset_log()
        with pytest.raises(tiffio.SourceError, match=message):
            ifd.read_segment(100)
        assert len(a.requests()) == 1
        a.hostile = None
        numpy.testing.assert_array_equal(ifd.read_segment(100), _tile(100))


def test_a_200_is_used_only_when_it_is_the_whole_object(servers, tiff_bytes):
    """A server that ignores Range: a small object whose whole body fits the span asked for
    is read (that 200 is exactly the bytes wanted); a larger one is aborted, never buffered."""
    a, _ = servers
    small = Builder()
    small_bytes = small.build(small.ifd([(256, 3, 4), (257, 3, 2), (258, 3, 8), (259, 3, 1), (262, 3, 1),
                                         (273, 4, 8 + 2 + 8 * 12 + 4), (278, 3, 2), (279, 4, 8)])) + bytes(range(8))
    a.put("small.tif", small_bytes)
    a.put("a.tif", tiff_bytes)
    a.ignore_range = True
    with tiffio.open(a.url("small.tif")) as tif:  # 118 bytes: both of the open's requests get all of them
        assert tif.ifds[0].asarray().tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(tiffio.SourceError, match="ignored the Range header"):
        tiffio.open(a.url("a.tif"))
    assert a.bytes_sent() < len(tiff_bytes) * 3  # the whole object's 200s were abandoned, not read


def test_an_html_page_is_not_a_tiff_and_the_error_names_the_url(servers):
    a, _ = servers
    a.hostile = "html"
    url = a.url("slide.tif") + "?" + SIGNED_QUERY
    with pytest.raises(tiffio.NotATiffError) as info:
        tiffio.open(url)
    text = str(info.value)
    assert a.url("slide.tif") + "?" + SHOWN_QUERY in text and "HTML" in text
    _assert_no_secret(_everything_shown(info.value), "NotATiffError")


def test_a_new_version_between_reads_is_an_error(servers, tiff_bytes):
    """The validator seen at open is pinned: a server that ignores If-Match, or sends only
    Last-Modified, cannot hand over bytes of another version of the object."""
    a, _ = servers
    changed = bytearray(tiff_bytes)
    changed[16:len(changed) // 2] = bytes(len(changed) // 2 - 16)  # same size, other pixels
    for validator in ("etag", "last-modified"):
        clear_metadata_cache()
        a.validator, a.ignore_if_match = validator, True
        a.put("a.tif", tiff_bytes)
        with tiffio.open(a.url("a.tif")) as tif:
            ifd = tif.ifds[0]
            numpy.testing.assert_array_equal(ifd.read_segment(50), _tile(50))
            a.put("a.tif", bytes(changed))
            with pytest.raises(tiffio.SourceError, match="changed since it was opened"):
                ifd.read_segment(60)


@pytest.mark.parametrize("backend", ["fsspec", "obstore"])
def test_store_backends_check_every_length(servers, tiff_bytes, backend):
    """obstore and fsspec move the bytes: tiffio checks that every span comes back exactly as long
    as asked (a short body is an error, never a tile decoded from too few bytes)."""
    a, _ = servers
    a.put("a.tif", tiff_bytes)
    if backend == "fsspec":
        pytest.importorskip("aiohttp")
        options = {"backend": "fsspec"}
    else:
        obstore_store = pytest.importorskip("obstore.store")
        options = {"store": obstore_store.HTTPStore.from_url(a.url("")[:-1], client_options={"allow_http": True})}
    with tiffio.open(a.url("a.tif"), **options) as tif:
        ifd = tif.ifds[0]
        numpy.testing.assert_array_equal(ifd.read_segment(40), _tile(40))
        a.hostile = "length-1"
        with pytest.raises(tiffio.SourceError):
            ifd.read_segment(100)


def test_fetch_open_answers_are_checked():
    """A fetcher whose fetch_open returns a tail of the wrong length is refused at open."""
    class Lying:
        def __init__(self, data: bytes) -> None:
            self.data, self.size = data, len(data)

        def fetch(self, spans):
            return [self.data[o:o + n] for o, n in spans]

        def fetch_open(self, head, tail):
            return self.size, self.data[:head], self.data[-tail:][:-1]  # one byte short

    blob = bytes(100_000)
    with pytest.raises(tiffio.SourceError, match="first ranges came back"):
        RemoteSource(Lying(blob))


# --- credentials stay with their origin -----------------------------------------------------------------

def _secret_headers_in(request) -> list[str]:
    found = []
    for name, value in (request.headers or {}).items():
        if name.lower() in ("authorization", "cookie", "proxy-authorization", "x-api-key") \
                or any(s in value for s in SECRETS):
            found.append(name)
    return found


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_cross_origin_redirect_drops_every_caller_header_and_userinfo(servers, tiff_bytes, host):
    """A's 302 sends the client to another origin (another port, or another host name): B
    receives neither the caller's headers (any spelling) nor the URL's user:password."""
    a, b = servers
    b.put("a.tif", tiff_bytes)
    a.redirects["a.tif"] = f"http://{host}:{b.port}/a.tif"
    url = a.url("a.tif").replace("http://", "http://reader:PW-s3cr3t@")
    with tiffio.open(url, headers=CALLER_HEADERS) as tif:
        numpy.testing.assert_array_equal(tif.ifds[0].read_region(0, 0, 1024, 1024), _image())
        _assert_no_secret(tif.name + repr(tif) + repr(tif.source) + repr(tif.source.fetcher), "names")
    first = a.requests()
    assert first and all(r.status == 302 for r in first)
    for r in first:  # the origin the caller named gets the credentials: its own headers and Basic auth
        assert r.header("Cookie") == "session=C00KIE" and r.header("X-Api-Key") == "K3Y-api"
        assert r.header("Authorization") == "Bearer T0KEN-auth"  # the caller's own wins over user:password
    assert b.requests() and all(not _secret_headers_in(r) for r in b.requests())


def test_userinfo_becomes_basic_auth_for_its_origin_only(servers, tiff_bytes):
    import base64
    a, b = servers
    b.put("a.tif", tiff_bytes)
    a.redirects["a.tif"] = f"http://127.0.0.1:{b.port}/a.tif"
    url = a.url("a.tif").replace("http://", "http://reader:PW-s3cr3t@")
    with tiffio.open(url) as tif:
        assert tif.ifds[0].shape == (1024, 1024)
        assert tif.name == a.url("a.tif").replace("http://", "http://reader:REDACTED@")
    expected = "Basic " + base64.b64encode(b"reader:PW-s3cr3t").decode()
    assert all(r.header("Authorization") == expected for r in a.requests())
    assert b.requests() and all(r.header("Authorization") is None for r in b.requests())


def test_same_origin_redirect_keeps_the_callers_headers(servers, tiff_bytes):
    a, _ = servers
    a.put("a.tif", tiff_bytes)
    with tiffio.open(a.url("redirect/a.tif"), headers={"X-Api-Key": "K3Y-api"}) as tif:
        numpy.testing.assert_array_equal(tif.ifds[0].read_segment(100), _tile(100))
    assert all(r.header("X-Api-Key") == "K3Y-api" for r in a.requests())


def test_https_to_http_redirect_is_refused_and_the_plain_server_gets_nothing(servers, tiff_bytes, certificate):
    _, plain = servers
    plain.put("a.tif", tiff_bytes)
    secure = RangeServer().start(tls=certificate)
    try:
        secure.redirects["a.tif"] = plain.url("a.tif")
        context = ssl.create_default_context(cafile=certificate[0])
        fetcher = HTTPFetcher(secure.url("a.tif"), headers=CALLER_HEADERS, ssl_context=context)
        with pytest.raises(tiffio.SourceError, match="refusing a redirect from https to plain http"):
            RemoteSource(fetcher, metadata_cache=False)
        assert secure.requests() and plain.requests(None) == []
        assert plain.connections == 0
    finally:
        secure.stop()


def test_redirect_to_another_scheme_is_refused(servers):
    a, _ = servers
    a.redirects["a.tif"] = "file:///etc/passwd"
    with pytest.raises(tiffio.SourceError, match="not http"):
        tiffio.open(a.url("a.tif"))


# --- secrets never shown --------------------------------------------------------------------------------

def test_redaction_of_userinfo_and_signatures():
    from tiffio.sources.urls import redact_text, redact_url
    url = "http://u:PW-s3cr3t@127.0.0.1:9/404.tif?" + SIGNED_QUERY
    assert redact_url(url) == "http://u:REDACTED@127.0.0.1:9/404.tif?" + SHOWN_QUERY  # names kept, any case
    assert redact_url("https://host/a.tif") == "https://host/a.tif"
    _assert_no_secret(redact_text(f"boom at {url} (sig=SIG-ccc)"), "redact_text")


def test_secrets_are_absent_from_errors_names_reprs_and_warnings(servers, tiff_bytes):
    a, _ = servers
    missing = a.url("missing.tif").replace("http://", "http://u:PW-s3cr3t@") + "?" + SIGNED_QUERY
    with pytest.raises(tiffio.SourceError) as info:
        tiffio.open(missing)
    assert isinstance(info.value, FileNotFoundError) and "404" in str(info.value) and "missing.tif" in str(info.value)
    _assert_no_secret(_everything_shown(info.value), "the 404 error")

    # a remote file with a duplicated tag and a strip cut by the end of the file: the lenient
    # warnings and the strict error name the URL, redacted
    builder = Builder()
    entries = [(256, 3, 2), (257, 3, 2), (258, 3, 8), (259, 3, 1), (262, 3, 1), (270, 2, "one"), (270, 2, "two"),
               (273, 4, 8 + 2 + 10 * 12 + 4 - 2), (278, 3, 2), (279, 4, 4)]  # the strip: the file's last 2 bytes
    data = builder.build(builder.ifd(entries))
    a.put("dup.tif", data)
    url = a.url("dup.tif").replace("http://", "http://u:PW-s3cr3t@") + "?" + SIGNED_QUERY
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tiffio.open(url) as tif:
            assert tif.ifds[0].get("ImageDescription") == "one"
            shown = [tif.name, repr(tif), repr(tif.source), repr(tif.source.fetcher)]
    shown_url = a.url("dup.tif").replace("http://", "http://u:REDACTED@") + "?" + SHOWN_QUERY
    messages = [str(w.message) for w in caught if issubclass(w.category, tiffio.TiffFormatWarning)]
    assert messages and all(m.startswith(shown_url + ": IFD 0") for m in messages)
    with pytest.raises(tiffio.TiffFormatError) as error:
        tiffio.open(url, strict=True)
    assert str(error.value).startswith(shown_url + ": IFD 0")
    for text in [*shown, *messages, _everything_shown(error.value)]:
        _assert_no_secret(text, "a name, repr, warning or error")


def test_zarr_and_dask_reprs_are_redacted(servers, tiff_bytes):
    pytest.importorskip("zarr")
    from tiffio.dask import TiffRegionArray
    from tiffio.zarr import TiffStore
    a, _ = servers
    a.put("a.tif", tiff_bytes)
    url = a.url("a.tif") + "?" + SIGNED_QUERY
    store = TiffStore(url)
    _assert_no_secret(repr(store), "TiffStore")
    assert store.path == url  # the real URL is kept to reopen it in other processes
    _assert_no_secret(repr(TiffRegionArray(url)), "TiffRegionArray")


def test_command_line_errors_are_redacted(servers):
    a, _ = servers
    url = a.url("missing.tif").replace("http://", "http://u:PW-s3cr3t@") + "?" + SIGNED_QUERY
    done = subprocess.run([sys.executable, "-m", "tiffio", "info", url], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode != 0 and "missing.tif" in done.stderr
    _assert_no_secret(done.stdout + done.stderr, "tiffio info")
