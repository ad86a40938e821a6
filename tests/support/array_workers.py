"""Functions the array-writing tests run in worker processes (importable by spawned processes)."""

from __future__ import annotations

import os
import time

import numpy

TILE = 32


def pixels(shape, seed=0, dtype="uint8"):
    """The deterministic test image."""
    rng = numpy.random.default_rng(seed)
    return rng.integers(0, 255, shape).astype(dtype)


def produce_block(key):
    """A block of 2 x 2 tiles of pixels((200, 260, 3)) whose top-left tile is key (row, col)."""
    row, col = key
    data = pixels((200, 260, 3))
    return data[row * TILE:(row + 2) * TILE, col * TILE:(col + 2) * TILE]


def synthetic_chunk(block_info=None):
    """A cheap, position-dependent chunk for dask.array.map_blocks (RGB uint8)."""
    (y0, y1), (x0, x1), _ = block_info[None]["array-location"]
    y, x = numpy.mgrid[y0:y1, x0:x1]
    out = numpy.empty((y1 - y0, x1 - x0, 3), numpy.uint8)
    out[..., 0] = (x * 7 + y) % 251
    out[..., 1] = (y * 5 + x // 3) % 241
    out[..., 2] = (x ^ y) % 256
    return out


def synthetic(shape, chunks):
    """A dask array of synthetic RGB chunks (no data in the graph)."""
    import dask.array as da
    return da.map_blocks(synthetic_chunk, dtype=numpy.uint8,
                         chunks=(_split(shape[0], chunks[0]), _split(shape[1], chunks[1]), (3,)),
                         meta=numpy.empty((0, 0, 0), numpy.uint8))


def _split(n, c):
    return tuple(min(c, n - i) for i in range(0, n, c))


def synthetic_reference(shape):
    y, x = numpy.mgrid[0:shape[0], 0:shape[1]]
    out = numpy.empty((shape[0], shape[1], 3), numpy.uint8)
    out[..., 0] = (x * 7 + y) % 251
    out[..., 1] = (y * 5 + x // 3) % 241
    out[..., 2] = (x ^ y) % 256
    return out


def logged_chunk(log_dir, delay, block_info=None):
    """synthetic_chunk that records each computation as a file in ``log_dir`` (and can be slow)."""
    (y0, _), (x0, _), _ = block_info[None]["array-location"]
    with open(os.path.join(log_dir, f"{y0}_{x0}_{time.monotonic_ns()}"), "w"):
        pass
    if delay:
        time.sleep(delay)
    return synthetic_chunk(block_info)


def log9(a):
    """A 9 x 9 Laplacian of Gaussian (radius 4), float32."""
    import scipy.ndimage
    return scipy.ndimage.gaussian_laplace(a, 1.4, output=numpy.float32, truncate=4 / 1.4)
