"""A real HTTP/1.1 range server on 127.0.0.1 for tests and benchmarks (no transport mocks).

Standard library only: ``ThreadingHTTPServer`` with keep-alive, single, suffix and
multipart ranges, 416, HEAD, ETag and If-Match (412). It logs every request (start and
end times, range, status, bytes, connection) and can add a delay per request (``rtt``)
and per new connection (``conn_rtt``), and misbehave on demand:

* ``faults``: a queue of per-request faults, consumed one per GET: ``"429"``/``"503"``
  (with ``Retry-After: 0``), ``"reset"`` (close the connection without answering),
  ``"short"`` (declare the full length, send half, close);
* ``hostile``: a fault applied to every GET while set (a lying or stalling server):
  ``"gzip"`` (a 206 whose body is the gzip of the range, ``Content-Encoding: gzip``),
  ``"shifted"`` (the bytes one past the range, with a matching ``Content-Range``),
  ``"length-1"`` (``Content-Length`` and body one byte short of the ``Content-Range``),
  ``"longer"`` (a chunked body one byte longer than the ``Content-Range``),
  ``"html"`` (200 with a small HTML page, as a login or error page),
  ``"trickle"`` (headers, then the body one byte every ``trickle_interval`` seconds, at most
  ``trickle_bytes`` bytes, then silence), ``"silent"`` (read the request, answer nothing);
  a stalled answer ends when the client closes the connection or after ``hold_timeout``;
* ``ignore_range = True``: answer 200 with the whole object (and record how much was sent);
* ``/redirect/NAME`` answers 302 to ``/NAME``; ``redirects[NAME] = location`` answers 302 to
  any location (another server, another scheme);
* ``validator``: ``"etag"`` (default), ``"last-modified"`` (a Last-Modified date per
  version, no ETag) or None; ``ignore_if_match = True`` answers whatever the client pins;
* ``put(name, data)`` replaces an object (new ETag): the object changes under the client;
* ``hold_until_connections = n``: answer nothing until n connections have been accepted
  (bounded by ``hold_timeout``; ``hold_timed_out`` says it ran out): shows whether a client
  opens connections while its first requests are still unanswered.

``conn_log`` records every accepted connection (id, client port, accepted, ready); each
request's headers are logged (``Request.headers``, as sent).
``round_trips()`` counts sequential round trips from the log: the longest chain of
requests each of which started after the previous one ended.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple


class Connection(NamedTuple):
    """One accepted TCP connection: its id (``Request.conn``), the client's port, when the
    server accepted it and when it was ready (after ``conn_rtt``)."""

    conn: int
    client_port: int
    accepted: float
    ready: float


class Request(NamedTuple):
    start: float
    end: float
    method: str
    path: str
    range: str | None
    status: int
    sent: int
    conn: int
    headers: dict[str, str] | None = None

    def header(self, name: str) -> str | None:
        """A request header by name, compared without regard to case."""
        for key, value in (self.headers or {}).items():
            if key.lower() == name.lower():
                return value
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a client opening 8 connections at once then
    # loses a SYN and waits a second for its retransmission. Real servers use 128 or more.
    request_queue_size = 128
    owner: RangeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # clients may abort
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else Nagle + delayed ACK add 40 ms between keep-alive requests
    server: _Server

    def setup(self) -> None:
        super().setup()
        owner = self.server.owner
        accepted = time.perf_counter()
        with owner.lock:
            owner.connections += 1
            self.conn_id = owner.connections
        if owner.conn_rtt:
            time.sleep(owner.conn_rtt)
        with owner.lock:
            owner.conn_log.append(Connection(self.conn_id, self.client_address[1], accepted, time.perf_counter()))

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        self._start = time.perf_counter()
        self._range = self.headers.get("Range")
        self._logged = False
        try:
            if owner.hold_until_connections:
                owner._hold()
            if owner.rtt:
                time.sleep(owner.rtt)
            self._respond(owner, head, self._range)
        finally:
            self._log(0, 0)

    def _log(self, status: int, sent: int) -> None:
        # logged before the answer is written: the client may act on it before this thread runs again
        if not self._logged:
            self._logged = True
            self.server.owner._log(Request(self._start, time.perf_counter(), self.command, self.path, self._range,
                                           status, sent, self.conn_id, dict(self.headers.items())))

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> tuple[int, int]:
        self._log(status, len(body))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)
        return status, len(body)

    def _stall(self, owner: RangeServer) -> None:
        """Wait, answering nothing more, until the client closes the connection or hold_timeout."""
        import select
        deadline = time.monotonic() + owner.hold_timeout
        while time.monotonic() < deadline:  # bounded
            ready, _, _ = select.select([self.connection], [], [], 0.05)
            if ready:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return  # the client closed
                except OSError:
                    return
                return  # the client sent something (another request): stop stalling
        self.close_connection = True

    def _respond(self, owner: RangeServer, head: bool, rng: str | None) -> tuple[int, int]:
        path = self.path.split("?", 1)[0]
        if path.startswith("/redirect/"):
            return self._send(302, {"Location": path[len("/redirect"):], "Content-Length": "0"})
        with owner.lock:
            location = owner.redirects.get(path.lstrip("/"))
        if location is not None:
            return self._send(302, {"Location": location, "Content-Length": "0"})
        hostile = owner.hostile if not head else None
        if hostile == "silent":
            self._log(0, 0)
            self._stall(owner)
            self.close_connection = True
            return 0, 0
        if hostile == "html":
            page = b"<!DOCTYPE html><html><body>Please log in</body></html>"
            return self._send(200, {"Content-Type": "text/html", "Content-Length": str(len(page))}, page)
        fault = owner._next_fault() if not head else None
        if fault == "reset":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return 0, 0
        if fault in ("429", "503"):
            return self._send(int(fault), {"Retry-After": "0", "Content-Length": "0"})
        with owner.lock:
            data = owner.objects.get(path.lstrip("/"))
        if data is None:
            return self._send(404, {"Content-Length": "0"})
        etag = owner._etag(data)
        match = self.headers.get("If-Match")
        if match is not None and match != etag and match != "*" and not owner.ignore_if_match:
            return self._send(412, {"Content-Length": "0", "ETag": etag})
        size = len(data)
        base = {"Accept-Ranges": "bytes", "Content-Type": "image/tiff"}
        if owner.validator == "etag":
            base["ETag"] = etag
        elif owner.validator == "last-modified":
            base["Last-Modified"] = owner._last_modified(etag)
        if rng is None or owner.ignore_range:
            if head:
                return self._send(200, {**base, "Content-Length": str(size)})
            return self._send(200, {**base, "Content-Length": str(size)}, data)
        spans = _parse_ranges(rng, size)
        if spans is None:
            return self._send(416, {**base, "Content-Range": f"bytes */{size}", "Content-Length": "0"})
        if len(spans) == 1:
            a, b = spans[0]
            body = data[a: b + 1]
            headers = {**base, "Content-Range": f"bytes {a}-{b}/{size}", "Content-Length": str(len(body))}
            if head:
                return self._send(206, headers)
            if hostile is not None:
                return self._hostile(owner, hostile, data, a, b, headers)
            if fault == "short":
                self._log(206, len(body) // 2)
                self.close_connection = True
                self.send_response(206)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                return 206, len(body) // 2
            return self._send(206, headers, body)
        boundary = "tiffio-range-boundary"
        parts = []
        for a, b in spans:
            parts.append(f"--{boundary}\r\nContent-Type: image/tiff\r\nContent-Range: bytes {a}-{b}/{size}\r\n\r\n".encode()
                         + data[a: b + 1] + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self._send(206, {"ETag": etag, "Content-Type": f"multipart/byteranges; boundary={boundary}",
                                "Content-Length": str(len(body))}, b"" if head else body)


    def _hostile(self, owner: RangeServer, hostile: str, data: Any, a: int, b: int,
                 headers: dict[str, str]) -> tuple[int, int]:
        size = len(data)
        body = bytes(data[a: b + 1])
        if hostile == "gzip":
            import gzip
            packed = gzip.compress(body)
            return self._send(206, {**headers, "Content-Encoding": "gzip", "Content-Length": str(len(packed))}, packed)
        if hostile == "shifted":
            a2, b2 = min(a + 1, size - 1), min(b + 1, size - 1)
            shifted = bytes(data[a2: b2 + 1])
            return self._send(206, {**headers, "Content-Range": f"bytes {a2}-{b2}/{size}",
                                    "Content-Length": str(len(shifted))}, shifted)
        if hostile == "length-1":
            return self._send(206, {**headers, "Content-Length": str(len(body) - 1)}, body[:-1])
        if hostile == "longer":
            longer = body + b"\0"
            chunked = f"{len(longer):x}\r\n".encode() + longer + b"\r\n0\r\n\r\n"
            del headers["Content-Length"]
            self._log(206, len(longer))
            self.send_response(206)
            for k, v in {**headers, "Transfer-Encoding": "chunked"}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(chunked)
            return 206, len(longer)
        if hostile == "trickle":
            self._log(206, 0)
            self.close_connection = True
            self.send_response(206)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.flush()
            deadline = time.monotonic() + owner.hold_timeout
            sent = 0
            while sent < min(len(body), owner.trickle_bytes) and time.monotonic() < deadline:  # bounded
                try:
                    self.wfile.write(body[sent: sent + 1])
                    self.wfile.flush()
                except OSError:
                    return 206, sent  # the client gave up
                sent += 1
                with owner.lock:
                    owner.trickled += 1
                time.sleep(owner.trickle_interval)
            self._stall(owner)
            return 206, sent
        raise AssertionError(f"unknown hostile mode {hostile!r}")


def _parse_ranges(value: str, size: int) -> list[tuple[int, int]] | None:
    """'bytes=0-99,-500' -> inclusive spans; None if none is satisfiable (416)."""
    if not value.startswith("bytes="):
        return None
    spans = []
    for part in value[6:].split(","):
        first, _, last = part.strip().partition("-")
        if first == "":
            n = int(last)
            if n <= 0:
                continue
            spans.append((max(0, size - n), size - 1))
            continue
        a = int(first)
        b = size - 1 if last == "" else min(int(last), size - 1)
        if a < size and a <= b:
            spans.append((a, b))
    return spans or None


class RangeServer:
    """Serve ``objects`` (name -> bytes) on 127.0.0.1; use as a context manager."""

    def __init__(self, objects: dict[str, bytes] | None = None, *, rtt: float = 0.0, conn_rtt: float = 0.0) -> None:
        self.objects: dict[str, Any] = dict(objects or {})
        self._etags: dict[int, tuple[Any, str]] = {}
        self.rtt = rtt
        self.conn_rtt = conn_rtt
        self.faults: list[str] = []
        self.hostile: str | None = None
        self.trickle_interval = 0.2
        self.trickle_bytes = 1 << 30
        self.trickled = 0  # body bytes sent by "trickle" answers
        self.redirects: dict[str, str] = {}
        self.validator: str | None = "etag"
        self.ignore_if_match = False
        self._modified: dict[str, str] = {}
        self.ignore_range = False
        #: hold every answer until this many connections have been accepted (at most
        #: ``hold_timeout`` seconds; then ``hold_timed_out`` is set and the answer goes out)
        self.hold_until_connections = 0
        self.hold_timeout = 5.0
        self.hold_timed_out = False
        self.log: list[Request] = []
        self.conn_log: list[Connection] = []  # every accepted connection (reset_log clears it)
        self.connections = 0
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def put(self, name: str, data: bytes) -> None:
        with self.lock:
            self.objects[name] = bytes(data)

    def put_file(self, name: str, path: str) -> None:
        """Serve a file from disk without loading it (a read-only memory map)."""
        import mmap
        with open(path, "rb") as fh:
            self.put_mapped(name, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))

    def put_mapped(self, name: str, data: Any) -> None:
        with self.lock:
            self.objects[name] = data
            # a fresh ETag per put (hashing a mapped file would read all of it)
            self._etags[id(data)] = (data, f'"{uuid.uuid4().hex}"')

    def _etag(self, data: Any) -> str:
        key = id(data)
        tag = self._etags.get(key)
        if tag is None or tag[0] is not data:
            tag = self._etags[key] = (data, '"' + hashlib.md5(data).hexdigest() + '"')  # content-based
        return tag[1]

    def _last_modified(self, etag: str) -> str:
        """A Last-Modified date per object version (one second later for each new version)."""
        import email.utils
        with self.lock:
            if etag not in self._modified:
                self._modified[etag] = email.utils.formatdate(1_700_000_000 + len(self._modified), usegmt=True)
            return self._modified[etag]

    def url(self, name: str) -> str:
        assert self._server is not None
        scheme = "https" if hasattr(self._server.socket, "context") else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}/{name}"

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def _hold(self) -> None:
        deadline = time.monotonic() + self.hold_timeout
        while time.monotonic() < deadline:  # bounded
            with self.lock:
                if self.connections >= self.hold_until_connections:
                    return
            time.sleep(0.002)
        with self.lock:
            self.hold_timed_out = True

    def _next_fault(self) -> str | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def _log(self, req: Request) -> None:
        with self.lock:
            self.log.append(req)

    def reset_log(self) -> None:
        with self.lock:
            self.log = []
            self.conn_log = []

    def requests(self, method: str | None = "GET") -> list[Request]:
        with self.lock:
            return [r for r in self.log if method is None or r.method == method]

    def bytes_sent(self) -> int:
        return sum(r.sent for r in self.requests(None))

    def round_trips(self) -> int:
        """The longest chain of requests each starting after the previous one ended."""
        reqs = sorted(self.requests(None), key=lambda r: r.start)
        depth: list[int] = []
        for i, r in enumerate(reqs):
            depth.append(1 + max((depth[j] for j in range(i) if reqs[j].end <= r.start), default=0))
        return max(depth, default=0)

    def start(self, tls: tuple[str, str] | None = None) -> RangeServer:
        """Listen on 127.0.0.1 (an ephemeral port); ``tls=(certfile, keyfile)`` serves HTTPS."""
        server = _Server(("127.0.0.1", 0), _Handler)
        if tls is not None:
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RangeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
