"""Rewrite tiled images into a final layout by copying their stored tile bytes.

Two layouts (no tile is decoded or re-encoded):

``"cog"``
    GDAL's Cloud-Optimized GeoTIFF layout (its COG driver documentation, "File format
    details"): header; the ghost area with GDAL's keys (:func:`tiffio.read.cogcheck.ghost_area`);
    IFD0 and its tag values, then the overview IFDs largest first; then every TileOffsets /
    TileByteCounts array; then the tiles, smallest overview first and full resolution last,
    each level in tile-index order, every tile preceded by its byte count (4 bytes,
    little-endian) and followed by a repeat of its last 4 bytes. Masks: their IFDs after the
    image's (IFD0's mask right after IFD0), each mask tile right after its image tile.
``"plain"``
    Header, IFDs and strile arrays first, then the tiles level by level (largest first)
    in tile-index order, nothing between them.

Classic TIFF unless the file passes 4 GiB (then BigTIFF; ``bigtiff=`` forces either).
The byte order of the sources is kept (stored tiles depend on it). The output is written to
a temporary file created exclusively under an unpredictable name next to the destination,
fsynced and renamed (tiffio.writer.files), so that the destination is either as it was or
complete, and a planted file or symlink cannot redirect the write.

:func:`relayout` takes the levels of any tiled TIFF; :func:`write_images` is the engine,
shared with :func:`tiffio.merge`, for images whose tiles live in several files.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy

from ..errors import SourceError, TiffFormatError, TiffTypeError, TiffValueError, UnsupportedFeatureError
from ..format.cog import ghost_area
from ..format.header import pack_header
from ..format.layout import FIELD_TYPE_SIZE, Layout
from .files import create_temporary, discard, publish
from .ifdpack import Entry, ifd_size, pack_ifd
from .tilecopy import Progress, copy_tiles, pwrite_all

__all__ = ["OutImage", "RelayoutReport", "relayout", "write_images", "tags_of", "LAYOUTS"]

LAYOUTS = ("cog", "plain")
#: the largest classic TIFF file
CLASSIC_LIMIT = 2**32 - 1

#: tags relayout rebuilds or cannot carry: strile arrays, SubIFDs (levels move to the main
#: chain), free-space lists, NewSubfileType (set per level)
_REBUILT = frozenset({254, 273, 279, 324, 325, 330, 288, 289})
#: tags whose value is an offset into the source file (private IFDs): not copied
_POINTERS = {34665: "ExifIFD", 34853: "GPSIFD", 40965: "InteroperabilityIFD", 400: "GlobalParametersIFD"}
#: struct codes of the 64-bit field types and of the classic TIFF types that store them
_NARROW = {16: ("Q", "I"), 17: ("q", "i"), 18: ("Q", "I")}



@dataclass
class OutImage:
    """One IFD of the output: its tags (without strile arrays and NewSubfileType) and, for
    every tile in TileOffsets order, where its bytes are: ``source`` (an index into the
    list of file descriptors), ``offset`` and ``count`` (0 and 0: a sparse tile)."""

    tags: list[Entry]
    new_subfile_type: int
    source: numpy.ndarray   # int32, one per tile
    offset: numpy.ndarray   # int64
    count: numpy.ndarray    # int64
    mask_of: int | None = None   # a mask (NewSubfileType 4): the index of its image in the list


@dataclass
class RelayoutReport:
    """What :func:`relayout` / :func:`tiffio.merge` wrote."""

    path: str
    layout: str
    bigtiff: bool = False
    levels: int = 0
    tiles: int = 0
    sparse_tiles: int = 0
    data_bytes: int = 0          # tile bytes copied
    file_size: int = 0
    dropped_tags: list[str] = field(default_factory=list)
    duplicates: list[tuple[int, int, list[str]]] = field(default_factory=list)  # (image, tile, shards)
    recovered_shards: list[str] = field(default_factory=list)   # merge: shards recovered after a crash
    empty_shards: list[str] = field(default_factory=list)       # merge: shards that held no image

    def __str__(self) -> str:
        dup = f", {len(self.duplicates)} duplicate tiles resolved" if self.duplicates else ""
        return (f"{self.path}: {self.layout} layout, {'BigTIFF' if self.bigtiff else 'classic TIFF'}, "
                f"{self.levels} levels, {self.tiles} tiles ({self.sparse_tiles} sparse), "
                f"{self.data_bytes} tile bytes, {self.file_size} bytes{dup}")


# --- reading the source -----------------------------------------------------------------------

def tags_of(ifd: Any) -> tuple[list[Entry], list[str]]:
    """The tags of a reader IFD to carry into a new file, and the names of those dropped."""
    tags: list[Entry] = []
    dropped: list[str] = []
    for code, tag in ifd.tags.items():
        if code in _REBUILT:
            continue
        if code in _POINTERS:
            dropped.append(f"{ifd.where}: {_POINTERS[code]} ({code})")
            continue
        if tag.type not in FIELD_TYPE_SIZE:
            dropped.append(f"{ifd.where}: tag {code} of unknown field type {tag.type}")
            continue
        tags.append(Entry(int(code), int(tag.type), int(tag.count), bytes(tag.raw_bytes())))
    return tags, dropped


def _image_from_ifd(ifd: Any, new_subfile_type: int, source: int) -> tuple[OutImage, list[str]]:
    if not ifd.is_tiled:
        raise UnsupportedFeatureError(f"{ifd.where}: relayout copies tiled images only; this one is stored in strips")
    if ifd.depth != 1:
        raise UnsupportedFeatureError(f"{ifd.where}: volumes (ImageDepth {ifd.depth}) are not relaid out")
    offsets = ifd.segment_offsets.to_numpy().astype(numpy.int64)
    counts_arr = ifd.segment_byte_counts
    if counts_arr is None:
        raise TiffFormatError(f"{ifd.where}: TileByteCounts is missing")
    counts = counts_arr.to_numpy().astype(numpy.int64)
    n = ifd.segment_count
    if offsets.size != n or counts.size != n:
        raise TiffFormatError(f"{ifd.where}: {offsets.size} tile offsets and {counts.size} byte counts, "
                              f"expected {n}")
    sparse = (offsets == 0) | (counts == 0)
    offsets[sparse] = 0
    counts[sparse] = 0
    tags, dropped = tags_of(ifd)
    return OutImage(tags, new_subfile_type, numpy.full(n, source, numpy.int32), offsets, counts), dropped


def images_of(tif: Any) -> tuple[list[OutImage], list[str]]:
    """The levels of a TiffFile as output images, in GDAL's COG order: level 0, its mask, the
    overviews (NewSubfileType 1) largest first, then their masks (NewSubfileType 5)."""
    levels = tif.levels
    masks = list(tif.masks)
    images: list[OutImage] = []
    dropped: list[str] = []
    level_ids = {id(level.ifd) for level in levels} | {id(m) for m in masks}
    for ifd in tif.ifds:
        if id(ifd) not in level_ids:
            dropped.append(f"{ifd.where}: not a level of the main image")
    level_masks: list[Any] = []
    for level in levels:
        match = [m for m in masks if m.width == level.ifd.width and m.length == level.ifd.length]
        level_masks.append(match[0] if match else None)
        if match:
            masks.remove(match[0])
    if masks:
        raise UnsupportedFeatureError(f"{masks[0].where}: a mask of {masks[0].width} x {masks[0].length} pixels "
                                      "matches no level; relayout copies masks of the levels only")
    if any(m is not None for m in level_masks) and level_masks[0] is None:
        raise UnsupportedFeatureError(f"{tif.name}: overviews have masks but the main image has none")
    for level in levels:
        nst = (level.ifd.new_subfile_type & ~5) if level.index == 0 else 1
        image, lost = _image_from_ifd(level.ifd, nst, 0)
        images.append(image)
        dropped += lost
    # masks: IFD0's right after it, the overviews' after all overviews (GDAL's order)
    order = [images[0]]
    mask_images: list[OutImage] = []
    for k, mask in enumerate(level_masks):
        if mask is None:
            continue
        image, lost = _image_from_ifd(mask, 4 if k == 0 else 5, 0)
        if len(image.count) != len(images[k].count):
            raise UnsupportedFeatureError(f"{mask.where}: the mask's tiles do not match its image's tiles")
        dropped += lost
        mask_images.append(image)
        image.mask_of = k
    if mask_images and level_masks[0] is not None:
        order.append(mask_images.pop(0))
    order += images[1:] + mask_images
    index = {id(im): i for i, im in enumerate(order)}
    for im in order:
        if im.mask_of is not None:
            im.mask_of = index[id(images[im.mask_of])]
    return order, dropped


# --- planning ---------------------------------------------------------------------------------

def _stored_tag(tag: Entry, layout: Layout) -> Entry | None:
    """The tag as ``layout`` stores it (64-bit types narrowed in classic TIFF), or None when a value
    does not fit."""
    new_type = layout.stored_field_type(tag.type)
    if new_type == tag.type:
        return tag
    src, dst = _NARROW[tag.type]
    values = struct.unpack(f"{layout.byteorder}{tag.count}{src}", tag.data[: 8 * tag.count])
    try:
        data = struct.pack(f"{layout.byteorder}{tag.count}{dst}", *values)
    except struct.error:
        return None
    return Entry(tag.code, new_type, tag.count, data)


def _stored_images(layout: Layout, images: Sequence[OutImage]) -> list[OutImage] | None:
    """The images with their tags as ``layout`` stores them, or None when a value does not fit."""
    out = []
    for image in images:
        tags = [_stored_tag(t, layout) for t in image.tags]
        if any(t is None for t in tags):
            return None
        out.append(OutImage([t for t in tags if t is not None], image.new_subfile_type, image.source,
                            image.offset, image.count, image.mask_of))
    return out


def _has_masks(images: Sequence[OutImage]) -> bool:
    return any(im.mask_of is not None for im in images)


#: the strile arrays: written after all IFDs, not with their IFD's values
_STRILE_CODES = (324, 325)


def _entries(layout: Layout, image: OutImage, offsets: numpy.ndarray | None = None) -> list[Entry]:
    """The IFD entries of ``image``: its tags, NewSubfileType, and TileOffsets (``offsets``; zeros
    when not given, to plan) and TileByteCounts."""
    entries = list(image.tags)
    if image.new_subfile_type:
        entries.append(Entry(254, 4, 1, struct.pack(layout.byteorder + "I", image.new_subfile_type)))
    dtype = layout.offset_dtype
    ftype = int(layout.offset_field_type)
    n = len(image.offset)
    data = numpy.zeros(n, dtype).tobytes() if offsets is None else offsets.astype(dtype).tobytes()
    entries.append(Entry(324, ftype, n, data))
    entries.append(Entry(325, ftype, n, image.count.astype(dtype).tobytes()))
    return entries


def _plan(layout: Layout, images: Sequence[OutImage], kind: str) -> tuple[list[int], list[int], int]:
    """Offsets of everything but the tile data -> (IFD offsets, strile array offsets
    [offs0, counts0, offs1, ...] (-1: inline), start of the tile data)."""
    pos = layout.header_size
    if kind == "cog":
        pos += len(ghost_area(_has_masks(images)))
    pos += pos & 1
    ifds: list[int] = []
    for image in images:
        ifds.append(pos)
        pos += ifd_size(layout, _entries(layout, image), _STRILE_CODES)
    arrays: list[int] = []
    for image in images:
        nbytes = len(image.offset) * layout.offset_size
        for _ in range(2):
            if nbytes <= layout.inline_size:
                arrays.append(-1)
            else:
                arrays.append(pos)
                pos += nbytes + (nbytes & 1)
    return ifds, arrays, pos


def _tile_groups(images: Sequence[OutImage], kind: str) -> list[list[int]]:
    """Groups of image indices in the order their tile data is written; the images of a group
    (an image and its mask) are interleaved tile by tile."""
    if kind != "cog":
        return [[k] for k in range(len(images))]
    groups = []
    for k in reversed(range(len(images))):
        if images[k].mask_of is None:
            groups.append([k] + [m for m in range(len(images)) if images[m].mask_of == k])
    return groups


def _data_offsets(images: Sequence[OutImage], kind: str, data_start: int) -> tuple[list[numpy.ndarray], int]:
    """The output offset of every tile (0 for sparse ones) and the file size."""
    pad = 4 if kind == "cog" else 0
    result: list[numpy.ndarray] = [numpy.zeros(0, numpy.int64)] * len(images)
    pos = data_start
    for group in _tile_groups(images, kind):
        counts = numpy.stack([images[k].count for k in group])        # (images, tiles)
        present = counts > 0
        sizes = numpy.where(present, counts + 2 * pad, 0)
        flat = sizes.reshape(-1, order="F")                          # tile by tile, image by image
        ends = (pos + numpy.cumsum(flat)).reshape(sizes.shape, order="F")
        starts = ends - sizes + pad
        for row, k in enumerate(group):
            result[k] = numpy.where(present[row], starts[row], 0).astype(numpy.int64)
        pos = int(ends.max()) if ends.size else pos
    return result, pos


def _pack_metadata(layout: Layout, images: Sequence[OutImage], kind: str, ifds: list[int], arrays: list[int],
                   data_start: int, tile_offsets: list[numpy.ndarray]) -> bytes:
    """Header, ghost area (COG), IFDs with their values, and the strile arrays: the file up to its tiles."""
    buf = bytearray(data_start)
    head = pack_header(layout, ifds[0])
    buf[: len(head)] = head
    if kind == "cog":
        ghost = ghost_area(_has_masks(images))
        buf[layout.header_size: layout.header_size + len(ghost)] = ghost
    for k, image in enumerate(images):
        entries = _entries(layout, image, tile_offsets[k])
        placed = {code: arrays[2 * k + j] for j, code in enumerate(_STRILE_CODES) if arrays[2 * k + j] >= 0}
        for e in entries:
            if e.code in placed:
                buf[placed[e.code]: placed[e.code] + len(e.data)] = e.data
        nxt = ifds[k + 1] if k + 1 < len(ifds) else 0
        blob = pack_ifd(layout, entries, ifds[k], nxt, placed)
        buf[ifds[k]: ifds[k] + len(blob)] = blob
    return bytes(buf)


# --- writing ----------------------------------------------------------------------------------

def write_images(dst: str | os.PathLike, fds: Sequence[int], images: Sequence[OutImage], *, byteorder: str,
                 layout: str = "cog", bigtiff: bool | None = None, fsync: bool = True,
                 progress: Progress | None = None) -> RelayoutReport:
    """Write ``images`` (IFD0 first, then the reduced levels largest first) to ``dst`` in
    ``layout``, copying tile bytes from ``fds``; atomically (temporary name + rename).
    ``progress(copied, total)`` is called as tile bytes are copied."""
    if layout not in LAYOUTS:
        raise TiffValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    if not images:
        raise TiffValueError("nothing to write: no images")
    if bigtiff not in (None, True, False):
        raise TiffValueError(f"bigtiff must be None, True or False, not {bigtiff!r}")
    dst = _dst_path(dst)
    report = RelayoutReport(path=dst, layout=layout)
    for lay in Layout.choices(byteorder, bigtiff):
        stored = _stored_images(lay, images)
        if stored is None:
            if bigtiff is False:
                raise TiffValueError("bigtiff=False, but a 64-bit tag value does not fit classic TIFF")
            continue
        todo = stored
        ifds, arrays, data_start = _plan(lay, todo, layout)
        tile_offsets, end = _data_offsets(todo, layout, data_start)
        if lay.holds(end, CLASSIC_LIMIT):
            break
        if bigtiff is False:
            raise TiffValueError(f"bigtiff=False, but the file needs {end} bytes, more than classic TIFF allows")
    metadata = _pack_metadata(lay, todo, layout, ifds, arrays, data_start, tile_offsets)
    # a temporary created exclusively in dst's folder (never through a planted file or symlink), then
    # fsync, rename, fsync of the folder: dst is the old file or the complete new one (files.py)
    out, tmp = create_temporary(dst, ".tmp")
    try:
        try:
            os.ftruncate(out, end)
            pwrite_all(out, memoryview(metadata), 0)
            copy_tiles(out, fds, todo, layout == "cog", tile_offsets, progress)
            publish(out, tmp, dst, sync=fsync)
        finally:
            os.close(out)
    except OSError as exc:
        discard(tmp)
        raise SourceError(exc.errno or 5, f"writing {dst!r}: {exc.strerror or exc}") from None
    except BaseException:
        discard(tmp)
        raise
    report.bigtiff = lay.bigtiff
    report.levels = len(todo)
    report.tiles = sum(len(im.count) for im in todo)
    report.sparse_tiles = sum(int((im.count == 0).sum()) for im in todo)
    report.data_bytes = sum(int(im.count.sum()) for im in todo)
    report.file_size = end
    return report


def _dst_path(dst: Any) -> str:
    if isinstance(dst, (str, os.PathLike)):
        path = os.fspath(dst)
        if isinstance(path, str) and path:
            return path
    raise TiffTypeError(f"the destination must be a path (str or os.PathLike), not {dst!r}")


def relayout(src: Any, dst: str | os.PathLike, *, layout: str = "cog", bigtiff: bool | None = None,
             fsync: bool = True, progress: Progress | None = None) -> RelayoutReport:
    """Rewrite the tiled pyramid in ``src`` (a path or an open :class:`tiffio.TiffFile`) to ``dst``
    in ``layout`` (``"cog"`` or ``"plain"``) by copying the stored tiles.

    The levels are found whatever convention stored them (main-chain reduced IFDs, SubIFDs,
    Aperio) and written as IFD0 + reduced IFDs (NewSubfileType 1), with all their tags
    (GeoTIFF keys, JPEGTables, descriptions...). Tags pointing into the source (Exif/GPS IFDs)
    and IFDs that are not levels are not copied (a warning names them). Masks (NewSubfileType 4,
    GDAL's internal masks) are kept: in the COG layout after their images' IFDs and each mask tile
    right after its image tile (``MASK_INTERLEAVED_WITH_IMAGERY=YES``), as GDAL writes them. Sparse
    tiles stay sparse. ``progress(copied, total)``, if given, is called as tile bytes are copied.
    Returns a :class:`RelayoutReport`.
    """
    from ..read.file import TiffFile

    if layout not in LAYOUTS:
        raise TiffValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    dst = _dst_path(dst)
    own = not isinstance(src, TiffFile)
    tif = TiffFile(src) if own else src
    try:
        images, dropped = images_of(tif)
        path = tif.source.name
        if not os.path.isfile(path):
            raise UnsupportedFeatureError(f"{path}: relayout copies tile bytes from a local file; this TiffFile "
                                          "reads from elsewhere (bytes, a file object, a remote source)")
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError as exc:
            raise SourceError(exc.errno or 5, f"cannot open {path!r}: {exc.strerror}") from None
        try:
            report = write_images(dst, [fd], images, byteorder=tif.byteorder, layout=layout, bigtiff=bigtiff,
                                  fsync=fsync, progress=progress)
        finally:
            os.close(fd)
    finally:
        if own:
            tif.close()
    if dropped:
        report.dropped_tags = dropped
        warnings.warn(f"relayout did not copy: {'; '.join(dropped[:5])}" + (" ..." if len(dropped) > 5 else ""),
                      UserWarning, stacklevel=2)
    return report
