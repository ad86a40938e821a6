"""Shared test helpers: paths to fixtures and the shared corpus."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
CORPUS = Path(os.environ.get("TIFFIO_CORPUS", REPO.parent / "shared" / "corpus"))


@pytest.fixture
def tmp_tif(tmp_path):
    return tmp_path / "test.tif"


def run_in_threads(work: Callable[[int], None], count: int = 16) -> list[BaseException]:
    """Start ``count`` threads running ``work(k)`` at once, wait for all, and return what they raised."""
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            work(k)
        except BaseException as exc:  # pragma: no cover - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
