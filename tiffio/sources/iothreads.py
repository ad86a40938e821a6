"""Threads that do remote I/O, and waiting for them so that Ctrl-C always works.

* :class:`DaemonThreadPool`: an executor whose threads are daemons. ``ThreadPoolExecutor``
  joins its threads at interpreter exit, so one blocked in ``recv`` on a stalled server kept a
  process alive after Ctrl-C; a daemon thread never does (fsspec runs its I/O loop in a daemon
  thread for the same reason). Reads have deadlines (:mod:`.deadlines`), so these threads end
  on their own too.
* :func:`wait`: a future's result, waited for in slices of at most 0.25 s, so that
  KeyboardInterrupt reaches the waiting thread on any platform (fsspec's ``sync`` does the
  same), optionally up to a deadline.
* :func:`run_concurrently`: ``[func(item) for item in items]`` with the first item in the
  calling thread and the others on the I/O pool; :func:`run_with_deadline`: a call that may
  block in a library we cannot interrupt (obstore, fsspec) run on the pool and waited for
  until a deadline.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

__all__ = ["DaemonThreadPool", "io_pool", "wait", "run_concurrently", "run_with_deadline", "Expired"]

#: the longest a waiting thread goes without checking for signals
WAIT_SLICE = 0.25


class Expired(Exception):
    """:func:`wait` reached its deadline (the work goes on in its daemon thread, unobserved)."""


class DaemonThreadPool:
    """A minimal executor on daemon threads (started on demand, at most ``max_workers``)."""

    def __init__(self, max_workers: int, name: str) -> None:
        self.max_workers = max(1, int(max_workers))
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple, dict] | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads = 0

    def submit(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.put((future, func, args, kwargs))
        if not self._idle.acquire(timeout=0):  # no idle thread will take it: start one (up to the bound)
            with self._lock:
                if self._threads < self.max_workers:
                    self._threads += 1
                    threading.Thread(target=_work, args=(self._queue, self._idle),
                                     name=f"{self.name}-{self._threads}", daemon=True).start()
        return future

    def forget_threads(self) -> None:
        """After fork: the child has none of the parent's threads."""
        self._queue = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads = 0


def _work(tasks: queue.SimpleQueue, idle: threading.Semaphore) -> None:
    while True:
        item = tasks.get()
        if item is None:  # pragma: no cover - pools live as long as the process
            return
        future, func, args, kwargs = item
        if future.set_running_or_notify_cancel():
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:  # handed to the waiting thread
                future.set_exception(exc)
            else:
                future.set_result(result)
        del item, future, func, args, kwargs
        idle.release()


_POOLS: dict[str, DaemonThreadPool] = {}
_POOLS_LOCK = threading.Lock()


def io_pool(name: str = "tiffio-io", max_workers: int = 32) -> DaemonThreadPool:
    """The process-wide daemon pool ``name`` (started once)."""
    pool = _POOLS.get(name)
    if pool is None:
        with _POOLS_LOCK:
            pool = _POOLS.get(name)
            if pool is None:
                pool = _POOLS[name] = DaemonThreadPool(max_workers, name)
    return pool


def _after_fork() -> None:
    for pool in list(_POOLS.values()):
        pool.forget_threads()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def wait(future: Future[Any], deadline: float | None = None) -> Any:
    """``future.result()``, waited for in slices (KeyboardInterrupt gets through); with a
    ``deadline`` (``time.monotonic()`` value), :class:`Expired` once it has passed."""
    while True:
        if deadline is None:
            slice_ = WAIT_SLICE
        else:
            slice_ = min(WAIT_SLICE, deadline - time.monotonic())
            if slice_ <= 0:
                if future.done():
                    return future.result()
                raise Expired
        try:
            return future.result(timeout=slice_)
        except FutureTimeout:  # the builtin TimeoutError since 3.11
            if future.done():  # the task's own error is a TimeoutError (SourceTimeoutError): raise it
                return future.result()


def run_concurrently(func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``[func(item) for item in items]`` concurrently: the first item in the calling thread
    (no hand-off for it, and none at all for a single item), the others on tiffio's I/O
    threads. The first error is raised."""
    if len(items) == 1:
        return [func(items[0])]
    pool = io_pool()
    futures = [pool.submit(func, item) for item in items[1:]]
    first = func(items[0])
    return [first, *(wait(f) for f in futures)]


def run_with_deadline(func: Callable[..., Any], *args: Any, deadline: float | None = None) -> Any:
    """``func(*args)`` on an I/O thread, waited for (in slices) until ``deadline``: for calls into
    libraries that block where KeyboardInterrupt cannot reach (Rust, another event loop).
    :class:`Expired` when the deadline passes first; the call then ends on its own thread."""
    return wait(io_pool().submit(func, *args), deadline)
