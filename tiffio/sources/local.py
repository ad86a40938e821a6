"""Local byte sources: regular files (pread/preadv), in-memory buffers and file objects."""

from __future__ import annotations

import errno
import io
import os
import stat
import threading
from typing import Any

from ..errors import NotARegularFileError, SourceError, TiffTypeError, TiffUsageError, TiffValueError, describe_os_error
from .base import ByteSource

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileSource", "BytesSource", "FileObjectSource"]


class _Descriptor:
    """An open file descriptor that closes itself when the last reference to it goes.

    :class:`FileSource` holds one; every read takes its own reference for the duration of
    the system call (``handle = source.handle``). ``close()`` only drops the source's
    reference, so a read racing it either finishes on the old descriptor, or finds no handle
    and raises; the descriptor is closed when the last such read returns, never while one
    still uses it. Closing at once and letting a racing read use the number would read
    whatever file the process opens next under that number (close(2): "may be reused").
    The interpreter's reference count is the in-flight count: taking and dropping a
    reference costs nothing on the tile-read path, where a lock taken twice per read would.
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self, _close: Any = os.close) -> None:  # bound now: os may be gone at interpreter exit
        try:
            _close(self.fd)
        except OSError:  # pragma: no cover - nothing to report to at this point
            pass


#: O_NONBLOCK where the platform has it: opening a FIFO for reading then never waits for a writer
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _open_regular(path: str) -> tuple[int, int]:
    """Open ``path`` for reading: (descriptor, size). Anything but a regular file (a directory,
    FIFO, character or block device, socket) is refused at once with NotARegularFileError:
    without O_NONBLOCK, opening a FIFO waits for a writer forever; /dev/zero never ends.
    A process out of descriptors first collects garbage (unclosed TiffFiles) and tries again."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | _NONBLOCK
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):  # a socket, or a device without a driver
            try:
                mode = os.stat(path).st_mode
            except OSError:
                raise exc from None
            if not stat.S_ISREG(mode):
                raise NotARegularFileError(None, f"{path} is {_file_kind(mode)}, not a regular file; tiffio reads "
                                           "TIFFs from files, bytes or file objects", path) from None
        if exc.errno not in (errno.EMFILE, errno.ENFILE):
            raise
        # descriptors held by TiffFiles nobody closed (each warns with a ResourceWarning): the
        # cyclic garbage collector frees them; as Ruby's File.open does on EMFILE, once
        import gc
        gc.collect()
        fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _file_kind(st.st_mode)
            code = errno.EISDIR if stat.S_ISDIR(st.st_mode) else None
            message = f"{path} is {kind}, not a regular file; tiffio reads TIFFs from files, bytes or file objects"
            if code is None:
                raise NotARegularFileError(None, message, path)
            raise SourceError(code, message, path)
        if _NONBLOCK and fcntl is not None:  # a regular file: back to ordinary blocking reads
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"  # pragma: no cover


class FileSource(ByteSource):
    """A local regular file read with ``os.pread`` (no shared file position).

    ``handle`` is the open descriptor (:class:`_Descriptor`), None once closed: a read takes
    it once (``handle = source.handle``) and uses ``handle.fd`` only through that reference.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.name = os.fspath(path)
        self.handle: _Descriptor | None = None
        try:
            fd, self.size = _open_regular(self.name)
        except ValueError as exc:  # a NUL byte in the path
            raise TiffValueError(f"cannot open {self.name!r}: {exc}") from None
        except OSError as exc:
            if isinstance(exc, SourceError):
                raise
            raise SourceError(exc.errno, f"cannot open {self.name!r}: {describe_os_error(exc)}", self.name) from exc
        self.handle = _Descriptor(fd)
        self._pread = getattr(os, "pread", None)
        self._preadv = getattr(os, "preadv", None)
        self._lock = threading.Lock()

    def fileno(self) -> int:
        """The descriptor number, for callers that need it while they hold the file open (not
        for reads that may race ``close()``: those use ``handle``)."""
        handle = self.handle
        if handle is None:
            raise TiffUsageError(f"{self.name}: the file is closed")
        return handle.fd

    def _closed_error(self) -> TiffUsageError:
        return TiffUsageError(f"{self.name}: the file is closed")

    def read_range(self, offset: int, size: int) -> bytes:
        handle = self.handle  # held until the read returns: the descriptor stays open that long
        if handle is None:
            raise self._closed_error()
        if size <= 0 or offset >= self.size:
            self._count(0)
            return b""
        size = min(size, self.size - offset)
        fd = handle.fd
        try:
            if self._pread is not None:
                data = self._pread(fd, size, offset)
                if len(data) < size:  # pread may return short reads on some systems
                    parts = [data]
                    got = len(data)
                    while got < size:
                        more = self._pread(fd, size - got, offset + got)
                        if not more:
                            break
                        parts.append(more)
                        got += len(more)
                    data = b"".join(parts)
            else:  # pragma: no cover - platforms without pread
                with self._lock:
                    os.lseek(fd, offset, os.SEEK_SET)
                    data = os.read(fd, size)
        except OSError as exc:
            raise SourceError(exc.errno, f"{self.name}: reading {size} bytes at offset {offset} failed: "
                                         f"{describe_os_error(exc)}", self.name) from exc
        self._count(len(data))
        return data

    def read_into(self, offset: int, view: memoryview) -> memoryview:
        # per-tile hot path: one preadv into the whole view in the common case
        handle = self.handle  # held until the read returns (see _Descriptor)
        size = len(view)
        preadv = self._preadv
        if preadv is None or offset + size > self.size or handle is None:
            if handle is None:
                raise self._closed_error()
            if offset >= self.size or preadv is None:
                return super().read_into(offset, view)
            size = self.size - offset
            view = view[:size]
        try:
            got = preadv(handle.fd, [view], offset)
            while 0 < got < size:  # short reads are allowed; finish or stop at the end
                more = preadv(handle.fd, [view[got:]], offset + got)
                if more <= 0:
                    break
                got += more
        except OSError as exc:
            raise SourceError(exc.errno, f"{self.name}: reading {size} bytes at offset {offset} failed: "
                                         f"{describe_os_error(exc)}", self.name) from exc
        self.requests += 1
        self.bytes_read += got
        return view if got == size else view[:got]

    def close(self) -> None:
        # the descriptor closes now, or when the last read racing this call returns
        self.closed = True
        self.handle = None


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
            raise SourceError(getattr(exc, "errno", None) or errno.EIO,
                              f"{self.name}: reading {size} bytes at offset {offset} failed: {describe_os_error(exc)}") from exc
        if not isinstance(data, bytes):
            if isinstance(data, str):
                raise TiffTypeError(f"{self.name}: the file object is open in text mode; open it with 'rb'")
            data = bytes(data)
        self._count(len(data))
        return data

    def close(self) -> None:
        # the caller owns the file object; we only stop using it
        self.closed = True
