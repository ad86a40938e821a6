"""tiffio.imread: one file's series, or a sequence of files stacked into one array.

Files are opened and decoded in a thread pool (imagecodecs releases the GIL while
decoding), each straight into its slot of the result. The sequence's grid comes from
:class:`tiffio.FileSequence` (names + pattern -> axis indices). A file that is
missing, unreadable, or whose image differs in shape or dtype from the first raises
one :class:`TiffError` naming that file; the array is never returned partially filled.
Grid positions without a file (a gap in the numbering) are ``fill``.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import as_completed
from typing import Any, NoReturn

import numpy

from ..alloc import allocate, require_fill
from ..errors import LimitExceededError, TiffError, TiffFormatError, TiffTypeError, TiffValueError
from ..limits import DEFAULT_LIMITS
from .file import TiffFile
from .filesequence import FileSequence
from .pool import PAGE_POOL, parallel_map
from .series.detect import find_series
from .series.pages import page_key
from .series.series import Series

__all__ = ["imread"]


def _with_file(exc: TiffError, path: str) -> TiffError:
    """The same error class with the file named first (once); an OSError keeps its errno and
    filename (``except FileNotFoundError`` still works)."""
    message = str(exc)
    if path in message:
        return exc
    new: TiffError
    try:
        if isinstance(exc, OSError) and exc.errno is not None:
            new = type(exc)(exc.errno, f"{path}: {message}", exc.filename or path)
        else:
            new = type(exc)(f"{path}: {message}")
    except TypeError:
        new = TiffFormatError(f"{path}: {message}")
    return new


def _raise_naming(exc: TiffError, path: str) -> NoReturn:
    """Raise ``exc`` naming ``path``: itself when it already does (``raise new from exc`` with the
    same object would make it its own cause, a cycle that pickling, e.g. tblib's in
    dask.distributed, follows for ever), else a copy chained to it."""
    new = _with_file(exc, path)
    if new is exc:
        raise exc
    raise new from exc


def _open(path: str, strict: bool) -> TiffFile:
    try:
        return TiffFile(path, strict=strict)
    except TiffError as exc:
        _raise_naming(exc, path)


def _series(tif: TiffFile, index: int) -> Series:
    if not isinstance(index, (int, numpy.integer)) or isinstance(index, bool):
        raise TiffTypeError(f"series must be an int, not {index!r}")
    series = find_series(tif)
    if not -len(series) <= index < len(series):
        raise TiffValueError(f"{tif.name}: series {index} out of range ({len(series)} series)")
    return series[index]


def imread(files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | FileSequence, *,
           pattern: Any = None, axes: str | None = None, series: int = 0, key: Any = None,
           workers: int | None = None, out: numpy.ndarray | None = None,
           progress: Callable[[int, int], None] | None = None, fill: Any = 0, strict: bool = False,
           sort: bool | None = None, processes: int | None = None) -> numpy.ndarray:
    """Read a TIFF file, or a sequence of TIFF files stacked into one array.

    ``files``: a path (its series ``series`` is read, pages ``key`` as in
    :meth:`Series.asarray`), a glob pattern, a list of paths, or a :class:`FileSequence`.
    ``pattern``: regular expression mapping file names to axis indices (see
    :class:`FileSequence`; default: one axis in file order). The result has the
    sequence's shape followed by the first file's series shape. ``axes``: reorder the
    result, a permutation of the sequence axes letters followed by the series axes
    (e.g. ``'CTYX'`` for a sequence 'TC' of 'YX' images). ``workers``: threads.
    ``processes``: decode in that many worker processes instead (for codecs that hold
    the GIL; each file's array is pickled back and copied into place).
    ``out``: a C-contiguous array of the result's shape and dtype to fill.
    ``progress(done, total)`` is called after each file. ``strict``: as :func:`tiffio.open`
    (default False: what libtiff reads is read, each recovered violation a
    :class:`~tiffio.TiffFormatWarning` naming its file; True raises instead).
    """
    single = isinstance(files, (str, os.PathLike)) and not isinstance(files, FileSequence) \
        and not any(c in os.fspath(files) for c in "*?[")
    if single:
        path = os.fspath(files)  # type: ignore[arg-type]
        with _open(path, strict) as tif:
            try:
                s = _series(tif, series)
                result = s.asarray(key=key, out=out, workers=workers)
            except TiffError as exc:
                _raise_naming(exc, path)
        if progress is not None:
            progress(1, 1)
        return _transpose(result, axes, s.axes if key is None else None)
    seq = files if isinstance(files, FileSequence) else FileSequence(files, pattern=pattern, sort=sort)
    first_path = seq.files[0]
    with _open(first_path, strict) as tif:
        try:
            first = _series(tif, series)
            page_shape, dtype, page_axes_ = first.shape, first.dtype, first.axes
            first_key = page_key(first.keyframe)
        except TiffError as exc:
            _raise_naming(exc, first_path)
    shape = (*seq.shape, *page_shape)
    if math.prod(shape) * dtype.itemsize > (limit := DEFAULT_LIMITS.max_output_bytes):
        raise LimitExceededError(f"imread: {len(seq.files)} files of {page_shape} {dtype} need "
                                 f"{math.prod(shape) * dtype.itemsize} bytes, more than max_output_bytes={limit}")
    if seq.size != len(seq.files):
        fill = require_fill(fill, dtype, "imread")
    if out is None:
        result = allocate(shape, dtype, f"imread: {len(seq.files)} files of {page_shape} {dtype}")
    else:
        if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
            raise TiffValueError(f"out must be a C-contiguous array of shape {shape} and dtype {dtype}, "
                                 f"not {out.shape} {out.dtype}")
        result = out
    if seq.size != len(seq.files):
        for position in seq.missing():
            result[position] = fill
    total = len(seq.files)
    done = [0]
    lock = threading.Lock()

    info = (series, strict, page_shape, dtype.str, first_key, first.npages, first.kind, first_path)

    def report() -> None:
        if progress is not None:
            with lock:
                done[0] += 1
                count = done[0]
            progress(count, total)

    def work(item: tuple[tuple[int, ...], str]) -> None:
        position, path = item
        _read_into(path, result[position], info)
        report()

    if processes:
        _read_in_processes(seq, result, info, int(processes), report)
        return _transpose(result, axes, seq.axes + page_axes_)
    parallel_map(work, list(seq.items()), workers, PAGE_POOL)
    return _transpose(result, axes, seq.axes + page_axes_)


def _read_into(path: str, target: numpy.ndarray, info: tuple) -> None:
    """Read one file's series into ``target``; errors name the file."""
    series, strict, page_shape, dtype_str, first_key, first_npages, first_kind, first_path = info
    try:
        with TiffFile(path, strict=strict) as tif:
            ifd0 = tif.ifds[0]
            # a single-page file like the first reads from its IFD without series detection
            plain = (ifd0.entries.next_offset == 0 and ifd0.get(330) is None and first_npages == 1
                     and first_kind in ("uniform", "generic", "imagej") and tuple(ifd0.shape) == page_shape
                     and page_key(ifd0) == first_key)
            if plain:
                ifd0.asarray(out=target, workers=1)
            else:
                s = _series(tif, series)
                if s.shape != page_shape or s.dtype != numpy.dtype(dtype_str):
                    raise TiffValueError(f"series {series} has shape {s.shape} and dtype {s.dtype}, but the "
                                         f"first file {first_path!r} has {page_shape} {numpy.dtype(dtype_str)}")
                s.asarray(out=target, workers=1)
    except TiffError as exc:
        _raise_naming(exc, path)


def _read_file(path: str, info: tuple) -> numpy.ndarray:
    """A worker process's task: the file's series as a new array (pickled back)."""
    target = allocate(info[2], numpy.dtype(info[3]), f"{path}: series {info[0]}")
    _read_into(path, target, info)
    return target


def _read_in_processes(seq: FileSequence, result: numpy.ndarray, info: tuple, processes: int,
                       report: Callable[[], None]) -> None:
    """Decode in worker processes (for codecs that hold the GIL); each array is copied into
    its slot as it arrives. The first error cancels the files not started and is raised."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_read_file, path, info): position for position, path in seq.items()}
        try:
            for future in as_completed(futures):
                result[futures[future]] = future.result()
                report()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _transpose(array: numpy.ndarray, axes: str | None, have: str | None) -> numpy.ndarray:
    if axes is None:
        return array
    if have is None or sorted(axes) != sorted(have) or len(set(have)) != len(have):
        raise TiffValueError(f"axes {axes!r} must be a permutation of the result's axes {have!r}")
    return array.transpose([have.index(ax) for ax in axes])
