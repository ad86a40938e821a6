"""``tiffio dump``: every tag of every IFD (and SubIFD), like tiffdump but with the spec's names."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import capture_warnings, dump_json, open_tiff

__all__ = ["register", "format_value"]

EXAMPLES = """examples:
  tiffio dump image.tif                  values longer than 8 items or 120 characters are abbreviated
  tiffio dump --full image.tif           every value in full
  tiffio dump --json image.tif
"""

#: tags whose values are file offsets: shown in decimal and hex
OFFSET_TAGS = {273, 288, 324, 330, 513, 34665, 34853, 40965}
#: strile arrays: abbreviated values are read one block at a time, never the whole array
STRILE_TAGS = {273: "segment_offsets", 324: "segment_offsets", 279: "segment_byte_counts",
               325: "segment_byte_counts"}
MAX_ITEMS = 8
MAX_CHARS = 120


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dump", parents=[common], help="every tag of every IFD with code, name, type, count, value",
                       description="List every tag of every IFD and SubIFD: code, name, field type, count, value "
                                   "(long values abbreviated unless --full) and where it is stored, offsets in "
                                   "decimal and hex.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE|URL")
    p.add_argument("--full", action="store_true", help="show every value in full")
    p.add_argument("--json", action="store_true", help="print a JSON document (docs/cli.md)")
    p.set_defaults(func=run)


def _offset(value: int) -> str:
    return f"{value} (0x{value:x})"


def format_value(value: Any, code: int, full: bool, count: int | None = None) -> str:
    """A tag value as text; tuples past MAX_ITEMS items and text past MAX_CHARS are cut unless ``full``."""
    is_offset = code in OFFSET_TAGS
    if isinstance(value, str):
        text = repr(value)
        if not full and len(text) > MAX_CHARS:
            text = f"{text[:MAX_CHARS]}... ({len(value)} characters)"
        return text
    if isinstance(value, (bytes, bytearray)):
        head = value if full else value[:32]
        text = head.hex(" ")
        if len(head) < len(value):
            text += f" ... ({len(value)} bytes)"
        return text
    items = value if isinstance(value, (tuple, list)) else (value,)
    total = count if count is not None else len(items)
    shown = items if full else items[:MAX_ITEMS]
    parts = []
    for v in shown:
        if isinstance(v, tuple) and len(v) == 2:
            parts.append(f"{v[0]}/{v[1]}")
        elif is_offset and isinstance(v, int):
            parts.append(_offset(v))
        else:
            parts.append(str(v))
    text = ", ".join(parts)
    if total > len(shown):
        text += f", ... ({total} values)"
    return text


#: tags whose values are codes of a tiffio enum: the name follows the number
ENUM_TAGS = {259: "Compression", 262: "Photometric", 266: "FillOrder", 284: "PlanarConfiguration",
             296: "ResolutionUnit", 317: "Predictor", 338: "ExtraSamples", 339: "SampleFormat"}


def _with_names(code: int, value: Any, text: str) -> str:
    import tiffio

    enum_cls = getattr(tiffio, ENUM_TAGS[code])
    values = value if isinstance(value, tuple) else (value,)
    names = []
    for v in values[:MAX_ITEMS]:
        try:
            names.append(enum_cls(v).name)
        except (ValueError, TypeError):
            return text
    return f"{text} ({', '.join(names)})"


def _tag_value(ifd: Any, tag: Any, full: bool) -> str:
    import tiffio

    if tag.code in ENUM_TAGS:
        text = format_value(tag.value, tag.code, full, tag.count)
        return _with_names(tag.code, tag.value, text)
    attr = STRILE_TAGS.get(tag.code)
    if not full and attr is not None and tag.count > MAX_ITEMS and (tag.code in (324, 325)) == ifd.is_tiled:
        # the first values of a strile array: one block read, not the whole array
        try:
            array = getattr(ifd, attr)
            if array is not None:
                first = tuple(array[i] for i in range(min(MAX_ITEMS, len(array))))
                return format_value(first, tag.code, False, tag.count)
        except tiffio.TiffError:  # fall back to the plain tag value
            pass
    return format_value(tag.value, tag.code, full, tag.count)


def _type_name(code: int) -> str:
    import tiffio

    try:
        return tiffio.FieldType(code).name
    except ValueError:
        return f"type {code}"


def dump_ifd(ifd: Any, full: bool, out: list[dict[str, Any]], indent: str, text: bool) -> None:
    import tiffio

    tags = []
    if text:
        print(f"{indent}{ifd.path} @ {_offset(ifd.offset)}: {len(ifd.tags)} entries")
    for code in ifd.tags:
        tag = ifd.tags[code]
        try:
            value = _tag_value(ifd, tag, full)
        except tiffio.TiffError as exc:
            value = f"<unreadable: {exc}>"
        stored = "inline" if tag.value_offset is None else _offset(tag.value_offset)
        tags.append({"code": code, "name": tag.name, "type": tag.type, "type_name": _type_name(tag.type),
                     "count": tag.count, "value_offset": tag.value_offset, "value": value})
        if text:
            where = "" if tag.value_offset is None else f" @ {stored}"
            print(f"{indent}  {code:5d} {tag.name:<26} {_type_name(tag.type):<9} {tag.count:>8}{where}: {value}")
    entry: dict[str, Any] = {"path": ifd.path, "offset": ifd.offset, "tags": tags, "subifds": []}
    out.append(entry)
    try:
        subs = ifd.subifds
    except tiffio.TiffError as exc:
        if text:
            print(f"{indent}  SubIFDs: <unreadable: {exc}>")
        subs = []
    for sub in subs:
        dump_ifd(sub, full, entry["subifds"], indent + "  ", text)


def run(args: argparse.Namespace) -> int:
    import tiffio

    documents = []
    status = 0
    for path in args.files:
        with capture_warnings() as found, open_tiff(path) as tif:
            kind = tif.layout.kind
            order = "little" if tif.byteorder == "<" else "big"
            if not args.json:
                print(f"{tif.name}: {order}-endian {kind}, {tif.source.size} bytes")
            ifds: list[dict[str, Any]] = []
            try:
                for ifd in tif.ifds:
                    dump_ifd(ifd, args.full, ifds, "", not args.json)
            except tiffio.TiffError as exc:
                status = 1
                if not args.json:
                    print(f"<the IFD chain cannot be read further: {exc}>")
            if args.debug:
                print(f"{tif.name}: read {tif.source.bytes_read} bytes in {tif.source.requests} requests",
                      file=sys.stderr)
            documents.append({"schema": "tiffio.dump/1", "file": tif.name, "byteorder": order,
                              "bigtiff": tif.bigtiff, "size": tif.source.size, "ifds": ifds})
        documents[-1]["warnings"] = found
        if not args.json:
            for w in found:
                print(f"warning: {w}")
    if args.json:
        dump_json(documents[0] if len(documents) == 1 else documents)
    return status
