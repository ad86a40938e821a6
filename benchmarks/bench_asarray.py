"""Whole-image reads: tiffio ``IFD.asarray()`` vs tifffile ``TiffPage.asarray()`` on striped
uncompressed, tiled uncompressed and Deflate images.

    python benchmarks/bench_asarray.py [--repeat 7] [--write-results]

Files (generated on first run into benchmarks/data/, with tifffile):
  strips_u16_8192.tif       8192 x 8192 uint16, uncompressed, 8-row strips (1024 strips)  128 MiB
  strips_u16_8192_one.tif   the same image as one strip
  strips_u16_8192_be.tif    the same, big-endian, 8-row strips (the result is byte-swapped)
  strips_rgb_4096.tif       4096 x 4096 RGB uint8, uncompressed, 16-row strips            48 MiB
  strips_u16_1024.tif       1024 x 1024 uint16, uncompressed, 64-row strips               2 MiB
  tiled_u16_8192.tif        8192 x 8192 uint16, uncompressed, 256 x 256 tiles
  deflate_u16_8192_t256.tif 8192 x 8192 uint16, Deflate, 256 x 256 tiles (not bench_deflate's file)

Times interleaved run by run in rotating order; ratio = median of per-run ratios tiffio /
tifffile. Target for striped uncompressed: <= 1.0 (one read per contiguous run of strips into
the result, pieces in threads when large; tifffile reads a contiguous image with one readinto).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy
import tifffile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import record  # noqa: E402
from bench_read import (  # noqa: E402
    fmt_time,
    loadavg,
    machine_info,
    machine_text,
    med,
    paired_ratio,
    ratio_spread,
    run_interleaved,
    update_results,
    verdict,
)

import tiffio  # noqa: E402

DATA = os.path.join(HERE, "data")


def _image(shape: tuple[int, ...], dtype: str) -> numpy.ndarray:
    rng = numpy.random.default_rng(23)
    y, x = numpy.mgrid[0:shape[0], 0:shape[1]]
    img = ((y * 7 + x * 3) % 4096 + rng.integers(0, 64, shape[:2])).astype(dtype)
    if len(shape) == 3:
        img = numpy.repeat(img[..., None], shape[2], axis=2)
    return img


FILES = {
    "strips_u16_8192.tif": ("striped uncompressed", lambda p: tifffile.imwrite(p, _image((8192, 8192), "uint16"),
                                                                               rowsperstrip=8)),
    "strips_u16_8192_one.tif": ("striped uncompressed", lambda p: tifffile.imwrite(p, _image((8192, 8192), "uint16"))),
    "strips_u16_8192_be.tif": ("striped uncompressed", lambda p: tifffile.imwrite(
        p, _image((8192, 8192), "uint16"), rowsperstrip=8, byteorder=">")),
    "strips_rgb_4096.tif": ("striped uncompressed", lambda p: tifffile.imwrite(
        p, _image((4096, 4096, 3), "uint8"), rowsperstrip=16, photometric="rgb")),
    "strips_u16_1024.tif": ("striped uncompressed", lambda p: tifffile.imwrite(p, _image((1024, 1024), "uint16"),
                                                                               rowsperstrip=64)),
    "tiled_u16_8192.tif": ("tiled uncompressed", lambda p: tifffile.imwrite(p, _image((8192, 8192), "uint16"),
                                                                            tile=(256, 256))),
    "deflate_u16_8192_t256.tif": ("Deflate tiled", lambda p: tifffile.imwrite(p, _image((8192, 8192), "uint16"),
                                                                         tile=(256, 256), compression="zlib")),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--write-results", action="store_true")
    record.add_json_arg(parser, "bench_asarray")
    args = parser.parse_args(argv)
    record.start("bench_asarray", args.record_json)
    os.makedirs(DATA, exist_ok=True)
    info = machine_info()
    load0 = loadavg()
    rows = []
    for name, (kind, make) in FILES.items():
        path = os.path.join(DATA, name)
        if not os.path.exists(path):
            make(path)
        tif = tiffio.open(path)
        ifd = tif.ifds[0]
        page = tifffile.TiffFile(path).pages[0]
        assert numpy.array_equal(ifd.asarray(), page.asarray())
        times = run_interleaved({"tiffio": ifd.asarray, "tifffile": page.asarray}, args.repeat)
        r = paired_ratio(times, "tiffio", "tifffile")
        target = " <= 1.0 " + verdict(r <= 1.0) if kind == "striped uncompressed" else ""
        rows.append(f"| {name} | {kind} | {ifd.segment_count} | {fmt_time(med(times['tiffio']))} | "
                    f"{fmt_time(med(times['tifffile']))} | {r:.2f} ({ratio_spread(times, 'tiffio', 'tifffile')})"
                    f"{target} |")
        print(rows[-1], flush=True)
        record.pair(f"asarray {name} ({kind}, {ifd.segment_count} segments)", times, "tiffio",
                    {"tifffile TiffPage.asarray": "tifffile"}, area="whole")
        tif.close()
    cmd = f"python benchmarks/bench_asarray.py --repeat {args.repeat}"
    text = "\n".join([f"### Whole-image reads, IFD.asarray vs TiffPage.asarray: `{cmd}`", "",
                      f"{machine_text(info)}; load average {load0} at the start, {loadavg()} at the end.", "",
                      "| file | layout | segments | tiffio | tifffile | ratio |", "|---|---|---:|---:|---:|---|",
                      *rows])
    print(text)
    record.save()
    if args.write_results:
        update_results("bench_asarray", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
