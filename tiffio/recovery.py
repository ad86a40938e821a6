"""Crash recovery for files written by :class:`tiffio.TiffWriter` (the file layout in :mod:`tiffio.writer`).

:func:`recover` reopens a file in ``mode='resume'``: it reads the last checkpoint (the
header's first IFD and the state record just before it), scans the tile leaders written
after it, verifies their CRC-32, drops a torn last record, and writes a new checkpoint
that includes every complete tile. The file is then a valid TIFF again and can be
finished with ``TiffWriter(path, mode='resume')``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .writer import RecoveryReport, TiffWriter

__all__ = ["recover", "RecoveryReport"]


def recover(path: str | os.PathLike, *, fsync: bool = True,
            progress: Callable[[int, int], None] | None = None, lock: bool = True) -> RecoveryReport:
    """Recover a file a tiffio writer left unfinished; returns what was found.

    The file is rewritten in place (torn bytes at the end are truncated, a checkpoint is
    appended) only when that changes something: recovering a complete file (or recovering twice)
    writes nothing. ``fsync=False`` skips the fsyncs of the new checkpoint (faster, not crash-safe).

    Only a working file of tiffio's writer is repaired: its first record (the definition of its
    first image) must check out before a byte is written; any other file, and a folder, device or
    FIFO, raises TiffFormatError (TiffTypeError) and is left byte for byte as it was. While a writer
    has the file open, TiffUsageError (one writer per file; ``lock`` as for :class:`TiffWriter`).
    When the newest checkpoint is cut off (a truncated copy) or damaged, the images are rebuilt from
    the tile records alone (``report.ignored_checkpoint``).

    ``progress(done, total)``, if given, follows the long part of the work, the scan of the
    records written after the last checkpoint: ``done`` bytes of them scanned out of ``total``
    (the file's size minus the end of the checkpoint). It is called first with ``done == 0``,
    then at most about once per MiB scanned with ``done`` increasing, and last with
    ``done == total`` when the scan is over (before the new checkpoint is written). An exception
    it raises propagates out of ``recover`` and leaves the file as it was: calling ``recover``
    again recovers everything. Without it (None) nothing else changes.

    Raises TiffFormatError if the file was not written by tiffio, SourceError if it cannot be
    read or written.
    """
    writer = TiffWriter(path, mode="resume", fsync=fsync, checkpoint_every=None, checkpoint_seconds=None,
                        lock=lock, _progress=progress)
    report = writer.report
    assert report is not None
    # a checkpoint is written only when the last one does not hold everything; pyramids are not
    # completed and missing tiles are not an error: this only repairs
    writer.close(_enforce=False)
    return report
