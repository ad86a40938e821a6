"""A file sequence as one zarr v3 array, as data: its metadata and chunk key <-> file and chunk.

No framework imports: :class:`tiffio.zarr.FileSequenceStore` serves a ``SequenceMap``
through zarr's Store interface. The array is the sequence shape followed by the shape of
each file's array - its series (``series=``, ``key=``), one IFD (``ifd=``), or what an
``imread`` function returns - laid out by :class:`tiffio.read.filesequence.SequenceTiling`
(``axestiled=`` makes a mosaic of files). Chunks are whole files (``"file"``) or, without
tiling or ``imread``, the segments of each file (``"segment"``).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy

from ..errors import TiffError, TiffValueError
from ..read.file import TiffFile
from ..read.file import open as _tiff_open
from ..read.filesequence import FileSequence, SequenceTiling
from ..read.series.pages import dimension_names
from .chunkmap import ArrayMap, dumps_json, json_number, zarr_dtype
from .filecache import open_cached
from .selection import Selection

__all__ = ["SequenceMap", "imread_axes"]


def imread_axes(shape: tuple[int, ...]) -> str:
    """Axes letters of an array an ``imread`` function returns (it has no metadata): ``YX``
    last, or ``YXS`` for three axes of which the last has 3 or 4 samples (an RGB(A) image);
    ``Q`` for any axis before them."""
    if len(shape) == 3 and shape[-1] in (3, 4):
        return "YXS"
    if len(shape) >= 2:
        return "Q" * (len(shape) - 2) + "YX"
    return "X" * len(shape)


def _local(path: str) -> str:
    return os.path.abspath(path) if "://" not in path else path


class SequenceMap:
    """Everything a sequence store serves, built once per process from the first file."""

    def __init__(self, seq: FileSequence, *, chunks: str, series: int, key: Any, ifd: int | None, fill: Any,
                 axestiled: Any, chunkshape: Any, chunkdtype: Any, imread: Callable[[str], Any] | None,
                 attrs: dict[str, Any] | None, strict: bool | None) -> None:
        self.seq = seq
        self.chunks = chunks
        self.series, self.key, self.ifd = series, key, ifd
        self.imread = imread
        self.strict = strict
        self.first: ArrayMap | None = None
        if chunks == "segment" and (imread is not None or axestiled):
            raise TiffValueError("chunks='segment' reads TIFF segments: it cannot be combined with imread= or axestiled=")
        if imread is not None and (chunkshape is None or chunkdtype is None):
            sample = numpy.asarray(imread(seq.files[0]))
            image_shape, dtype, axes = sample.shape, sample.dtype, imread_axes(sample.shape)
        elif imread is not None:
            image_shape = tuple(int(n) for n in chunkshape)
            dtype, axes = numpy.dtype(chunkdtype), imread_axes(tuple(int(n) for n in chunkshape))
        else:
            sel = Selection.of_file(open_cached(_local(seq.files[0]), strict), series=series, key=key, ifd=ifd)
            image_shape, dtype, axes = sel.shape, sel.dtype, sel.axes
            if chunkshape is not None and tuple(int(n) for n in chunkshape) != tuple(image_shape):
                raise TiffValueError(f"chunkshape {tuple(chunkshape)} differs from the first file's {tuple(image_shape)}")
            if chunkdtype is not None and numpy.dtype(chunkdtype) != dtype:
                raise TiffValueError(f"chunkdtype {numpy.dtype(chunkdtype)} differs from the first file's {dtype}")
            if chunks == "segment":
                self.first = ArrayMap("", sel, "segment", fill, 1)
        self.image_shape = tuple(int(n) for n in image_shape)
        data_type, self.dtype = zarr_dtype(numpy.dtype(dtype), seq.files[0])
        self.native = numpy.dtype(dtype)
        if fill is None and imread is None:
            fill = sel.missing_fill(None)
        self.fill = self.native.type(0 if fill is None else fill)
        self.tiling = SequenceTiling(seq.shape, self.image_shape, axestiled)
        if self.first is not None:
            inner = self.first.chunk_shape
            self.grid_inner = self.first.grid_shape
        else:
            inner = tuple(max(1, n) for n in self.image_shape)
            self.grid_inner = ()
        self.shape = self.tiling.shape
        self.chunk_shape = (1,) * len(self.tiling.kept) + tuple(inner)
        self.chunk_nbytes = math.prod(self.chunk_shape) * self.dtype.itemsize
        kept_dims = [seq.dims[k].lower() if len(seq.dims[k]) == 1 else seq.dims[k] for k in self.tiling.kept]
        image_names = dimension_names(axes)
        names: list[str] = []
        for name in [*kept_dims, *image_names]:
            base, k = name, 0
            while name in names:
                k += 1
                name = f"{base}{k}"
            names.append(name)
        self.dimension_names = names
        info = {"axes": "".join(seq.axes[k] for k in self.tiling.kept) + axes, "files": len(seq),
                "missing": seq.size - len(seq)}
        if self.tiling.axestiled:
            info["axestiled"] = {str(a): b for a, b in self.tiling.axestiled.items()}
        attributes: dict[str, Any] = {"tiffio": info}
        attributes.update(attrs or {})
        self.meta = {"zarr.json": dumps_json({
            "zarr_format": 3, "node_type": "array", "shape": list(self.shape), "data_type": data_type,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(self.chunk_shape)}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": json_number(self.fill, self.dtype),
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "attributes": attributes, "dimension_names": names,
        })}

    # --- chunks ------------------------------------------------------------------------------
    def locate(self, key: str) -> tuple[str, Any, tuple[int, ...]] | None:
        """(file, its ArrayMap or None, chunk coordinates in the file) of a chunk key; None
        if the key is not a chunk, or the chunk is not stored (a missing file, sparse tiles)."""
        if not key.startswith("c/"):
            return None
        parts = key[2:].split("/")
        nk = len(self.tiling.kept)
        grid = self._grid()
        if len(parts) != len(grid):
            return None
        coords = []
        for part, n in zip(parts, grid):
            if not (part.isascii() and part.isdigit()) or (len(part) > 1 and part[0] == "0") or int(part) >= n:
                return None
            coords.append(int(part))
        if self.first is None:
            path = self.seq.file_at(self.tiling.position(coords))
            return None if path is None else (path, None, ())
        path = self.seq.file_at(tuple(coords[:nk]))
        if path is None:
            return None  # a missing file: zarr fills it
        inner = tuple(coords[nk:])
        arr = self._array_of(path)
        return (path, arr, inner) if arr.is_stored(inner) else None

    def _grid(self) -> tuple[int, ...]:
        return tuple(-(-n // c) for n, c in zip(self.shape, self.chunk_shape))

    def _array_of(self, path: str) -> ArrayMap:
        first = self.first
        assert first is not None
        sel = Selection.of_file(open_cached(_local(path), self.strict), series=self.series, key=self.key,
                                ifd=self.ifd)
        if sel.keyframe is first.keyframe:
            return first
        arr = ArrayMap("", sel, "segment", self.fill, 1)
        if arr.shape != first.shape or arr.dtype != first.dtype or arr.chunk_shape != first.chunk_shape:
            raise TiffValueError(f"{path}: image {arr.shape} {arr.dtype} (chunks {arr.chunk_shape}) differs from the "
                                 f"first file's {first.shape} {first.dtype} (chunks {first.chunk_shape})")
        return arr

    def read(self, handle: tuple[str, Any, tuple[int, ...]]) -> numpy.ndarray:
        """The chunk as a C-contiguous little-endian array of the chunk shape."""
        path, arr, inner = handle
        if arr is not None:
            return arr.read(inner)
        try:
            image = self._read_file(path)
        except TiffError as exc:
            raise type(exc)(f"{path}: {exc}") if path not in str(exc) else exc from exc
        if image.shape != self.image_shape or image.dtype != self.native:
            raise TiffValueError(f"{path}: image {image.shape} {image.dtype} differs from the first file's "
                                 f"{self.image_shape} {self.native}")
        return numpy.ascontiguousarray(image, dtype=self.dtype).reshape(self.chunk_shape)

    def _read_file(self, path: str) -> numpy.ndarray:
        if self.imread is not None:
            return numpy.asarray(self.imread(path))
        box = [slice(None)] * len(self.image_shape)
        if "://" in path:
            return self._select(open_cached(path, self.strict)).read(box, fill=self.fill)
        # a whole file per chunk: opened and closed here, not kept in the process's file cache
        with (_tiff_open(path) if self.strict is None else _tiff_open(path, strict=self.strict)) as tif:
            return self._select(tif).read(box, fill=self.fill)

    def _select(self, tif: TiffFile) -> Selection:
        return Selection.of_file(tif, series=self.series, key=self.key, ifd=self.ifd)

    def iter_keys(self, prefix: str) -> Iterator[str]:
        if "zarr.json".startswith(prefix):
            yield "zarr.json"
        if not ("c/".startswith(prefix) or prefix.startswith("c/")):
            return
        for pos, path in self.seq.items():
            if self.first is None:
                key = "c/" + "/".join(map(str, self.tiling.chunk(pos)))
                if key.startswith(prefix):
                    yield key
                continue
            arr = self._array_of(path)
            head = "c/" + "/".join(map(str, pos)) + "/"
            for coords in itertools.product(*(range(n) for n in arr.grid_shape)):
                key = head + "/".join(map(str, coords))
                if key.startswith(prefix) and arr.is_stored(coords):
                    yield key
