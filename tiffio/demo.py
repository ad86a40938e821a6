"""The main job: write a tiled JPEG pyramid incrementally, then read tiles and regions back.

Run with ``python -m tiffio.demo [--size 8192] [--out demo-output/pyramid.tif]``.

Tiles are produced out of order (a shuffled list, as parallel workers would deliver
them) from an analytic pattern, so the image never exists in memory. Pyramid levels
are written as SubIFDs of level 0 (the OME-TIFF/libvips layout). The file is then
reopened and read by tile index and by region, with timings.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

import numpy

import tiffio


def pattern(y0: int, x0: int, height: int, width: int, scale: int) -> numpy.ndarray:
    """RGB pixels of the analytic test image at level ``scale`` (1, 2, 4, ...)."""
    y = (numpy.arange(y0, y0 + height, dtype=numpy.float32) * scale)[:, None]
    x = (numpy.arange(x0, x0 + width, dtype=numpy.float32) * scale)[None, :]
    r = 127.5 + 127.5 * numpy.sin(x / 700.0) * numpy.cos(y / 900.0)
    g = 127.5 + 127.5 * numpy.sin((x + y) / 333.0)
    b = (((x // 512) + (y // 512)) % 2) * 120 + 60 + 40 * numpy.cos(y / 50.0)
    return numpy.stack([r, g, b], axis=-1).clip(0, 255).astype(numpy.uint8)


def psnr(a: numpy.ndarray, b: numpy.ndarray) -> float:
    mse = float(numpy.mean((a.astype(numpy.float64) - b.astype(numpy.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * numpy.log10(255.0**2 / mse)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="width and height of level 0 (pixels)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", default=os.path.join("demo-output", "pyramid.tif"))
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    tile = args.tile
    rng = random.Random(42)

    print(f"tiffio {tiffio.__version__}: writing a {args.size} x {args.size} RGB JPEG pyramid "
          f"({args.levels} levels, {tile} x {tile} tiles, tiles in random order) to {args.out}")
    t0 = time.perf_counter()
    ntiles = 0
    with tiffio.TiffWriter(args.out) as writer:
        level0 = None
        for level in range(args.levels):
            scale = 2**level
            size = max(1, args.size // scale)
            img = writer.add_image((size, size, 3), numpy.uint8, tile=(tile, tile), compression="jpeg",
                                   jpeg_quality=90, parent=level0, workers=args.workers,
                                   description="tiffio demo pyramid" if level == 0 else None)
            if level0 is None:
                level0 = img
            rows = cols = -(-size // tile)
            order = [(r, c) for r in range(rows) for c in range(cols)]
            rng.shuffle(order)
            for r, c in order:
                h, w = min(tile, size - r * tile), min(tile, size - c * tile)
                img.write_tile(r, c, pattern(r * tile, c * tile, h, w, scale))  # edge tiles given cropped
                ntiles += 1
            writer.flush()  # wait for the encoding threads
            assert not img.missing_tiles()
    t_write = time.perf_counter() - t0
    nbytes = os.path.getsize(args.out)
    print(f"  wrote {ntiles} tiles, {nbytes / 1e6:.1f} MB in {t_write:.2f} s "
          f"({args.size * args.size * 3 * 4 / 3 / 1e6 / t_write:.0f} MB/s of pixels)")

    t0 = time.perf_counter()
    with tiffio.open(args.out) as tif:
        t_open = time.perf_counter() - t0
        print(f"opened in {t_open * 1e3:.2f} ms: {tif.layout.kind}, "
              f"byte order {tif.byteorder!r}, {len(tif.levels)} levels")
        for lv in tif.levels:
            ifd = lv.ifd
            print(f"  level {lv.index}: shape {lv.shape}, downsample {lv.downsample[0]:g}, "
                  f"{ifd.segment_count} tiles, photometric {ifd.photometric}, subsampling {ifd.subsampling}")
        ifd = tif.levels[0].ifd
        picks = [rng.randrange(ifd.segment_count) for _ in range(50)]
        tif.source.reset_counters()
        t0 = time.perf_counter()
        for i in picks:
            ifd.read_segment(i)
        dt = (time.perf_counter() - t0) / len(picks)
        print(f"read 50 random tiles by index: {dt * 1e3:.2f} ms per tile, "
              f"{tif.source.bytes_read / len(picks) / 1e3:.1f} kB read per tile")
        def expected_tile(i: int) -> numpy.ndarray:
            row, col = divmod(i, ifd.grid.across)
            height, width = ifd.segment_valid_shape(i)[:2]
            return pattern(row * tile, col * tile, height, width, 1)

        worst = min(psnr(ifd.read_segment(i, valid=True), expected_tile(i)) for i in picks[:10])
        print(f"  tiles match the pattern written (worst PSNR over 10 tiles: {worst:.1f} dB)")
        y, x, h, w = args.size // 3 + 7, args.size // 5 + 3, min(2048, args.size // 2), min(2048, args.size // 2)
        t0 = time.perf_counter()
        region = tif.read_region(y, x, h, w, workers=args.workers)
        dt = time.perf_counter() - t0
        print(f"read region {h} x {w} at ({y}, {x}) of level 0: {dt * 1e3:.1f} ms, "
              f"PSNR vs pattern {psnr(region, pattern(y, x, h, w, 1)):.1f} dB")
        last = tif.levels[-1]
        t0 = time.perf_counter()
        small = last.ifd.asarray()
        print(f"whole level {last.index} {small.shape}: {1e3 * (time.perf_counter() - t0):.1f} ms, "
              f"PSNR {psnr(small, pattern(0, 0, small.shape[0], small.shape[1], 2**last.index)):.1f} dB")
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
