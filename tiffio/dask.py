"""TIFF files as dask arrays (the edge: needs ``pip install 'tiffio[dask]'``).

``from_tiff(path, series=0, level=0, key=None, chunks=(2048, 2048))`` builds a dask array of
a series (pages as leading axes, chunked by 1; the shape of ``tiffio.imread``) directly on
``IFD.read_region`` (no zarr layer): one task per window of one page, windows aligned to the
tile grid, a task graph that pickles to a few hundred bytes per task and whose name depends
only on the arguments and the file's size and mtime (deterministic under
``tokenize.ensure-deterministic``). Workers (threads or processes of a ``dask.distributed``
cluster) open the file lazily, once per process. ``imread(path)`` is the same array as
``tiffio.imread(path)``; ``imread(files_or_glob, pattern=...)`` does the same for file
sequences.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy

from ._edge.chunkmap import window_shape
from ._edge.daskwrite import to_tiff
from ._edge.filecache import open_cached, remote_key, source_path
from ._edge.selection import Selection, key_arg, key_token, page_window_axes
from ._edge.sequencemap import imread_axes
from .errors import TiffTypeError, TiffValueError
from .read.file import IFD, TiffFile
from .read.file import open as _tiff_open
from .read.filesequence import FileSequence, SequenceTiling
from .sources import redact_url

__all__ = ["from_tiff", "imread", "to_tiff", "TiffRegionArray", "FileSequenceArray"]


def _dask_array() -> Any:
    try:
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("tiffio.dask needs dask: pip install 'tiffio[dask]'") from exc
    return da


def _normalize_key(key: Any, ndim: int) -> tuple[slice, ...]:
    if not isinstance(key, tuple):
        key = (key,)
    if len(key) < ndim:
        key = key + (slice(None),) * (ndim - len(key))
    if len(key) != ndim or any(not isinstance(k, slice) or k.step not in (None, 1) for k in key):
        raise TiffValueError(f"index with {ndim} step-1 slices, not {key!r}")
    return key


class TiffRegionArray:
    """A lazy, picklable numpy-like view of a series of a TIFF (one pyramid level, or the pages
    ``key`` selects): ``a[t0:t1, y0:y1, x0:x1]`` reads those pages' windows with
    ``read_region``. It pickles to its arguments and reopens the file lazily."""

    def __init__(self, source: Any, *, series: int = 0, level: int = 0, key: Any = None,
                 squeeze: bool | None = None, fill: Any = None, workers: int | None = 1,
                 strict: bool | None = None, **remote: Any) -> None:
        self.path = source_path(source)
        self.series = int(series)
        self.level = int(level)
        self.key = key_arg(key)
        self.squeeze = None if squeeze is None else bool(squeeze)
        self.fill = fill.item() if isinstance(fill, numpy.generic) else fill
        self.workers = workers
        self.strict = strict
        self.remote = remote
        self._cached: tuple[TiffFile, Selection] | None = None
        sel = self.selection
        self.shape: tuple[int, ...] = sel.shape
        self.dtype = sel.dtype
        self.ndim = len(self.shape)
        self.axes = sel.axes

    @property
    def selection(self) -> Selection:
        """The series (or pages) this array reads, in this process's open file."""
        tif = open_cached(self.path, self.strict, self.remote)
        cached = self._cached
        if cached is not None and cached[0] is tif:
            return cached[1]
        sel = Selection.of_file(tif, series=self.series, level=self.level, key=self.key, squeeze=self.squeeze)
        self._cached = (tif, sel)
        return sel

    @property
    def ifd(self) -> IFD:
        """The first page's IFD (the series' keyframe)."""
        return self.selection.keyframe

    def __getitem__(self, key: Any) -> numpy.ndarray:
        return self.selection.read(_normalize_key(key, self.ndim), fill=self.fill, workers=self.workers)

    def __reduce__(self) -> Any:
        # shape, dtype and axes travel too: unpickling (on a scheduler, say) does not open the file
        return (_rebuild_region_array, (type(self), self.path, self.series, self.level, self.key, self.squeeze,
                                        self.fill, self.workers, self.strict, self.shape, self.dtype.str, self.axes,
                                        self.remote))

    def _restore(self, path: str, series: int, level: int, key: Any, squeeze: bool | None, fill: Any,
                 workers: int | None, strict: bool | None, shape: tuple[int, ...], dtype: str, axes: str,
                 remote: dict[str, Any]) -> None:
        """The state of an unpickled array, without opening the file."""
        self.path, self.series, self.level, self.key, self.squeeze = path, series, level, key, squeeze
        self.fill, self.workers, self.strict, self.remote = fill, workers, strict, remote
        self.shape, self.dtype, self.ndim, self.axes = shape, numpy.dtype(dtype), len(shape), axes
        self._cached = None

    def __repr__(self) -> str:
        return (f"TiffRegionArray({redact_url(self.path)!r}, series={self.series}, level={self.level}, "
                f"shape={self.shape}, dtype={self.dtype})")


def _rebuild_region_array(cls: Any, path: str, series: int, level: int, key: Any, squeeze: bool | None, fill: Any,
                          workers: int | None, strict: bool | None, shape: tuple[int, ...], dtype: str,
                          axes: str, remote: dict[str, Any]) -> TiffRegionArray:
    obj = cls.__new__(cls)
    cls._restore(obj, path, series, level, key, squeeze, fill, workers, strict, shape, dtype, axes, remote)
    return obj


def _chunk_grid(sel: Selection, chunks: Any) -> tuple[int, ...]:
    """Chunk shape of a selection for ``chunks``: ``(height, width)`` windows rounded up to
    whole tiles (strips), ``"page"``, or ``"auto"`` (whole tiles up to dask's
    ``array.chunk-size``); page axes by 1."""
    if chunks in ("page", "auto") or sel.split is None:
        if chunks != "auto" or sel.split is None:
            return sel.chunk_shape("page")
        import dask
        kf = sel.keyframe
        sd, sh, sw = kf.grid.segment
        if not kf.grid.tiled:
            sh = min(sh, kf.length)
        separate, _depth3, contig = page_window_axes(kf)
        shape = kf.shape
        itemsize = kf.dtype.itemsize * (shape[0] if separate else 1) * (shape[-1] if contig else 1)
        limit = dask.utils.parse_bytes(dask.config.get("array.chunk-size"))
        tiles = max(1, limit // max(1, max(sh, 1) * max(sw, 1) * max(sd, 1) * itemsize))
        side = max(1, math.isqrt(tiles))
        return sel.chunk_shape((side * max(sh, 1), side * max(sw, 1)))
    return sel.chunk_shape(window_shape(chunks, "(height, width), 'auto' or 'page'"))


def _identity(path: str) -> Any:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def from_tiff(source: Any, *, series: int = 0, level: int = 0, key: Any = None, squeeze: bool | None = None,
              chunks: Any = (2048, 2048), fill: Any = None, workers: int | None = 1, strict: bool | None = None,
              name: str | None = None, **remote: Any) -> Any:
    """A series of a TIFF file as a dask array: pyramid level ``level`` of series ``series``,
    with the series' shape and axes (pages as leading axes: ``tiffio.imread``'s array), or the
    pages ``key`` selects (an int, a slice or a list, as :meth:`tiffio.Series.asarray`).
    ``squeeze`` as :meth:`tiffio.Series.shape_axes`.

    ``chunks``: ``(height, width)`` rounded up to whole tiles (strips), ``"auto"`` (whole
    tiles up to dask's ``array.chunk-size``) or ``"page"`` (one chunk per page); page axes
    are chunked by 1. The default, 2048 x 2048 windows, keeps a chunk small enough to be in
    the CPU cache when the next step of its task (a reduction, say) reads it, and gives
    many-core machines enough tasks: ``from_tiff(slide, level=1).sum()`` of a 20480² JPEG
    level ran 1.32 x a bare threaded pread + decode + sum of its tiles with 4096² windows,
    1.13 x with 2048² (benchmarks/bench_zarr.py M9). ``workers`` threads decode the tiles of one chunk (default 1: dask
    already runs chunks in parallel). Sparse tiles and missing pages read as ``fill``
    (default GDAL_NODATA, else 0). ``source`` must be a path (or URL) that every worker can
    open. The array's ``axes`` letters are in ``TiffRegionArray(...).axes``. ``remote``
    keywords are :func:`tiffio.open`'s for URLs (``timeout=``, ``headers=``,
    ``storage_options=``...): every process that reads a chunk opens the URL with them, so a
    stalled server raises :class:`~tiffio.SourceTimeoutError` in the task instead of hanging it.
    """
    da = _dask_array()
    from dask.base import tokenize
    arr = TiffRegionArray(source, series=series, level=level, key=key, squeeze=squeeze, fill=fill, workers=workers,
                          strict=strict, **remote)
    chunk_shape = _chunk_grid(arr.selection, chunks)
    if name is None:
        name = "from-tiff-" + tokenize(arr.path, _identity(arr.path), arr.series, arr.level, key_token(arr.key),
                                       arr.squeeze, chunk_shape, arr.fill, strict, remote_key(remote))
    return da.from_array(arr, chunks=chunk_shape, name=name, asarray=False, fancy=False, lock=False,
                         meta=numpy.empty((0,) * arr.ndim, arr.dtype))


class FileSequenceArray:
    """A lazy, picklable numpy-like array over a :class:`tiffio.FileSequence`: sequence axes
    first, then the axes of each file's series ``series`` (or its pages ``key`` selects; or,
    with ``ifd=``, of that IFD's image); missing files read as ``fill``."""

    def __init__(self, sequence: FileSequence, *, series: int = 0, key: Any = None, ifd: int | None = None,
                 fill: Any = None, workers: int | None = 1, strict: bool | None = None,
                 imread: Any = None) -> None:
        self.sequence = sequence
        self.series = int(series)
        self.key = key_arg(key)
        self.ifd = None if ifd is None else int(ifd)
        self.fill = fill.item() if isinstance(fill, numpy.generic) else fill
        self.workers = workers
        self.strict = strict
        self.imread = imread
        if imread is not None:
            sample = numpy.asarray(imread(sequence.files[0]))
            self.image_shape: tuple[int, ...] = sample.shape
            self.image_axes = imread_axes(sample.shape)
            self.dtype = sample.dtype
            self.fill_value = self.dtype.type(0 if fill is None else fill)
        else:
            first = self._select(open_cached(_local(sequence.files[0]), strict))
            self.image_shape = first.shape
            self.image_axes = first.axes
            self.dtype = first.dtype
            self.fill_value = self.dtype.type(first.missing_fill(fill))
        self.shape = tuple(sequence.shape) + self.image_shape
        self.ndim = len(self.shape)

    def _select(self, tif: TiffFile) -> Selection:
        return Selection.of_file(tif, series=self.series, key=self.key, ifd=self.ifd)

    def first_selection(self) -> Selection:
        """The first file's array (its keyframe decides window chunks)."""
        return self._select(open_cached(_local(self.sequence.files[0]), self.strict))

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
            if path is not None and ("://" not in path or self.imread is not None):
                return self._read_file(path, image_key).reshape(out_shape)
        out = numpy.empty(out_shape, self.dtype)
        for pos_out, pos in zip(numpy.ndindex(*out.shape[:n]), _product(seq_ranges)):
            path = self.sequence.file_at(pos)
            if path is None:
                out[pos_out] = self.fill_value
            elif (whole and "://" not in path) or self.imread is not None:
                out[pos_out] = self._read_file(path, image_key)
            else:
                out[pos_out] = self._read(path, open_cached(_local(path), self.strict), image_key)
        return out

    def _read_file(self, path: str, image_key: tuple[slice, ...]) -> numpy.ndarray:
        """One whole image of a local file, opened and closed here."""
        if self.imread is not None:
            image = numpy.asarray(self.imread(path))
            if image.shape != self.image_shape or image.dtype != self.dtype:
                raise TiffValueError(f"{path}: image {image.shape} {image.dtype} differs from the first file's "
                                     f"{self.image_shape} {self.dtype}")
            return image[image_key]
        with (_tiff_open(path) if self.strict is None else _tiff_open(path, strict=self.strict)) as tif:
            return self._read(path, tif, image_key)

    def _read(self, path: str, tif: TiffFile, image_key: tuple[slice, ...]) -> numpy.ndarray:
        sel = self._select(tif)
        if sel.shape != self.image_shape or sel.dtype != self.dtype:
            raise TiffValueError(f"{path}: image {sel.shape} {sel.dtype} differs from the first file's "
                                 f"{self.image_shape} {self.dtype}")
        return sel.read(image_key, fill=self.fill, workers=self.workers)

    def __repr__(self) -> str:
        return f"FileSequenceArray({len(self.sequence)} files, shape={self.shape}, dtype={self.dtype})"


def _local(path: str) -> str:
    return os.path.abspath(path) if "://" not in path else path


def _product(ranges: list[range]) -> Any:
    import itertools
    return itertools.product(*ranges)


def _tiled(stack: Any, seq: FileSequence, arr: FileSequenceArray, axestiled: Any) -> Any:
    """The sequence array ``stack`` (sequence axes, then image axes) with the sequence axes of
    ``axestiled`` laid side by side along their image axes (:class:`SequenceTiling`)."""
    tiling = SequenceTiling(seq.shape, arr.image_shape, axestiled)
    n = len(seq.shape)
    order = list(tiling.kept)
    for j in range(len(arr.image_shape)):
        if j in tiling.tiled_by:
            order.append(tiling.tiled_by[j])
        order.append(n + j)
    return stack.transpose(order).reshape(tiling.shape)


def imread(files: Any, *, pattern: Any = None, axesorder: Any = None, categories: Any = None, shape: Any = None,
           chunks: Any = "file", series: int = 0, key: Any = None, ifd: int | None = None, fill: Any = None,
           axestiled: Any = None, imread: Any = None, workers: int | None = 1, strict: bool | None = None,
           name: str | None = None) -> Any:
    """A TIFF file, or a file sequence (glob, list of paths, or :class:`tiffio.FileSequence`),
    as one dask array: the array ``tiffio.imread`` returns for the same arguments.

    One path (no glob characters): series ``series`` of the file (its pages ``key`` selects),
    as :func:`from_tiff`; ``chunks="file"`` is one chunk per page. A sequence: the sequence
    shape (axes parsed from the names by ``pattern``, as tifffile's ``TiffSequence``)
    followed by the shape of each file's series ``series`` (or, with ``ifd=``, of that IFD's
    image). ``chunks="file"``: one chunk per file; ``(height, width)`` or ``"auto"``:
    tile-aligned windows inside each page. Missing files read as ``fill`` (default: the first
    file's GDAL_NODATA, else 0).
    """
    da = _dask_array()
    from dask.base import tokenize
    if isinstance(files, (str, os.PathLike)) and not any(c in os.fspath(files) for c in "*?["):
        return from_tiff(os.fspath(files), series=series, key=key, chunks="page" if chunks == "file" else chunks,
                         fill=fill, workers=workers, strict=strict, name=name)
    if isinstance(files, FileSequence):
        seq = files
    elif isinstance(files, (str, os.PathLike)) or isinstance(files, (list, tuple)):
        seq = FileSequence(files, pattern=pattern, axesorder=axesorder, categories=categories, shape=shape)
    else:
        raise TiffTypeError(f"files must be a glob pattern, a list of paths or a FileSequence, not {type(files).__name__}")
    arr = FileSequenceArray(seq, series=series, key=key, ifd=ifd, fill=fill, workers=workers, strict=strict,
                            imread=imread)
    n = len(seq.shape)
    if (axestiled or imread is not None) and chunks != "file":
        raise TiffValueError("axestiled= and imread= read whole files: chunks must be 'file'")
    if chunks == "file":
        image_chunks: tuple[int, ...] = tuple(max(1, n) for n in arr.image_shape)
    else:
        image_chunks = _chunk_grid(arr.first_selection(), chunks)
    chunk_shape = (1,) * n + tuple(image_chunks)
    if name is None:
        ident = [_identity(os.path.abspath(f)) for f in seq.files]
        name = "imread-tiff-" + tokenize([os.path.abspath(f) for f in seq.files], seq.indices, seq.shape, ident,
                                         series, key_token(arr.key), ifd, chunk_shape, arr.fill, strict, imread)
    stack = da.from_array(arr, chunks=chunk_shape, name=name, asarray=False, fancy=False, lock=False,
                          meta=numpy.empty((0,) * arr.ndim, arr.dtype))
    return _tiled(stack, seq, arr, axestiled) if axestiled else stack
