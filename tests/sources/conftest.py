"""Fixtures for remote reading: real servers on 127.0.0.1 started and stopped by the tests."""

from __future__ import annotations

import numpy
import pytest

import tiffio
from tests.support.remote import fresh_server


def jpeg_tiles_file(path, size: int = 2048, tile: int = 256) -> numpy.ndarray:
    """tiffio's writer output (IFDs at the end, a leader before each tile): an RGB JPEG image."""
    rng = numpy.random.default_rng(7)
    small = rng.integers(0, 255, (size // 4, size // 4, 3)).astype(numpy.uint8)
    image = numpy.repeat(numpy.repeat(small, 4, axis=0), 4, axis=1)  # tiles of ~35 KB
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(image.shape, "uint8", tile=(tile, tile), compression="jpeg")
        for r in range(size // tile):
            for c in range(size // tile):
                im.write_tile(r, c, image[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile])
    return image


@pytest.fixture(scope="session")
def writer_tif(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote") / "writer.tif"
    jpeg_tiles_file(path)
    return path


@pytest.fixture
def server():
    """A range server on 127.0.0.1 with no added delay, stopped after the test."""
    with fresh_server() as srv:
        yield srv


@pytest.fixture
def slow_server():
    """A range server adding 100 ms per request, so that requests sent together overlap in its
    log however loaded the machine is (round trips are counted from the log, never timed)."""
    with fresh_server(rtt=0.1) as srv:
        yield srv
