"""Shared append: several processes on one machine append tiles to the same working file.

* One :class:`SharedWriter` (the coordinator) creates or resumes the file, adds the images and
  publishes them in a checkpoint, and from then on only *absorbs* the records the others appended
  and checkpoints; it writes no tile itself (use a :class:`SharedAppender` in its process too).
* Every producer opens a :class:`SharedAppender`: its own ``O_APPEND`` descriptor, the images
  read from the last checkpoint, and one ``os.write`` per tile record (the record format of
  tiffio.writer.records: leader + payload, found again by recovery).
* The writes of the appenders hold a shared ``flock`` and the coordinator's absorb + checkpoint an
  exclusive one, so that the end of the file does not move while a checkpoint is placed there
  (locks are released by the kernel when a process dies, also on kill -9).
* A record torn in the middle of the file (a producer killed mid-write, ENOSPC) does not stop the
  coordinator's scan: it resynchronises on the next valid leader (iter_records_resync), and
  ``mode='resume'`` does the same after a crash of the coordinator.

Appending from several processes is safe only where the kernel serialises ``O_APPEND`` writes: local
filesystems. NFS, SMB/CIFS, FUSE and cluster filesystems are refused (read from
/proc/self/mountinfo, tiffio.writer.lock) with UnsupportedFeatureError: use shards + :func:`tiffio.merge`
there.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy

from ..errors import SourceError, TiffFormatError, TiffUsageError, UnsupportedFeatureError
from ..format.header import parse_header
from .image import ImageWriter
from .lock import filesystem_type, require_local_filesystem
from .records import DATA_START, LEADER, MAGIC_TILE, crc32_parts, iter_records_resync, read_signature
from .recovery import read_state
from .sink import Sink, source_error
from .tiffwriter import TiffWriter

__all__ = ["SharedWriter", "SharedAppender", "filesystem_type", "require_local_filesystem"]

class _Owner:
    """The owner of an appender's ImageWriters: they encode tiles and index them, and store nothing
    (the appender appends the records itself)."""

    def __init__(self) -> None:
        self.images: list[ImageWriter] = []

    def submit(self, image: ImageWriter, index: int, array: numpy.ndarray) -> None:
        raise TiffUsageError("a SharedAppender's images are written with SharedAppender.write_tile")

    def submit_raw(self, image: ImageWriter, index: int, data: bytes, reduced: numpy.ndarray | None = None,
                   reduce: bool = True) -> None:
        raise TiffUsageError("a SharedAppender's images are written with SharedAppender.write_raw_tile")

    def missing_mask(self, image: ImageWriter) -> numpy.ndarray:
        return image.tiles.missing_mask()


class _CoordinatorWriter(TiffWriter):
    _shared_append = True
    _lock_role = "coordinator of shared append"

    def absorb(self, skipped: list[tuple[int, int]]) -> int:
        """Index the tile records appended since the last call (torn ones are passed over and listed
        in ``skipped``); returns how many tiles were found."""
        appender = self._appender
        sink = appender.sink
        size = sink.size()
        found = 0
        with appender.lock:
            for magic, img, index, offset, payload in iter_records_resync(sink, appender.end, size, skipped):
                if magic != MAGIC_TILE or img >= len(self.images) or index >= self.images[img].tile_count:
                    continue
                self.images[img].tiles.set(index, offset, len(payload))
                found += 1
            appender.end = max(appender.end, size)  # (a new file is empty until its first image)
            appender.since_checkpoint += found
        return found


class SharedWriter:
    """The coordinator of a file that several processes append tiles to (module docstring).

    ``mode='w'`` creates ``path``; ``mode='resume'`` reopens one after a crash (of anyone: torn
    records are passed over). ``writer_options`` go to :class:`TiffWriter` (byteorder, bigtiff,
    fsync, missing...); automatic checkpoints are off: call :meth:`checkpoint`.
    """

    def __init__(self, path: str | os.PathLike, *, mode: str = "w", **writer_options: Any) -> None:
        self.path = os.fspath(path)
        require_local_filesystem(os.path.dirname(os.path.abspath(self.path)))
        for key in ("checkpoint_every", "checkpoint_seconds"):
            if key in writer_options:
                raise TiffUsageError(f"SharedWriter checkpoints when asked (checkpoint()); {key} is not used")
        self._lock_fd = -1
        self.skipped: list[tuple[int, int]] = []   # (offset, bytes) of torn stretches passed over
        try:
            if mode == "resume":
                self._lock_fd = _open_for_lock(self.path)
                with self._exclusive():
                    self._writer = _CoordinatorWriter(self.path, mode="resume", checkpoint_every=None,
                                                      checkpoint_seconds=None, **writer_options)
            else:
                self._writer = _CoordinatorWriter(self.path, mode=mode, checkpoint_every=None,
                                                  checkpoint_seconds=None, **writer_options)
                self._lock_fd = _open_for_lock(self.path)
        except BaseException:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
            writer = getattr(self, "_writer", None)
            if writer is not None:
                writer.close(_enforce=False)
            raise

    @property
    def report(self) -> Any:
        """The RecoveryReport of ``mode='resume'`` (None for a new file)."""
        return self._writer.report

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def add_image(self, shape: Any, dtype: Any, **options: Any) -> int:
        """Add an image (the options of :meth:`TiffWriter.add_image`) and publish it with a
        checkpoint, so that appenders opened from now on can write its tiles; returns its index."""
        if "pyramid" in options:
            raise UnsupportedFeatureError("single-pass pyramids are built by one writer; not with shared append")
        with self._exclusive():
            self._absorb_locked()
            image = self._writer.add_image(shape, dtype, **options)
            self._writer.checkpoint()
        return image.index

    def absorb(self) -> int:
        """Take in the records appended since the last call; returns how many tiles were found."""
        with self._exclusive():
            return self._absorb_locked()

    def _absorb_locked(self) -> int:
        return self._writer.absorb(self.skipped)

    def checkpoint(self) -> int:
        """Absorb, then write a checkpoint holding every complete tile appended so far (durable on
        return with fsync=True); returns the tiles absorbed."""
        with self._exclusive():
            found = self._absorb_locked()
            self._writer.checkpoint()
        return found

    def missing_tiles(self, image: int = 0) -> list[tuple[int, ...]]:
        """The tiles of ``image`` not absorbed yet."""
        return self._writer.images[image].missing_tiles()

    def close(self) -> None:
        """Absorb, write the final checkpoint and close (missing tiles follow the writer's policy)."""
        if self._lock_fd < 0:
            return
        try:
            with self._exclusive():
                self._absorb_locked()
                self._writer.close()
        finally:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> SharedWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _open_for_lock(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise source_error(exc, f"cannot open {path!r}") from None


class SharedAppender:
    """One producer's handle on a shared file: encodes tiles and appends each as one record with one
    ``os.write`` (``O_APPEND``). The images are those of the file's last checkpoint."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        require_local_filesystem(os.path.dirname(os.path.abspath(self.path)))
        sink = Sink(self.path, "r")
        try:
            head = sink.pread(0, DATA_START)
            first = parse_header(head)[1] if head.strip(b"\0") else 0
            if not first:
                raise TiffFormatError(f"{self.path}: no checkpoint yet: the coordinator publishes the images "
                                      "(SharedWriter.add_image) before appenders open the file")
            read_signature(sink, sink.size())  # appending to a file tiffio did not write would change it
            state = read_state(sink, first)
        finally:
            sink.close()
        owner = _Owner()
        self.images = [ImageWriter(owner, k, params, 1, state["byteorder"]) for k, params in enumerate(state["images"])]
        owner.images = self.images
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise SourceError(exc.errno or errno.EIO, f"cannot open {self.path!r} for appending: {exc.strerror}") \
                from None
        self.tiles_written = 0

    def _image(self, image: int) -> ImageWriter:
        if not 0 <= image < len(self.images):
            raise TiffUsageError(f"image {image} is not in {self.path!r} ({len(self.images)} images at its "
                                 "last checkpoint)")
        return self.images[image]

    def write_tile(self, row: int, col: int, array: Any, *, image: int = 0, plane: int = 0) -> None:
        """Encode one tile (edge tiles may be cropped) and append it."""
        im = self._image(image)
        index = im.tile_index(row, col, plane)
        self._append(im.index, index, im.encode_tile(numpy.asarray(array)))

    def write_raw_tile(self, row: int, col: int, data: bytes, *, image: int = 0, plane: int = 0) -> None:
        """Append pre-encoded bytes as the tile."""
        im = self._image(image)
        self._append(im.index, im.tile_index(row, col, plane), bytes(data))

    def _append(self, image: int, index: int, payload: bytes) -> None:
        if self._fd < 0:
            raise TiffUsageError("the SharedAppender is closed")
        record = LEADER.pack(MAGIC_TILE, image, index, len(payload), crc32_parts((payload,))) + payload
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        try:
            written = os.write(self._fd, record)
        except OSError as exc:
            raise SourceError(exc.errno or errno.EIO, f"{self.path}: appending a tile record of {len(record)} bytes: "
                              f"{exc.strerror}") from None
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        if written != len(record):  # torn: the coordinator's scan passes over it
            raise SourceError(errno.ENOSPC, f"{self.path}: short append ({written} of {len(record)} bytes); the "
                              "record is torn and will be skipped")
        self.tiles_written += 1

    def close(self) -> None:
        """Close the descriptor (every record is already in the file)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> SharedAppender:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
