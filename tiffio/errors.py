"""The exception hierarchy of tiffio (ARCHITECTURE.md, "Errors").

Every exception tiffio raises is a :class:`TiffError`.  Leaf classes also inherit
the matching builtin (``ValueError``, ``NotImplementedError``, ``OSError``,
``IndexError``, ``TypeError``) so that generic handlers keep working.

Classified by who must act:

* :class:`TiffFormatError` - the file breaks the spec (the producer of the file).
* :class:`UnsupportedFeatureError` - valid, but tiffio does not handle it (us).
* :class:`LimitExceededError` - a configured bound was hit (the operator; raise the limit).
* :class:`TiffUsageError` - the caller misused the API (the caller).
* :class:`SourceError` - reading or writing the bytes failed (the environment).

A :class:`SourceError` made from an ``errno`` is also the builtin of that errno's family, as
``OSError(errno.ENOENT, ...)`` is a ``FileNotFoundError``: ``SourceError(errno.ENOENT, message,
path)`` returns a :class:`SourceNotFoundError`, so ``except FileNotFoundError`` and ``except
tiffio.TiffError`` both catch a missing file, and ``.errno`` and ``.filename`` are set.
``str()`` of a SourceError is its message alone (no ``[Errno 2]`` prefix, never ``: None``).
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "TiffError",
    "TiffFormatError",
    "NotATiffError",
    "TruncatedError",
    "CorruptSegmentError",
    "UnsupportedFeatureError",
    "LimitExceededError",
    "TiffUsageError",
    "TiffIndexError",
    "TiffValueError",
    "TiffTypeError",
    "SourceError",
    "SourceNotFoundError",
    "SourcePermissionError",
    "SourceIsADirectoryError",
    "SourceTimeoutError",
    "NotARegularFileError",
    "TiffFormatWarning",
    "describe_os_error",
]


class TiffError(Exception):
    """Base class of every exception raised by tiffio."""


class TiffFormatError(TiffError, ValueError):
    """The file violates the TIFF specification or is internally inconsistent."""


class NotATiffError(TiffFormatError):
    """The source does not start with a TIFF or BigTIFF header."""


class TruncatedError(TiffFormatError):
    """A structure or segment extends past the end of the source."""


class CorruptSegmentError(TiffFormatError):
    """A tile or strip could not be decoded into its declared shape."""


class UnsupportedFeatureError(TiffError, NotImplementedError):
    """The file is valid, but uses a feature tiffio does not implement."""


class LimitExceededError(TiffError):
    """A configured safety bound (see :class:`tiffio.Limits`) was exceeded."""


class TiffUsageError(TiffError):
    """The API was called incorrectly."""


class TiffIndexError(TiffUsageError, IndexError):
    """An index (segment, IFD, tile coordinate) is out of range."""


class TiffValueError(TiffUsageError, ValueError):
    """An argument has an invalid value."""


class TiffTypeError(TiffUsageError, TypeError):
    """An argument has an invalid type."""


class SourceError(TiffError, OSError):
    """Reading from or writing to the underlying file or buffer failed.

    Built like ``OSError``: ``SourceError(message)`` or ``SourceError(errno, message[, filename])``.
    With an errno of a family below, the instance is that family's subclass (as ``OSError``
    itself picks ``FileNotFoundError`` for ``ENOENT``)."""

    def __new__(cls, *args: object, **kwargs: object) -> SourceError:
        if cls is SourceError and len(args) >= 2 and isinstance(args[0], int):
            cls = _FAMILIES.get(args[0], cls)
        return super().__new__(cls, *args, **kwargs)

    def __str__(self) -> str:
        # OSError's "[Errno 2] message: 'filename'" repeats what the message already says
        if self.strerror is not None:
            return str(self.strerror)
        return super().__str__()


class SourceNotFoundError(SourceError, FileNotFoundError):
    """The file (or object, or URL) does not exist (``ENOENT``, HTTP 404)."""


class SourcePermissionError(SourceError, PermissionError):
    """The file may not be read (``EACCES``, ``EPERM``, HTTP 401/403)."""


class SourceTimeoutError(SourceError, TimeoutError):
    """A remote read passed its deadline, or its server went silent or too slow
    (:class:`tiffio.sources.Timeout`)."""


class NotARegularFileError(SourceError, TiffTypeError):
    """A local path names a directory, FIFO, device or socket, not a regular file: refused at
    once (reading a FIFO or a device could block forever or never end). Also a
    :class:`TiffTypeError`: the caller passed the wrong kind of source."""


class SourceIsADirectoryError(NotARegularFileError, IsADirectoryError):
    """The path names a directory (``EISDIR``)."""


_FAMILIES: dict[int, type[SourceError]] = {
    _errno.ENOENT: SourceNotFoundError,
    _errno.EACCES: SourcePermissionError,
    _errno.EPERM: SourcePermissionError,
    _errno.EISDIR: SourceIsADirectoryError,
    _errno.ETIMEDOUT: SourceTimeoutError,
}


def describe_os_error(exc: BaseException) -> str:
    """The text of an OSError for a message: its strerror, else its str, else its class name
    (an OSError built without an errno has ``strerror`` None)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text if text and text != "None" else type(exc).__name__


class TiffFormatWarning(UserWarning):
    """A recoverable spec violation, reported in the default lenient mode (``strict=True`` raises instead)."""
