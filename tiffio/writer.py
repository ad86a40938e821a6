"""Streaming tiled writer: TiffWriter / ImageWriter (DESIGN.md, "The writer's file layout").

File layout::

    [16 bytes reserved for the header]
    [record][record]...            records = leader + payload: tiles, image definitions, blank tiles
    [state record][IFDs + values]  a checkpoint (repeated; the header points at the newest)
    [record]...                    more tiles after the checkpoint
    [state record][IFDs + values]  the final checkpoint written by close()

Every payload is preceded by a 28-byte *leader* (magic, image number, tile index,
length, CRC-32) that TIFF readers never see (they follow offsets). A checkpoint
writes complete IFDs at the end of the file, flushes and fsyncs, and only then
rewrites the header's first-IFD offset, so a crash at any instant leaves the
previous checkpoint valid. Automatic checkpoints (``checkpoint_every``/``checkpoint_seconds``)
hold the tiles stored so far without waiting for those still in encoder threads, and run their
fsync + header update in a background thread while encoding goes on; :meth:`TiffWriter.checkpoint`
waits for every tile given and is durable when it returns. With ``fsync=True`` a background
fdatasync also runs every ``WRITEBACK_BYTES`` appended, so that the disk writes while tiles are
encoded. The state record just before the first IFD holds the
writer's parameters (JSON), so that :func:`tiffio.recover` and ``mode='resume'``
can rebuild the ImageWriters; tiles written after the last checkpoint are found
by scanning their leaders.

Whether the file is classic TIFF or BigTIFF is decided at each checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import errno as _errno
import json
import os
import queue
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy

from .codecs import compression_name
from .encoding import (
    IMAGE_CODECS,
    WRITABLE,
    EncodeSpec,
    encode_segment,
    encode_segment_parts,
    make_jpegtables,
    parse_compression,
)
from .enums import Compression as C
from .enums import FieldType as T
from .errors import (
    LimitExceededError,
    SourceError,
    TiffError,
    TiffFormatError,
    TiffIndexError,
    TiffTypeError,
    TiffUsageError,
    TiffValueError,
    UnsupportedFeatureError,
)
from .header import pack_header, parse_header
from .layout import Layout, get_layout

__all__ = ["TiffWriter", "ImageWriter", "TileEncoder", "LEADER", "DATA_START", "STATE_FOOTER",
           "MAGIC_TILE", "MAGIC_IMAGE", "MAGIC_BLANK", "MAGIC_STATE", "FORMAT_VERSION"]

DATA_START = 16
#: leader before every payload: magic, image number, tile index, payload length, CRC-32 of the payload
LEADER = struct.Struct("<4sIQQI")
MAGIC_TILE = b"TIOt"
MAGIC_IMAGE = b"TIOi"
MAGIC_BLANK = b"TIOb"
MAGIC_STATE = b"TIOs"
MAGICS = frozenset({MAGIC_TILE, MAGIC_IMAGE, MAGIC_BLANK, MAGIC_STATE})
#: after the state JSON, just before the first IFD: JSON length, magic
STATE_FOOTER = struct.Struct("<Q4s")
STATE_FOOTER_MAGIC = b"TIOS"
FORMAT_VERSION = 1
CLASSIC_LIMIT = 2**32 - 1
WRITEBACK_BYTES = 32 << 20

_PHOTOMETRIC_NAMES = {"miniswhite": 0, "minisblack": 1, "rgb": 2, "palette": 3, "separated": 5, "cmyk": 5,
                      "ycbcr": 6}
_PLANAR_NAMES = {"contig": 1, "separate": 2, 1: 1, 2: 2}
_MISSING = ("blank", "sparse", "error")
_SAMPLEFORMAT = {"u": 1, "i": 2, "f": 3, "c": 6}


# --- the byte sink ------------------------------------------------------------------------------

class _Sink:
    """Positional writes to a path (os.pwrite) or a binary file object (seek + write)."""

    def __init__(self, target: Any, mode: str) -> None:
        self.fd: int | None = None
        self.file: Any = None
        self.owns = False
        self._lock = threading.Lock()
        if isinstance(target, (str, os.PathLike)):
            self.name = os.fspath(target)
            flags = os.O_RDWR | getattr(os, "O_BINARY", 0)
            if mode == "w":
                flags |= os.O_CREAT | os.O_TRUNC
            try:
                self.fd = os.open(self.name, flags, 0o666)
            except OSError as exc:
                raise _source_error(exc, f"cannot open {self.name!r}") from None
            self.owns = True
        elif hasattr(target, "write") and hasattr(target, "seek"):
            self.file = target
            self.name = getattr(target, "name", type(target).__name__)
            if mode == "w":
                try:
                    target.seek(0)
                    target.truncate(0)
                except (OSError, ValueError) as exc:
                    raise SourceError(f"{self.name}: cannot truncate the file object ({exc})") from None
        else:
            raise TiffTypeError(f"target must be a path or a binary file object, not {type(target).__name__}")

    def pwrite(self, offset: int, *parts: bytes) -> None:
        try:
            if self.fd is not None:
                total = sum(len(p) for p in parts)
                written = os.pwritev(self.fd, parts, offset) if hasattr(os, "pwritev") else \
                    os.pwrite(self.fd, b"".join(parts), offset)
                if written != total:  # short write: finish it (or get the real error)
                    data = b"".join(parts)
                    while written < total:
                        n = os.pwrite(self.fd, data[written:], offset + written)
                        if n <= 0:
                            raise OSError(_errno.ENOSPC, "short write")
                        written += n
            else:
                with self._lock:
                    self.file.seek(offset)
                    for p in parts:
                        n = self.file.write(p)
                        if n is not None and n != len(p):
                            raise OSError(_errno.ENOSPC, f"short write ({n} of {len(p)} bytes)")
        except OSError as exc:
            raise _source_error(exc, f"{self.name}: writing {sum(len(p) for p in parts)} bytes at offset {offset}") \
                from None

    def pread(self, offset: int, size: int) -> bytes:
        try:
            if self.fd is not None:
                return os.pread(self.fd, size, offset)
            with self._lock:
                self.file.seek(offset)
                return self.file.read(size)
        except OSError as exc:
            raise _source_error(exc, f"{self.name}: reading {size} bytes at offset {offset}") from None

    def size(self) -> int:
        try:
            if self.fd is not None:
                return os.fstat(self.fd).st_size
            with self._lock:
                return self.file.seek(0, 2)
        except OSError as exc:
            raise _source_error(exc, f"{self.name}: size") from None

    def truncate(self, size: int) -> None:
        try:
            if self.fd is not None:
                os.ftruncate(self.fd, size)
            else:
                with self._lock:
                    self.file.truncate(size)
        except OSError as exc:
            raise _source_error(exc, f"{self.name}: truncating to {size} bytes") from None

    def datasync(self) -> None:
        """fdatasync where there is one (a file descriptor), else nothing."""
        if self.fd is not None:
            try:
                (getattr(os, "fdatasync", None) or os.fsync)(self.fd)
            except OSError as exc:
                raise _source_error(exc, f"{self.name}: fdatasync") from None

    def sync(self) -> None:
        try:
            if self.fd is not None:
                os.fsync(self.fd)
                return
            with self._lock:
                self.file.flush()
                try:
                    fileno = self.file.fileno()
                except (OSError, AttributeError, ValueError):
                    return
                os.fsync(fileno)
        except OSError as exc:
            raise _source_error(exc, f"{self.name}: flush/fsync") from None

    def close(self) -> None:
        if self.fd is not None and self.owns:
            fd, self.fd = self.fd, None
            try:
                os.close(fd)
            except OSError as exc:
                raise _source_error(exc, f"{self.name}: close") from None


def _source_error(exc: OSError, what: str) -> SourceError:
    err = SourceError(exc.errno or _errno.EIO, f"{what}: {exc.strerror or exc}")
    err.filename = getattr(exc, "filename", None)
    return err


# --- checksums and encoder threads ----------------------------------------------------------------

def _pick_crc32() -> Any:
    """zlib's CRC-32 (the leaders' checksum); libdeflate's is the same function, ~9x faster."""
    try:
        from imagecodecs import deflate_crc32
        if deflate_crc32(b"123456789") == 0xCBF43926 == deflate_crc32(b"56789", deflate_crc32(b"1234")):
            return deflate_crc32
    except Exception:  # pragma: no cover - imagecodecs built without libdeflate
        pass
    return zlib.crc32


_crc32 = _pick_crc32()


def crc32_parts(parts: Sequence[Any]) -> int:
    """CRC-32 of the concatenation of ``parts`` (bytes-like objects)."""
    crc = 0
    for part in parts:
        crc = _crc32(part, crc)
    return crc


def _encoder_loop(jobs: queue.Queue) -> None:
    """Body of an encoder thread: run (function, args) jobs until a None arrives.
    Jobs record their own errors; the thread only references the queue."""
    while True:
        item = jobs.get()
        if item is None:
            jobs.task_done()
            return
        try:
            item[0](*item[1])
        except BaseException:  # pragma: no cover - jobs catch their own errors
            pass
        finally:
            item = None  # do not keep the writer alive while waiting
            jobs.task_done()


class _EncoderThreads:
    """Exactly ``workers`` encoder threads fed by a bounded queue: the producer blocks once
    ``workers`` tiles wait (so at most 2 x workers tiles are in flight and memory stays bounded)."""

    def __init__(self, workers: int) -> None:
        self.jobs: queue.Queue = queue.Queue(maxsize=workers)
        self.threads: list[threading.Thread] = []
        self.grow(workers)

    def grow(self, workers: int) -> None:
        with self.jobs.mutex:
            self.jobs.maxsize = max(self.jobs.maxsize, workers)
        while len(self.threads) < workers:
            thread = threading.Thread(target=_encoder_loop, args=(self.jobs,), daemon=True,
                                      name=f"tiffio-encode-{len(self.threads)}")
            thread.start()
            self.threads.append(thread)

    def join(self) -> None:
        """Wait until every queued job has run."""
        self.jobs.join()

    @staticmethod
    def stop(jobs: queue.Queue, threads: list[threading.Thread], wait: bool) -> None:
        for _ in threads:
            jobs.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
        threads.clear()


# --- tag values -----------------------------------------------------------------------------------

@dataclass
class _Entry:
    code: int
    type: int
    count: int
    data: bytes


def _pack_values(layout: Layout, ftype: int, values: Any) -> tuple[int, bytes]:
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
    if ftype in (T.RATIONAL, T.SRATIONAL):
        flat: list[int] = []
        seq = values if isinstance(values, (list, tuple, numpy.ndarray)) else [values]
        if len(seq) and all(isinstance(v, (int, numpy.integer)) for v in seq) and len(seq) % 2 == 0 and \
                not isinstance(values, numpy.ndarray):
            flat = [int(v) for v in seq]  # already numerator/denominator pairs
        else:
            for v in seq:
                frac = Fraction(v).limit_denominator(2**31 - 1 if ftype == T.SRATIONAL else 2**32 - 1)
                flat += [frac.numerator, frac.denominator]
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
    return arr.size, arr.astype(dtype).tobytes()


def _ifd_size(layout: Layout, entries: Sequence[_Entry]) -> int:
    size = layout.count_size + len(entries) * layout.entry_size + layout.offset_size
    for e in entries:
        if len(e.data) > layout.inline_size:
            size += len(e.data) + (len(e.data) & 1)
    return size


def _pack_ifd(layout: Layout, entries: Sequence[_Entry], offset: int, next_offset: int) -> bytes:
    entries = sorted(entries, key=lambda e: e.code)
    head = [layout.count_struct.pack(len(entries))]
    values: list[bytes] = []
    pos = offset + layout.count_size + len(entries) * layout.entry_size + layout.offset_size
    fmt = struct.Struct(layout.byteorder + ("HHQ" if layout.bigtiff else "HHI"))
    for e in entries:
        if len(e.data) <= layout.inline_size:
            head.append(fmt.pack(e.code, e.type, e.count)[: fmt.size] + e.data.ljust(layout.inline_size, b"\0"))
        else:
            head.append(fmt.pack(e.code, e.type, e.count) + layout.pack_offset(pos))
            pad = b"\0" if len(e.data) & 1 else b""
            values.append(e.data + pad)
            pos += len(e.data) + len(pad)
    head.append(layout.pack_offset(next_offset))
    return b"".join(head + values)


# --- parameters -----------------------------------------------------------------------------------

def _normalize_params(shape: Any, dtype: Any, *, tile: Any, compression: Any, compression_level: Any,
                      predictor: Any, photometric: Any, planarconfig: Any, jpeg_quality: Any, subsampling: Any,
                      description: Any, resolution: Any, extratags: Any, parent: int | None, reduced: bool,
                      missing: str, software: Any, datetime: Any, byteorder: str = "<") -> dict[str, Any]:
    """Validate add_image's arguments into a JSON-serializable dict (stored in the file for resume)."""
    try:
        shape = tuple(int(v) for v in shape)
    except TypeError:
        raise TiffTypeError(f"shape must be a sequence of ints, not {shape!r}") from None
    try:
        dt = numpy.dtype(dtype)
    except TypeError:
        raise TiffTypeError(f"invalid dtype {dtype!r}") from None
    dt = dt.newbyteorder("=")
    if dt.kind not in _SAMPLEFORMAT or (dt.kind in "ui" and dt.itemsize not in (1, 2, 4, 8)) or \
            (dt.kind == "f" and dt.itemsize not in (2, 4, 8)) or (dt.kind == "c" and dt.itemsize not in (8, 16)):
        raise UnsupportedFeatureError(f"cannot write {dt} samples (unsigned/signed ints, floats, complex)")
    planar = _PLANAR_NAMES.get(planarconfig.lower() if isinstance(planarconfig, str) else planarconfig)
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
    try:
        tile = (int(tile[0]), int(tile[1]))
    except (TypeError, IndexError):
        raise TiffTypeError(f"tile must be (length, width), not {tile!r}") from None
    if tile[0] <= 0 or tile[1] <= 0 or tile[0] % 16 or tile[1] % 16:
        raise TiffValueError(f"tile {tile}: TIFF tile sizes must be positive multiples of 16")
    code = parse_compression(compression)
    if code not in WRITABLE:
        raise UnsupportedFeatureError(f"cannot write compression {compression_name(code)}")
    # photometric
    if isinstance(photometric, str):
        pm = _PHOTOMETRIC_NAMES.get(photometric.lower())
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
    if predictor in (None, False, 1, "none"):
        pred = 1
    elif predictor is True:
        pred = 3 if dt.kind == "f" else 2
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
    if missing not in _MISSING:
        raise TiffValueError(f"missing must be one of {_MISSING}, not {missing!r}")
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
    return dict(shape=list(shape), dtype=dt.str, height=height, width=width, samples=samples, planar=planar,
                tile=list(tile), compression=code, level=level, predictor=pred, photometric=pm,
                subsampling=list(sub), description=description, resolution=res, extratags=tags,
                parent=parent, reduced=bool(reduced), missing=missing, software=software, datetime=datetime)


# --- image writers --------------------------------------------------------------------------------

class TileEncoder:
    """What an ImageWriter pickles to: its encode spec, with :meth:`encode_tile`."""

    def __init__(self, spec: EncodeSpec) -> None:
        self.spec = spec

    def encode_tile(self, array: Any) -> bytes:
        return encode_segment(self.spec, array)

    def __reduce__(self) -> Any:
        return (TileEncoder, (self.spec,))


class ImageWriter:
    """One image of a :class:`TiffWriter`: write its tiles in any order."""

    def __init__(self, writer: TiffWriter, index: int, params: dict[str, Any], workers: int) -> None:
        self._writer = writer
        self.index = index
        self.params = params
        p = params
        self.shape = tuple(p["shape"])
        self.dtype = numpy.dtype(p["dtype"])
        self.tile = tuple(p["tile"])
        self.compression = p["compression"]
        self.photometric = p["photometric"]
        self.planarconfig = "separate" if p["planar"] == 2 else "contig"
        self.missing = p["missing"]
        self.workers = workers
        self.samples = p["samples"]
        self.planes = p["samples"] if p["planar"] == 2 else 1
        th, tw = self.tile
        self.tiles_down = -(-p["height"] // th)
        self.tiles_across = -(-p["width"] // tw)
        self.tile_count = self.planes * self.tiles_down * self.tiles_across
        self._offsets = numpy.zeros(self.tile_count, numpy.uint64)
        self._counts = numpy.zeros(self.tile_count, numpy.uint64)
        spec = EncodeSpec(compression=p["compression"], dtype=self.dtype, tile=self.tile,
                          samples=1 if p["planar"] == 2 else p["samples"], byteorder=writer.byteorder,
                          predictor=p["predictor"], level=p["level"], photometric=p["photometric"],
                          jpeg_subsampling=tuple(p["subsampling"]))
        if spec.compression == C.JPEG:
            from dataclasses import replace
            spec = replace(spec, jpegtables=make_jpegtables(spec))
        self._spec = spec
        self._blank: bytes | None = None
        self._blank_location: tuple[int, int] | None = None  # (offset, byte count) in the file

    # -- public ----------------------------------------------------------------------------
    @property
    def parent(self) -> ImageWriter | None:
        k = self.params["parent"]
        return None if k is None else self._writer.images[k]

    @property
    def spec(self) -> EncodeSpec:
        return self._spec

    def __reduce__(self) -> Any:
        return (TileEncoder, (self._spec,))

    def __repr__(self) -> str:
        return (f"<ImageWriter {self.index}: {self.shape} {self.dtype} tiles {self.tile} "
                f"{compression_name(self.compression)}, {len(self.missing_tiles())} of {self.tile_count} missing>")

    def encode_tile(self, array: Any) -> bytes:
        """Encode one tile's pixels into the bytes to store (CPU only, thread-safe)."""
        return encode_segment(self._spec, array)

    def tile_index(self, row: int, col: int, plane: int = 0) -> int:
        """The tile's index in TileOffsets (libtiff order: plane, row, column)."""
        if not isinstance(row, (int, numpy.integer)) or not isinstance(col, (int, numpy.integer)) or \
                not isinstance(plane, (int, numpy.integer)):
            raise TiffTypeError(f"tile coordinates must be ints, not {row!r}, {col!r}, plane {plane!r}")
        if not (0 <= row < self.tiles_down and 0 <= col < self.tiles_across and 0 <= plane < self.planes):
            raise TiffIndexError(f"image {self.index}: tile (row {row}, col {col}, plane {plane}) is outside the "
                                 f"grid of {self.tiles_down} x {self.tiles_across} tiles x {self.planes} planes")
        return (int(plane) * self.tiles_down + int(row)) * self.tiles_across + int(col)

    def valid_shape(self, row: int, col: int) -> tuple[int, ...]:
        """Shape of the part of tile (row, col) inside the image."""
        th, tw = self.tile
        h = min(th, self.params["height"] - row * th)
        w = min(tw, self.params["width"] - col * tw)
        return (h, w, self._spec.samples) if self._spec.samples > 1 else (h, w)

    def write_tile(self, row: int, col: int, array: Any, *, plane: int = 0) -> None:
        """Encode and store one tile. Edge tiles may be given cropped to the image."""
        index = self.tile_index(row, col, plane)
        arr = numpy.asarray(array)
        if arr.dtype.newbyteorder("=") != self.dtype:
            raise TiffTypeError(f"image {self.index}: tile dtype {arr.dtype} does not match the image's {self.dtype}")
        full = self._spec.tile_shape
        valid = self.valid_shape(row, col)
        shape = arr.shape
        if self._spec.samples == 1 and arr.ndim == 3 and arr.shape[2] == 1:
            shape = shape[:2]
        if shape != full and shape != valid:
            raise TiffValueError(f"image {self.index}: tile (row {row}, col {col}) has shape {arr.shape}; expected "
                                 f"{full}" + (f" or {valid} (cropped at the edge)" if valid != full else ""))
        self._writer._submit(self, index, arr)

    def write_raw_tile(self, row: int, col: int, data: bytes, *, plane: int = 0) -> None:
        """Store pre-encoded bytes as the tile (stored as given, not checked)."""
        index = self.tile_index(row, col, plane)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TiffTypeError(f"raw tile data must be bytes-like, not {type(data).__name__}")
        data = bytes(data)
        if not data:
            raise TiffValueError("raw tile data is empty (a zero byte count means a missing tile)")
        self._writer._submit_raw(self, index, data)

    def missing_tiles(self) -> list[tuple[int, ...]]:
        """The tiles not written yet: (row, col), or (row, col, plane) for separate planes.

        A tile given to :meth:`write_tile` counts as written at once, also while an encoder
        thread still works on it (an encoding error is raised by a later call)."""
        writer = self._writer
        with writer._lock:
            missing = self._offsets == 0
            in_flight = [i for (k, i) in writer._latest if k == self.index]
            if in_flight:
                missing[in_flight] = False
            idx = numpy.flatnonzero(missing)
        per_plane = self.tiles_down * self.tiles_across
        result: list[tuple[int, ...]] = []
        for i in idx.tolist():
            plane, rest = divmod(i, per_plane)
            row, col = divmod(rest, self.tiles_across)
            result.append((row, col, plane) if self.planes > 1 else (row, col))
        return result

    # -- internal --------------------------------------------------------------------------
    def _blank_tile(self) -> bytes:
        if self._blank is None:
            self._blank = encode_segment(self._spec, numpy.zeros(self._spec.tile_shape, self.dtype))
        return self._blank

    def _entries(self, layout: Layout, policy_final: bool) -> list[_Entry]:
        """The IFD entries except SubIFDs (added by the writer, which knows their offsets)."""
        p = self.params
        bo = layout.byteorder
        out: list[_Entry] = []

        def add(code: int, ftype: int, values: Any) -> None:
            count, data = _pack_values(layout, ftype, values)
            out.append(_Entry(code, int(ftype), count, data))

        spp = p["samples"]
        if p["reduced"] or p["parent"] is not None:
            add(254, T.LONG, [1])
        add(256, T.LONG, [p["width"]])
        add(257, T.LONG, [p["height"]])
        add(258, T.SHORT, [self.dtype.itemsize * 8] * spp)
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
        add(322, T.LONG, [self.tile[1]])
        add(323, T.LONG, [self.tile[0]])
        offsets, counts = self._strile_arrays(policy_final)
        otype = T.LONG8 if layout.bigtiff else T.LONG
        odt = numpy.dtype(bo + ("u8" if layout.bigtiff else "u4"))
        out.append(_Entry(324, int(otype), self.tile_count, offsets.astype(odt).tobytes()))
        out.append(_Entry(325, int(otype), self.tile_count, counts.astype(odt).tobytes()))
        base = 3 if p["photometric"] in (2, 6) else 1
        if spp > base:
            extra = [0] * (spp - base)
            if p["photometric"] == 2 and spp == 4:
                extra = [2]
            add(338, T.SHORT, extra)
        add(339, T.SHORT, [_SAMPLEFORMAT[self.dtype.kind]] * spp)
        if self._spec.jpegtables is not None:
            add(347, T.UNDEFINED, self._spec.jpegtables)
        if p["photometric"] == 6:
            add(530, T.SHORT, p["subsampling"])
            add(532, T.RATIONAL, [0, 1, 255, 1, 128, 1, 255, 1, 128, 1, 255, 1])
        if p["compression"] == C.LERC:
            add(50674, T.LONG, [4, 0])  # LercParameters: LERC version 2.4, no extra compression
        used = {e.code for e in out}
        for code, ftype, count, value in p["extratags"]:
            if isinstance(value, dict) and "bytes" in value:
                value = bytes.fromhex(value["bytes"])
            n, data = _pack_values(layout, ftype, value)
            if count is not None and count != n and ftype != T.ASCII:
                raise TiffValueError(f"extratag {code}: count {count} does not match {n} values")
            if code in used:
                out = [e for e in out if e.code != code]
            out.append(_Entry(code, ftype, n, data))
            used.add(code)
        return out

    def _strile_arrays(self, final: bool) -> tuple[numpy.ndarray, numpy.ndarray]:
        offsets = self._offsets.copy()
        counts = self._counts.copy()
        if self._blank_location is not None:
            missing = offsets == 0
            offsets[missing] = self._blank_location[0]
            counts[missing] = self._blank_location[1]
        return offsets, counts

    def _max_value(self) -> int:
        return int(self._offsets.max(initial=0)) + int(self._counts.max(initial=0))


# --- the writer -----------------------------------------------------------------------------------

@dataclass
class RecoveryReport:
    """What :func:`tiffio.recover` (and ``mode='resume'``) found in a file."""

    path: str
    checkpoint_offset: int = 0          # first-IFD offset of the last valid checkpoint (0: none)
    images: int = 0
    tiles_in_checkpoint: int = 0
    tiles_recovered: int = 0            # complete tiles found after the last checkpoint
    records_scanned: int = 0
    bytes_dropped: int = 0              # torn or unreadable bytes at the end, removed
    missing_tiles: list[int] = field(default_factory=list)   # per image, after recovery

    def __str__(self) -> str:
        return (f"{self.path}: checkpoint at {self.checkpoint_offset or 'none'}, {self.images} images, "
                f"{self.tiles_in_checkpoint} tiles in it, {self.tiles_recovered} recovered after it, "
                f"{self.bytes_dropped} torn bytes dropped, missing per image {self.missing_tiles}")


class TiffWriter:
    """Write tiled TIFF/BigTIFF files incrementally (see the module docstring for the layout).

    ``bigtiff=None`` decides at each checkpoint whether classic TIFF suffices; ``True`` or
    ``False`` force it. ``checkpoint_every`` (tiles) and ``checkpoint_seconds`` trigger
    automatic checkpoints (None disables each); ``checkpoint_every='auto'`` is
    ``max(1000, tiles in the file / 16)`` so that checkpoints of huge images stay cheap.
    ``mode='resume'`` reopens a file tiffio wrote (see :func:`tiffio.recover`).
    """

    def __init__(self, target: Any, *, bigtiff: bool | None = None, byteorder: str = "<", mode: str = "w",
                 missing: str = "blank", software: str | None = "tiffio", checkpoint_every: Any = "auto",
                 checkpoint_seconds: float | None = 60.0, fsync: bool = True, workers: int | None = None) -> None:
        if mode not in ("w", "resume"):
            raise TiffValueError(f"mode must be 'w' or 'resume', not {mode!r}")
        if byteorder not in ("<", ">"):
            raise TiffValueError(f"byteorder must be '<' or '>', not {byteorder!r}")
        if bigtiff not in (None, True, False):
            raise TiffValueError(f"bigtiff must be None, True or False, not {bigtiff!r}")
        if missing not in _MISSING:
            raise TiffValueError(f"missing must be one of {_MISSING}, not {missing!r}")
        self.byteorder = byteorder
        self.bigtiff = bigtiff
        self.missing = missing
        self.software = software
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.fsync = fsync
        self.default_workers = workers
        self.images: list[ImageWriter] = []
        self.report: RecoveryReport | None = None
        self._lock = threading.Lock()             # file end, arrays
        self._ckpt_lock = threading.RLock()       # checkpoints vs everything else
        self._end = DATA_START
        self._max_classic = CLASSIC_LIMIT
        self._copy_tiles = True
        self._closed = False
        self._error: BaseException | None = None
        self._latest: dict[tuple[int, int], int] = {}  # tiles in encoder threads -> sequence number
        self._seq = 0
        self._threads: _EncoderThreads | None = None
        self._sync_thread: threading.Thread | None = None  # fsync + header of an automatic checkpoint
        # background write-back: with fsync=True, every WRITEBACK_BYTES appended, one fdatasync runs in
        # a thread, so that the disk works while tiles are encoded and the fsync of a checkpoint or
        # close() finds little left to write (None: off)
        self._writeback_bytes: int | None = WRITEBACK_BYTES if fsync else None
        self._writeback_mark = DATA_START
        self._writeback_thread: threading.Thread | None = None
        self._since_checkpoint = 0
        self._last_checkpoint_time = time.monotonic()
        self._checkpoints = 0
        self.last_layout: Layout | None = None
        self._sink = _Sink(target, mode)
        try:
            if mode == "w":
                self._sink.pwrite(0, b"\0" * DATA_START)
            else:
                self.report = self._resume()
        except BaseException:
            self._sink.close()
            raise

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> TiffWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self.close(_enforce=False)
            except TiffError:
                pass  # the original exception is more informative

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def checkpoints(self) -> int:
        """How many checkpoints this writer has written."""
        return self._checkpoints

    def _check_open(self) -> None:
        if self._closed:
            raise TiffUsageError("the TiffWriter is closed")

    # -- images ----------------------------------------------------------------------------------
    def add_image(self, shape: Any, dtype: Any, *, tile: Any = (256, 256), compression: Any = None,
                  compression_level: Any = None, predictor: Any = None, photometric: Any = None,
                  planarconfig: Any = "contig", jpeg_quality: Any = None, subsampling: Any = None,
                  description: Any = None, resolution: Any = None, extratags: Iterable = (),
                  parent: ImageWriter | None = None, reduced: bool = False, missing: str | None = None,
                  software: Any = ..., datetime: Any = None, workers: int | None = None) -> ImageWriter:
        """Add an image; returns its :class:`ImageWriter`.

        ``parent=img`` stores this image as a SubIFD of ``img`` (a pyramid level, OME-TIFF /
        libvips style, NewSubfileType 1); ``reduced=True`` marks a following IFD as a reduced
        level (GDAL / COG style). ``missing`` overrides the writer's missing-tile policy.
        """
        self._check_open()
        with self._ckpt_lock:
            if parent is not None:
                if not isinstance(parent, ImageWriter) or parent._writer is not self:
                    raise TiffValueError("parent must be an ImageWriter of this TiffWriter")
                if parent.params["parent"] is not None:
                    raise TiffValueError("SubIFDs of SubIFDs are not written; give the top-level image as parent")
            params = _normalize_params(
                shape, dtype, tile=tile, compression=compression, compression_level=compression_level,
                predictor=predictor, photometric=photometric, planarconfig=planarconfig, jpeg_quality=jpeg_quality,
                subsampling=subsampling, description=description, resolution=resolution, extratags=extratags,
                parent=None if parent is None else parent.index, reduced=reduced,
                missing=self.missing if missing is None else missing,
                software=self.software if software is ... else software, datetime=datetime,
                byteorder=self.byteorder)
            if workers is None:
                workers = self.default_workers
            workers = max(1, int(workers or 1))
            image = self._make_image(params, workers)
            payload = json.dumps({"params": params, "byteorder": self.byteorder, "bigtiff": self.bigtiff},
                                 sort_keys=True).encode()
            self._raise_pending()
            with self._lock:
                self._append(MAGIC_IMAGE, image.index, 0, payload)
            self.images.append(image)
            return image

    def _make_image(self, params: dict[str, Any], workers: int) -> ImageWriter:
        image = ImageWriter(self, len(self.images), params, workers)
        image._blank_tile()  # encode now: checks the codec and the parameters before anything is stored
        return image

    # -- appending -------------------------------------------------------------------------------
    def _append(self, magic: bytes, image: int, index: int, payload: bytes, crc: int | None = None,
                check: bool = True) -> int:
        """Append leader + payload at the end (caller holds _lock); returns the payload offset."""
        return self._append_parts(magic, image, index, (payload,), len(payload),
                                  _crc32(payload) if crc is None else crc, check)

    def _append_parts(self, magic: bytes, image: int, index: int, parts: Sequence[Any], length: int, crc: int,
                      check: bool = True) -> int:
        """Append leader + the concatenated parts (one vectored write; caller holds _lock)."""
        leader = LEADER.pack(magic, image, index, length, crc)
        pos = self._end
        end = pos + len(leader) + length
        if check and self.bigtiff is False and end + self._metadata_bound() > self._max_classic:
            raise LimitExceededError(
                f"{self._sink.name}: bigtiff=False, but {length} more bytes at offset {pos} would pass "
                f"the 4 GiB limit of classic TIFF (with room for the IFDs); nothing was written")
        self._sink.pwrite(pos, leader, *parts)
        self._end = end
        return pos + len(leader)

    def _metadata_bound(self) -> int:
        """An upper bound of the bytes a classic-TIFF checkpoint needs (blank tiles, state, IFDs)."""
        total = 4096
        for im in self.images:
            total += im.tile_count * 8 + 2048 + len(json.dumps(im.params))
            total += len(im._blank or b"") + LEADER.size + 2 * len(im._spec.jpegtables or b"")
            for tag in im.params["extratags"]:
                total += 2 * len(json.dumps(tag[3])) + 16
        return total

    def _store_tile(self, image: ImageWriter, index: int, parts: Sequence[Any], seq: int | None) -> None:
        """Append one encoded tile (its bytes as parts); with ``seq``, only if it is still the latest
        write of that tile. The checksum is computed before taking the lock."""
        crc = crc32_parts(parts)
        length = sum(len(p) for p in parts)
        with self._lock:
            if seq is not None:
                key = (image.index, index)
                if self._latest.get(key) != seq:
                    return  # a later write of this tile is in flight or done: the last write wins
                del self._latest[key]
            offset = self._append_parts(MAGIC_TILE, image.index, index, parts, length, crc)
            image._offsets[index] = offset
            image._counts[index] = length
            self._since_checkpoint += 1
            writeback = self._writeback_bytes is not None and \
                self._end - self._writeback_mark >= self._writeback_bytes and self._sink.fd is not None and \
                (self._writeback_thread is None or not self._writeback_thread.is_alive())
            if writeback:  # (started under the lock: one at a time, and close() can always join it)
                self._writeback_mark = self._end
                self._writeback_thread = threading.Thread(target=self._writeback, daemon=True,
                                                          name="tiffio-writeback")
                self._writeback_thread.start()

    def _writeback(self) -> None:
        try:
            self._sink.datasync()
        except BaseException as exc:
            with self._lock:
                if self._error is None:
                    self._error = exc

    def _encode_job(self, image: ImageWriter, index: int, array: numpy.ndarray, seq: int) -> None:
        """Runs in an encoder thread: encode, checksum and store one tile."""
        try:
            self._store_tile(image, index, encode_segment_parts(image._spec, array), seq)
        except BaseException as exc:
            with self._lock:
                if self._error is None:
                    self._error = exc
                key = (image.index, index)
                if self._latest.get(key) == seq:
                    del self._latest[key]  # not stored: missing again

    def _encoder_threads(self, workers: int) -> _EncoderThreads:
        threads = self._threads
        if threads is None:
            threads = self._threads = _EncoderThreads(workers)
            # an unclosed, collected writer stops its threads (the threads hold only the queue)
            weakref.finalize(self, _EncoderThreads.stop, threads.jobs, threads.threads, False)
        elif len(threads.threads) < workers:
            threads.grow(workers)
        return threads

    def _submit(self, image: ImageWriter, index: int, array: numpy.ndarray) -> None:
        if self._closed:
            self._check_open()
        if self._error is not None:
            self._raise_pending()
        self._maybe_checkpoint()
        if image.workers <= 1:
            self._store_tile(image, index, encode_segment_parts(image._spec, array), None)
            return
        threads = self._threads
        if threads is None or len(threads.threads) < image.workers:
            threads = self._encoder_threads(image.workers)
        # the caller may reuse a writeable buffer as soon as write_tile returns: copy it; a read-only
        # array (arr.setflags(write=False)) promises it will not change, and is encoded in place
        arr = numpy.array(array, copy=True) if (self._copy_tiles and array.flags.writeable) else array
        key = (image.index, index)
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._latest[key] = seq
        try:
            threads.jobs.put((self._encode_job, (image, index, arr, seq)))  # blocks while the queue is full
        except BaseException:
            with self._lock:
                if self._latest.get(key) == seq:
                    del self._latest[key]
            raise

    def _submit_raw(self, image: ImageWriter, index: int, data: bytes) -> None:
        self._check_open()
        self._raise_pending()
        self._maybe_checkpoint()
        with self._lock:
            self._latest.pop((image.index, index), None)  # an in-flight encode of this tile is now stale
        self._store_tile(image, index, (data,), None)

    def _drain(self) -> None:
        """Wait until the encoder threads have stored (or failed) every tile given so far."""
        if self._threads is not None:
            self._threads.join()

    def _wait_sync(self) -> None:
        """Wait for the fsync + header update of the last automatic checkpoint."""
        thread = self._sync_thread
        if thread is not None:
            thread.join()
            self._sync_thread = None

    def _wait_writeback(self) -> None:
        with self._lock:
            thread = self._writeback_thread
        if thread is not None:
            thread.join()

    def _raise_pending(self) -> None:
        with self._lock:
            exc, self._error = self._error, None
        if exc is not None:
            if isinstance(exc, TiffError):
                raise exc
            raise TiffError(f"encoding a tile failed: {type(exc).__name__}: {exc}") from exc

    def flush(self) -> None:
        """Wait until every tile given so far is encoded and stored."""
        self._drain()
        self._raise_pending()

    # -- checkpoints -----------------------------------------------------------------------------
    def _auto_tiles(self) -> int | None:
        every = self.checkpoint_every
        if every is None:
            return None
        if every == "auto":
            return max(1000, sum(im.tile_count for im in self.images) // 16)
        return max(1, int(every))

    def _maybe_checkpoint(self) -> None:
        every = self._auto_tiles()
        due = every is not None and self._since_checkpoint >= every
        if not due and self.checkpoint_seconds is not None:
            due = self._since_checkpoint > 0 and \
                time.monotonic() - self._last_checkpoint_time >= self.checkpoint_seconds
        if due:
            # automatic: holds the tiles stored so far (those still in encoder threads go into the
            # next one; recovery finds them by their leaders), and the fsync + header update run in
            # the background while the encoders go on
            self._checkpoint(final=False, drain=False, background=True)

    def checkpoint(self) -> None:
        """Make the file on disk a complete, valid TIFF holding every tile written so far
        (durable on return when ``fsync=True``)."""
        self._check_open()
        self._checkpoint(final=False)

    def _checkpoint(self, final: bool, drain: bool = True, background: bool = False) -> None:
        with self._ckpt_lock:
            self._wait_sync()  # headers are updated in checkpoint order
            if drain:
                self._drain()
            self._raise_pending()
            with self._lock:
                for im in self.images:
                    if im.missing == "blank" and im._blank_location is None and bool((im._offsets == 0).any()):
                        blank = im._blank_tile()
                        offset = self._append(MAGIC_BLANK, im.index, 0, blank, check=False)  # in the bound
                        im._blank_location = (offset, len(blank))
                if not self.images:
                    raise TiffUsageError("a TIFF needs at least one image: call add_image() before checkpoint()")
                pos = self._end + (self._end & 1)
                blob, first_ifd, layout = self._build_checkpoint(pos, final)
                self._sink.pwrite(pos, blob)  # one write: state record + every IFD and array
                self._end = pos + len(blob)
                self._since_checkpoint = 0
                self._last_checkpoint_time = time.monotonic()
                self._checkpoints += 1
            # the tiles and IFDs must be durable before the header points at them; encoder
            # threads go on appending tiles meanwhile (after the checkpoint, outside the lock)
            header = pack_header(layout, first_ifd).ljust(DATA_START, b"\0")
            if background and self.fsync:
                thread = threading.Thread(target=self._publish, args=(header, layout, True, False), daemon=True,
                                          name="tiffio-checkpoint")
                self._sync_thread = thread
                thread.start()
            else:
                self._publish(header, layout, self.fsync, self.fsync and final, raise_=True)

    def _publish(self, header: bytes, layout: Layout, sync_before: bool, sync_after: bool,
                 raise_: bool = False) -> None:
        """fsync, point the header at the new IFDs, (fsync again)."""
        try:
            if sync_before:
                self._sink.sync()
            self._sink.pwrite(0, header)
            if sync_after:
                self._sink.sync()
            self.last_layout = layout
        except BaseException as exc:
            if raise_:
                raise
            with self._lock:
                if self._error is None:
                    self._error = exc

    def _tree(self) -> list[tuple[ImageWriter, list[ImageWriter]]]:
        tops = [im for im in self.images if im.params["parent"] is None]
        return [(top, [im for im in self.images if im.params["parent"] == top.index]) for top in tops]

    def _build_checkpoint(self, pos: int, final: bool) -> tuple[bytes, int, Layout]:
        """The state record + IFDs for a checkpoint at ``pos`` -> (blob, first IFD offset, layout)."""
        tree = self._tree()

        def plan(layout: Layout) -> tuple[list[tuple[ImageWriter, list[_Entry]]], int]:
            items = []
            size = 0
            for top, children in tree:
                for im in [top, *children]:
                    entries = im._entries(layout, final)
                    if im is top and children:
                        entries.append(_Entry(330, int(T.IFD8 if layout.bigtiff else T.IFD), len(children),
                                              b"\0" * (layout.offset_size * len(children))))
                    items.append((im, entries))
                    size += _ifd_size(layout, entries)
            return items, size

        state = {"version": FORMAT_VERSION, "byteorder": self.byteorder, "bigtiff": self.bigtiff,
                 "images": [im.params for im in self.images],
                 "blanks": [list(im._blank_location) if im._blank_location else None for im in self.images]}
        layouts = [get_layout(self.byteorder, False), get_layout(self.byteorder, True)]
        if self.bigtiff is True:
            layouts = layouts[1:]
        elif self.bigtiff is False:
            layouts = layouts[:1]
        for layout in layouts:
            items, size = plan(layout)
            state["metadata_size"] = size
            text = json.dumps(state, sort_keys=True).encode()
            text += b" " * (len(text) & 1)
            record = LEADER.pack(MAGIC_STATE, 0, 0, len(text), _crc32(text)) + text + \
                STATE_FOOTER.pack(len(text), STATE_FOOTER_MAGIC)
            first = pos + len(record)
            if layout.bigtiff or first + size <= self._max_classic:
                break
        else:
            raise LimitExceededError(f"{self._sink.name}: bigtiff=False, but the file needs "
                                     f"{first + size} bytes, more than classic TIFF's 4 GiB")
        # offsets of every IFD
        offsets: dict[int, int] = {}
        cursor = first
        for im, entries in items:
            offsets[im.index] = cursor
            cursor += _ifd_size(layout, entries)
        parts = [record]
        top_order = [top.index for top, _ in tree]
        children_of = {top.index: [c.index for c in children] for top, children in tree}
        for im, entries in items:
            if children_of.get(im.index):
                subs = numpy.asarray([offsets[k] for k in children_of[im.index]],
                                     layout.byteorder + ("u8" if layout.bigtiff else "u4")).tobytes()
                entries = [e if e.code != 330 else _Entry(330, e.type, e.count, subs) for e in entries]
            next_offset = 0
            if im.index in top_order:
                k = top_order.index(im.index)
                if k + 1 < len(top_order):
                    next_offset = offsets[top_order[k + 1]]
            parts.append(_pack_ifd(layout, entries, offsets[im.index], next_offset))
        blob = b"".join(parts)
        assert len(blob) == len(record) + size
        return blob, first, layout

    # -- closing ---------------------------------------------------------------------------------
    def close(self, *, _enforce: bool = True) -> None:
        """Store the remaining tiles, write the final IFDs and close the file.

        Images with ``missing='error'`` and missing tiles raise TiffValueError after the file
        is written (with those tiles sparse), so that what was written stays readable.
        """
        if self._closed:
            return
        error: BaseException | None = None
        try:
            if self.images:
                self._checkpoint(final=True)
        except BaseException as exc:
            error = exc
        finally:
            self._closed = True
            try:
                self._wait_sync()
                self._wait_writeback()
            except BaseException as exc:  # pragma: no cover
                error = error or exc
            if self._threads is not None:
                if error is not None:  # the final checkpoint failed before draining: let them finish
                    self._threads.join()
                _EncoderThreads.stop(self._threads.jobs, self._threads.threads, True)
                self._threads = None
            try:
                self._sink.close()
            except SourceError as exc:
                error = error or exc
        if error is not None:
            raise error
        if _enforce:
            for im in self.images:
                if im.missing == "error":
                    missing = im.missing_tiles()
                    if missing:
                        raise TiffValueError(f"image {im.index}: {len(missing)} tiles were never written "
                                             f"(first: {missing[0]}); they are stored sparse")

    # -- resume / recover ------------------------------------------------------------------------
    def _read_state(self, first: int) -> dict[str, Any]:
        where = f"{self._sink.name}: checkpoint at {first}"
        if first < DATA_START + LEADER.size + STATE_FOOTER.size:
            raise TiffFormatError(f"{where}: not a file written by tiffio (no state record before the first IFD)")
        length, magic = STATE_FOOTER.unpack(self._sink.pread(first - STATE_FOOTER.size, STATE_FOOTER.size))
        start = first - STATE_FOOTER.size - length - LEADER.size
        if magic != STATE_FOOTER_MAGIC or start < DATA_START:
            raise TiffFormatError(f"{where}: not a file written by tiffio (no state record before the first IFD)")
        raw = self._sink.pread(start, LEADER.size + length)
        lmagic, _, _, n, crc = LEADER.unpack(raw[: LEADER.size])
        text = raw[LEADER.size:]
        if lmagic != MAGIC_STATE or n != length or _crc32(text) != crc:
            raise TiffFormatError(f"{where}: the state record is damaged")
        state = json.loads(text)
        if state.get("version") != FORMAT_VERSION:
            raise UnsupportedFeatureError(f"{where}: tiffio writer format {state.get('version')} is not supported")
        return state

    def _resume(self) -> RecoveryReport:
        size = self._sink.size()
        report = RecoveryReport(path=self._sink.name)
        head = self._sink.pread(0, DATA_START)
        first = 0
        state = None
        if len(head) == DATA_START and head != b"\0" * DATA_START:
            layout, first = parse_header(head)
            if first:
                state = self._read_state(first)
                if state["byteorder"] != layout.byteorder:
                    raise TiffFormatError(f"{self._sink.name}: header and state record disagree on byte order")
        elif len(head) < DATA_START:
            raise TiffFormatError(f"{self._sink.name}: {len(head)} bytes is too short for a file tiffio wrote")
        scan_from = DATA_START
        if state is not None:
            self.byteorder = state["byteorder"]
            self.bigtiff = state["bigtiff"]
            for _k, params in enumerate(state["images"]):
                image = self._make_image(params, max(1, int(self.default_workers or 1)))
                self.images.append(image)
            for image, blank in zip(self.images, state["blanks"]):
                if blank:
                    image._blank_location = (int(blank[0]), int(blank[1]))
            self._load_checkpoint_arrays(first)
            scan_from = first + int(state["metadata_size"])
            report.checkpoint_offset = first
            report.tiles_in_checkpoint = sum(int((im._offsets != 0).sum()) for im in self.images)
        # scan the records after the checkpoint
        pos = scan_from
        valid_end = scan_from
        while pos + LEADER.size <= size:
            raw = self._sink.pread(pos, LEADER.size)
            magic, img, index, length, crc = LEADER.unpack(raw)
            if magic not in MAGICS or pos + LEADER.size + length > size:
                break
            payload = self._sink.pread(pos + LEADER.size, length)
            if len(payload) != length or _crc32(payload) != crc:
                break
            offset = pos + LEADER.size
            if magic == MAGIC_IMAGE:
                record = json.loads(payload)
                if img != len(self.images):
                    break
                if not self.images:  # no checkpoint yet: the first image record has the writer's settings
                    self.byteorder = record["byteorder"]
                    self.bigtiff = record["bigtiff"]
                self.images.append(self._make_image(record["params"], max(1, int(self.default_workers or 1))))
            elif magic == MAGIC_TILE:
                if img >= len(self.images) or index >= self.images[img].tile_count:
                    break
                self.images[img]._offsets[index] = offset
                self.images[img]._counts[index] = length
                report.tiles_recovered += 1
            elif magic == MAGIC_BLANK:
                if img >= len(self.images):
                    break
                self.images[img]._blank_location = (offset, length)
            # MAGIC_STATE: the state record of an unfinished checkpoint: harmless, skipped
            report.records_scanned += 1
            pos = offset + length
            valid_end = pos
        report.bytes_dropped = size - valid_end
        if valid_end < size:
            self._sink.truncate(valid_end)
        self._end = valid_end
        report.images = len(self.images)
        report.missing_tiles = [int((im._offsets == 0).sum()) for im in self.images]
        self._since_checkpoint = report.tiles_recovered
        return report

    def _load_checkpoint_arrays(self, first: int) -> None:
        from .reader import TiffFile
        source = self._sink.name if self._sink.fd is not None else self._sink.file
        tf = TiffFile(source)
        try:
            tops = [im for im in self.images if im.params["parent"] is None]
            if len(tf.ifds) != len(tops):
                raise TiffFormatError(f"{self._sink.name}: the checkpoint has {len(tf.ifds)} IFDs, "
                                      f"the state record {len(tops)} top-level images")
            for ifd, top in zip(tf.ifds, tops):
                children = [im for im in self.images if im.params["parent"] == top.index]
                subs = ifd.subifds if children else []
                if len(subs) != len(children):
                    raise TiffFormatError(f"{self._sink.name}: {ifd.where} has {len(subs)} SubIFDs, "
                                          f"expected {len(children)}")
                for d, im in zip([ifd, *subs], [top, *children]):
                    offsets = d.segment_offsets.to_numpy().astype(numpy.uint64)
                    counts = d.segment_byte_counts.to_numpy().astype(numpy.uint64)
                    if offsets.size != im.tile_count:
                        raise TiffFormatError(f"{d.where}: {offsets.size} tiles, expected {im.tile_count}")
                    if im._blank_location is not None:
                        blank = offsets == im._blank_location[0]
                        offsets[blank] = 0
                        counts[blank] = 0
                    offsets[counts == 0] = 0
                    counts[offsets == 0] = 0
                    im._offsets[:] = offsets
                    im._counts[:] = counts
        finally:
            tf.close()
