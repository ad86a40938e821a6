"""``tiffio convert``, ``tiffio merge``, ``tiffio recover``: writing files with tiffio's writer.

``convert`` re-encodes one image (a level, a region) of any TIFF tiffio reads into a tiled TIFF,
tile by tile in bounded memory; ``--pyramid`` adds levels in the same pass and ``--cog`` produces
a Cloud-Optimized GeoTIFF (by relayout, without recompression, when no re-encoding is asked). The
output is written to a temporary file created exclusively under an unpredictable name in DST's
folder (``TiffWriter(atomic=True)``, ``tiffio.relayout``) and renamed when complete: an interrupted
or failed run (Ctrl-C included) removes it and never leaves a partial DST behind. ``--cog`` with
re-encoding writes its intermediate tiled file in a private folder (mode 0700) made next to DST and
removed afterwards. Messages name the user's files, never these temporaries.
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import tempfile
from typing import Any

from ._common import CLIError, current, dump_json, open_tiff
from ._progress import copy_callback, progress

__all__ = ["register"]

CONVERT_EXAMPLES = """examples:
  tiffio convert scan.tif out.tif                           same codec (or Deflate), 256 x 256 tiles
  tiffio convert slide.svs level2.tif --level 2 --compression zstd --predictor horizontal
  tiffio convert big.tif crop.tif --region 1024 2048 4096 4096 --tile 512
  tiffio convert photo.tif small.tif --compression jpeg --quality 85 --pyramid
  tiffio convert pyramid.tif cog.tif --cog                  relayout only: no recompression
"""
MERGE_EXAMPLES = """examples:
  tiffio merge out.tif shard-0.tif shard-1.tif shard-2.tif
  tiffio merge --cog out.tif shards/*.tif
  tiffio merge --missing sparse --json out.tif shard-*.tif
"""
RECOVER_EXAMPLES = """examples:
  tiffio recover unfinished.tif          rebuild the index of tiles written after the last checkpoint
  tiffio recover --json unfinished.tif
"""


def _number(minimum: int, multiple: int = 1, what: str = "") -> Any:
    """An argparse type: an int >= ``minimum`` (and a multiple of ``multiple``), else a usage error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum or value % multiple:
            raise argparse.ArgumentTypeError(f"{value} is not {what or f'a whole number >= {minimum}'}")
        return value
    parse.__name__ = "number"
    return parse


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("convert", parents=[common], help="re-encode into a tiled TIFF (level, region, pyramid, COG)",
                       description="Re-encode one image of SRC (a pyramid level, a region) into a tiled TIFF written "
                                   "by tiffio, tile by tile in bounded memory. DST is written as DST.partial and "
                                   "renamed when complete; an interrupted run removes it.",
                       epilog=CONVERT_EXAMPLES, formatter_class=fmt)
    p.add_argument("src", metavar="SRC|URL")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--compression", "-c", help="none, lzw, deflate, zstd, lzma, packbits, jpeg, webp, jpeg2000, "
                                              "jpegxl, lerc, png (default: the source's where tiffio writes it, "
                                              "else deflate)")
    p.add_argument("--quality", type=_number(0), help="JPEG/WebP/... quality or codec level")
    p.add_argument("--predictor", choices=("none", "horizontal", "floatingpoint"), help="predictor for LZW, "
                   "Deflate, LZMA, Zstd (default: the source's when the codec is the same)")
    p.add_argument("--tile", type=_number(16, 16, "a positive multiple of 16"), nargs="+", metavar="N",
                   default=None,
                   help="tile size: N (square) or LENGTH WIDTH, multiples of 16 (default 256)")
    p.add_argument("--level", type=int, default=0, help="pyramid level of SRC to convert (default 0)")
    p.add_argument("--region", type=_number(0), nargs=4, metavar=("Y", "X", "HEIGHT", "WIDTH"),
                   help="convert only this window (pixels of the chosen level)")
    p.add_argument("--pyramid", nargs="?", const="main", choices=("main", "subifds"),
                   help="add reduced levels (2 x 2, down to one tile) in the same pass: as reduced images in the "
                        "main chain (default; GDAL, COG, OpenSlide) or as SubIFDs (OME-TIFF)")
    p.add_argument("--pyramid-filter", choices=("mean", "nearest"), default=None,
                   help="how reduced levels are computed (default: mean)")
    p.add_argument("--cog", action="store_true", help="write a Cloud-Optimized GeoTIFF")
    p.add_argument("--bigtiff", action="store_true", help="force BigTIFF (default: decided when writing)")
    p.add_argument("--workers", type=_number(1), default=None, help="encoder threads (default: the writer's)")
    p.set_defaults(func=run_convert)

    p = sub.add_parser("merge", parents=[common], help="merge workers' shards into one TIFF (no recompression)",
                       description="Merge shards written by tiffio workers from a shared plan into DST without "
                                   "recompressing; prints what was merged.",
                       epilog=MERGE_EXAMPLES, formatter_class=fmt)
    p.add_argument("dst", metavar="DST")
    p.add_argument("shards", nargs="+", metavar="SHARD")
    p.add_argument("--cog", action="store_true", help="write the result in COG layout")
    p.add_argument("--missing", choices=("error", "sparse"), default="error",
                   help="a tile in no shard: refuse (default, nothing written) or store it sparse")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-lock", action="store_true", help="do not lock the shards (for filesystems where locks "
                   "are not reliable, NFS, SMB...: make sure no worker still writes them)")
    p.set_defaults(func=run_merge)

    p = sub.add_parser("recover", parents=[common], help="recover a file a tiffio writer left unfinished",
                       description="Recover a file tiffio's writer left unfinished (crash, kill, power loss): "
                                   "keep the last checkpoint, add every complete tile written after it, drop torn "
                                   "bytes, and write a new checkpoint. Prints what was found. On a terminal a bar "
                                   "shows the scan of the records written after the last checkpoint.",
                       epilog=RECOVER_EXAMPLES, formatter_class=fmt)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--no-lock", action="store_true", help="do not lock the file (for filesystems where locks "
                   "are not reliable, NFS, SMB...: make sure no writer has it open)")
    p.set_defaults(func=run_recover)


# --- convert ------------------------------------------------------------------------------------------

_REENCODE_OPTIONS = ("compression", "quality", "predictor", "tile", "region", "bigtiff")
_PREDICTOR_CODECS = {5, 8, 32946, 34925, 50000}  # LZW, Deflate, LZMA, Zstd
_GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113)


def _feature(name: str, why: str) -> Any:
    import tiffio

    func = getattr(tiffio, name, None)
    if func is None:
        raise CLIError(f"tiffio.{name} is not available in this version of tiffio ({why})")
    return func


def _pyramid_supported() -> bool:
    import tiffio

    return "pyramid" in inspect.signature(tiffio.TiffWriter.add_image).parameters


def run_convert(args: argparse.Namespace) -> int:
    folder = os.path.dirname(os.path.abspath(args.dst))
    if not os.path.isdir(folder):
        raise CLIError(f"{args.dst}: the folder {folder} does not exist", 2)
    if os.path.isdir(args.dst):
        raise CLIError(f"{args.dst}: is a folder; give the name of the file to write", 2)
    reencode = any(getattr(args, o) not in (None, False) for o in _REENCODE_OPTIONS) or args.level or args.pyramid
    if args.pyramid_filter and not args.pyramid:
        raise CLIError("--pyramid-filter needs --pyramid", 2)
    if args.pyramid and not _pyramid_supported():
        raise CLIError("--pyramid: single-pass pyramids (TiffWriter.add_image(pyramid=True)) are not "
                       "available in this version of tiffio")
    if args.cog:
        relayout = _feature("relayout", "--cog needs tiffio.relayout")
        if not reencode:
            return _relayout(relayout, args.src, args.dst, args)
        # the tiled intermediate: in a private folder (mode 0700, made exclusively under an unpredictable
        # name next to DST), so that nothing can redirect it; removed with it
        try:
            private = tempfile.mkdtemp(prefix=f".{os.path.basename(args.dst)[:100]}.", suffix=".tiffio", dir=folder)
        except OSError as exc:
            raise CLIError(f"{args.dst}: cannot create a temporary folder in {folder}: {exc.strerror}") from None
        tiled = os.path.join(private, "tiled.tif")
        try:
            _convert(args, tiled, shown=args.dst, atomic=False)
            return _relayout(relayout, tiled, args.dst, args, shown=args.dst)
        except Exception as exc:
            _rename_in(exc, tiled, args.dst)
            raise
        finally:
            shutil.rmtree(private, ignore_errors=True)
    return _convert(args, args.dst, shown=args.dst, atomic=True)


def _rename_in(exc: BaseException, internal: str, shown: str) -> None:
    """Say ``shown`` (the user's file) where a message names ``internal`` (a temporary of ours)."""
    exc.args = tuple(a.replace(internal, shown) if isinstance(a, str) else a for a in exc.args)
    if isinstance(exc, OSError):
        if isinstance(exc.strerror, str):
            exc.strerror = exc.strerror.replace(internal, shown)
        if isinstance(exc.filename, str):
            exc.filename = exc.filename.replace(internal, shown)


def _relayout(relayout: Any, src: str, dst: str, args: argparse.Namespace, shown: str | None = None) -> int:
    """tiffio.relayout to COG: the stored tiles copied, nothing re-encoded (it writes a temporary
    name and renames it when complete)."""
    current(shown or src)
    with progress(None, f"cog {os.path.basename(dst)}", quiet=args.quiet, unit="B") as bar:
        report = relayout(src, dst, layout="cog", progress=copy_callback(bar))
    if not args.quiet and report is not None:
        print(report)
    return 0


def _tile_shape(args: argparse.Namespace) -> tuple[int, int]:
    if not args.tile:
        return (256, 256)
    if len(args.tile) == 1:
        return (args.tile[0], args.tile[0])
    if len(args.tile) == 2:
        return (args.tile[0], args.tile[1])
    raise CLIError("--tile takes N or LENGTH WIDTH", 2)


def _image_options(ifd: Any, args: argparse.Namespace, downsample: tuple[float, float],
                   origin: tuple[int, int]) -> dict[str, Any]:
    """add_image keywords that keep what the source says about its pixels."""
    import tiffio

    compression: Any = args.compression
    source_codec = int(ifd.compression)
    if compression is None:
        writable = {1, 5, 8, 32773, 34925, 50000, 50001, 7, 33003, 33005, 34712, 50002, 34887, 34933}
        compression = source_codec if source_codec in writable else "deflate"
        if compression == 7 and ifd.dtype != "uint8":
            compression = "deflate"
    kw: dict[str, Any] = {"compression": compression}
    if args.quality is not None:
        kw["compression_level"] = args.quality
    if args.predictor is not None:
        kw["predictor"] = {"none": 1, "horizontal": 2, "floatingpoint": 3}[args.predictor]
    elif args.compression is None and ifd.predictor in (2, 3) and source_codec in _PREDICTOR_CODECS:
        kw["predictor"] = int(ifd.predictor)
    photometric = ifd.photometric
    if photometric in (0, 1, 5):
        kw["photometric"] = int(photometric)
    elif photometric == 3 and 320 in ifd.tags:
        tag = ifd.tags[320]
        kw["photometric"] = 3
        kw["extratags"] = [(320, tag.type, tag.count, tag.value)]
    xres, yres, unit = ifd.get(282), ifd.get(283), ifd.get(296, 2)
    if isinstance(xres, tuple) and isinstance(yres, tuple) and xres[1] and yres[1]:
        kw["resolution"] = (xres[0] / xres[1] / downsample[1], yres[0] / yres[1] / downsample[0], unit)
    geo = _geo_tags(ifd, downsample, origin)
    if geo:
        kw["extratags"] = kw.get("extratags", []) + geo
    del tiffio
    return kw


def _geo_tags(ifd: Any, downsample: tuple[float, float], origin: tuple[int, int]) -> list[tuple]:
    """GeoTIFF tags, with the tie point and pixel scale moved to the level and region converted."""
    tags = ifd.tags
    result = []
    scale = ifd.get(33550)
    tie = ifd.get(33922)
    for code in _GEO_TAGS:
        if code not in tags:
            continue
        tag = tags[code]
        value = tag.value
        if code == 33550 and isinstance(value, tuple):
            value = (value[0] * downsample[1], value[1] * downsample[0]) + tuple(value[2:])
        elif code == 33922 and isinstance(value, tuple) and len(value) == 6 and isinstance(scale, tuple):
            i, j = value[0], value[1]
            x = value[3] + (origin[1] * downsample[1] - i) * scale[0]
            y = value[4] - (origin[0] * downsample[0] - j) * scale[1]
            value = (0.0, 0.0, value[2], x, y, value[5])
        elif code == 34264 and (origin != (0, 0) or downsample != (1.0, 1.0)):
            continue  # a full transformation matrix: not adjusted, dropped rather than wrong
        elif code == 33922 and tie is not None and (origin != (0, 0) or downsample != (1.0, 1.0)) \
                and not isinstance(scale, tuple):
            continue
        result.append((code, tag.type, len(value) if isinstance(value, tuple) else tag.count, value))
    return result


def _convert(args: argparse.Namespace, dst: str, shown: str, atomic: bool) -> int:
    """Re-encode into ``dst`` (``atomic``: an exclusive temporary renamed when complete; else ``dst`` is
    ours already, in a private folder); messages name ``shown``."""
    import numpy

    import tiffio

    tif = open_tiff(args.src)
    with tif:
        levels = tif.levels
        if not -len(levels) <= args.level < len(levels):
            raise CLIError(f"{args.src}: --level {args.level}: the image has {len(levels)} levels", 2)
        level = levels[args.level]
        ifd = level.ifd
        if ifd.depth > 1:
            raise CLIError(f"{args.src}: {ifd.where}: volumes (ImageDepth {ifd.depth}) are not converted")
        y, x, height, width = args.region or (0, 0, ifd.length, ifd.width)
        if height <= 0 or width <= 0 or y < 0 or x < 0 or y + height > ifd.length or x + width > ifd.width:
            raise CLIError(f"{args.src}: --region {y} {x} {height} {width} is not inside the image "
                           f"({ifd.length} x {ifd.width} at level {level.index})", 2)
        tile = _tile_shape(args)
        spp = ifd.samples_per_pixel
        separate = ifd.is_separate
        shape = (height, width, spp) if len(ifd.shape) == 3 else (height, width)
        options = _image_options(ifd, args, level.downsample, (y, x))
        if args.pyramid:
            options["pyramid"] = args.pyramid
            if args.pyramid_filter:
                options["pyramid_filter"] = args.pyramid_filter
        rows = -(-height // tile[0])
        cols = -(-width // tile[1])
        # read bands of whole output tile rows, as tall as a source tile or strip (so that each source
        # segment is decoded once, not once per output tile row), at most ~64 MiB of samples at a time
        source_rows = ifd.tile_shape[0] if ifd.is_tiled else ifd.rows_per_strip
        pixel_bytes = spp * ifd.dtype.itemsize
        band_rows = max(1, -(-source_rows // tile[0]))
        while band_rows > 1 and band_rows * tile[0] * width * pixel_bytes > 64 << 20:
            band_rows -= 1
        row_bytes = band_rows * tile[0] * width * pixel_bytes
        band_cols = cols if row_bytes <= 64 << 20 else max(1, int(cols * (64 << 20) / row_bytes))
        current(shown)
        # no checkpoints or fsyncs while writing: an unfinished temporary is removed, never resumed; the
        # atomic writer's one fsync before the rename makes the complete file durable
        with tiffio.TiffWriter(dst, bigtiff=True if args.bigtiff else None, workers=args.workers, fsync=False,
                               checkpoint_every=None, checkpoint_seconds=None, atomic=atomic,
                               lock=atomic) as writer:
            image = writer.add_image(shape, ifd.dtype, tile=tile, **options)
            current(args.src)
            with progress(rows * cols, f"{'pyramid' if args.pyramid else 'convert'} {os.path.basename(shown)}",
                          quiet=args.quiet) as bar:
                for r0 in range(0, rows, band_rows):
                    r1 = min(rows, r0 + band_rows)
                    ty = y + r0 * tile[0]
                    th = min(r1 * tile[0], height) - r0 * tile[0]
                    for c0 in range(0, cols, band_cols):
                        c1 = min(cols, c0 + band_cols)
                        tx = x + c0 * tile[1]
                        tw = min(c1 * tile[1], width) - c0 * tile[1]
                        band = ifd.read_region(ty, tx, th, tw)
                        if separate:
                            band = numpy.moveaxis(band, 0, -1)
                        for r in range(r0, r1):
                            top = (r - r0) * tile[0]
                            for c in range(c0, c1):
                                left = (c - c0) * tile[1]
                                image.write_tile(r, c, band[top: top + tile[0], left: left + tile[1]])
                                bar.update()
            current(shown)
    return 0


# --- merge and recover -------------------------------------------------------------------------------

def _report_dict(report: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return dataclasses.asdict(report)
    if isinstance(report, dict):
        return report
    return {"report": str(report)}


def run_merge(args: argparse.Namespace) -> int:
    merge = _feature("merge", "merging shards needs tiffio.merge")
    for shard in args.shards:
        if not os.path.exists(shard):
            raise CLIError(f"{shard}: no such file", 2)
    current(args.dst)
    kwargs: dict[str, Any] = {"missing": args.missing}
    if args.no_lock:
        kwargs["lock"] = False
    if args.cog:
        kwargs["layout"] = "cog"
    with progress(None, f"merge {os.path.basename(args.dst)}", quiet=args.quiet, unit="B") as bar:
        report = merge(args.dst, args.shards, progress=copy_callback(bar), **kwargs)
    if args.json:
        dump_json(_report_dict(report))
    elif report is not None:
        print(report)
    return 0


def run_recover(args: argparse.Namespace) -> int:
    import tiffio

    reports = []
    for path in args.files:
        current(path)
        if not os.path.exists(path):
            raise CLIError(f"{path}: no such file", 2)
        with progress(None, f"recover {os.path.basename(path)}", quiet=args.quiet, unit="B") as bar:
            try:
                report = tiffio.recover(path, progress=copy_callback(bar), lock=not args.no_lock)
            except tiffio.TiffTypeError as exc:  # a folder, device or FIFO: not a file to repair
                raise CLIError(f"{exc}", 2) from None
        reports.append(_report_dict(report))
        if not args.json:
            print(report)
    if args.json:
        dump_json(reports[0] if len(reports) == 1 else reports)
    return 0
