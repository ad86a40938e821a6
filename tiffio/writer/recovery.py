"""Recovery: reading a checkpoint's state record back, and rebuilding the images of an unfinished
file (resume): from the newest checkpoint the header points at, then from the records written
after it (tiles, image definitions, blank tiles); a torn last record is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import TiffError, TiffFormatError, UnsupportedFeatureError
from ..format.header import parse_header
from .checkpoint import image_tree
from .image import ImageWriter
from .records import (
    DATA_START,
    FORMAT_VERSION,
    LEADER,
    MAGIC_BLANK,
    MAGIC_IMAGE,
    MAGIC_STATE,
    MAGIC_TILE,
    STATE_FOOTER,
    STATE_FOOTER_MAGIC,
    crc32,
    read_signature,
    scan_records,
)
from .sink import Sink

__all__ = ["RecoveryReport", "ScanProgress", "read_state", "resume", "load_checkpoint_arrays"]


@dataclass
class RecoveryReport:
    """What :func:`tiffio.recover` (and ``mode='resume'``) found in a file."""

    path: str
    checkpoint_offset: int = 0          # first-IFD offset of the last valid checkpoint (0: none)
    images: int = 0
    tiles_in_checkpoint: int = 0
    tiles_recovered: int = 0            # complete tiles found after the last checkpoint
    records_scanned: int = 0
    bytes_dropped: int = 0              # torn or unreadable bytes at the end, removed
    missing_tiles: list[int] = field(default_factory=list)   # per image, after recovery
    pyramid_tiles_decoded: int = 0      # stored tiles decoded to rebuild partial pyramid parents
    ignored_checkpoint: int = 0         # first-IFD offset of a checkpoint that was cut off or damaged
    #                                     (-1: the header itself): everything was rebuilt from the records
    changes: int = 0                    # records that the last checkpoint does not hold yet (0: it is complete)

    def __str__(self) -> str:
        ignored = (f" (the checkpoint at {self.ignored_checkpoint} is cut off or damaged: rebuilt from the "
                   "tile records)") if self.ignored_checkpoint else ""
        return (f"{self.path}: checkpoint at {self.checkpoint_offset or 'none'}{ignored}, {self.images} images, "
                f"{self.tiles_in_checkpoint} tiles in it, {self.tiles_recovered} recovered after it, "
                f"{self.bytes_dropped} torn bytes dropped, missing per image {self.missing_tiles}")


def read_state(sink: Sink, first: int, size: int | None = None) -> dict[str, Any]:
    """The state record just before the first IFD at ``first`` (its JSON, checked)."""
    where = f"{sink.name}: checkpoint at {first}"
    if size is None:
        size = sink.size()
    if first < DATA_START + LEADER.size + STATE_FOOTER.size or first > size:
        raise TiffFormatError(f"{where}: no state record before the first IFD (the file has {size} bytes)")
    length, magic = STATE_FOOTER.unpack(sink.pread(first - STATE_FOOTER.size, STATE_FOOTER.size))
    start = first - STATE_FOOTER.size - length - LEADER.size
    if magic != STATE_FOOTER_MAGIC or start < DATA_START:
        raise TiffFormatError(f"{where}: no state record before the first IFD")
    raw = sink.pread(start, LEADER.size + length)
    lmagic, _, _, n, crc = LEADER.unpack(raw[: LEADER.size])
    text = raw[LEADER.size:]
    if lmagic != MAGIC_STATE or n != length or crc32(text) != crc:
        raise TiffFormatError(f"{where}: the state record is damaged")
    try:
        state: dict[str, Any] = json.loads(text)
    except ValueError:
        raise TiffFormatError(f"{where}: the state record is damaged") from None
    if not isinstance(state, dict):
        raise TiffFormatError(f"{where}: the state record is damaged")
    if state.get("version") != FORMAT_VERSION:
        raise UnsupportedFeatureError(f"{where}: tiffio writer format {state.get('version')} is not supported")
    try:
        if state["byteorder"] not in ("<", ">") or not isinstance(state["images"], list) or \
                len(state["blanks"]) != len(state["images"]) or int(state["metadata_size"]) < 0 or \
                first + int(state["metadata_size"]) > size:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise TiffFormatError(f"{where}: the state record is incomplete or its IFDs pass the end of the file "
                              f"({size} bytes)") from None
    return state


#: ``progress(done, total)``: bytes of the record log scanned so far, and to scan in all
ScanProgress = Callable[[int, int], None]

#: resume reports its scan at most once per this many bytes (and at its start and end)
PROGRESS_STEP = 1 << 20


def resume(sink: Sink, images: list[ImageWriter], make_image: Callable[[dict[str, Any]], ImageWriter],
           set_format: Callable[[str, bool | None], None], shared: bool = False,
           progress: ScanProgress | None = None) -> tuple[RecoveryReport, int]:
    """Rebuild the images of a file tiffio wrote: from its last checkpoint, then from the records after
    it. ``make_image(params)`` creates the next ImageWriter (appended here to ``images``);
    ``set_format(byteorder, bigtiff)`` is called before the first one. Torn bytes at the end are
    truncated. Returns the report and the end of the valid records (where appending goes on).

    Nothing is written before the file is proven to be a working file of tiffio's writer (its first
    record, :func:`~tiffio.writer.records.read_signature`): anything else raises TiffFormatError and is
    left byte for byte as it was. When the newest checkpoint cannot be used (cut off in a truncated
    copy, damaged), the images are rebuilt from the records alone, from the start of the file
    (``report.ignored_checkpoint`` says so): every complete tile record counts, also those written
    after a checkpoint whose header update never happened.

    ``shared=True`` (a file several processes append to, tiffio.writer.shared): the scan passes over
    torn records in the middle of the file, nothing is truncated, and appending goes on at the end.
    ``progress(done, total)``, if given, is called as the records after the checkpoint are scanned:
    bytes scanned and bytes to scan (file size minus where the scan starts); first with 0, then at
    most once per PROGRESS_STEP bytes, last with done == total once the scan is over, before
    anything is truncated (an exception it raises leaves the file as it was)."""
    size = sink.size()
    report = RecoveryReport(path=sink.name)
    read_signature(sink, size)
    scan_from = DATA_START
    try:
        state, first = _newest_checkpoint(sink, size)
        if state is not None:
            set_format(state["byteorder"], state["bigtiff"])
            for params in state["images"]:
                images.append(make_image(params))
            for image, blank in zip(images, state["blanks"]):
                if blank:
                    image.tiles.blank_location = (int(blank[0]), int(blank[1]))
            load_checkpoint_arrays(sink, images)
            scan_from = first + int(state["metadata_size"])
            report.checkpoint_offset = first
            report.tiles_in_checkpoint = sum(im.tiles.stored_count() for im in images)
    except TiffFormatError:  # the newest checkpoint is unusable: the records alone say everything
        report.ignored_checkpoint = _header_first_ifd(sink) or -1
        report.checkpoint_offset = report.tiles_in_checkpoint = 0
        images.clear()
        scan_from = DATA_START
    # scan the records after the checkpoint
    valid_end = scan_from
    skipped: list[tuple[int, int]] = []
    total = max(0, size - scan_from)
    reported = 0
    if progress is not None:
        progress(0, total)
    for record in scan_records(sink, scan_from, size, shared, skipped):
        magic, img, index, offset, payload = record.magic, record.image, record.tile, record.offset, record.payload
        length = len(payload)
        if magic == MAGIC_IMAGE:
            if img != len(images):
                break
            definition = json.loads(payload)
            if not images:  # no checkpoint yet: the first image record has the writer's settings
                set_format(definition["byteorder"], definition["bigtiff"])
            images.append(make_image(definition["params"]))
            report.changes += 1
        elif magic == MAGIC_TILE:
            if img >= len(images) or index >= images[img].tile_count:
                break
            images[img].tiles.set(index, offset, length)
            report.tiles_recovered += 1
            report.changes += 1
        elif magic == MAGIC_BLANK:
            if img >= len(images):
                break
            images[img].tiles.blank_location = (offset, length)
            report.changes += 1
        # MAGIC_STATE: an unpublished checkpoint (its header update never happened): passed over
        report.records_scanned += 1
        valid_end = record.end
        if progress is not None and valid_end - scan_from - reported >= PROGRESS_STEP:
            reported = valid_end - scan_from
            progress(reported, total)
    if progress is not None and reported != total:
        progress(total, total)
    if shared:
        report.bytes_dropped = sum(n for _, n in skipped)
        valid_end = size
    else:
        report.bytes_dropped = size - valid_end
    if valid_end < size:
        sink.truncate(valid_end)
    if not report.checkpoint_offset:
        report.changes += 1  # no usable checkpoint: one must be written
    report.images = len(images)
    report.missing_tiles = [im.tiles.missing_count() for im in images]
    return report, valid_end


def _header_first_ifd(sink: Sink) -> int:
    head = sink.pread(0, DATA_START)
    if head.strip(b"\0") == b"":
        return 0
    try:
        return parse_header(head)[1]
    except TiffError:
        return 0


def _newest_checkpoint(sink: Sink, size: int) -> tuple[dict[str, Any] | None, int]:
    """The state of the checkpoint the header points at, and its first IFD (None, 0: no checkpoint
    yet). TiffFormatError when the header or that checkpoint is damaged or cut off."""
    head = sink.pread(0, DATA_START)
    if head.strip(b"\0") == b"":
        return None, 0
    layout, first = parse_header(head)
    if not first:
        raise TiffFormatError(f"{sink.name}: the header points at no IFD")
    if layout.header_size < DATA_START and head[layout.header_size:].strip(b"\0"):
        raise TiffFormatError(f"{sink.name}: the header's reserved bytes are not zero")
    state = read_state(sink, first, size)
    if state["byteorder"] != layout.byteorder:
        raise TiffFormatError(f"{sink.name}: header and state record disagree on byte order")
    return state, first


def load_checkpoint_arrays(sink: Sink, images: Sequence[ImageWriter]) -> None:
    """Fill the images' tile offsets and byte counts from the checkpoint's IFDs (read with the reader)."""
    from ..read.file import TiffFile
    source = sink.name if sink.fd is not None else sink.file
    tf = TiffFile(source, strict=True)
    try:
        tree = image_tree(images)
        if len(tf.ifds) != len(tree):
            raise TiffFormatError(f"{sink.name}: the checkpoint has {len(tf.ifds)} IFDs, "
                                  f"the state record {len(tree)} top-level images")
        for ifd, (top, children) in zip(tf.ifds, tree):
            subs = ifd.subifds if children else []
            if len(subs) != len(children):
                raise TiffFormatError(f"{sink.name}: {ifd.where} has {len(subs)} SubIFDs, "
                                      f"expected {len(children)}")
            for d, im in zip([ifd, *subs], [top, *children]):
                offset_array, count_array = d.segment_offsets, d.segment_byte_counts
                if offset_array is None or count_array is None:
                    raise TiffFormatError(f"{d.where}: the checkpoint's IFD has no TileOffsets/TileByteCounts")
                offsets = offset_array.to_numpy()
                if offsets.size != im.tile_count:
                    raise TiffFormatError(f"{d.where}: {offsets.size} tiles, expected {im.tile_count}")
                im.tiles.load(offsets, count_array.to_numpy())
    finally:
        tf.close()
