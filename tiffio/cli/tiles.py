"""``tiffio tiles``: one tile (or strip) out of a file, as stored bytes or decoded."""

from __future__ import annotations

import argparse
import io
import os
import sys
from typing import Any

from ._common import CLIError, current, open_tiff

__all__ = ["register"]

EXAMPLES = """examples:
  tiffio tiles slide.svs --level 2 --at 3 4 --png -o tile.png     decoded, as PNG
  tiffio tiles scan.tif --index 17 --raw -o tile.bin               the stored bytes
  tiffio tiles scan.tif --index 17 --npy -o tile.npy               decoded, as a numpy .npy file
  tiffio tiles slide.svs --at 10 12 -o tile.jpg                    a JPEG tile as a .jpg, not re-encoded
  tiffio tiles cog.tif --at 0 0 --raw -o - | xxd | head            to stdout
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("tiles", parents=[common], help="one tile or strip out: raw bytes, PNG or .npy",
                       description="Extract one tile or strip of a level: the bytes as stored (--raw), or decoded "
                                   "and cropped to the image (--png, --npy). The format follows -o's extension "
                                   "when none is given.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE|URL")
    p.add_argument("--level", type=int, default=0, help="pyramid level (default 0)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--index", type=int, help="segment index (libtiff's order: row-major, planes last)")
    where.add_argument("--at", type=int, nargs=2, metavar=("ROW", "COL"), help="tile row and column")
    p.add_argument("--plane", type=int, default=0, help="sample plane with --at (separate planes)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--raw", dest="format", action="store_const", const="raw", help="the stored bytes")
    fmt.add_argument("--png", dest="format", action="store_const", const="png", help="decoded, as PNG")
    fmt.add_argument("--npy", dest="format", action="store_const", const="npy", help="decoded, as .npy")
    fmt.add_argument("--jpeg", dest="format", action="store_const", const="jpeg",
                     help="a JPEG tile as a standalone .jpg (JPEGTables merged in; not re-encoded)")
    p.add_argument("--full", action="store_true", help="decoded: keep the padding of edge tiles")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file, '-' for stdout")
    p.set_defaults(func=run)


def _index(ifd: Any, args: argparse.Namespace) -> int:
    count = ifd.segment_count
    if args.index is not None:
        index = args.index
    else:
        row, col = args.at
        if ifd.is_tiled:
            tl, tw = ifd.tile_shape
            down, across = -(-ifd.length // tl), -(-ifd.width // tw)
        else:
            down, across = -(-ifd.length // ifd.rows_per_strip), 1
        if not (0 <= row < down and 0 <= col < across):
            raise CLIError(f"{args.file}: {ifd.where}: --at {row} {col} is outside the grid of {down} x {across} "
                           f"{'tiles' if ifd.is_tiled else 'strips'}", 2)
        planes = ifd.samples_per_pixel if ifd.is_separate else 1
        if not 0 <= args.plane < planes:
            raise CLIError(f"{args.file}: --plane {args.plane}: the image has {planes} planes", 2)
        index = (args.plane * down + row) * across + col
    if not 0 <= index < count:
        raise CLIError(f"{args.file}: {ifd.where}: segment {index} out of range (0..{count - 1})", 2)
    return index


def _png(array: Any) -> bytes:
    import imagecodecs
    import numpy

    if array.dtype not in (numpy.uint8, numpy.uint16) and array.dtype != bool:
        raise CLIError(f"PNG holds 8- or 16-bit unsigned samples, not {array.dtype}; use --npy or --raw")
    if array.dtype == bool:
        array = array.astype(numpy.uint8) * 255
    if array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4):
        raise CLIError(f"PNG holds 1 to 4 samples per pixel, not {array.shape[2]}; use --npy")
    return bytes(imagecodecs.png_encode(numpy.ascontiguousarray(array)))


def _standalone_jpeg(ifd: Any, index: int, name: str) -> bytes:
    """The stored JPEG stream with the IFD's JPEGTables spliced in after its SOI marker."""
    if int(ifd.compression) != 7:
        raise CLIError(f"{name}: {ifd.where}: --jpeg needs JPEG (7) tiles, not compression {int(ifd.compression)}; "
                       "use --png or --raw", 2)
    data = bytes(ifd.read_segment_bytes(index))
    tables = ifd.jpegtables
    if not data:
        raise CLIError(f"{name}: {ifd.where}: segment {index} is sparse (not stored)")
    if tables and len(tables) > 4 and data[:2] == b"\xff\xd8":
        data = data[:2] + tables[2:-2] + data[2:]  # tables without their SOI and EOI
    return data


def run(args: argparse.Namespace) -> int:
    out = args.output
    fmt = args.format
    if fmt is None:
        ext = os.path.splitext(out)[1].lower()
        fmt = {".png": "png", ".npy": "npy", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(ext, "raw")
    if out == "-" and sys.stdout.isatty():
        raise CLIError("refusing to write binary data to a terminal; give -o FILE or redirect stdout", 2)
    with open_tiff(args.file) as tif:
        levels = tif.levels
        if not -len(levels) <= args.level < len(levels):
            raise CLIError(f"{args.file}: --level {args.level}: the image has {len(levels)} levels", 2)
        ifd = levels[args.level].ifd
        index = _index(ifd, args)
        if fmt == "raw":
            data = bytes(ifd.read_segment_bytes(index))
        elif fmt == "jpeg":
            data = _standalone_jpeg(ifd, index, args.file)
        else:
            array = ifd.read_segment(index, valid=not args.full)
            if fmt == "png":
                data = _png(array)
            else:
                import numpy

                buf = io.BytesIO()
                numpy.save(buf, array)
                data = buf.getvalue()
    current(out)
    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        with open(out, "wb") as f:
            f.write(data)
    return 0
