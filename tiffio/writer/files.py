"""The files the writer creates and owns: the one-writer lock, temporary outputs, and the checks
that say where the writer refuses to work (no file I/O of TIFF content here; that is sink.py).

**One writer per file.** :class:`WriterLock` holds an exclusive ``flock(2)`` on a hidden sidecar
file next to the target (``.NAME.tiffio-lock``) for a writer's lifetime. ``flock`` because:

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

**Temporary outputs** (:func:`create_temporary`, :func:`publish`): a final file written in one go is
created under an unpredictable name in its destination's folder with ``O_CREAT | O_EXCL |
O_NOFOLLOW`` (a planted file or symlink makes creation fail instead of redirecting the write), with
mode 0o666 so that the user's umask and the folder's default ACL apply as to any file the user
creates, then fsynced, renamed over the destination (``os.replace``) and the folder fsynced: after a
crash the destination is the old file or the complete new one (what SQLite and atomicwrites do).
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import socket
import stat
import weakref

from ..errors import SourceError, TiffTypeError, TiffUsageError, UnsupportedFeatureError
from .sink import source_error

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: no locks (the writer needs os.pwrite anyway)
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterLock", "lock_path", "lock_owner", "filesystem_type", "require_local_filesystem",
           "require_regular", "require_replaceable", "create_temporary", "publish", "discard", "sync_folder"]

#: filesystem types where locks and concurrent O_APPEND from several processes are not reliable
_REFUSED = ("nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "fuse", "9p", "lustre", "gpfs", "ceph",
            "glusterfs", "afs", "ocfs2", "gfs2", "beegfs", "orangefs", "sshfs", "davfs", "ncpfs", "coda")

_O_BINARY = getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NAME_MAX = 255


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
    if purpose == "lock" and mountinfo is None:
        mountinfo = _read_mountinfo()
        if mountinfo is None:  # pragma: no cover - not Linux
            return ""
    fstype = filesystem_type(path, mountinfo)
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
        if lock._finalizer is not None:
            lock._finalizer.detach()
        fd, lock.fd = lock.fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass
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
            text = f"process {os.getpid()} on {socket.gethostname()}, {role}\n".encode()
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, text, 0)
        except OSError:  # the text is for messages only
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
