"""Byte sources: the only module that opens files (DESIGN.md rule 2: no shared position).

A source answers ``read_range(offset, size)`` with positional reads, so one source
serves many threads at once. Every source counts its requests and bytes, which the
tests and benchmarks use to prove that reads are lazy.

``read_range`` returns at most ``size`` bytes: fewer only when the range passes the
end of the source. Callers that need every byte use :func:`require_range`.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from typing import Any

from .errors import SourceError, TiffTypeError, TiffUsageError, TruncatedError

__all__ = ["ByteSource", "FileSource", "BytesSource", "FileObjectSource", "open_source", "require_range"]


class ByteSource:
    """Base class: positional reads plus request/byte counters."""

    size: int
    name: str = "<source>"

    def __init__(self) -> None:
        self.requests = 0
        self.bytes_read = 0
        self.closed = False
        self._count_lock = threading.Lock()

    def _count(self, n: int) -> None:
        # no lock on the hot path: exact for one thread, approximate under concurrent reads
        self.requests += 1
        self.bytes_read += n

    def reset_counters(self) -> None:
        with self._count_lock:
            self.requests = 0
            self.bytes_read = 0

    def _check_open(self) -> None:
        if self.closed:
            raise TiffUsageError(f"{self.name}: the file is closed")

    def read_range(self, offset: int, size: int) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_into(self, offset: int, view: memoryview) -> memoryview:
        """Read up to ``len(view)`` bytes at ``offset`` into ``view`` and return the filled part
        (shorter only at the end of the source). Hot loops reuse one buffer this way instead
        of a bytes object per segment (IFD._read_buffer); sources override it to skip the copy."""
        data = self.read_range(offset, len(view))
        view[: len(data)] = data
        return view[: len(data)]

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Read several ranges; subclasses may coalesce them."""
        return [self.read_range(o, n) for o, n in ranges]

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def require_range(source: ByteSource, offset: int, size: int, what: str) -> bytes:
    """Read exactly ``size`` bytes at ``offset`` or raise TruncatedError naming ``what``."""
    if offset < 0 or size < 0:
        raise TruncatedError(f"{what}: invalid range offset={offset} size={size}")
    if offset + size > source.size:
        raise TruncatedError(
            f"{what}: {size} bytes at offset {offset} (0x{offset:x}) pass the end of the file ({source.size} bytes)"
        )
    data = source.read_range(offset, size)
    if len(data) != size:
        raise TruncatedError(f"{what}: read {len(data)} of {size} bytes at offset {offset} (0x{offset:x})")
    return data


class FileSource(ByteSource):
    """A local file read with ``os.pread`` (no shared file position)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.name = os.fspath(path)
        try:
            self._fd = os.open(self.name, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            self.size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise SourceError(exc.errno, f"cannot open {self.name!r}: {exc.strerror}") from exc
        self._pread = getattr(os, "pread", None)
        self._preadv = getattr(os, "preadv", None)
        self._lock = threading.Lock()

    def fileno(self) -> int:
        return self._fd

    def read_range(self, offset: int, size: int) -> bytes:
        self._check_open()
        if size <= 0 or offset >= self.size:
            self._count(0)
            return b""
        size = min(size, self.size - offset)
        try:
            if self._pread is not None:
                data = self._pread(self._fd, size, offset)
                if len(data) < size:  # pread may return short reads on some systems
                    parts = [data]
                    got = len(data)
                    while got < size:
                        more = self._pread(self._fd, size - got, offset + got)
                        if not more:
                            break
                        parts.append(more)
                        got += len(more)
                    data = b"".join(parts)
            else:  # pragma: no cover - platforms without pread
                with self._lock:
                    os.lseek(self._fd, offset, os.SEEK_SET)
                    data = os.read(self._fd, size)
        except OSError as exc:
            raise SourceError(exc.errno, f"{self.name}: reading {size} bytes at offset {offset} failed: {exc.strerror}") from exc
        self._count(len(data))
        return data

    def read_into(self, offset: int, view: memoryview) -> memoryview:
        # per-tile hot path: one preadv into the whole view in the common case
        size = len(view)
        preadv = self._preadv
        if preadv is None or offset + size > self.size or self.closed:
            if offset >= self.size or preadv is None or self.closed:
                return super().read_into(offset, view)
            size = self.size - offset
            view = view[:size]
        try:
            got = preadv(self._fd, [view], offset)
            while 0 < got < size:  # short reads are allowed; finish or stop at the end
                more = preadv(self._fd, [view[got:]], offset + got)
                if more <= 0:
                    break
                got += more
        except OSError as exc:
            raise SourceError(exc.errno, f"{self.name}: reading {size} bytes at offset {offset} failed: {exc.strerror}") from exc
        self.requests += 1
        self.bytes_read += got
        return view if got == size else view[:got]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                os.close(self._fd)
            except OSError:  # pragma: no cover
                pass


class BytesSource(ByteSource):
    """An in-memory buffer (bytes, bytearray, memoryview, numpy array, mmap)."""

    def __init__(self, data: Any, name: str = "<bytes>") -> None:
        super().__init__()
        try:
            self._view = memoryview(data).cast("B")
        except TypeError as exc:
            raise TiffTypeError(f"cannot read a TIFF from {type(data).__name__}: not a bytes-like object") from exc
        self.size = len(self._view)
        self.name = name

    def read_range(self, offset: int, size: int) -> bytes:
        self._check_open()
        if size <= 0 or offset >= self.size:
            self._count(0)
            return b""
        data = bytes(self._view[offset: offset + size])
        self._count(len(data))
        return data

    def read_into(self, offset: int, view: memoryview) -> memoryview:
        self._check_open()
        part = self._view[offset: offset + len(view)] if offset < self.size else self._view[:0]
        view[: len(part)] = part
        self._count(len(part))
        return view[: len(part)]

    def close(self) -> None:
        self.closed = True
        self._view.release()


class FileObjectSource(ByteSource):
    """A binary file object; seek+read under a lock (positional reads via the
    descriptor where the object wraps a real file)."""

    def __init__(self, fileobj: Any) -> None:
        super().__init__()
        self._fh = fileobj
        self.name = str(getattr(fileobj, "name", "<file object>"))
        self._lock = threading.Lock()
        if isinstance(fileobj, io.TextIOBase) or "b" not in getattr(fileobj, "mode", "b"):
            raise TiffTypeError(f"{self.name}: the file object is open in text mode; open it with 'rb'")
        try:
            if not fileobj.readable():
                raise TiffUsageError(f"{self.name}: the file object is not readable")
            pos = fileobj.tell()
            self.size = fileobj.seek(0, io.SEEK_END)
            fileobj.seek(pos)
        except (OSError, AttributeError, io.UnsupportedOperation) as exc:
            raise TiffTypeError(f"{self.name}: the file object must be binary, readable and seekable ({exc})") from exc

    def read_range(self, offset: int, size: int) -> bytes:
        self._check_open()
        if size <= 0 or offset >= self.size:
            self._count(0)
            return b""
        try:
            with self._lock:
                self._fh.seek(offset)
                data = self._fh.read(size)
        except OSError as exc:
            raise SourceError(getattr(exc, "errno", None), f"{self.name}: reading {size} bytes at offset {offset} failed: {exc}") from exc
        if not isinstance(data, bytes):
            if isinstance(data, str):
                raise TiffTypeError(f"{self.name}: the file object is open in text mode; open it with 'rb'")
            data = bytes(data)
        self._count(len(data))
        return data

    def close(self) -> None:
        # the caller owns the file object; we only stop using it
        self.closed = True


def open_source(source: Any) -> tuple[ByteSource, bool]:
    """Turn what the user passed into a ByteSource. Returns (source, owned)."""
    if isinstance(source, ByteSource):
        return source, False
    if isinstance(source, (str, os.PathLike)):
        return FileSource(source), True
    if isinstance(source, (bytes, bytearray, memoryview)):
        return BytesSource(source), True
    if hasattr(source, "read") and hasattr(source, "seek"):
        return FileObjectSource(source), True
    try:
        return BytesSource(source), True
    except TiffTypeError:
        raise TiffTypeError(
            f"cannot open a TIFF from {type(source).__name__}: pass a path, a bytes-like object or a binary file object"
        ) from None
