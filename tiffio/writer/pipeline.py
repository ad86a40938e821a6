"""The encode pipeline: a fixed set of encoder threads fed by a bounded queue (back-pressure).

Jobs are (function, args) pairs that record their own errors; the threads reference only the
queue, so an unclosed writer can still be collected (its finalizer stops them)."""

from __future__ import annotations

import queue
import threading

__all__ = ["EncoderThreads", "encoder_loop"]


def encoder_loop(jobs: queue.Queue) -> None:
    """Body of an encoder thread: run (function, args) jobs until a None arrives.
    Jobs record their own errors; the thread only references the queue."""
    while True:
        item = jobs.get()
        if item is None:
            jobs.task_done()
            return
        try:
            item[0](*item[1])
        except BaseException:  # pragma: no cover - jobs catch their own errors
            pass
        finally:
            item = None  # do not keep the writer alive while waiting
            jobs.task_done()


class EncoderThreads:
    """Exactly ``workers`` encoder threads fed by a bounded queue: the producer blocks once
    ``workers`` tiles wait (so at most 2 x workers tiles are in flight and memory stays bounded)."""

    def __init__(self, workers: int) -> None:
        self.jobs: queue.Queue = queue.Queue(maxsize=workers)
        self.threads: list[threading.Thread] = []
        self.grow(workers)

    def grow(self, workers: int) -> None:
        with self.jobs.mutex:
            self.jobs.maxsize = max(self.jobs.maxsize, workers)
        while len(self.threads) < workers:
            thread = threading.Thread(target=encoder_loop, args=(self.jobs,), daemon=True,
                                      name=f"tiffio-encode-{len(self.threads)}")
            thread.start()
            self.threads.append(thread)

    def join(self) -> None:
        """Wait until every queued job has run."""
        self.jobs.join()

    @staticmethod
    def stop(jobs: queue.Queue, threads: list[threading.Thread], wait: bool) -> None:
        for _ in threads:
            jobs.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
        threads.clear()

