"""Merge shards (tiffio working files written by several workers) into one TIFF without
re-encoding: :func:`merge`.

Each shard is first brought to a checkpoint: a shard whose writer died (torn record at the
end, tiles after the last checkpoint) is recovered in place, exactly as :func:`tiffio.recover`
does; a shard closed cleanly is not touched. All shards must hold the same images with the same
parameters (shape, dtype, tiles, compression, JPEG tables, tags...): otherwise TiffValueError
names the shard and what differs. A tile present in several shards (a retried or speculative
task) is taken from the shard whose last checkpoint is newest (its modification time; the later
shard in the list on a tie), and every such tile is listed in the report. The output is written
by :func:`tiffio.writer.relayout.write_images` in the ``layout`` asked for ("plain" or "cog"),
to a temporary name renamed when complete; the shards are left as they are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy

from ..errors import SourceError, TiffTypeError, TiffValueError
from ..format.layout import get_layout
from .files import require_regular
from .relayout import OutImage, Progress, RelayoutReport, write_images
from .shards import holds_nothing
from .sink import source_error
from .tagpack import image_entries
from .tiffwriter import TiffWriter

__all__ = ["merge"]

#: parameters that may differ between shards without changing the merged image
_FREE_PARAMS = frozenset({"missing", "datetime"})


class _Shard:
    """One shard, opened as a resumed writer (so that it holds the shard's lock until the merge has
    copied its tiles: no writer can start on it meanwhile), recovered if its writer died."""

    def __init__(self, path: str, index: int, fsync: bool, lock: bool) -> None:
        self.path = path
        self.index = index
        # when its writer last wrote: taken before a recovery, which would make a crashed shard look newest
        try:
            self.mtime = os.stat(path).st_mtime_ns
        except OSError as exc:
            raise source_error(exc, f"cannot open the shard {path!r}") from None
        writer = TiffWriter(path, mode="resume", fsync=fsync, checkpoint_every=None, checkpoint_seconds=None,
                            lock=lock)
        self.writer: TiffWriter | None = writer
        try:
            report = writer.report
            assert report is not None
            self.recovered = bool(report.changes or report.bytes_dropped)
            if self.recovered and writer.images:
                writer.checkpoint()  # what tiffio.recover does: every complete tile is now checkpointed
            self.byteorder = writer.byteorder
            self.images = list(writer.images)
            self.offsets = [im.tiles.offsets.astype(numpy.int64) for im in self.images]
            self.counts = [im.tiles.counts.astype(numpy.int64) for im in self.images]
            layout = get_layout(writer.byteorder, False)
            self.tags = [[e for e in image_entries(layout, im.params, im.dtype, im.spec.jpegtables,
                                                   *im.tiles.strile_arrays())
                          if e.code not in (254, 324, 325, 330)] for im in self.images]
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the shard (nothing is written: it was checkpointed when loaded)."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close(_enforce=False)


def _params(im: Any) -> dict[str, Any]:
    return {k: v for k, v in im.params.items() if k not in _FREE_PARAMS}


def _check_same(first: _Shard, shard: _Shard) -> None:
    where = f"shard {shard.path!r}"
    if shard.byteorder != first.byteorder:
        raise TiffValueError(f"{where} is {'little' if shard.byteorder == '<' else 'big'}-endian, "
                             f"shard {first.path!r} is not")
    if len(shard.images) != len(first.images):
        raise TiffValueError(f"{where} has {len(shard.images)} images, shard {first.path!r} has {len(first.images)}")
    for k, (a, b) in enumerate(zip(first.images, shard.images)):
        pa, pb = _params(a), _params(b)
        differ = sorted(key for key in set(pa) | set(pb) if pa.get(key) != pb.get(key))
        if differ:
            detail = ", ".join(f"{key} {pb.get(key)!r} instead of {pa.get(key)!r}" for key in differ[:4])
            raise TiffValueError(f"{where}, image {k}: parameters differ from shard {first.path!r}: {detail}")
        if a.spec.jpegtables != b.spec.jpegtables:
            raise TiffValueError(f"{where}, image {k}: its JPEGTables differ from those of shard {first.path!r}; "
                                 "tiles encoded with other tables cannot be merged without re-encoding")
        ta = {t.code: t for t in first.tags[k]}
        tb = {t.code: t for t in shard.tags[k]}
        if ta != tb:
            codes = sorted(c for c in set(ta) | set(tb) if ta.get(c) != tb.get(c))
            raise TiffValueError(f"{where}, image {k}: tags {codes} differ from shard {first.path!r}")


def merge(dst: str | os.PathLike, shards: Sequence[str | os.PathLike], *, layout: str = "plain",
          missing: str = "error", bigtiff: bool | None = None, fsync: bool = True,
          progress: Progress | None = None, lock: bool = True) -> RelayoutReport:
    """Build one TIFF at ``dst`` from ``shards`` (tiffio working files holding parts of the same
    images, e.g. written with :class:`tiffio.Plan`), copying their tile bytes.

    ``layout`` is "plain" (IFDs first, tiles packed level by level) or "cog" (GDAL's COG layout;
    the images must be a pyramid, level 0 first). ``missing='error'`` raises TiffValueError when a
    tile is in no shard (nothing is written); ``'sparse'`` stores it sparse. Returns a
    :class:`~tiffio.writer.relayout.RelayoutReport` whose ``duplicates`` lists (image, tile index,
    shards holding it, newest first) for the tiles found in several shards.
    ``progress(copied, total)``, if given, is called as tile bytes are copied.

    Every shard must prove to be a working file of tiffio's writer before anything is written to it
    (TiffFormatError otherwise, all shards left as they were), and is locked as a writer would lock
    it until its tiles are copied: a shard still being written (TiffUsageError) is not merged.
    ``lock`` as for :class:`TiffWriter`.
    """
    if missing not in ("error", "sparse"):
        raise TiffValueError(f"missing must be 'error' or 'sparse', not {missing!r}")
    if isinstance(shards, (str, bytes, os.PathLike)):
        raise TiffTypeError("shards must be a list of paths, not one path")
    try:
        paths = [os.fspath(p) for p in shards]
        dst = os.fspath(dst)
    except TypeError:
        raise TiffTypeError(f"merge needs paths: dst {dst!r}, shards {shards!r}") from None
    if any(isinstance(p, bytes) for p in [*paths, dst]):
        raise TiffTypeError("merge needs str paths, not bytes")
    if not paths:
        raise TiffValueError("merge needs at least one shard")
    if os.path.abspath(os.fspath(dst)) in {os.path.abspath(p) for p in paths}:
        raise TiffValueError(f"the destination {os.fspath(dst)!r} is one of the shards")
    empty: list[str] = []
    for p in paths:  # a worker that died before writing its first image leaves an empty shard: nothing to take
        if not require_regular(p, "merge"):
            raise SourceError(2, f"shard {p!r} does not exist")
        if holds_nothing(p):
            empty.append(p)
    loaded: list[_Shard] = []
    try:
        for k, p in enumerate(paths):
            if p not in empty:
                loaded.append(_Shard(p, k, fsync, lock))
        return _merge(dst, loaded, paths, empty, layout, missing, bigtiff, fsync, progress)
    finally:
        for shard in loaded:
            shard.close()


def _merge(dst: str | os.PathLike, loaded: list[_Shard], paths: list[str], empty: list[str], layout: str,
           missing: str, bigtiff: bool | None, fsync: bool, progress: Progress | None) -> RelayoutReport:
    if not loaded:
        raise TiffValueError(f"no shard holds an image ({len(paths)} shards)")
    paths = [s.path for s in loaded]
    first = loaded[0]
    for shard in loaded[1:]:
        _check_same(first, shard)
    # newest checkpoint last: a tile present in several shards comes from the last one holding it
    order = sorted(range(len(loaded)), key=lambda k: (loaded[k].mtime, k))
    images: list[OutImage] = []
    duplicates: list[tuple[int, int, list[str]]] = []
    for k, im in enumerate(first.images):
        offsets = numpy.stack([loaded[j].offsets[k] for j in order])
        counts = numpy.stack([loaded[j].counts[k] for j in order])
        present = (offsets > 0) & (counts > 0)
        holders = present.sum(axis=0)
        n = offsets.shape[1]
        newest = present.shape[0] - 1 - numpy.argmax(present[::-1], axis=0)
        cols = numpy.arange(n)
        chosen_src = numpy.asarray(order, numpy.int32)[newest]
        off = numpy.where(holders > 0, offsets[newest, cols], 0)
        cnt = numpy.where(holders > 0, counts[newest, cols], 0)
        if missing == "error" and (holders == 0).any():
            idx = numpy.flatnonzero(holders == 0)
            per_plane = im.tiles_down * im.tiles_across
            first_missing = [divmod(int(i) % per_plane, im.tiles_across) for i in idx[:3]]
            raise TiffValueError(f"image {k}: {idx.size} tiles are in no shard (first (row, col): {first_missing}); "
                                 "pass missing='sparse' to store them sparse")
        for i in numpy.flatnonzero(holders > 1).tolist():
            names = [loaded[order[j]].path for j in range(present.shape[0] - 1, -1, -1) if present[j, i]]
            duplicates.append((k, int(i), names))
        nst = 1 if (im.params["reduced"] or im.params["parent"] is not None) else 0
        images.append(OutImage(first.tags[k], nst, numpy.where(holders > 0, chosen_src, 0).astype(numpy.int32),
                                off.astype(numpy.int64), cnt.astype(numpy.int64)))
    fds: list[int] = []
    try:
        for p in paths:
            try:
                fds.append(os.open(p, os.O_RDONLY | getattr(os, "O_BINARY", 0)))
            except OSError as exc:
                raise SourceError(exc.errno or 5, f"cannot open shard {p!r}: {exc.strerror}") from None
        report = write_images(dst, fds, images, byteorder=first.byteorder, layout=layout, bigtiff=bigtiff,
                              fsync=fsync, progress=progress)
    finally:
        for fd in fds:
            os.close(fd)
    report.duplicates = duplicates
    report.recovered_shards = [s.path for s in loaded if s.recovered]
    report.empty_shards = empty
    return report
