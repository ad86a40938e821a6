"""TiffWriter: the streaming tiled writer (the file layout is described in tiffio/writer/__init__.py).

It owns the file and ties the parts together: the appender (appender.py: the file end, under one
lock), the tile feed (feed.py: encoder threads), the checkpoints (checkpoint.py), the images
(image.py) with their parameters (params.py) and pyramids (pyramid.py), and resume (recovery.py).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from typing import Any

import numpy

from ..codecs import compression_name
from ..errors import SourceError, TiffError, TiffFormatWarning, TiffUsageError, TiffValueError
from ..format.layout import Layout
from .appender import WRITEBACK_BYTES, Appender
from .checkpoint import Checkpoints
from .feed import TileFeed
from .files import WriterFile
from .image import ImageWriter
from .params import MISSING, check_count, check_software, check_workers, normalize_params
from .pyramid import DEFAULT_BUDGET, FILTERS, Pyramid, level_shapes
from .recovery import RecoveryReport, ScanProgress, resume
from .tagpack import check_image_entries, sanitize_stored

__all__ = ["TiffWriter", "WRITEBACK_BYTES"]


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
        self.last_layout: Layout | None = None
        self._closed = False
        self._pyramids: list[Pyramid] = []
        self._file: WriterFile | None = None
        try:
            self._file = WriterFile(target, mode, bool(lock), bool(atomic), self._lock_role)
            self._sink = self._file.sink
            self._appender = Appender(self._sink, self.images, self.fsync)
            self._appender.classic_only = bigtiff is False
            self._feed = TileFeed(self._appender, self.images, self._check_open, _no_checkpoint)
            self._checkpoints = Checkpoints(self, self._appender, self._feed.drain)
            self._feed.before_write = self._checkpoints.maybe
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
        self._feed.abandon = True
        try:
            for pyr in self._pyramids:
                pyr.close()
            self._feed.stop(join=True)
            self._checkpoints.wait_sync()
            self._appender.wait_writeback()
        finally:
            self._release(remove=True)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    @property
    def checkpoints(self) -> int:
        """How many checkpoints this writer has written."""
        return self._checkpoints.count

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
        with self._checkpoints.lock:
            if parent is not None:
                if not isinstance(parent, ImageWriter) or not any(im is parent for im in self.images):
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
        self._appender.raise_pending()
        with self._appender.lock:
            self._appender.append_first_image(image.index, payload)
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
        pyr = Pyramid(levels, options["filter"], options["budget"], self._feed.store_level, spill_dir)
        for k, im in enumerate(levels):
            im.join_pyramid(pyr, k)
        self._pyramids.append(pyr)
        return pyr

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
        image = ImageWriter(self._feed, len(self.images), params, workers, self.byteorder)
        try:
            image.tiles.blank_tile()
        except TiffError as exc:
            if stored:
                raise
            raise TiffValueError(f"compression {compression_name(params['compression'])} with these parameters "
                                 f"(compression_level {params['level']!r}) cannot encode a tile: {exc}") from None
        check_image_entries(params, image.dtype, image.spec.jpegtables, self.byteorder, self.bigtiff)
        return image

    def flush(self) -> None:
        """Wait until every tile given so far is encoded and stored."""
        self._feed.drain()
        self._appender.raise_pending()

    # -- checkpoints -----------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Make the file on disk a complete, valid TIFF holding every tile written so far
        (durable on return when ``fsync=True``)."""
        self._check_open()
        self._checkpoints.write(final=False)

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
                    self.flush()
                    for pyr in self._pyramids:
                        pyr.finish()
                with self._checkpoints.lock:
                    self._checkpoints.wait_sync()
                    self._feed.drain()
                    clean = self._appender.end == self._appender.clean_end and not self._appender.failed
                if clean:
                    if self.fsync:
                        self._sink.sync()  # an automatic checkpoint's header may not be synced yet
                else:
                    self._checkpoints.write(final=True)
                if self._file is not None:
                    self._file.publish()  # atomic=True: the complete file takes its name
        except BaseException as exc:
            error = exc
        finally:
            self._closed = True
            for pyr in self._pyramids:
                pyr.close()
            try:
                self._checkpoints.wait_sync()
                self._appender.wait_writeback()
            except BaseException as exc:  # pragma: no cover
                error = error or exc
            # (after a failed final checkpoint, which may not have drained: let them finish)
            self._feed.stop(join=error is not None)
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
            self._appender.classic_only = bigtiff is False

        def make_image(params: dict[str, Any]) -> ImageWriter:
            return self._make_image(params, max(1, self.default_workers or 1), stored=True)

        report, end = resume(self._sink, self.images, make_image, set_format, shared=self._shared_append,
                             progress=progress)
        self._appender.end = end
        if not report.changes:  # the file's last checkpoint holds everything: closing adds nothing
            self._appender.clean_end = end
        self._appender.since_checkpoint = report.tiles_recovered
        for image in list(self.images):
            if image.params.get("pyramid"):
                pyr = self._attach_pyramid(image)
                report.pyramid_tiles_decoded += pyr.rebuild(
                    lambda im, i: im.tiles.is_stored(i),
                    lambda im, i: im.decode_tile(self._sink.pread(*im.tiles.location(i))))
                report.missing_tiles = [im.tiles.missing_count() for im in self.images]
        return report


def _no_checkpoint() -> None:
    """Before the writer's checkpoints exist, no tile arrives."""
