"""``map_tiles``: apply a function to every tile of a TIFF, with a halo, into a new tiled TIFF.

The source is read one tile row at a time (each row of tiles decoded once, by ``read_region``'s
threads); the window of each output tile, with ``overlap`` pixels of halo on every side (clipped
at the image edge, so a filter's own border mode applies exactly where it would on the whole
image), is cut from the rows held, which are dropped when no window needs them any more. Windows
go to ``workers`` threads or processes that run ``func`` and encode the tiles
(:func:`tiffio.fan_in`); this process writes them as they complete. Memory: the tile rows a
window row needs (about ``1 + 2 * ceil(overlap / tile length)`` rows of tiles, full width) and
the tasks in flight.

The output keeps the source's grid (or ``tile=``), and its georeferencing (GeoTIFF tags, the
transform scaled for ``level > 0``) and resolution.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from typing import Any

import numpy

from ..codecs import compression_name
from ..errors import TiffTypeError, TiffValueError, UnsupportedFeatureError
from .blocks import WriteReport
from .fanin import fan_in
from .tiffwriter import TiffWriter

__all__ = ["map_tiles"]


class _Window:
    """One output tile's input: its tile coordinates, the pixels with halo, and where the tile's
    own pixels are in them (picklable: sent to the workers)."""

    __slots__ = ("row", "col", "pixels", "core")

    def __init__(self, row: int, col: int, pixels: numpy.ndarray, core: tuple[slice, slice]) -> None:
        self.row, self.col, self.pixels, self.core = row, col, pixels, core

    def __getstate__(self) -> tuple[int, int, numpy.ndarray, tuple[slice, slice]]:
        return (self.row, self.col, self.pixels, self.core)

    def __setstate__(self, state: tuple[int, int, numpy.ndarray, tuple[slice, slice]]) -> None:
        self.row, self.col, self.pixels, self.core = state

    def __repr__(self) -> str:
        return f"(row {self.row}, col {self.col})"


def _coords(window: _Window) -> tuple[int, int]:
    return window.row, window.col


class _Apply:
    """The worker's side: ``func(window with halo)``, trimmed to the tile (picklable if ``func`` is)."""

    def __init__(self, func: Callable[[numpy.ndarray], Any]) -> None:
        self.func = func

    def __call__(self, window: _Window) -> numpy.ndarray:
        out = numpy.asarray(self.func(window.pixels))
        ys, xs = window.core
        core_shape = (ys.stop - ys.start, xs.stop - xs.start)
        if out.shape[:2] == window.pixels.shape[:2]:
            out = out[ys, xs]
        elif out.shape[:2] != core_shape:
            raise TiffValueError(f"map_tiles: func returned shape {out.shape} for the window of tile {window!r}: "
                                 f"expected the window's {window.pixels.shape[:2]} (trimmed here) or the tile's "
                                 f"{core_shape}")
        return out


class _Rows:
    """Rows of source tiles decoded once each, held while windows need them."""

    def __init__(self, ifd: Any, tile_rows: int, workers: int) -> None:
        self.ifd = ifd
        self.tile_rows = tile_rows
        self.workers = workers
        self.rows: dict[int, numpy.ndarray] = {}

    def read(self, y0: int, y1: int) -> numpy.ndarray:
        """Image rows y0..y1 (all columns), decoding the rows of tiles not held yet and dropping
        those above y0."""
        th = self.tile_rows
        first, last = y0 // th, (y1 - 1) // th
        for k in [k for k in self.rows if k < first]:
            del self.rows[k]
        parts = []
        for k in range(first, last + 1):
            arr = self.rows.get(k)
            if arr is None:
                top = k * th
                arr = self.ifd.read_region(top, 0, min(th, self.ifd.length - top), self.ifd.width,
                                           workers=self.workers)
                if arr.ndim == 3 and self.ifd.is_separate:
                    arr = numpy.moveaxis(arr, 0, -1)
                self.rows[k] = arr
            parts.append(arr[max(0, y0 - k * th): y1 - k * th])
        return parts[0] if len(parts) == 1 else numpy.concatenate(parts)


def _windows(rows: _Rows, height: int, width: int, tile: tuple[int, int], overlap: int) -> Iterator[_Window]:
    th, tw = tile
    for row in range(-(-height // th)):
        y0, y1 = row * th, min(height, (row + 1) * th)
        ya, yb = max(0, y0 - overlap), min(height, y1 + overlap)
        band = rows.read(ya, yb)
        for col in range(-(-width // tw)):
            x0, x1 = col * tw, min(width, (col + 1) * tw)
            xa, xb = max(0, x0 - overlap), min(width, x1 + overlap)
            yield _Window(row, col, band[:, xa:xb], (slice(y0 - ya, y1 - ya), slice(x0 - xa, x1 - xa)))


def _georeferencing(tif: Any, level: Any) -> list:
    """The GeoTIFF tags for ``level`` (level 0's, the transform scaled by the level's downsample)."""
    geo = tif.levels[0].ifd.geotiff
    if geo is None:
        return []
    if level.index and geo.transform is not None:
        fy, fx = level.downsample
        a, b, c, d, e, f = geo.transform
        geo = replace(geo, transform=(a * fx, b * fy, c, d * fx, e * fy, f))
    return list(geo.to_tags())


def map_tiles(src: Any, dst: Any, func: Callable[[numpy.ndarray], Any], *, overlap: int = 0, level: int = 0,
              workers: int | None = None, processes: bool = False, tile: Any = None, compression: Any = None,
              pyramid: bool = False, max_pending: int | None = None, **options: Any) -> WriteReport:
    """Write ``func`` applied tile by tile to one level of ``src`` (a path, or anything
    ``tiffio.open`` opens) as a tiled TIFF ``dst``; returns a :class:`tiffio.WriteReport`.

    ``func(window)`` gets the pixels of one output tile with ``overlap`` pixels of halo on every
    side (fewer at the image edge: the window is clipped there, so that a filter's own border
    handling applies where it would on the whole image) and returns either an array of the
    window's height and width, which is trimmed to the tile, or the tile itself; its dtype and
    samples set the output's. Output tiles are the source's (``tile=`` another size, multiples of
    16; a striped source gets 256 x 256) and are written as they complete, by ``workers`` threads
    (default: the CPU count), or processes with ``processes=True`` (``func`` must then pickle: a
    module-level function). ``compression`` (default none), ``pyramid`` and ``options`` are
    those of ``TiffWriter.add_image``. GeoTIFF tags and resolution are copied (scaled for a
    reduced ``level``). An exception of ``func`` stops the run with TiffError naming the tile;
    the tiles written stay in ``dst`` (``TiffWriter(dst, mode='resume')``).
    """
    from ..read.file import TiffFile
    from ..read.file import open as tiff_open
    start = time.perf_counter()
    if not callable(func):
        raise TiffTypeError(f"func must be callable, not {type(func).__name__}")
    if not isinstance(overlap, (int, numpy.integer)) or isinstance(overlap, bool) or overlap < 0:
        raise TiffValueError(f"overlap must be an int >= 0, not {overlap!r}")
    workers = max(1, int(workers or os.cpu_count() or 1))
    tif = src if isinstance(src, TiffFile) else tiff_open(src)
    try:
        levels = tif.levels
        if not -len(levels) <= level < len(levels):
            raise TiffValueError(f"{tif.name}: level {level} out of range: the image has {len(levels)} levels")
        lvl = levels[level]
        ifd = lvl.ifd
        if ifd.depth > 1:
            raise UnsupportedFeatureError(f"{ifd.where}: map_tiles reads 2-D images, not volumes")
        if tile is None:
            tile = ifd.grid.segment[1:] if ifd.grid.tiled else (256, 256)
        th, tw = (int(tile), int(tile)) if isinstance(tile, (int, numpy.integer)) else (int(tile[0]), int(tile[1]))
        height, width = ifd.length, ifd.width
        rows = _Rows(ifd, ifd.grid.segment[1] if ifd.grid.tiled else th, workers)
        windows = _windows(rows, height, width, (th, tw), int(overlap))
        apply = _Apply(func)
        first = next(windows)
        pixels = apply(first)  # here: the output's dtype and samples come from func's result
        resolution = options.pop("resolution", None)
        res = levels[0].ifd.resolution
        if resolution is None and res is not None:
            fy, fx = lvl.downsample
            resolution = (res.x / fx, res.y / fy, res.unit or "none")
        extratags = _georeferencing(tif, lvl) + list(options.pop("extratags", ()))
        shape = (height, width) + tuple(pixels.shape[2:])
        report = WriteReport(path=os.fspath(dst) if isinstance(dst, (str, os.PathLike)) else str(dst),
                             shape=shape, dtype=pixels.dtype.str, tile=(th, tw))
        executor = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if processes else \
            ThreadPoolExecutor(workers, thread_name_prefix="tiffio-map-tiles")
        try:
            with TiffWriter(dst, workers=workers) as writer:
                image = writer.add_image(shape, pixels.dtype, tile=(th, tw), compression=compression,
                                         pyramid=True if pyramid else None, resolution=resolution,
                                         extratags=extratags, **options)
                report.levels = [tuple(im.shape) for im in image.levels]
                report.compression = compression_name(image.compression)
                image.write_region(0, 0, pixels)
                fan = fan_in(image, windows, apply, executor, coords=_coords, max_pending=max_pending or 2 * workers)
                report.blocks = fan.blocks + 1
                report.max_in_flight = fan.max_in_flight
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    finally:
        if tif is not src:
            tif.close()
    report.segments = sum(im.tile_count for im in image.levels)
    if isinstance(dst, (str, os.PathLike)):
        report.file_bytes = os.path.getsize(dst)
    report.seconds = time.perf_counter() - start
    return report
