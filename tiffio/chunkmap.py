"""The zarr v3 view of a TIFF, as data: array metadata and chunk key <-> tile/window mapping.

No framework imports: :mod:`tiffio.zarr` serves these through zarr's Store interface.
``ArrayMap`` is one image as one array (chunks = segments, tile-aligned windows, or the whole
image); ``StoreLayout`` is a file's keys (OME-NGFF 0.5 multiscales group of the levels, plus
masks and associated images).
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy

from .alloc import require_fill
from .errors import TiffValueError, UnsupportedFeatureError
from .reader import IFD, TiffFile
from .segment import SegmentSpec

__all__ = ["ArrayMap", "StoreLayout", "dumps_json", "zarr_dtype", "spec_to_json", "spec_from_json", "window_shape"]


def window_shape(chunks: Any, accepted: str) -> tuple[int, int]:
    """``(height, width)`` of a window-chunks argument, both positive; TiffValueError naming
    what is ``accepted`` otherwise (the zarr store and the dask arrays parse ``chunks=`` alike)."""
    try:
        h, w = (int(n) for n in chunks)
    except (TypeError, ValueError):
        raise TiffValueError(f"chunks must be {accepted}, not {chunks!r}") from None
    if h <= 0 or w <= 0:
        raise TiffValueError(f"chunks {chunks!r} must be positive")
    return h, w


def zarr_dtype(dtype: numpy.dtype, where: str) -> tuple[str, numpy.dtype]:
    if dtype.kind == "b":
        return "bool", numpy.dtype(bool)
    if dtype.kind in "iufc" and dtype.itemsize in (1, 2, 4, 8, 16) and not (dtype.kind == "c" and dtype.itemsize < 8):
        le = dtype.newbyteorder("<")
        return le.name, le
    raise UnsupportedFeatureError(f"{where}: samples of dtype {dtype} have no zarr v3 data type")


def _json_number(value: Any, dtype: numpy.dtype) -> Any:
    if dtype.kind == "b":
        return bool(value)
    if dtype.kind in "iu":
        return int(value)
    if dtype.kind == "c":
        c = complex(value)
        return [_json_number(c.real, numpy.dtype("f8")), _json_number(c.imag, numpy.dtype("f8"))]
    f = float(value)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return f


def spec_to_json(spec: SegmentSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        if isinstance(value, numpy.dtype):
            value = value.str
        elif isinstance(value, (bytes, bytearray)):
            value = {"base64": base64.b64encode(bytes(value)).decode("ascii")}
        elif isinstance(value, numpy.integer):
            value = int(value)
        out[field.name] = value
    return out


def spec_from_json(data: dict[str, Any]) -> SegmentSpec:
    kwargs = dict(data)
    kwargs["dtype"] = numpy.dtype(kwargs["dtype"])
    tables = kwargs.get("jpegtables")
    if isinstance(tables, dict):
        kwargs["jpegtables"] = base64.b64decode(tables["base64"])
    return SegmentSpec(**kwargs)


def dumps_json(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=False, allow_nan=False).encode()


class ArrayMap:
    """One TIFF image as one zarr array: its metadata and chunk <-> segment/region mapping."""

    def __init__(self, prefix: str, ifd: IFD, chunks: Any, fill: Any, workers: int | None,
                 raw: bool = False) -> None:
        self.prefix = prefix
        self.raw = raw
        self.ifd = ifd
        shape = ifd.shape
        grid = ifd.grid
        self.depth3 = ifd.depth > 1
        has_samples = len(shape) > 2 + self.depth3
        self.separate = has_samples and ifd.is_separate
        self.contig_samples = has_samples and not ifd.is_separate
        self.samples = grid.segment_samples
        self.planes = grid.planes
        self.shape = tuple(int(n) for n in shape)
        data_type, self.dtype = zarr_dtype(ifd.dtype, ifd.where)
        self.fill = require_fill(fill if fill is not None else (ifd.nodata if ifd.nodata is not None else 0),
                                 ifd.dtype, ifd.where)
        self.workers = workers
        sd, sh, sw = grid.segment
        if not grid.tiled:
            sh = min(sh, ifd.length)  # RowsPerStrip may be larger than the image
        #: decoded bytes of one segment (a store's choice between decoding inline and in a thread)
        self.segment_nbytes = sd * sh * sw * self.samples * ifd.dtype.itemsize
        if chunks == "segment":
            self.region = False
            cd, ch, cw = (sd if self.depth3 else 1), sh, sw
        elif chunks == "image":
            self.region = True
            cd, ch, cw = ifd.depth, ifd.length, ifd.width
        else:
            self.region = True
            h, w = chunks
            cd = sd if self.depth3 else 1
            ch, cw = -(-h // sh) * sh, -(-w // sw) * sw
            ch, cw = min(ch, -(-ifd.length // sh) * sh), min(cw, -(-ifd.width // sw) * sw)
        self.cdhw = (cd, ch, cw)
        chunk_shape: list[int] = []
        names: list[str] = []
        if self.separate:
            chunk_shape.append(self.planes if self.region else 1)
            names.append("c")
        if self.depth3:
            chunk_shape.append(cd)
            names.append("z")
        chunk_shape += [ch, cw]
        names += ["y", "x"]
        if self.contig_samples:
            chunk_shape.append(self.samples)
            names.append("c")
        self.chunk_shape = tuple(chunk_shape)
        self.dimension_names = names
        self.grid_shape = tuple(-(-n // c) for n, c in zip(self.shape, self.chunk_shape))
        self.chunk_nbytes = math.prod(self.chunk_shape) * self.dtype.itemsize
        self.metadata = {
            "zarr_format": 3, "node_type": "array", "shape": list(self.shape), "data_type": data_type,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(self.chunk_shape)}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": _json_number(self.fill, self.dtype),
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "attributes": {}, "dimension_names": names,
        }
        if raw:
            self.metadata["codecs"] = [self._codec_json(ifd, chunks)]

    def _codec_json(self, ifd: IFD, chunks: Any) -> dict[str, Any]:
        """The ``tiffio`` codec of raw mode: chunks are the stored segments, decoded by zarr."""
        if chunks != "segment":
            raise TiffValueError(f"{ifd.where}: raw chunks (decode='codec') are the file's segments; "
                                 f"chunks must be 'segment', not {chunks!r}")
        spec = ifd.spec
        if spec.compression == 6:
            raise UnsupportedFeatureError(f"{ifd.where}: old-style JPEG (compression 6) segments are not complete "
                                          "streams; read them with decode='store'")
        grid = ifd.grid
        sd, sh, sw = grid.segment
        last_rows = 0
        if not grid.tiled:
            sh = min(sh, ifd.length)
            last_rows = ifd.length % sh
        cd, ch, cw = self.cdhw
        return {"name": "tiffio", "configuration": {
            "spec": spec_to_json(spec), "segment": [sd, sh, sw, self.samples],
            "chunk": [cd, ch, cw, self.samples], "last_rows": last_rows}}

    def read_raw(self, coords: tuple[int, ...]) -> bytes:
        """The stored bytes of the chunk's segment (raw mode)."""
        plane, z, row, col = self._pzyx(coords)
        return self.ifd.read_segment_bytes(self.ifd.grid.index(plane, z, row, col))

    def location(self, coords: tuple[int, ...]) -> tuple[int, int]:
        """(offset, byte_count) of the chunk's segment in the file (raw mode, references)."""
        plane, z, row, col = self._pzyx(coords)
        return self.ifd.segment_location(self.ifd.grid.index(plane, z, row, col))

    # key <-> chunk coordinates
    def coords(self, rest: str) -> tuple[int, ...] | None:
        """Chunk coordinates from the part of a key after ``c/``; None if not a chunk of this array."""
        parts = rest.split("/")
        grid = self.grid_shape
        if len(parts) != len(grid):
            return None
        coords = []
        for part, n in zip(parts, grid):
            # canonical ASCII decimals only ("00", "+1", "-0" and non-ASCII digits are not keys zarr writes)
            if not (part.isascii() and part.isdigit()) or (len(part) > 1 and part[0] == "0"):
                return None
            c = int(part)
            if c >= n:
                return None
            coords.append(c)
        return tuple(coords)

    def _pzyx(self, coords: tuple[int, ...]) -> tuple[int, int, int, int]:
        k = 0
        plane = z = 0
        if self.separate:
            plane = coords[0]
            k = 1
        if self.depth3:
            z = coords[k]
            k += 1
        return plane, z, coords[k], coords[k + 1]

    def segment_indices(self, coords: tuple[int, ...]) -> list[int]:
        """The segments a chunk reads (one for segment chunks, the covered ones for windows)."""
        ifd = self.ifd
        plane, z, row, col = self._pzyx(coords)
        if not self.region:
            return [ifd.grid.index(plane, z, row, col)]
        cd, ch, cw = self.cdhw
        planes = range(self.planes) if self.separate or self.planes > 1 else range(1)
        return [part.index for p in planes for part in ifd.grid.region(z * cd, row * ch, col * cw, cd, ch, cw, p)]

    def is_stored(self, coords: tuple[int, ...]) -> bool:
        """True unless every segment under the chunk is sparse."""
        ifd = self.ifd
        plane, z, row, col = self._pzyx(coords)
        if not self.region:
            return not ifd.is_sparse(ifd.grid.index(plane, z, row, col))
        cd, ch, cw = self.cdhw
        planes = range(self.planes) if self.separate or self.planes > 1 else range(1)
        return any(not ifd.is_sparse(part.index) for p in planes
                   for part in ifd.grid.region(z * cd, row * ch, col * cw, cd, ch, cw, p))

    def read_stored(self, coords: tuple[int, ...]) -> numpy.ndarray | None:
        """A segment chunk (not a window) as :meth:`read` gives it, or None if the segment is
        not stored: the read finds out, so a stored tile costs one strile lookup."""
        ifd = self.ifd
        if not self.region:
            fast = ifd._fast_reader
            if fast is not None:
                plane, z, row, col = self._pzyx(coords)
                arr = fast(ifd.grid.index(plane, z, row, col))
                if arr is not None and arr.dtype == self.dtype and arr.size == self.chunk_nbytes // self.dtype.itemsize:
                    return arr.reshape(self.chunk_shape)
        if not self.is_stored(coords):
            return None
        return self.read(coords)

    def read(self, coords: tuple[int, ...]) -> numpy.ndarray:
        """The decoded chunk as a C-contiguous little-endian array of the chunk shape."""
        ifd = self.ifd
        plane, z, row, col = self._pzyx(coords)
        cd, ch, cw = self.cdhw
        if self.region:
            arr = ifd.read_region(row * ch, col * cw, ch, cw, z=z * cd, depth=cd, fill=self.fill, workers=self.workers)
        else:
            grid = ifd.grid
            index = grid.index(plane, z, row, col)
            d, h, w, s = grid.stored_shape(index)
            arr = ifd.read_segment(index).reshape(d, h, w, s)  # stored: fill never applies (and keeps the fast path)
            if (d, h, w) != (cd, ch, cw):
                if d >= cd and h >= ch and w >= cw:
                    arr = arr[:cd, :ch, :cw]
                else:  # the short last strip
                    full = numpy.full((cd, ch, cw, s), self.fill, arr.dtype)
                    full[:d, :h, :w] = arr[:cd, :ch, :cw]
                    arr = full
        return numpy.ascontiguousarray(arr, dtype=self.dtype)

    def iter_chunk_keys(self) -> Iterator[str]:
        for coords in itertools.product(*(range(n) for n in self.grid_shape)):
            if self.is_stored(coords):
                yield self.prefix + "c/" + "/".join(map(str, coords))


class StoreLayout:
    """Everything a store serves, built once per process from the open file."""

    def __init__(self, tif: TiffFile, name: str, level: int | None, multiscales: bool, chunks: Any, fill: Any,
                 extras: bool, workers: int | None, raw: bool = False) -> None:
        self.raw = raw
        self.arrays: list[ArrayMap] = []
        self.meta: dict[str, bytes] = {}
        levels = tif.levels
        if level is not None or not multiscales:
            index = 0 if level is None else level
            if not -len(levels) <= index < len(levels):
                raise TiffValueError(f"{name}: level {level} out of range: the image has {len(levels)} levels")
            self._add("", levels[index].ifd, chunks, fill, workers)
            return
        datasets = []
        for lev in levels:
            arr = self._add(f"{lev.index}/", lev.ifd, chunks, fill, workers)
            dy, dx = lev.downsample
            scale = [1.0] * len(arr.shape)
            names = arr.dimension_names
            scale[names.index("y")], scale[names.index("x")] = float(dy), float(dx)
            datasets.append({"path": str(lev.index), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
        types = {"x": "space", "y": "space", "z": "space", "c": "channel"}
        first = self.arrays[0]
        attrs: dict[str, Any] = {"ome": {"version": "0.5", "multiscales": [{
            "name": os.path.basename(name),
            "axes": [{"name": n, "type": types[n]} for n in first.dimension_names],
            "datasets": datasets}]}}
        if extras:
            masks = tif.masks
            associated = tif.associated_images
            if masks:
                self.meta["masks/zarr.json"] = dumps_json({"zarr_format": 3, "node_type": "group", "attributes": {}})
                for i, ifd in enumerate(masks):
                    self._add(f"masks/{i}/", ifd, chunks, None, workers)
            if associated:
                self.meta["associated/zarr.json"] = dumps_json({"zarr_format": 3, "node_type": "group", "attributes": {}})
                for key, ifd in associated.items():
                    self._add(f"associated/{key}/", ifd, "segment" if raw else "image", None, workers)
            attrs["tiffio"] = {"masks": len(masks), "associated": sorted(associated)}
        self.meta["zarr.json"] = dumps_json({"zarr_format": 3, "node_type": "group", "attributes": attrs})

    def _add(self, prefix: str, ifd: IFD, chunks: Any, fill: Any, workers: int | None) -> ArrayMap:
        arr = ArrayMap(prefix, ifd, chunks, fill, workers, self.raw)
        self.arrays.append(arr)
        self.meta[prefix + "zarr.json"] = dumps_json(arr.metadata)
        return arr

    def chunk(self, key: str) -> tuple[ArrayMap, tuple[int, ...]] | None:
        for arr in self.arrays:
            head = arr.prefix + "c/"
            if key.startswith(head):
                coords = arr.coords(key[len(head):])
                return None if coords is None else (arr, coords)
        return None

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        for key in self.meta:
            if key.startswith(prefix):
                yield key
        for arr in self.arrays:
            head = arr.prefix + "c/"
            if head.startswith(prefix) or prefix.startswith(head):
                yield from (k for k in arr.iter_chunk_keys() if k.startswith(prefix))
