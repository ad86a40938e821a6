"""How long a remote read may take: :class:`Timeout`, and the clock that enforces it on a socket.

A per-operation socket timeout alone never ends a read from a server that trickles one byte
every few seconds (urllib3's documentation says as much), so a remote request has three bounds,
as GDAL's /vsicurl/ (curl's CURLOPT_TIMEOUT and LOW_SPEED_LIMIT/TIME) and aiohttp have:

* ``connect``: seconds to open a connection (TCP, and TLS's handshake);
* ``read``: seconds without a single byte from the server (a silent server);
* ``total``: seconds for the whole request - connecting, waiting, reading, its retries and
  redirects - after which it is abandoned whatever the server does (a trickling server);
* ``low_speed`` bytes per second over windows of ``low_speed_time`` seconds, from the first
  byte of the answer: a server slower than that is abandoned before ``total``.

:class:`RequestClock` carries one request's bounds; :class:`TimedReader` is the raw stream
under ``http.client``'s response that applies them to every ``recv`` (status line, headers and
body alike) and counts the bytes that arrived, so an error can say exactly how many did.
"""

from __future__ import annotations

import io
import math
import socket
import time
from dataclasses import dataclass
from typing import Any

from ..errors import TiffTypeError, TiffValueError

__all__ = ["Timeout", "DEFAULT_TIMEOUT", "as_timeout", "RequestClock", "TimedReader"]


@dataclass(frozen=True)
class Timeout:
    """Bounds of every remote request, in seconds (``low_speed`` in bytes per second).

    Pass it, or a number, as ``tiffio.open(url, timeout=...)``: a number ``t`` means
    ``Timeout(total=t)`` with ``connect`` and ``read`` no longer than ``t``. ``total=None``
    removes the overall deadline and ``low_speed=0`` the speed floor (not recommended: a
    trickling server then keeps a read waiting as long as it likes).
    """

    connect: float = 10.0
    read: float = 30.0
    total: float | None = 120.0
    low_speed: float = 1024.0
    low_speed_time: float = 30.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total", "low_speed", "low_speed_time"):
            value = getattr(self, name)
            if value is None and name == "total":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise TiffTypeError(f"Timeout.{name} must be a number of seconds, not {value!r}")
            if value < 0 or (value == 0 and name in ("connect", "read", "total", "low_speed_time")):
                raise TiffValueError(f"Timeout.{name} must be positive, not {value!r}")

    def describe(self) -> str:
        total = "none" if self.total is None else f"{self.total:g} s"
        return (f"connect {self.connect:g} s, read {self.read:g} s, total {total}, "
                f"at least {self.low_speed:g} bytes/s over {self.low_speed_time:g} s")


DEFAULT_TIMEOUT = Timeout()


def as_timeout(value: Any) -> Timeout:
    """``value`` (a :class:`Timeout`, or a number of seconds for the whole request) as a Timeout."""
    if isinstance(value, Timeout):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TiffTypeError(f"timeout must be a number of seconds or a tiffio.sources.Timeout, not {value!r}")
    if not value > 0:
        raise TiffValueError(f"timeout must be a positive number of seconds, not {value!r}")
    seconds = float(value)
    return Timeout(connect=min(DEFAULT_TIMEOUT.connect, seconds), read=min(DEFAULT_TIMEOUT.read, seconds),
                   total=seconds, low_speed_time=min(DEFAULT_TIMEOUT.low_speed_time, seconds))


class RequestClock:
    """The bounds of one request (with its retries): a monotonic deadline, the silence allowed
    per ``recv``, the speed floor, and why the request was stopped (``reason``, None while it
    runs). Also counts the bytes received by the current attempt (``received``: status line,
    headers and body) and, once its body is being read, how many of its bytes arrived
    (``body_got`` of ``body_size``)."""

    __slots__ = ("timeout", "start", "deadline", "reason", "received", "body_size", "body_got", "_window_start",
                 "_window_bytes")

    def __init__(self, timeout: Timeout) -> None:
        self.timeout = timeout
        self.start = time.monotonic()
        self.deadline = math.inf if timeout.total is None else self.start + timeout.total
        self.reason: str | None = None
        self.received = 0
        self.body_size: int | None = None  # the body the current attempt reads, once known
        self.body_got = 0
        self._window_start = 0.0
        self._window_bytes = 0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def new_attempt(self) -> None:
        self.reason = None
        self.received = 0
        self.body_size = None
        self.body_got = 0
        self._window_start = 0.0
        self._window_bytes = 0

    def connect_wait(self) -> float:
        """Seconds a connect may take now (at least 1 ms: a socket timeout of 0 means non-blocking)."""
        return max(0.001, min(self.timeout.connect, self.remaining()))

    def recv_wait(self) -> float:
        """Seconds the next ``recv`` may wait, or 0 when the request must stop (``reason`` set)."""
        if self.reason is not None:
            return 0.0
        remaining = self.remaining()
        if remaining <= 0:
            self.reason = "deadline"
            return 0.0
        return min(self.timeout.read, remaining)

    def silent(self, waited: float) -> None:
        """A ``recv`` waited ``waited`` seconds for nothing."""
        self.reason = "deadline" if waited < self.timeout.read else "silent"

    def got(self, n: int) -> None:
        """``n`` bytes arrived: counted, and the speed floor checked once per window."""
        self.received += n
        timeout = self.timeout
        if not timeout.low_speed or not n:
            return
        now = time.monotonic()
        if not self._window_start:
            self._window_start = now  # the floor applies from the answer's first byte
            self._window_bytes = n
            return
        self._window_bytes += n
        elapsed = now - self._window_start
        if elapsed >= timeout.low_speed_time:
            if self._window_bytes < timeout.low_speed * elapsed:
                self.reason = "slow"
            self._window_start, self._window_bytes = now, 0

    def explain(self) -> str:
        """Why the request was stopped, for a message."""
        t = self.timeout
        if self.reason == "silent":
            return f"the server sent nothing for {t.read:g} s (Timeout.read)"
        if self.reason == "slow":
            return (f"the server sent less than {t.low_speed:g} bytes/s over {t.low_speed_time:g} s "
                    "(Timeout.low_speed)")
        total = "none" if t.total is None else f"{t.total:g} s"
        return f"the request passed its deadline of {total} (Timeout.total)"


class TimedReader(io.RawIOBase):
    """The raw byte stream of one HTTP response: every ``recv`` waits at most what ``clock``
    allows; when a bound is passed, the stream ends (``readinto`` returns 0) and ``clock.reason``
    says why, so the reader's count of bytes received stays exact (an exception raised in the
    middle of a buffered read would lose the bytes of that call)."""

    def __init__(self, sock: socket.socket, clock: RequestClock | None) -> None:
        super().__init__()
        self._sock = sock
        self._clock = clock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        clock = self._clock
        if clock is None:  # pragma: no cover - every request sets its clock
            return self._sock.recv_into(buffer)
        wait = clock.recv_wait()
        if wait <= 0:
            return 0
        self._sock.settimeout(wait)
        try:
            n = self._sock.recv_into(buffer)
        except TimeoutError:  # socket.timeout
            clock.silent(wait)
            return 0
        clock.got(n)
        return n
