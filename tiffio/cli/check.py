"""``tiffio check``: a validator that says what is wrong and where.

Each file is opened leniently; what the reader warns about (``tiffio.TiffFormatWarning``) is a
finding, and so is everything the checks below find. Findings have a stable ``code``, a
``severity`` (``error``: breaks the spec or cannot be read; ``warning``: nonstandard, readers may
differ; ``info``: valid but worth knowing, does not make the exit status non-zero) and a ``where``.
Exit status: 0 no problem, 1 problems (an error or warning), 2 a file could not be read at all.

Codes (docs/cli.md): not-a-tiff, truncated, unreadable, unsupported, limit, spec-violation, ifd-error,
offset-outside-file, overlapping-segments, shared-segments, sparse-segments, strile-count, tile-size,
jpeg-tables, jpeg-stream, codec-shape, bigtiff-not-needed, cog, corrupt-segment.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_UNREADABLE,
    CLIError,
    capture_warnings,
    current,
    dump_json,
    open_tiff,
)
from ._jpeg import check_jpeg
from ._progress import progress

__all__ = ["register", "check_file", "Finding"]

EXAMPLES = """examples:
  tiffio check scan.tif                  exit 0 ok, 1 problems, 2 unreadable
  tiffio check --decode *.tif            also decode every tile/strip and report corrupt ones
  tiffio check --json a.tif b.tif > report.json
  tiffio check --cog out.tif             also check GDAL's Cloud-Optimized GeoTIFF rules
"""

#: findings listed per IFD before the rest are summarised
MAX_PER_KIND = 5


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("check", parents=[common], help="validate files: what is wrong and where (exit 0/1/2)",
                       description="Validate TIFF files: spec violations the lenient reader recovers from, offsets "
                                   "outside the file, overlapping or shared segments, sparse segments, tile sizes, "
                                   "JPEG colour space and tables, whether BigTIFF was needed; optionally decode "
                                   "every segment (--decode) and check COG rules (--cog). Exit status 0 ok, "
                                   "1 problems, 2 unreadable.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE|URL")
    p.add_argument("--decode", action="store_true", help="decode every segment and report the corrupt ones")
    p.add_argument("--cog", action="store_true", help="check the Cloud-Optimized GeoTIFF layout rules (GDAL's)")
    p.add_argument("--json", action="store_true", help="print a JSON document (docs/cli.md)")
    p.set_defaults(func=run)


class Finding(dict):
    """{"code", "severity", "where", "message"}."""

    def __init__(self, code: str, severity: str, where: str, message: str) -> None:
        super().__init__(code=code, severity=severity, where=where, message=message)


#: (pattern in the message, code): what the reader says, classified (first match wins)
_PATTERNS = (
    ("not a multiple of 16", "tile-size"),
    ("loops back", "ifd-cycle"),
    ("(a cycle)", "ifd-cycle"),
    ("ByteCounts is missing", "byte-count"),
    ("byte count", "byte-count"),
    (" values, expected", "strile-count"),
    (" values, 4 expected", "strile-count"),
    ("is missing", "missing-tag"),
    ("non-numeric value", "tag-value"),
    ("not bytes; it is ignored", "tag-value"),
    ("appears twice", "spec-violation"),
    ("pass the end of the file", "offset-outside-file"),
    ("past the end", "offset-outside-file"),
    ("outside the file", "offset-outside-file"),
    ("decoded ", "corrupt-segment"),
    ("the image is empty", "geometry"),
    ("RowsPerStrip is", "geometry"),
    ("is invalid", "geometry"),
)


def _classify(message: str, exc: BaseException | None = None) -> str:
    """A finding's code from the reader's message (or exception class)."""
    import tiffio

    if isinstance(exc, tiffio.NotATiffError):
        return "not-a-tiff"
    if " segments of " in message and " bits: " in message:
        return "codec-shape"  # samples/bits per pixel no stream of the codec can hold (or tiffio cannot decode)
    if isinstance(exc, tiffio.LimitExceededError):
        return "limit"
    if isinstance(exc, tiffio.UnsupportedFeatureError):
        return "unsupported"
    if isinstance(exc, tiffio.CorruptSegmentError):
        return "corrupt-segment"
    for pattern, code in _PATTERNS:
        if pattern in message:
            if code == "strile-count" and "expected" not in message:
                continue
            return code
    if isinstance(exc, tiffio.TruncatedError):
        return "truncated"
    return "spec-violation" if exc is None else "ifd-error"


def _exc_code(exc: BaseException) -> str:
    return _classify(str(exc), exc)


# --- the checks -------------------------------------------------------------------------------------

def _all_ifds(tif: Any, add: Any) -> list[Any]:
    import tiffio

    result = []

    def visit(ifd: Any) -> None:
        result.append(ifd)
        try:
            subs = ifd.subifds
        except tiffio.TiffError as exc:
            add(_exc_code(exc), "error", ifd.where, f"SubIFDs: {exc}")
            return
        for sub in subs:
            visit(sub)

    try:
        for ifd in tif.ifds:
            visit(ifd)
    except tiffio.TiffError as exc:
        add(_exc_code(exc), "error", tif.name, f"the IFD chain cannot be read further: {exc}")
    return result


def check_file(path: str, *, decode: bool = False, cog: bool = False, quiet: bool = True) -> dict[str, Any]:
    """Check one file; returns {"file", "status", "findings"} (docs/cli.md)."""
    import tiffio
    from tiffio.sources import redact_url

    findings: list[Finding] = []
    shown = redact_url(path)
    # tiffio's messages name the file first; a report is about one file, which it names once
    prefix = f"{shown}: "

    def strip(text: str) -> str:
        return text[len(prefix):] if text.startswith(prefix) else text

    def add(code: str, severity: str, where: str, message: str) -> None:
        findings.append(Finding(code, severity, strip(where), strip(message)))

    current(path)
    unreadable = False
    with capture_warnings() as warned:
        try:
            tif = open_tiff(path, strict=False)
        except CLIError as exc:
            add("unreadable", "error", path, str(exc))
            unreadable = True
            tif = None
        except tiffio.TiffError as exc:
            add("unreadable" if isinstance(exc, tiffio.SourceError) else _exc_code(exc), "error", path, str(exc))
            unreadable = True
            tif = None
        except OSError as exc:
            add("unreadable", "error", path, f"{type(exc).__name__}: {exc}")
            unreadable = True
            tif = None
        if tif is not None:
            with tif:
                _check_open_file(tif, add, decode=decode, quiet=quiet)
            if cog:
                try:
                    _check_cog(path, add)
                except tiffio.TiffError as exc:
                    add("cog", "error", "", str(exc))
    own = {f["message"] for f in findings} | {f"{f['where']}: {f['message']}" for f in findings}
    for message in warned:
        code = _classify(message)
        if code == "tile-size" and any(f["code"] == "tile-size" for f in findings):
            continue  # the check's own finding says the same
        if strip(message) not in own:
            findings.append(Finding(code, "warning", "", strip(message)))
    problems = [f for f in findings if f["severity"] != "info"]
    status = "unreadable" if unreadable else "problems" if problems else "ok"
    return {"file": shown, "status": status, "findings": findings}


#: tags with one integer value (TIFF 6.0: SHORT or LONG; BigTIFF adds LONG8)
_SCALAR_INT_TAGS = {256: "ImageWidth", 257: "ImageLength", 259: "Compression", 262: "PhotometricInterpretation",
                    277: "SamplesPerPixel", 278: "RowsPerStrip", 284: "PlanarConfiguration", 317: "Predictor",
                    322: "TileWidth", 323: "TileLength", 32997: "ImageDepth", 32998: "TileDepth"}
_INT_TYPES = {1, 3, 4, 16}
_ARRAY_INT_TAGS = {258: "BitsPerSample", 273: "StripOffsets", 279: "StripByteCounts", 324: "TileOffsets",
                   325: "TileByteCounts", 339: "SampleFormat", 530: "YCbCrSubSampling"}


def _check_tags(ifd: Any, add: Any) -> None:
    """Field types and counts of the tags that define the image, and its geometry."""
    import tiffio

    tags = ifd.tags
    for code, name in {**_SCALAR_INT_TAGS, **_ARRAY_INT_TAGS}.items():
        if code not in tags:
            continue
        tag = tags[code]
        if tag.type not in _INT_TYPES and not (code in (273, 324) and tag.type in (13, 18)):
            add("tag-value", "warning", ifd.where, f"tag {name} ({code}) has field type {tag.type}, not an "
                                                   "unsigned integer type")
        elif code in _SCALAR_INT_TAGS and tag.count != 1:
            add("tag-value", "warning", ifd.where, f"tag {name} ({code}) has {tag.count} values, not 1")

    for code in tags:  # every value readable? (strile arrays are read whole by the segment checks)
        if code in (273, 279, 324, 325):
            continue
        try:
            tags[code].value  # noqa: B018
        except tiffio.TiffError as exc:
            add("tag-value", "error", ifd.where, f"tag {tags[code].name} ({code}): {exc}")

    def value(code: int) -> Any:
        try:
            v = ifd.get(code)
        except tiffio.TiffError:  # unreadable values are reported by the reader
            return None
        return v if isinstance(v, int) else None

    for code in (256, 257, 322, 323, 278):
        v = value(code)
        if v is not None and v <= 0:
            add("geometry", "error", ifd.where, f"{_SCALAR_INT_TAGS[code]} is {v}")
    td, d = value(32998), value(32997) or 1
    if td is not None and td > d:
        add("tile-depth", "warning", ifd.where, f"TileDepth {td} is larger than the image depth {d}")


def _check_open_file(tif: Any, add: Any, *, decode: bool, quiet: bool) -> None:
    import numpy

    import tiffio

    size = tif.source.size
    ifds = _all_ifds(tif, add)
    spans: list[Any] = []   # (offsets, counts, ifd index) of every IFD
    max_offset = 0
    for k, ifd in enumerate(ifds):
        where = ifd.where
        _check_tags(ifd, add)
        try:
            ifd.shape  # noqa: B018 - geometry from the tags
            count = ifd.segment_count
            tile = ifd.tile_shape
        except tiffio.TiffError as exc:
            add(_exc_code(exc), "error", where, str(exc))
            continue
        if tile is not None and (tile[0] % 16 or tile[1] % 16):
            add("tile-size", "warning", where,
                f"tile size {tile[0]} x {tile[1]} is not a multiple of 16 (TIFF 6.0 requires it)")
        decodable = True
        try:
            ifd.spec  # noqa: B018 - can tiffio decode it?
        except tiffio.TiffError as exc:
            add(_exc_code(exc), "error", where, str(exc))
            decodable = False
        try:
            offsets = ifd.segment_offsets.to_numpy()[:count]
            bc = ifd.segment_byte_counts
            counts = bc.to_numpy()[:count] if bc is not None else None
        except tiffio.TiffError as exc:
            add(_exc_code(exc), "error", where, str(exc))
            continue
        if counts is None:
            add("byte-count", "error", where,
                f"{'TileByteCounts' if ifd.is_tiled else 'StripByteCounts'} is missing")
            counts = numpy.zeros(len(offsets), numpy.int64)
            est = True
        else:
            est = False
        n = min(len(offsets), len(counts))
        offsets, counts = offsets[:n], counts[:n]
        sparse = (offsets == 0) | (counts == 0)
        if est:
            sparse = offsets == 0
        nsparse = int(sparse.sum()) + (count - n)
        if nsparse and not est:
            add("sparse-segments", "info", where,
                f"{nsparse} of {count} {'tiles' if ifd.is_tiled else 'strips'} are sparse (not stored; read as "
                "the fill value)")
        stored = ~sparse
        ends = offsets + counts
        outside = stored & ((ends > size) | (offsets < 8))
        for index in numpy.flatnonzero(outside)[:MAX_PER_KIND].tolist():
            o, c = int(offsets[index]), int(counts[index])
            add("offset-outside-file", "error", f"{where}: segment {index}",
                f"{c} bytes at offset {o} (0x{o:x}) are outside the file ({size} bytes)")
        if int(outside.sum()) > MAX_PER_KIND:
            add("offset-outside-file", "error", where, f"{int(outside.sum())} segments in all are outside the file")
        if not est:
            spans.append((offsets[stored], counts[stored], k, numpy.flatnonzero(stored)))
        if stored.any():
            max_offset = max(max_offset, int(ends[stored].max()))
        if ifd.compression == tiffio.Compression.JPEG:
            try:
                check_jpeg(ifd, stored, add)
            except tiffio.TiffError as exc:
                add("jpeg-tables", "error", where, str(exc))
        if decode and decodable:
            _decode_all(ifd, count, add, quiet)
    _check_overlaps(ifds, spans, add)
    if tif.bigtiff and size < 2**32 - 2**20:
        add("bigtiff-not-needed", "info", tif.name,
            f"the file is BigTIFF but {size} bytes and every offset fit classic TIFF (4 GiB)")


def _check_overlaps(ifds: list[Any], spans: list[Any], add: Any) -> None:
    import numpy

    if not spans:
        return
    offsets = numpy.concatenate([s[0] for s in spans])
    counts = numpy.concatenate([s[1] for s in spans])
    owner = numpy.concatenate([numpy.full(len(s[0]), s[2]) for s in spans])
    index = numpy.concatenate([s[3] for s in spans])
    order = numpy.lexsort((counts, offsets))
    offsets, counts, owner, index = offsets[order], counts[order], owner[order], index[order]
    same = (offsets[1:] == offsets[:-1]) & (counts[1:] == counts[:-1])
    if same.any():
        k = int(numpy.flatnonzero(same)[0])
        add("shared-segments", "info", ifds[int(owner[k + 1])].where,
            f"{int(same.sum())} segments share their bytes with another segment (first: segment "
            f"{int(index[k + 1])} and {ifds[int(owner[k])].path} segment {int(index[k])}, offset "
            f"{int(offsets[k])} (0x{int(offsets[k]):x}))")
    ends = numpy.maximum.accumulate(offsets + counts)
    overlap = (offsets[1:] < ends[:-1]) & ~same
    if overlap.any():
        k = int(numpy.flatnonzero(overlap)[0]) + 1
        add("overlapping-segments", "error", f"{ifds[int(owner[k])].where}: segment {int(index[k])}",
            f"{int(overlap.sum())} segments overlap another one's bytes (first: {int(counts[k])} bytes at "
            f"offset {int(offsets[k])} (0x{int(offsets[k]):x}))")


def _decode_code(exc: BaseException) -> str:
    import tiffio

    if isinstance(exc, (tiffio.UnsupportedFeatureError, tiffio.LimitExceededError)):
        return _exc_code(exc)
    return "corrupt-segment"


def _trailing_bytes(ifd: Any, index: int) -> int:
    """Bytes after the end of a Deflate stream (libtiff ignores them; a sign of a bad byte count)."""
    import zlib

    data = ifd.read_segment_bytes(index)
    if not data:
        return 0
    d = zlib.decompressobj()
    try:
        d.decompress(bytes(data), 1 << 16)
        while d.unconsumed_tail and not d.eof:
            d.decompress(d.unconsumed_tail, 1 << 16)
    except zlib.error:
        return 0  # reported by the decode itself
    return len(d.unused_data) if d.eof else 0


def _decode_all(ifd: Any, count: int, add: Any, quiet: bool) -> None:
    """Decode every segment, in a thread pool (decoders release the GIL), in index order."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import tiffio

    deflate = ifd.compression in (tiffio.Compression.ADOBE_DEFLATE, tiffio.Compression.DEFLATE)

    def one(index: int) -> tuple[BaseException | None, int]:
        error: BaseException | None = None
        try:
            ifd.read_segment(index)
        except tiffio.TiffError as exc:
            error = exc
        extra = 0
        if deflate:
            try:
                extra = _trailing_bytes(ifd, index)
            except tiffio.TiffError:
                pass
        return error, extra

    bad = trailing = 0
    batch = 256
    workers = max(1, min(8, os.cpu_count() or 1))
    with progress(count, f"decode {ifd.path}", quiet=quiet) as bar, ThreadPoolExecutor(workers) as pool:
        for first in range(0, count, batch):
            indices = range(first, min(count, first + batch))
            stop = False
            for index, (exc, extra) in zip(indices, pool.map(one, indices)):
                if exc is not None:
                    bad += 1
                    if bad <= MAX_PER_KIND:
                        add(_decode_code(exc), "error", f"{ifd.where}: segment {index}", str(exc))
                    if isinstance(exc, (tiffio.UnsupportedFeatureError, tiffio.LimitExceededError)):
                        stop = True  # the same for every segment
                if extra:
                    trailing += 1
                    if trailing <= MAX_PER_KIND:
                        add("trailing-bytes", "warning", f"{ifd.where}: segment {index}",
                            f"{extra} bytes follow the end of the Deflate stream (the byte count is too large)")
            bar.update(len(indices))
            if stop:
                break
    if bad > MAX_PER_KIND:
        add("corrupt-segment", "error", ifd.where, f"{bad} of {count} segments in all cannot be decoded")


def _check_cog(path: str, add: Any) -> None:
    """GDAL's Cloud-Optimized GeoTIFF rules, by tiffio.check_cog (no GDAL needed)."""
    import tiffio

    checker = getattr(tiffio, "check_cog", None)
    if checker is None:  # pragma: no cover - tiffio without relayout
        from ._common import CLIError

        raise CLIError("--cog: tiffio.check_cog is not available in this version of tiffio")
    for problem in checker(path):
        add("cog", "error", "", str(problem))


# --- output -------------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    reports = []
    worst = EXIT_OK
    for path in args.files:
        report = check_file(path, decode=args.decode, cog=args.cog, quiet=args.quiet)
        reports.append(report)
        status = {"ok": EXIT_OK, "problems": EXIT_PROBLEMS, "unreadable": EXIT_UNREADABLE}[report["status"]]
        worst = max(worst, status)
        if not args.json:
            _print_report(report)
    current(None)
    if args.json:
        dump_json({"schema": "tiffio.check/1", "files": reports})
    return worst


def _print_report(report: dict[str, Any]) -> None:
    findings = report["findings"]
    problems = [f for f in findings if f["severity"] != "info"]
    if report["status"] == "ok":
        print(f"{report['file']}: ok" + (f" ({len(findings)} notes)" if findings else ""))
    elif report["status"] == "unreadable":
        print(f"{report['file']}: unreadable")
    else:
        print(f"{report['file']}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
    for f in findings:
        where = f"{f['where']}: " if f["where"] and not f["message"].startswith(f["where"]) else ""
        print(f"  {f['severity']:<7} {f['code']:<20} {where}{f['message']}")
    sys.stdout.flush()
