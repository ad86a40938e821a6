"""TiffFile: an open TIFF or BigTIFF, its IFD chain and pyramid levels.

Opening parses the header and the first IFD only (lazy by default: ARCHITECTURE.md). Every
other IFD, tag value and strile block is read when first needed. Reads are
positional, so one TiffFile serves many threads. The IFD itself is
built in layers (tiffio/read/ifd/): fields (tags, geometry), segments (segments, fast path
in fastpath), regions (read_region, thread pool), ifd (IFD, chains).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy

from .._cached import cached_property
from ..errors import NotATiffError, TiffFormatError, TiffIndexError, TiffTypeError, TiffUsageError
from ..format.header import HEADER_READ_SIZE, parse_header
from ..limits import DEFAULT_LIMITS, Limits
from ..metadata import ImageJMetadata, OmeMetadata
from ..sources import open_source
from .entries import ParseContext
from .ifd.ifd import IFD, IFDSequence
from .levels import Level, find_associated, find_levels, find_masks
from .metadata import read_imagej_metadata, read_ome_metadata
from .series.detect import find_series
from .series.series import Series

__all__ = ["open", "TiffFile", "IFD"]

_open = open


def open(source: Any, *, strict: bool = False, limits: Limits | None = None, **remote: Any) -> TiffFile:
    """Open a TIFF or BigTIFF from a path, a bytes-like object, a binary file object, a URL
    (``https://...``, ``s3://bucket/key``, ``gs://...``) or a range fetcher.

    By default tiffio reads what libtiff reads: a spec violation that libtiff or tifffile
    recover from (a duplicated tag, a next-IFD pointer cut off by the end of the file, a
    strile array a few entries short...) is reported as a :class:`~tiffio.TiffFormatWarning`
    that says where, and the file is read as libtiff reads it (README "Lenient by default").
    ``strict=True`` raises a :class:`~tiffio.TiffFormatError` instead (for validators).
    ``limits`` bounds what a hostile file can make tiffio do (:class:`~tiffio.Limits`).
    ``remote`` keywords apply to URLs and fetchers (:func:`tiffio.sources.open_url`):
    ``headers=`` (sent to the URL's origin only), ``storage_options=`` (credentials,
    endpoint... for obstore or fsspec), ``store=``, ``backend=``, ``max_connections=``,
    ``max_gap=``, ``cache_blocks=``, and ``timeout=``: a :class:`tiffio.sources.Timeout` or a
    number of seconds for a whole request (default: connect 10 s, 30 s without a byte,
    120 s per request with its retries, at least 1 KiB/s over 30 s); a request past it raises
    :class:`~tiffio.SourceTimeoutError`.

    A local path must name a regular file: a directory, FIFO, device or socket raises
    :class:`~tiffio.NotARegularFileError` at once; a missing file raises
    :class:`~tiffio.SourceNotFoundError` (also a ``FileNotFoundError``).
    """
    return TiffFile(source, strict=strict, limits=limits, **remote)


def _looks_like(head: bytes) -> str:
    """A hint for a source that is not a TIFF but text a server sends instead (an error page)."""
    text = bytes(head[:64]).lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<error", b"{")):
        return " (it starts like an HTML, XML or JSON document: an error or login page?)"
    return ""


class TiffFile:
    """An open TIFF or BigTIFF. Use as a context manager or call :meth:`close`.

    A TiffFile collected without :meth:`close` closes its file then, with a ``ResourceWarning``
    (as ``io.FileIO`` does), so ``tiffio.open(path).read_region(...)`` in a loop does not run out
    of descriptors; ``with tiffio.open(...)`` closes it at once.
    """

    #: warn (ResourceWarning) when collected unclosed; tiffio's shared open-file cache, whose files
    #: close when their last user lets go of them, turns it off
    _warn_unclosed = True

    def __init__(self, source: Any, *, strict: bool = False, limits: Limits | None = None, **remote: Any) -> None:
        self.source, self._owns_source = open_source(source, **remote)
        try:
            # one request for the header and, in most files, the first IFD right after it
            head = self.source.read_range(0, ParseContext.PAGE_SIZE)
            try:
                self.layout, first_offset = parse_header(head[:HEADER_READ_SIZE])
            except NotATiffError as exc:
                raise NotATiffError(f"{self.source.name}: {exc}{_looks_like(head)}") from None
            if limits is not None and not isinstance(limits, Limits):
                raise TiffTypeError(f"limits must be a tiffio.Limits, not {type(limits).__name__}")
            self.context = ParseContext(self.source, self.layout, limits or DEFAULT_LIMITS, strict)
            self.context.seed_page(0, head)
            if first_offset == 0:
                raise TiffFormatError(f"{self.source.name}: the header's first-IFD offset is 0 (no image)")
            self.ifds = IFDSequence(self, first_offset, path="IFD")
            self.ifds[0]  # parse the first IFD now: a file that cannot give one is not a TIFF we can read
        except BaseException:
            self.close()
            raise

    # --- basic properties ---------------------------------------------------------------
    @property
    def byteorder(self) -> str:
        """The file's byte order: ``'<'`` (II, little-endian) or ``'>'`` (MM, big-endian)."""
        return self.layout.byteorder

    @property
    def bigtiff(self) -> bool:
        """True for BigTIFF (version 43, 64-bit offsets), False for classic TIFF."""
        return self.layout.bigtiff

    @property
    def strict(self) -> bool:
        """Whether recoverable spec violations raise (True) or warn and read on (False)."""
        return self.context.strict

    @property
    def limits(self) -> Limits:
        """The :class:`~tiffio.Limits` this file is read under."""
        return self.context.limits

    @property
    def name(self) -> str:
        """The path, URL or description of the source the file was opened from."""
        return self.source.name

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run (or the source was closed)."""
        return self.source.closed

    # --- series and file-level metadata ------------------------------------------------
    @cached_property
    def series(self) -> list[Series]:
        """The arrays the file holds (:class:`tiffio.Series`: shape, axes, dtype, levels),
        found as tifffile finds them: shaped JSON, OME-XML, ImageJ, uniform pages, groups
        of pages of equal shape and storage. Contiguous stacks are not walked."""
        self.require_open()
        return find_series(self)

    @cached_property
    def imagej_metadata(self) -> ImageJMetadata | None:
        """The ImageJ description and IJMetadata of the first IFD, or None."""
        self.require_open()
        return read_imagej_metadata(self)

    @cached_property
    def ome_metadata(self) -> OmeMetadata | None:
        """The OME-XML of the first IFD, parsed (:class:`tiffio.OmeMetadata`), or None."""
        self.require_open()
        return read_ome_metadata(self)

    # --- pyramid levels -----------------------------------------------------------------
    @cached_property
    def levels(self) -> list[Level]:
        """Resolution levels of the main image (:class:`tiffio.read.levels.Level`: index, ifd,
        shape, downsample), level 0 first, whatever convention stored them."""
        self.require_open()
        return find_levels(self)

    @cached_property
    def masks(self) -> list[IFD]:
        """Transparency-mask IFDs (NewSubfileType bit 2), kept apart from the levels."""
        return find_masks(self)

    @cached_property
    def associated_images(self) -> dict[str, IFD]:
        """Named images that are not levels (Aperio SVS 'thumbnail', 'label', 'macro')."""
        return find_associated(self)

    def read_region(self, y: int, x: int, height: int, width: int, *, level: int = 0, **kwargs: Any) -> numpy.ndarray:
        """:meth:`IFD.read_region` on pyramid level ``level`` (coordinates in that level's pixels)."""
        levels = self.levels
        if not isinstance(level, (int, numpy.integer)) or isinstance(level, bool):
            raise TiffTypeError(f"level must be an int, not {level!r}")
        if not -len(levels) <= level < len(levels):
            raise TiffIndexError(f"level {level} out of range: the image has {len(levels)} levels")
        return levels[level].ifd.read_region(y, x, height, width, **kwargs)

    def close(self) -> None:
        """Release the file (if tiffio opened it). Reading afterwards raises TiffUsageError."""
        src = getattr(self, "source", None)
        if src is not None:
            if self._owns_source:  # a ByteSource the caller passed in stays open
                src.close()
            self._closed_flag = True
        ifds = self.__dict__.get("ifds")
        if ifds is not None:
            ifds.release()
        for other in self.__dict__.pop("_sibling_files", ()):  # files of a multi-file OME series
            other.close()

    def require_open(self) -> None:
        """Raise :class:`tiffio.TiffUsageError` if the file is closed (every read checks this first)."""
        if getattr(self, "_closed_flag", False):
            raise TiffUsageError(f"{self.name}: the TiffFile is closed")

    def __del__(self) -> None:
        source = self.__dict__.get("source")
        if source is None or getattr(self, "_closed_flag", False) or not self.__dict__.get("_owns_source"):
            return
        try:
            if self._warn_unclosed and not source.closed:
                warnings.warn(f"unclosed TiffFile {source.name!r}: close it or use 'with tiffio.open(...)'",
                              ResourceWarning, stacklevel=2, source=self)
            self.close()
        except Exception:  # pragma: no cover - at interpreter exit modules may be half torn down
            pass

    def __enter__(self) -> TiffFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "BigTIFF" if self.bigtiff else "TIFF"
        order = "little-endian" if self.byteorder == "<" else "big-endian"
        return f"<tiffio.TiffFile {self.name!r} {kind} {order}>"
