"""Open files shared by the edge's lazy objects (zarr stores, dask arrays) within one process.

A store or dask array pickles to a path; each process that unpickles it calls
:func:`open_cached`, which returns one open :class:`TiffFile` per (path, size, mtime, inode)
so that thousands of unpickled tasks do not reopen and reparse the file. Reads are positional,
so the shared TiffFile serves every thread. At most ``_CACHE_SIZE`` files stay in the cache;
an evicted file closes when the last object using it is collected.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

from ..errors import TiffTypeError
from ..read.file import TiffFile

__all__ = ["open_cached", "clear_cache", "source_path", "remote_key"]

_CACHE_SIZE = 32
_cache: OrderedDict[tuple, TiffFile] = OrderedDict()
_cache_lock = threading.Lock()


class _SharedTiffFile(TiffFile):
    """A TiffFile of the cache: closed when collected, which is how the cache lets go of it."""

    _warn_unclosed = False


def _file_identity(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # not a local file (a URL): the path alone identifies it
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def remote_key(remote: dict[str, Any] | None) -> Any:
    """A hashable, comparable stand-in for remote options (headers, timeout, storage_options...):
    equal options give equal keys; an unhashable object (a ready store) counts by identity."""
    def freeze(value: Any) -> Any:
        if isinstance(value, dict):
            return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
        if isinstance(value, (list, tuple)):
            return tuple(freeze(v) for v in value)
        try:
            hash(value)
        except TypeError:
            return ("id", id(value))
        return value
    return freeze(remote or {})


def open_cached(path: str, strict: bool | None = None, remote: dict[str, Any] | None = None) -> TiffFile:
    """A TiffFile for ``path`` shared within this process (reopened if the file changed);
    ``remote``: the keywords of :func:`tiffio.open` for URLs (``timeout``, ``headers``,
    ``storage_options``...), part of the cache key, so two sets of credentials never share a file."""
    key = (path, _file_identity(path), strict, remote_key(remote))
    with _cache_lock:
        tif = _cache.get(key)
        if tif is not None and not tif.closed:
            _cache.move_to_end(key)
            return tif
    # an evicted file closes when its last user lets go of it (collected, without a ResourceWarning)
    options: dict[str, Any] = dict(remote or {})
    if strict is not None:
        options["strict"] = strict
    tif = _SharedTiffFile(path, **options)
    with _cache_lock:
        other = _cache.get(key)
        if other is not None and not other.closed:
            tif.close()
            return other
        _cache[key] = tif
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)  # not closed here: a store may still be reading it
    return tif


def clear_cache() -> None:
    """Forget this process's cached open files (each closes when nothing uses it any more)."""
    with _cache_lock:
        _cache.clear()


def source_path(source: Any) -> str:
    """The path (or URL) to pickle for ``source``; TiffTypeError for sources other processes cannot reopen."""
    if isinstance(source, TiffFile):
        # a local file tiffio opened by path, or a remote source (its URL as given: the name is
        # redacted); not bytes or a file object
        url = getattr(source.source, "url", None)
        if isinstance(url, str) and "://" in url:
            return url
        if type(source.source).__name__ != "FileSource":
            raise TiffTypeError(f"{source.name}: a zarr store or dask array needs a file path or URL it can reopen in "
                                "other processes; this TiffFile was opened from bytes or a file object")
        return os.path.abspath(source.name)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not isinstance(path, str):
            raise TiffTypeError(f"the path {path!r} must be text, not bytes")
        return path if "://" in path else os.path.abspath(path)
    raise TiffTypeError(f"a zarr store or dask array needs a file path or URL (it is pickled and reopened in other "
                        f"processes), not a {type(source).__name__}; write the data to a file and pass its path")
