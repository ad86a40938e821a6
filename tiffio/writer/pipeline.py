"""The encode pipeline: a fixed set of encoder threads fed by a bounded queue (back-pressure).

Jobs are (function, args) pairs that record their own errors; the threads reference only the
pipeline, so an unclosed writer can still be collected (its finalizer stops them).

The queue is written to survive an interrupt: Ctrl-C raises KeyboardInterrupt in the main thread
(the producer) at any instant, also between the steps of a put. ``queue.Queue`` keeps a count of
unfinished tasks next to its deque and wakes a consumer after appending: an interrupt between those
steps leaves a job queued that no sleeping thread was told about, and ``join()`` then waits for it
forever (a lost wake-up). Here a job is queued by one deque append (a single C call: it happens
or not), no count has to agree with the deque (a thread counts the job it runs itself), and
:meth:`EncoderThreads.join` wakes the threads again while it waits, so a wake-up lost by an
interrupted put cannot keep a job queued with every thread asleep.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["EncoderThreads", "encoder_loop"]

#: how often join() wakes the threads again while it waits (seconds)
_POLL = 0.05

Job = tuple[Callable[..., Any], tuple[Any, ...]]


def encoder_loop(pipeline: EncoderThreads) -> None:
    """Body of an encoder thread: run (function, args) jobs until the pipeline stops and is empty.
    Jobs record their own errors; the thread only references the pipeline."""
    while True:
        job = pipeline._next()
        if job is None:
            return
        try:
            job[0](*job[1])
        except BaseException:  # pragma: no cover - jobs catch their own errors
            pass
        finally:
            job = None  # do not keep the writer alive while waiting
            pipeline._done()


class EncoderThreads:
    """Exactly ``workers`` encoder threads fed by a bounded queue: the producer blocks once
    ``workers`` tiles wait (so at most 2 x workers tiles are in flight and memory stays bounded)."""

    def __init__(self, workers: int) -> None:
        self._mutex = threading.Lock()
        self._not_empty = threading.Condition(self._mutex)
        self._not_full = threading.Condition(self._mutex)
        self._idle = threading.Condition(self._mutex)
        self._jobs: deque[Job] = deque()
        self._maxsize = max(1, workers)
        self._busy = 0          # jobs a thread has taken and not finished
        self._stopping = False
        self.threads: list[threading.Thread] = []
        self.grow(workers)

    def grow(self, workers: int) -> None:
        with self._mutex:
            self._maxsize = max(self._maxsize, workers)
        while len(self.threads) < workers:
            thread = threading.Thread(target=encoder_loop, args=(self,), daemon=True,
                                      name=f"tiffio-encode-{len(self.threads)}")
            thread.start()
            self.threads.append(thread)

    def put(self, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Queue a job; blocks while ``workers`` jobs wait."""
        with self._not_full:
            while len(self._jobs) >= self._maxsize and not self._stopping:
                self._not_full.wait()
            self._jobs.append((function, args))
            self._not_empty.notify()

    def _next(self) -> Job | None:
        with self._not_empty:
            while not self._jobs:
                if self._stopping:
                    return None
                self._not_empty.wait()
            job = self._jobs.popleft()
            self._busy += 1
            self._not_full.notify()
            return job

    def _done(self) -> None:
        with self._mutex:
            self._busy -= 1
            if not self._busy and not self._jobs:
                self._idle.notify_all()

    def join(self) -> None:
        """Wait until every queued job has run (waking the threads again every _POLL seconds)."""
        with self._idle:
            while self._jobs or self._busy:
                self._not_empty.notify_all()
                self._idle.wait(_POLL)

    def stop(self, wait: bool) -> None:
        """Let the threads end once the queue is empty (``wait``: join them)."""
        with self._mutex:
            self._stopping = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
        if wait:
            for thread in self.threads:
                if thread is not threading.current_thread():
                    thread.join()
        self.threads.clear()
