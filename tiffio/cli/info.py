"""``tiffio info``: what a file holds, from its metadata only.

Reads the header, the IFDs and the small tag values it shows; never a strile array
(TileOffsets/TileByteCounts) unless ``--sparse`` asks for the count of sparse segments, so that
it is instant on a file of a million tiles, local or remote. The JSON document is described in
docs/cli.md ("tiffio info --json"); its ``schema`` field changes when a field changes meaning.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ._common import capture_warnings, dump_json, enum_json, open_tiff

__all__ = ["register", "describe_file", "describe_ifd"]

SCHEMA = "tiffio.info/1"

EXAMPLES = """examples:
  tiffio info slide.svs                  tree of IFDs, levels, metadata
  tiffio info --json scan.tif | jq .ifds[0].shape
  tiffio info --sparse cog.tif           also count sparse tiles (reads the TileOffsets arrays)
  tiffio info https://example.com/cog.tif
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("info", parents=[common], help="IFD tree, shapes, codecs, levels, series, metadata",
                       description="Show what a TIFF holds: byte order, classic/BigTIFF, every IFD and SubIFD "
                                   "with shape, dtype, tiles or strips, compression, photometric, predictor; "
                                   "pyramid levels, series and a metadata summary. Reads metadata only.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE|URL")
    p.add_argument("--json", action="store_true", help="print a JSON document (schema in docs/cli.md)")
    p.add_argument("--sparse", action="store_true",
                   help="count sparse tiles/strips (reads the offset and byte-count arrays)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    documents = []
    for path in args.files:
        with capture_warnings() as found, open_tiff(path) as tif:
            doc = describe_file(tif, sparse=args.sparse)
            if args.debug:
                print(f"{tif.name}: read {tif.source.bytes_read} bytes in {tif.source.requests} requests",
                      file=sys.stderr)
        doc["warnings"] = found
        if args.json:
            documents.append(doc)
        else:
            print_text(doc)
    if args.json:
        dump_json(documents[0] if len(documents) == 1 else documents)
    return 0


# --- the document ---------------------------------------------------------------------------------

def _attempt(errors: list[str], func: Callable[[], Any], default: Any = None) -> Any:
    import tiffio

    try:
        return func()
    except tiffio.TiffError as exc:
        errors.append(str(exc))
        return default


def _kind(nst: int) -> str:
    if nst & 4:
        return "mask"
    if nst & 1:
        return "reduced"
    if nst & 2:
        return "page"
    return "image"


def describe_ifd(ifd: Any, *, sparse: bool = False, subifds: bool = True) -> dict[str, Any]:
    """One IFD as a JSON-able dict (docs/cli.md); never reads strile arrays unless ``sparse``."""
    import tiffio

    errors: list[str] = []
    a = lambda f, d=None: _attempt(errors, f, d)  # noqa: E731
    doc: dict[str, Any] = {"path": ifd.path, "offset": ifd.offset, "tag_count": len(ifd.tags)}
    shape = a(lambda: list(ifd.shape))
    dtype = a(lambda: str(ifd.dtype))
    doc.update(shape=shape, dtype=dtype, width=a(lambda: ifd.width), length=a(lambda: ifd.length),
               depth=a(lambda: ifd.depth), samples_per_pixel=a(lambda: ifd.samples_per_pixel),
               bits_per_sample=a(lambda: ifd.bits_per_sample),
               sample_format=enum_json(tiffio.SampleFormat, a(lambda: ifd.sample_format)))
    tiled = ifd.is_tiled
    doc["tiled"] = tiled
    doc["tile_shape"] = a(lambda: list(ifd.tile_shape)) if tiled else None
    doc["rows_per_strip"] = None if tiled else a(lambda: ifd.rows_per_strip)
    doc["segment_count"] = a(lambda: ifd.segment_count)
    doc["compression"] = enum_json(tiffio.Compression, a(lambda: ifd.compression))
    doc["photometric"] = enum_json(tiffio.Photometric, a(lambda: ifd.photometric))
    doc["subsampling"] = a(lambda: list(ifd.subsampling) if ifd.subsampling else None)
    doc["predictor"] = enum_json(tiffio.Predictor, a(lambda: ifd.predictor))
    doc["planar_configuration"] = enum_json(tiffio.PlanarConfiguration, a(lambda: ifd.planar_configuration))
    doc["extra_samples"] = a(lambda: list(ifd.extra_samples), [])
    nst = a(lambda: ifd.new_subfile_type, 0) or 0
    doc["new_subfile_type"] = nst
    doc["kind"] = _kind(nst)
    desc = a(lambda: ifd.description)
    doc["description"] = None if desc is None else (desc if len(desc) <= 200 else desc[:200] + "...")
    doc["description_length"] = None if desc is None else len(desc)
    doc["jpegtables"] = 347 in ifd.tags
    doc["sparse_segments"] = None
    if sparse:
        doc["sparse_segments"] = a(lambda: count_sparse(ifd))
    if subifds:
        doc["subifds"] = [describe_ifd(s, sparse=sparse) for s in a(lambda: ifd.subifds, [])]
    doc["errors"] = errors
    return doc


def count_sparse(ifd: Any) -> int:
    """Segments stored as offset 0 or byte count 0 (reads both strile arrays whole)."""
    import numpy

    n = ifd.segment_count
    offsets = ifd.segment_offsets.to_numpy()
    counts = ifd.segment_byte_counts
    sparse = numpy.zeros(n, bool)
    sparse[: len(offsets)] = offsets[:n] == 0
    sparse[len(offsets):] = True
    if counts is not None:
        c = counts.to_numpy()[:n]
        sparse[: len(c)] |= c == 0
        sparse[len(c):] = True
    return int(sparse.sum())


def describe_file(tif: Any, *, sparse: bool = False) -> dict[str, Any]:
    import tiffio

    errors: list[str] = []
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "file": tif.name,
        "size": tif.source.size,
        "byteorder": "little" if tif.byteorder == "<" else "big",
        "bigtiff": tif.bigtiff,
    }
    ifds = []
    try:
        for ifd in tif.ifds:
            ifds.append(describe_ifd(ifd, sparse=sparse))
    except tiffio.TiffError as exc:
        errors.append(str(exc))
    doc["ifds"] = ifds
    levels = _attempt(errors, lambda: list(tif.levels), [])
    doc["levels"] = [{"index": lv.index, "ifd": lv.ifd.path, "shape": list(lv.shape),
                      "downsample": [float(v) for v in lv.downsample]} for lv in levels]
    doc["masks"] = _attempt(errors, lambda: [m.path for m in tif.masks], [])
    doc["associated_images"] = _attempt(errors, lambda: {k: v.path for k, v in tif.associated_images.items()}, {})
    doc["series"] = _attempt(errors, lambda: describe_series(tif))
    doc["metadata"] = _attempt(errors, lambda: describe_metadata(tif), {})
    doc["errors"] = errors
    return doc


def describe_series(tif: Any) -> list[dict[str, Any]] | None:
    """TiffFile.series where the library has it (None otherwise)."""
    series = getattr(tif, "series", None)
    if series is None:
        return None
    result = []
    for s in series:
        item: dict[str, Any] = {
            "kind": str(getattr(s, "kind", "")) or None,
            "shape": list(getattr(s, "shape", ())),
            "dtype": str(getattr(s, "dtype", "")) or None,
            "axes": getattr(s, "axes", None),
        }
        name = getattr(s, "name", None)
        if name:
            item["name"] = str(name)
        if hasattr(s, "levels"):
            item["levels"] = len(s.levels)
        if hasattr(s, "npages"):
            item["pages"] = int(s.npages)
        result.append(item)
    return result


# --- metadata summary ------------------------------------------------------------------------------

def describe_metadata(tif: Any) -> dict[str, Any]:
    """A summary of the ImageJ, OME-XML, GeoTIFF and vendor metadata of the first IFD, parsed by
    tiffio.metadata (imported only when the file has such metadata)."""
    ifd = tif.ifds[0]
    result: dict[str, Any] = {}
    desc = ifd.description or ""
    if desc.startswith("ImageJ="):
        from tiffio.metadata import parse_imagej_description

        values = parse_imagej_description(desc)
        result["imagej"] = {k: values[k] for k in ("ImageJ", "images", "channels", "slices", "frames", "hyperstack",
                                                   "mode", "unit", "spacing", "finterval", "loop") if k in values}
    if "<OME" in desc[:4096]:
        from tiffio.metadata import parse_ome_xml

        ome = parse_ome_xml(desc)
        result["ome"] = {
            "xml_length": len(desc),
            "images": [{"name": im.name, "dimension_order": im.dimension_order, "sizes": dict(im.sizes),
                        "pixel_type": im.pixel_type, "physical_sizes": dict(im.physical_sizes),
                        "physical_units": dict(im.physical_units), "channels": len(im.channels)}
                       for im in ome.images],
        }
    if desc.startswith("Aperio"):
        result["aperio"] = desc.split("|")[0][:200]
    if any(code in ifd.tags for code in (33550, 33922, 34264, 34735, 42112, 42113)):
        from tiffio.metadata import GeoTiff

        geo = GeoTiff.from_tags(ifd.get, ifd.where)
        if geo is not None:
            result["geotiff"] = {"epsg": geo.epsg, "transform": list(geo.transform) if geo.transform else None,
                                 "nodata": geo.nodata, "pixel_is_point": geo.pixel_is_point,
                                 "model_type": geo.model_type, "citation": geo.citation}
    for code, key in ((305, "software"), (306, "datetime")):
        value = ifd.get(code)
        if isinstance(value, str) and value:
            result[key] = value
    return result


# --- text ----------------------------------------------------------------------------------------

def _shape_text(doc: dict[str, Any]) -> str:
    shape = doc.get("shape")
    text = " x ".join(str(v) for v in shape) if shape else "?"
    return f"{text} {doc.get('dtype') or '?'}"


def _layout_text(doc: dict[str, Any]) -> str:
    n = doc.get("segment_count")
    if doc["tiled"]:
        ts = doc.get("tile_shape")
        tile = f"{ts[0]}x{ts[1]}" if ts else "?"
        text = f"tiles {tile} ({n} tiles)"
    else:
        text = f"strips of {doc.get('rows_per_strip')} rows ({n} strips)"
    if doc.get("sparse_segments") is not None:
        text += f", {doc['sparse_segments']} sparse"
    return text


def ifd_line(doc: dict[str, Any]) -> str:
    comp = doc["compression"]["name"] if doc.get("compression") else "?"
    photo = doc["photometric"]["name"] if doc.get("photometric") else "-"
    if doc.get("subsampling") and doc["subsampling"] != [1, 1]:
        photo += " {}x{}".format(*doc["subsampling"])
    parts = [_shape_text(doc), _layout_text(doc), comp, photo]
    pred = doc.get("predictor")
    if pred and pred["code"] != 1:
        parts.append(f"predictor {pred['name']}")
    planar = doc.get("planar_configuration")
    if planar and planar["code"] == 2:
        parts.append("separate planes")
    if doc.get("kind") != "image":
        parts.append(doc["kind"])
    return f"{doc['path']} @ {doc['offset']} (0x{doc['offset']:x}): " + ", ".join(parts)


def _print_ifd(doc: dict[str, Any], indent: str) -> None:
    print(indent + ifd_line(doc))
    inner = indent + "    "
    if doc.get("description"):
        first = doc["description"].splitlines()[0] if doc["description"].strip() else ""
        more = "" if doc["description_length"] <= len(first) else f" ... ({doc['description_length']} characters)"
        print(f"{inner}description: {first[:100]!r}{more}")
    for err in doc.get("errors", ()):
        print(f"{inner}error: {err}")
    for sub in doc.get("subifds", ()):
        _print_ifd(sub, inner)


def print_text(doc: dict[str, Any]) -> None:
    kind = "BigTIFF" if doc["bigtiff"] else "classic TIFF"
    print(f"{doc['file']}: {kind}, {doc['byteorder']}-endian, {doc['size']} bytes, {len(doc['ifds'])} IFDs")
    for ifd in doc["ifds"]:
        _print_ifd(ifd, "  ")
    if len(doc["levels"]) > 1:
        print(f"  levels: {len(doc['levels'])}")
        for lv in doc["levels"]:
            ds = lv["downsample"]
            factor = f"{ds[0]:g}" if abs(ds[0] - ds[1]) < 1e-9 else f"{ds[0]:g} x {ds[1]:g}"
            print(f"    {lv['index']}: {lv['ifd']}, {' x '.join(map(str, lv['shape']))}, downsample {factor}")
    if doc.get("masks"):
        print(f"  masks: {', '.join(doc['masks'])}")
    if doc.get("associated_images"):
        print("  associated images: " + ", ".join(f"{k} ({v})" for k, v in doc["associated_images"].items()))
    if doc.get("series"):
        print(f"  series: {len(doc['series'])}")
        for k, s in enumerate(doc["series"]):
            parts = [s.get("kind"), s.get("name") and repr(s["name"]), s.get("axes"),
                     " x ".join(map(str, s["shape"])), s.get("dtype")]
            if s.get("pages", 1) > 1:
                parts.append(f"{s['pages']} pages")
            if s.get("levels", 1) > 1:
                parts.append(f"{s['levels']} levels")
            print(f"    {k}: " + ", ".join(str(p) for p in parts if p))
    meta = doc.get("metadata") or {}
    for key, value in meta.items():
        print(f"  {key}: {value}")
    for err in doc.get("errors", ()):
        print(f"  error: {err}")
    for w in doc.get("warnings", ()):
        print(f"  warning: {w}")
