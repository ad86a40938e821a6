"""HTTP(S) range fetcher on the standard library (``http.client``): no new dependency.

* Keep-alive connections, pooled per host and bounded (``max_connections``): a request takes
  an idle connection of its host (one that has already carried an answer first) or opens
  one, and gives it back. A pool rather than one connection per thread, so that a warm
  connection is reused whichever thread runs the next request (a new connection costs a
  round trip of its own, two with TLS). While the open's first request travels, the other
  connections are opened in the background (once per host).
* ``fetch_open`` asks for ``bytes=0-65535`` and ``bytes=-262144`` at once; the object's size
  comes from ``Content-Range``, so no HEAD request (presigned URLs refuse HEAD).
* The first ETag is pinned: later requests send ``If-Match``; a 412, another ETag or another
  size is a clear :class:`~tiffio.SourceError` ("the object changed").
* A 200 answer to a Range request (a server that ignores Range) is aborted before its body is
  read, never buffered; 416 is an error naming the range; 429/500/502/503/504 are retried
  with exponential backoff honouring ``Retry-After``; redirects are followed (and remembered);
  short reads and connection resets are retried on a fresh connection. Every loop is bounded.
"""

from __future__ import annotations

import atexit
import email.utils

# socket.getaddrinfo imports encodings.idna at the first connection (~3 ms, under the import
# lock, so every thread opening a connection waits for it): paid here, when the module is imported
import encodings.idna  # noqa: F401
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import SourceError

__all__ = ["HTTPFetcher", "close_idle_connections"]

_RETRY_STATUS = frozenset((429, 500, 502, 503, 504))
_REDIRECT_STATUS = frozenset((301, 302, 303, 307, 308))
_IO_POOL: ThreadPoolExecutor | None = None
_IO_LOCK = threading.Lock()


def _io_pool() -> ThreadPoolExecutor:
    global _IO_POOL
    with _IO_LOCK:
        if _IO_POOL is None:
            _IO_POOL = ThreadPoolExecutor(32, thread_name_prefix="tiffio-io")
        return _IO_POOL


def run_concurrently(func: Any, items: Sequence[Any]) -> list[Any]:
    """``[func(item) for item in items]`` concurrently: the first item in the calling thread
    (no hand-off for it, and none at all for a single item), the others on tiffio's I/O
    threads. The first error is raised."""
    if len(items) == 1:
        return [func(items[0])]
    futures = [_io_pool().submit(func, item) for item in items[1:]]
    first = func(items[0])
    return [first, *(f.result() for f in futures)]


class _HostPool:
    """Keep-alive connections of one (scheme, host, port), at most ``limit`` in use.

    Two idle lists: ``idle`` holds connections that have carried an answer (warm: the server
    has finished its side of the handshake and TCP's window has grown), ``fresh`` the ones
    pre-connected in the background and never used. A request takes the most recently used
    warm connection first, then the oldest fresh one, and opens a new one only when both lists
    are empty: a just pre-connected socket may still be in the server's accept queue or
    handshake (TLS), so handing it to the next request would make that request wait while a
    warm connection sits idle.
    """

    def __init__(self, scheme: str, host: str, port: int, limit: int, timeout: float,
                 context: ssl.SSLContext | None) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self.timeout = timeout
        self.context = context
        self.slots = threading.BoundedSemaphore(limit)
        self.idle: list[http.client.HTTPConnection] = []
        self.fresh: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()
        self.opened = 0

    def acquire(self, fresh: bool = False, preconnected: bool = True) -> tuple[http.client.HTTPConnection, bool]:
        """A connection (and whether it was connected before); the caller holds a slot.
        ``fresh``: a new connection (a retry after the server closed an idle one);
        ``preconnected=False``: a warm one or a new one, never a pre-connected one (the open's
        own requests, counted by :meth:`claim_prewarm`: the host gets exactly ``want``)."""
        if not fresh:
            with self.lock:
                if self.idle:
                    return self.idle.pop(), True
                if self.fresh and preconnected:
                    return self.fresh.pop(0), True
        conn = self._new()
        with self.lock:
            self.opened += 1
        return conn, False

    def _new(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                               context=self.context or ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def claim_prewarm(self, want: int, own: int) -> int:
        """How many connections to open in the background so that the host has ``want`` once
        the caller's ``own`` requests (about to start) have their connections; counted now,
        so this happens once per host however many opens run."""
        with self.lock:
            own_new = max(0, own - len(self.idle))
            missing = max(0, want - self.opened - own_new)
            self.opened += missing
        return missing

    def start_prewarm(self, count: int) -> None:
        """Open ``count`` connections (claimed by :meth:`claim_prewarm`) on the I/O threads: their
        TCP (and TLS) handshakes overlap the open's round trip instead of adding one to the
        first wide read (a region's rows on several connections)."""
        for _ in range(count):
            _io_pool().submit(self._connect_idle)

    def _connect_idle(self) -> None:
        conn = self._new()  # counted by claim_prewarm
        try:
            conn.connect()
            if conn.sock is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            conn.close()
            return
        with self.lock:
            self.fresh.append(conn)

    def release(self, conn: http.client.HTTPConnection, reusable: bool) -> None:
        if reusable:
            with self.lock:
                self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        with self.lock:
            idle, self.idle, self.fresh = self.idle + self.fresh, [], []
        for conn in idle:
            conn.close()


_POOLS: dict[tuple[str, str, int, int], _HostPool] = {}
_POOLS_LOCK = threading.Lock()


def _pool_for(url: str, limit: int, timeout: float, context: ssl.SSLContext | None) -> _HostPool:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"{url}: not an http(s) URL")
    port = parts.port or (443 if scheme == "https" else 80)
    key = (scheme, parts.hostname, port, id(context) if context is not None else 0)  # one pool per TLS setting
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = _HostPool(scheme, parts.hostname, port, limit, timeout, context)
        return pool


def close_idle_connections() -> None:
    """Close every pooled idle connection (also done at exit) and forget the hosts, so that the
    next open of a host connects (and pre-connects) afresh. Connections in use stay open."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()


atexit.register(close_idle_connections)


def _target(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """'bytes 0-99/1234' -> (0, 99, 1234); total None for '*'."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        span, total = value[6:].split("/", 1)
        first, last = span.split("-", 1)
        return int(first), int(last), None if total.strip() == "*" else int(total)
    except ValueError:
        return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying (``wait`` seconds first)."""

    def __init__(self, message: str, wait: float | None = None, fresh: bool = True) -> None:
        super().__init__(message)
        self.wait = wait
        self.fresh = fresh


class HTTPFetcher:
    """Range requests to one URL (plain or presigned) over pooled keep-alive connections.

    ``headers`` are sent with every request (for example ``Authorization``; dropped when a
    redirect leaves the host). ``max_retries`` bounds the retries of one request (429/5xx,
    resets, short reads); ``retry_backoff`` is the first wait in seconds, doubled each time,
    at most ``max_retry_wait`` (also the cap on ``Retry-After``). While the open's requests
    travel, connections to the host are opened in the background up to ``prewarm`` (once per host).
    """

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None, max_connections: int = 8,
                 timeout: float = 30.0, max_retries: int = 4, retry_backoff: float = 0.1,
                 max_retry_wait: float = 30.0, max_redirects: int = 5,
                 ssl_context: ssl.SSLContext | None = None, prewarm: int = 8) -> None:
        self.url = url
        self.name = url
        self._current = url  # after redirects
        self.headers = dict(headers or {})
        self.max_connections = max(1, int(max_connections))
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.retry_backoff = retry_backoff
        self.max_retry_wait = max_retry_wait
        self.max_redirects = max_redirects
        self.ssl_context = ssl_context
        self.size: int | None = None
        self.etag: str | None = None
        self.prewarm = prewarm
        self.pins_etag = True  # every request after the first sends If-Match (RemoteSource may keep metadata)
        self.http_requests = 0  # requests sent, retries and redirects included
        self.retries = 0
        self._lock = threading.Lock()
        _pool_for(url, self.max_connections, timeout, ssl_context)  # validates the URL

    # --- the fetcher protocol ------------------------------------------------------------------
    def fetch_open(self, head: int, tail: int) -> tuple[int, bytes, bytes]:
        """The first ``head`` and last ``tail`` bytes and the size, in one round trip."""
        pool = _pool_for(self._current, self.max_connections, self.timeout, self.ssl_context)
        extra = pool.claim_prewarm(min(self.max_connections, self.prewarm), own=2)
        tail_part = _io_pool().submit(self._open_part, ("tail", tail))
        if extra:  # while the open's two requests travel; started by an I/O thread, not this one
            _io_pool().submit(pool.start_prewarm, extra)
        size_a, data_a = self._open_part(("head", head))
        size_b, data_b = tail_part.result()
        if size_a != size_b:
            raise SourceError(f"{self.url}: the object changed while opening ({size_a} then {size_b} bytes)")
        size = size_a
        if len(data_b) > size - len(data_a):  # the tail overlaps the head: keep only what is new
            data_b = data_b[len(data_b) - max(0, size - len(data_a)):]
        return size, data_a, data_b

    def fetch(self, spans: Sequence[tuple[int, int]]) -> list[bytes]:
        return run_concurrently(lambda span: self._get(span[0], span[1])[1], list(spans))

    def close(self) -> None:
        """Connections stay pooled for other sources of the same host; nothing to release."""

    # --- one request -----------------------------------------------------------------------------
    def _open_part(self, part: tuple[str, int]) -> tuple[int, bytes]:
        kind, n = part
        return self._get(0, n, suffix=kind == "tail", preconnected=False)

    def _get(self, offset: int, length: int, suffix: bool = False, preconnected: bool = True) -> tuple[int, bytes]:
        """GET bytes [offset, offset+length) (or the last ``length`` bytes): (size, data).
        ``preconnected``: may use a connection opened in the background (see _HostPool.acquire)."""
        what = f"bytes -{length} (the last {length})" if suffix else f"bytes {offset}-{offset + length - 1}"
        redirects = 0
        attempt = 0
        fresh = False
        stale_retried = False
        while True:
            url = self._current
            pool = _pool_for(url, self.max_connections, self.timeout, self.ssl_context)
            try:
                with pool.slots:
                    conn, reused = pool.acquire(fresh, preconnected)
                    keep = False
                    try:
                        status, result, location, keep = self._attempt(conn, url, offset, length, suffix, what)
                    finally:
                        pool.release(conn, keep)
            except _Retry as retry:
                if reused and not retry.fresh and not stale_retried:
                    # the server closed an idle keep-alive connection: once more at once, on a new one
                    stale_retried = fresh = True
                    continue
                if attempt >= self.max_retries:
                    raise SourceError(f"{url}: {what}: {retry} (gave up after {attempt + 1} attempts)") from None
                wait = self.retry_backoff * (2 ** attempt)
                if retry.wait is not None:
                    wait = max(wait, retry.wait)
                time.sleep(min(wait, self.max_retry_wait))
                attempt += 1
                fresh = retry.fresh
                with self._lock:
                    self.retries += 1
                continue
            if status in _REDIRECT_STATUS:
                redirects += 1
                if redirects > self.max_redirects:
                    raise SourceError(f"{self.url}: more than {self.max_redirects} redirects")
                target = urllib.parse.urljoin(url, location or "")
                if urllib.parse.urlsplit(target).netloc != urllib.parse.urlsplit(url).netloc:
                    self.headers.pop("Authorization", None)  # never hand credentials to another host
                self._current = target  # remembered: later requests go there directly
                fresh = False
                continue
            return result  # type: ignore[return-value]

    def _attempt(self, conn: http.client.HTTPConnection, url: str, offset: int, length: int, suffix: bool,
                 what: str) -> tuple[int, tuple[int, bytes] | None, str | None, bool]:
        """One request: (status, (size, data) or None, redirect location, connection reusable)."""
        headers = dict(self.headers)
        headers["Range"] = f"bytes=-{length}" if suffix else f"bytes={offset}-{offset + length - 1}"
        headers.setdefault("Accept-Encoding", "identity")
        pinned = self.etag
        if pinned and not pinned.startswith("W/"):
            headers["If-Match"] = pinned
        with self._lock:
            self.http_requests += 1
        try:
            if conn.sock is None:
                conn.connect()
                if conn.sock is not None:
                    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.request("GET", _target(url), headers=headers)
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            conn.close()
            raise _Retry(f"connection lost ({type(exc).__name__})", fresh=False) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            if isinstance(exc, (socket.timeout, TimeoutError)):
                raise _Retry(f"timed out after {self.timeout} s") from None
            if isinstance(exc, (ConnectionRefusedError, socket.gaierror, ssl.SSLCertVerificationError)):
                raise SourceError(f"{url}: cannot connect: {exc}") from None
            raise _Retry(f"request failed: {type(exc).__name__}: {exc}") from None
        status = resp.status
        if status in _REDIRECT_STATUS:
            location = resp.getheader("Location")
            self._drain(resp, conn)
            if not location:
                raise SourceError(f"{url}: redirect {status} without a Location")
            return status, None, location, not resp.will_close
        if status in _RETRY_STATUS:
            wait = _retry_after(resp.getheader("Retry-After"))
            self._drain(resp, conn)
            raise _Retry(f"HTTP {status} {resp.reason}", wait=wait)
        if status == 412:
            self._drain(resp, conn)
            raise SourceError(f"{url}: the object changed since it was opened (ETag {pinned} no longer "
                              f"matches: HTTP 412); reopen it to read the new version")
        if status == 416:
            self._drain(resp, conn)
            total_text = (resp.getheader("Content-Range") or "").rpartition("/")[2].strip()
            size = f" (the server says the object has {total_text} bytes)" if total_text.isdigit() else ""
            raise SourceError(f"{url}: {what}: HTTP 416 range not satisfiable{size}; "
                              "the object is shorter than the file's offsets, or it changed")
        if status == 200:
            declared = resp.getheader("Content-Length")
            whole = int(declared) if declared and declared.isdigit() else None
            if whole is not None and (suffix or offset == 0) and whole <= length:
                data = self._read_body(resp, conn, whole, what)  # the whole object is what we asked for
                self._check_version(url, resp, whole)
                return status, (whole, data), None, not resp.will_close
            conn.close()  # never read (let alone buffer) a whole object we did not ask for
            size_text = f" of {whole} bytes" if whole is not None else ""
            raise SourceError(f"{url}: the server ignored the Range header ({what}) and started sending the "
                              f"whole object{size_text}; tiffio reads remote TIFFs only from servers that answer "
                              "range requests (HTTP 206); the request was aborted")
        if status != 206:
            body = self._drain(resp, conn, keep=512)
            raise SourceError(f"{url}: {what}: HTTP {status} {resp.reason}"
                              + (f": {body[:200].decode('utf-8', 'replace')}" if body else ""))
        rng = _content_range(resp.getheader("Content-Range"))
        if rng is None or rng[2] is None:
            conn.close()
            raise SourceError(f"{url}: {what}: a 206 answer without a usable Content-Range "
                              f"({resp.getheader('Content-Range')!r})")
        first, last, total = rng[0], rng[1], int(rng[2])
        expect_first = max(0, total - length) if suffix else offset
        expect_last = total - 1 if suffix else min(offset + length, total) - 1
        if first != expect_first or last != expect_last:
            conn.close()
            raise SourceError(f"{url}: {what}: the server sent bytes {first}-{last} of {total}")
        data = self._read_body(resp, conn, last - first + 1, what)
        self._check_version(url, resp, total)
        return status, (total, data), None, not resp.will_close

    def _read_body(self, resp: http.client.HTTPResponse, conn: http.client.HTTPConnection, n: int, what: str) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        try:
            while got < n:
                k = resp.readinto(view[got:])
                if not k:
                    break
                got += k
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _Retry(f"connection lost after {got} of {n} bytes ({type(exc).__name__})") from None
        if got < n:
            conn.close()
            raise _Retry(f"short read: {got} of {n} bytes")
        return bytes(buf)

    @staticmethod
    def _drain(resp: http.client.HTTPResponse, conn: http.client.HTTPConnection, keep: int = 0) -> bytes:
        """Read a small error body so the connection can be reused; close it if the body is large."""
        declared = resp.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) <= 65536:
            try:
                return resp.read()[:keep]
            except (OSError, http.client.HTTPException):
                pass
        conn.close()
        return b""

    def _check_version(self, url: str, resp: http.client.HTTPResponse, size: int) -> None:
        etag = resp.getheader("ETag")
        with self._lock:
            if self.size is None:
                self.size, self.etag = size, etag
                return
            known_size, known_etag = self.size, self.etag
        if size != known_size or (known_etag and etag and etag != known_etag):
            raise SourceError(f"{url}: the object changed since it was opened (size {known_size} -> {size}, "
                              f"ETag {known_etag} -> {etag}); reopen it to read the new version")
