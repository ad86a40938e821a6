"""Helpers of the remote-reading tests: a range server started with tiffio's client-side caches
cleared (and cleared again after it stops, since a later server may get the same port), and a
tiled file whose tile (r, c) is filled with r * columns + c."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy

import tiffio
from tests.support.rangeserver import RangeServer


def _clear_client_state() -> None:
    from tiffio._edge.filecache import clear_cache
    from tiffio.sources.http import close_idle_connections
    from tiffio.sources.remote import clear_metadata_cache
    close_idle_connections()
    clear_metadata_cache()
    clear_cache()


@contextlib.contextmanager
def fresh_server(hold_timeout: float | None = None, **kwargs: Any) -> Iterator[RangeServer]:
    """A RangeServer on 127.0.0.1 (``kwargs``: its rtt, conn_rtt...) with no stale idle
    connection, metadata or open file of an earlier test's URLs."""
    _clear_client_state()
    with RangeServer(**kwargs) as srv:
        if hold_timeout is not None:
            srv.hold_timeout = hold_timeout
        yield srv
    _clear_client_state()


def index_tiles_bytes(path: Path, size: int, tile: int) -> bytes:
    """An uncompressed ``size``² uint8 image of ``tile``² tiles, tile (r, c) filled with
    r * (size // tile) + c, written by tiffio to ``path``; its bytes."""
    n = size // tile
    with tiffio.TiffWriter(path) as w:
        im = w.add_image((size, size), "uint8", tile=(tile, tile))
        for r in range(n):
            for c in range(n):
                im.write_tile(r, c, numpy.full((tile, tile), r * n + c, numpy.uint8))
    return path.read_bytes()
