"""Object-store fetchers over optional libraries: obstore (``tiffio[obstore]``) and fsspec
(``tiffio[fsspec]``). Imported lazily: the core needs neither.

Both only move the spans tiffio planned (tiffio.sources.remote): obstore's ``get_ranges``
with ``coalesce=0`` (it still joins touching spans, harmless), fsspec's ``cat_ranges``
(never its file objects, whose read-ahead fetches megabytes per read).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from ..errors import SourceError, UnsupportedFeatureError

__all__ = ["ObstoreFetcher", "FsspecFetcher", "have_obstore", "split_url"]


def have_obstore() -> bool:
    return importlib.util.find_spec("obstore") is not None


def split_url(url: str) -> tuple[str, str, str]:
    """'s3://bucket/a/b.tif' -> ('s3', 'bucket', 'a/b.tif')."""
    scheme, rest = url.split("://", 1)
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise SourceError(f"{url}: expected {scheme}://BUCKET/KEY")
    return scheme.lower(), bucket, key


class ObstoreFetcher:
    """Ranges of one object of an obstore store (S3, GCS, Azure, HTTP...).

    The ETag seen at open is pinned (If-Match on every later request): an object replaced while
    open is a SourceError. obstore retries 429/5xx itself (``retry_config`` in ``storage_options``).
    """

    def __init__(self, store: Any, path: str, name: str | None = None) -> None:
        try:
            import obstore
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise UnsupportedFeatureError("reading object stores through obstore needs `pip install tiffio[obstore]`") from exc
        self._obstore = obstore
        self.store = store
        self.path = path
        self.name = name or path
        self.size: int | None = None
        self.etag: str | None = None

    @classmethod
    def from_url(cls, url: str, *, store: Any = None, storage_options: dict[str, Any] | None = None) -> ObstoreFetcher:
        if store is not None:
            path = split_url(url)[2] if "://" in url else url
            return cls(store, path, name=url)
        try:
            from obstore.store import from_url
        except ImportError as exc:  # pragma: no cover
            raise UnsupportedFeatureError(f"{url}: reading object stores needs `pip install tiffio[obstore]` "
                                          "(or tiffio[fsspec])") from exc
        scheme, bucket, key = split_url(url)
        try:
            made = from_url(f"{scheme}://{bucket}", **(storage_options or {}))
        except Exception as exc:
            raise SourceError(f"{url}: obstore could not make a store: {exc}") from exc
        return cls(made, key, name=url)

    def fetch_open(self, head: int, tail: int) -> tuple[int, bytes, bytes]:
        """Head and suffix, concurrently (one round trip, no HEAD request)."""
        from .http import run_concurrently
        ob = self._obstore

        def get(options: dict[str, Any]) -> tuple[int, str | None, int, bytes]:
            result = ob.get(self.store, self.path, options=options)
            meta = result.meta
            start = result.range[0]
            return int(meta["size"]), meta.get("e_tag"), start, bytes(result.bytes())

        first, last = run_concurrently(get, [{"range": (0, head)}, {"range": {"suffix": tail}}])
        size = first[0]
        if last[0] != size or (first[1] and last[1] and first[1] != last[1]):
            raise SourceError(f"{self.name}: the object changed while opening")
        self.size, self.etag = size, first[1]
        head_data = first[3][: min(head, size)]
        tail_data = last[3]
        keep = max(0, size - len(head_data))
        return size, head_data, tail_data[len(tail_data) - keep:] if len(tail_data) > keep else tail_data

    def fetch(self, spans: Sequence[tuple[int, int]]) -> list[Any]:
        if not self.etag:
            starts = [o for o, _ in spans]
            lengths = [n for _, n in spans]
            return list(self._obstore.get_ranges(self.store, self.path, starts=starts, lengths=lengths, coalesce=0))
        # the version seen at open is pinned (If-Match): get_ranges takes no options, so the spans
        # tiffio planned go out as concurrent gets
        from .http import run_concurrently
        return run_concurrently(self._get_pinned, list(spans))

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


class FsspecFetcher:
    """Ranges of one file of an fsspec filesystem through ``cat_ranges``.

    fsspec has no suffix read common to its filesystems, so opening costs one ``info``
    request (HEAD on HTTP/S3) before the head and tail are fetched together.
    """

    def __init__(self, fs: Any, path: str, name: str | None = None) -> None:
        self.fs = fs
        self.path = path
        self.name = name or path
        try:
            self.size: int | None = int(fs.size(path))
        except FileNotFoundError as exc:
            raise SourceError(2, f"{self.name}: not found") from exc
        except Exception as exc:
            raise SourceError(f"{self.name}: fsspec could not stat the file: {exc}") from exc

    @classmethod
    def from_url(cls, url: str, *, storage_options: dict[str, Any] | None = None) -> FsspecFetcher:
        try:
            from fsspec.core import url_to_fs
        except ImportError as exc:  # pragma: no cover
            raise UnsupportedFeatureError(f"{url}: reading through fsspec needs `pip install tiffio[fsspec]`") from exc
        fs, path = url_to_fs(url, **(storage_options or {}))
        return cls(fs, path, name=url)

    def fetch(self, spans: Sequence[tuple[int, int]]) -> list[Any]:
        n = len(spans)
        return list(self.fs.cat_ranges([self.path] * n, [o for o, _ in spans], [o + k for o, k in spans]))
