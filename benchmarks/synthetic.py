"""Cheap synthetic dask arrays for bench_arrays.py, in a module of their own so that dask's workers
import the chunk function (and keep its texture cached) instead of receiving it by value per task."""

from __future__ import annotations

import functools

import numpy

TEXTURE_SIZE = 512


def texture():
    y, x = numpy.mgrid[0:TEXTURE_SIZE, 0:TEXTURE_SIZE]
    rng = numpy.random.default_rng(1)
    base = numpy.stack([(numpy.sin(x / 9.0) + numpy.cos(y / 13.0)) * 60 + 128,
                        (numpy.sin((x + y) / 21.0)) * 80 + 120,
                        (numpy.cos((x - y) / 17.0)) * 70 + 110], -1)
    return numpy.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(numpy.uint8)


def synthetic_chunk(block_info=None):
    """Cheap chunk: the texture tiled over the chunk, shifted by the chunk's position."""
    (y0, y1), (x0, x1), _ = block_info[None]["array-location"]
    tex = _texture()
    k = (y0 // 2048 * 7 + x0 // 2048 * 3) % TEXTURE_SIZE
    rolled = numpy.roll(tex, k, axis=1)
    h, w = y1 - y0, x1 - x0
    return numpy.tile(rolled, (-(-h // TEXTURE_SIZE), -(-w // TEXTURE_SIZE), 1))[:h, :w]


@functools.lru_cache(maxsize=1)
def _texture():
    return texture()


def dask_array(n, chunk=2048):
    import dask.array as da
    chunks = tuple(min(chunk, n - i) for i in range(0, n, chunk))
    return da.map_blocks(synthetic_chunk, dtype=numpy.uint8, chunks=(chunks, chunks, (3,)),
                         meta=numpy.empty((0, 0, 0), numpy.uint8))


