"""The byte-source contract (positional reads, no shared position).

A source answers ``read_range(offset, size)`` with positional reads, so one source
serves many threads at once. Every source counts its requests, bytes and sequential
round trips, which the tests and benchmarks use to prove that reads are lazy.

``read_range`` returns at most ``size`` bytes: fewer only when the range passes the
end of the source. Callers that need every byte use :func:`require_range`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ..errors import TiffUsageError, TruncatedError

__all__ = ["ByteSource", "require_range"]


class ByteSource:
    """Base class: positional reads plus request/byte counters."""

    size: int
    name: str = "<source>"

    def __init__(self) -> None:
        self.requests = 0
        self.bytes_read = 0
        self.closed = False
        self._count_lock = threading.Lock()

    def _count(self, n: int) -> None:
        # no lock on the hot path: exact for one thread, approximate under concurrent reads
        self.requests += 1
        self.bytes_read += n

    #: True for sources where a request costs a network round trip (tiffio.sources.remote)
    remote = False

    @property
    def round_trips(self) -> int:
        """Sequential round trips: for local sources every request is one."""
        return self.requests

    def reset_counters(self) -> None:
        with self._count_lock:
            self.requests = 0
            self.bytes_read = 0

    def _check_open(self) -> None:
        if self.closed:
            raise TiffUsageError(f"{self.name}: the file is closed")

    def read_range(self, offset: int, size: int) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_into(self, offset: int, view: memoryview) -> memoryview:
        """Read up to ``len(view)`` bytes at ``offset`` into ``view`` and return the filled part
        (shorter only at the end of the source). Hot loops reuse one buffer this way instead
        of a bytes object per segment (IFD._read_buffer); sources override it to skip the copy."""
        data = self.read_range(offset, len(view))
        view[: len(data)] = data
        return view[: len(data)]

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes | memoryview]:
        """Read several (offset, size) ranges; remote sources plan, coalesce and fetch them
        concurrently (tiffio.sources.remote). Sparse ranges (size 0) give b''."""
        return [self.read_range(o, n) if n > 0 else b"" for o, n in ranges]

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def require_range(source: ByteSource, offset: int, size: int, what: str) -> bytes:
    """Read exactly ``size`` bytes at ``offset`` or raise TruncatedError naming ``what``."""
    if offset < 0 or size < 0:
        raise TruncatedError(f"{what}: invalid range offset={offset} size={size}")
    if offset + size > source.size:
        raise TruncatedError(
            f"{what}: {size} bytes at offset {offset} (0x{offset:x}) pass the end of the file ({source.size} bytes)"
        )
    data = source.read_range(offset, size)
    if len(data) != size:
        raise TruncatedError(f"{what}: read {len(data)} of {size} bytes at offset {offset} (0x{offset:x})")
    return data
