"""The file-handle Protocol: what the reading side needs of the file that owns its IFDs.

:class:`tiffio.TiffFile` is the one implementation. The IFDs, levels, series and metadata readers
annotate against this Protocol instead of importing TiffFile, so that the modules TiffFile is
built from never import it back (no import cycle, ``TYPE_CHECKING`` imports included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..limits import Limits
from ..sources import ByteSource
from .entries import ParseContext

__all__ = ["FileHandle"]


class FileHandle(Protocol):
    """An open TIFF as its IFDs, series and metadata readers see it."""

    #: the positional byte source every read goes through
    source: ByteSource
    #: the parse context (layout, limits, strictness, metadata page cache) of every IFD
    context: ParseContext

    @property
    def name(self) -> str: ...

    @property
    def byteorder(self) -> str: ...

    @property
    def strict(self) -> bool: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def closed(self) -> bool: ...

    @property
    def ifds(self) -> Sequence[Any]:
        """The main IFD chain (items are :class:`tiffio.IFD`)."""
        ...

    @property
    def series(self) -> Sequence[Any]:
        """The series of the file (items are :class:`tiffio.Series`)."""
        ...

    def close(self) -> None: ...

    def require_open(self) -> None:
        """Raise :class:`tiffio.TiffUsageError` if the file is closed."""
        ...
