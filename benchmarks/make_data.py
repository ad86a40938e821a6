"""Generate the reader benchmark files (deterministic, written with tifffile).

    python benchmarks/make_data.py            # all files, skip those that exist
    python benchmarks/make_data.py --force    # regenerate

Files (in benchmarks/data/, git-ignored):

wsi_40960_jpeg.tif
    40960 x 40960 RGB, uint8, BigTIFF, JPEG quality 85, stored as YCbCr with 2x2
    chroma subsampling (tifffile's default for ``compression='jpeg'`` on RGB:
    Photometric=YCbCr, YCbCrSubSampling=(2, 2), one complete JPEG stream per tile,
    no JPEGTables). Level 0 is tiled 512 x 512 (80 x 80 = 6400 tiles); levels 1..6
    (2x, 4x, ... 64x down: 20480 ... 640 pixels) are SubIFDs of level 0, also
    tiled 512 x 512. Tile content: windows at random offsets into 4 synthetic
    1024 x 1024 "H&E-like" textures (stain gradients, nuclei blobs, Gaussian
    noise), so every tile is distinct and compresses to ~40 KiB like a real
    whole-slide image tile. Lower levels use the same generator (their content is
    not a real downsample; that does not matter for reading speed).

wsi_40960_jpeg_large.tif
    The same geometry and JPEG settings as wsi_40960_jpeg.tif, level 0 only (no SubIFDs),
    with noisier textures (Gaussian noise sigma 70 instead of 6): tiles of ~177 KB
    (1.1 GiB in all), like scanned tissue at high quality. Per-tile costs that grow
    with the tile's byte size (reads, buffers, page faults) show here first.

tiles16_16384_u8.tif
    16384 x 16384 gray uint8, BigTIFF, uncompressed, tiled 16 x 16
    (1024 x 1024 = 1,048,576 tiles; TileOffsets and TileByteCounts are 8 MiB
    each). Content: a cheap deterministic pattern.

Nothing close to the full 5 GB level-0 array is ever held in memory: tifffile
receives a tile generator and encodes tiles on ``--workers`` threads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy
import tifffile

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
WSI = os.path.join(DATA, "wsi_40960_jpeg.tif")
TILES16 = os.path.join(DATA, "tiles16_16384_u8.tif")
WSI_LARGE = os.path.join(DATA, "wsi_40960_jpeg_large.tif")

WSI_SIZE = 40960
WSI_TILE = 512
WSI_LEVELS = 7  # 40960, 20480, 10240, 5120, 2560, 1280, 640
JPEG_QUALITY = 85
LARGE_NOISE = 70.0  # texture noise of wsi_40960_jpeg_large.tif: ~177 KB per 512 x 512 tile
TILES16_SIZE = 16384
TILES16_TILE = 16
SEED = 20240601


def texture(rng: numpy.random.Generator, size: int = 1024, noise: float = 6.0) -> numpy.ndarray:
    """A synthetic H&E-like RGB texture: pink background with low-frequency stain
    variation, purple nuclei blobs and Gaussian noise."""
    y, x = numpy.mgrid[0:size, 0:size].astype(numpy.float32)
    img = numpy.broadcast_to(numpy.array([235, 200, 220], numpy.float32), (size, size, 3)).copy()
    for _ in range(6):
        fy, fx = rng.uniform(0.002, 0.02, 2)
        py, px = rng.uniform(0, 6.28, 2)
        amp = rng.uniform(5, 20, 3).astype(numpy.float32)
        img -= (numpy.sin(y * fy + py) * numpy.cos(x * fx + px))[..., None] * amp
    n = 400
    cy, cx = rng.uniform(0, size, n), rng.uniform(0, size, n)
    r = rng.uniform(3, 9, n)
    mask = numpy.zeros((size, size), numpy.float32)
    for i in range(n):
        y0, y1 = int(max(cy[i] - r[i] - 1, 0)), int(min(cy[i] + r[i] + 2, size))
        x0, x1 = int(max(cx[i] - r[i] - 1, 0)), int(min(cx[i] + r[i] + 2, size))
        d = ((y[y0:y1, x0:x1] - cy[i]) ** 2 + (x[y0:y1, x0:x1] - cx[i]) ** 2) / r[i] ** 2
        mask[y0:y1, x0:x1] = numpy.maximum(mask[y0:y1, x0:x1], numpy.clip(1.2 - d, 0, 1))
    img = img * (1 - mask[..., None]) + numpy.array([110, 60, 150], numpy.float32) * mask[..., None]
    img += rng.normal(0, noise, img.shape).astype(numpy.float32)
    return numpy.clip(img, 0, 255).astype(numpy.uint8)


def wsi_tiles(textures: list[numpy.ndarray], level_size: int, tile: int, seed: int):
    """Yield the tiles of one level in row-major order (views into the textures)."""
    rng = numpy.random.default_rng(seed)
    n = -(-level_size // tile)
    span = textures[0].shape[0] - tile
    for ty in range(n):
        for tx in range(n):
            k = int(rng.integers(len(textures)))
            dy, dx = (int(v) for v in rng.integers(0, span, 2))
            h = min(tile, level_size - ty * tile)
            w = min(tile, level_size - tx * tile)
            yield textures[k][dy: dy + h, dx: dx + w]


def make_wsi(path: str, workers: int) -> None:
    rng = numpy.random.default_rng(SEED)
    textures = [texture(rng) for _ in range(4)]
    common = dict(dtype=numpy.uint8, tile=(WSI_TILE, WSI_TILE), photometric="rgb",
                  compression="jpeg", compressionargs={"level": JPEG_QUALITY}, maxworkers=workers)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        size = WSI_SIZE
        tif.write(wsi_tiles(textures, size, WSI_TILE, SEED + 0), shape=(size, size, 3),
                  subifds=WSI_LEVELS - 1, **common)
        for level in range(1, WSI_LEVELS):
            size = WSI_SIZE >> level
            tif.write(wsi_tiles(textures, size, WSI_TILE, SEED + level), shape=(size, size, 3),
                      subfiletype=1, **common)


def make_wsi_large(path: str, workers: int) -> None:
    rng = numpy.random.default_rng(SEED + 100)
    textures = [texture(rng, noise=LARGE_NOISE) for _ in range(4)]
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(wsi_tiles(textures, WSI_SIZE, WSI_TILE, SEED + 100), shape=(WSI_SIZE, WSI_SIZE, 3),
                  dtype=numpy.uint8, tile=(WSI_TILE, WSI_TILE), photometric="rgb", compression="jpeg",
                  compressionargs={"level": JPEG_QUALITY}, maxworkers=workers)


def make_tiles16(path: str) -> None:
    # cheap deterministic content: a diagonal ramp xor a coarse checker
    y = numpy.arange(TILES16_SIZE, dtype=numpy.uint32)[:, None]
    x = numpy.arange(TILES16_SIZE, dtype=numpy.uint32)[None, :]
    data = (((y + x) >> 6) ^ ((y >> 4) * 7 + (x >> 4) * 13)).astype(numpy.uint8)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(data, tile=(TILES16_TILE, TILES16_TILE), photometric="minisblack", compression=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="regenerate files that exist")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="JPEG encoding threads")
    parser.add_argument("--only", choices=("wsi", "tiles16", "large"), help="generate only one file")
    args = parser.parse_args(argv)
    os.makedirs(DATA, exist_ok=True)
    jobs = [("wsi", WSI, lambda p: make_wsi(p, args.workers)), ("tiles16", TILES16, make_tiles16),
            ("large", WSI_LARGE, lambda p: make_wsi_large(p, args.workers))]
    for name, path, func in jobs:
        if args.only and args.only != name:
            continue
        if os.path.exists(path) and not args.force:
            print(f"{path}: exists ({os.path.getsize(path) / 2**20:.0f} MiB), skipped (--force to regenerate)")
            continue
        t0 = time.perf_counter()
        tmp = path + ".part"
        func(tmp)
        os.replace(tmp, path)
        print(f"{path}: {os.path.getsize(path) / 2**20:.0f} MiB in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
