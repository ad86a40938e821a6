"""Shared helpers of the file-safety and writer-concurrency tests: fingerprints of files and folders, the foreign files every repair
entry point must leave alone, small working files written by tiffio."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import numpy

import tiffio
from tests.support.paths import FIXTURES

TILE = 16


def fingerprint(path: Path) -> tuple:
    """What must not change: kind, size, sha256 and mtime of a file (listing and mtime of a folder,
    kind and mtime of anything else)."""
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        return ("file", st.st_size, hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return ("dir", sorted(os.listdir(path)), st.st_mtime_ns)
    return (stat.S_IFMT(st.st_mode), st.st_mtime_ns)


def folder_listing(folder: Path) -> list[str]:
    """Every name in a folder, hidden ones included (lock files, temporaries)."""
    return sorted(os.listdir(folder))


def pixels(seed: int = 0, shape: tuple[int, ...] = (64, 48)) -> numpy.ndarray:
    return numpy.random.default_rng(seed).integers(0, 255, shape, dtype=numpy.uint8)


def write_tiles(image, data: numpy.ndarray, tiles=None) -> None:
    tiles = tiles if tiles is not None else [(r, c) for r in range(image.tiles_down) for c in range(image.tiles_across)]
    for r, c in tiles:
        image.write_tile(r, c, data[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE])


def complete_tiffio_file(path: Path, seed: int = 0) -> numpy.ndarray:
    data = pixels(seed)
    with tiffio.TiffWriter(path, fsync=False) as w:
        im = w.add_image(data.shape, "uint8", tile=(TILE, TILE), compression="deflate")
        write_tiles(im, data)
    return data


def make_foreign(kind: str, path: Path) -> Path:
    """A file (or folder, FIFO) that tiffio's writer did not make, at ``path``."""
    if kind == "zeros":                      # all zeros, as a preallocated or wiped file
        path.write_bytes(b"\0" * 65536)
    elif kind == "sparse":                   # a sparse file: only a hole
        with open(path, "wb") as fh:
            fh.truncate(1 << 20)
    elif kind == "preallocated":             # zeros the filesystem allocated (fallocate)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, 1 << 20)
        finally:
            os.close(fd)
    elif kind == "zero_header":              # 16 zero bytes, then data: what older tiffio versions truncated
        path.write_bytes(b"\0" * 16 + numpy.random.default_rng(1).bytes(65536))
    elif kind == "random":
        path.write_bytes(numpy.random.default_rng(2).bytes(65536))
    elif kind == "gdal_tiff":                # a valid TIFF that tiffio did not write
        shutil.copyfile(FIXTURES / "gdal" / "cog_jpeg_rgb.tif", path)
    elif kind == "tifffile_tiff":
        shutil.copyfile(FIXTURES / "tifffile" / sorted(os.listdir(FIXTURES / "tifffile"))[0], path)
    elif kind == "damaged_signature":        # a tiffio file whose first record fails its CRC: not provable
        complete_tiffio_file(path)
        raw = bytearray(path.read_bytes())
        raw[16 + 28 + 5] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif kind == "folder":
        path.mkdir()
        (path / "inside.txt").write_text("keep me")
    elif kind == "fifo":
        os.mkfifo(path)
    else:  # pragma: no cover
        raise ValueError(kind)
    return path


FOREIGN = ("zeros", "sparse", "preallocated", "zero_header", "random", "gdal_tiff", "tifffile_tiff",
           "damaged_signature", "folder", "fifo")
