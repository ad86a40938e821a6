"""Byte sources: the only package that does I/O (DESIGN.md rule 2: no shared position).

* :mod:`.base`: the ByteSource contract and its counters;
* :mod:`.local`: files (pread), in-memory buffers, file objects;
* :mod:`.remote`: planning, block cache, single-flight and counters over any range fetcher;
* :mod:`.http`: the standard-library HTTP(S) fetcher; :mod:`.stores`: obstore and fsspec adapters.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import TiffTypeError
from .base import ByteSource, require_range
from .local import BytesSource, FileObjectSource, FileSource
from .remote import RangeFetcher, RemoteSource

__all__ = ["ByteSource", "FileSource", "BytesSource", "FileObjectSource", "RangeFetcher", "RemoteSource",
           "open_source", "open_url", "is_url", "require_range"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(source: Any) -> bool:
    """True for a string such as 'https://...' or 's3://bucket/key' (not a local path)."""
    return isinstance(source, str) and bool(_URL.match(source)) and not source.lower().startswith("file://")


def open_url(url: str, *, headers: dict[str, str] | None = None, storage_options: dict[str, Any] | None = None,
             store: Any = None, backend: str | None = None, max_connections: int = 8, **source_options: Any) -> RemoteSource:
    """A :class:`RemoteSource` for ``url``.

    ``http(s)://`` uses the standard-library fetcher (``headers`` sent with every request)
    unless ``backend`` says otherwise; other schemes (``s3://``, ``gs://``, ``az://``, ...)
    use obstore when it is installed (``tiffio[obstore]``), else fsspec (``tiffio[fsspec]``),
    with ``storage_options`` passed to that library (credentials, endpoint, region...).
    ``backend`` forces "http", "obstore" or "fsspec"; ``store`` passes a ready obstore store.
    Other keywords go to :class:`RemoteSource` (``max_gap``, ``cache_blocks``, ...).
    """
    scheme = url.split("://", 1)[0].lower()
    if backend is None:
        if store is not None:
            backend = "obstore"
        elif scheme in ("http", "https") and not storage_options:
            backend = "http"
        else:
            from .stores import have_obstore
            backend = "obstore" if have_obstore() else "fsspec"
    fetcher: Any
    if backend == "http":
        from .http import HTTPFetcher
        fetcher = HTTPFetcher(url, headers=headers, max_connections=max_connections)
    elif backend == "obstore":
        from .stores import ObstoreFetcher
        fetcher = ObstoreFetcher.from_url(url, store=store, storage_options=storage_options)
    elif backend == "fsspec":
        from .stores import FsspecFetcher
        fetcher = FsspecFetcher.from_url(url, storage_options=storage_options)
    else:
        raise TiffTypeError(f"unknown remote backend {backend!r}: use 'http', 'obstore' or 'fsspec'")
    return RemoteSource(fetcher, name=url, max_connections=max_connections, **source_options)


def open_source(source: Any, **remote_options: Any) -> tuple[ByteSource, bool]:
    """Turn what the user passed into a ByteSource. Returns (source, owned).

    Paths, bytes-like objects and binary file objects are local; URL strings and objects
    with ``fetch(spans)`` (a :class:`RangeFetcher`) are remote (``remote_options`` go to
    :func:`open_url` / :class:`RemoteSource`).
    """
    if isinstance(source, ByteSource):
        return source, False
    if is_url(source):
        return open_url(source, **remote_options), True
    if remote_options:
        unused = ", ".join(sorted(remote_options))
        if callable(getattr(source, "fetch", None)) and hasattr(source, "size"):
            return RemoteSource(source, **remote_options), True
        raise TiffTypeError(f"{unused}: options for remote sources (URLs and fetchers), not for {type(source).__name__}")
    if isinstance(source, (str, os.PathLike)):
        return FileSource(source), True
    if isinstance(source, (bytes, bytearray, memoryview)):
        return BytesSource(source), True
    if callable(getattr(source, "fetch", None)) and hasattr(source, "size"):
        return RemoteSource(source), True
    if hasattr(source, "read") and hasattr(source, "seek"):
        return FileObjectSource(source), True
    try:
        return BytesSource(source), True
    except TiffTypeError:
        raise TiffTypeError(
            f"cannot open a TIFF from {type(source).__name__}: pass a path, a URL, a bytes-like object, "
            "a binary file object or a range fetcher (size, fetch(spans))"
        ) from None
