"""Checkpoints: when one is due (tiles or seconds since the last), and writing one: the blank tiles
the images need, the state record + every IFD and strile array in one write at the end of the file,
an fsync, and only then the header pointing at the new IFDs (in the background for automatic
checkpoints, while encoding goes on).

Recovery (recovery.py) reads back what a checkpoint wrote.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy

from ..errors import LimitExceededError, TiffUsageError
from ..format.header import pack_header
from ..format.layout import Layout
from .appender import Appender
from .ifdpack import Entry, ifd_size, pack_ifd
from .image import ImageWriter
from .pipeline import join_thread, start_thread
from .records import DATA_START, FORMAT_VERSION, MAGIC_BLANK, pack_state_record
from .tagpack import image_entries

__all__ = ["Checkpoints", "CheckpointOwner", "build_checkpoint", "image_tree"]


def image_tree(images: Sequence[ImageWriter]) -> list[tuple[ImageWriter, list[ImageWriter]]]:
    """The top-level images (main IFD chain) in order, each with its SubIFD images."""
    tops = [im for im in images if im.params["parent"] is None]
    return [(top, [im for im in images if im.params["parent"] == top.index]) for top in tops]


def build_checkpoint(images: Sequence[ImageWriter], byteorder: str, bigtiff: bool | None, pos: int,
                     max_classic: int, name: str) -> tuple[bytes, int, Layout]:
    """The state record + IFDs for a checkpoint at file offset ``pos`` -> (blob, first IFD offset, layout).

    Classic TIFF is chosen when everything fits below ``max_classic`` (unless ``bigtiff`` forces one)."""
    tree = image_tree(images)

    def plan(layout: Layout) -> tuple[list[tuple[ImageWriter, list[Entry]]], int]:
        items = []
        size = 0
        for top, children in tree:
            for im in [top, *children]:
                entries = image_entries(layout, im.params, im.dtype, im.spec.jpegtables, *im.tiles.strile_arrays())
                if im is top and children:
                    entries.append(Entry(330, int(layout.subifd_field_type), len(children),
                                         b"\0" * (layout.offset_size * len(children))))
                items.append((im, entries))
                size += ifd_size(layout, entries)
        return items, size

    state: dict[str, Any] = {
        "version": FORMAT_VERSION, "byteorder": byteorder, "bigtiff": bigtiff,
        "images": [im.params for im in images],
        "blanks": [list(im.tiles.blank_location) if im.tiles.blank_location else None for im in images]}
    for layout in Layout.choices(byteorder, bigtiff):
        items, size = plan(layout)
        state["metadata_size"] = size
        record = pack_state_record(state)
        first = pos + len(record)
        if layout.holds(first + size, max_classic):
            break
    else:
        raise LimitExceededError(f"{name}: bigtiff=False, but the file needs "
                                 f"{first + size} bytes, more than classic TIFF's 4 GiB")
    # offsets of every IFD
    offsets: dict[int, int] = {}
    cursor = first
    for im, entries in items:
        offsets[im.index] = cursor
        cursor += ifd_size(layout, entries)
    parts = [record]
    top_order = [top.index for top, _ in tree]
    children_of = {top.index: [c.index for c in children] for top, children in tree}
    for im, entries in items:
        if children_of.get(im.index):
            subs = numpy.asarray([offsets[k] for k in children_of[im.index]], layout.offset_dtype).tobytes()
            entries = [e if e.code != 330 else Entry(330, e.type, e.count, subs) for e in entries]
        next_offset = 0
        if im.index in top_order:
            k = top_order.index(im.index)
            if k + 1 < len(top_order):
                next_offset = offsets[top_order[k + 1]]
        parts.append(pack_ifd(layout, entries, offsets[im.index], next_offset))
    blob = b"".join(parts)
    assert len(blob) == len(record) + size
    return blob, first, layout


class CheckpointOwner(Protocol):
    """What the checkpoints read of their writer (its settings may change after it is made: resume
    sets the format, a caller may change the policy)."""

    byteorder: str
    bigtiff: bool | None
    fsync: bool
    checkpoint_every: Any
    checkpoint_seconds: float | None
    last_layout: Layout | None

    @property
    def images(self) -> list[ImageWriter]:
        """Every image of the writer, by index."""


class Checkpoints:
    """The checkpoints of one writer: the policy (``maybe``), writing one (``write``), and the
    background thread that publishes an automatic one. ``lock`` orders checkpoints against
    everything else that must not run during one (adding an image, closing)."""

    def __init__(self, owner: CheckpointOwner, appender: Appender, drain: Callable[[], None]) -> None:
        self._owner = owner
        self._appender = appender
        self._drain = drain
        self.lock = threading.RLock()
        self.count = 0
        self._last_time = time.monotonic()
        self._sync_thread: threading.Thread | None = None  # fsync + header of an automatic checkpoint

    def _auto_tiles(self) -> int | None:
        every = self._owner.checkpoint_every
        if every is None:
            return None
        if every == "auto":
            return max(1000, sum(im.tile_count for im in self._owner.images) // 16)
        return max(1, int(every))

    def maybe(self) -> None:
        """Write an automatic checkpoint if one is due."""
        since = self._appender.since_checkpoint
        every = self._auto_tiles()
        due = every is not None and since >= every
        seconds = self._owner.checkpoint_seconds
        if not due and seconds is not None:
            due = since > 0 and time.monotonic() - self._last_time >= seconds
        if due:
            # automatic: holds the tiles stored so far (those still in encoder threads go into the
            # next one; recovery finds them by their leaders), and the fsync + header update run in
            # the background while the encoders go on
            self.write(final=False, drain=False, background=True)

    def write(self, final: bool, drain: bool = True, background: bool = False) -> None:
        """Write a checkpoint holding every tile stored (``drain``: after waiting for the encoder
        threads); ``final``: the one close() writes."""
        owner, appender = self._owner, self._appender
        with self.lock:
            self.wait_sync()  # headers are updated in checkpoint order
            if drain:
                self._drain()
            appender.raise_pending()
            with appender.lock:
                for im in owner.images:
                    if im.missing == "blank" and im.tiles.needs_blank():
                        blank = im.tiles.blank_tile()
                        offset = appender.append(MAGIC_BLANK, im.index, 0, blank, check=False)  # in the bound
                        im.tiles.blank_location = (offset, len(blank))
                if not owner.images:
                    raise TiffUsageError("a TIFF needs at least one image: call add_image() before checkpoint()")
                pos = appender.end + (appender.end & 1)
                blob, first_ifd, layout = build_checkpoint(owner.images, owner.byteorder, owner.bigtiff, pos,
                                                           appender.max_classic, appender.sink.name)
                appender.sink.pwrite(pos, blob)  # one write: state record + every IFD and array
                appender.end = blob_end = pos + len(blob)
                appender.since_checkpoint = 0
                self._last_time = time.monotonic()
                self.count += 1
            # the tiles and IFDs must be durable before the header points at them; encoder
            # threads go on appending tiles meanwhile (after the checkpoint, outside the lock)
            header = pack_header(layout, first_ifd).ljust(DATA_START, b"\0")
            if background and owner.fsync:
                thread = threading.Thread(target=self._publish, args=(header, layout, blob_end, True, False),
                                          daemon=True, name="tiffio-checkpoint")
                self._sync_thread = thread
                start_thread(thread)
            else:
                self._publish(header, layout, blob_end, owner.fsync, owner.fsync and final, raise_=True)

    def _publish(self, header: bytes, layout: Layout, blob_end: int, sync_before: bool, sync_after: bool,
                 raise_: bool = False) -> None:
        """fsync, point the header at the new IFDs, (fsync again)."""
        sink = self._appender.sink
        try:
            if sync_before:
                sink.sync()
            sink.pwrite(0, header)
            if sync_after:
                sink.sync()
            self._owner.last_layout = layout
            with self._appender.lock:
                self._appender.clean_end = blob_end
        except BaseException as exc:
            if raise_:
                raise
            self._appender.set_error(exc)

    def wait_sync(self) -> None:
        """Wait for the fsync + header update of the last automatic checkpoint."""
        thread = self._sync_thread
        if thread is not None:
            join_thread(thread)
            self._sync_thread = None
