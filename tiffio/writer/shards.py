"""A shared plan for writing one image as several crash-safe shards (one per worker).

Every worker builds the same :class:`Plan` (it is small and picklable: send it with the task),
opens its own shard with :meth:`Plan.open_shard` (a normal tiffio working file, resumable after a
crash) and writes the tiles :meth:`Plan.tiles` gives it. :func:`tiffio.merge` then builds one TIFF
from the shards by copying their tile bytes.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any

import numpy

from ..errors import TiffIndexError, TiffTypeError, TiffValueError
from .params import check_count, normalize_params
from .records import DATA_START
from .sink import source_error
from .tagpack import check_image_entries
from .tiffwriter import TiffWriter

__all__ = ["Plan"]

_WRITER_OPTIONS = ("byteorder", "bigtiff", "fsync", "checkpoint_every", "checkpoint_seconds", "workers", "lock")


@dataclass(frozen=True)
class Plan:
    """What every worker of a sharded write must agree on.

    ``shape``/``dtype`` and ``options`` (the keyword arguments of :meth:`TiffWriter.add_image`:
    tile, compression, photometric, ...) describe level 0; ``levels > 1`` adds reduced levels
    (NewSubfileType 1, sizes rounded up as GDAL does) that the workers fill too. ``workers`` shards
    own the tiles of each level in bands of whole tile rows: worker ``w`` owns rows
    ``[w * rows / workers, (w + 1) * rows / workers)``.
    """

    shape: tuple[int, ...]
    dtype: str
    workers: int
    options: tuple[tuple[str, Any], ...] = ()
    levels: int = 1
    writer_options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def create(cls, shape: Any, dtype: Any, *, workers: int, levels: int = 1,
               writer_options: dict[str, Any] | None = None, **options: Any) -> Plan:
        """A plan for ``workers`` shards; ``options`` go to add_image (checked now, not in the workers)."""
        check_count("workers", workers, none=False)
        check_count("levels", levels, none=False)
        for key in ("parent", "reduced", "missing", "workers"):
            if key in options:
                raise TiffValueError(f"Plan sets {key!r} itself")
        if writer_options is not None and not isinstance(writer_options, dict):
            raise TiffTypeError(f"writer_options must be a dict, not {type(writer_options).__name__}")
        wopts = dict(writer_options or {})
        for key in wopts:
            if key not in _WRITER_OPTIONS:
                raise TiffValueError(f"writer_options: {key!r} is not one of {_WRITER_OPTIONS}")
        try:
            shape = tuple(int(v) for v in shape)
            dt = numpy_dtype(dtype)
        except (TypeError, ValueError, OverflowError):
            raise TiffTypeError(f"shape and dtype must be a sequence of ints and a numpy dtype, not {shape!r}, "
                                f"{dtype!r}") from None
        try:
            plan = cls(shape, str(dt), int(workers), tuple(sorted(options.items())), int(levels),
                       tuple(sorted(wopts.items())))
        except TypeError:  # an option value that cannot be sorted or hashed
            raise TiffTypeError("Plan options must be keyword arguments of add_image") from None
        byteorder = wopts.get("byteorder", "<")
        bigtiff = wopts.get("bigtiff")
        for k in range(plan.levels):  # validate every level's parameters here, in the caller
            params = normalize_params(plan.level_shape(k), plan.dtype, parent=None, reduced=k > 0, missing="sparse",
                                      software="tiffio", byteorder=byteorder, bigtiff=bigtiff,
                                      **_add_image_defaults(dict(plan.options)))
            check_image_entries(params, numpy_dtype(plan.dtype), None, byteorder, bigtiff)
        return plan

    # -- geometry --------------------------------------------------------------------------
    @property
    def tile(self) -> tuple[int, int]:
        """(TileLength, TileWidth) of every level."""
        t = dict(self.options).get("tile", (256, 256))
        return int(t[0]), int(t[1])

    @property
    def _separate(self) -> bool:
        return str(dict(self.options).get("planarconfig", "contig")).lower() in ("separate", "2")

    def level_shape(self, level: int) -> tuple[int, ...]:
        """Shape of ``level`` (each level halves the one before, rounding up)."""
        shape = list(self.shape)
        axes = (1, 2) if (self._separate and len(shape) == 3) else (0, 1)
        for _ in range(level):
            for a in axes:
                shape[a] = -(-shape[a] // 2)
        return tuple(shape)

    def grid(self, level: int = 0) -> tuple[int, int]:
        """(tiles down, tiles across) of ``level``."""
        shape = self.level_shape(level)
        h, w = (shape[1], shape[2]) if (self._separate and len(shape) == 3) else (shape[0], shape[1])
        th, tw = self.tile
        return -(-h // th), -(-w // tw)

    def owner(self, row: int, col: int, level: int = 0) -> int:
        """The worker that owns tile (row, col) of ``level``."""
        down, across = self.grid(level)
        if not (0 <= row < down and 0 <= col < across):
            raise TiffIndexError(f"tile ({row}, {col}) is outside level {level}'s grid of {down} x {across} tiles")
        return (row * self.workers) // down

    def tiles(self, worker: int, level: int = 0) -> list[tuple[int, int]]:
        """The (row, col) tiles of ``level`` that ``worker`` owns, row-major."""
        self._check_worker(worker)
        down, across = self.grid(level)
        first = -(-worker * down // self.workers)
        last = -(-(worker + 1) * down // self.workers)
        return [(r, c) for r in range(first, last) for c in range(across)]

    def _check_worker(self, worker: int) -> None:
        if not 0 <= int(worker) < self.workers:
            raise TiffIndexError(f"worker {worker} is outside 0..{self.workers - 1}")

    # -- shards ----------------------------------------------------------------------------
    @staticmethod
    def shard_path(dst: str | os.PathLike, worker: int) -> str:
        """The conventional name of ``worker``'s shard of ``dst``."""
        return f"{os.fspath(dst)}.shard-{int(worker):04d}.tif"

    def open_shard(self, path: str | os.PathLike, **writer_options: Any) -> TiffWriter:
        """Open a shard for writing: a new working file with the plan's images, or, when ``path``
        already holds a shard (a retried task), that shard resumed (its tiles kept). The images
        are ``writer.images`` (level 0 first).

        A file at ``path`` that is not a shard (not a working file of tiffio's writer) raises
        TiffFormatError and is left as it was; an empty one (its worker died before writing) is
        started again. While the shard is open elsewhere (the original of a retried task still
        runs), TiffUsageError: one writer per file."""
        opts = {"missing": "sparse", **dict(self.writer_options), **writer_options}
        path = os.fspath(path)
        if not holds_nothing(path):
            writer = TiffWriter(path, mode="resume", **opts)
            try:
                self._check_shard(writer)
            except BaseException:
                writer.close(_enforce=False)
                raise
            while len(writer.images) < self.levels:  # died between add_image calls
                k = len(writer.images)
                writer.add_image(self.level_shape(k), self.dtype, reduced=k > 0, missing="sparse",
                                 **dict(self.options))
            return writer
        writer = TiffWriter(path, **opts)
        try:
            for k in range(self.levels):
                writer.add_image(self.level_shape(k), self.dtype, reduced=k > 0, missing="sparse",
                                 **dict(self.options))
        except BaseException:
            writer.close(_enforce=False)
            raise
        return writer

    def _check_shard(self, writer: TiffWriter) -> None:
        if len(writer.images) > self.levels:
            raise TiffValueError(f"{writer.name}: the shard has {len(writer.images)} images, the plan "
                                 f"{self.levels} levels")
        for k, im in enumerate(writer.images):
            if tuple(im.shape) != self.level_shape(k) or im.dtype.str != numpy_dtype(self.dtype).str:
                raise TiffValueError(f"{writer.name}: image {k} is {im.shape} {im.dtype}, the plan says "
                                     f"{self.level_shape(k)} {self.dtype}")


def holds_nothing(path: str) -> bool:
    """Whether ``path`` is absent or a file a shard's worker left before it stored anything: empty, or
    the 16 zero bytes of a header that an older tiffio wrote when it created a file."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return False  # (the writer refuses it)
        if st.st_size == 0:
            return True
        if st.st_size != DATA_START:
            return False
        with open(path, "rb") as fh:
            return fh.read(DATA_START + 1) == b"\0" * DATA_START
    except FileNotFoundError:
        return True
    except OSError as exc:
        raise source_error(exc, f"cannot read the shard {path!r}") from None


def numpy_dtype(dtype: Any) -> numpy.dtype:
    return numpy.dtype(dtype)


def _add_image_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """add_image's defaults for the options normalize_params needs (checked in Plan.create)."""
    defaults: dict[str, Any] = dict(tile=(256, 256), compression=None, compression_level=None, predictor=None,
                                    photometric=None, planarconfig="contig", jpeg_quality=None, subsampling=None,
                                    description=None, resolution=None, extratags=(), datetime=None)
    unknown = set(options) - set(defaults) - {"software"}
    if unknown:
        raise TiffValueError(f"unknown add_image options {sorted(unknown)}")
    defaults.update(options)
    defaults.pop("software", None)
    return defaults
