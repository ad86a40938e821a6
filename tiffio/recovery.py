"""Crash recovery for files written by :class:`tiffio.TiffWriter` (DESIGN.md, "The writer's file layout").

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
            progress: Callable[[int, int], None] | None = None) -> RecoveryReport:
    """Recover a file a tiffio writer left unfinished; returns what was found.

    The file is rewritten in place (torn bytes at the end are truncated, a checkpoint is
    appended). ``fsync=False`` skips the fsyncs of the new checkpoint (faster, not crash-safe).

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
                        _progress=progress)
    report = writer.report
    assert report is not None
    try:
        if writer.images:
            writer.checkpoint()
    finally:
        writer._closed = True
        writer._sink.close()
    return report
