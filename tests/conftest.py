"""Fixtures every test folder shares (helpers and builders are in tests/support)."""

from __future__ import annotations

import pytest


@pytest.fixture
def tmp_tif(tmp_path):
    return tmp_path / "test.tif"
