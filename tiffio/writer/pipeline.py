"""The encode pipeline: a fixed set of encoder threads fed by a bounded queue (back-pressure).

Jobs are (function, args) pairs that record their own errors; the threads reference only the
pipeline, so an unclosed writer can still be collected (its finalizer stops them).

The pipeline survives Ctrl-C. KeyboardInterrupt is raised in the main thread (the producer, and
the thread that closes the writer) between any two bytecodes, also inside the standard library's
synchronisation written in Python: ``threading.Condition.__enter__`` can be interrupted after it
took its lock and before the ``with`` block owns it (the lock then stays taken forever), and
``Condition.notify`` between waking a waiter and forgetting it (that stale waiter later swallows a
wake-up); ``queue.Queue`` can also be interrupted between queueing a job and waking a thread. Each
of these hung ``close()`` after some interrupts. So the main thread here only ever:

* holds ``_lock`` (a ``threading.Lock``, whose ``with`` is implemented in C: no interrupt between
  taking it and owning it) for a few non-blocking statements;
* blocks in C: ``queue.SimpleQueue.get`` (a wake-up token is taken or not) and ``time.sleep``;
* starts threads with :func:`start_thread` (``Thread.start`` itself waits on a Python ``Event``).

A wake-up lost to an interrupt cannot leave a job queued with every thread asleep: whoever waits
for the threads (:meth:`EncoderThreads.join`, a put on a full queue) polls, and wakes sleeping
threads again while jobs wait. The encoder threads themselves never see an interrupt.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import LimitExceededError

__all__ = ["EncoderThreads", "encoder_loop", "start_thread", "join_thread"]

#: the longest a waiting producer or join() goes without looking again (seconds)
_POLL = 0.05

Job = tuple[Callable[..., Any], tuple[Any, ...]]


def encoder_loop(pipeline: EncoderThreads) -> None:
    """Body of an encoder thread: run (function, args) jobs until the pipeline stops and is empty.
    Jobs record their own errors; the thread only references the pipeline."""
    while True:
        job = pipeline.next_job()
        if job is None:
            return
        try:
            job[0](*job[1])
        except BaseException:  # pragma: no cover - jobs catch their own errors
            pass
        finally:
            job = None  # do not keep the writer alive while waiting
            pipeline.job_done()


class EncoderThreads:
    """Exactly ``workers`` encoder threads fed by a bounded queue: the producer blocks once
    ``workers`` tiles wait (so at most 2 x workers tiles are in flight and memory stays bounded)."""

    def __init__(self, workers: int) -> None:
        self._lock = threading.Lock()          # guards the fields below; never held while blocking
        self._jobs: deque[Job] = deque()
        self._maxsize = max(1, workers)
        self._busy = 0                         # jobs a thread has taken and not finished
        self._sleeping = 0                     # threads waiting for a job
        self._stopping = False
        self._work: queue.SimpleQueue = queue.SimpleQueue()    # wake-ups for sleeping threads
        self._space: queue.SimpleQueue = queue.SimpleQueue()   # wake-ups for a producer waiting for room
        self.threads: list[threading.Thread] = []
        self.grow(workers)

    def grow(self, workers: int) -> None:
        with self._lock:
            self._maxsize = max(self._maxsize, workers)
        while len(self.threads) < workers:
            thread = threading.Thread(target=encoder_loop, args=(self,), daemon=True,
                                      name=f"tiffio-encode-{len(self.threads)}")
            self.threads.append(thread)  # before it starts: stop() must count it even if start is interrupted
            try:
                start_thread(thread)
            except LimitExceededError:
                self.threads.remove(thread)
                raise

    def put(self, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Queue a job; blocks while ``workers`` jobs wait."""
        while True:
            with self._lock:
                room = len(self._jobs) < self._maxsize or self._stopping
                if room:
                    self._jobs.append((function, args))
                wake = self._sleeping > 0
            if wake:
                self._work.put(None)
            if room:
                return
            try:
                self._space.get(timeout=_POLL)
            except queue.Empty:
                pass

    def next_job(self) -> Job | None:
        """In a thread: the next job (None: stop), sleeping while there is none."""
        while True:
            with self._lock:
                if self._jobs:
                    full = len(self._jobs) >= self._maxsize
                    job = self._jobs.popleft()
                    self._busy += 1
                elif self._stopping:
                    return None
                else:
                    self._sleeping += 1
                    job = None
            if job is not None:
                if full:  # a producer may wait for room
                    self._space.put(None)
                return job
            self._work.get()
            with self._lock:
                self._sleeping -= 1

    def job_done(self) -> None:
        with self._lock:
            self._busy -= 1

    def join(self) -> None:
        """Wait until every queued job has run (polling: at most a few ms late)."""
        delay = 0.0002
        while True:
            with self._lock:
                if not self._jobs and not self._busy:
                    return
                wake = self._sleeping if self._jobs else 0
            for _ in range(wake):  # threads asleep while jobs wait: a wake-up was lost
                self._work.put(None)
            time.sleep(delay)
            delay = min(2 * delay, _POLL / 10)

    def stop(self, wait: bool) -> None:
        """Let the threads end once the queue is empty (``wait``: join them)."""
        with self._lock:
            self._stopping = True
        for _ in self.threads:
            self._work.put(None)
        if wait:
            for thread in self.threads:
                if thread is not threading.current_thread():
                    join_thread(thread)
        self.threads.clear()


def start_thread(thread: threading.Thread) -> None:
    """``thread.start()``, except that an interrupt landing inside it is raised as the
    KeyboardInterrupt it is (Thread.start waits on an Event written in Python: interrupted there it
    can fail with "RuntimeError: release unlocked lock", the thread started all the same), and a
    thread that cannot be started raises LimitExceededError."""
    try:
        thread.start()
    except RuntimeError as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise exc.__context__ from None
        raise LimitExceededError(f"cannot start a thread ({exc})") from None


def join_thread(thread: threading.Thread) -> None:
    """Join a thread whose start may have been interrupted (it then marks itself started a moment
    later: joining before that raises RuntimeError)."""
    for _ in range(1000):
        try:
            thread.join()
            return
        except RuntimeError:  # pragma: no cover - not marked started yet
            time.sleep(0.001)
