"""The file a TiffWriter owns, and the temporaries of final outputs.

:class:`WriterFile` opens a writer's target only after every check, in this order: a path must be a
regular file or absent (devices, FIFOs and folders are never opened for writing or repair: opening
some of them blocks or has effects of its own); a file to resume must prove to be a working file of
tiffio's writer (its signature, records.read_signature) before it is opened for writing, so nothing
is locked or created for a file that is not; the writer's lock (lock.py) is held before a byte is
written. It removes a file ``mode='w'`` created when the writer stored no image.

**Temporary outputs** (:func:`create_temporary`, :func:`publish`; ``atomic=True``, relayout, merge):
a final file written in one go is created under an unpredictable name in its destination's folder
with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a planted file or symlink makes creation fail instead of
redirecting the write), with mode 0o666 so that the user's umask and the folder's default ACL apply
as to any file the user creates, then fsynced, renamed over the destination (``os.replace``, which
replaces a symlink there and never follows it; never over a folder, device or FIFO) and the folder
fsynced: after a crash the destination is the old file or the complete new one (what SQLite and
atomicwrites do).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import weakref
from typing import Any

from ..errors import SourceError, TiffTypeError, TiffValueError
from .lock import WriterLock, require_local_filesystem
from .records import read_signature
from .sink import Sink, source_error

__all__ = ["WriterFile", "require_regular", "require_replaceable", "create_temporary", "publish", "discard",
           "sync_folder"]

_O_BINARY = getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


# --- regular files -----------------------------------------------------------------------------

def require_regular(path: str, what: str = "write") -> bool:
    """TiffTypeError unless ``path`` is a regular file or does not exist; returns whether it exists.
    Devices, FIFOs, sockets and folders are never opened for writing or repair (opening some of
    them blocks or has effects of its own)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise source_error(exc, f"cannot {what} {path!r}") from None
    check_regular(st, path, what)
    return True


def require_replaceable(path: str) -> None:
    """TiffTypeError unless ``path`` is absent, a regular file or a symbolic link (which a rename
    replaces, never follows): an output renamed into place never replaces a folder, device or FIFO."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise source_error(exc, f"cannot write {path!r}") from None
    if not stat.S_ISLNK(st.st_mode):
        check_regular(st, path)


def check_regular(st: os.stat_result, path: str, what: str = "write") -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else
            "a character device" if stat.S_ISCHR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
    raise TiffTypeError(f"cannot {what} {path!r}: it is {kind}; tiffio writes and repairs regular files only")


# --- temporary outputs -------------------------------------------------------------------------

def create_temporary(dst: str | os.PathLike, suffix: str = ".partial") -> tuple[int, str]:
    """Create a new, empty file under an unpredictable name in ``dst``'s folder, exclusively and never
    through a symlink (mode 0o666 less the umask, as any file the user creates); returns (fd, path)."""
    dst = os.fspath(dst)
    require_replaceable(dst)
    folder, name = os.path.split(os.path.abspath(dst))
    stem = name[:180]
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY
    for _ in range(100):
        tmp = os.path.join(folder, f".{stem}.{secrets.token_hex(8)}{suffix}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise source_error(exc, f"cannot create a temporary file in {folder!r} to write {dst!r}") from None
    raise SourceError(errno.EEXIST, f"cannot create a temporary file in {folder!r} to write {dst!r}: "
                      "100 names were taken")  # pragma: no cover


def publish(fd: int, tmp: str, dst: str | os.PathLike, sync: bool = True) -> None:
    """Make the complete temporary ``tmp`` (open as ``fd``) the file ``dst``: fsync it, rename it over
    ``dst`` (a symlink at ``dst`` is replaced, never followed), fsync the folder. ``sync=False`` skips
    both fsyncs (faster; not crash-safe)."""
    dst = os.fspath(dst)
    require_replaceable(dst)
    try:
        if sync:
            os.fsync(fd)
        os.replace(tmp, dst)
    except OSError as exc:
        raise source_error(exc, f"cannot write {dst!r}") from None
    if sync:
        sync_folder(dst)


def discard(tmp: str) -> None:
    """Remove a temporary file (nothing if it is gone)."""
    try:
        os.unlink(tmp)
    except OSError:
        pass


def sync_folder(path: str | os.PathLike) -> None:
    """fsync the folder holding ``path`` (a rename in it is then durable); errors are ignored where a
    folder cannot be synced."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(os.fspath(path))), os.O_RDONLY | _O_CLOEXEC)
    except OSError:  # pragma: no cover - not on every platform
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# --- the file a writer owns --------------------------------------------------------------------

class WriterFile:
    """A writer's target, opened after every check (module docstring); ``sink`` writes it.

    ``mode`` 'w' (created or emptied) or 'resume'; ``lock``: take the writer's lock (paths only);
    ``atomic``: write an exclusively created temporary in the target's folder, renamed over the target
    by :meth:`publish`. ``role`` is what the lock file says about its holder."""

    def __init__(self, target: Any, mode: str, lock: bool, atomic: bool, role: str = "writer") -> None:
        self.mode = mode
        self.path: str | None = None           # the target, when it is a path
        self.lock: WriterLock | None = None
        self.temporary: str | None = None      # atomic: the file being written
        self._discard: weakref.finalize | None = None
        if not isinstance(target, (str, os.PathLike)):
            if atomic:
                raise TiffValueError("atomic=True needs a path (the temporary file is created next to it)")
            self.sink = Sink(target, mode)
            return
        path = self.path = os.fspath(target)
        if not require_regular(path, "write" if mode == "w" else "resume or repair"):
            folder = os.path.dirname(os.path.abspath(path))
            if mode != "w":
                raise SourceError(errno.ENOENT, f"cannot resume {path!r}: no such file")
            if not os.path.isdir(folder):
                raise SourceError(errno.ENOENT, f"cannot write {path!r}: the folder {folder!r} does not exist")
        if atomic:
            fd, self.temporary = create_temporary(path, ".partial")
            self._discard = weakref.finalize(self, discard, self.temporary)  # a writer never closed
            self.sink = Sink.from_fd(fd, path)
            return
        if mode == "resume":
            probe = Sink(path, "r")
            try:
                read_signature(probe, probe.size())
            finally:
                probe.close()
        if lock:
            require_local_filesystem(path, purpose="lock")
            self.lock = WriterLock(path, role)
        try:
            self.sink = Sink(path, "w" if mode == "w" else "r+")
        except BaseException:
            self.release()
            raise

    @property
    def folder(self) -> str | None:
        """The target's folder (None for a file object)."""
        return None if self.path is None else os.path.dirname(os.path.abspath(self.path))

    def publish(self) -> None:
        """atomic: make the complete temporary the target (fsync, rename, fsync of the folder)."""
        if self.temporary is not None:
            assert self.sink.fd is not None and self.path is not None
            publish(self.sink.fd, self.temporary, self.path)
            self.temporary = None
            if self._discard is not None:
                self._discard.detach()

    def release(self, remove: bool = False) -> None:
        """Close the file and release the lock. ``remove`` (the writer stored no image, or an atomic
        writer is abandoned): a file ``mode='w'`` created is removed, a file object emptied; an
        unpublished temporary is always removed."""
        sink = getattr(self, "sink", None)
        error: BaseException | None = None
        try:
            if remove and self.temporary is None and sink is not None and self.mode == "w":
                if sink.fd is not None and self.path is not None:
                    _remove_if_same(self.path, sink.fd)
                elif sink.file is not None:
                    sink.truncate(0)
        except BaseException as exc:
            error = exc
        try:
            if sink is not None:
                sink.close()
        except BaseException as exc:
            error = error or exc
        finally:
            if self.temporary is not None:
                discard(self.temporary)
                self.temporary = None
                if self._discard is not None:
                    self._discard.detach()
            if self.lock is not None:
                self.lock.release()
                self.lock = None
        if error is not None:
            raise error


def _remove_if_same(path: str, fd: int) -> None:
    """Remove ``path`` if it is still the file open as ``fd`` (a file that held nothing)."""
    try:
        mine = os.fstat(fd)
        now = os.stat(path)
    except OSError:
        return
    if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
        try:
            os.unlink(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise SourceError(exc.errno or errno.EIO, f"cannot remove {path!r}, which holds no image: "
                                  f"{exc.strerror}") from None
