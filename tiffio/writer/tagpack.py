"""Tag values -> bytes by field type, the entries of one image's IFD, and the trial packing that
add_image runs before anything of an image is stored (no I/O)."""

from __future__ import annotations

import json
import struct
from fractions import Fraction
from typing import Any

import numpy

from ..enums import Compression as C
from ..enums import FieldType as T
from ..errors import TiffError, TiffTypeError, TiffValueError
from ..format.layout import FIELD_TYPE_CHAR, FIELD_TYPE_SIZE, Layout, get_layout
from .ifdpack import Entry, pack_ifd
from .params import SAMPLEFORMAT, check_extratags, check_resolution, check_software

__all__ = ["pack_values", "image_entries", "check_image_entries", "sanitize_stored"]


#: (min, max) of the integer field types
_INT_LIMITS = {int(t): (-(2 ** (8 * FIELD_TYPE_SIZE[int(t)] - 1)), 2 ** (8 * FIELD_TYPE_SIZE[int(t)] - 1) - 1)
               if t in (T.SBYTE, T.SSHORT, T.SLONG, T.SLONG8) else (0, 2 ** (8 * FIELD_TYPE_SIZE[int(t)]) - 1)
               for t in (T.BYTE, T.SHORT, T.LONG, T.LONG8, T.SBYTE, T.SSHORT, T.SLONG, T.SLONG8)}


def pack_values(layout: Layout, ftype: int, values: Any) -> tuple[int, bytes]:
    """(count, bytes) of ``values`` as field type ``ftype`` in the layout's byte order."""
    ftype = int(ftype)
    if ftype == T.ASCII:
        if isinstance(values, bytes):
            raw = values
        elif isinstance(values, str):
            raw = values.encode("utf-8")
        else:
            raise TiffTypeError(f"ASCII tag value must be str or bytes, not {type(values).__name__}")
        if not raw.endswith(b"\0"):
            raw += b"\0"
        return len(raw), raw
    if ftype in (T.UNDEFINED, T.BYTE) and isinstance(values, (bytes, bytearray, memoryview)):
        raw = bytes(values)
        return len(raw), raw
    limits = _INT_LIMITS.get(ftype)
    if limits is not None and type(values) is list and len(values) <= 64 and \
            all(type(v) is int for v in values):
        # a few Python ints (most tags of an IFD): struct, without numpy's per-call costs; same bytes
        low, high = limits
        if any(v < low or v > high for v in values):
            raise TiffValueError(f"values do not fit field type {T(ftype).name}")
        return len(values), struct.pack(f"{layout.byteorder}{len(values)}{FIELD_TYPE_CHAR[ftype]}", *values)
    if ftype in (T.RATIONAL, T.SRATIONAL):
        flat: list[int] = []
        seq = values if isinstance(values, (list, tuple, numpy.ndarray)) else [values]
        signed = ftype == T.SRATIONAL
        if len(seq) and all(isinstance(v, (int, numpy.integer)) for v in seq) and len(seq) % 2 == 0 and \
                not isinstance(values, numpy.ndarray):
            flat = [int(v) for v in seq]  # already numerator/denominator pairs
        else:
            for v in seq:
                try:
                    frac = Fraction(float(v) if isinstance(v, numpy.floating) else v).limit_denominator(
                        2**31 - 1 if signed else 2**32 - 1)
                except (TypeError, ValueError, OverflowError):
                    raise TiffValueError(f"{v!r} is not a finite number ({T(ftype).name})") from None
                flat += [frac.numerator, frac.denominator]
        low, high = (-(2**31), 2**31 - 1) if signed else (0, 2**32 - 1)
        if any(not low <= v <= high for v in flat):
            raise TiffValueError(f"values do not fit field type {T(ftype).name}")
        arr = numpy.asarray(flat, layout.value_dtype(ftype))
        return len(flat) // 2, arr.tobytes()
    try:
        dtype = layout.value_dtype(ftype)
    except KeyError:
        raise TiffValueError(f"unknown field type {ftype}") from None
    arr = numpy.asarray(values)
    if arr.dtype.kind not in "uifb" or (arr.dtype.kind == "f" and dtype.kind in "ui"):
        raise TiffTypeError(f"cannot store {arr.dtype} values as field type {ftype}")
    arr = arr.reshape(-1)
    if dtype.kind in "ui" and arr.size:
        info = numpy.iinfo(dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise TiffValueError(f"values do not fit field type {T(ftype).name}")
    if dtype.kind == "f" and arr.size and dtype.itemsize == 4:
        finite = arr[numpy.isfinite(arr)]
        if finite.size and numpy.abs(finite).max() > numpy.finfo(numpy.float32).max:
            raise TiffValueError(f"values do not fit field type {T(ftype).name}")
    return arr.size, arr.astype(dtype).tobytes()


def image_entries(layout: Layout, p: dict[str, Any], dtype: numpy.dtype, jpegtables: bytes | None,
                  offsets: numpy.ndarray, counts: numpy.ndarray) -> list[Entry]:
    """The IFD entries of one image (parameters ``p`` from normalize_params) except SubIFDs, which
    the checkpoint adds (it knows their offsets)."""
    out: list[Entry] = []

    def add(code: int, ftype: int, values: Any) -> None:
        count, data = pack_values(layout, ftype, values)
        out.append(Entry(code, int(ftype), count, data))

    spp = p["samples"]
    if p["reduced"] or p["parent"] is not None:
        add(254, T.LONG, [1])
    add(256, T.LONG, [p["width"]])
    add(257, T.LONG, [p["height"]])
    add(258, T.SHORT, [dtype.itemsize * 8] * spp)
    add(259, T.SHORT, [p["compression"]])
    add(262, T.SHORT, [p["photometric"]])
    if p["description"] is not None:
        add(270, T.ASCII, p["description"])
    add(277, T.SHORT, [spp])
    if p["resolution"] is not None:
        x, y, unit = p["resolution"]
        add(282, T.RATIONAL, [x])
        add(283, T.RATIONAL, [y])
        add(296, T.SHORT, [unit])
    add(284, T.SHORT, [p["planar"]])
    if p["software"]:
        add(305, T.ASCII, p["software"])
    if p["datetime"]:
        add(306, T.ASCII, p["datetime"])
    if p["predictor"] != 1:
        add(317, T.SHORT, [p["predictor"]])
    otype = layout.offset_field_type
    odt = layout.offset_dtype
    if p.get("strips"):  # StripOffsets, RowsPerStrip, StripByteCounts
        out.append(Entry(273, int(otype), len(offsets), offsets.astype(odt).tobytes()))
        add(278, T.LONG, [p["tile"][0]])
        out.append(Entry(279, int(otype), len(offsets), counts.astype(odt).tobytes()))
    else:  # TileWidth, TileLength, TileOffsets, TileByteCounts
        add(322, T.LONG, [p["tile"][1]])
        add(323, T.LONG, [p["tile"][0]])
        out.append(Entry(324, int(otype), len(offsets), offsets.astype(odt).tobytes()))
        out.append(Entry(325, int(otype), len(offsets), counts.astype(odt).tobytes()))
    base = 3 if p["photometric"] in (2, 6) else 1
    if spp > base:
        extra = [0] * (spp - base)
        if p["photometric"] == 2 and spp == 4:
            extra = [2]
        add(338, T.SHORT, extra)
    add(339, T.SHORT, [SAMPLEFORMAT[dtype.kind]] * spp)
    if jpegtables is not None:
        add(347, T.UNDEFINED, jpegtables)
    if p["photometric"] == 6:
        add(530, T.SHORT, p["subsampling"])
        add(532, T.RATIONAL, [0, 1, 255, 1, 128, 1, 255, 1, 128, 1, 255, 1])
    if p["compression"] == C.LERC:
        add(50674, T.LONG, [4, 0])  # LercParameters: LERC version 2.4, no extra compression
    used = {e.code for e in out}
    for code, ftype, count, value in p["extratags"]:
        if isinstance(value, dict) and "bytes" in value:
            value = bytes.fromhex(value["bytes"])
        try:
            n, data = pack_values(layout, ftype, value)
        except (TiffError, ValueError, TypeError, OverflowError) as exc:
            raise TiffValueError(f"extratags: tag {code}: {exc}") from None
        if count is not None and count != n and ftype != T.ASCII:
            raise TiffValueError(f"extratags: tag {code}: count {count} does not match its {n} values")
        if code == 338 and n != max(0, spp - base):
            raise TiffValueError(f"extratags: tag 338 (ExtraSamples): {n} values, but the image has {spp - base} "
                                 "extra samples")
        if code in used:
            out = [e for e in out if e.code != code]
        out.append(Entry(code, ftype, n, data))
        used.add(code)
    return out


def check_image_entries(params: dict[str, Any], dtype: numpy.dtype, jpegtables: bytes | None, byteorder: str,
                        bigtiff: bool | None) -> None:
    """Pack the whole IFD of an image once before anything of the image is stored: what cannot be
    packed raises TiffValueError here, in add_image, instead of failing every later checkpoint, close
    and recovery. One layout suffices: classic and BigTIFF IFDs pack the same values (only the strile
    arrays' and SubIFDs' types differ, and LONG8 extratags are refused unless bigtiff=True)."""
    one = numpy.zeros(1, numpy.uint64)
    layout = get_layout(byteorder, bool(bigtiff))
    try:
        entries = image_entries(layout, params, dtype, jpegtables, one, one)
        pack_ifd(layout, entries, 16, 0)
    except TiffValueError:
        raise
    except (TiffError, ValueError, TypeError, OverflowError, struct.error) as exc:
        raise TiffValueError(f"the image's tags cannot be stored: {exc}") from None
    try:
        json.dumps(params)
    except (TypeError, ValueError) as exc:
        raise TiffValueError(f"the image's parameters cannot be stored: {exc}") from None


def sanitize_stored(params: dict[str, Any], bigtiff: bool | None) -> tuple[dict[str, Any], list[str]]:
    """Parameters read back from a file written by an older tiffio that did not check them: those that
    would make every checkpoint fail (an unpackable resolution or extratag) are dropped so that the
    tiles can be recovered; returns the parameters and what was dropped."""
    dropped: list[str] = []
    params = dict(params)
    if params.get("resolution") is not None:
        try:
            check_resolution(params["resolution"])
        except TiffError as exc:
            dropped.append(f"resolution ({exc})")
            params["resolution"] = None
    kept = []
    for tag in params.get("extratags") or []:
        try:
            value = tag[3]
            if isinstance(value, dict) and "bytes" in value:
                value = bytes.fromhex(value["bytes"])
            check_extratags([(tag[0], tag[1], tag[2], value)], bigtiff)
            for layout in Layout.choices("<", bigtiff):
                count, _ = pack_values(layout, tag[1], value)
                if tag[2] is not None and tag[2] != count and tag[1] != T.ASCII:
                    raise TiffValueError(f"count {tag[2]} does not match its {count} values")
        except (TiffError, TypeError, ValueError, IndexError, OverflowError) as exc:
            dropped.append(f"extratag {tag[0] if tag else '?'} ({exc})")
            continue
        kept.append(tag)
    params["extratags"] = kept
    try:
        params["software"] = check_software(params.get("software"))
    except TiffError as exc:
        dropped.append(f"software ({exc})")
        params["software"] = None
    return params, dropped
