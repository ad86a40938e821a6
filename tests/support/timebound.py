"""A CPU-time bound for a block of test code, with a far wall-clock bound as a hang detector.

CPU time (ITIMER_PROF: user + system time of the whole process, all threads) does not grow with the
machine's load, so a bound on it is the same on a busy developer box and a quiet CI machine; the
wall-clock timer only catches a block that waits forever."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


class BoundExceeded(BaseException):
    """Raised in the bounded block; ``args[0]`` is "CPU" or "wall". A BaseException, so that the
    code under test cannot swallow it."""


@contextlib.contextmanager
def cpu_bound(cpu_seconds: float, hang_seconds: float = 120.0) -> Iterator[None]:
    """Raise :class:`BoundExceeded` in the block once the process has used ``cpu_seconds`` of CPU
    time in it, or ``hang_seconds`` of wall time have passed. Main thread only (signals)."""
    def fire(signum: int, frame: object) -> None:
        raise BoundExceeded("CPU" if signum == signal.SIGPROF else "wall")

    old_prof = signal.signal(signal.SIGPROF, fire)
    old_alarm = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    signal.setitimer(signal.ITIMER_REAL, hang_seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGPROF, old_prof)
        signal.signal(signal.SIGALRM, old_alarm)
