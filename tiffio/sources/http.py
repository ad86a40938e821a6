"""HTTP(S) range fetcher on the standard library (``http.client``): no new dependency.

* Keep-alive connections, pooled per host and bounded (``max_connections``): a request takes
  an idle connection of its host (one that has already carried an answer first) or opens
  one, and gives it back. A pool rather than one connection per thread, so that a warm
  connection is reused whichever thread runs the next request (a new connection costs a
  round trip of its own, two with TLS). While the open's first request travels, the other
  connections are opened in the background (once per host).
* ``fetch_open`` asks for ``bytes=0-65535`` and ``bytes=-262144`` at once; the object's size
  comes from ``Content-Range``, so no HEAD request (presigned URLs refuse HEAD).
* The first ETag (else Last-Modified) is pinned: later requests send ``If-Match``; a 412,
  another ETag or another size is a clear :class:`~tiffio.SourceError` ("the object changed").
* Bodies are what was asked for, checked before a byte is used: ``Accept-Encoding: identity``
  is sent and any other ``Content-Encoding`` (or a transfer coding other than chunked) is
  refused (RFC 9110: a range of a gzip body is not a range of the file); a 206 must carry the
  ``Content-Range`` of exactly the span asked for, and ``Content-Length`` and the body must
  be that long, no byte more or less. A 200 to a Range request is used only when it is the
  whole object and no longer than the span (a small object); otherwise it is aborted before
  its body is read, never buffered.
* Credentials stay with their origin (what urllib3 and requests do): a redirect that changes
  scheme, host or port drops every header the caller passed (``Authorization``, ``Cookie``,
  ``Proxy-Authorization``, API keys...) and the credentials of ``user:password@``; a redirect
  from https to http is refused. ``user:password@`` becomes HTTP Basic authentication for its
  own origin, as curl (GDAL's /vsicurl/), requests and wget do (ignoring it would send the
  request unauthenticated and fail with a 401 that hides why); it never appears in messages,
  which show URLs through :func:`.urls.redact_url`.
* Every request has a deadline (:class:`.deadlines.Timeout`: connect, silence, total, speed
  floor) enforced on every ``recv``; errors say how many bytes arrived. 416 is an error naming
  the range; 401/403 and 404/410 are SourcePermissionError and SourceNotFoundError;
  429/500/502/503/504, dropped connections, short reads and silent servers are retried with
  exponential backoff honouring ``Retry-After``, within the deadline. Every loop is bounded.
* I/O threads are daemons (:mod:`.iothreads`): Ctrl-C always ends the process.
"""

from __future__ import annotations

import base64
import email.utils

# socket.getaddrinfo imports encodings.idna at the first connection (~3 ms, under the import
# lock, so every thread opening a connection waits for it): paid here, when the module is imported
import encodings.idna  # noqa: F401
import errno
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence

from ..errors import SourceError, SourceTimeoutError, TiffValueError
from .connections import HostPool, close_idle_connections, pool_for
from .deadlines import DEFAULT_TIMEOUT, RequestClock, Timeout, as_timeout
from .iothreads import io_pool, run_concurrently, wait
from .urls import origin, redact_text, redact_url, split_userinfo

__all__ = ["HTTPFetcher", "close_idle_connections", "run_concurrently"]

_RETRY_STATUS = frozenset((429, 500, 502, 503, 504))
_REDIRECT_STATUS = frozenset((301, 302, 303, 307, 308))
#: headers tiffio sets itself on every range request (a caller's copy is replaced)
_OWN_HEADERS = frozenset({"range", "if-match", "accept-encoding", "host", "connection", "content-length",
                          "transfer-encoding", "te"})


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


class _Stopped(Exception):
    """Internal: the request's clock stopped this attempt (``RequestClock.reason``)."""


class HTTPFetcher:
    """Range requests to one URL (plain or presigned) over pooled keep-alive connections.

    ``headers`` are sent with every request to the URL's origin (for example
    ``Authorization``; all of them dropped when a redirect leaves the origin). ``timeout``
    bounds every request (a :class:`~tiffio.sources.Timeout`, or a number of seconds for the
    whole request). ``max_retries`` bounds the retries of one request (429/5xx, resets, short
    reads, silence); ``retry_backoff`` is the first wait in seconds, doubled each time, at most
    ``max_retry_wait`` (also the cap on ``Retry-After``). While the open's requests travel,
    connections to the host are opened in the background up to ``prewarm`` (once per host).
    """

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None, max_connections: int = 8,
                 timeout: Timeout | float = DEFAULT_TIMEOUT, max_retries: int = 4, retry_backoff: float = 0.1,
                 max_retry_wait: float = 30.0, max_redirects: int = 5,
                 ssl_context: ssl.SSLContext | None = None, prewarm: int = 8) -> None:
        self.url = url  # as given (secrets included): the key of kept metadata; never shown
        self.name = redact_url(url)
        plain, user, password = split_userinfo(url)
        self._plain = plain
        self._current = plain  # where requests go; changed by redirects
        self._origin = origin(plain)
        self.headers: dict[str, str] = {}
        for key, value in (headers or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TiffValueError(f"{self.name}: HTTP headers must be str: str, not {key!r}: {type(value).__name__}")
            if key.lower() not in _OWN_HEADERS:
                self.headers[key] = value
        if user is not None and not any(k.lower() == "authorization" for k in self.headers):
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode("ascii")
            self.headers["Authorization"] = f"Basic {token}"
        self._credentials = True  # False once a redirect has left the origin: no caller header goes out
        self.max_connections = max(1, int(max_connections))
        self.timeout = as_timeout(timeout)
        self.max_retries = max(0, int(max_retries))
        self.retry_backoff = retry_backoff
        self.max_retry_wait = max_retry_wait
        self.max_redirects = max_redirects
        self.ssl_context = ssl_context
        self.size: int | None = None
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.prewarm = prewarm
        self.pins_etag = True  # every request after the first sends If-Match (RemoteSource may keep metadata)
        self.http_requests = 0  # requests sent, retries and redirects included
        self.retries = 0
        self._lock = threading.Lock()
        self._pool(plain)  # validates the URL

    def __repr__(self) -> str:
        return f"<HTTPFetcher {self.name!r}>"

    def _pool(self, url: str) -> HostPool:
        return pool_for(url, self.max_connections, self.timeout.connect, self.ssl_context)

    # --- the fetcher protocol ------------------------------------------------------------------
    def fetch_open(self, head: int, tail: int) -> tuple[int, bytes, bytes]:
        """The first ``head`` and last ``tail`` bytes and the size, in one round trip."""
        pool = self._pool(self._current)
        extra = pool.claim_prewarm(min(self.max_connections, self.prewarm), own=2)
        tail_part = io_pool().submit(self._open_part, ("tail", tail))
        if extra:  # while the open's two requests travel; started by an I/O thread, not this one
            io_pool().submit(pool.start_prewarm, extra)
        size_a, data_a = self._open_part(("head", head))
        size_b, data_b = wait(tail_part)
        if size_a != size_b:
            raise SourceError(f"{self.name}: the object changed while opening ({size_a} then {size_b} bytes)")
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
        """GET bytes [offset, offset+length) (or the last ``length`` bytes): (size, data), within
        the request's deadline. ``preconnected``: may use a connection opened in the background
        (see HostPool.acquire)."""
        what = f"bytes -{length} (the last {length})" if suffix else f"bytes {offset}-{offset + length - 1}"
        clock = RequestClock(self.timeout)
        redirects = 0
        attempt = 0
        fresh = False
        stale_retried = False
        last_problem = ""
        retry: _Retry | None
        while True:
            url = self._current
            pool = self._pool(url)
            remaining = clock.remaining()
            if remaining <= 0 or not pool.slots.acquire(timeout=min(remaining, 1e9)):
                raise self._timeout_error(clock, what, last_problem or "waiting for a free connection")
            try:
                conn, reused = pool.acquire(fresh, preconnected)
                keep = False
                clock.new_attempt()
                try:
                    status, result, location, keep = self._attempt(conn, url, offset, length, suffix, what, clock)
                finally:
                    conn.clock = None  # type: ignore[attr-defined]
                    pool.release(conn, keep)
            except _Stopped:
                if clock.reason != "silent" or clock.expired():
                    raise self._timeout_error(clock, what, last_problem) from None
                last_problem = f"{clock.explain()} after {clock.received} bytes"
                retry = _Retry(last_problem)
            except _Retry as exc:
                retry = exc
            else:
                retry = None
            finally:
                pool.slots.release()
            if retry is not None:
                if reused and not retry.fresh and not stale_retried:
                    # the server closed an idle keep-alive connection: once more at once, on a new one
                    stale_retried = fresh = True
                    continue
                if attempt >= self.max_retries:
                    raise SourceError(f"{self.name}: {what}: {retry} (gave up after {attempt + 1} attempts)") from None
                wait_for = self.retry_backoff * (2 ** attempt)
                if retry.wait is not None:
                    wait_for = max(wait_for, retry.wait)
                wait_for = min(wait_for, self.max_retry_wait)
                if wait_for >= clock.remaining():
                    raise self._timeout_error(clock, what, f"{retry}; the next attempt would start after it") \
                        from None
                time.sleep(wait_for)
                attempt += 1
                fresh = retry.fresh
                last_problem = str(retry)
                with self._lock:
                    self.retries += 1
                continue
            if status in _REDIRECT_STATUS:
                redirects += 1
                if redirects > self.max_redirects:
                    raise SourceError(f"{self.name}: more than {self.max_redirects} redirects")
                self._follow(url, location or "")
                fresh = False
                continue
            return result  # type: ignore[return-value]

    def _timeout_error(self, clock: RequestClock, what: str, problem: str) -> SourceTimeoutError:
        """The error of a request its clock stopped, saying why and how much of the last attempt's
        answer had arrived (body bytes, counted exactly)."""
        if not clock.reason:
            clock.reason = "deadline"
        if clock.body_size is not None:
            progress = f"{clock.body_got} of {clock.body_size} bytes had arrived"
        elif clock.received:
            progress = f"the answer's headers were incomplete ({clock.received} bytes)"
        else:
            progress = "no answer had arrived"
        earlier = f"; before that: {problem}" if problem else ""
        return SourceTimeoutError(errno.ETIMEDOUT, f"{self.name}: {what}: {clock.explain()}; {progress}{earlier}",
                                  self.name)

    def _follow(self, url: str, location: str) -> None:
        """Go to a redirect's target from now on: refused if it leaves http(s) or goes from https to
        http; leaving the origin drops the caller's headers (credentials stay with their origin)."""
        target, _user, _password = split_userinfo(urllib.parse.urljoin(url, location))
        scheme = urllib.parse.urlsplit(target).scheme.lower()
        if scheme not in ("http", "https"):
            raise SourceError(f"{self.name}: refusing a redirect to {redact_url(target)}: not http(s)")
        if origin(url)[0] == "https" and scheme == "http":
            raise SourceError(f"{self.name}: refusing a redirect from https to plain http ({redact_url(target)}): "
                              "the request and its credentials would travel unencrypted")
        with self._lock:
            if origin(target) != self._origin:
                self._credentials = False  # never again for this fetcher: requests, urllib3 and curl agree
            self._current = target

    def _attempt(self, conn: http.client.HTTPConnection, url: str, offset: int, length: int, suffix: bool,
                 what: str, clock: RequestClock) -> tuple[int, tuple[int, bytes] | None, str | None, bool]:
        """One request: (status, (size, data) or None, redirect location, connection reusable)."""
        headers = dict(self.headers) if self._credentials else {}
        headers["Range"] = f"bytes=-{length}" if suffix else f"bytes={offset}-{offset + length - 1}"
        headers["Accept-Encoding"] = "identity"  # a range of an encoded body is not a range of the file
        pinned = self.etag
        if pinned and not pinned.startswith("W/"):
            headers["If-Match"] = pinned
        with self._lock:
            self.http_requests += 1
        conn.clock = clock  # type: ignore[attr-defined]
        shown = self.name if url == self._plain else redact_url(url)
        try:
            if conn.sock is None:
                conn.timeout = clock.connect_wait()
                conn.connect()
                if conn.sock is not None:
                    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if conn.sock is not None:
                conn.sock.settimeout(max(0.001, min(clock.timeout.read, clock.remaining())))  # sending
            conn.request("GET", _target(url), headers=headers)
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            if clock.reason:
                raise _Stopped from None
            raise _Retry(f"connection lost ({type(exc).__name__})", fresh=False) from None
        except (OSError, http.client.HTTPException) as exc:
            if clock.reason:
                raise _Stopped from None
            if isinstance(exc, TimeoutError):
                if clock.expired():
                    clock.reason = "deadline"
                    raise _Stopped from None
                raise _Retry(f"no connection within {clock.timeout.connect:g} s (Timeout.connect)") from None
            if isinstance(exc, (ConnectionRefusedError, socket.gaierror, ssl.SSLCertVerificationError)):
                raise SourceError(f"{shown}: cannot connect: {redact_text(str(exc))}") from None
            raise _Retry(f"request failed: {type(exc).__name__}: {redact_text(str(exc))}") from None
        status = resp.status
        if status in _REDIRECT_STATUS:
            location = resp.getheader("Location")
            self._drain(resp, clock)
            if not location:
                raise SourceError(f"{shown}: redirect {status} without a Location")
            return status, None, location, not resp.will_close
        if status in _RETRY_STATUS:
            retry_after = _retry_after(resp.getheader("Retry-After"))
            self._drain(resp, clock)
            raise _Retry(f"HTTP {status} {resp.reason}", wait=retry_after)
        if status == 412:
            self._drain(resp, clock)
            raise SourceError(f"{shown}: the object changed since it was opened (ETag {pinned} no longer "
                              f"matches: HTTP 412); reopen it to read the new version")
        if status == 416:
            self._drain(resp, clock)
            total_text = (resp.getheader("Content-Range") or "").rpartition("/")[2].strip()
            size = f" (the server says the object has {total_text} bytes)" if total_text.isdigit() else ""
            raise SourceError(f"{shown}: {what}: HTTP 416 range not satisfiable{size}; "
                              "the object is shorter than the file's offsets, or it changed")
        if status not in (200, 206):
            body = self._drain(resp, clock, keep=512)
            text = f": {redact_text(body[:200].decode('utf-8', 'replace'))}" if body else ""
            message = f"{shown}: {what}: HTTP {status} {resp.reason}{text}"
            code = {401: errno.EACCES, 403: errno.EACCES, 404: errno.ENOENT, 410: errno.ENOENT}.get(status)
            raise SourceError(code, message, shown) if code else SourceError(message)
        self._check_coding(resp, shown, what)
        declared = resp.getheader("Content-Length")
        body_length = int(declared) if declared is not None and declared.strip().isdigit() else None
        if declared is not None and body_length is None:
            raise SourceError(f"{shown}: {what}: an unreadable Content-Length {declared!r}")
        if status == 200:
            if body_length is not None and (suffix or offset == 0) and body_length <= length:
                data = self._read_body(resp, body_length, what, clock)  # the whole object is what we asked for
                self._check_version(url, resp, body_length)
                return status, (body_length, data), None, not resp.will_close
            size_text = f" of {body_length} bytes" if body_length is not None else ""
            raise SourceError(f"{shown}: the server ignored the Range header ({what}) and started sending the "
                              f"whole object{size_text}; tiffio reads remote TIFFs only from servers that answer "
                              "range requests (HTTP 206); the request was aborted")
        rng = _content_range(resp.getheader("Content-Range"))
        if rng is None or rng[2] is None:
            raise SourceError(f"{shown}: {what}: a 206 answer without a usable Content-Range "
                              f"({resp.getheader('Content-Range')!r})")
        first, last, total = rng[0], rng[1], int(rng[2])
        expect_first = max(0, total - length) if suffix else offset
        expect_last = total - 1 if suffix else min(offset + length, total) - 1
        if first != expect_first or last != expect_last or last < first:
            raise SourceError(f"{shown}: {what}: the server sent bytes {first}-{last} of {total}, not the range "
                              "asked for")
        if body_length is not None and body_length != last - first + 1:
            raise SourceError(f"{shown}: {what}: Content-Range says {last - first + 1} bytes ({first}-{last}), "
                              f"Content-Length {body_length}")
        data = self._read_body(resp, last - first + 1, what, clock)
        self._check_version(url, resp, total)
        return status, (total, data), None, not resp.will_close

    @staticmethod
    def _check_coding(resp: http.client.HTTPResponse, shown: str, what: str) -> None:
        """Refuse a body that is not the bytes themselves (a content coding: RFC 9110 8.4 makes a
        range of a gzip body a range of the gzip stream; a transfer coding other than chunked)."""
        encoding = (resp.getheader("Content-Encoding") or "").strip().lower()
        if encoding not in ("", "identity"):
            raise SourceError(f"{shown}: {what}: the server answered with Content-Encoding {encoding!r} although "
                              "tiffio asked for identity (the bytes of an encoded body are not the file's bytes); "
                              "the answer was not used")
        transfer = [t.strip().lower() for t in (resp.getheader("Transfer-Encoding") or "").split(",") if t.strip()]
        if any(t not in ("chunked", "identity") for t in transfer):
            raise SourceError(f"{shown}: {what}: the server answered with Transfer-Encoding "
                              f"{resp.getheader('Transfer-Encoding')!r}; the answer was not used")

    def _read_body(self, resp: http.client.HTTPResponse, n: int, what: str, clock: RequestClock) -> bytes:
        """Exactly ``n`` bytes of body, and nothing after them."""
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        clock.body_size = n
        try:
            while got < n:
                try:
                    k = resp.readinto(view[got:])
                except http.client.IncompleteRead as exc:  # chunked: the bytes of this call are in exc.partial
                    got += len(exc.partial or b"")
                    k = 0
                if not k:
                    break
                got += k
            # a chunked or close-delimited body must end here; a Content-Length one was checked
            extra = resp.read(1) if got == n and (resp.chunked or resp.length is None) else b""
        except (OSError, http.client.HTTPException) as exc:
            clock.body_got = got
            if clock.reason:
                raise _Stopped from None
            raise _Retry(f"connection lost after {got} of {n} bytes ({type(exc).__name__})") from None
        finally:
            view.release()
        clock.body_got = got
        if got < n:
            if clock.reason:
                raise _Stopped from None
            raise _Retry(f"short read: {got} of {n} bytes")
        if extra:
            raise SourceError(f"{redact_url(self._current)}: {what}: the body is longer than the {n} bytes declared")
        return bytes(buf)

    @staticmethod
    def _drain(resp: http.client.HTTPResponse, clock: RequestClock, keep: int = 0) -> bytes:
        """Read a small error body so the connection can be reused (``resp.will_close`` says
        whether it can); a large one is not read. Returns the first ``keep`` bytes."""
        declared = resp.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) <= 65536:
            try:
                body = resp.read()
                if not clock.reason:
                    return body[:keep]
            except (OSError, http.client.HTTPException):
                pass
        resp.close()
        resp.will_close = True  # the connection is not reused (release closes it)
        return b""

    def _check_version(self, url: str, resp: http.client.HTTPResponse, size: int) -> None:
        etag = resp.getheader("ETag")
        modified = resp.getheader("Last-Modified")
        with self._lock:
            if self.size is None:
                self.size, self.etag, self.last_modified = size, etag, modified
                return
            known_size, known_etag, known_modified = self.size, self.etag, self.last_modified
        changed = size != known_size or (known_etag and etag and etag != known_etag) or \
            (not known_etag and known_modified and modified and modified != known_modified)
        if changed:
            raise SourceError(f"{redact_url(url)}: the object changed since it was opened (size {known_size} -> "
                              f"{size}, ETag {known_etag} -> {etag}, Last-Modified {known_modified} -> {modified}); "
                              "reopen it to read the new version")
