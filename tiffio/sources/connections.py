"""Keep-alive HTTP(S) connections of the standard-library fetcher (:mod:`.http`), pooled per
host and bounded: a request takes an idle connection of its host (one that has already carried
an answer first) or opens one, and gives it back, so a warm connection is reused whichever thread
runs the next request. Every ``recv`` of a response obeys its request's clock
(:class:`.deadlines.TimedReader`). Idle connections close at exit; a forked child forgets the
parent's (both would read answers off one TCP stream).
"""

from __future__ import annotations

import atexit
import http.client
import io
import os
import socket
import ssl
import threading
import urllib.parse
from typing import Any

from ..errors import SourceError
from .deadlines import RequestClock, TimedReader
from .iothreads import io_pool
from .urls import redact_url

__all__ = ["HostPool", "pool_for", "close_idle_connections"]


class _TimedResponse(http.client.HTTPResponse):
    """An HTTP response read through :class:`TimedReader`: every ``recv`` of its status line,
    headers and body obeys the request's clock."""

    def __init__(self, sock: socket.socket, *args: Any, clock: RequestClock | None = None, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp.close()  # the plain socket file HTTPResponse made: replaced by the timed one
        self.fp = io.BufferedReader(TimedReader(sock, clock), 1 << 16)


class _Timed:
    """Mixin of tiffio's connections: ``clock`` is the current request's (set before each use)."""

    clock: RequestClock | None = None

    def response_class(self, sock: socket.socket, *args: Any, **kwargs: Any) -> _TimedResponse:
        return _TimedResponse(sock, *args, clock=self.clock, **kwargs)


# response_class is a class in http.client and a factory method here (http.client only calls it)
class _Connection(_Timed, http.client.HTTPConnection):  # type: ignore[misc]
    pass


class _TLSConnection(_Timed, http.client.HTTPSConnection):  # type: ignore[misc]
    pass


class HostPool:
    """Keep-alive connections of one (scheme, host, port), at most ``limit`` in use.

    Two idle lists: ``idle`` holds connections that have carried an answer (warm: the server
    has finished its side of the handshake and TCP's window has grown), ``fresh`` the ones
    pre-connected in the background and never used. A request takes the most recently used
    warm connection first, then the oldest fresh one, and opens a new one only when both lists
    are empty: a just pre-connected socket may still be in the server's accept queue or
    handshake (TLS), so handing it to the next request would make that request wait while a
    warm connection sits idle.
    """

    def __init__(self, scheme: str, host: str, port: int, limit: int, connect_timeout: float,
                 context: ssl.SSLContext | None) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self.connect_timeout = connect_timeout
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
            return _TLSConnection(self.host, self.port, timeout=self.connect_timeout,
                                  context=self.context or ssl.create_default_context())
        return _Connection(self.host, self.port, timeout=self.connect_timeout)

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
            io_pool().submit(self._connect_idle)

    def _connect_idle(self) -> None:
        conn = self._new()  # counted by claim_prewarm; connect_timeout bounds the handshake
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


_POOLS: dict[tuple[str, str, int, int], HostPool] = {}
_POOLS_LOCK = threading.Lock()


def pool_for(url: str, limit: int, connect_timeout: float, context: ssl.SSLContext | None) -> HostPool:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"{redact_url(url)}: not an http(s) URL")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise SourceError(f"{redact_url(url)}: the port is not a number") from None
    key = (scheme, parts.hostname, port, id(context) if context is not None else 0)  # one pool per TLS setting
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = HostPool(scheme, parts.hostname, port, limit, connect_timeout, context)
        return pool


def close_idle_connections() -> None:
    """Close every pooled idle connection (also done at exit) and forget the hosts, so that the
    next open of a host connects (and pre-connects) afresh. Connections in use stay open."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()


def _forget_pools_after_fork() -> None:
    # a forked child must not use the parent's keep-alive sockets: both would read answers off
    # one TCP stream, each getting bytes meant for the other. Forgotten, not closed (closing
    # the child's copy of a descriptor leaves the parent's connection as it is, but there is
    # nothing to gain)
    global _POOLS_LOCK
    _POOLS.clear()
    _POOLS_LOCK = threading.Lock()


atexit.register(close_idle_connections)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_after_fork)
