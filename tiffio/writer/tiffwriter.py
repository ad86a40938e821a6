"""TiffWriter: the streaming tiled writer (the file layout is described in tiffio/writer/__init__.py).

It owns the sink and the file end, appends records (tiles, image definitions, blank tiles) under
one lock, runs the encoder threads, and decides when to checkpoint; the bytes of a checkpoint come
from checkpoint.py, the IFD entries from tagpack.py, the images' parameters from params.py.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import numpy

from ..codecs import compression_name
from ..codecs.encode import encode_segment_parts
from ..errors import (
    LimitExceededError,
    SourceError,
    TiffError,
    TiffFormatWarning,
    TiffUsageError,
    TiffValueError,
)
from ..format.header import pack_header
from ..format.layout import Layout
from .checkpoint import RecoveryReport, ScanProgress, build_checkpoint, resume
from .files import WriterFile
from .image import ImageWriter
from .params import MISSING, check_count, check_software, check_workers, normalize_params
from .pipeline import EncoderThreads, join_thread, start_thread
from .pyramid import DEFAULT_BUDGET, FILTERS, Pyramid, level_shapes
from .records import (
    CLASSIC_LIMIT,
    DATA_START,
    LEADER,
    MAGIC_BLANK,
    MAGIC_IMAGE,
    MAGIC_TILE,
    crc32,
    crc32_parts,
)
from .tagpack import check_image_entries, sanitize_stored

__all__ = ["TiffWriter", "WRITEBACK_BYTES"]

#: with fsync=True, a background fdatasync runs every this many bytes appended
WRITEBACK_BYTES = 32 << 20


class TiffWriter:
    """Write tiled TIFF/BigTIFF files incrementally (see the module docstring for the layout).

    ``bigtiff=None`` decides at each checkpoint whether classic TIFF suffices; ``True`` or
    ``False`` force it. ``checkpoint_every`` (tiles) and ``checkpoint_seconds`` trigger
    automatic checkpoints (None disables each); ``checkpoint_every='auto'`` is
    ``max(1000, tiles in the file / 16)`` so that checkpoints of huge images stay cheap.
    ``mode='resume'`` reopens a file tiffio wrote (see :func:`tiffio.recover`); a file that does not
    prove to be one (its first record, written with the first image) raises TiffFormatError and is
    left as it was. Only regular files are written (a folder, device or FIFO raises TiffTypeError).

    One writer per file: a writer on a path holds an exclusive lock on it until it is closed (a
    ``flock`` on a hidden ``.NAME.tiffio-lock`` next to it, released by the kernel if the process
    dies); another writer, ``recover``, ``merge`` or ``Plan.open_shard`` on the same file raises
    TiffUsageError naming it. Where locks are not reliable (NFS, SMB, FUSE...) the writer refuses
    with UnsupportedFeatureError; ``lock=False`` skips the lock when the caller makes sure of it.

    ``atomic=True`` (``mode='w'``, a path) writes a temporary file created exclusively under an
    unpredictable name in the target's folder and renames it to the target when :meth:`close`
    succeeds (after an fsync of the file, and of the folder after the rename): the target is then
    either as it was or complete. An exception inside ``with``, or a close with no image, removes
    the temporary. For files written in one go (no resume; ``checkpoint_every=None`` saves time).
    """

    #: resume passes over torn records in the middle of the file and never truncates (set by the
    #: shared-append coordinator, tiffio.writer.shared, whose file other processes append to)
    _shared_append = False
    #: what the lock file says about its holder
    _lock_role = "writer"

    def __init__(self, target: Any, *, bigtiff: bool | None = None, byteorder: str = "<", mode: str = "w",
                 missing: str = "blank", software: str | None = "tiffio", checkpoint_every: Any = "auto",
                 checkpoint_seconds: float | None = 60.0, fsync: bool = True, workers: int | None = None,
                 lock: bool = True, atomic: bool = False, _progress: ScanProgress | None = None) -> None:
        if mode not in ("w", "resume"):
            raise TiffValueError(f"mode must be 'w' or 'resume', not {mode!r}")
        if byteorder not in ("<", ">"):
            raise TiffValueError(f"byteorder must be '<' or '>', not {byteorder!r}")
        if bigtiff is not None and not isinstance(bigtiff, (bool, numpy.bool_)):
            raise TiffValueError(f"bigtiff must be None, True or False, not {bigtiff!r}")
        bigtiff = None if bigtiff is None else bool(bigtiff)
        if missing not in MISSING:
            raise TiffValueError(f"missing must be one of {MISSING}, not {missing!r}")
        if checkpoint_every != "auto":
            checkpoint_every = check_count("checkpoint_every", checkpoint_every)
        if checkpoint_seconds is not None:
            if isinstance(checkpoint_seconds, bool) or not isinstance(checkpoint_seconds, (int, float)) or \
                    not checkpoint_seconds >= 0 or checkpoint_seconds == float("inf"):
                raise TiffValueError(f"checkpoint_seconds must be a number of seconds >= 0 or None, "
                                     f"not {checkpoint_seconds!r}")
        if atomic and mode != "w":
            raise TiffValueError("atomic=True writes a new file: only with mode='w'")
        self.byteorder = byteorder
        self.bigtiff = bigtiff
        self.missing = missing
        self.software = check_software(software)
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.fsync = bool(fsync)
        self.default_workers = check_workers(workers)
        self.images: list[ImageWriter] = []
        self.report: RecoveryReport | None = None
        self._lock = threading.Lock()             # file end, arrays
        self._ckpt_lock = threading.RLock()       # checkpoints vs everything else
        self._end = DATA_START
        self._clean_end = -1                      # the file end right after the last published checkpoint
        self._max_classic = CLASSIC_LIMIT
        self._copy_tiles = True
        self._closed = False
        self._abandon = False                     # set when the writer is abandoned: queued tiles are dropped
        self._error: BaseException | None = None
        self._latest: dict[tuple[int, int], int] = {}  # tiles in encoder threads -> sequence number
        self._seq = 0
        self._threads: EncoderThreads | None = None
        self._sync_thread: threading.Thread | None = None  # fsync + header of an automatic checkpoint
        # background write-back: with fsync=True, every WRITEBACK_BYTES appended, one fdatasync runs in
        # a thread, so that the disk works while tiles are encoded and the fsync of a checkpoint or
        # close() finds little left to write (None: off)
        self._writeback_bytes: int | None = WRITEBACK_BYTES if fsync else None
        self._writeback_mark = DATA_START
        self._writeback_thread: threading.Thread | None = None
        self._since_checkpoint = 0
        self._last_checkpoint_time = time.monotonic()
        self._checkpoints = 0
        self.last_layout: Layout | None = None
        self._pyramids: list[Pyramid] = []
        self._file: WriterFile | None = None
        try:
            self._file = WriterFile(target, mode, bool(lock), bool(atomic), self._lock_role)
            self._sink = self._file.sink
            if mode == "resume":
                self.report = self._resume(_progress)
        except BaseException:
            if self._file is not None:
                self._file.release(remove=mode == "w")
            raise

    def _release(self, remove: bool = False) -> None:
        """Close the file and release its lock (``remove``: see WriterFile.release)."""
        if self._file is not None:
            self._file.release(remove)

    @property
    def name(self) -> str:
        """The file's name (its path, or the file object's name) as messages give it."""
        return self._sink.name

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> TiffWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        elif self._file is not None and self._file.temporary is not None:
            self._abort()  # atomic: after an error the new file is not published
        else:
            try:
                self.close(_enforce=False)
            except TiffError:
                pass  # the original exception is more informative

    def _abort(self) -> None:
        """Abandon an atomic writer: drop the tiles still queued, remove the temporary file."""
        if self._closed:
            return
        self._closed = True
        self._abandon = True
        try:
            for pyr in self._pyramids:
                pyr.close()
            if self._threads is not None:
                self._threads.join()
                self._threads.stop(True)
                self._threads = None
            self._wait_sync()
            self._wait_writeback()
        finally:
            self._release(remove=True)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    @property
    def checkpoints(self) -> int:
        """How many checkpoints this writer has written."""
        return self._checkpoints

    def _check_open(self) -> None:
        if self._closed:
            raise TiffUsageError("the TiffWriter is closed")

    # -- images ----------------------------------------------------------------------------------
    def add_image(self, shape: Any, dtype: Any, *, tile: Any = (256, 256), compression: Any = None,
                  compression_level: Any = None, predictor: Any = None, photometric: Any = None,
                  planarconfig: Any = "contig", jpeg_quality: Any = None, subsampling: Any = None,
                  description: Any = None, resolution: Any = None, extratags: Iterable = (),
                  parent: ImageWriter | None = None, reduced: bool = False, missing: str | None = None,
                  software: Any = ..., datetime: Any = None, workers: int | None = None,
                  pyramid: bool | str | None = None, pyramid_filter: str = "mean",
                  pyramid_budget: int = DEFAULT_BUDGET, rowsperstrip: int | None = None) -> ImageWriter:
        """Add an image; returns its :class:`ImageWriter`.

        ``parent=img`` stores this image as a SubIFD of ``img`` (a pyramid level, OME-TIFF /
        libvips style, NewSubfileType 1); ``reduced=True`` marks a following IFD as a reduced
        level (GDAL / COG style). ``missing`` overrides the writer's missing-tile policy.

        ``pyramid=True`` (or ``'main'``) makes the writer produce the reduced levels while the tiles
        of this image arrive, in any order, down to one tile, as reduced images in the main IFD chain
        (GDAL, COG, OpenSlide); ``pyramid='subifds'`` stores them as SubIFDs (OME-TIFF). Filters
        ``'mean'`` and ``'nearest'``; level sizes are ceil(size / 2). ``pyramid_budget`` bounds the
        bytes of partial parent tiles held in memory (more are spilled, compressed, to a temporary
        file). See tiffio/writer/pyramid.py.

        ``rowsperstrip=n`` stores the image in strips of ``n`` rows instead of tiles (``tile`` is then
        ignored): strip ``k`` is written as ``write_tile(k, 0, rows)``, the last one cropped.
        """
        self._check_open()
        layout = None
        if pyramid is not None and pyramid is not False:
            layout = {True: "main", "main": "main", "subifds": "subifds"}.get(pyramid) \
                if isinstance(pyramid, (bool, str)) else None
            if layout is None:
                raise TiffValueError(f"pyramid must be True, 'main' or 'subifds', not {pyramid!r}")
            if parent is not None or reduced:
                raise TiffValueError("pyramid= makes its own levels: not with parent= or reduced=")
            if rowsperstrip is not None:
                raise TiffValueError("pyramid= needs a tiled image, not rowsperstrip=")
            if pyramid_filter not in FILTERS:
                raise TiffValueError(f"pyramid_filter must be one of {FILTERS}, not {pyramid_filter!r}")
            if not isinstance(pyramid_budget, (int, numpy.integer)) or pyramid_budget < 0:
                raise TiffValueError(f"pyramid_budget must be a number of bytes >= 0, not {pyramid_budget!r}")
        with self._ckpt_lock:
            if parent is not None:
                if not isinstance(parent, ImageWriter) or parent._writer is not self:
                    raise TiffValueError("parent must be an ImageWriter of this TiffWriter")
                if parent.params["parent"] is not None:
                    raise TiffValueError("SubIFDs of SubIFDs are not written; give the top-level image as parent")
            params = normalize_params(
                shape, dtype, tile=tile, compression=compression, compression_level=compression_level,
                predictor=predictor, photometric=photometric, planarconfig=planarconfig, jpeg_quality=jpeg_quality,
                subsampling=subsampling, description=description, resolution=resolution, extratags=extratags,
                parent=None if parent is None else parent.index, reduced=reduced,
                missing=self.missing if missing is None else missing,
                software=self.software if software is ... else software, datetime=datetime,
                byteorder=self.byteorder, rowsperstrip=rowsperstrip, bigtiff=self.bigtiff)
            workers = check_workers(workers)
            if workers is None:
                workers = self.default_workers
            workers = max(1, workers or 1)
            if layout is not None:
                params["pyramid"] = {"layout": layout, "filter": pyramid_filter, "budget": int(pyramid_budget)}
            image = self._add(params, workers)
            if layout is not None:
                self._attach_pyramid(image)
            return image

    def _add(self, params: dict[str, Any], workers: int) -> ImageWriter:
        image = self._make_image(params, workers)
        payload = json.dumps({"params": params, "byteorder": self.byteorder, "bigtiff": self.bigtiff},
                             sort_keys=True).encode()
        self._raise_pending()
        with self._lock:
            if self._end == DATA_START:
                # the file's first record, the definition of image 0, is the signature of a working file
                # (records.read_signature): written with the header's 16 bytes in one write, so that a
                # file tiffio created is empty or holds it
                leader = LEADER.pack(MAGIC_IMAGE, image.index, 0, len(payload), crc32(payload))
                self._sink.pwrite(0, b"\0" * DATA_START, leader, payload)
                self._end = DATA_START + len(leader) + len(payload)
            else:
                self._append(MAGIC_IMAGE, image.index, 0, payload)
        self.images.append(image)
        return image

    def _attach_pyramid(self, base: ImageWriter) -> Pyramid:
        """Make (or, on resume, find and complete) the reduced levels of ``base`` and its Pyramid."""
        p = base.params
        options = p["pyramid"]
        levels = [base]
        found = sorted((im.params["pyramid_level"][1], im) for im in self.images
                       if im.params.get("pyramid_level", [None])[0] == base.index)
        shapes = level_shapes(p["height"], p["width"], tuple(p["tile"]))
        for k, (height, width) in enumerate(shapes[1:], 1):
            if k <= len(found):
                levels.append(found[k - 1][1])
                continue
            params = dict(p)
            params.pop("pyramid")
            params["height"], params["width"] = height, width
            params["shape"] = [p["samples"], height, width] if p["planar"] == 2 else \
                [height, width, *p["shape"][2:]]
            params["description"] = None
            params["extratags"] = []
            if p["resolution"] is not None:
                x, y, unit = p["resolution"]
                params["resolution"] = [x * width / p["width"], y * height / p["height"], unit]
            params["parent"] = base.index if options["layout"] == "subifds" else None
            params["reduced"] = options["layout"] == "main"
            params["pyramid_level"] = [base.index, k]
            levels.append(self._add(params, base.workers))
        spill_dir = self._file.folder if self._file is not None else None
        pyr = Pyramid(levels, options["filter"], options["budget"], self._store_level, spill_dir)
        for k, im in enumerate(levels):
            im._pyramid = pyr
            im._level = k
        self._pyramids.append(pyr)
        return pyr

    def _store_level(self, image: ImageWriter, index: int, pixels: numpy.ndarray) -> None:
        """Encode and store one tile of a reduced level (in the thread that completed it)."""
        self._store_tile(image, index, encode_segment_parts(image._spec, pixels), None)

    def _make_image(self, params: dict[str, Any], workers: int, stored: bool = False) -> ImageWriter:
        """An ImageWriter for ``params``, checked before anything of it is stored: its blank tile is
        encoded (the codec accepts the parameters) and its IFD packed once in every layout a checkpoint
        may use. ``stored``: parameters read back from the file (an older tiffio may have stored some
        that cannot be packed: those are dropped with a warning, so that the tiles stay recoverable)."""
        if stored:
            params, dropped = sanitize_stored(params, self.bigtiff)
            if dropped:
                warnings.warn(f"{self.name}: image {len(self.images)}: dropped what no checkpoint can store: "
                              f"{'; '.join(dropped)}", TiffFormatWarning, stacklevel=4)
        image = ImageWriter(self, len(self.images), params, workers)
        try:
            image._blank_tile()
        except TiffError as exc:
            if stored:
                raise
            raise TiffValueError(f"compression {compression_name(params['compression'])} with these parameters "
                                 f"(compression_level {params['level']!r}) cannot encode a tile: {exc}") from None
        check_image_entries(params, image.dtype, image.spec.jpegtables, self.byteorder, self.bigtiff)
        return image

    # -- appending -------------------------------------------------------------------------------
    def _append(self, magic: bytes, image: int, index: int, payload: bytes, crc: int | None = None,
                check: bool = True) -> int:
        """Append leader + payload at the end (caller holds _lock); returns the payload offset."""
        return self._append_parts(magic, image, index, (payload,), len(payload),
                                  crc32(payload) if crc is None else crc, check)

    def _append_parts(self, magic: bytes, image: int, index: int, parts: Sequence[Any], length: int, crc: int,
                      check: bool = True) -> int:
        """Append leader + the concatenated parts (one vectored write; caller holds _lock)."""
        leader = LEADER.pack(magic, image, index, length, crc)
        pos = self._end
        end = pos + len(leader) + length
        if check and self.bigtiff is False and end + self._metadata_bound() > self._max_classic:
            raise LimitExceededError(
                f"{self._sink.name}: bigtiff=False, but {length} more bytes at offset {pos} would pass "
                f"the 4 GiB limit of classic TIFF (with room for the IFDs); nothing was written")
        self._sink.pwrite(pos, leader, *parts)
        self._end = end
        return pos + len(leader)

    def _metadata_bound(self) -> int:
        """An upper bound of the bytes a classic-TIFF checkpoint needs (blank tiles, state, IFDs)."""
        total = 4096
        for im in self.images:
            total += im.tile_count * 8 + 2048 + len(json.dumps(im.params))
            total += len(im._blank or b"") + LEADER.size + 2 * len(im._spec.jpegtables or b"")
            for tag in im.params["extratags"]:
                total += 2 * len(json.dumps(tag[3])) + 16
        return total

    def _store_tile(self, image: ImageWriter, index: int, parts: Sequence[Any], seq: int | None) -> bool:
        """Append one encoded tile (its bytes as parts); with ``seq``, only if it is still the latest
        write of that tile. The checksum is computed before taking the lock."""
        crc = crc32_parts(parts)
        length = sum(len(p) for p in parts)
        with self._lock:
            if seq is not None:
                key = (image.index, index)
                if self._latest.get(key) != seq:
                    return False  # a later write of this tile is in flight or done: the last write wins
                del self._latest[key]
            offset = self._append_parts(MAGIC_TILE, image.index, index, parts, length, crc)
            image._offsets[index] = offset
            image._counts[index] = length
            self._since_checkpoint += 1
            writeback = self._writeback_bytes is not None and \
                self._end - self._writeback_mark >= self._writeback_bytes and self._sink.fd is not None and \
                (self._writeback_thread is None or not self._writeback_thread.is_alive())
            if writeback:  # (started under the lock: one at a time, and close() can always join it)
                self._writeback_mark = self._end
                self._writeback_thread = threading.Thread(target=self._writeback, daemon=True,
                                                          name="tiffio-writeback")
                start_thread(self._writeback_thread)
        return True

    def _writeback(self) -> None:
        try:
            self._sink.datasync()
        except BaseException as exc:
            with self._lock:
                if self._error is None:
                    self._error = exc

    def _encode_job(self, image: ImageWriter, index: int, array: numpy.ndarray, seq: int) -> None:
        """Runs in an encoder thread: encode, checksum and store one tile."""
        if self._abandon:
            return
        try:
            if self._store_tile(image, index, encode_segment_parts(image._spec, array), seq) and \
                    image._pyramid is not None:
                image._pyramid.tile_done(image._level, index, array)
        except BaseException as exc:
            with self._lock:
                if self._error is None:
                    self._error = exc
                key = (image.index, index)
                if self._latest.get(key) == seq:
                    del self._latest[key]  # not stored: missing again

    def _encoder_threads(self, workers: int) -> EncoderThreads:
        threads = self._threads
        if threads is None:
            # no thread yet: known to close() before any starts (an interrupt while they start
            # leaves none unstopped); an unclosed, collected writer stops them (they hold only the pipeline)
            threads = self._threads = EncoderThreads(0)
            weakref.finalize(self, threads.stop, False)
        if len(threads.threads) < workers:
            threads.grow(workers)
        return threads

    def _submit(self, image: ImageWriter, index: int, array: numpy.ndarray) -> None:
        if self._closed:
            self._check_open()
        if self._error is not None:
            self._raise_pending()
        self._maybe_checkpoint()
        if image.workers <= 1:
            self._store_tile(image, index, encode_segment_parts(image._spec, array), None)
            if image._pyramid is not None:
                image._pyramid.tile_done(image._level, index, array)
            return
        threads = self._threads
        if threads is None or len(threads.threads) < image.workers:
            threads = self._encoder_threads(image.workers)
        # the caller may reuse a writeable buffer as soon as write_tile returns: copy it; a read-only
        # array (arr.setflags(write=False)) promises it will not change, and is encoded in place
        arr = numpy.array(array, copy=True) if (self._copy_tiles and array.flags.writeable) else array
        key = (image.index, index)
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._latest[key] = seq
        try:
            threads.put(self._encode_job, (image, index, arr, seq))  # blocks while the queue is full
        except BaseException:
            with self._lock:
                if self._latest.get(key) == seq:
                    del self._latest[key]
            raise

    def _submit_raw(self, image: ImageWriter, index: int, data: bytes, reduced: numpy.ndarray | None = None,
                    reduce: bool = True) -> None:
        """Store pre-encoded bytes; in a pyramid, hand ``reduced`` (the tile's quadrant) to its parent,
        or decode the tile to compute it, unless ``reduce=False`` (its parent is made elsewhere)."""
        self._check_open()
        self._raise_pending()
        self._maybe_checkpoint()
        with self._lock:
            self._latest.pop((image.index, index), None)  # an in-flight encode of this tile is now stale
        self._store_tile(image, index, (data,), None)
        pyr = image._pyramid
        if pyr is not None and (reduced is not None or reduce):
            plane, rest = divmod(index, image.tiles_down * image.tiles_across)
            row, col = divmod(rest, image.tiles_across)
            if reduced is None:  # not handed in: decode the tile to reduce it
                reduced = pyr.reduce(image._level, row, col, image.decode_tile(data))
            pyr.add_quadrant(image._level, plane, row, col, reduced)

    def _drain(self) -> None:
        """Wait until the encoder threads have stored (or failed) every tile given so far."""
        if self._threads is not None:
            self._threads.join()

    def _wait_sync(self) -> None:
        """Wait for the fsync + header update of the last automatic checkpoint."""
        thread = self._sync_thread
        if thread is not None:
            join_thread(thread)
            self._sync_thread = None

    def _wait_writeback(self) -> None:
        with self._lock:
            thread = self._writeback_thread
        if thread is not None:
            join_thread(thread)

    def _raise_pending(self) -> None:
        with self._lock:
            exc, self._error = self._error, None
        if exc is not None:
            if isinstance(exc, TiffError):
                raise exc
            raise TiffError(f"encoding a tile failed: {type(exc).__name__}: {exc}") from exc

    def flush(self) -> None:
        """Wait until every tile given so far is encoded and stored."""
        self._drain()
        self._raise_pending()

    # -- checkpoints -----------------------------------------------------------------------------
    def _auto_tiles(self) -> int | None:
        every = self.checkpoint_every
        if every is None:
            return None
        if every == "auto":
            return max(1000, sum(im.tile_count for im in self.images) // 16)
        return max(1, int(every))

    def _maybe_checkpoint(self) -> None:
        every = self._auto_tiles()
        due = every is not None and self._since_checkpoint >= every
        if not due and self.checkpoint_seconds is not None:
            due = self._since_checkpoint > 0 and \
                time.monotonic() - self._last_checkpoint_time >= self.checkpoint_seconds
        if due:
            # automatic: holds the tiles stored so far (those still in encoder threads go into the
            # next one; recovery finds them by their leaders), and the fsync + header update run in
            # the background while the encoders go on
            self._checkpoint(final=False, drain=False, background=True)

    def checkpoint(self) -> None:
        """Make the file on disk a complete, valid TIFF holding every tile written so far
        (durable on return when ``fsync=True``)."""
        self._check_open()
        self._checkpoint(final=False)

    def _checkpoint(self, final: bool, drain: bool = True, background: bool = False) -> None:
        with self._ckpt_lock:
            self._wait_sync()  # headers are updated in checkpoint order
            if drain:
                self._drain()
            self._raise_pending()
            with self._lock:
                for im in self.images:
                    if im.missing == "blank" and im._blank_location is None and bool((im._offsets == 0).any()):
                        blank = im._blank_tile()
                        offset = self._append(MAGIC_BLANK, im.index, 0, blank, check=False)  # in the bound
                        im._blank_location = (offset, len(blank))
                if not self.images:
                    raise TiffUsageError("a TIFF needs at least one image: call add_image() before checkpoint()")
                pos = self._end + (self._end & 1)
                blob, first_ifd, layout = build_checkpoint(self.images, self.byteorder, self.bigtiff, pos, final,
                                                           self._max_classic, self._sink.name)
                self._sink.pwrite(pos, blob)  # one write: state record + every IFD and array
                self._end = blob_end = pos + len(blob)
                self._since_checkpoint = 0
                self._last_checkpoint_time = time.monotonic()
                self._checkpoints += 1
            # the tiles and IFDs must be durable before the header points at them; encoder
            # threads go on appending tiles meanwhile (after the checkpoint, outside the lock)
            header = pack_header(layout, first_ifd).ljust(DATA_START, b"\0")
            if background and self.fsync:
                thread = threading.Thread(target=self._publish, args=(header, layout, blob_end, True, False),
                                          daemon=True, name="tiffio-checkpoint")
                self._sync_thread = thread
                start_thread(thread)
            else:
                self._publish(header, layout, blob_end, self.fsync, self.fsync and final, raise_=True)

    def _publish(self, header: bytes, layout: Layout, blob_end: int, sync_before: bool, sync_after: bool,
                 raise_: bool = False) -> None:
        """fsync, point the header at the new IFDs, (fsync again)."""
        try:
            if sync_before:
                self._sink.sync()
            self._sink.pwrite(0, header)
            if sync_after:
                self._sink.sync()
            self.last_layout = layout
            with self._lock:
                self._clean_end = blob_end
        except BaseException as exc:
            if raise_:
                raise
            with self._lock:
                if self._error is None:
                    self._error = exc

    # -- closing ---------------------------------------------------------------------------------
    def close(self, *, _enforce: bool = True) -> None:
        """Store the remaining tiles, write the final IFDs and close the file.

        Images with ``missing='error'`` and missing tiles raise TiffValueError after the file
        is written (with those tiles sparse), so that what was written stays readable. When the
        file's last checkpoint already holds everything (a resumed file given nothing new), nothing
        is written. A writer closed with no image leaves no file (``mode='w'``: the file it created
        is removed; a file object is left empty). With ``atomic=True`` the file is renamed to its
        name here, once complete.
        """
        if self._closed:
            return
        error: BaseException | None = None
        try:
            if self.images:
                if _enforce and self._pyramids:  # (not after an exception: resume rebuilds the levels)
                    self._drain()
                    self._raise_pending()
                    for pyr in self._pyramids:
                        pyr.finish()
                with self._ckpt_lock:
                    self._wait_sync()
                    self._drain()
                    clean = self._end == self._clean_end and self._error is None
                if clean:
                    if self.fsync:
                        self._sink.sync()  # an automatic checkpoint's header may not be synced yet
                else:
                    self._checkpoint(final=True)
                if self._file is not None:
                    self._file.publish()  # atomic=True: the complete file takes its name
        except BaseException as exc:
            error = exc
        finally:
            self._closed = True
            for pyr in self._pyramids:
                pyr.close()
            try:
                self._wait_sync()
                self._wait_writeback()
            except BaseException as exc:  # pragma: no cover
                error = error or exc
            if self._threads is not None:
                if error is not None:  # the final checkpoint failed before draining: let them finish
                    self._threads.join()
                self._threads.stop(True)
                self._threads = None
            try:
                self._release(remove=not self.images)
            except SourceError as exc:
                error = error or exc
        if error is not None:
            raise error
        if _enforce:
            for im in self.images:
                if im.missing == "error":
                    missing = im.missing_tiles()
                    if missing:
                        raise TiffValueError(f"image {im.index}: {len(missing)} tiles were never written "
                                             f"(first: {missing[0]}); they are stored sparse")

    # -- resume / recover ------------------------------------------------------------------------
    def _resume(self, progress: ScanProgress | None = None) -> RecoveryReport:
        """Rebuild the images from the file (checkpoint.resume); ``progress(done, total)`` follows its
        scan of the records after the last checkpoint (tiffio.recover's callback)."""
        def set_format(byteorder: str, bigtiff: bool | None) -> None:
            self.byteorder = byteorder
            self.bigtiff = bigtiff

        def make_image(params: dict[str, Any]) -> ImageWriter:
            return self._make_image(params, max(1, self.default_workers or 1), stored=True)

        report, self._end = resume(self._sink, self.images, make_image, set_format, shared=self._shared_append,
                                    progress=progress)
        if not report.changes:  # the file's last checkpoint holds everything: closing adds nothing
            self._clean_end = self._end
        self._since_checkpoint = report.tiles_recovered
        for image in list(self.images):
            if image.params.get("pyramid"):
                pyr = self._attach_pyramid(image)
                report.pyramid_tiles_decoded += pyr.rebuild(
                    lambda im, i: bool(im._offsets[i] != 0),
                    lambda im, i: im.decode_tile(self._sink.pread(int(im._offsets[i]), int(im._counts[i]))))
                report.missing_tiles = [int((im._offsets == 0).sum()) for im in self.images]
        return report

