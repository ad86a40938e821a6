"""The exception hierarchy of tiffio (see DESIGN.md, "Errors").

Every exception tiffio raises is a :class:`TiffError`.  Leaf classes also inherit
the matching builtin (``ValueError``, ``NotImplementedError``, ``OSError``,
``IndexError``, ``TypeError``) so that generic handlers keep working.

Classified by who must act:

* :class:`TiffFormatError` - the file breaks the spec (the producer of the file).
* :class:`UnsupportedFeatureError` - valid, but tiffio does not handle it (us).
* :class:`LimitExceededError` - a configured bound was hit (the operator; raise the limit).
* :class:`TiffUsageError` - the caller misused the API (the caller).
* :class:`SourceError` - reading or writing the bytes failed (the environment).
"""

from __future__ import annotations

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
    "TiffFormatWarning",
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
    """Reading from or writing to the underlying file or buffer failed."""


class TiffFormatWarning(UserWarning):
    """A recoverable spec violation, reported in the default lenient mode (``strict=True`` raises instead)."""
