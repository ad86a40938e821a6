"""The tile feed: what an ImageWriter hands its tiles to (its :class:`~tiffio.writer.image.ImageOwner`).

Tiles are encoded in the caller's thread (``workers=1``) or in encoder threads fed by a bounded queue,
stored by the appender (the last write of a tile wins), and handed to their image's pyramid. Every
write first gives the writer a chance to checkpoint (``before_write``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence

import numpy

from ..codecs.encode import encode_segment_parts
from .appender import Appender
from .image import ImageWriter
from .pipeline import EncoderThreads

__all__ = ["TileFeed"]


class TileFeed:
    """Encodes and stores the tiles of ``images`` through ``appender``. ``check_open()`` raises once
    the writer is closed; ``before_write()`` runs before each tile is taken (automatic checkpoints)."""

    def __init__(self, appender: Appender, images: Sequence[ImageWriter], check_open: Callable[[], None],
                 before_write: Callable[[], None]) -> None:
        self.appender = appender
        self._images = images
        self._check_open = check_open
        #: runs before each tile is taken (the writer's automatic checkpoints)
        self.before_write = before_write
        self.threads: EncoderThreads | None = None
        #: copy writeable arrays before queueing them (the caller may reuse its buffer)
        self.copy_tiles = True
        #: set when the writer is abandoned: queued tiles are dropped
        self.abandon = False

    @property
    def images(self) -> Sequence[ImageWriter]:
        return self._images

    def missing_mask(self, image: ImageWriter) -> numpy.ndarray:
        return self.appender.missing_mask(image)

    # -- encoding -------------------------------------------------------------------------------------
    def _encode_job(self, image: ImageWriter, index: int, array: numpy.ndarray, seq: int) -> None:
        """Runs in an encoder thread: encode, checksum and store one tile."""
        if self.abandon:
            return
        try:
            if self.appender.store_tile(image, index, encode_segment_parts(image.spec, array), seq) and \
                    image.pyramid is not None:
                image.pyramid.tile_done(image.level, index, array)
        except BaseException as exc:
            self.appender.set_error(exc)
            self.appender.unclaim(image.index, index, seq)  # not stored: missing again

    def _encoder_threads(self, workers: int) -> EncoderThreads:
        threads = self.threads
        if threads is None:
            # no thread yet: known to close() before any starts (an interrupt while they start
            # leaves none unstopped); an unclosed, collected feed stops them (they hold only the pipeline)
            threads = self.threads = EncoderThreads(0)
            weakref.finalize(self, threads.stop, False)
        if len(threads.threads) < workers:
            threads.grow(workers)
        return threads

    def submit(self, image: ImageWriter, index: int, array: numpy.ndarray) -> None:
        self._check_open()
        if self.appender.failed:
            self.appender.raise_pending()
        self.before_write()
        if image.workers <= 1:
            self.appender.store_tile(image, index, encode_segment_parts(image.spec, array), None)
            if image.pyramid is not None:
                image.pyramid.tile_done(image.level, index, array)
            return
        threads = self.threads
        if threads is None or len(threads.threads) < image.workers:
            threads = self._encoder_threads(image.workers)
        # the caller may reuse a writeable buffer as soon as write_tile returns: copy it; a read-only
        # array (arr.setflags(write=False)) promises it will not change, and is encoded in place
        arr = numpy.array(array, copy=True) if (self.copy_tiles and array.flags.writeable) else array
        seq = self.appender.claim(image.index, index)
        try:
            threads.put(self._encode_job, (image, index, arr, seq))  # blocks while the queue is full
        except BaseException:
            self.appender.unclaim(image.index, index, seq)
            raise

    def submit_raw(self, image: ImageWriter, index: int, data: bytes, reduced: numpy.ndarray | None = None,
                   reduce: bool = True) -> None:
        """Store pre-encoded bytes; in a pyramid, hand ``reduced`` (the tile's quadrant) to its parent,
        or decode the tile to compute it, unless ``reduce=False`` (its parent is made elsewhere)."""
        self._check_open()
        self.appender.raise_pending()
        self.before_write()
        self.appender.unclaim(image.index, index)  # an in-flight encode of this tile is now stale
        self.appender.store_tile(image, index, (data,), None)
        pyr = image.pyramid
        if pyr is not None and (reduced is not None or reduce):
            plane, rest = divmod(index, image.tiles_down * image.tiles_across)
            row, col = divmod(rest, image.tiles_across)
            if reduced is None:  # not handed in: decode the tile to reduce it
                reduced = pyr.reduce(image.level, row, col, image.decode_tile(data))
            pyr.add_quadrant(image.level, plane, row, col, reduced)

    def store_level(self, image: ImageWriter, index: int, pixels: numpy.ndarray) -> None:
        """Encode and store one tile of a reduced level (in the thread that completed it)."""
        self.appender.store_tile(image, index, encode_segment_parts(image.spec, pixels), None)

    # -- waiting and stopping -------------------------------------------------------------------------
    def drain(self) -> None:
        """Wait until the encoder threads have stored (or failed) every tile given so far."""
        if self.threads is not None:
            self.threads.join()

    def stop(self, join: bool) -> None:
        """Stop the encoder threads (``join``: let them finish the queued tiles first)."""
        if self.threads is not None:
            if join:
                self.threads.join()
            self.threads.stop(True)
            self.threads = None
