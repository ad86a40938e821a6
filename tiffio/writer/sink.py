"""The writer's byte sink: positional writes (os.pwrite/pwritev) and reads, fsync and fdatasync,
on a path or a binary file object. The only module of the writer that does file I/O."""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat
import threading
from typing import Any, NamedTuple

from ..errors import SourceError, TiffTypeError

__all__ = ["Sink", "source_error"]


class _Descriptor(NamedTuple):
    """A descriptor the caller opened, with the name messages give the file (Sink.from_fd)."""

    fd: int
    name: str


class Sink:
    """Positional writes to a path (os.pwrite) or a binary file object (seek + write)."""

    def __init__(self, target: Any, mode: str) -> None:
        self.fd: int | None = None
        self.file: Any = None
        self.owns = False
        self._lock = threading.Lock()
        if isinstance(target, _Descriptor):  # from_fd
            self.name, self.fd, self.owns = target.name, target.fd, True
        elif isinstance(target, (str, os.PathLike)):
            self.name = os.fspath(target)
            self.fd = _open_regular(self.name, mode)
            self.owns = True
        elif hasattr(target, "write") and hasattr(target, "seek"):
            self.file = target
            self.name = getattr(target, "name", type(target).__name__)
            if mode == "w":
                try:
                    target.seek(0)
                    target.truncate(0)
                except (OSError, ValueError) as exc:
                    raise SourceError(f"{self.name}: cannot truncate the file object ({exc})") from None
        else:
            raise TiffTypeError(f"target must be a path or a binary file object, not {type(target).__name__}")

    @classmethod
    def from_fd(cls, fd: int, name: str) -> Sink:
        """A sink on a descriptor the caller opened (it is closed with the sink); ``name`` is what
        messages call the file."""
        return cls(_Descriptor(fd, name), "r")

    def pwrite(self, offset: int, *parts: bytes) -> None:
        try:
            if self.fd is not None:
                total = sum(len(p) for p in parts)
                written = os.pwritev(self.fd, parts, offset) if hasattr(os, "pwritev") else \
                    os.pwrite(self.fd, b"".join(parts), offset)
                if written != total:  # short write: finish it (or get the real error)
                    data = b"".join(parts)
                    while written < total:
                        n = os.pwrite(self.fd, data[written:], offset + written)
                        if n <= 0:
                            raise OSError(_errno.ENOSPC, "short write")
                        written += n
            else:
                with self._lock:
                    self.file.seek(offset)
                    for p in parts:
                        n = self.file.write(p)
                        if n is not None and n != len(p):
                            raise OSError(_errno.ENOSPC, f"short write ({n} of {len(p)} bytes)")
        except OSError as exc:
            raise source_error(exc, f"{self.name}: writing {sum(len(p) for p in parts)} bytes at offset {offset}") \
                from None

    def pread(self, offset: int, size: int) -> bytes:
        try:
            if self.fd is not None:
                return os.pread(self.fd, size, offset)
            with self._lock:
                self.file.seek(offset)
                return self.file.read(size)
        except OSError as exc:
            raise source_error(exc, f"{self.name}: reading {size} bytes at offset {offset}") from None

    def size(self) -> int:
        try:
            if self.fd is not None:
                return os.fstat(self.fd).st_size
            with self._lock:
                return self.file.seek(0, 2)
        except OSError as exc:
            raise source_error(exc, f"{self.name}: size") from None

    def truncate(self, size: int) -> None:
        try:
            if self.fd is not None:
                os.ftruncate(self.fd, size)
            else:
                with self._lock:
                    self.file.truncate(size)
        except OSError as exc:
            raise source_error(exc, f"{self.name}: truncating to {size} bytes") from None

    def datasync(self) -> None:
        """fdatasync where there is one (a file descriptor), else nothing."""
        if self.fd is not None:
            try:
                (getattr(os, "fdatasync", None) or os.fsync)(self.fd)
            except OSError as exc:
                raise source_error(exc, f"{self.name}: fdatasync") from None

    def sync(self) -> None:
        try:
            if self.fd is not None:
                os.fsync(self.fd)
                return
            with self._lock:
                self.file.flush()
                try:
                    fileno = self.file.fileno()
                except (OSError, AttributeError, ValueError):
                    return
                os.fsync(fileno)
        except OSError as exc:
            raise source_error(exc, f"{self.name}: flush/fsync") from None

    def close(self) -> None:
        if self.fd is not None and self.owns:
            fd, self.fd = self.fd, None
            try:
                os.close(fd)
            except OSError as exc:
                raise source_error(exc, f"{self.name}: close") from None


def _open_regular(path: str, mode: str) -> int:
    """Open ``path`` (``'w'``: created or emptied, ``'r'``: read only, else read-write) and make sure
    it is a regular file before anything is written: it is emptied only after that check, and
    O_NONBLOCK keeps a FIFO swapped in meanwhile from blocking the open."""
    flags = (os.O_RDONLY if mode == "r" else os.O_RDWR) | getattr(os, "O_BINARY", 0) | \
        getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_NONBLOCK", 0)
    if mode == "w":
        flags |= os.O_CREAT
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise source_error(exc, f"cannot open {path!r}") from None
    try:
        st = os.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            raise TiffTypeError(f"cannot {'write' if mode == 'w' else 'open'} {path!r}: it is not a regular file "
                                "(a folder, device, FIFO or socket); tiffio writes and repairs regular files only")
        if hasattr(os, "O_NONBLOCK") and hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        if mode == "w" and st.st_size:
            os.ftruncate(fd, 0)
    except OSError as exc:
        os.close(fd)
        raise source_error(exc, f"cannot open {path!r}") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def source_error(exc: OSError, what: str) -> SourceError:
    err = SourceError(exc.errno or _errno.EIO, f"{what}: {exc.strerror or exc}")
    err.filename = getattr(exc, "filename", None)
    return err

