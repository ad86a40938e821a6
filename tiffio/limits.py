"""Safety bounds for untrusted files (hardened parsing).

Every bound is a plain attribute with a safe default; pass ``Limits(...)`` to
:func:`tiffio.open` to raise one. Hitting a bound raises
:class:`~tiffio.LimitExceededError` naming the attribute.

=====================  =========  ===================================================
limit                  default    what it bounds
=====================  =========  ===================================================
``max_ifds``           1,000,000  IFDs walked in one chain (main or SubIFD chain)
``max_tags_per_ifd``   10,000     entries declared by one IFD
``max_tag_bytes``      256 MiB    bytes of one tag value (strile arrays included)
``max_metadata_bytes`` 1 GiB      IFD and tag-value bytes read from one file in total
``max_subifd_depth``   8          nesting of SubIFDs
``max_segment_bytes``  1 GiB      stored and decoded bytes of one tile or strip; codecs
                                  are told to stop at the segment's declared size, and
                                  image-codec headers (JPEG, WebP, PNG, JPEG 2000, JPEG XL, JPEG XR, LERC) are
                                  checked against it before decoding, so a decompression
                                  bomb cannot produce more
``max_output_bytes``   4 GiB      bytes of one array from asarray / read_region
``max_dimension``      2**31      ImageWidth, ImageLength, ImageDepth in pixels
=====================  =========  ===================================================

Bounds that need no setting, because the file itself bounds them: a strip/tile
count must be backed by offset entries in the file (a few missing ones read as
empty in lenient mode); a tag value or segment must lie inside the file; IFD
chains and SubIFD trees stop at cycles.

With the defaults, a hostile file makes tiffio allocate at most about
``max_output_bytes`` + ``max_segment_bytes`` at a time (a single-threaded
``asarray``); ``tests/read/test_corpus_limits.py`` checks every corpus file
stays under 2 GiB of RSS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import LimitExceededError, TiffTypeError, TiffValueError

__all__ = ["Limits", "DEFAULT_LIMITS"]


@dataclass(frozen=True)
class Limits:
    #: IFDs walked in one chain (main chain or one SubIFD chain)
    max_ifds: int = 1_000_000
    #: entries in one IFD
    max_tags_per_ifd: int = 10_000
    #: bytes of one tag value (a strile array of 32 million 8-byte entries fits)
    max_tag_bytes: int = 256 << 20
    #: total bytes of tag values and IFDs read from one file
    max_metadata_bytes: int = 1 << 30
    #: nesting depth of SubIFDs
    max_subifd_depth: int = 8
    #: decoded bytes of one tile or strip (also the most a codec may produce for it)
    max_segment_bytes: int = 1 << 30
    #: bytes of an array returned by asarray / read_region
    max_output_bytes: int = 4 << 30
    #: width, height or depth of an image in pixels
    max_dimension: int = 1 << 31

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise TiffTypeError(f"Limits.{name} must be an int, not {value!r}")
            if value < 0:
                raise TiffValueError(f"Limits.{name} must not be negative, not {value}")

    def replace(self, **changes: int) -> Limits:
        """A copy with the given bounds changed, e.g. ``limits.replace(max_output_bytes=16 << 30)``.

        Raises TypeError for a name that is not a limit (as dataclasses.replace does)."""
        return replace(self, **changes)

    def check(self, name: str, value: int, where: str) -> None:
        """Raise LimitExceededError if ``value`` exceeds the bound ``name``."""
        bound = getattr(self, name)
        if value > bound:
            raise LimitExceededError(
                f"{where}: {value} exceeds Limits.{name}={bound}; "
                f"pass limits=tiffio.Limits({name}=...) to tiffio.open to allow it"
            )


DEFAULT_LIMITS = Limits()
