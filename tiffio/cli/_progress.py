"""Progress bars for long commands: tqdm (the ``cli`` extra), imported only when a bar is shown.

A bar is shown when stdout and stderr are terminals and ``--quiet`` was not given; it reports
tiles/s and the time left, is drawn on stderr, and disappears when the work is done. Without
tqdm installed the commands run the same, without a bar.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "progress"]


class Progress:
    """A counter with an optional tqdm bar; ``update(n)`` after each n units of work."""

    def __init__(self, total: int | None, desc: str, unit: str, enabled: bool) -> None:
        self.count = 0
        self._bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # the cli extra is not installed: no bar
                return
            try:  # a terminal that reports no size (0 x 0: some ptys) gets 80 x 24, else tqdm draws nothing
                size = os.get_terminal_size(sys.stderr.fileno())
                sized = size.columns > 0 and size.lines > 0
            except (OSError, ValueError):
                sized = False
            self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", leave=False, file=sys.stderr,
                             dynamic_ncols=sized, ncols=None if sized else 80, nrows=None if sized else 24,
                             smoothing=0.1, mininterval=0.1)

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)

    def set_total(self, total: int) -> None:
        if self._bar is not None and self._bar.total != total:
            self._bar.total = total
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def terminal() -> bool:
    try:
        return sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress(total: int | None, desc: str, *, quiet: bool, unit: str = "tile") -> Progress:
    return Progress(total, desc, unit, enabled=not quiet and terminal())


def copy_callback(bar: Progress) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback for tiffio.merge / relayout / recover that drives ``bar``."""
    def report(copied: int, total: int) -> None:
        bar.set_total(total)
        bar.update(copied - bar.count)
    return report
