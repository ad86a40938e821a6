"""TIFF files as read-only zarr v3 stores (the edge: needs ``pip install 'tiffio[zarr]'``).

``TiffStore(path)`` maps zarr keys to tiffio reads, with no copy of the file:

* ``zarr.json`` is a group that lists every series of the file (:mod:`tiffio._edge.hierarchy`):
  series 0 at the root with OME-NGFF 0.5 ``multiscales`` metadata (``"0"``, ``"1"``, ... are
  its levels, with the series' shape: pages are leading axes), series ``i`` under
  ``series/<i>``, ``masks/<i>`` and ``associated/<name>`` (label, macro, thumbnail) as extra
  arrays. With ``series=`` the root is that series' group; with ``level=``, ``key=`` or
  ``multiscales=False`` the root is one array. Arrays have zarr v3 ``dimension_names`` from
  the series' axes (:func:`tiffio.read.series.pages.dimension_names`).
* Chunks are one page's segments (``chunks="segment"``: key ``c/.../i/j`` is tile ``(i, j)``
  of the page the leading indices select, decoded by ``IFD.read_segment``), windows of
  ``(h, w)`` pixels read by ``IFD.read_region`` (rounded up to multiples of the tile shape),
  or the whole page (``chunks="image"``); leading (page) axes are chunked by 1.
* Sparse segments (offset or byte count 0) are absent: ``get`` returns None (zarr fills
  them with the array's ``fill_value``: ``fill=``, else GDAL_NODATA, else 0), ``exists`` is
  False and ``list`` skips them, so ``nchunks_initialized`` counts stored chunks.
* ``getsize`` never decodes. Chunks worth it (>= 64 KiB decoded) are decoded in
  ``asyncio.to_thread`` when several are requested at once, inline otherwise (the thread hop
  costs more than decoding a small tile). Reads are positional: no lock.
* A store pickles to its constructor arguments (a few hundred bytes, identical every time,
  so dask names are deterministic) and reopens the file lazily in each process, through a
  per-process cache of open files keyed by path, size and mtime.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy

try:
    import zarr.abc.store  # noqa: F401 - zarr 3 is there (else the message below, not zarrbase's ImportError)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("tiffio.zarr needs zarr >= 3.1: pip install 'tiffio[zarr]'") from exc

from ._edge.chunkmap import window_shape
from ._edge.filecache import clear_cache, open_cached, remote_key, source_path
from ._edge.hierarchy import StoreHierarchy
from ._edge.selection import key_arg, key_token
from ._edge.sequencemap import SequenceMap
from ._edge.zarrbase import (
    FAST_CODECS,
    INLINE_FAST_CHUNK,
    INLINE_RAW_SEGMENT,
    INLINE_SEGMENT,
    ReadOnlyStore,
    prefetch_handles,
)
from .errors import TiffValueError
from .read.file import TiffFile
from .read.filesequence import FileSequence
from .sources import redact_url

__all__ = ["TiffStore", "FileSequenceStore", "clear_cache"]

class TiffStore(ReadOnlyStore):
    """A TIFF file as a read-only zarr v3 store.

    ``zarr.open_group(TiffStore(path), mode="r")["0"]`` is level 0 of series 0, with the
    series' shape (a 40-page stack: ``(40, 512, 512)``); ``group["series/1/0"]`` is series 1;
    ``zarr.open_array(TiffStore(path, level=1), mode="r")`` is level 1 of series 0 alone.

    ``series``: that series' multiscales group at the root (an array with ``level=``);
    ``key``: the page(s) of the series (``series`` or 0) to serve as the root array, as
    :meth:`tiffio.Series.asarray` selects them (an int: that page; a slice or a list: a stack
    of pages) - tifffile's ``aszarr(series=, key=)``; ``squeeze``: None (the series' own
    shape, as tifffile), True (every length-1 axis but Y and X dropped) or False (none dropped).
    ``chunks``: ``"segment"`` (one chunk per tile or strip of a page), ``"image"`` (one chunk
    per page), or ``(height, width)`` windows rounded up to multiples of the tile (strip)
    shape; page axes are chunked by 1. ``fill`` replaces GDAL_NODATA / 0 for sparse tiles and
    missing pages. ``extras=False`` leaves out masks and associated images. ``attrs``: a dict
    of JSON values added to the root's attributes. ``workers`` threads decode the tiles of one
    window (``chunks=(h, w)``; default 1, as zarr already reads chunks in parallel).
    ``strict`` is passed to :func:`tiffio.open` (default: tiffio.open's default), and so are
    the ``remote`` keywords for URLs (``timeout=``, ``headers=``, ``storage_options=``...): a
    chunk read from a stalled server raises :class:`~tiffio.SourceTimeoutError`.
    ``decode="codec"`` serves each segment's stored bytes, decoded by zarr with the ``tiffio``
    codec (:mod:`tiffio._edge.zarrcodec`); the layout :meth:`to_references` exports.
    """

    def __init__(self, source: Any, *, series: int | None = None, level: int | None = None, key: Any = None,
                 squeeze: bool | None = None, multiscales: bool = True, chunks: str | tuple[int, int] = "segment",
                 fill: Any = None, extras: bool = True, attrs: dict[str, Any] | None = None,
                 workers: int | None = 1, strict: bool | None = None, decode: str = "store",
                 read_only: bool = True, **remote: Any) -> None:
        super().__init__(read_only=read_only)
        path = source_path(source)
        tif = source if isinstance(source, TiffFile) else None
        if isinstance(chunks, str):
            if chunks not in ("segment", "image"):
                raise TiffValueError(f"chunks must be 'segment', 'image' or (height, width), not {chunks!r}")
        else:
            chunks = window_shape(chunks, "'segment', 'image' or (height, width)")
        if level is not None:
            level = int(level)
        if series is not None:
            series = int(series)
        key = key_arg(key)
        if squeeze is not None:
            squeeze = bool(squeeze)
        try:
            attrs_key = None if attrs is None else json.dumps(attrs, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TiffValueError(f"attrs must be a dict of JSON values: {exc}") from None
        if attrs is not None and not isinstance(attrs, dict):
            raise TiffValueError(f"attrs must be a dict of JSON values, not {type(attrs).__name__}")
        if decode not in ("store", "codec"):
            raise TiffValueError(f"decode must be 'store' or 'codec', not {decode!r}")
        if decode == "codec":
            from ._edge import zarrcodec  # noqa: F401 - registers the codec zarr will ask for
        if fill is not None:
            fill = fill.item() if isinstance(fill, numpy.generic) else fill
        fill_key = "nan" if isinstance(fill, float) and math.isnan(fill) else fill
        self.path = path
        self.series = series
        self.level = level
        self.key = key
        self.squeeze = squeeze
        self.multiscales = bool(multiscales)
        self.chunks = chunks
        self.fill = fill
        self.extras = bool(extras)
        self.attrs = attrs
        self.workers = workers
        self.strict = strict
        self.decode = decode
        self.remote = remote
        self._args = (path, level, self.multiscales, chunks, fill_key, self.extras, workers, strict, decode,
                      series, key_token(key), squeeze, attrs_key, remote_key(remote))
        self._tif = tif
        self._layout: StoreHierarchy | None = None

    def _kwargs(self) -> dict[str, Any]:
        return dict(series=self.series, level=self.level, key=self.key, squeeze=self.squeeze,
                    multiscales=self.multiscales, chunks=self.chunks, fill=self.fill, extras=self.extras,
                    attrs=self.attrs, workers=self.workers, strict=self.strict, decode=self.decode, **self.remote)

    def __reduce__(self) -> Any:
        return (_rebuild_tiff_store, (type(self), self.path, self._kwargs()))

    def __repr__(self) -> str:
        extra = "" if self.series is None else f", series={self.series}"
        extra += "" if self.level is None else f", level={self.level}"
        extra += "" if self.key is None else f", key={self.key!r}"
        extra += "" if self.decode == "store" else f", decode={self.decode!r}"
        return f"TiffStore({redact_url(self.path)!r}{extra}, chunks={self.chunks!r})"

    @property
    def supports_consolidated_metadata(self) -> bool:
        """False: the metadata is made from the file on open, there is nothing to consolidate
        (xarray's ``open_zarr`` then reads it without warning)."""
        return False

    @property
    def tiff(self) -> TiffFile:
        """The open TiffFile (opened on first use in each process)."""
        tif = self._tif
        if tif is None or tif.closed:
            tif = self._tif = open_cached(self.path, self.strict, self.remote)
        return tif

    @property
    def layout(self) -> StoreHierarchy:
        lay = self._layout
        if lay is None:
            with self._layout_lock:
                lay = self._layout
                if lay is None:
                    lay = self._layout = StoreHierarchy(self.tiff, self.path, self.level, self.multiscales, self.chunks,
                                                     self.fill, self.extras, self.workers, self.decode == "codec",
                                                     series=self.series, key=self.key, squeeze=self.squeeze,
                                                     attrs=self.attrs)
        return lay

    def close(self) -> None:
        """Drop this store's reference to the file (the process cache may keep it open)."""
        super().close()
        self._layout = None
        self._tif = None

    def _meta(self) -> dict[str, bytes]:
        return self.layout.meta

    def _locate(self, key: str) -> Any:
        found = self.layout.chunk(key)
        if found is None or not found[0].is_stored(found[1]):
            return None
        return found

    def _locate_for_read(self, key: str) -> Any:
        found = self.layout.chunk(key)
        if found is None or found[0].raw or found[0].region:
            return self._locate(key)
        return found  # a segment chunk: ArrayMap.read_stored finds out whether it is stored

    def _chunk_nbytes(self, handle: Any) -> int:
        arr, coords = handle
        return arr.location(coords)[1] if arr.raw else arr.chunk_nbytes

    def _decode_nbytes(self, handle: Any) -> int:
        arr = handle[0]
        compression = arr.ifd.compression
        small = INLINE_RAW_SEGMENT if compression == 1 else INLINE_SEGMENT
        if arr.raw or arr.segment_nbytes < small:
            # chunks of small segments decode inline: zarr runs up to 10 gets at once, and ten
            # threads decoding 64² tiles only contend for the GIL (a 4096² level of 64² uint16
            # Deflate tiles in 1024² chunks: ~0.38 s in threads, ~0.19 s inline)
            return 0
        if compression in FAST_CODECS and arr.chunk_nbytes < INLINE_FAST_CHUNK:
            # a 256² uint16 Deflate tile decodes in ~0.08 ms, less than the hop to a thread (a
            # 40-page stack of them, one tile per chunk: 1.55 s in threads, 0.79 s inline,
            # tifffile's store 0.82 s); windows of several such tiles are worth the hop
            return 0
        return arr.chunk_nbytes

    async def _before_read(self, handle: Any) -> None:
        """Remote files: the gets zarr issues together (one event-loop tick) share one planned
        fetch of all their segments (IFD.prefetch_segments), instead of one request each."""
        arr, _coords = handle
        if not arr.ifd.context.source.remote or arr.whole:
            return
        batch = self._remote_batch
        owner = batch is None
        if batch is None:
            batch = self._remote_batch = (asyncio.get_running_loop().create_future(), [])
        batch[1].append(handle)
        await asyncio.sleep(0)  # the other gets of this zarr batch check in
        if not owner:
            await batch[0]
            return
        self._remote_batch = None
        try:
            await asyncio.to_thread(prefetch_handles, batch[1])
        except Exception:  # each get then reads (and reports the error) on its own
            pass
        finally:
            batch[0].set_result(None)

    def _read(self, handle: Any) -> numpy.ndarray | None:
        arr, coords = handle
        if arr.raw:
            return numpy.frombuffer(arr.read_raw(coords), numpy.uint8)
        if not arr.region:
            return arr.read_stored(coords)
        return arr.read(coords)

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        return self.layout.iter_keys(prefix)

    def to_references(self, url: str | None = None) -> dict[str, Any]:
        """Kerchunk references (version 1) to this store's arrays in raw form: metadata inline,
        each stored segment as ``[url, offset, byte_count]`` (sparse segments are left out,
        so they read as the fill value). ``url`` defaults to the file's path.

        Open them with fsspec's reference filesystem and zarr (the ``zarr.codecs`` entry point of
        an installed tiffio registers the codec)::

            fs = fsspec.filesystem("reference", fo=refs, asynchronous=True)
            zarr.open_group(zarr.storage.FsspecStore(fs, read_only=True, path=""), mode="r")
        """
        raw = self if self.decode == "codec" else type(self)(self.path, **{**self._kwargs(), "decode": "codec"})
        target = url or self.path
        refs: dict[str, Any] = {key: value.decode() for key, value in raw.layout.meta.items()}
        for arr in raw.layout.arrays:
            for key in arr.iter_chunk_keys():
                offset, count = arr.location(arr.coords(key[len(arr.prefix) + 2:]))  # type: ignore[arg-type]
                refs[key] = [target, offset, count]
        return {"version": 1, "refs": refs}


def _rebuild_tiff_store(cls: type, path: str, kwargs: dict[str, Any]) -> TiffStore:
    return cls(path, **kwargs)


class FileSequenceStore(ReadOnlyStore):
    """Many TIFF files (a :class:`tiffio.FileSequence`) as one read-only zarr v3 array
    (:mod:`tiffio._edge.sequencemap`), as tifffile's ``FileSequence.aszarr``.

    The array's shape is the sequence shape followed by the shape of each file's array: its
    series ``series`` (the array ``tiffio.imread`` reads; ``key=`` selects pages), or, with
    ``ifd=``, that IFD's image. ``chunks="file"`` makes one chunk per file,
    ``chunks="segment"`` one per tile or strip inside each file. Every file must have the
    first file's shape and dtype; positions with no file (missing files) read as ``fill``.

    ``axestiled={sequence axis: image axis}`` lays the files of a sequence axis side by side
    along an image axis (a mosaic: ``{0: 0, 1: 1}`` makes a rows x columns grid of files one
    plane). ``chunkshape=`` and ``chunkdtype=`` give each file's array shape and dtype, so the
    first file is not read to learn them (an ``imread`` function only). ``imread=`` reads each
    file with that function instead (``path -> array``: PNG or JPEG sequences through
    ``imagecodecs.imread``, say; a module-level function, so that the store pickles).
    ``attrs``: a dict of JSON values added to the array's attributes.
    """

    def __init__(self, files: Any, *, pattern: Any = None, axesorder: Any = None, categories: Any = None,
                 shape: Any = None, chunks: str = "file", series: int = 0, key: Any = None, ifd: int | None = None,
                 fill: Any = None, axestiled: Any = None, chunkshape: Any = None, chunkdtype: Any = None,
                 imread: Any = None, attrs: dict[str, Any] | None = None, strict: bool | None = None,
                 read_only: bool = True) -> None:
        super().__init__(read_only=read_only)
        seq = files if isinstance(files, FileSequence) else FileSequence(
            files, pattern=pattern, axesorder=axesorder, categories=categories, shape=shape)
        if chunks not in ("file", "segment"):
            raise TiffValueError(f"chunks must be 'file' or 'segment', not {chunks!r}")
        if fill is not None:
            fill = fill.item() if isinstance(fill, numpy.generic) else fill
        if imread is not None and not callable(imread):
            raise TiffValueError(f"imread must be a function path -> array, not {imread!r}")
        try:
            attrs_key = None if attrs is None else json.dumps(attrs, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TiffValueError(f"attrs must be a dict of JSON values: {exc}") from None
        self.sequence = seq
        self.chunks = chunks
        self.series = int(series)
        self.key = key_arg(key)
        self.ifd = None if ifd is None else int(ifd)
        self.fill = fill
        self.axestiled = None if not axestiled else tuple(sorted(dict(axestiled).items()))
        self.chunkshape = None if chunkshape is None else tuple(int(n) for n in chunkshape)
        self.chunkdtype = None if chunkdtype is None else numpy.dtype(chunkdtype).str
        self.imread = imread
        self.attrs = attrs
        self.strict = strict
        self._args = (seq, chunks, self.series, key_token(self.key), self.ifd,
                      "nan" if isinstance(fill, float) and math.isnan(fill) else fill, self.axestiled,
                      self.chunkshape, self.chunkdtype, imread, attrs_key, strict)
        self._state: SequenceMap | None = None

    def __reduce__(self) -> Any:
        return (_rebuild_sequence_store, (type(self), self.sequence, dict(
            chunks=self.chunks, series=self.series, key=self.key, ifd=self.ifd, fill=self.fill,
            axestiled=self.axestiled, chunkshape=self.chunkshape, chunkdtype=self.chunkdtype, imread=self.imread,
            attrs=self.attrs, strict=self.strict)))

    def __repr__(self) -> str:
        return f"FileSequenceStore({len(self.sequence)} files, shape {self.sequence.shape}, chunks={self.chunks!r})"

    @property
    def supports_consolidated_metadata(self) -> bool:
        """False: the metadata is made from the first file on open."""
        return False

    @property
    def _map(self) -> SequenceMap:
        state = self._state
        if state is None:
            with self._layout_lock:
                state = self._state
                if state is None:
                    state = self._state = SequenceMap(
                        self.sequence, chunks=self.chunks, series=self.series, key=self.key, ifd=self.ifd,
                        fill=self.fill, axestiled=dict(self.axestiled or ()), chunkshape=self.chunkshape,
                        chunkdtype=self.chunkdtype, imread=self.imread, attrs=self.attrs, strict=self.strict)
        return state

    def _meta(self) -> dict[str, bytes]:
        return self._map.meta

    def _locate(self, key: str) -> Any:
        return self._map.locate(key)

    def _chunk_nbytes(self, handle: Any) -> int:
        return self._map.chunk_nbytes

    def _read(self, handle: Any) -> numpy.ndarray:
        return self._map.read(handle)

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        return self._map.iter_keys(prefix)


def _rebuild_sequence_store(cls: type, seq: FileSequence, kwargs: dict[str, Any]) -> FileSequenceStore:
    return cls(seq, **kwargs)
