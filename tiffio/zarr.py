"""TIFF files as read-only zarr v3 stores (the edge: needs ``pip install 'tiffio[zarr]'``).

``TiffStore(path)`` maps zarr keys to tiffio reads, with no copy of the file:

* ``zarr.json`` is a group with OME-NGFF 0.5 ``multiscales`` metadata (one dataset per pyramid
  level of ``TiffFile.levels``, scales from the downsample factors); ``"0"``, ``"1"``, ... are
  the levels; ``masks/<i>`` and ``associated/<name>`` (label, macro, thumbnail) are extra
  arrays, not levels. With ``level=`` or ``multiscales=False`` the root is one array.
* Chunks are the file's segments (``chunks="segment"``: key ``c/.../i/j`` is tile ``(i, j)``
  decoded by ``IFD.read_segment``), windows of ``(h, w)`` pixels read by ``IFD.read_region``
  (rounded up to multiples of the tile shape), or the whole image (``chunks="image"``).
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
import itertools
import math
import os
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import numpy

try:
    from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
    from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("tiffio.zarr needs zarr >= 3.1: pip install 'tiffio[zarr]'") from exc

from .chunkmap import ArrayMap, StoreLayout, dumps_json, window_shape
from .errors import TiffValueError
from .filecache import clear_cache, open_cached, source_path
from .filesequence import FileSequence
from .reader import IFD, TiffFile
from .sources import redact_url

__all__ = ["TiffStore", "FileSequenceStore", "clear_cache"]

_THREAD_MIN_BYTES = 64 << 10  # decoded chunks at least this big go to a thread when others wait
_INLINE_SEGMENT = 16 << 10  # ... unless made of compressed segments smaller than this
_INLINE_RAW_SEGMENT = 1 << 20  # ... or of uncompressed ones smaller than this


def _slice(data: numpy.ndarray | bytes, byte_range: ByteRequest | None) -> Any:
    if byte_range is None:
        return data
    n = len(data)
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start:byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset:]
    if isinstance(byte_range, SuffixByteRequest):
        return data[max(0, n - byte_range.suffix):]
    raise ValueError(f"Unexpected byte_range, got {byte_range!r}.")


def _to_buffer(prototype: BufferPrototype, data: numpy.ndarray | bytes) -> Buffer:
    if isinstance(data, numpy.ndarray):
        return prototype.buffer.from_array_like(data)
    return prototype.buffer.from_bytes(data)


def _chunk_buffer(prototype: BufferPrototype, arr: numpy.ndarray | None, byte_range: ByteRequest | None) -> Buffer | None:
    """A decoded chunk's bytes (None: the chunk is not stored)."""
    if arr is None:
        return None
    return _to_buffer(prototype, _slice(arr.reshape(-1).view(numpy.uint8), byte_range))


class _ReadOnlyStore(Store):
    """What every tiffio store shares: read-only, listable, lazy, picklable by its arguments."""

    _args: tuple

    def __init__(self, *, read_only: bool = True) -> None:
        if not read_only:
            raise TiffValueError(f"{type(self).__name__} is read-only (read_only=False is not supported)")
        super().__init__(read_only=True)
        self._inflight = 0
        self._remote_batch: tuple[asyncio.Future[None], list[Any]] | None = None  # TiffStore._before_read
        self._layout_lock = threading.Lock()

    # identity and pickling: the constructor arguments, nothing else
    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._args == self._args

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._args))

    @property
    def supports_writes(self) -> bool:
        return False

    @property
    def supports_deletes(self) -> bool:
        return False

    @property
    def supports_listing(self) -> bool:
        return True

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()

    # subclasses provide these
    def _meta(self) -> dict[str, bytes]:
        raise NotImplementedError

    def _locate(self, key: str) -> Any:
        """A chunk handle for ``key`` or None (not a chunk, or not stored)."""
        raise NotImplementedError

    def _chunk_nbytes(self, handle: Any) -> int:
        """What getsize reports: the bytes ``get`` returns, found without decoding."""
        raise NotImplementedError

    def _decode_nbytes(self, handle: Any) -> int:
        """Bytes ``_read`` decodes (0: no decoding), to choose between inline and a thread."""
        return self._chunk_nbytes(handle)

    def _locate_for_read(self, key: str) -> Any:
        """A chunk handle for ``get``: may skip the stored check when ``_read`` makes it."""
        return self._locate(key)

    def _read(self, handle: Any) -> numpy.ndarray | None:
        """The chunk's array; None if it is not stored (only for ``_locate_for_read`` handles)."""
        raise NotImplementedError

    async def _before_read(self, handle: Any) -> None:
        """Called by every get before ``_read`` (TiffStore batches remote fetches here)."""

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        raise NotImplementedError

    # reading
    def get_sync(self, key: str, *, prototype: BufferPrototype | None = None,
                 byte_range: ByteRequest | None = None) -> Buffer | None:
        prototype = prototype or default_buffer_prototype()
        meta = self._meta().get(key)
        if meta is not None:
            return _to_buffer(prototype, _slice(meta, byte_range))
        handle = self._locate_for_read(key)
        return None if handle is None else _chunk_buffer(prototype, self._read(handle), byte_range)

    async def get(self, key: str, prototype: BufferPrototype | None = None,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        prototype = prototype or default_buffer_prototype()
        if byte_range is not None and not isinstance(byte_range, (RangeByteRequest, OffsetByteRequest, SuffixByteRequest)):
            raise ValueError(f"Unexpected byte_range, got {byte_range!r}.")
        meta = self._meta().get(key)
        if meta is not None:
            return _to_buffer(prototype, _slice(meta, byte_range))
        handle = self._locate_for_read(key)
        if handle is None:
            return None
        await self._before_read(handle)
        if self._decode_nbytes(handle) >= _THREAD_MIN_BYTES:
            self._inflight += 1
            try:
                await asyncio.sleep(0)  # let the other gets of this batch check in
                if self._inflight > 1:
                    arr = await asyncio.to_thread(self._read, handle)
                else:
                    arr = self._read(handle)
            finally:
                self._inflight -= 1
        else:
            arr = self._read(handle)
        return _chunk_buffer(prototype, arr, byte_range)

    async def get_partial_values(self, prototype: BufferPrototype,
                                 key_ranges: Iterable[tuple[str, ByteRequest | None]]) -> list[Buffer | None]:
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

    async def exists(self, key: str) -> bool:
        return key in self._meta() or self._locate(key) is not None

    async def getsize(self, key: str) -> int:
        meta = self._meta().get(key)
        if meta is not None:
            return len(meta)
        handle = self._locate(key)
        if handle is None:
            raise FileNotFoundError(key)
        return self._chunk_nbytes(handle)

    # listing, lazily
    async def list(self) -> AsyncIterator[str]:
        for key in self._iter_keys(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for key in self._iter_keys(prefix):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        prefix = prefix.rstrip("/")
        head = prefix + "/" if prefix else ""
        seen: set[str] = set()
        for key in self._iter_keys(head):
            child = key[len(head):].split("/", 1)[0]
            if child not in seen:
                seen.add(child)
                yield child


def _prefetch_handles(handles: list[Any]) -> None:
    """Fetch the segments of several chunk handles ((ArrayMap, coords)) per IFD in one wave each."""
    by_ifd: dict[int, tuple[Any, list[int]]] = {}
    for arr, coords in handles:
        entry = by_ifd.setdefault(id(arr.ifd), (arr.ifd, []))
        entry[1].extend(arr.segment_indices(coords))
    for ifd, indices in by_ifd.values():
        ifd.prefetch_segments(indices)


class TiffStore(_ReadOnlyStore):
    """A TIFF file as a read-only zarr v3 store.

    ``zarr.open_group(TiffStore(path), mode="r")["0"]`` is level 0; ``zarr.open_array(
    TiffStore(path, level=1), mode="r")`` is level 1 alone. ``chunks``: ``"segment"`` (one
    chunk per tile or strip), ``"image"`` (one chunk), or ``(height, width)`` windows rounded up
    to multiples of the tile (strip) shape. ``fill`` replaces GDAL_NODATA / 0 for sparse tiles.
    ``extras=False`` leaves out masks and associated images. ``workers`` threads decode the
    tiles of one window (``chunks=(h, w)``; default 1, as zarr already reads chunks in parallel).
    ``strict`` is passed to :func:`tiffio.open` (default: tiffio.open's default).
    ``decode="codec"`` serves each segment's stored bytes, decoded by zarr with the ``tiffio``
    codec (:mod:`tiffio.zarrcodec`); the layout :meth:`to_references` exports.
    """

    def __init__(self, source: Any, *, level: int | None = None, multiscales: bool = True,
                 chunks: str | tuple[int, int] = "segment", fill: Any = None, extras: bool = True,
                 workers: int | None = 1, strict: bool | None = None, decode: str = "store",
                 read_only: bool = True) -> None:
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
        if decode not in ("store", "codec"):
            raise TiffValueError(f"decode must be 'store' or 'codec', not {decode!r}")
        if decode == "codec":
            from . import zarrcodec  # noqa: F401 - registers the codec zarr will ask for
        if fill is not None:
            fill = fill.item() if isinstance(fill, numpy.generic) else fill
        fill_key = "nan" if isinstance(fill, float) and math.isnan(fill) else fill
        self.path = path
        self.level = level
        self.multiscales = bool(multiscales)
        self.chunks = chunks
        self.fill = fill
        self.extras = bool(extras)
        self.workers = workers
        self.strict = strict
        self.decode = decode
        self._args = (path, level, self.multiscales, chunks, fill_key, self.extras, workers, strict, decode)
        self._tif = tif
        self._layout: StoreLayout | None = None

    def __reduce__(self) -> Any:
        return (_rebuild_tiff_store, (type(self), self.path, self.level, self.multiscales, self.chunks, self.fill,
                                      self.extras, self.workers, self.strict, self.decode))

    def __repr__(self) -> str:
        extra = "" if self.level is None else f", level={self.level}"
        extra += "" if self.decode == "store" else f", decode={self.decode!r}"
        return f"TiffStore({redact_url(self.path)!r}{extra}, chunks={self.chunks!r})"

    @property
    def tiff(self) -> TiffFile:
        """The open TiffFile (opened on first use in each process)."""
        tif = self._tif
        if tif is None or tif.closed:
            tif = self._tif = open_cached(self.path, self.strict)
        return tif

    @property
    def layout(self) -> StoreLayout:
        lay = self._layout
        if lay is None:
            with self._layout_lock:
                lay = self._layout
                if lay is None:
                    lay = self._layout = StoreLayout(self.tiff, self.path, self.level, self.multiscales, self.chunks,
                                                     self.fill, self.extras, self.workers, self.decode == "codec")
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
        small = _INLINE_RAW_SEGMENT if arr.ifd.compression == 1 else _INLINE_SEGMENT
        if arr.raw or arr.segment_nbytes < small:
            # chunks of small segments decode inline: zarr runs up to 10 gets at once, and ten
            # threads decoding 64² tiles only contend for the GIL (a 4096² level of 64² uint16
            # Deflate tiles in 1024² chunks: ~0.38 s in threads, ~0.19 s inline)
            return 0
        return arr.chunk_nbytes

    async def _before_read(self, handle: Any) -> None:
        """Remote files: the gets zarr issues together (one event-loop tick) share one planned
        fetch of all their segments (IFD.prefetch_segments), instead of one request each."""
        arr, _coords = handle
        if not arr.ifd._tiff.source.remote:
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
            await asyncio.to_thread(_prefetch_handles, batch[1])
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

        Open them with fsspec's reference filesystem and zarr (``import tiffio.zarrcodec``
        registers the codec, as does the ``zarr.codecs`` entry point)::

            fs = fsspec.filesystem("reference", fo=refs, asynchronous=True)
            zarr.open_group(zarr.storage.FsspecStore(fs, read_only=True, path=""), mode="r")
        """
        raw = self if self.decode == "codec" else TiffStore(
            self.path, level=self.level, multiscales=self.multiscales, chunks=self.chunks, fill=self.fill,
            extras=self.extras, workers=self.workers, strict=self.strict, decode="codec")
        target = url or self.path
        refs: dict[str, Any] = {key: value.decode() for key, value in raw.layout.meta.items()}
        for arr in raw.layout.arrays:
            for key in arr.iter_chunk_keys():
                offset, count = arr.location(arr.coords(key[len(arr.prefix) + 2:]))  # type: ignore[arg-type]
                refs[key] = [target, offset, count]
        return {"version": 1, "refs": refs}


def _rebuild_tiff_store(cls: type, path: str, level: int | None, multiscales: bool, chunks: Any, fill: Any,
                        extras: bool, workers: int | None, strict: bool | None, decode: str = "store") -> TiffStore:
    return cls(path, level=level, multiscales=multiscales, chunks=chunks, fill=fill, extras=extras,
               workers=workers, strict=strict, decode=decode)


class FileSequenceStore(_ReadOnlyStore):
    """Many TIFF files (a :class:`tiffio.FileSequence`) as one read-only zarr v3 array.

    The array's shape is the sequence shape followed by the shape of one file's image
    (``ifd=``, default the first IFD of each file); ``chunks="file"`` makes one chunk per file,
    ``chunks="segment"`` one per tile or strip inside each file. Every file must have the
    first file's shape and dtype; positions with no file (missing files) read as ``fill``.
    """

    def __init__(self, files: Any, *, pattern: Any = None, axesorder: Any = None, categories: Any = None,
                 shape: Any = None, chunks: str = "file", ifd: int = 0, fill: Any = None,
                 strict: bool | None = None, read_only: bool = True) -> None:
        super().__init__(read_only=read_only)
        seq = files if isinstance(files, FileSequence) else FileSequence(
            files, pattern=pattern, axesorder=axesorder, categories=categories, shape=shape)
        if chunks not in ("file", "segment"):
            raise TiffValueError(f"chunks must be 'file' or 'segment', not {chunks!r}")
        if fill is not None:
            fill = fill.item() if isinstance(fill, numpy.generic) else fill
        self.sequence = seq
        self.chunks = chunks
        self.ifd = int(ifd)
        self.fill = fill
        self.strict = strict
        self._args = (seq, chunks, self.ifd, "nan" if isinstance(fill, float) and math.isnan(fill) else fill, strict)
        self._state: tuple[ArrayMap, dict[str, bytes]] | None = None

    def __reduce__(self) -> Any:
        return (_rebuild_sequence_store, (type(self), self.sequence, self.chunks, self.ifd, self.fill, self.strict))

    def __repr__(self) -> str:
        return f"FileSequenceStore({len(self.sequence)} files, shape {self.sequence.shape}, chunks={self.chunks!r})"

    def _ifd_of(self, path: str) -> IFD:
        tif = open_cached(os.path.abspath(path) if "://" not in path else path, self.strict)
        return tif.ifds[self.ifd]

    @property
    def _first(self) -> tuple[ArrayMap, dict[str, bytes]]:
        state = self._state
        if state is None:
            with self._layout_lock:
                state = self._state
                if state is None:
                    seq = self.sequence
                    arr = ArrayMap("", self._ifd_of(seq.files[0]), "segment" if self.chunks == "segment" else "image",
                                 self.fill, 1)
                    metadata = dict(arr.metadata)
                    metadata["shape"] = list(seq.shape) + list(arr.shape)
                    metadata["chunk_grid"] = {"name": "regular", "configuration": {
                        "chunk_shape": [1] * len(seq.shape) + list(arr.chunk_shape)}}
                    metadata["dimension_names"] = list(seq.dims) + arr.dimension_names
                    metadata["attributes"] = {"tiffio": {"axes": seq.axes, "files": len(seq), "missing": seq.size - len(seq)}}
                    state = self._state = (arr, {"zarr.json": dumps_json(metadata)})
        return state

    def _meta(self) -> dict[str, bytes]:
        return self._first[1]

    def _locate(self, key: str) -> Any:
        if not key.startswith("c/"):
            return None
        first, _ = self._first
        seq = self.sequence
        parts = key[2:].split("/")
        n = len(seq.shape)
        if len(parts) != n + len(first.grid_shape):
            return None
        try:
            pos = tuple(int(p) for p in parts[:n])
        except ValueError:
            return None
        if any(not 0 <= i < s or str(i) != p for i, s, p in zip(pos, seq.shape, parts)):
            return None
        coords = first.coords("/".join(parts[n:]))
        if coords is None:
            return None
        path = seq.file_at(pos)
        if path is None:
            return None  # a missing file: zarr fills it
        arr = self._array_of(path, first)
        return (arr, coords) if arr.is_stored(coords) else None

    def _array_of(self, path: str, first: ArrayMap) -> ArrayMap:
        ifd = self._ifd_of(path)
        if ifd is first.ifd:
            return first
        arr = ArrayMap("", ifd, "segment" if self.chunks == "segment" else "image", self.fill, 1)
        if arr.shape != first.shape or arr.dtype != first.dtype or arr.chunk_shape != first.chunk_shape:
            raise TiffValueError(f"{path}: image {arr.shape} {arr.dtype} (chunks {arr.chunk_shape}) differs from the "
                                 f"first file's {first.shape} {first.dtype} (chunks {first.chunk_shape})")
        return arr

    def _chunk_nbytes(self, handle: Any) -> int:
        return handle[0].chunk_nbytes

    def _read(self, handle: Any) -> numpy.ndarray:
        arr, coords = handle
        return arr.read(coords)

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        first, _meta = self._first
        if "zarr.json".startswith(prefix):
            yield "zarr.json"
        if not ("c/".startswith(prefix) or prefix.startswith("c/")):
            return
        for pos, path in self.sequence.items():
            arr = self._array_of(path, first)
            head = "c/" + "/".join(map(str, pos)) + "/"
            for coords in itertools.product(*(range(n) for n in arr.grid_shape)):
                key = head + "/".join(map(str, coords))
                if key.startswith(prefix) and arr.is_stored(coords):
                    yield key


def _rebuild_sequence_store(cls: type, seq: FileSequence, chunks: str, ifd: int, fill: Any,
                            strict: bool | None) -> FileSequenceStore:
    return cls(seq, chunks=chunks, ifd=ifd, fill=fill, strict=strict)
