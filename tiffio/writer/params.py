"""Image parameters: add_image's arguments validated into one JSON-serializable dict (stored in the
file, so that resume rebuilds the same images)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy

from ..codecs import compression_name
from ..encoding import IMAGE_CODECS, WRITABLE, parse_compression
from ..enums import Compression as C
from ..errors import TiffTypeError, TiffValueError, UnsupportedFeatureError

__all__ = ["normalize_params", "PHOTOMETRIC_NAMES", "PLANAR_NAMES", "MISSING", "SAMPLEFORMAT"]

PHOTOMETRIC_NAMES = {"miniswhite": 0, "minisblack": 1, "rgb": 2, "palette": 3, "separated": 5, "cmyk": 5,
                     "ycbcr": 6}
PLANAR_NAMES: dict[Any, int] = {"contig": 1, "separate": 2, 1: 1, 2: 2}
MISSING = ("blank", "sparse", "error")
SAMPLEFORMAT = {"u": 1, "i": 2, "f": 3, "c": 6}


def normalize_params(shape: Any, dtype: Any, *, tile: Any, compression: Any, compression_level: Any,
                      predictor: Any, photometric: Any, planarconfig: Any, jpeg_quality: Any, subsampling: Any,
                      description: Any, resolution: Any, extratags: Any, parent: int | None, reduced: bool,
                      missing: str, software: Any, datetime: Any, byteorder: str = "<",
                      rowsperstrip: Any = None) -> dict[str, Any]:
    """Validate add_image's arguments into a JSON-serializable dict (stored in the file for resume).

    ``rowsperstrip`` (an int) stores the image in strips of that many rows instead of tiles: the
    grid is then one segment (rows, width) per strip, and ``"strips": True`` is in the dict."""
    try:
        shape = tuple(int(v) for v in shape)
    except TypeError:
        raise TiffTypeError(f"shape must be a sequence of ints, not {shape!r}") from None
    try:
        dt = numpy.dtype(dtype)
    except TypeError:
        raise TiffTypeError(f"invalid dtype {dtype!r}") from None
    dt = dt.newbyteorder("=")
    if dt.kind not in SAMPLEFORMAT or (dt.kind in "ui" and dt.itemsize not in (1, 2, 4, 8)) or \
            (dt.kind == "f" and dt.itemsize not in (2, 4, 8)) or (dt.kind == "c" and dt.itemsize not in (8, 16)):
        raise UnsupportedFeatureError(f"cannot write {dt} samples (unsigned/signed ints, floats, complex)")
    planar = PLANAR_NAMES.get(planarconfig.lower() if isinstance(planarconfig, str) else planarconfig)
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
        tile = (int(tile[0]), int(tile[1]))
    except (TypeError, IndexError):
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
        pm = int(photometric)
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
        pred = int(predictor)
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
        level = 75 if level is None else int(level)
        if not 1 <= level <= 100:
            raise TiffValueError(f"jpeg_quality must be in 1..100, not {level}")
    elif jpeg_quality is not None:
        raise TiffValueError("jpeg_quality applies only to compression='jpeg'")
    if code == C.LERC and byteorder == ">" and dt.itemsize > 1:
        raise UnsupportedFeatureError("LERC in big-endian files is not written (readers disagree on its byte order)")
    if code == C.WEBP and (dt != numpy.uint8 or planar != 1 or samples not in (3, 4)):
        raise UnsupportedFeatureError("WebP tiles need uint8 RGB or RGBA samples, contiguous")
    sub = (1, 1)
    if pm == 6:
        sub = (2, 2) if subsampling is None else (int(subsampling[0]), int(subsampling[1]))
        if sub not in ((1, 1), (2, 1), (2, 2)):
            raise TiffValueError(f"subsampling must be (1, 1), (2, 1) or (2, 2), not {subsampling!r}")
    elif subsampling not in (None, (1, 1)):
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
    res = None
    if resolution is not None:
        if len(resolution) not in (2, 3):
            raise TiffValueError("resolution must be (x, y) or (x, y, unit)")
        unit = resolution[2] if len(resolution) == 3 else 2
        if isinstance(unit, str):
            unit = {"none": 1, "inch": 2, "centimeter": 3, "cm": 3}.get(unit.lower(), 0)
        if int(unit) not in (1, 2, 3):
            raise TiffValueError(f"resolution unit must be 1, 2, 3, 'none', 'inch' or 'centimeter', not {unit!r}")
        res = [float(resolution[0]), float(resolution[1]), int(unit)]
    tags = []
    for item in extratags or ():
        if len(item) < 4:
            raise TiffValueError(f"extratags items are (code, type, count, value), not {item!r}")
        code_, type_, count_, value = item[:4]
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = {"bytes": bytes(value).hex()}
        elif isinstance(value, numpy.ndarray):
            value = value.tolist()
        elif isinstance(value, tuple):
            value = list(value)
        tags.append([int(code_), int(type_), None if count_ in (None, 0) else int(count_), value])
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

