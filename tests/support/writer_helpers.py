"""Shared helpers of the writer tests: write an image tile by tile, read it with every reader, crash a writer."""

from __future__ import annotations

import errno
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import warnings

import imagecodecs
import numpy
import tifffile

import tiffio

try:
    import rasterio
except ImportError:  # pragma: no cover
    rasterio = None


def make_image(shape, dtype, seed=0):
    """A deterministic test image: smooth with noise (compresses, and exercises every bit)."""
    rng = numpy.random.default_rng(seed)
    dtype = numpy.dtype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    info = numpy.iinfo(dtype)
    grid = numpy.indices(shape).sum(axis=0)
    noise = rng.integers(0, 8, shape)
    value = (grid * 3 + noise) % min(info.max - info.min + 1, 2**62)
    return (value + info.min).astype(dtype)


def tile_slices(im, row, col):
    th, tw = im.tile
    return slice(row * th, (row + 1) * th), slice(col * tw, (col + 1) * tw)


def write_tiles(im, data, *, order="random", skip=(), seed=0, cropped=True):
    """Write every tile of ``data`` (the image's full array) into ``im`` except those in ``skip``."""
    separate = im.planarconfig == "separate"
    coords = [(r, c, p) for p in range(im.planes) for r in range(im.tiles_down) for c in range(im.tiles_across)]
    if order == "random":
        random.Random(seed).shuffle(coords)
    th, tw = im.tile
    for r, c, p in coords:
        if (r, c, p) in skip or (r, c) in skip:
            continue
        ys, xs = tile_slices(im, r, c)
        part = data[p, ys, xs] if separate else data[ys, xs]
        if not cropped and part.shape[:2] != (th, tw):
            full = numpy.zeros((th, tw) + part.shape[2:], part.dtype)
            full[: part.shape[0], : part.shape[1]] = part
            part = full
        im.write_tile(r, c, part, plane=p)


def read_tiffio(path, index=0, sub=None):
    with tiffio.open(path) as tf:
        ifd = tf.ifds[index] if sub is None else tf.ifds[index].subifds[sub]
        return ifd.asarray()


def read_tifffile(path, index=0, sub=None):
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[index]
        if sub is not None:
            page = tifffile.TiffPage(tf, index=(index, sub)) if False else None
            tf.pages[index].keyframe  # noqa: B018
            offsets = tf.pages[index].tags["SubIFDs"].value
            tf.filehandle.seek(offsets[sub])
            page = tifffile.TiffPage(tf, index=(index, sub))
        return page.asarray()


def read_libtiff(path, index=0):
    with open(path, "rb") as fh:
        return imagecodecs.tiff_decode(fh.read(), index=index)


def read_gdal(path, index=0):
    """GDAL's view (rasterio): index > 0 are the overviews of the first image (GDAL style)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            if index == 0:
                arr = ds.read()
            else:
                arr = None
        if index:
            with rasterio.open(path, overview_level=index - 1) as ds:
                arr = ds.read()
    return arr


def gdal_as_tifffile(arr, ndim_expected, separate):
    """rasterio returns (bands, y, x); convert to tifffile's axes."""
    if ndim_expected == 2:
        return arr[0]
    if separate:
        return arr
    return numpy.moveaxis(arr, 0, -1)


HAVE_TIFFTOOLS = shutil.which("tiffinfo") is not None and shutil.which("tiffcp") is not None


def run_tifftools(path, tmp_path, *, data=True, copy=True):
    """tiffinfo -D and tiffcp must succeed without errors; returns tiffcp's output path."""
    args = ["tiffinfo", "-D", str(path)] if data else ["tiffinfo", str(path)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Error" not in r.stderr and "error" not in r.stderr.lower(), r.stderr
    if not copy:  # tiffcp cannot decompress subsampled YCbCr without JPEG
        return None
    out = tmp_path / "tiffcp.tif"
    r = subprocess.run(["tiffcp", "-c", "none", str(path), str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "rror" not in r.stderr, r.stderr
    return out


class FullDisk(io.BytesIO):
    """A file object that fails with ENOSPC once its size would pass ``limit`` bytes."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def write(self, data):
        if self.tell() + len(data) > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


CRASH_CHILD = """
import os, signal, sys
import numpy
sys.path.insert(0, {repo!r})
import tiffio
from tiffio.writer.sink import Sink

path, side, tile, checkpoint_after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = numpy.random.default_rng(side).integers(0, 256, (side, side), dtype=numpy.uint8)
w = tiffio.TiffWriter(path, checkpoint_every=None, checkpoint_seconds=None, fsync=False, workers=1)
im = w.add_image(data.shape, "uint8", tile=(tile, tile))
coords = [(r, c) for r in range(im.tiles_down) for c in range(im.tiles_across)]
for k, (r, c) in enumerate(coords[:-1]):
    if k == checkpoint_after:
        w.checkpoint()
    im.write_tile(r, c, data[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile])
w.flush()
real = Sink.pwrite

def torn(self, offset, *parts):  # the last tile's record: half of its bytes reach the file, then SIGKILL
    whole = b"".join(bytes(p) for p in parts)
    real(self, offset, whole[: len(whole) // 2])
    os.kill(os.getpid(), signal.SIGKILL)

Sink.pwrite = torn
r, c = coords[-1]
im.write_tile(r, c, data[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile])
"""


def crash_writer(path, *, side=2048, tile=64, checkpoint_after=20):
    """A file a writer left unfinished: a real child process writes a ``side`` x ``side`` uint8 image of
    random (incompressible) ``tile`` x ``tile`` tiles, uncompressed, makes a checkpoint after
    ``checkpoint_after`` tiles (-1: none), writes every other tile but the last, and is killed by
    SIGKILL halfway through the last tile's record. Returns the image the writer was given."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, "-c", CRASH_CHILD.format(repo=repo), str(path), str(side), str(tile),
                           str(checkpoint_after)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    return numpy.random.default_rng(side).integers(0, 256, (side, side), dtype=numpy.uint8)
