"""``tiffio tiles``: tiles (or strips) out of a file, as stored bytes, decoded, or as standalone .jpg
files: one (``--index``, ``--at``), ranges of rows and columns (``--rows``, ``--cols``) or all of a
level (``--all``), many written by one process."""

from __future__ import annotations

import argparse
import io
import os
import string
import sys
from collections.abc import Iterator
from typing import Any

from ._common import CLIError, current, fmt_bytes, open_tiff
from ._progress import progress

__all__ = ["register"]

EXAMPLES = """examples:
  tiffio tiles slide.svs --level 2 --at 3 4 --png -o tile.png     decoded, as PNG
  tiffio tiles scan.tif --index 17 --raw -o tile.bin               the stored bytes
  tiffio tiles scan.tif --index 17 --npy -o tile.npy               decoded, as a numpy .npy file
  tiffio tiles slide.svs --at 10 12 -o tile.jpg                    a JPEG tile as a .jpg, not re-encoded
  tiffio tiles slide.svs --all -o 'out/tile_{row}_{col}.jpg'       every tile of level 0 as a .jpg
  tiffio tiles slide.svs --rows 10:20 --cols 5 --jpeg -o out/      rows 10-19 of column 5, into out/
  tiffio tiles cog.tif --at 0 0 --raw -o - | xxd | head            to stdout
"""

DESCRIPTION = """Extract tiles or strips of a level: the bytes as stored (--raw), decoded and cropped to
the image (--png, --npy), or JPEG tiles as standalone .jpg files (--jpeg: JPEGTables merged in,
colour space declared, not re-encoded). One tile (--index, --at) or many in one process (--all,
--rows, --cols). The format follows OUT's extension when none is given.

"""

MANY = """several tiles (--all, --rows, --cols): OUT is a name pattern or a folder.
  pattern  fields {row} {col} {plane} {index} {level}, with Python format specs
           ('out/{row:03d}_{col:03d}.png'); the format follows its extension when no
           --raw/--png/--npy/--jpeg is given; missing folders are made.
  folder   an existing folder, or a name ending in '/': files tile_{row}_{col}.EXT
           (tile_{plane}_{row}_{col}.EXT with separate planes), EXT .bin, .png, .npy or .jpg
           after the format (default --raw).
  Every tile gets its own name (a pattern that would give two tiles one name is refused
  before anything is written). Sparse tiles (not stored) are skipped with --raw and --jpeg
  and counted on stderr; --png and --npy write their fill value, as for one tile.
  RANGE is N, START:STOP (STOP excluded), START:, :STOP or ':' (all); negative numbers
  count from the end. --rows alone takes every column, --cols alone every row."""

_EXTENSIONS = {"raw": ".bin", "png": ".png", "npy": ".npy", "jpeg": ".jpg"}
_FORMATS = {".png": "png", ".npy": "npy", ".jpg": "jpeg", ".jpeg": "jpeg"}
_FIELDS = ("row", "col", "plane", "index", "level")
#: tiles read per batch: one planned fetch on a remote source, decoded on the thread pool
_BATCH = 64


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("tiles", parents=[common], help="tiles or strips out: raw bytes, PNG, .npy or .jpg",
                       description=DESCRIPTION + MANY,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE|URL")
    p.add_argument("--level", type=int, default=0, help="pyramid level (default 0)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--index", type=int, help="segment index (libtiff's order: row-major, planes last)")
    where.add_argument("--at", type=int, nargs=2, metavar=("ROW", "COL"), help="tile row and column")
    where.add_argument("--all", action="store_true", help="every tile of the level (every plane unless --plane)")
    p.add_argument("--rows", metavar="RANGE", help="tile rows, e.g. 3 or 10:20 (see above)")
    p.add_argument("--cols", metavar="RANGE", help="tile columns, e.g. 5 or 0:8")
    p.add_argument("--plane", type=int, help="sample plane (separate planes; default 0, all with --all)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--raw", dest="format", action="store_const", const="raw", help="the stored bytes")
    fmt.add_argument("--png", dest="format", action="store_const", const="png", help="decoded, as PNG")
    fmt.add_argument("--npy", dest="format", action="store_const", const="npy", help="decoded, as .npy")
    fmt.add_argument("--jpeg", dest="format", action="store_const", const="jpeg",
                     help="a JPEG tile as a standalone .jpg (IFD.read_segment_jpeg: not re-encoded)")
    p.add_argument("--full", action="store_true", help="decoded: keep the padding of edge tiles")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file, '-' for stdout; for several tiles a name pattern or a folder")
    p.set_defaults(func=run)


# --- which tiles -------------------------------------------------------------------------------

def _grid(ifd: Any) -> tuple[int, int, int]:
    """(planes, rows, columns) of the level's segment grid."""
    if ifd.is_tiled:
        tl, tw = ifd.tile_shape
        down, across = -(-ifd.length // tl), -(-ifd.width // tw)
    else:
        down, across = -(-ifd.length // ifd.rows_per_strip), 1
    planes = ifd.samples_per_pixel if ifd.is_separate else 1
    return planes, down, across


def _range(text: str | None, size: int, name: str, where: str) -> range:
    """RANGE of --rows / --cols over ``size`` rows or columns."""
    if text is None:
        return range(size)
    try:
        if ":" in text:
            start_text, stop_text = text.split(":", 1)
            start = int(start_text) if start_text.strip() else None
            stop = int(stop_text) if stop_text.strip() else None
            return range(size)[slice(start, stop)]
        k = int(text)
    except ValueError:
        raise CLIError(f"{name} {text!r}: not N, START:STOP, START:, :STOP or ':'", 2) from None
    if not -size <= k < size:
        raise CLIError(f"{where}: {name} {k} is outside the {size} {name[2:]} of the grid", 2)
    return range(k % size, k % size + 1)


def _selection(ifd: Any, args: argparse.Namespace) -> list[tuple[int, int, int, int]]:
    """(index, plane, row, col) of the tiles asked for, in index order."""
    planes, down, across = _grid(ifd)
    where = f"{args.file}: {ifd.where}"
    kind = "tiles" if ifd.is_tiled else "strips"
    many = args.all or args.rows is not None or args.cols is not None
    if (args.index is not None or args.at is not None) and (args.rows is not None or args.cols is not None):
        raise CLIError("--rows/--cols select several tiles; they do not combine with --index or --at", 2)
    if args.plane is not None and not 0 <= args.plane < planes:
        raise CLIError(f"{args.file}: --plane {args.plane}: the image has {planes} planes", 2)
    if args.index is not None:
        count = ifd.segment_count
        if not 0 <= args.index < count:
            raise CLIError(f"{where}: segment {args.index} out of range (0..{count - 1})", 2)
        plane, rest = divmod(args.index, down * across)
        return [(args.index, plane, *divmod(rest, across))]
    if args.at is not None:
        row, col = args.at
        if not (0 <= row < down and 0 <= col < across):
            raise CLIError(f"{where}: --at {row} {col} is outside the grid of {down} x {across} {kind}", 2)
        rows, cols = range(row, row + 1), range(col, col + 1)
        plane_list = [args.plane or 0]
    elif many:
        rows = _range(args.rows, down, "--rows", where)
        cols = _range(args.cols, across, "--cols", where)
        plane_list = list(range(planes)) if args.all and args.plane is None else [args.plane or 0]
    else:
        raise CLIError("say which tiles: --index I, --at ROW COL, --all, or --rows/--cols RANGE", 2)
    tiles = [((plane * down + row) * across + col, plane, row, col) for plane in plane_list for row in rows
             for col in cols]
    if not tiles:
        raise CLIError(f"{where}: --rows {args.rows or ':'} --cols {args.cols or ':'} select no {kind} of the grid "
                       f"of {down} x {across}", 2)
    return tiles


# --- where they go -----------------------------------------------------------------------------

def _is_folder(out: str) -> bool:
    return os.path.isdir(out) or out.endswith(("/", os.sep))


def _pattern(out: str, fmt: str | None, planes: int) -> tuple[str, str | None]:
    """(name pattern, format or None) for several tiles written to OUT."""
    if "{" in out:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(out) if name is not None}
        except ValueError as exc:
            raise CLIError(f"-o {out!r}: {exc}", 2) from None
        unknown = fields - set(_FIELDS)
        if unknown or "" in fields:
            raise CLIError(f"-o {out!r}: unknown field {sorted(unknown or {''})[0]!r}; the fields are "
                           + ", ".join("{" + f + "}" for f in _FIELDS), 2)
        return out, fmt or _FORMATS.get(os.path.splitext(out)[1].lower())
    if _is_folder(out):
        fmt = fmt or "raw"
        name = "tile_{plane}_{row}_{col}" if planes > 1 else "tile_{row}_{col}"
        return os.path.join(out, name + _EXTENSIONS[fmt]), fmt
    raise CLIError(f"-o {out!r}: several tiles need a name pattern with fields such as {{row}} and {{col}} "
                   "(e.g. 'out/tile_{row}_{col}.jpg') or a folder", 2)


def _names(pattern: str, tiles: list[tuple[int, int, int, int]], level: int) -> list[str]:
    names = [pattern.format(index=i, plane=p, row=r, col=c, level=level) for i, p, r, c in tiles]
    if len(set(names)) != len(names):
        raise CLIError(f"-o {pattern!r} gives {len(tiles)} tiles only {len(set(names))} names: add the fields "
                       "that tell them apart ({row}, {col}, {plane} or {index})", 2)
    return names


# --- what is written ---------------------------------------------------------------------------

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


def _npy(array: Any) -> bytes:
    import numpy

    buf = io.BytesIO()
    numpy.save(buf, array)
    return buf.getvalue()


def _check_jpeg(ifd: Any, name: str) -> None:
    from ..codecs import JPEG_COMPRESSIONS

    if ifd.compression not in JPEG_COMPRESSIONS:
        raise CLIError(f"{name}: {ifd.where}: --jpeg needs JPEG (7) tiles, not compression {int(ifd.compression)}; "
                       "use --png or --raw", 2)


def _contents(ifd: Any, indices: list[int], fmt: str, full: bool) -> Iterator[bytes | None]:
    """The bytes of each tile, in order; None for a sparse tile with --raw and --jpeg. Read in
    batches: one planned fetch per batch on remote sources, decoding on the thread pool."""
    for start in range(0, len(indices), _BATCH):
        batch = indices[start: start + _BATCH]
        if fmt == "raw":
            for data in ifd.read_segments(batch, raw=True):
                yield data or None
        elif fmt == "jpeg":
            ifd.prefetch_segments(batch)
            for index in batch:
                yield None if ifd.is_sparse(index) else ifd.read_segment_jpeg(index)
        else:
            encode = _png if fmt == "png" else _npy
            for array in ifd.read_segments(batch, valid=not full):
                yield encode(array)


def _one(ifd: Any, index: int, fmt: str, full: bool) -> bytes:
    if fmt == "raw":
        return bytes(ifd.read_segment_bytes(index))
    if fmt == "jpeg":
        return ifd.read_segment_jpeg(index)
    array = ifd.read_segment(index, valid=not full)
    return _png(array) if fmt == "png" else _npy(array)


def _write(path: str, data: bytes) -> None:
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    with open(path, "wb") as f:
        f.write(data)


def run(args: argparse.Namespace) -> int:
    out = args.output
    fmt = args.format
    many = args.all or args.rows is not None or args.cols is not None
    if out == "-" and sys.stdout.isatty():
        raise CLIError("refusing to write binary data to a terminal; give -o FILE or redirect stdout", 2)
    with open_tiff(args.file) as tif:
        levels = tif.levels
        if not -len(levels) <= args.level < len(levels):
            raise CLIError(f"{args.file}: --level {args.level}: the image has {len(levels)} levels", 2)
        ifd = levels[args.level].ifd
        tiles = _selection(ifd, args)
        if not many or (len(tiles) == 1 and "{" not in out and not _is_folder(out)):
            fmt = fmt or _FORMATS.get(os.path.splitext(out)[1].lower(), "raw")
            if fmt == "jpeg":
                _check_jpeg(ifd, args.file)
            data = _one(ifd, tiles[0][0], fmt, args.full)
            current(out)
            _write(out, data)
            return 0
        if out == "-":
            raise CLIError(f"-o -: {len(tiles)} tiles cannot go to stdout; give a name pattern or a folder", 2)
        pattern, fmt = _pattern(out, fmt, _grid(ifd)[0])
        fmt = fmt or "raw"
        if fmt == "jpeg":
            _check_jpeg(ifd, args.file)
        names = _names(pattern, tiles, args.level)
        written = skipped = nbytes = 0
        folders: set[str] = set()
        with progress(len(tiles), "tiles", quiet=args.quiet) as bar:
            for name, content in zip(names, _contents(ifd, [t[0] for t in tiles], fmt, args.full)):
                bar.update()
                if content is None:
                    skipped += 1
                    continue
                folder = os.path.dirname(name)
                if folder and folder not in folders:
                    os.makedirs(folder, exist_ok=True)
                    folders.add(folder)
                current(name)
                _write(name, content)
                written += 1
                nbytes += len(content)
    if skipped:
        print(f"tiffio tiles: skipped {skipped} sparse {'tiles' if ifd.is_tiled else 'strips'} (not stored)",
              file=sys.stderr)
    if not args.quiet:
        print(f"wrote {written} files ({fmt_bytes(nbytes)}) as {pattern}")
    return 0
