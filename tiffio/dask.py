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
from ._edge.filecache import open_cached, remote_key, source_path
from ._edge.selection import Selection, key_arg, key_token, page_window_axes
from ._edge.sequencemap import imread_axes
from .errors import TiffTypeError, TiffValueError
from .read.file import IFD, TiffFile
from .read.file import open as _tiff_open
from .read.filesequence import FileSequence, SequenceTiling
from .sources import redact_url

__all__ = ["from_tiff", "imread", "TiffRegionArray", "FileSequenceArray"]


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


# --- writing: to_tiff -------------------------------------------------------------------------

class _BlockTask:
    """One block of a dask array to write: its tile coordinates and the pickled graph that computes
    it (culled to the block), run in a worker by :func:`_compute_block`."""

    __slots__ = ("row", "col", "key", "graph")

    def __init__(self, row: int, col: int, key: Any, graph: bytes) -> None:
        self.row, self.col, self.key, self.graph = row, col, key, graph

    def __getstate__(self) -> tuple[int, int, Any, bytes]:
        return (self.row, self.col, self.key, self.graph)

    def __setstate__(self, state: tuple[int, int, Any, bytes]) -> None:
        self.row, self.col, self.key, self.graph = state

    def __repr__(self) -> str:
        return f"(block at tile row {self.row}, col {self.col})"


def _compute_block(task: _BlockTask) -> numpy.ndarray:
    """The worker's side: compute one block from its own graph, in this thread (dask's synchronous
    scheduler), so that computing and encoding happen in the same task."""
    import pickle

    import dask
    graph = pickle.loads(task.graph)
    return numpy.asarray(dask.get(graph, task.key))


def _encode_blocks(encoder: Any, tasks: list[_BlockTask]) -> Any:
    """The worker's side of one task: compute and encode its blocks one after the other (one block's
    pixels in memory at a time); the encoded tiles travel back packed in one buffer."""
    from .writer.blocks import PackedBlocks
    th, tw = encoder.spec.tile
    return PackedBlocks([encoder.encode_block(_compute_block(task), task.row * th, task.col * tw)
                         for task in tasks])


def _unpack(result: Any) -> Any:
    return result.blocks()


def _direct_fetch(executor: Any) -> Any:
    """For a dask.distributed Client whose workers all listen on this machine's loopback (a
    LocalCluster) and that was not told how to gather: fetch each result from its worker directly.
    Through the scheduler (distributed's default) every encoded byte crosses two more sockets, and
    the scheduler of a LocalCluster runs in this process: ~0.4 s of this process's CPU per 337 MB."""
    if type(executor).__module__.split(".")[0] != "distributed" or not hasattr(executor, "gather") or \
            getattr(executor, "direct_to_workers", True) is not None:
        return None
    try:
        workers = list(executor.scheduler_info()["workers"])
    except Exception:  # pragma: no cover - an unusual client: gather as it is configured
        return None
    if not workers or not all(w.startswith(("tcp://127.", "inproc://", "tls://127.", "ucx://127.")) for w in workers):
        return None

    def fetch(future: Any) -> Any:
        return executor.gather(future, direct=True)
    return fetch


def _group_limit(executor: Any, block_bytes: int, jpeg: bool) -> int:
    """The most blocks one task computes. Each task of a dask.distributed cluster or a process pool
    costs the scheduler and the writing process a few milliseconds whatever its size (~4 ms of the
    writing process's CPU per task on a LocalCluster), so several blocks go in one task, computed
    and encoded one at a time in the worker; the writing process holds up to ``max_pending``
    results, so a task's encoded bytes stay under ~32 MiB (JPEG counted at 1/8 of the pixels).
    Threads take one block per task."""
    if isinstance(executor, _InlineExecutor) or type(executor).__name__ == "ThreadPoolExecutor":
        return 1
    return max(1, (32 << 20) // max(1, block_bytes // 8 if jpeg else block_bytes))


def _groups(tasks: Any, total: int, limit: int, count: int) -> Any:
    """``tasks`` in lists of decreasing size ("guided" scheduling): each a quarter of a worker's
    share of the blocks left, at most ``limit``, so that large tasks cut the per-task cost and the
    last ones, a block each, leave no worker idle long at the end."""
    batch: list[Any] = []
    left = total
    size = max(1, min(limit, -(-left // (4 * count))))
    for task in tasks:
        batch.append(task)
        if len(batch) >= size:
            yield batch
            left -= len(batch)
            batch = []
            size = max(1, min(limit, -(-left // (4 * count))))
    if batch:
        yield batch


class _InlineExecutor:
    """``submit`` runs the function at once (dask's synchronous scheduler as an executor)."""

    def submit(self, fn: Any, *args: Any) -> Any:
        from concurrent.futures import Future
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


def _executor(scheduler: Any, workers: int | None) -> tuple[Any, bool, int]:
    """(executor with submit(), whether to_tiff owns (and shuts down) it, its worker count) for
    ``scheduler``: None (dask's configured scheduler: a distributed Client if one is the default,
    else threads), 'threads', 'processes', 'sync', a Client, or a concurrent.futures executor."""
    import dask
    if scheduler is None:
        scheduler = dask.config.get("scheduler", None)
    if scheduler in (None, "dask.distributed", "distributed"):
        try:
            from distributed import default_client
            client = default_client()
        except (ImportError, ValueError):
            if scheduler is not None:
                raise TiffValueError("scheduler='distributed' but no dask.distributed Client is running") from None
            scheduler = "threads"
        else:
            return client, False, max(1, sum(client.nthreads().values()))
    if hasattr(scheduler, "submit"):
        count = getattr(scheduler, "_max_workers", None)
        if count is None and hasattr(scheduler, "nthreads"):
            count = sum(scheduler.nthreads().values())
        return scheduler, False, max(1, int(count or workers or os.cpu_count() or 1))
    count = int(workers or dask.config.get("num_workers", None) or os.cpu_count() or 1)
    if scheduler in ("threads", "threading"):
        from concurrent.futures import ThreadPoolExecutor
        return ThreadPoolExecutor(count, thread_name_prefix="tiffio-to-tiff"), True, count
    if scheduler in ("processes", "multiprocessing"):
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context
        context = get_context(dask.config.get("multiprocessing.context", "spawn"))
        return ProcessPoolExecutor(count, mp_context=context), True, count
    if scheduler in ("sync", "synchronous", "single-threaded"):
        return _InlineExecutor(), True, 1
    raise TiffValueError(f"unknown scheduler {scheduler!r}: 'threads', 'processes', 'sync', a dask.distributed "
                         "Client or a concurrent.futures executor")


def _block_shape(chunks: tuple[tuple[int, ...], ...], tile: tuple[int, int], shape: tuple[int, ...],
                 block: Any, pyramid: bool) -> tuple[int, int]:
    """Block (height, width): ``block`` or the array's chunks, rounded up to whole tiles; for a
    pyramid to a power of two of tiles, so that every block holds its reduced levels whole."""
    th, tw = tile
    if block is not None:
        bh, bw = window_shape(block, "block (height, width)")
    else:
        bh, bw = max(chunks[0]), max(chunks[1])
    ty, tx = max(1, -(-bh // th)), max(1, -(-bw // tw))
    if pyramid:
        ty, tx = 1 << (ty - 1).bit_length(), 1 << (tx - 1).bit_length()
    ty = min(ty, -(-shape[0] // th))
    tx = min(tx, -(-shape[1] // tw))
    return ty * th, tx * tw


def to_tiff(array: Any, target: Any, *, tile: Any = (256, 256), compression: Any = None, predictor: Any = None,
            pyramid: bool = False, metadata: Any = {}, geotiff: Any = None,  # noqa: B006
            compute: bool = True, resume: bool = False, scheduler: Any = None, workers: int | None = None,
            max_pending: int | None = None, block: Any = None, bigtiff: bool | None = None,
            fsync: bool = True, **options: Any) -> Any:
    """Write a dask array (length, width[, samples]) to a tiled TIFF at ``target`` (a path).

    The array is rechunked to blocks of whole tiles (its chunks rounded up to tile multiples, or
    ``block=(height, width)``; for ``pyramid=True`` a power of two of tiles). Each task computes
    blocks from each block's own graph **and encodes their tiles in the worker** (with the pyramid
    levels a block holds whole), one block at a time: on threads one block per task; on a cluster or
    a process pool several (the first tasks up to ~32 MiB of encoded bytes, the last ones a block
    each), since every task costs the scheduler and this process a few milliseconds. The tiles come
    back packed in one buffer per task; this process writes them as they arrive, with at most
    ``max_pending`` tasks in flight (default: twice the workers), so memory stays bounded. The
    workers of a cluster on this machine (loopback addresses) are gathered from directly unless
    the Client was given ``direct_to_workers``.
    ``scheduler``: None (dask's: the default ``dask.distributed`` Client if there is one, else
    threads), 'threads', 'processes', 'sync', a Client or a ``concurrent.futures`` executor;
    ``workers`` sizes the pools to_tiff makes. With a cluster, ``target`` is written by this
    process only. Graphs whose blocks share intermediate results (``map_overlap`` halos, rechunks
    that merge chunks) compute those once per block that needs them: give chunks that are whole
    tiles to avoid that.

    ``resume=True`` continues a file a killed run left (``TiffWriter(mode='resume')``): only the
    blocks with missing tiles are computed; without a file it starts a new one. ``compute=False``
    returns a ``dask.delayed`` object that does the whole write when computed (by a worker, on a
    cluster: ``target`` must be writable there). ``tile``, ``compression``, ``predictor``,
    ``metadata`` / ``geotiff`` (as :func:`tiffio.imwrite`) and ``options`` are those of
    ``TiffWriter.add_image``. Returns a :class:`tiffio.WriteReport`.
    """
    if not compute:
        import dask
        kwargs = dict(tile=tile, compression=compression, predictor=predictor, pyramid=pyramid, metadata=metadata,
                      geotiff=geotiff, resume=resume, workers=workers, max_pending=max_pending, block=block,
                      bigtiff=bigtiff, fsync=fsync, **options)
        return dask.delayed(_to_tiff_task, pure=False)(_Opaque(array), target, kwargs)
    return _to_tiff(array, target, tile=tile, compression=compression, predictor=predictor, pyramid=pyramid,
                    metadata=metadata, geotiff=geotiff, resume=resume, scheduler=scheduler, workers=workers,
                    max_pending=max_pending, block=block, bigtiff=bigtiff, fsync=fsync, options=options)


class _Opaque:
    """Carries a dask array into a delayed task without dask computing it first."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _to_tiff_task(holder: _Opaque, target: Any, kwargs: dict[str, Any]) -> Any:
    """to_tiff(compute=False)'s task: on a distributed worker, fan in through the cluster (the
    task leaves the worker's thread pool while it waits), else through threads."""
    try:
        from distributed import get_worker, worker_client
        get_worker()
    except (ImportError, ValueError):
        return to_tiff(holder.value, target, scheduler="threads", **kwargs)
    with worker_client() as client:
        return to_tiff(holder.value, target, scheduler=client, **kwargs)


def _to_tiff(array: Any, target: Any, *, tile: Any, compression: Any, predictor: Any, pyramid: bool, metadata: Any,
             geotiff: Any, resume: bool, scheduler: Any, workers: int | None, max_pending: int | None, block: Any,
             bigtiff: bool | None, fsync: bool, options: dict[str, Any]) -> Any:
    import time

    import dask
    from dask.optimization import cull

    from .codecs import compression_name
    from .codecs.encode import parse_compression
    from .metadata.geotiff import GeoTiff
    from .writer.blocks import WriteReport
    from .writer.fanin import FanInReport, run_jobs
    from .writer.imwrite import shaped_description
    from .writer.tiffwriter import TiffWriter

    start = time.perf_counter()
    if not hasattr(array, "__dask_graph__"):
        raise TiffTypeError(f"to_tiff writes a dask array, not {type(array).__name__} (tiffio.imwrite writes others)")
    shape = tuple(int(n) for n in array.shape)
    if len(shape) not in (2, 3) or any(math.isnan(n) for n in array.shape):
        raise TiffValueError(f"to_tiff writes arrays of shape (length, width[, samples]) with known sizes, not {shape}")
    th, tw = window_shape(tile, "tile (length, width)")
    extratags = list(options.pop("extratags", ()))
    if geotiff is not None:
        if not isinstance(geotiff, GeoTiff):
            raise TiffTypeError(f"geotiff must be a tiffio.GeoTiff, not {type(geotiff).__name__}")
        extratags = geotiff.to_tags() + extratags
    description = options.pop("description", None) or shaped_description(shape, metadata)
    path = os.fspath(target)
    resuming = resume and os.path.exists(path) and os.path.getsize(path) > 0
    with TiffWriter(path, mode="resume" if resuming else "w", bigtiff=bigtiff, fsync=fsync) as writer:
        if resuming:
            image = writer.images[0] if writer.images else None
            if image is None or image.shape != shape or image.dtype != array.dtype or image.tile != (th, tw) or \
                    image.compression != parse_compression(compression) or \
                    bool(image.params.get("pyramid")) != bool(pyramid):
                raise TiffValueError(f"{path}: resume=True, but the file holds {image!r}, not a {shape} "
                                     f"{array.dtype} image with {th} x {tw} tiles, compression {compression!r}, "
                                     f"pyramid={pyramid}")
        else:
            image = writer.add_image(shape, array.dtype, tile=(th, tw), compression=compression, predictor=predictor,
                                     pyramid=True if pyramid else None, description=description, extratags=extratags,
                                     **options)
        report = WriteReport(path=path, shape=shape, dtype=numpy.dtype(array.dtype).str,
                             levels=[tuple(level.shape) for level in image.levels], tile=(th, tw),
                             compression=compression_name(image.compression))
        bh, bw = _block_shape(array.chunks, (th, tw), shape, block, bool(pyramid))
        if tuple(array.chunks[0][:-1]) != (bh,) * (len(array.chunks[0]) - 1) or \
                tuple(array.chunks[1][:-1]) != (bw,) * (len(array.chunks[1]) - 1) or \
                (len(shape) == 3 and len(array.chunks[2]) > 1):
            array = array.rechunk((bh, bw) + ((shape[2],) if len(shape) == 3 else ()))
        (optimized,) = dask.optimize(array)
        graph = dict(optimized.__dask_graph__())
        flat = optimized.__dask_keys__()
        keys = [[key[0] if len(shape) == 3 else key for key in row] for row in flat]
        grid = (len(keys), len(keys[0]))
        needed = _blocks_to_write(image, grid, (bh, bw)) if resuming else None

        def tasks() -> Any:
            for i in range(grid[0]):
                for j in range(grid[1]):
                    if needed is not None and (i, j) not in needed:
                        continue
                    key = keys[i][j]
                    culled, _ = cull(graph, [key])
                    yield _BlockTask(i * bh // th, j * bw // tw, key, _pickle_graph(culled))

        executor, owned, count = _executor(scheduler, workers)
        blocks = grid[0] * grid[1] if needed is None else len(needed)
        limit = _group_limit(executor, bh * bw * numpy.dtype(array.dtype).itemsize *
                             (shape[2] if len(shape) == 3 else 1), image.compression == 7)
        encoder = image.block_encoder()

        def jobs() -> Any:
            for batch in _groups(tasks(), blocks, limit, count):
                yield batch[0], (_encode_blocks, encoder, batch)

        fan = FanInReport()
        try:
            run_jobs(image, jobs(), executor, max_pending or 2 * count, fan, _unpack, _direct_fetch(executor))
        finally:
            if owned:
                executor.shutdown(wait=True)
        report.blocks = fan.blocks
        report.skipped = grid[0] * grid[1] - fan.blocks
        report.max_in_flight = fan.max_in_flight
    report.segments = sum(level.tile_count - len(level.missing_tiles()) for level in image.levels)
    report.file_bytes = os.path.getsize(path)
    report.seconds = time.perf_counter() - start
    return report


def _pickle_graph(graph: dict) -> bytes:
    """A block's graph as bytes the worker unpickles: cloudpickle (dask's own dependency), which
    stores functions of ``__main__``, lambdas and local functions by value, as dask does."""
    import cloudpickle  # type: ignore[import-untyped]
    data: bytes = cloudpickle.dumps(graph, protocol=5)
    return data


def _blocks_to_write(image: Any, grid: tuple[int, int], block: tuple[int, int]) -> set[tuple[int, int]]:
    """The blocks (i, j) with a tile missing in a level the block writes (resume)."""
    th, tw = image.tile
    bh, bw = block
    height, width = image.params["height"], image.params["width"]
    encoder = image.block_encoder()
    levels = image.levels
    missing = [{tuple(t[:2]) for t in im.missing_tiles()} for im in levels]
    needed: set[tuple[int, int]] = set()
    for i in range(grid[0]):
        for j in range(grid[1]):
            y, x = i * bh, j * bw
            h, w = min(bh, height - y), min(bw, width - x)
            for level in range(encoder.local_levels(y, x, h, w) + 1):
                step = 2 ** level
                rows = range(y // th // step, -(-(y + h) // (th * step)))
                cols = range(x // tw // step, -(-(x + w) // (tw * step)))
                if any((r, c) in missing[level] for r in rows for c in cols):
                    needed.add((i, j))
                    break
    return needed
