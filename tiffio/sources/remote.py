"""Remote byte sources: one planner, cache and set of counters over any range fetcher.

A *fetcher* moves bytes (HTTP, obstore, fsspec, or the user's own); this module decides
which bytes, so every backend behaves the same:

* **open in one round trip, without HEAD**: the first 64 KiB and the last 256 KiB are
  fetched together (a COG keeps its IFDs at the start, tiffio's writer and libtiff at the
  end); the size comes from the answer (HTTP ``Content-Range``), not from a HEAD request;
* **metadata in 64 KiB blocks**, cached (LRU) with single-flight: threads that need a block
  being fetched wait for it instead of fetching it again;
* **data ranges planned first** (:mod:`tiffio.sources.planning`): sparse ranges dropped,
  repeats fetched once, small gaps coalesced below RTT x bandwidth (measured), long spans
  split over several connections, all spans of a call fetched in one wave;
* counters: ``requests``, ``bytes_read`` and ``round_trips`` (fetch waves: a wave starts
  when no other fetch is in flight).

The fetcher protocol (duck-typed; see :class:`RangeFetcher`)::

    size: int | None                      # None until the first fetch tells it
    def fetch(self, spans): ...           # [(offset, length), ...] -> [bytes-like, ...],
                                          # concurrently, thread-safe, exact lengths
    def fetch_open(self, head, tail): ... # optional: (size, first head bytes, last tail bytes)
                                          # in one round trip (a suffix range); else tiffio
                                          # uses ``size`` and fetch()
    def close(self): ...                  # optional
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import SourceError, TiffError
from .base import ByteSource
from .planning import MAX_GAP, gap_for, plan_ranges
from .urls import redact_text, redact_url

__all__ = ["RangeFetcher", "RemoteSource", "clear_metadata_cache", "BLOCK_SIZE", "HEAD_SIZE", "TAIL_SIZE"]

BLOCK_SIZE = 64 << 10
HEAD_SIZE = 64 << 10
TAIL_SIZE = 256 << 10
#: metadata reads larger than this bypass the block cache (a whole strile array via to_numpy)
_DIRECT_READ = 1 << 20
#: metadata kept across opens: URL -> (size, ETag, rtt, blocks); the ETag is checked by the
#: first request of the next open (If-Match), so a changed object is never read with old metadata
_REOPEN: OrderedDict[str, tuple[int, str, float | None, dict[int, tuple[int, bytes]]]] = OrderedDict()
_REOPEN_LOCK = threading.Lock()
_HELD_BYTES = 64 << 20
_REOPEN_FILES = 64
_REOPEN_BLOCKS = 64  # per file: 4 MiB at most


#: the keyword arguments of RemoteSource (tiffio.open passes them through)
SOURCE_OPTIONS = frozenset({"name", "max_connections", "cache_blocks", "max_block", "max_gap", "head", "tail",
                            "metadata_cache"})


def clear_metadata_cache() -> None:
    """Forget the metadata kept across opens (every URL)."""
    with _REOPEN_LOCK:
        _REOPEN.clear()


@runtime_checkable
class RangeFetcher(Protocol):
    """What a backend implements: the object's ``size`` and a concurrent ``fetch(spans)``."""

    size: int | None

    def fetch(self, spans: Sequence[tuple[int, int]]) -> Sequence[Any]:
        ...


class RemoteSource(ByteSource):
    """A ByteSource over a :class:`RangeFetcher`, with planning, block cache and counters.

    ``max_connections`` is the number of requests the planner aims to keep in one wave
    (give the fetcher the same bound); ``cache_blocks`` bounds the metadata cache
    (64 KiB blocks); ``max_gap`` fixes the coalescing gap instead of RTT x bandwidth.
    """

    remote = True

    def __init__(self, fetcher: Any, *, name: str | None = None, max_connections: int = 8,
                 cache_blocks: int = 256, max_block: int = 8 << 20, max_gap: int | None = None,
                 head: int = HEAD_SIZE, tail: int = TAIL_SIZE, metadata_cache: bool = True) -> None:
        super().__init__()
        if not callable(getattr(fetcher, "fetch", None)):
            raise SourceError(f"{type(fetcher).__name__} is not a range fetcher: it needs fetch(spans) and size")
        self.fetcher = fetcher
        # what messages, reprs and TiffFile.name show: never a password or a URL's signature
        self.name = redact_url(name or str(getattr(fetcher, "name", None) or getattr(fetcher, "url", None)
                                           or "<remote>"))
        self.max_connections = max(1, int(max_connections))
        self.max_block = max_block
        self._fixed_gap = max_gap
        self._cache_blocks = max(4, int(cache_blocks))
        self._blocks: OrderedDict[int, tuple[int, bytes]] = OrderedDict()  # block -> (start in block, bytes)
        self._pending: dict[int, threading.Event] = {}
        self._held: dict[tuple[int, int], Any] = {}  # hold_ranges: fetched ahead, read once
        self._held_bytes = 0
        self._lock = threading.Lock()
        self._in_flight = 0
        self._round_trips = 0
        self.rtt: float | None = None         # seconds: the fastest wave seen
        self.bandwidth: float | None = None   # bytes/s: the best single-span rate seen, RTT removed
        # reopening a URL whose metadata was kept (fetchers that pin the ETag: HTTP) costs no round trip
        self._reopen_key = str(fetcher.url) if metadata_cache and getattr(fetcher, "pins_etag", False) else None
        entry = None
        if self._reopen_key is not None:
            with _REOPEN_LOCK:
                entry = _REOPEN.get(self._reopen_key)
        if entry is not None:
            self.size, fetcher.size, fetcher.etag = entry[0], entry[0], entry[1]
            self.rtt = entry[2]
            self._blocks.update(entry[3])
            self.reopened = True
        else:
            self.reopened = False
            self._open(head, tail)

    @property
    def url(self) -> str | None:
        """The URL as given, credentials and signature included (to reopen it elsewhere: a zarr
        store or dask array pickles it); None for fetchers without one. Never shown: messages
        use :attr:`name`."""
        url = getattr(self.fetcher, "url", None)
        return None if url is None else str(url)

    # --- counters -----------------------------------------------------------------------
    @property
    def round_trips(self) -> int:
        return self._round_trips

    def reset_counters(self) -> None:
        with self._lock:
            self.requests = 0
            self.bytes_read = 0
            self._round_trips = 0

    @property
    def max_gap(self) -> int:
        """The coalescing gap in bytes: RTT x bandwidth as measured, clamped to 64 KiB - 2 MiB."""
        if self._fixed_gap is not None:
            return self._fixed_gap
        if self.rtt is None:
            return MAX_GAP
        return gap_for(self.rtt, self.bandwidth or 100e6)

    # --- the one place that calls the fetcher -------------------------------------------------
    def _fetch(self, spans: list[tuple[int, int]]) -> list[Any]:
        self._check_open()
        with self._lock:
            if self._in_flight == 0:
                self._round_trips += 1
            self._in_flight += 1
        t0 = time.perf_counter()
        try:
            try:
                results = list(self.fetcher.fetch(spans))
            except TiffError:
                self._forget()
                raise
            except Exception as exc:  # the backend's own errors, translated at this boundary
                self._forget()
                # not chained: the backend's message may quote a presigned URL (shown redacted here)
                raise SourceError(getattr(exc, "errno", None) if isinstance(exc, OSError) else None,
                                  f"{self.name}: fetching {len(spans)} ranges failed: {type(exc).__name__}: "
                                  f"{redact_text(str(exc))}") from None
        finally:
            with self._lock:
                self._in_flight -= 1
        elapsed = time.perf_counter() - t0
        if len(results) != len(spans):
            raise SourceError(f"{self.name}: the fetcher returned {len(results)} results for {len(spans)} ranges")
        total = 0
        for (offset, length), data in zip(spans, results):
            if len(data) != length:
                raise SourceError(f"{self.name}: short read: {len(data)} of {length} bytes at offset {offset}")
            total += length
        self._measure(elapsed, max(n for _, n in spans))
        with self._lock:
            self.requests += len(spans)
            self.bytes_read += total
        return results

    def _measure(self, elapsed: float, largest: int) -> None:
        if self.rtt is None or elapsed < self.rtt:
            self.rtt = elapsed
        rtt = self.rtt
        if largest >= 1 << 20 and elapsed > 1.5 * rtt:
            rate = largest / (elapsed - rtt)
            if self.bandwidth is None or rate > self.bandwidth:
                self.bandwidth = rate

    def _open(self, head: int, tail: int) -> None:
        opener = getattr(self.fetcher, "fetch_open", None)
        t0 = time.perf_counter()
        if opener is not None:
            with self._lock:
                self._round_trips += 1
            try:
                size, head_data, tail_data = opener(head, tail)
            except TiffError:
                raise
            except Exception as exc:  # not chained: the backend's message may quote a presigned URL
                raise SourceError(getattr(exc, "errno", None) if isinstance(exc, OSError) else None,
                                  f"{self.name}: opening failed: {type(exc).__name__}: "
                                  f"{redact_text(str(exc))}") from None
            self.requests += 2
            self.bytes_read += len(head_data) + len(tail_data)
        else:
            size = self.fetcher.size
            if size is None:
                raise SourceError(f"{self.name}: the fetcher has no fetch_open() and does not know its size")
            spans = [(0, min(head, size))]
            if size > head:
                start = max(head, size - tail)
                spans.append((start, size - start))
            results = self._fetch(spans) if size else [b""]
            head_data = bytes(results[0])
            tail_data = bytes(results[1]) if len(results) > 1 else b""
        self.rtt = time.perf_counter() - t0
        self.size = int(size)
        # every byte is what was asked for, whatever the backend: the head exactly, the tail the
        # last min(tail, size) bytes or only the part after the head
        new = min(tail, max(0, self.size - len(head_data)))
        if len(tail_data) == min(tail, self.size) and len(tail_data) > new:
            tail_data = tail_data[len(tail_data) - new:]
        if self.size < 0 or len(head_data) != min(head, self.size) or len(tail_data) != new:
            raise SourceError(f"{self.name}: the first ranges came back with {len(head_data)} and "
                              f"{len(tail_data)} bytes for an object of {self.size} bytes (asked for the "
                              f"first {min(head, self.size)} and the last {new})")
        self._insert(0, bytes(head_data))
        if tail_data:
            self._insert(self.size - len(tail_data), bytes(tail_data))

    # --- block cache ---------------------------------------------------------------------------
    def _insert(self, offset: int, data: bytes) -> None:
        """Cache ``data`` found at ``offset`` as 64 KiB blocks (a partial first block keeps its start)."""
        end = offset + len(data)
        with self._lock:
            block = offset // BLOCK_SIZE
            while block * BLOCK_SIZE < end:
                lo = max(offset, block * BLOCK_SIZE)
                hi = min(end, (block + 1) * BLOCK_SIZE)
                old = self._blocks.get(block)
                new = (lo - block * BLOCK_SIZE, data[lo - offset: hi - offset])
                if old is not None and old[0] <= new[0] + len(new[1]) and new[0] <= old[0] + len(old[1]):
                    # overlapping or touching pieces of one block (exact strile fetches): their union
                    first = min(old[0], new[0])
                    union = bytearray(max(old[0] + len(old[1]), new[0] + len(new[1])) - first)
                    union[old[0] - first: old[0] - first + len(old[1])] = old[1]
                    union[new[0] - first: new[0] - first + len(new[1])] = new[1]
                    self._blocks[block] = (first, bytes(union))
                elif old is None or len(new[1]) >= len(old[1]):
                    self._blocks[block] = new
                self._blocks.move_to_end(block)
                block += 1
            while len(self._blocks) > self._cache_blocks:
                self._blocks.popitem(last=False)

    def _block_has(self, block: int, lo: int, hi: int) -> bool:
        """Whether the cache holds bytes [lo, hi) of ``block`` (positions inside the block)."""
        entry = self._blocks.get(block)
        if entry is None:
            return False
        start, data = entry
        return start <= lo and (start + len(data) >= hi or block * BLOCK_SIZE + start + len(data) >= self.size)

    def _cached(self, offset: int, size: int) -> bytes | None:
        """The bytes [offset, offset+size) if the cache holds all of them, else None."""
        end = min(offset + size, self.size)
        if end <= offset:
            return b""
        parts = []
        with self._lock:
            for block in range(offset // BLOCK_SIZE, (end - 1) // BLOCK_SIZE + 1):
                base = block * BLOCK_SIZE
                lo, hi = max(offset, base) - base, min(end, base + BLOCK_SIZE) - base
                if not self._block_has(block, lo, hi):
                    return None
                start, data = self._blocks[block]
                self._blocks.move_to_end(block)
                parts.append(data[lo - start: hi - start])
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _missing_blocks(self, spans: Sequence[tuple[int, int]]) -> list[int]:
        blocks: set[int] = set()
        for offset, size in spans:
            end = min(offset + size, self.size)
            for block in range(max(0, offset) // BLOCK_SIZE, (end - 1) // BLOCK_SIZE + 1 if end > offset else 0):
                base = block * BLOCK_SIZE
                if not self._block_has(block, max(offset, base) - base, min(end, base + BLOCK_SIZE) - base):
                    blocks.add(block)
        return sorted(blocks)

    def _ensure_blocks(self, spans: Sequence[tuple[int, int]], exact: bool = False) -> None:
        """Fetch every block the spans touch that is not cached, in one wave; blocks another
        thread is already fetching are waited for, not fetched again (single-flight). With
        ``exact``, only the spans' bytes (to 4 KiB boundaries) are fetched, not whole blocks:
        strile blocks, where a 64 KiB block would be mostly other tiles' entries."""
        for _attempt in range(3):
            with self._lock:
                missing = self._missing_blocks(spans)
                if not missing:
                    return
                mine = [b for b in missing if b not in self._pending]
                waits = [self._pending[b] for b in missing if b in self._pending]
                events = {b: threading.Event() for b in mine}
                self._pending.update(events)
            try:
                if mine and exact:
                    parts = []
                    for offset, size in spans:
                        end = min(offset + size, self.size)
                        for b in mine:
                            lo, hi = max(offset, b * BLOCK_SIZE), min(end, (b + 1) * BLOCK_SIZE)
                            if lo < hi:
                                parts.append([lo & ~4095, min(self.size, (hi + 4095) & ~4095)])
                    parts.sort()
                    merged: list[list[int]] = []
                    for lo, hi in parts:
                        if merged and lo <= merged[-1][1]:
                            merged[-1][1] = max(merged[-1][1], hi)
                        else:
                            merged.append([lo, hi])
                    req = [(lo, hi - lo) for lo, hi in merged]
                    for (offset, _), data in zip(req, self._fetch(req)):
                        self._insert(offset, bytes(data))
                elif mine:
                    runs: list[tuple[int, int]] = []  # consecutive blocks in one request
                    for b in mine:
                        if runs and runs[-1][0] + runs[-1][1] == b:
                            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
                        else:
                            runs.append((b, 1))
                    req = [(b * BLOCK_SIZE, min(n * BLOCK_SIZE, self.size - b * BLOCK_SIZE)) for b, n in runs]
                    for (offset, _), data in zip(req, self._fetch(req)):
                        self._insert(offset, bytes(data))
            finally:
                with self._lock:
                    for b, event in events.items():
                        self._pending.pop(b, None)
                        event.set()
            for event in waits:
                while not event.wait(0.25):  # in slices: KeyboardInterrupt reaches a waiting thread
                    pass
        # still missing after three rounds (evicted by other threads): the callers read directly

    # --- ByteSource ------------------------------------------------------------------------------
    def read_metadata(self, offset: int, size: int) -> bytes:
        """Metadata bytes through the 64 KiB block cache (tiffio.read.entries.ParseContext)."""
        self._check_open()
        if size > _DIRECT_READ:
            return self.read_range(offset, size)
        data = self._cached(offset, size)
        if data is None:
            self._ensure_blocks([(offset, size)])
            data = self._cached(offset, size)
            if data is None:  # evicted meanwhile by other threads: read it directly
                return self.read_range(offset, size)
        return data

    def prefetch_metadata(self, spans: Sequence[tuple[int, int]]) -> None:
        """Bring the blocks of several metadata spans into the cache in one wave (a TileOffsets
        block and the TileByteCounts block read with it)."""
        self._check_open()
        spans = [(o, n) for o, n in spans if 0 < n <= _DIRECT_READ and 0 <= o < self.size]
        if spans:
            self._ensure_blocks(spans, exact=True)

    def hold_ranges(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Fetch data ranges in one planned wave and hold them until they are read once (by
        read_range / read_ranges of exactly that range): lets callers that read segment by
        segment (a zarr store's concurrent chunk gets) share one wave. At most 64 MiB held."""
        self._check_open()
        with self._lock:
            todo = sorted({(o, n) for o, n in ranges if n > 0 and (o, n) not in self._held})
        budget = _HELD_BYTES - self._held_bytes
        keep: list[tuple[int, int]] = []
        for o, n in todo:
            if n > budget:
                break
            keep.append((o, n))
            budget -= n
        if not keep:
            return
        datas = self.read_ranges(keep)
        with self._lock:
            for key, data in zip(keep, datas):
                if key not in self._held:
                    self._held[key] = data
                    self._held_bytes += len(data)

    def _take_held(self, offset: int, size: int) -> Any:
        if not self._held:
            return None
        with self._lock:
            data = self._held.pop((offset, size), None)
            if data is not None:
                self._held_bytes -= len(data)
        return data

    def read_range(self, offset: int, size: int) -> bytes:
        self._check_open()
        size = min(size, self.size - offset)
        if size <= 0 or offset < 0:
            return b""
        data = self._cached(offset, size)
        if data is not None:
            return data
        return bytes(self.read_ranges([(offset, size)])[0])

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes | memoryview]:
        """Read many (offset, size) ranges in one planned wave: cached ones from the cache, empty
        ones as b'', the rest coalesced and split by :func:`plan_ranges`. Results may be
        memoryviews of a larger response (no copy)."""
        self._check_open()
        out: list[bytes | memoryview] = [b""] * len(ranges)
        todo: list[tuple[int, int]] = []
        slots: list[int] = []
        for i, (offset, size) in enumerate(ranges):
            size = min(size, self.size - offset)
            if size <= 0 or offset < 0:
                continue
            hit = self._cached(offset, size)
            if hit is None:
                hit = self._take_held(offset, size)
            if hit is not None:
                out[i] = hit
                continue
            todo.append((offset, size))
            slots.append(i)
        if not todo:
            return out
        plan = plan_ranges(todo, max_gap=self.max_gap, max_connections=self.max_connections, max_block=self.max_block)
        results = [memoryview(r) for r in self._fetch(plan.spans)]
        for i, (_offset, size), where in zip(slots, todo, plan.where):
            k, pos = where  # type: ignore[misc]
            span_len = plan.spans[k][1]
            if pos + size <= span_len:
                out[i] = results[k][pos: pos + size]
            else:  # the range runs over spans split from one long span
                parts = [results[k][pos:]]
                got = span_len - pos
                while got < size:
                    k += 1
                    piece = results[k][: size - got]
                    parts.append(piece)
                    got += len(piece)
                out[i] = b"".join(parts)
        return out

    def _forget(self) -> None:
        """Drop this URL's kept metadata (after an error: the object may have changed)."""
        if self._reopen_key is not None:
            with _REOPEN_LOCK:
                _REOPEN.pop(self._reopen_key, None)
            self._reopen_key = None  # and never keep it again from this source

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            etag = getattr(self.fetcher, "etag", None)
            with self._lock:
                blocks = dict(list(self._blocks.items())[-_REOPEN_BLOCKS:])
                self._blocks.clear()
                self._held.clear()
            if self._reopen_key is not None and etag and not str(etag).startswith("W/"):
                with _REOPEN_LOCK:
                    _REOPEN[self._reopen_key] = (self.size, str(etag), self.rtt, blocks)
                    _REOPEN.move_to_end(self._reopen_key)
                    while len(_REOPEN) > _REOPEN_FILES:
                        _REOPEN.popitem(last=False)
            closer = getattr(self.fetcher, "close", None)
            if callable(closer):
                closer()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} size={getattr(self, 'size', None)}>"
