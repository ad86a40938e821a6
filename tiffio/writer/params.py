"""Image parameters: add_image's arguments validated into one JSON-serializable dict (stored in the
file, so that resume rebuilds the same images)."""

from __future__ import annotations

import datetime as _dt
import math
from fractions import Fraction
from typing import Any

import numpy

from ..codecs import compression_name
from ..codecs.encode import IMAGE_CODECS, WRITABLE, parse_compression
from ..enums import Compression as C
from ..enums import FieldType as T
from ..errors import TiffTypeError, TiffValueError, UnsupportedFeatureError
from ..format.layout import FIELD_TYPE_SIZE
from ..format.tags import tag_name

__all__ = ["normalize_params", "check_resolution", "check_extratags", "check_software", "check_count", "check_workers",
           "STRUCTURAL_TAGS", "PHOTOMETRIC_NAMES", "PLANAR_NAMES", "MISSING", "SAMPLEFORMAT"]

PHOTOMETRIC_NAMES = {"miniswhite": 0, "minisblack": 1, "rgb": 2, "palette": 3, "separated": 5, "cmyk": 5,
                     "ycbcr": 6}
PLANAR_NAMES: dict[Any, int] = {"contig": 1, "separate": 2, 1: 1, 2: 2}
MISSING = ("blank", "sparse", "error")
SAMPLEFORMAT = {"u": 1, "i": 2, "f": 3, "c": 6}


def normalize_params(shape: Any, dtype: Any, *, tile: Any, compression: Any, compression_level: Any,
                      predictor: Any, photometric: Any, planarconfig: Any, jpeg_quality: Any, subsampling: Any,
                      description: Any, resolution: Any, extratags: Any, parent: int | None, reduced: bool,
                      missing: str, software: Any, datetime: Any, byteorder: str = "<",
                      rowsperstrip: Any = None, bigtiff: bool | None = None) -> dict[str, Any]:
    """Validate add_image's arguments into a JSON-serializable dict (stored in the file for resume).

    Everything that the IFD of a checkpoint packs is checked here, before anything is stored (a value
    that only failed when packed would fail every checkpoint, close and recovery after it); the
    writer then packs the image's whole IFD once (tagpack.check_image_entries) for what depends on
    several parameters.

    ``rowsperstrip`` (an int) stores the image in strips of that many rows instead of tiles: the
    grid is then one segment (rows, width) per strip, and ``"strips": True`` is in the dict."""
    try:
        shape = tuple(int(v) for v in shape)
    except (TypeError, ValueError, OverflowError):
        raise TiffTypeError(f"shape must be a sequence of ints, not {shape!r}") from None
    try:
        dt = numpy.dtype(dtype)
    except (TypeError, ValueError):
        raise TiffTypeError(f"invalid dtype {dtype!r}") from None
    dt = dt.newbyteorder("=")
    if dt.kind not in SAMPLEFORMAT or (dt.kind in "ui" and dt.itemsize not in (1, 2, 4, 8)) or \
            (dt.kind == "f" and dt.itemsize not in (2, 4, 8)) or (dt.kind == "c" and dt.itemsize not in (8, 16)):
        raise UnsupportedFeatureError(f"cannot write {dt} samples (unsigned/signed ints, floats, complex)")
    planar = PLANAR_NAMES.get(planarconfig.lower() if isinstance(planarconfig, str) else planarconfig) \
        if isinstance(planarconfig, (str, int, numpy.integer)) else None
    if planar is None:
        raise TiffValueError(f"planarconfig must be 'contig' or 'separate', not {planarconfig!r}")
    if len(shape) == 2:
        samples, height, width = 1, shape[0], shape[1]
        planar = 1
    elif len(shape) == 3:
        if planar == 2:
            samples, height, width = shape
        else:
            height, width, samples = shape
    else:
        raise TiffValueError(f"shape {shape} must be (length, width), (length, width, samples) or, "
                             "with planarconfig='separate', (samples, length, width)")
    if min(samples, height, width) <= 0:
        raise TiffValueError(f"shape {shape} is empty")
    if samples > 65535 or height > 2**32 - 1 or width > 2**32 - 1:
        raise TiffValueError(f"shape {shape} is too large for TIFF")
    if rowsperstrip is not None:
        if not isinstance(rowsperstrip, (int, numpy.integer)) or isinstance(rowsperstrip, bool) or rowsperstrip < 1:
            raise TiffValueError(f"rowsperstrip must be a positive int, not {rowsperstrip!r}")
        tile = (min(int(rowsperstrip), height), width)  # a strip: full rows, the last one cropped
    try:
        if isinstance(tile, (str, bytes, dict)) or len(tile) != 2:
            raise TypeError
        tile = (int(tile[0]), int(tile[1]))
    except (TypeError, IndexError, ValueError, OverflowError, KeyError):
        raise TiffTypeError(f"tile must be (length, width), not {tile!r}") from None
    if rowsperstrip is None and (tile[0] <= 0 or tile[1] <= 0 or tile[0] % 16 or tile[1] % 16):
        raise TiffValueError(f"tile {tile}: TIFF tile sizes must be positive multiples of 16")
    code = parse_compression(compression)
    if code not in WRITABLE:
        raise UnsupportedFeatureError(f"cannot write compression {compression_name(code)}")
    # photometric
    if isinstance(photometric, str):
        pm = PHOTOMETRIC_NAMES.get(photometric.lower())
        if pm is None:
            raise TiffValueError(f"unknown photometric {photometric!r}")
    elif photometric is None:
        pm = None
    else:
        pm = _int("photometric", photometric)
        if not 0 <= pm <= 65535:
            raise TiffValueError(f"photometric {pm} is not a TIFF PhotometricInterpretation (0..65535)")
    if pm is None:
        if samples in (3, 4) and dt.kind == "u":
            pm = 6 if (code == C.JPEG and samples == 3 and planar == 1) else 2
        else:
            pm = 1
    if pm == 6 and (code != C.JPEG or samples != 3 or planar != 1):
        raise UnsupportedFeatureError("photometric YCbCr is written only for JPEG-compressed RGB images "
                                      "with planarconfig='contig'")
    if pm in (2, 6) and samples < 3:
        raise TiffValueError(f"photometric {'RGB' if pm == 2 else 'YCbCr'} needs at least 3 samples, not {samples}")
    # predictor
    if predictor is True:  # (tested first: True == 1)
        pred = 3 if dt.kind == "f" else 2
    elif predictor in (None, False, 1, "none"):
        pred = 1
    elif isinstance(predictor, str):
        pred = {"horizontal": 2, "floatingpoint": 3}.get(predictor.lower(), -1)
    else:
        pred = _int("predictor", predictor)
    if pred not in (1, 2, 3):
        raise TiffValueError(f"predictor must be 1, 2 or 3, not {predictor!r}")
    if pred != 1:
        if code in IMAGE_CODECS or code == C.LERC:
            raise TiffValueError(f"predictors do not apply to {compression_name(code)}")
        if code in (C.NONE, C.PACKBITS):  # libtiff would ignore the Predictor tag and return differences
            raise TiffValueError(f"predictor {pred} with {compression_name(code)}: libtiff applies predictors only "
                                 "to LZW, Deflate, LZMA and ZSTD tiles")
        if pred == 2 and dt.kind not in "ui":
            raise TiffValueError(f"predictor 2 needs integer samples, not {dt}")
        if pred == 3 and dt.kind != "f":
            raise TiffValueError(f"predictor 3 needs floating-point samples, not {dt}")
    level = compression_level
    if code == C.JPEG:
        if dt != numpy.uint8:
            raise UnsupportedFeatureError(f"JPEG tiles need uint8 samples, not {dt}")
        if planar == 1 and samples not in (1, 3):
            raise UnsupportedFeatureError(f"JPEG tiles need 1 or 3 samples per pixel, not {samples}")
        if jpeg_quality is not None:
            level = jpeg_quality
        level = 75 if level is None else _int("jpeg_quality", level)
        if not 1 <= level <= 100:
            raise TiffValueError(f"jpeg_quality must be in 1..100, not {level}")
    elif jpeg_quality is not None:
        raise TiffValueError("jpeg_quality applies only to compression='jpeg'")
    elif level is not None:
        if isinstance(level, bool) or not isinstance(level, (int, float, numpy.integer, numpy.floating)) or \
                not math.isfinite(float(level)):
            raise TiffValueError(f"compression_level must be a finite number or None, not {level!r}")
        level = int(level) if isinstance(level, (int, numpy.integer)) else float(level)
    if code == C.LERC and byteorder == ">" and dt.itemsize > 1:
        raise UnsupportedFeatureError("LERC in big-endian files is not written (readers disagree on its byte order)")
    if code == C.WEBP and (dt != numpy.uint8 or planar != 1 or samples not in (3, 4)):
        raise UnsupportedFeatureError("WebP tiles need uint8 RGB or RGBA samples, contiguous")
    sub = (1, 1)
    if pm == 6:
        try:
            sub = (2, 2) if subsampling is None else (int(subsampling[0]), int(subsampling[1]))
        except (TypeError, ValueError, IndexError, OverflowError, KeyError):
            raise TiffValueError(f"subsampling must be (1, 1), (2, 1) or (2, 2), not {subsampling!r}") from None
        if sub not in ((1, 1), (2, 1), (2, 2)):
            raise TiffValueError(f"subsampling must be (1, 1), (2, 1) or (2, 2), not {subsampling!r}")
    elif subsampling is not None and not (isinstance(subsampling, (tuple, list)) and tuple(subsampling) == (1, 1)):
        raise TiffValueError("subsampling applies only to JPEG YCbCr images")
    if rowsperstrip is not None and code == C.JPEG and tile[0] < height and tile[0] % (8 * sub[1]):
        raise TiffValueError(f"rowsperstrip {tile[0]}: JPEG strips hold whole MCU rows, a multiple of {8 * sub[1]}")
    if missing not in MISSING:
        raise TiffValueError(f"missing must be one of {MISSING}, not {missing!r}")
    # metadata
    if description is not None and not isinstance(description, (str, bytes)):
        raise TiffTypeError("description must be str or bytes")
    if isinstance(description, bytes):
        description = description.decode("latin-1")
    res = None if resolution is None else check_resolution(resolution)
    tags = check_extratags(extratags, bigtiff)
    software = check_software(software)
    if datetime is True:
        datetime = _dt.datetime.now()
    if isinstance(datetime, _dt.datetime):
        datetime = datetime.strftime("%Y:%m:%d %H:%M:%S")
    if datetime is not None and not isinstance(datetime, str):
        raise TiffTypeError("datetime must be None, True, a datetime or a 'YYYY:MM:DD HH:MM:SS' string")
    params = dict(shape=list(shape), dtype=dt.str, height=height, width=width, samples=samples, planar=planar,
                  tile=list(tile), compression=code, level=level, predictor=pred, photometric=pm,
                  subsampling=list(sub), description=description, resolution=res, extratags=tags,
                  parent=parent, reduced=bool(reduced), missing=missing, software=software, datetime=datetime)
    if rowsperstrip is not None:
        params["strips"] = True  # (absent for tiles: the parameters of tiled images stay as they were)
    return params



#: tags the writer derives from the image's parameters, and the parameter to use instead: replacing one
#: with extratags would make the IFD disagree with the stored tiles (or point into the file)
STRUCTURAL_TAGS: dict[int, str] = {
    254: "reduced= or parent=", 255: "reduced= or parent=", 256: "shape", 257: "shape", 258: "dtype",
    259: "compression", 262: "photometric", 266: "", 273: "", 277: "shape", 278: "", 279: "",
    284: "planarconfig", 288: "", 289: "", 292: "", 293: "", 317: "predictor", 322: "tile", 323: "tile",
    324: "", 325: "", 330: "parent=", 339: "dtype", 347: "compression", 400: "", 512: "", 513: "", 514: "",
    515: "", 517: "", 518: "", 519: "", 520: "", 521: "", 530: "subsampling", 32997: "", 32998: "",
    34665: "", 34853: "", 40965: "", 50674: "compression",
}
#: field types whose values are offsets into the file (never given by a caller)
_POINTER_TYPES = (int(T.IFD), int(T.IFD8))
_BIG_TYPES = (int(T.LONG8), int(T.SLONG8))
_RATIONAL_MAX = 2**32 - 1


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer, float, numpy.floating, str)):
        raise TiffTypeError(f"{name} must be an int, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise TiffValueError(f"{name} must be an int, not {value!r}") from None


def check_count(name: str, value: Any, minimum: int = 1, none: bool = True) -> int | None:
    """``value`` as an int >= ``minimum`` (None passes when ``none``); TiffValueError naming ``name``."""
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
        raise TiffTypeError(f"{name} must be an int >= {minimum}{' or None' if none else ''}, not {value!r}")
    if value < minimum:
        raise TiffValueError(f"{name} must be >= {minimum}, not {value}")
    return int(value)


#: at most this many encoder threads (each a real thread)
MAX_WORKERS = 1024


def check_workers(workers: Any) -> int | None:
    """``workers=``: None (the default) or 0..MAX_WORKERS encoder threads (0 and 1: none)."""
    value = check_count("workers", workers, 0)
    if value is not None and value > MAX_WORKERS:
        raise TiffValueError(f"workers must be at most {MAX_WORKERS}, not {value}")
    return value


def check_software(software: Any) -> str | None:
    """The Software tag's text: a str (bytes are read as Latin-1) or None."""
    if software is None or software == "":
        return software or None
    if isinstance(software, bytes):
        return software.decode("latin-1")
    if not isinstance(software, str):
        raise TiffTypeError(f"software must be a str or None, not {type(software).__name__}")
    return software


def check_resolution(resolution: Any) -> list[Any]:
    """(x, y[, unit]) -> [x, y, unit]: x and y finite pixels per unit > 0 that a TIFF RATIONAL holds."""
    try:
        n = len(resolution)
    except TypeError:
        raise TiffTypeError(f"resolution must be (x, y) or (x, y, unit), not {resolution!r}") from None
    if isinstance(resolution, (str, bytes)) or n not in (2, 3):
        raise TiffValueError(f"resolution must be (x, y) or (x, y, unit), not {resolution!r}")
    values = []
    for axis, v in zip("xy", resolution[:2]):
        if isinstance(v, bool) or not isinstance(v, (int, float, numpy.integer, numpy.floating)):
            raise TiffTypeError(f"resolution: {axis} must be a number, not {v!r}")
        f = float(v)
        if not math.isfinite(f) or f <= 0:
            raise TiffValueError(f"resolution: {axis} must be a finite number of pixels per unit > 0, not {v!r}")
        frac = Fraction(f).limit_denominator(_RATIONAL_MAX)
        if not 0 < frac.numerator <= _RATIONAL_MAX:
            raise TiffValueError(f"resolution: {axis}={v!r} does not fit a TIFF RATIONAL (32-bit numerator and "
                                 "denominator)")
        values.append(f)
    unit = resolution[2] if n == 3 else 2
    if isinstance(unit, str):
        unit = {"none": 1, "inch": 2, "centimeter": 3, "cm": 3}.get(unit.lower(), 0)
    if isinstance(unit, bool) or not isinstance(unit, (int, numpy.integer)) or int(unit) not in (1, 2, 3):
        raise TiffValueError(f"resolution unit must be 1, 2, 3, 'none', 'inch' or 'centimeter', not {unit!r}")
    return [values[0], values[1], int(unit)]


def check_extratags(extratags: Any, bigtiff: bool | None = None) -> list[list[Any]]:
    """extratags -> [[code, type, count or None, JSON value]]: codes 0..65535 that the writer does not
    derive itself, known field types (no IFD offsets; LONG8/SLONG8 only in a BigTIFF), counts >= 1,
    values of a kind the type holds (their range is checked when the IFD is packed once, in add_image)."""
    tags: list[list[Any]] = []
    if extratags is None:
        return tags
    if isinstance(extratags, (str, bytes, dict)):
        raise TiffTypeError("extratags must be a sequence of (code, type, count, value) items")
    try:
        items = list(extratags)
    except TypeError:
        raise TiffTypeError("extratags must be a sequence of (code, type, count, value) items") from None
    for item in items:
        if isinstance(item, (str, bytes)) or not hasattr(item, "__len__") or len(item) < 4:
            raise TiffValueError(f"extratags items are (code, type, count, value), not {item!r}")
        code_, type_, count_, value = item[:4]
        code = _int("extratags: a tag code", code_)
        if not 0 <= code <= 65535:
            raise TiffValueError(f"extratags: tag code {code} is outside 0..65535")
        if code in STRUCTURAL_TAGS:
            use = STRUCTURAL_TAGS[code]
            raise TiffValueError(f"extratags: tag {code} ({tag_name(code)}) is written by the writer from the image's "
                                 f"parameters and cannot be replaced" + (f"; use {use}" if use else ""))
        ftype = _int(f"extratags: tag {code}'s field type", type_)
        if ftype not in FIELD_TYPE_SIZE or ftype in _POINTER_TYPES:
            raise TiffValueError(f"extratags: tag {code}: field type {ftype} is not one the writer stores (1..12, "
                                 "16, 17; IFD offsets cannot be given)")
        if ftype in _BIG_TYPES and bigtiff is not True:
            raise TiffValueError(f"extratags: tag {code}: field type {T(ftype).name} exists only in BigTIFF; give "
                                 "LONG/SLONG values, or create the TiffWriter with bigtiff=True")
        count = None if count_ in (None, 0) else check_count(f"extratags: tag {code}'s count", count_)
        tags.append([code, ftype, count, _tag_value(code, ftype, value)])
    return tags


def _tag_value(code: int, ftype: int, value: Any) -> Any:
    """A tag value as stored in the parameters (JSON): text, {"bytes": hex}, or a flat list of numbers."""
    if ftype == T.ASCII:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return {"bytes": bytes(value).hex()}
        if isinstance(value, str):
            return value
        raise TiffTypeError(f"extratags: tag {code} is ASCII: its value must be str or bytes, not "
                            f"{type(value).__name__}")
    if isinstance(value, (bytes, bytearray, memoryview)):
        if ftype not in (T.BYTE, T.UNDEFINED, T.SBYTE):
            raise TiffTypeError(f"extratags: tag {code}: bytes are values of BYTE, SBYTE or UNDEFINED tags, not of "
                                f"field type {ftype}")
        return {"bytes": bytes(value).hex()}
    if isinstance(value, str):
        raise TiffTypeError(f"extratags: tag {code}: a str is the value of an ASCII tag, not of field type {ftype}")
    try:
        arr = numpy.asarray(value)
    except (ValueError, TypeError):
        raise TiffValueError(f"extratags: tag {code}: {value!r} is not a number or a sequence of numbers") from None
    if arr.dtype.kind not in "buif" or arr.size == 0:
        raise TiffValueError(f"extratags: tag {code}: {value!r} is not a number or a sequence of numbers")
    return arr.reshape(-1).tolist()
