"""Byte sources: the only package that does I/O (positional reads, no shared position).

* :mod:`.base`: the ByteSource contract and its counters;
* :mod:`.local`: files (pread), in-memory buffers, file objects;
* :mod:`.remote`: planning, block cache, single-flight and counters over any range fetcher;
* :mod:`.http`: the standard-library HTTP(S) fetcher, on :mod:`.connections` (keep-alive pools per
  host); :mod:`.stores`: obstore and fsspec adapters;
* :mod:`.urls`: what of a URL may be shown (redaction) and where its credentials may go;
  :mod:`.deadlines`: how long a remote request may take (:class:`Timeout`);
  :mod:`.iothreads`: the daemon threads remote reads run on.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import TiffTypeError
from .base import ByteSource, require_range
from .deadlines import DEFAULT_TIMEOUT, Timeout, as_timeout
from .local import BytesSource, FileObjectSource, FileSource
from .remote import SOURCE_OPTIONS, RangeFetcher, RemoteSource
from .urls import is_url, redact_url

__all__ = ["ByteSource", "FileSource", "BytesSource", "FileObjectSource", "RangeFetcher", "RemoteSource",
           "Timeout", "open_source", "open_url", "is_url", "redact_url", "require_range"]


def open_url(url: str, *, headers: dict[str, str] | None = None, storage_options: dict[str, Any] | None = None,
             store: Any = None, backend: str | None = None, max_connections: int = 8,
             timeout: Timeout | float = DEFAULT_TIMEOUT, **source_options: Any) -> RemoteSource:
    """A :class:`RemoteSource` for ``url``.

    ``http(s)://`` uses the standard-library fetcher (``headers`` sent with every request to
    the URL's origin, never across a redirect to another one) unless ``backend`` says
    otherwise; other schemes (``s3://``, ``gs://``, ``az://``, ...) use obstore when it is
    installed (``tiffio[obstore]``), else fsspec (``tiffio[fsspec]``), with ``storage_options``
    passed to that library (credentials, endpoint, region...). ``backend`` forces "http",
    "obstore" or "fsspec"; ``store`` passes a ready obstore store. ``timeout`` bounds every
    request (:class:`Timeout`, or seconds for a whole request; default: connect 10 s, 30 s of
    silence, 120 s in all, at least 1 KiB/s). Other keywords go to :class:`RemoteSource`
    (``max_gap``, ``cache_blocks``, ...).
    """
    unknown = sorted(set(source_options) - SOURCE_OPTIONS)
    if unknown:
        raise TiffTypeError(f"{', '.join(unknown)}: not an option of remote sources; they take headers, "
                            f"storage_options, store, backend, max_connections, timeout, "
                            f"{', '.join(sorted(SOURCE_OPTIONS - {'name'}))}")
    limits = as_timeout(timeout)
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
        fetcher = HTTPFetcher(url, headers=headers, max_connections=max_connections, timeout=limits)
    elif backend == "obstore":
        from .stores import ObstoreFetcher
        fetcher = ObstoreFetcher.from_url(url, store=store, storage_options=storage_options, timeout=limits)
    elif backend == "fsspec":
        from .stores import FsspecFetcher
        fetcher = FsspecFetcher.from_url(url, storage_options=storage_options, timeout=limits)
    else:
        raise TiffTypeError(f"unknown remote backend {backend!r}: use 'http', 'obstore' or 'fsspec'")
    return RemoteSource(fetcher, name=redact_url(url), max_connections=max_connections, **source_options)


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
            unknown = sorted(set(remote_options) - SOURCE_OPTIONS)
            if unknown:  # headers, timeout...: a fetcher you pass brings its own transport
                raise TiffTypeError(f"{', '.join(unknown)}: options for URLs, not for a fetcher "
                                    f"({type(source).__name__}); a fetcher takes {', '.join(sorted(SOURCE_OPTIONS))}")
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
