"""Object-store fetchers over optional libraries: obstore (``tiffio[obstore]``) and fsspec
(``tiffio[fsspec]``). Imported lazily: the core needs neither.

Both only move the spans tiffio planned (tiffio.sources.remote): obstore's ``get_ranges``
with ``coalesce=0`` (it still joins touching spans, harmless), fsspec's ``cat_ranges``
(never its file objects, whose read-ahead fetches megabytes per read). RemoteSource checks
that every span comes back exactly as long as asked.

Deadlines (:class:`~tiffio.sources.Timeout`): the libraries' calls block where Python's
signals cannot reach (obstore's Rust runtime, fsspec's event loop thread), so they run on
tiffio's daemon I/O threads and the caller waits in slices until ``Timeout.total``
(:func:`.iothreads.run_with_deadline`): Ctrl-C works, and a call past its deadline is a
:class:`~tiffio.SourceTimeoutError` (it ends on its own thread). obstore stores made from a
URL also get the connect and request timeouts as ``client_options``. Names are redacted URLs.
"""

from __future__ import annotations

import errno
import importlib.util
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import SourceError, SourceTimeoutError, UnsupportedFeatureError
from .deadlines import DEFAULT_TIMEOUT, Timeout, as_timeout
from .iothreads import Expired, io_pool, run_with_deadline, wait
from .urls import redact_text, redact_url

__all__ = ["ObstoreFetcher", "FsspecFetcher", "have_obstore", "split_url"]


class _Deadlines:
    """Calls into a backend library bounded by ``Timeout.total`` (see the module docstring)."""

    name: str
    timeout: Timeout

    def _deadline(self) -> float | None:
        total = self.timeout.total
        return None if total is None else time.monotonic() + total

    def _expired(self, what: str) -> SourceTimeoutError:
        return SourceTimeoutError(errno.ETIMEDOUT, f"{self.name}: {what}: no answer within "
                                                   f"{self.timeout.total:g} s (Timeout.total)", self.name)

    def _call(self, what: str, func: Callable[..., Any], *args: Any) -> Any:
        try:
            return run_with_deadline(func, *args, deadline=self._deadline())
        except Expired:
            raise self._expired(what) from None

    def _call_all(self, what: str, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        deadline = self._deadline()
        futures = [io_pool().submit(func, item) for item in items]
        try:
            return [wait(f, deadline) for f in futures]
        except Expired:
            raise self._expired(what) from None


def have_obstore() -> bool:
    return importlib.util.find_spec("obstore") is not None


def split_url(url: str) -> tuple[str, str, str]:
    """'s3://bucket/a/b.tif' -> ('s3', 'bucket', 'a/b.tif')."""
    scheme, rest = url.split("://", 1)
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise SourceError(f"{redact_url(url)}: expected {scheme}://BUCKET/KEY")
    return scheme.lower(), bucket, key


class ObstoreFetcher(_Deadlines):
    """Ranges of one object of an obstore store (S3, GCS, Azure, HTTP...).

    The ETag seen at open is pinned (If-Match on every later request): an object replaced while
    open is a SourceError. obstore retries 429/5xx itself (``retry_config`` in ``storage_options``).
    """

    def __init__(self, store: Any, path: str, name: str | None = None, *,
                 timeout: Timeout | float = DEFAULT_TIMEOUT, url: str | None = None) -> None:
        try:
            import obstore
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise UnsupportedFeatureError("reading object stores through obstore needs `pip install tiffio[obstore]`") from exc
        self._obstore = obstore
        self.store = store
        self.path = path
        self.url = url  # as given (to reopen elsewhere); never shown
        self.name = redact_url(name or path)
        self.timeout = as_timeout(timeout)
        self.size: int | None = None
        self.etag: str | None = None

    def __repr__(self) -> str:
        return f"<ObstoreFetcher {self.name!r}>"

    @classmethod
    def from_url(cls, url: str, *, store: Any = None, storage_options: dict[str, Any] | None = None,
                 timeout: Timeout | float = DEFAULT_TIMEOUT) -> ObstoreFetcher:
        limits = as_timeout(timeout)
        shown = redact_url(url)
        if store is not None:
            path = split_url(url)[2] if "://" in url else url
            return cls(store, path, name=url, timeout=limits, url=url)
        try:
            from obstore.store import from_url
        except ImportError as exc:  # pragma: no cover
            raise UnsupportedFeatureError(f"{shown}: reading object stores needs `pip install tiffio[obstore]` "
                                          "(or tiffio[fsspec])") from exc
        scheme, bucket, key = split_url(url)
        options = dict(storage_options or {})
        # the store's own HTTP client gives up with the request's bounds, so that a request past
        # tiffio's deadline also ends in the background; the caller's client_options win
        client = {"connect_timeout": f"{limits.connect:g}s"}
        if limits.total is not None:
            client["timeout"] = f"{limits.total:g}s"
        options["client_options"] = {**client, **(options.get("client_options") or {})}
        try:
            made = from_url(f"{scheme}://{bucket}", **options)
        except Exception as exc:  # not chained: the library's message may quote credentials
            raise SourceError(f"{shown}: obstore could not make a store: {redact_text(str(exc))}") from None
        return cls(made, key, name=url, timeout=limits, url=url)

    def fetch_open(self, head: int, tail: int) -> tuple[int, bytes, bytes]:
        """Head and suffix, concurrently (one round trip, no HEAD request)."""
        ob = self._obstore

        def get(options: dict[str, Any]) -> tuple[int, str | None, int, bytes]:
            result = ob.get(self.store, self.path, options=options)
            meta = result.meta
            start = result.range[0]
            return int(meta["size"]), meta.get("e_tag"), start, bytes(result.bytes())

        first, last = self._call_all("opening", get, [{"range": (0, head)}, {"range": {"suffix": tail}}])
        size = first[0]
        if last[0] != size or (first[1] and last[1] and first[1] != last[1]):
            raise SourceError(f"{self.name}: the object changed while opening")
        # the answers are the ranges asked for, before a byte is used
        if first[2] != 0 or len(first[3]) != min(head, size) or len(last[3]) != min(tail, size) \
                or last[2] != size - len(last[3]):
            raise SourceError(f"{self.name}: the store answered the first {head} and last {tail} bytes of "
                              f"{size} with {len(first[3])} bytes at {first[2]} and {len(last[3])} at {last[2]}")
        self.size, self.etag = size, first[1]
        head_data = first[3][: min(head, size)]
        tail_data = last[3]
        keep = max(0, size - len(head_data))
        return size, head_data, tail_data[len(tail_data) - keep:] if len(tail_data) > keep else tail_data

    def fetch(self, spans: Sequence[tuple[int, int]]) -> list[Any]:
        what = f"fetching {len(spans)} ranges"
        if not self.etag:
            starts = [o for o, _ in spans]
            lengths = [n for _, n in spans]
            return list(self._call(what, lambda: self._obstore.get_ranges(
                self.store, self.path, starts=starts, lengths=lengths, coalesce=0)))
        # the version seen at open is pinned (If-Match): get_ranges takes no options, so the spans
        # tiffio planned go out as concurrent gets
        return self._call_all(what, self._get_pinned, list(spans))

    def _get_pinned(self, span: tuple[int, int]) -> Any:
        offset, length = span
        try:
            result = self._obstore.get(self.store, self.path,
                                       options={"range": (offset, offset + length), "if_match": self.etag})
        except Exception as exc:
            if type(exc).__name__ in ("PreconditionError", "NotModifiedError"):
                raise SourceError(f"{self.name}: the object changed since it was opened (ETag {self.etag} no "
                                  "longer matches); reopen it to read the new version") from None
            raise
        return result.bytes()


class FsspecFetcher(_Deadlines):
    """Ranges of one file of an fsspec filesystem through ``cat_ranges``.

    fsspec has no suffix read common to its filesystems, so opening costs one ``info``
    request (HEAD on HTTP/S3) before the head and tail are fetched together.
    """

    def __init__(self, fs: Any, path: str, name: str | None = None, *,
                 timeout: Timeout | float = DEFAULT_TIMEOUT, url: str | None = None) -> None:
        self.fs = fs
        self.path = path
        self.url = url  # as given (to reopen elsewhere); never shown
        self.name = redact_url(name or path)
        self.timeout = as_timeout(timeout)
        try:
            self.size: int | None = int(self._call("finding its size", fs.size, path))
        except SourceError:
            raise
        except FileNotFoundError:
            raise SourceError(errno.ENOENT, f"{self.name}: not found", self.name) from None
        except Exception as exc:  # not chained: the library's message may quote credentials
            raise SourceError(f"{self.name}: fsspec could not stat the file: {type(exc).__name__}: "
                              f"{redact_text(str(exc))}") from None

    def __repr__(self) -> str:
        return f"<FsspecFetcher {self.name!r}>"

    @classmethod
    def from_url(cls, url: str, *, storage_options: dict[str, Any] | None = None,
                 timeout: Timeout | float = DEFAULT_TIMEOUT) -> FsspecFetcher:
        try:
            from fsspec.core import url_to_fs
        except ImportError as exc:  # pragma: no cover
            raise UnsupportedFeatureError(f"{redact_url(url)}: reading through fsspec needs "
                                          "`pip install tiffio[fsspec]`") from exc
        try:
            fs, path = url_to_fs(url, **(storage_options or {}))
        except (ImportError, ValueError, TypeError) as exc:  # unknown protocol, bad options
            raise SourceError(f"{redact_url(url)}: fsspec cannot open it: {type(exc).__name__}: "
                              f"{redact_text(str(exc))}") from None
        return cls(fs, path, name=url, timeout=timeout, url=url)

    def fetch(self, spans: Sequence[tuple[int, int]]) -> list[Any]:
        n = len(spans)
        return list(self._call(f"fetching {n} ranges", self.fs.cat_ranges, [self.path] * n,
                               [o for o, _ in spans], [o + k for o, k in spans]))
