"""ImageJ hyperstacks: the layout Fiji's opener reads, with planes at fixed offsets.

Layout (classic TIFF, as ImageJ and tifffile's ``imagej=True`` write it)::

    [header][IFD 0 + description + IJMetadata][plane 0][plane 1]...[plane N-1][IFD 1]...[IFD N-1]

Each plane is one uncompressed strip of ``plane_nbytes`` bytes at
``data_offset + i * plane_nbytes``. All IFDs are written when the file is created,
so the planes may then be written in any order, by any thread or process
(:func:`write_imagej_plane` opens the file and writes one plane). When the IFDs after
the data would pass 4 GiB, only IFD 0 is written (ImageJ reads the planes from the
description's ``images=`` count, like tifffile's truncated ImageJ files).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy

from ..enums import FieldType as T
from ..errors import LimitExceededError, TiffUsageError, TiffValueError
from ..format.header import pack_header
from ..format.layout import get_layout
from ..metadata.imagej import build_imagej_description, imagej_shape, pack_ijmetadata
from .files import WriterFile
from .ifdpack import Entry, ifd_size, pack_ifd
from .sink import Sink
from .tagpack import pack_values

__all__ = ["ImageJWriter", "write_imagej", "write_imagej_plane"]

_DTYPES = {"uint8", "uint16", "int16", "float32"}
_CLASSIC_LIMIT = 2**32


class ImageJWriter:
    """Create an ImageJ hyperstack of ``shape`` (axes a subsequence of TZCYXS, e.g. 'TZCYX'
    or 'ZYX'; RGB as a trailing S of 3 uint8 samples) and write its planes in any order.

    ``resolution``: pixels per ``unit`` along (x, y); ``spacing``: z step; ``finterval``:
    seconds between frames; ``ranges``: (min, max) per channel; ``labels``, ``luts``
    ((3, 256) uint8 arrays), ``rois``/``overlays`` (ImageJ ROI bytes), ``info``,
    ``properties``: stored in IJMetadata. ``extra``: more description lines. As
    :class:`~tiffio.TiffWriter`, the writer holds the file's lock until closed (a second writer
    on the path gets a TiffUsageError; ``lock=False`` skips it) and refuses a target that is not
    a regular file.
    """

    def __init__(self, target: str | os.PathLike[str], shape: Sequence[int], dtype: Any, *, axes: str | None = None,
                 resolution: tuple[float, float] | None = None, unit: str | None = None,
                 spacing: float | None = None, finterval: float | None = None, mode: str | None = None,
                 ranges: Sequence[float] | None = None, labels: Sequence[str] | None = None,
                 luts: Sequence[numpy.ndarray] | None = None, rois: Sequence[bytes] | None = None,
                 overlays: Sequence[bytes] | None = None, info: str | None = None,
                 properties: Mapping[str, str] | None = None, byteorder: str = "<",
                 extra: Mapping[str, Any] | None = None, lock: bool = True) -> None:
        dt = numpy.dtype(dtype)
        if dt.name not in _DTYPES:
            raise TiffValueError(f"ImageJ stores uint8, uint16, int16 or float32 samples, not {dt}")
        if byteorder not in ("<", ">"):
            raise TiffValueError(f"byteorder must be '<' or '>', not {byteorder!r}")
        full = imagej_shape(shape, axes)
        t, z, c, h, w, s = full
        if s in (3, 4) and dt != numpy.uint8:
            raise TiffValueError(f"ImageJ RGB images are uint8, not {dt}")
        if s == 4:
            raise TiffValueError("ImageJ stores RGB, not RGBA: 4 samples are not written")
        self.shape = tuple(int(n) for n in shape)
        self.dtype = dt
        self.full_shape = full
        self.plane_shape: tuple[int, ...] = (h, w, s) if s > 1 else (h, w)
        self.plane_count = t * z * c
        self.plane_nbytes = h * w * s * dt.itemsize
        layout = get_layout(byteorder, False)
        self._layout = layout
        desc: dict[str, Any] = dict(extra or {})
        for key, value in (("spacing", spacing), ("unit", unit), ("finterval", finterval)):
            if value is not None:
                desc[key] = value
        self.description = build_imagej_description(full[:5] + (s,), "TZCYXS", mode=mode, **desc)
        ij = pack_ijmetadata({"Info": info, "Labels": labels, "Ranges": ranges, "LUTs": luts, "ROI": rois,
                              "Overlays": overlays, "Properties": properties}, byteorder)

        def entries(first: bool, data_offset: int) -> list[Entry]:
            out: list[Entry] = []

            def add(code: int, ftype: int, value: Any) -> None:
                n, raw = pack_values(layout, ftype, value)
                out.append(Entry(code, int(ftype), n, raw))

            add(254, T.LONG, 0)
            add(256, T.LONG, w)
            add(257, T.LONG, h)
            add(258, T.SHORT, [dt.itemsize * 8] * s)
            add(259, T.SHORT, 1)
            add(262, T.SHORT, 2 if s > 1 else 1)
            if first:
                add(270, T.ASCII, self.description)
            add(273, T.LONG, data_offset)
            add(277, T.SHORT, s)
            add(278, T.LONG, h)
            add(279, T.LONG, self.plane_nbytes)
            if resolution is not None:
                add(282, T.RATIONAL, [float(resolution[0])])
                add(283, T.RATIONAL, [float(resolution[1])])
                add(296, T.SHORT, 1)  # ResolutionUnit NONE: the unit is the description's unit=
            if s > 1:
                add(284, T.SHORT, 1)
            if dt.kind in "fi":
                add(339, T.SHORT, [3 if dt.kind == "f" else 2] * s)
            if first and ij is not None:
                data, counts = ij
                add(50838, T.LONG, list(counts))
                add(50839, T.BYTE, data)
            return out

        first_entries = entries(True, 0)
        ifd0 = 8
        data_offset = ifd0 + ifd_size(layout, first_entries)
        data_offset += (-data_offset) % 16
        self.data_offset = data_offset
        data_end = data_offset + self.plane_count * self.plane_nbytes
        later = entries(False, 0)
        later_size = ifd_size(layout, later)
        ifds_end = data_end + later_size * (self.plane_count - 1)
        self.truncated = self.plane_count > 1 and ifds_end > _CLASSIC_LIMIT
        if data_offset >= _CLASSIC_LIMIT:
            raise LimitExceededError("ImageJ metadata too large for classic TIFF")
        # the TiffWriter's checks and lock: a regular file (or a new one), one writer per file
        self._file = WriterFile(target, "w", bool(lock), False, role="ImageJ writer")
        self._sink = self._file.sink
        self.name = self._sink.name
        try:
            self._sink.truncate(data_end if self.truncated else max(data_end, ifds_end))
            next0 = 0 if self.plane_count == 1 or self.truncated else data_end
            head = pack_header(layout, ifd0)
            block0 = pack_ifd(layout, entries(True, data_offset), ifd0, next0)
            self._sink.pwrite(0, head, block0)
            if not self.truncated and self.plane_count > 1:
                parts = []
                pos = data_end
                for i in range(1, self.plane_count):
                    nxt = pos + later_size if i < self.plane_count - 1 else 0
                    parts.append(pack_ifd(layout, entries(False, data_offset + i * self.plane_nbytes), pos, nxt))
                    pos += later_size
                self._sink.pwrite(data_end, *parts)
        except BaseException:
            self._file.release(remove=True)
            raise
        self._closed = False

    def plane_offset(self, index: int) -> int:
        """File offset of plane ``index`` (C order over T, Z, C)."""
        if not 0 <= index < self.plane_count:
            raise TiffValueError(f"plane {index} out of range ({self.plane_count} planes)")
        return self.data_offset + index * self.plane_nbytes

    def plane_index(self, t: int = 0, z: int = 0, c: int = 0) -> int:
        """The plane number of (t, z, c): planes are stored C fastest, then Z, then T."""
        nt, nz, nc = self.full_shape[:3]
        for name, value, n in (("t", t, nt), ("z", z, nz), ("c", c, nc)):
            if not 0 <= value < n:
                raise TiffValueError(f"{name}={value} out of range (0..{n - 1})")
        return (t * nz + z) * nc + c

    def _check_plane(self, array: Any) -> numpy.ndarray:
        arr = numpy.asarray(array)
        if arr.shape != self.plane_shape or arr.dtype != self.dtype:
            raise TiffValueError(f"a plane is a {self.plane_shape} {self.dtype} array, not {arr.shape} {arr.dtype}")
        return numpy.ascontiguousarray(arr, self.dtype.newbyteorder(self._layout.byteorder))

    def write_plane(self, index: int, array: Any) -> None:
        """Write plane ``index`` (any order; threads may call this concurrently)."""
        if self._closed:
            raise TiffUsageError(f"{self.name}: the ImageJWriter is closed")
        offset = self.plane_offset(index)
        self._sink.pwrite(offset, self._check_plane(array).tobytes())

    def write_rows(self, index: int, y: int, rows: Any) -> None:
        """Write rows ``y, y + 1, ...`` of plane ``index`` (a (rows, width[, samples]) array): planes
        larger than memory are written in parts (any order; threads may call this concurrently)."""
        if self._closed:
            raise TiffUsageError(f"{self.name}: the ImageJWriter is closed")
        arr = numpy.asarray(rows)
        h = self.plane_shape[0]
        if arr.shape[1:] != self.plane_shape[1:] or arr.dtype != self.dtype or not 0 <= y or \
                y + arr.shape[0] > h:
            raise TiffValueError(f"rows {y}..{y + arr.shape[0]} of a {self.plane_shape} {self.dtype} plane cannot "
                                 f"be a {arr.shape} {arr.dtype} array")
        row_nbytes = self.plane_nbytes // h
        raw = numpy.ascontiguousarray(arr, self.dtype.newbyteorder(self._layout.byteorder))
        self._sink.pwrite(self.plane_offset(index) + y * row_nbytes, raw.tobytes())

    def write(self, data: Any) -> None:
        """Write all planes from an array of ``shape``."""
        arr = numpy.asarray(data)
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise TiffValueError(f"data must be a {self.shape} {self.dtype} array, not {arr.shape} {arr.dtype}")
        planes = arr.reshape((self.plane_count, *self.plane_shape))
        for i in range(self.plane_count):
            self.write_plane(i, planes[i])

    def close(self) -> None:
        """Close the file (planes not written read as zeros)."""
        if not self._closed:
            self._closed = True
            self._file.release()

    def __enter__(self) -> ImageJWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_imagej(target: str | os.PathLike[str], data: Any, *, axes: str | None = None, **kwargs: Any) -> None:
    """Write ``data`` as an ImageJ hyperstack (see :class:`ImageJWriter` for the options)."""
    arr = numpy.asarray(data)
    with ImageJWriter(target, arr.shape, arr.dtype, axes=axes, **kwargs) as w:
        w.write(arr)


def write_imagej_plane(path: str | os.PathLike[str], index: int, array: Any) -> None:
    """Write plane ``index`` into an ImageJ file created by :class:`ImageJWriter` (from any
    process): the plane's offset is read from the file's first IFD."""
    from ..read.file import TiffFile
    from ..read.series.detect import find_series
    with TiffFile(path) as tif:
        series = find_series(tif)[0]
        if series.kind != "imagej" or not series.is_contiguous:
            raise TiffValueError(f"{tif.name}: not an ImageJ file with contiguous planes")
        if not 0 <= index < series.npages:
            raise TiffValueError(f"plane {index} out of range ({series.npages} planes)")
        arr = numpy.asarray(array)
        if arr.shape != series.page_shape or arr.dtype != series.dtype:
            raise TiffValueError(f"a plane is a {series.page_shape} {series.dtype} array, not {arr.shape} {arr.dtype}")
        offset = int(series.keyframe.segment_offsets[0]) + index * series.page_nbytes
        raw = numpy.ascontiguousarray(arr, arr.dtype.newbyteorder(tif.byteorder)).tobytes()  # type: ignore[arg-type]
    sink = Sink(path, "r+")
    try:
        sink.pwrite(offset, raw)
    finally:
        sink.close()
