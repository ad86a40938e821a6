"""``imwrite``: one call that writes an array (numpy, or any array-like with ``shape``, ``dtype``
and ``__getitem__``: dask, zarr, memmap, xarray) to a TIFF, reading it in bands of whole tile
rows (or strips) so that memory stays bounded whatever its size.

The shape, photometric and planar-configuration guesses follow tifffile's ``imwrite``:

- the last two dimensions are one image (page); leading dimensions are pages, stored one IFD
  each in C order;
- ``(..., length, width, 3 or 4)`` is RGB with contiguous samples, else ``(..., 3 or 4, length,
  width)`` is RGB with separate planes (``photometric`` / ``planarconfig`` override the guess;
  ``planarconfig`` given takes the samples from the last, or third-last, dimension);
- ``metadata`` (a dict, default ``{}``) is stored as a JSON ImageDescription ``{"shape": [...],
  ...}`` on the first page, which tifffile reads back as the series' shape; ``None`` stores none;
- ``tile=None`` writes strips: about 256 KiB each (tifffile's rule for compressed strips; tifffile
  stores an uncompressed image as one strip, tiffio in strips of that size too, to bound memory);
- ``imagej=True`` writes an ImageJ hyperstack (:class:`~tiffio.writer.imagej.ImageJWriter`, axes
  and calibration from ``metadata``); ``ome=True`` (default for names ending in ``.ome.tif(f)``) an
  OME-TIFF (OME-XML from ``metadata``: ``axes``, ``Name``, ``PhysicalSizeX/Y/Z[Unit]``,
  ``TimeIncrement``, ``Channel: {"Name": [...]}``); ``geotiff=`` a :class:`tiffio.GeoTiff`'s tags.

Tiles are encoded by the writer's threads (``workers``); the file is a tiffio working file
(crash-safe checkpoints) that every TIFF reader reads.
"""

from __future__ import annotations

import json
import mmap
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy

from ..codecs import compression_name
from ..codecs.encode import parse_compression
from ..enums import Compression as C
from ..errors import TiffTypeError, TiffValueError, UnsupportedFeatureError
from ..metadata.geotiff import GeoTiff
from ..metadata.ome import build_ome_xml
from .blocks import WriteReport
from .image import ImageWriter
from .imagej import ImageJWriter
from .params import PHOTOMETRIC_NAMES
from .tiffwriter import TiffWriter

__all__ = ["imwrite", "page_layout", "band_rows", "shaped_description"]

#: bytes of a strip when rowsperstrip is not given (tifffile's size for compressed strips)
STRIP_BYTES = 2**18
#: the largest band of rows read from the input at once (more rows than one tile row only for
#: inputs with chunks taller than a tile)
BAND_BYTES = 256 << 20


def _photometric_code(photometric: Any) -> int | None:
    if photometric is None:
        return None
    if isinstance(photometric, str):
        code = PHOTOMETRIC_NAMES.get(photometric.lower())
        if code is None:
            raise TiffValueError(f"unknown photometric {photometric!r}")
        return code
    return int(photometric)


def page_layout(shape: tuple[int, ...], photometric: Any = None, planarconfig: Any = None
                ) -> tuple[tuple[int, ...], str | None, Any]:
    """(shape of the pages axes, planar configuration 'contig' / 'separate' / None for one sample,
    photometric to store) of an array of ``shape``, guessed as tifffile's ``imwrite`` does."""
    ndim = len(shape)
    if ndim < 2:
        raise TiffValueError(f"an image has at least 2 dimensions (length, width), not shape {shape}")
    code = _photometric_code(photometric)
    planar = planarconfig.lower() if isinstance(planarconfig, str) else {1: "contig", 2: "separate"}.get(
        planarconfig, planarconfig)
    if planar not in (None, "contig", "separate"):
        raise TiffValueError(f"planarconfig must be 'contig' or 'separate', not {planarconfig!r}")
    rgb_like = code in (None, 2, 6)
    if planar is None:
        if ndim >= 3 and shape[-1] in (3, 4) and rgb_like:
            planar = "contig"
        elif ndim >= 3 and shape[-3] in (3, 4) and rgb_like:
            planar = "separate"
            code = 2 if code is None else code
        elif code in (2, 6):
            raise TiffValueError(f"photometric RGB needs 3 or 4 samples in the last or third-last dimension "
                                 f"of shape {shape}")
    if planar is not None and ndim < 3:
        raise TiffValueError(f"planarconfig={planar!r} needs a samples dimension; shape {shape} has none")
    pages = shape[:-3] if planar is not None else shape[:-2]
    return tuple(pages), planar, code


def shaped_description(shape: tuple[int, ...], metadata: Mapping[str, Any] | None) -> str | None:
    """tifffile's JSON ImageDescription: ``{"shape": [...], **metadata}`` (None without metadata)."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise TiffTypeError(f"metadata must be a dict or None, not {type(metadata).__name__}")
    try:
        return json.dumps({"shape": [int(n) for n in shape], **{k: v for k, v in metadata.items() if k != "shape"}})
    except TypeError as exc:
        raise TiffTypeError(f"metadata is not JSON-serializable: {exc}") from None


def _chunk_rows(data: Any, axis: int) -> int | None:
    """The input's chunk height along ``axis`` (dask: the largest chunk; zarr: its chunk), or None."""
    chunks = getattr(data, "chunks", None)
    if chunks is None or not isinstance(chunks, (tuple, list)) or len(chunks) <= axis:
        return None
    c = chunks[axis]
    try:
        return int(max(c)) if isinstance(c, (tuple, list)) else int(c)
    except (TypeError, ValueError):
        return None


def band_rows(segment_rows: int, row_nbytes: int, chunk_rows: int | None) -> int:
    """Rows read from the input at once: one segment row, or the segment rows covering one of
    the input's chunk rows (so that a chunked input is not read again for every tile row),
    within BAND_BYTES."""
    rows = segment_rows
    if chunk_rows and chunk_rows > segment_rows:
        rows = -(-chunk_rows // segment_rows) * segment_rows
    limit = max(segment_rows, (BAND_BYTES // max(1, row_nbytes)) // segment_rows * segment_rows)
    return min(rows, limit)


class _PageRelease:
    """Drops the pages of a read-only or shared ``numpy.memmap`` input already written from this
    process's memory (madvise MADV_DONTNEED: the file's pages stay in the page cache), so that the
    resident size stays bounded while a memmap larger than memory is written."""

    def __init__(self, data: Any) -> None:
        self.map: Any = None
        self.address = 0
        self.size = 0
        if not isinstance(data, numpy.memmap) or getattr(data, "mode", None) not in ("r", "r+") or \
                not hasattr(mmap, "MADV_DONTNEED"):
            return
        base: Any = data
        while base is not None and not isinstance(base, mmap.mmap):
            base = getattr(base, "base", None)
        if base is None:
            return
        try:
            self.address = numpy.frombuffer(base, numpy.uint8).ctypes.data
        except (TypeError, ValueError):
            return
        self.map = base
        self.size = len(base)

    def release(self, band: numpy.ndarray) -> None:
        if self.map is None or band.size == 0:
            return
        lo = band.ctypes.data + sum(min(0, (n - 1) * s) for n, s in zip(band.shape, band.strides))
        hi = band.ctypes.data + sum(max(0, (n - 1) * s) for n, s in zip(band.shape, band.strides)) + band.itemsize
        start, end = lo - self.address, hi - self.address
        if start < 0 or end > self.size:
            return  # not a view of the map (a copy was made)
        page = mmap.PAGESIZE
        first = -(-start // page) * page   # whole pages inside the band only
        last = end // page * page
        if last > first:
            try:
                self.map.madvise(mmap.MADV_DONTNEED, first, last - first)
            except (OSError, ValueError):  # pragma: no cover - best effort
                self.map = None


def _write_page(image: ImageWriter, data: Any, index: tuple[int, ...], planar: str | None,
                release: _PageRelease) -> int:
    """Write one page of ``data`` (``data[index]``) into ``image`` in bands; returns the bands."""
    height = image.params["height"]
    th = image.tile[0]
    width = image.params["width"]
    samples = image.samples
    y_axis = len(index) + (1 if planar == "separate" else 0)
    rows = band_rows(th, width * samples * image.dtype.itemsize, _chunk_rows(data, y_axis))
    bands = 0
    pending: list[numpy.ndarray] = []
    for y0 in range(0, height, rows):
        y1 = min(height, y0 + rows)
        if planar == "separate":
            key = index + (slice(None), slice(y0, y1), slice(None))
        else:
            key = index + (slice(y0, y1),)
        band = numpy.asarray(data[key])
        if planar == "separate":
            band = numpy.moveaxis(band, 0, -1)
        # the writer's threads may encode a read-only array in place instead of copying each tile
        band = band.view()
        band.flags.writeable = False
        image.write_region(y0, 0, band)
        bands += 1
        pending.append(band)
        if len(pending) > 2:  # (a band whose tiles may still be queued is released two bands later)
            release.release(pending.pop(0))
    return bands


def imwrite(target: Any, data: Any, *, tile: Any = None, rowsperstrip: int | None = None, compression: Any = None,
            predictor: Any = None, photometric: Any = None, planarconfig: Any = None, pyramid: bool | str = False,
            metadata: Mapping[str, Any] | None = {}, imagej: bool = False, ome: bool | None = None,
            geotiff: GeoTiff | None = None, resolution: Any = None, bigtiff: bool | None = None,
            byteorder: str = "<", workers: int | None = None, fsync: bool = False,
            **options: Any) -> WriteReport:
    """Write ``data`` to ``target`` (a path or a binary file object) as a TIFF; returns a
    :class:`WriteReport` of what was written.

    ``data``: a numpy array or any array-like with ``shape``, ``dtype`` and ``__getitem__`` (read
    in bands of whole tile rows: memory stays bounded by a few bands and the tiles in flight).
    Shapes, photometric and planar configuration are guessed as tifffile's ``imwrite`` does (see
    the module docstring). ``tile=(length, width)`` writes tiles (multiples of 16), else strips
    of ``rowsperstrip`` rows (default: about 256 KiB). ``compression``, ``predictor``,
    ``resolution`` and ``options`` (``compression_level``, ``jpeg_quality``, ``subsampling``,
    ``extratags``, ``software``, ``datetime``, ``pyramid_filter``, ...) are those of
    :meth:`TiffWriter.add_image`; ``extratags`` go to the first page. ``pyramid=True`` adds
    reduced levels (tiles only; one page, or every plane of an OME-TIFF as SubIFDs).
    ``workers`` encoder threads (default: the CPU count). ``fsync=True`` makes every checkpoint
    durable (tifffile does not sync either; off by default). TiffValueError / TiffTypeError /
    UnsupportedFeatureError for data or options that cannot be written (nothing is written then).
    """
    start = time.perf_counter()
    if not hasattr(data, "shape") or not hasattr(data, "dtype") or not hasattr(data, "__getitem__"):
        data = numpy.asarray(data)
    shape = tuple(int(n) for n in data.shape)
    dtype = numpy.dtype(data.dtype)
    if tile is not None:
        tile = (int(tile), int(tile)) if isinstance(tile, (int, numpy.integer)) else tuple(tile)
        if rowsperstrip is not None:
            raise TiffValueError("give tile= or rowsperstrip=, not both")
    name = os.fspath(target) if isinstance(target, (str, os.PathLike)) else str(getattr(target, "name", "<file>"))
    if ome is None:
        ome = not imagej and name.lower().endswith((".ome.tif", ".ome.tiff"))
    if imagej and ome:
        raise TiffValueError("imagej=True and ome=True exclude each other")
    if imagej:
        report = _write_imagej(target, data, shape, dtype, tile=tile, rowsperstrip=rowsperstrip,
                               compression=compression, predictor=predictor, pyramid=pyramid,
                               metadata=metadata, resolution=resolution, byteorder=byteorder, geotiff=geotiff,
                               options=options)
        report.path = name
        report.seconds = time.perf_counter() - start
        return report
    if ome and planarconfig is None and isinstance(metadata, Mapping) and metadata.get("axes"):
        # OME axes say where the samples are: a trailing S, or none (channels are planes)
        planarconfig = "contig" if str(metadata["axes"]).upper().endswith("S") else None
        if planarconfig is None and photometric is None:
            photometric = "minisblack"
    pages_shape, planar, code = page_layout(shape, photometric, planarconfig)
    page_shape = shape[len(pages_shape):]
    npages = int(numpy.prod(pages_shape)) if pages_shape else 1
    extratags = list(options.pop("extratags", ()))
    if geotiff is not None:
        if not isinstance(geotiff, GeoTiff):
            raise TiffTypeError(f"geotiff must be a tiffio.GeoTiff, not {type(geotiff).__name__}")
        extratags = geotiff.to_tags() + extratags
    description: str | None
    if ome:
        description = _ome_description(shape, dtype, pages_shape, planar, metadata)
        pyramid_layout: Any = "subifds" if pyramid else None
    else:
        description = shaped_description(shape, metadata)
        if pyramid and npages > 1:
            raise TiffValueError(f"pyramid=True writes the levels of one image; this array has {npages} pages "
                                 "(ome=True stores a pyramid for every plane)")
        pyramid_layout = "main" if pyramid is True else (pyramid or None)
    if description is not None and "description" in options:
        raise TiffValueError("give description= or metadata=, not both (metadata=None for your own description)")
    description = options.pop("description", description)
    if tile is None:
        if pyramid_layout:
            raise TiffValueError("pyramid=True needs tiles: give tile=(length, width)")
        samples = page_shape[-1] if planar == "contig" else 1
        row_nbytes = max(1, page_shape[-2 if planar == "contig" else -1] * samples * dtype.itemsize)
        if rowsperstrip is None:
            rowsperstrip = max(1, STRIP_BYTES // row_nbytes)
            if parse_compression(compression) == C.JPEG:
                rowsperstrip = -(-rowsperstrip // 16) * 16
    if workers is None:
        workers = os.cpu_count() or 1
    report = WriteReport(path=name, shape=shape, dtype=dtype.str, images=npages, tile=tile,
                         rowsperstrip=rowsperstrip, compression=compression_name(parse_compression(compression)))
    release = _PageRelease(data)
    with TiffWriter(target, bigtiff=bigtiff, byteorder=byteorder, fsync=fsync, workers=workers) as writer:
        for page in range(npages):
            index = tuple(int(i) for i in numpy.unravel_index(page, pages_shape)) if pages_shape else ()
            image = writer.add_image(
                page_shape, dtype, tile=tile if tile is not None else (16, 16), rowsperstrip=rowsperstrip,
                compression=compression, predictor=predictor, photometric=code,
                planarconfig=planar or "contig", description=description if page == 0 else None,
                resolution=resolution, extratags=extratags if page == 0 else (), workers=workers,
                pyramid=pyramid_layout, **options)
            if page == 0:
                report.levels = [tuple(level.shape) for level in image.levels]
                if rowsperstrip is not None:
                    report.rowsperstrip = image.tile[0]
            report.blocks += _write_page(image, data, index, planar, release)
            report.segments += sum(level.tile_count for level in image.levels)
    if isinstance(target, (str, os.PathLike)):
        report.file_bytes = os.path.getsize(target)
    report.seconds = time.perf_counter() - start
    return report


def _ome_description(shape: tuple[int, ...], dtype: numpy.dtype, pages_shape: tuple[int, ...], planar: str | None,
                     metadata: Mapping[str, Any] | None) -> str:
    """The OME-XML of an array written one plane per IFD (axes from ``metadata['axes']`` or guessed)."""
    meta = dict(metadata or {})
    axes = meta.get("axes")
    if planar == "separate":
        raise UnsupportedFeatureError("OME-TIFF planes are written with contiguous samples (axes ...YXS) or as "
                                      "channels (...CYX); not planarconfig='separate'")
    tail = "YXS" if planar == "contig" else "YX"
    if axes is None:
        lead = len(pages_shape)
        if lead > 3:
            raise TiffValueError(f"OME axes for shape {shape}: give metadata={{'axes': ...}} (T, Z, C before YX)")
        axes = "TZC"[3 - lead:] + tail
    axes = str(axes).upper()
    channel = meta.get("Channel") or {}
    names = channel.get("Name") if isinstance(channel, Mapping) else None
    if isinstance(names, str):
        names = [names]
    sizes = {ax: meta[f"PhysicalSize{ax}"] for ax in "XYZ" if meta.get(f"PhysicalSize{ax}") is not None}
    units = {ax: meta[f"PhysicalSize{ax}Unit"] for ax in "XYZ" if meta.get(f"PhysicalSize{ax}Unit") is not None}
    return build_ome_xml([{"shape": shape, "axes": axes, "dtype": dtype, "ifd": 0, "name": meta.get("Name"),
                           "channel_names": names, "physical_size": sizes or None, "physical_unit": units or None,
                           "time_increment": meta.get("TimeIncrement")}])


_IMAGEJ_KEYS = {"spacing": "spacing", "unit": "unit", "finterval": "finterval", "mode": "mode", "Ranges": "ranges",
                "ranges": "ranges", "Labels": "labels", "labels": "labels", "LUTs": "luts", "luts": "luts",
                "Info": "info", "info": "info", "Properties": "properties", "properties": "properties",
                "ROI": "rois", "Overlays": "overlays"}


def _write_imagej(target: Any, data: Any, shape: tuple[int, ...], dtype: numpy.dtype, *, tile: Any,
                  rowsperstrip: Any, compression: Any, predictor: Any, pyramid: Any,
                  metadata: Mapping[str, Any] | None, resolution: Any, byteorder: str, geotiff: Any,
                  options: dict[str, Any]) -> WriteReport:
    """An ImageJ hyperstack: uncompressed contiguous planes, written in bands of rows."""
    if tile is not None or rowsperstrip is not None or parse_compression(compression) != C.NONE or \
            predictor not in (None, False, 1) or pyramid or geotiff is not None or options:
        raise UnsupportedFeatureError("ImageJ hyperstacks are written uncompressed, one strip per plane: "
                                      "no tile=, rowsperstrip=, compression=, predictor=, pyramid=, geotiff= or "
                                      f"other options ({', '.join(sorted(options)) or 'none given'})")
    meta = dict(metadata or {})
    kwargs: dict[str, Any] = {}
    for key, value in meta.items():
        if key in _IMAGEJ_KEYS:
            kwargs[_IMAGEJ_KEYS[key]] = value
        elif key not in ("axes", "shape"):
            kwargs.setdefault("extra", {})[key] = value
    if resolution is not None:
        kwargs["resolution"] = (float(resolution[0]), float(resolution[1]))
    axes = meta.get("axes")
    report = WriteReport(path="", shape=shape, dtype=dtype.str, rowsperstrip=None)
    with ImageJWriter(target, shape, dtype, axes=axes, byteorder=byteorder, **kwargs) as writer:
        plane_shape = writer.plane_shape
        lead = shape[: len(shape) - len(plane_shape)]
        h = plane_shape[0]
        rows = band_rows(1, writer.plane_nbytes // h, _chunk_rows(data, len(lead)))
        rows = max(rows, min(h, max(1, (8 << 20) // max(1, writer.plane_nbytes // h))))
        release = _PageRelease(data)
        for plane in range(writer.plane_count):
            index = tuple(int(i) for i in numpy.unravel_index(plane, lead)) if lead else ()
            for y0 in range(0, h, rows):
                band = numpy.asarray(data[index + (slice(y0, min(h, y0 + rows)),)])
                writer.write_rows(plane, y0, band.reshape((band.shape[0], *plane_shape[1:])))
                release.release(band)
                report.blocks += 1
        report.images = writer.plane_count if not writer.truncated else 1
        report.rowsperstrip = h
        report.segments = writer.plane_count
        report.levels = [tuple(plane_shape)]
    if isinstance(target, (str, os.PathLike)):
        report.file_bytes = os.path.getsize(target)
    return report
