"""Safety bounds for untrusted files (issue: hardened parsing).

Every bound is a plain attribute with a safe default; pass ``Limits(...)`` to
:func:`tiffio.open` to raise one. Hitting a bound raises
:class:`~tiffio.LimitExceededError` naming the attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import LimitExceededError

__all__ = ["Limits", "DEFAULT_LIMITS"]


@dataclass(frozen=True)
class Limits:
    #: IFDs walked in one chain (main chain or one SubIFD chain)
    max_ifds: int = 1_000_000
    #: entries in one IFD
    max_tags_per_ifd: int = 10_000
    #: bytes of one tag value
    max_tag_bytes: int = 1 << 30
    #: total bytes of tag values and IFDs read from one file
    max_metadata_bytes: int = 4 << 30
    #: nesting depth of SubIFDs
    max_subifd_depth: int = 8
    #: decoded bytes of one tile or strip
    max_segment_bytes: int = 2 << 30
    #: bytes of an array returned by asarray / read_region
    max_output_bytes: int = 64 << 30
    #: width, height or depth of an image in pixels
    max_dimension: int = 1 << 31

    def replace(self, **changes: int) -> Limits:
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
