"""The IFD class and the lazily parsed IFD chains (the main chain and SubIFD chains).

IFD = fields.IFDTags (tags, geometry, spec) + striles.IFDStriles (strile arrays,
segment locations) + segments.IFDSegments (read_segment) + regions.IFDRegions (read_region, asarray, iter_regions),
plus memmap and SubIFDs, which are here.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from typing import overload

import numpy

from ..._cached import cached_property
from ...codecs import compression_name
from ...errors import LimitExceededError, TiffFormatError, TiffIndexError, TiffTypeError, TiffUsageError
from ...metadata import GeoTiff, IccProfile, Resolution
from ...sources import FileSource
from ..entries import IFDEntries, walk_chain
from ..handle import FileHandle
from ..metadata import read_exif, read_geotiff, read_icc_profile, read_resolution, read_xmp
from .regions import IFDRegions

__all__ = ["IFD", "IFDSequence"]


class IFDSequence(Sequence["IFD"]):
    """The IFDs of one chain, parsed as they are reached."""

    def __init__(self, tiff: FileHandle, first_offset: int, path: str, depth: int = 0) -> None:
        self._tiff = tiff
        self._path = path
        self._depth = depth
        self._items: list[IFD] = []
        self._walker: Iterator[IFDEntries] | None = walk_chain(
            tiff.context, first_offset, lambda i: f"{path} {i}")
        self._lock = threading.RLock()

    def _advance(self) -> bool:
        if self._walker is None:
            return False
        try:
            entries = next(self._walker)
        except StopIteration:
            self._walker = None
            return False
        except TiffFormatError as exc:
            # a broken IFD after the first ends the chain in lenient mode
            if self._tiff.strict or not self._items:
                self._walker = None
                raise
            self._walker = None
            self._tiff.context.problem(f"{exc}; the chain ends here")
            return False
        self._items.append(IFD(self._tiff, entries, len(self._items), f"{self._path} {len(self._items)}", self._depth))
        return True

    def release(self) -> None:
        """Drop the per-thread decode buffers of every IFD parsed so far (TiffFile.close)."""
        with self._lock:
            items = list(self._items)
        for ifd in items:
            ifd.release()

    @overload
    def __getitem__(self, index: int) -> IFD: ...

    @overload
    def __getitem__(self, index: slice) -> list[IFD]: ...

    def __getitem__(self, index: int | slice) -> IFD | list[IFD]:
        self._tiff.require_open()
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not isinstance(index, (int, numpy.integer)) or isinstance(index, bool):
            raise TiffTypeError(f"IFD index must be an int or a slice, not {index!r}")
        if index < 0:
            index += len(self)
            if index < 0:
                raise TiffIndexError("IFD index out of range")
        with self._lock:
            while len(self._items) <= index:
                if not self._advance():
                    raise TiffIndexError(f"IFD index {index} out of range: the chain has {len(self._items)} IFDs")
            return self._items[index]

    def __len__(self) -> int:
        with self._lock:
            while self._advance():
                pass
            return len(self._items)

    def __iter__(self) -> Iterator[IFD]:
        i = 0
        while True:
            with self._lock:
                if i >= len(self._items) and not self._advance():
                    return
                item = self._items[i]
            yield item
            i += 1


class IFD(IFDRegions):
    """One image file directory: its tags and geometry (fields.IFDTags), where its segments
    are (striles.IFDStriles), its segments (segments.IFDSegments), regions (regions.IFDRegions), memmap and SubIFDs.

    Geometry and decoding parameters are derived from the tags when first used.
    """

    def release(self) -> None:
        """Drop this IFD's (and its parsed SubIFDs') per-thread decode buffers."""
        self._local = threading.local()
        for sub in self.__dict__.get("subifds", ()):
            sub.release()

    def memmap(self) -> numpy.memmap:
        """A read-only numpy.memmap of the image, shaped :attr:`shape`.

        Possible only for uncompressed 8/16/32/64-bit samples without predictor or
        FillOrder 2, stored contiguously in a local file (as tifffile's ``memmap``);
        anything else raises TiffUsageError saying why.
        """
        self._tiff.require_open()
        reasons = []
        source = self._tiff.source
        if not isinstance(source, FileSource):
            reasons.append("the TIFF was not opened from a local file path")
        if self.compression != 1:
            reasons.append(f"the image is compressed ({compression_name(self.compression)})")
        if self.bits_per_sample not in (8, 16, 32, 64) or self.sample_format == 5:
            reasons.append(f"{self.bits_per_sample}-bit samples of format {self.sample_format} are not a numpy dtype")
        if self.predictor != 1 or self.fill_order != 1:
            reasons.append("a predictor or FillOrder 2 transforms the stored samples")
        if self.subsampling not in (None, (1, 1)):
            reasons.append("YCbCr samples are subsampled")
        if self.is_tiled and (self.tile_shape[1] != self.width or self.length % self.tile_shape[0]):  # type: ignore[index]
            reasons.append("tiles narrower than the image are not stored in row order")
        if not reasons:
            offsets = self.segment_offsets.to_numpy()
            counts = self.segment_byte_counts
            nbytes = math.prod(self.shaped) * self.dtype.itemsize
            if counts is None or len(offsets) != self.segment_count:
                reasons.append("the strip or tile arrays are incomplete")
            else:
                counts_arr = counts.to_numpy()
                if (offsets[1:] != offsets[:-1] + counts_arr[:-1]).any() or counts_arr.sum() < nbytes \
                        or offsets[0] == 0 or offsets[0] + nbytes > source.size:
                    reasons.append("the segments are not stored contiguously in the file")
        if reasons:
            raise TiffUsageError(f"{self.where}: cannot memory-map: " + "; ".join(reasons))
        dtype = self.dtype.newbyteorder(">" if self._tiff.byteorder == ">" else "<")
        return numpy.memmap(source.name, dtype=dtype, mode="r", offset=int(offsets[0]), shape=self.shape)

    # --- SubIFDs ----------------------------------------------------------------------------
    # --- metadata as parsed values (tiffio.metadata) ---------------------------------------
    @cached_property
    def geotiff(self) -> GeoTiff | None:
        """GeoTIFF / GDAL georeferencing (:class:`tiffio.GeoTiff`: EPSG code, affine transform,
        nodata, GDAL metadata), or None when the IFD has no geo tags."""
        return read_geotiff(self)

    @cached_property
    def resolution(self) -> Resolution | None:
        """X/YResolution and ResolutionUnit (:class:`tiffio.metadata.Resolution`), or None."""
        return read_resolution(self)

    @cached_property
    def icc_profile(self) -> IccProfile | None:
        """The embedded ICC profile (34675) with its header decoded, or None."""
        return read_icc_profile(self)

    @cached_property
    def xmp(self) -> str | None:
        """The XMP packet (700) as text, or None."""
        return read_xmp(self)

    @cached_property
    def exif(self) -> dict:
        """The Exif sub-IFD's tags by name (and the GPS sub-IFD's under 'GPS'); empty if none."""
        return read_exif(self)

    @cached_property
    def subifds(self) -> list[IFD]:
        """The IFDs listed in SubIFDs (330), each followed by its own chain."""
        tag = self.entries.tags.get(330)
        if tag is None:
            return []
        if self._depth + 1 > self.context.limits.max_subifd_depth:
            raise LimitExceededError(f"{self.where}: SubIFDs nested deeper than Limits.max_subifd_depth="
                                     f"{self.context.limits.max_subifd_depth}; pass limits=tiffio.Limits("
                                     "max_subifd_depth=...) to tiffio.open to allow it")
        offsets = self.get_ints(330) or ()
        result: list[IFD] = []
        seen = {self.offset}
        for k, first in enumerate(offsets):
            if first == self.offset:
                self.context.problem(f"{self.where}: SubIFD {k} points back to its parent IFD (a cycle)")
                continue
            if first in seen:
                # writers may list every SubIFD *and* chain them (spec-notes/subifds.md
                # "Chains inside SubIFDs"): an offset already reached is the same IFD
                continue
            chain = IFDSequence(self._tiff, first, f"{self.path} SubIFD {k}:", self._depth + 1)
            for sub in chain:
                if sub.offset in seen:
                    break
                seen.add(sub.offset)
                result.append(sub)
        return result


