"""Shared test helpers: paths to fixtures and the shared corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
CORPUS = Path(os.environ.get("TIFFIO_CORPUS", REPO.parent / "shared" / "corpus"))


@pytest.fixture
def tmp_tif(tmp_path):
    return tmp_path / "test.tif"
