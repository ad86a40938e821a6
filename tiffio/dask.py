"""TIFF files as dask arrays (the edge: needs ``pip install 'tiffio[dask]'``).

``from_tiff(path, level=0, chunks=(4096, 4096))`` builds a dask array directly on
``IFD.read_region`` (no zarr layer): one task per window, windows aligned to the tile grid,
a task graph that pickles to a few hundred bytes per task and whose name depends only on the
arguments and the file's size and mtime (deterministic under ``tokenize.ensure-deterministic``).
Workers (threads or processes of a ``dask.distributed`` cluster) open the file lazily, once
per process. ``imread(files_or_glob, pattern=...)`` does the same for file sequences.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy

from .chunkmap import window_shape
from .errors import TiffTypeError, TiffValueError
from .filecache import open_cached, source_path
from .filesequence import FileSequence
from .reader import IFD
from .reader import open as _tiff_open
from .sources import redact_url

__all__ = ["from_tiff", "imread", "TiffRegionArray", "FileSequenceArray"]


def _dask_array() -> Any:
    try:
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("tiffio.dask needs dask: pip install 'tiffio[dask]'") from exc
    return da


def _axes(ifd: IFD) -> tuple[bool, bool, bool]:
    """(separate planes axis first, Z axis, contiguous samples axis last) of ``ifd.shape``."""
    depth3 = ifd.depth > 1
    has_samples = len(ifd.shape) > 2 + depth3
    return has_samples and ifd.is_separate, depth3, has_samples and not ifd.is_separate


def _read_window(ifd: IFD, key: tuple[slice, ...], fill: Any, workers: int | None) -> numpy.ndarray:
    """``ifd.asarray()[key]`` for a tuple of step-1 slices, reading only the window."""
    separate, depth3, contig = _axes(ifd)
    shape = ifd.shape
    bounds = [s.indices(n) for s, n in zip(key, shape)]
    k = 1 if separate else 0
    z0, z1 = (bounds[k][0], bounds[k][1]) if depth3 else (0, 1)
    k += depth3
    (y0, y1, _), (x0, x1, _) = bounds[k], bounds[k + 1]
    if y1 <= y0 or x1 <= x0 or z1 <= z0:
        return numpy.empty([max(0, b[1] - b[0]) for b in bounds], ifd.dtype)
    arr = ifd.read_region(y0, x0, y1 - y0, x1 - x0, z=z0, depth=z1 - z0, fill=fill, workers=workers)
    rest = []
    if separate:
        rest.append(slice(*bounds[0][:2]))
    rest += [slice(None)] * (depth3 + 2)
    if contig:
        rest.append(slice(*bounds[-1][:2]))
    if any(s != slice(None) for s in rest):
        arr = arr[tuple(rest)]
    return arr


def _normalize_key(key: Any, ndim: int) -> tuple[slice, ...]:
    if not isinstance(key, tuple):
        key = (key,)
    if len(key) < ndim:
        key = key + (slice(None),) * (ndim - len(key))
    if len(key) != ndim or any(not isinstance(k, slice) or k.step not in (None, 1) for k in key):
        raise TiffValueError(f"index with {ndim} step-1 slices, not {key!r}")
    return key


class TiffRegionArray:
    """A lazy, picklable numpy-like view of one level of a TIFF: ``a[y0:y1, x0:x1]`` reads that
    window with ``read_region``. It pickles to its arguments and reopens the file lazily."""

    def __init__(self, source: Any, *, level: int = 0, fill: Any = None, workers: int | None = 1,
                 strict: bool | None = None) -> None:
        self.path = source_path(source)
        self.level = int(level)
        self.fill = fill.item() if isinstance(fill, numpy.generic) else fill
        self.workers = workers
        self.strict = strict
        ifd = self.ifd
        self.shape: tuple[int, ...] = tuple(ifd.shape)
        self.dtype = ifd.dtype
        self.ndim = len(self.shape)

    @property
    def ifd(self) -> IFD:
        levels = open_cached(self.path, self.strict).levels
        if not -len(levels) <= self.level < len(levels):
            raise TiffValueError(f"{redact_url(self.path)}: level {self.level} out of range: the image has {len(levels)} levels")
        return levels[self.level].ifd

    def __getitem__(self, key: Any) -> numpy.ndarray:
        return _read_window(self.ifd, _normalize_key(key, self.ndim), self.fill, self.workers)

    def __reduce__(self) -> Any:
        # shape and dtype travel too: unpickling (on a scheduler, say) does not open the file
        return (_rebuild_region_array, (type(self), self.path, self.level, self.fill, self.workers, self.strict,
                                        self.shape, self.dtype.str))

    def __repr__(self) -> str:
        return f"TiffRegionArray({redact_url(self.path)!r}, level={self.level}, shape={self.shape}, dtype={self.dtype})"


def _rebuild_region_array(cls: Any, path: str, level: int, fill: Any, workers: int | None,
                          strict: bool | None, shape: tuple[int, ...], dtype: str) -> TiffRegionArray:
    obj = cls.__new__(cls)
    obj.path, obj.level, obj.fill, obj.workers, obj.strict = path, level, fill, workers, strict
    obj.shape, obj.dtype, obj.ndim = shape, numpy.dtype(dtype), len(shape)
    return obj


def _chunk_grid(ifd: IFD, chunks: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunk shape for ``ifd.shape``: windows of whole tiles (strips), all samples in a chunk."""
    separate, depth3, contig = _axes(ifd)
    sd, sh, sw = ifd.grid.segment
    if not ifd.grid.tiled:
        sh = min(sh, ifd.length)
    itemsize = ifd.dtype.itemsize * (shape[0] if separate else 1) * (shape[-1] if contig else 1)
    if chunks == "auto":
        import dask
        limit = dask.utils.parse_bytes(dask.config.get("array.chunk-size"))
        tiles = max(1, limit // max(1, sh * sw * sd * itemsize))
        side = max(1, math.isqrt(tiles))
        h, w = side * sh, side * sw
    else:
        h, w = window_shape(chunks, "(height, width) or 'auto'")
    h = min(-(-h // sh) * sh, -(-ifd.length // sh) * sh)
    w = min(-(-w // sw) * sw, -(-ifd.width // sw) * sw)
    out: list[int] = []
    if separate:
        out.append(shape[0])
    if depth3:
        out.append(sd)
    out += [h, w]
    if contig:
        out.append(shape[-1])
    return tuple(out)


def _identity(path: str) -> Any:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def from_tiff(source: Any, *, level: int = 0, chunks: Any = (4096, 4096), fill: Any = None,
              workers: int | None = 1, strict: bool | None = None, name: str | None = None) -> Any:
    """One pyramid level of a TIFF file as a dask array (shape and dtype of ``ifd.asarray()``).

    ``chunks``: ``(height, width)`` rounded up to whole tiles (strips), or ``"auto"`` (whole
    tiles up to dask's ``array.chunk-size``). ``workers`` threads decode the tiles of one chunk
    (default 1: dask already runs chunks in parallel). Sparse tiles read as ``fill`` (default
    GDAL_NODATA, else 0). ``source`` must be a path (or URL) that every worker can open.
    """
    da = _dask_array()
    from dask.base import tokenize
    arr = TiffRegionArray(source, level=level, fill=fill, workers=workers, strict=strict)
    chunk_shape = _chunk_grid(arr.ifd, chunks, arr.shape)
    if name is None:
        name = "from-tiff-" + tokenize(arr.path, _identity(arr.path), arr.level, chunk_shape, arr.fill, strict)
    return da.from_array(arr, chunks=chunk_shape, name=name, asarray=False, fancy=False, lock=False,
                         meta=numpy.empty((0,) * arr.ndim, arr.dtype))


class FileSequenceArray:
    """A lazy, picklable numpy-like array over a :class:`tiffio.FileSequence`: sequence axes
    first, then one file's image axes; missing files read as ``fill``."""

    def __init__(self, sequence: FileSequence, *, ifd: int = 0, fill: Any = None, workers: int | None = 1,
                 strict: bool | None = None) -> None:
        self.sequence = sequence
        self.ifd = int(ifd)
        self.fill = fill.item() if isinstance(fill, numpy.generic) else fill
        self.workers = workers
        self.strict = strict
        first = self._ifd(sequence.files[0])
        self.image_shape: tuple[int, ...] = tuple(first.shape)
        self.dtype = first.dtype
        self.shape = tuple(sequence.shape) + self.image_shape
        self.ndim = len(self.shape)
        nodata = first.nodata
        self.fill_value = self.dtype.type(fill if fill is not None else (nodata if nodata is not None else 0))

    def _ifd(self, path: str) -> IFD:
        return open_cached(os.path.abspath(path) if "://" not in path else path, self.strict).ifds[self.ifd]

    def __getitem__(self, key: Any) -> numpy.ndarray:
        key = _normalize_key(key, self.ndim)
        n = len(self.sequence.shape)
        seq_ranges = [range(*k.indices(s)) for k, s in zip(key[:n], self.sequence.shape)]
        image_key = key[n:]
        image_shape = tuple(len(range(*k.indices(s))) for k, s in zip(image_key, self.image_shape))
        out_shape = tuple(len(r) for r in seq_ranges) + image_shape
        # a chunk of whole images reads each file once: opened and closed here, not kept in the
        # process's file cache (which serves chunks that read a file window by window)
        whole = image_shape == self.image_shape
        if whole and math.prod(out_shape[:n]) == 1:  # one file per chunk (imread's default)
            path = self.sequence.file_at(tuple(r[0] for r in seq_ranges))
            if path is not None and "://" not in path:
                return self._read_file(path, image_key).reshape(out_shape)
        out = numpy.empty(out_shape, self.dtype)
        for pos_out, pos in zip(numpy.ndindex(*out.shape[:n]), _product(seq_ranges)):
            path = self.sequence.file_at(pos)
            if path is None:
                out[pos_out] = self.fill_value
            elif whole and "://" not in path:
                out[pos_out] = self._read_file(path, image_key)
            else:
                out[pos_out] = self._read(path, self._ifd(path), image_key)
        return out

    def _read_file(self, path: str, image_key: tuple[slice, ...]) -> numpy.ndarray:
        """One whole image of a local file, opened and closed here."""
        with (_tiff_open(path) if self.strict is None else _tiff_open(path, strict=self.strict)) as tif:
            return self._read(path, tif.ifds[self.ifd], image_key)

    def _read(self, path: str, ifd: IFD, image_key: tuple[slice, ...]) -> numpy.ndarray:
        if tuple(ifd.shape) != self.image_shape or ifd.dtype != self.dtype:
            raise TiffValueError(f"{path}: image {ifd.shape} {ifd.dtype} differs from the first file's "
                                 f"{self.image_shape} {self.dtype}")
        if all(k.indices(n)[:2] == (0, n) for k, n in zip(image_key, self.image_shape)):
            return ifd.asarray(fill=self.fill, workers=self.workers)
        return _read_window(ifd, image_key, self.fill, self.workers)

    def __repr__(self) -> str:
        return f"FileSequenceArray({len(self.sequence)} files, shape={self.shape}, dtype={self.dtype})"


def _product(ranges: list[range]) -> Any:
    import itertools
    return itertools.product(*ranges)


def imread(files: Any, *, pattern: Any = None, axesorder: Any = None, categories: Any = None, shape: Any = None,
           chunks: Any = "file", ifd: int = 0, fill: Any = None, workers: int | None = 1,
           strict: bool | None = None, name: str | None = None) -> Any:
    """A file sequence (glob, list of paths, or :class:`tiffio.FileSequence`) as one dask array.

    The shape is the sequence shape (axes parsed from the names by ``pattern``, as tifffile's
    ``TiffSequence``) followed by one file's image shape. ``chunks="file"``: one chunk per file;
    ``(height, width)`` or ``"auto"``: tile-aligned windows inside each file. Missing files
    read as ``fill`` (default: the first file's GDAL_NODATA, else 0).
    """
    da = _dask_array()
    from dask.base import tokenize
    if isinstance(files, FileSequence):
        seq = files
    elif isinstance(files, (str, os.PathLike)) or isinstance(files, (list, tuple)):
        seq = FileSequence(files, pattern=pattern, axesorder=axesorder, categories=categories, shape=shape)
    else:
        raise TiffTypeError(f"files must be a glob pattern, a list of paths or a FileSequence, not {type(files).__name__}")
    arr = FileSequenceArray(seq, ifd=ifd, fill=fill, workers=workers, strict=strict)
    n = len(seq.shape)
    if chunks == "file":
        image_chunks = arr.image_shape
    else:
        image_chunks = _chunk_grid(arr._ifd(seq.files[0]), chunks, arr.image_shape)
    chunk_shape = (1,) * n + tuple(image_chunks)
    if name is None:
        ident = [_identity(os.path.abspath(f)) for f in seq.files]
        name = "imread-tiff-" + tokenize([os.path.abspath(f) for f in seq.files], seq.indices, seq.shape, ident,
                                         ifd, chunk_shape, arr.fill, strict)
    return da.from_array(arr, chunks=chunk_shape, name=name, asarray=False, fancy=False, lock=False,
                         meta=numpy.empty((0,) * arr.ndim, arr.dtype))
