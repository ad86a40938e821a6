"""Local byte sources: files (pread/preadv), in-memory buffers and file objects."""

from __future__ import annotations

import io
import os
import threading
from typing import Any

from ..errors import SourceError, TiffTypeError, TiffUsageError
from .base import ByteSource

__all__ = ["FileSource", "BytesSource", "FileObjectSource"]


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
