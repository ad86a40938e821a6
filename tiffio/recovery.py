"""Crash recovery for files written by :class:`tiffio.TiffWriter` (DESIGN.md, "The writer's file layout").

:func:`recover` reopens a file in ``mode='resume'``: it reads the last checkpoint (the
header's first IFD and the state record just before it), scans the tile leaders written
after it, verifies their CRC-32, drops a torn last record, and writes a new checkpoint
that includes every complete tile. The file is then a valid TIFF again and can be
finished with ``TiffWriter(path, mode='resume')``.
"""

from __future__ import annotations

import os

from .writer import RecoveryReport, TiffWriter

__all__ = ["recover", "RecoveryReport"]


def recover(path: str | os.PathLike, *, fsync: bool = True) -> RecoveryReport:
    """Recover a file a tiffio writer left unfinished; returns what was found.

    The file is rewritten in place (torn bytes at the end are truncated, a checkpoint is
    appended). Raises TiffFormatError if the file was not written by tiffio.
    """
    writer = TiffWriter(path, mode="resume", fsync=fsync, checkpoint_every=None, checkpoint_seconds=None)
    report = writer.report
    assert report is not None
    try:
        if writer.images:
            writer.checkpoint()
    finally:
        writer._closed = True
        writer._sink.close()
    return report
