"""One writer per file, and where locks cannot be trusted.

:class:`WriterLock` holds an exclusive ``flock(2)`` on a hidden sidecar file next to the target
(``.NAME.tiffio-lock``) for a writer's lifetime. ``flock`` because:

* its locks belong to the open file description, so closing some other descriptor of a file in the
  same process (``tiffio.open(path)`` then ``close()``) does not release them; POSIX ``fcntl``
  locks are dropped by *any* close of *any* descriptor of the file in the process (SQLite calls them
  "broken by design" for this reason);
* the kernel releases them when the owner dies, also on ``kill -9``: a dead writer's file is taken
  over with no cleanup (git's ``O_EXCL`` lock files need a human to remove a stale one);
* two descriptors of one process exclude each other too (a second writer in the same process is
  refused like one in another process).

A sidecar, not the TIFF itself, because shared-append producers (tiffio.writer.shared) ``flock``
the TIFF around each record they append while its coordinator, a writer, runs. The sidecar is
removed when the lock is released; a contender that locked a sidecar in the instant it was removed
sees that the path no longer names the file it locked and tries again (the recipe of the filelock
package). A forked child does not keep its parent's locks (they are closed in the child), so a pool
of worker processes forked by a writer never holds its lock after the writer died.

Locks are only as good as the filesystem: NFS emulates ``flock`` with byte-range locks that are
per process, SMB and many FUSE filesystems keep them on one client. :func:`require_local_filesystem`
(the table of those filesystems, read from /proc/self/mountinfo) refuses them: for the writer's lock,
and for shared append, whose ``O_APPEND`` writes are not serialised there either.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import stat
import time
import weakref

from ..errors import TiffUsageError, UnsupportedFeatureError
from .sink import source_error

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: no locks (the writer needs os.pwrite anyway)
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterLock", "lock_path", "lock_owner", "filesystem_type", "require_local_filesystem"]

#: filesystem types where locks and concurrent O_APPEND from several processes are not reliable
_REFUSED = ("nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "fuse", "9p", "lustre", "gpfs", "ceph",
            "glusterfs", "afs", "ocfs2", "gfs2", "beegfs", "orangefs", "sshfs", "davfs", "ncpfs", "coda")

_O_BINARY = getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NAME_MAX = 255
#: bytes of the holder's description at the start of the lock file
_OWNER_SIZE = 256
#: how long the type of a filesystem (by device number) is remembered, in seconds
_FSTYPE_TTL = 5.0
_fstypes: dict[int, tuple[float, str]] = {}


# --- filesystems -------------------------------------------------------------------------------

def _read_mountinfo() -> str | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def filesystem_type(path: str | os.PathLike, mountinfo: str | None = None) -> str:
    """The type of the filesystem holding ``path`` (Linux /proc/self/mountinfo: the mount point
    that is the longest prefix of the real path)."""
    if mountinfo is None:
        mountinfo = _read_mountinfo()
        if mountinfo is None:
            raise UnsupportedFeatureError("shared append needs /proc/self/mountinfo (Linux) to check that the "
                                          "file is on a local filesystem")
    real = os.path.realpath(os.fspath(path))
    best, fstype = -1, ""
    for line in mountinfo.splitlines():
        parts = line.split(" - ", 1)
        fields = parts[0].split()
        if len(parts) != 2 or len(fields) < 5:
            continue
        mount = fields[4].encode().decode("unicode_escape") if "\\" in fields[4] else fields[4]
        inside = real == mount or real.startswith(mount.rstrip("/") + "/") or mount == "/"
        if inside and len(mount) > best:
            best, fstype = len(mount), parts[1].split()[0]
    return fstype


def _unreliable(fstype: str) -> bool:
    base = fstype.split(".", 1)[0].lower()
    return not fstype or base in _REFUSED or base.startswith(("fuse", "nfs"))


def require_local_filesystem(path: str | os.PathLike, mountinfo: str | None = None, *,
                             purpose: str = "append") -> str:
    """Raise UnsupportedFeatureError unless ``path`` is on a local filesystem; returns its type.

    ``purpose='append'`` (shared append) also refuses a filesystem it cannot identify;
    ``purpose='lock'`` (the writer's lock) trusts ``flock`` where there is no mount table to read
    (not Linux)."""
    key = None
    if purpose == "lock" and mountinfo is None:
        # the mount table is read once per filesystem every few seconds: writers of many small files
        # would otherwise read and parse it for each file
        try:
            key = os.stat(os.path.dirname(os.path.realpath(os.fspath(path))) or ".").st_dev
        except OSError:
            key = None
        known = _fstypes.get(key) if key is not None else None
        if known is not None and time.monotonic() - known[0] < _FSTYPE_TTL and not _unreliable(known[1]):
            return known[1]
        mountinfo = _read_mountinfo()
        if mountinfo is None:  # pragma: no cover - not Linux
            return ""
    fstype = filesystem_type(path, mountinfo)
    if key is not None:
        _fstypes[key] = (time.monotonic(), fstype)
    if not _unreliable(fstype):
        return fstype
    where = f"{os.fspath(path)!r} is on a {fstype or 'unknown'} filesystem"
    if purpose == "lock":
        raise UnsupportedFeatureError(
            f"{where}, where file locks are not reliable: tiffio cannot make sure that only one writer writes "
            "the file. Pass lock=False if you make sure of that yourself (one task per file), or write on a "
            "local filesystem")
    raise UnsupportedFeatureError(
        f"{where}: several processes cannot append to one file safely there (O_APPEND is emulated or not "
        "serialised); write shards and tiffio.merge them instead")


# --- the writer's lock -------------------------------------------------------------------------

def lock_path(path: str | os.PathLike) -> str:
    """The sidecar lock file of ``path``: ``.NAME.tiffio-lock`` in the folder of its real path."""
    real = os.path.realpath(os.fspath(path))
    folder, name = os.path.split(real)
    lock = f".{name}.tiffio-lock"
    if len(os.fsencode(lock)) > _NAME_MAX:
        lock = f".tiffio-lock-{hashlib.sha256(os.fsencode(name)).hexdigest()[:40]}"
    return os.path.join(folder, lock)


def lock_owner(path: str | os.PathLike) -> str:
    """What the sidecar lock file of ``path`` says about its holder ('' if nothing)."""
    try:
        fd = os.open(lock_path(path), os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    except OSError:
        return ""
    try:
        return os.read(fd, 512).decode("utf-8", "replace").strip()
    except OSError:  # pragma: no cover
        return ""
    finally:
        os.close(fd)


_HELD: weakref.WeakSet[WriterLock] = weakref.WeakSet()


def _forget_in_child() -> None:
    """After fork, in the child: close the inherited lock descriptors (the parent keeps its locks;
    the child never releases or removes them)."""
    for lock in list(_HELD):
        lock.forget()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


class WriterLock:
    """An exclusive lock on ``path`` for one writer (module docstring); released by :meth:`release`,
    by the kernel when the process dies, and on collection. ``role`` is recorded in the sidecar."""

    def __init__(self, path: str | os.PathLike, role: str = "writer") -> None:
        self.path = os.fspath(path)
        self.lock_path = lock_path(self.path)
        self.fd = -1
        self._pid = os.getpid()
        self._finalizer: weakref.finalize | None = None
        if fcntl is None:  # pragma: no cover
            return
        for _ in range(64):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise source_error(exc, f"cannot lock {self.lock_path!r} (the lock of {self.path!r})") from None
                owner = lock_owner(self.path)
                raise TiffUsageError(
                    f"{self.path!r} is being written by another writer ({owner or 'its lock is held'}): one writer "
                    "per file; wait until it is closed (or its process ends)") from None
            try:
                mine = os.fstat(fd)
                now = os.stat(self.lock_path, follow_symlinks=False)
                same = (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino) and mine.st_nlink > 0
            except FileNotFoundError:
                same = False
            except OSError as exc:
                os.close(fd)
                raise source_error(exc, f"cannot lock {self.lock_path!r}") from None
            if not same:  # removed by its previous holder while we waited for it: lock the new one
                os.close(fd)
                continue
            self.fd = fd
            break
        else:  # pragma: no cover - 64 holders in a row released the lock under us
            raise TiffUsageError(f"{self.path!r}: could not take its lock {self.lock_path!r} (contended)")
        try:
            # for messages only; padded to a fixed size instead of truncating the file first (ext4 flushes
            # a file truncated to 0 and written again when it is closed: 2 ms instead of 0.1)
            text = f"process {os.getpid()} on {socket.gethostname()}, {role}"[:_OWNER_SIZE - 1]
            os.pwrite(self.fd, text.encode().ljust(_OWNER_SIZE - 1) + b"\n", 0)
        except OSError:
            pass
        _HELD.add(self)
        self._finalizer = weakref.finalize(self, WriterLock._finalize, self.fd, self.lock_path, self._pid)

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY
        try:
            fd = os.open(self.lock_path, flags, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise TiffUsageError(f"the lock file {self.lock_path!r} of {self.path!r} is a symbolic link; "
                                     "remove it (tiffio never follows one)") from None
            raise source_error(exc, f"cannot create the lock file {self.lock_path!r} of {self.path!r}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # pragma: no cover - O_NOFOLLOW on a FIFO/device planted there
            os.close(fd)
            raise TiffUsageError(f"the lock file {self.lock_path!r} of {self.path!r} is not a regular file")
        return fd

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def release(self) -> None:
        """Remove the sidecar (while still holding it) and close it, which releases the lock."""
        fd, self.fd = self.fd, -1
        _HELD.discard(self)
        if self._finalizer is not None:
            self._finalizer.detach()  # (its descriptor number may be reused once closed here)
        if fd >= 0 and os.getpid() == self._pid:
            WriterLock._finalize(fd, self.lock_path, self._pid)

    def forget(self) -> None:
        """In a forked child: close the inherited descriptor without releasing or removing the lock
        (the parent still holds it)."""
        if self._finalizer is not None:
            self._finalizer.detach()
        fd, self.fd = self.fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass

    @staticmethod
    def _finalize(fd: int, path: str, pid: int) -> None:
        if os.getpid() != pid:  # a forked child: the lock is its parent's
            return
        try:
            mine = os.fstat(fd)
            now = os.stat(path, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                os.unlink(path)
        except OSError:
            pass
        try:
            os.close(fd)
        except OSError:
            pass
