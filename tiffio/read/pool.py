"""The reading side's threads: one process-wide pool per name and one parallel map.

Every parallel read (a region's segments, a series' pages, a file sequence's files, an edge
selection's pages) goes through :func:`parallel_map`, so they all share one error policy: the
error raised is the one of the first failing item in item order, as a loop would raise it, and
items after a failed one are not started.
"""

from __future__ import annotations

import operator
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import TiffTypeError

__all__ = ["default_workers", "segment_workers", "require_workers", "shared_pool", "parallel_map", "SEGMENT_POOL",
           "PAGE_POOL"]

T = TypeVar("T")

#: the pool of segment decodes (region reads)
SEGMENT_POOL = "tiffio"
#: the pool of page, file and selection reads, whose tasks wait on the segment pool (apart from
#: it, so that nested waits cannot starve)
PAGE_POOL = "tiffio-series"

# os.cpu_count() costs ~15 us per call on Linux (it reads /sys): asked once
_DEFAULT_WORKERS = max(1, min(os.cpu_count() or 1, 16))

_POOLS: dict[tuple[str, int], ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def default_workers() -> int:
    """Threads of a read when the caller does not say: the CPU count, at most 16."""
    return _DEFAULT_WORKERS


#: segments decoded in one thread when the caller gives no ``workers`` (segment_workers)
SMALL_SEGMENT = 4 << 10
SMALL_RAW_SEGMENT = 64 << 10


def segment_workers(segment_nbytes: int, compressed: bool) -> int:
    """Threads a read of segments of ``segment_nbytes`` decoded bytes uses when the caller gives no
    ``workers``: 1 where a segment decodes faster than threads can hand the GIL back and forth
    (compressed segments under 4 KiB, uncompressed ones under 64 KiB: a 4096² level of 32² uint16
    Deflate tiles reads 1.36 x slower on two threads than on one, of 64² tiles 0.75 x), else
    :func:`default_workers`."""
    return 1 if segment_nbytes < (SMALL_SEGMENT if compressed else SMALL_RAW_SEGMENT) else default_workers()


def require_workers(workers: Any) -> int:
    """A caller's ``workers=`` as a thread count (at least 1), or TiffTypeError."""
    try:
        return max(1, operator.index(workers))
    except TypeError:
        raise TiffTypeError(f"workers must be an int or None, not {workers!r}") from None


def shared_pool(workers: int, name: str = SEGMENT_POOL) -> ThreadPoolExecutor:
    """A process-wide thread pool per (name, worker count), started once: reads do not pay for
    thread start-up. Separate names keep nested work apart (a page pool whose tasks wait on the
    segment pool must not share its threads)."""
    with _POOLS_LOCK:
        pool = _POOLS.get((name, workers))
        if pool is None:
            pool = _POOLS[name, workers] = ThreadPoolExecutor(workers, thread_name_prefix=name)
        return pool


def parallel_map(func: Callable[[T], Any], items: Sequence[T], workers: int | None,
                 pool: str = SEGMENT_POOL) -> list[Any]:
    """[func(item) for item in items] on ``workers`` threads: the calling thread and
    ``workers - 1`` tasks of the shared pool named ``pool``, each taking the next item from one
    shared counter until none is left.

    One pool task per item cost more than decoding a small segment (futures, wake-ups, GIL
    hand-offs: a level of 64² Deflate tiles read 2.1 x slower that way), and fixed runs of
    items balance unequal segments badly; a shared counter does neither. The error raised is
    the one of the first failing item in item order, as a loop would raise it; items after
    a failed one are not started. With one worker or fewer than two items it is a plain loop;
    ``workers=None`` means :func:`default_workers`."""
    n = len(items)
    workers = default_workers() if workers is None else int(workers)
    if workers <= 1 or n < 2:
        return [func(item) for item in items]
    results: list[Any] = [None] * n
    lock = threading.Lock()
    cursor = [0, n]  # next item, first failed item (n: none)
    errors: dict[int, BaseException] = {}

    def work() -> None:
        while True:
            with lock:
                k = cursor[0]
                if k >= cursor[1]:
                    return
                cursor[0] = k + 1
            try:
                results[k] = func(items[k])
            except BaseException as exc:  # re-raised below, in the caller's thread
                with lock:
                    errors[k] = exc
                    cursor[1] = min(cursor[1], k)
                return

    executor = shared_pool(min(workers, 64), pool)
    futures = [executor.submit(work) for _ in range(min(workers, n) - 1)]
    try:
        work()
    finally:
        for future in futures:
            if not future.cancel():  # a task that never started has nothing to do (and a
                future.result()      # caller inside the pool must not wait for it)
    if errors:
        raise errors[min(errors)]
    return results
