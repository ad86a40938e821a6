"""The base every tiffio zarr store shares (read-only, listable, lazy, picklable by its
arguments) and the buffer helpers of :mod:`tiffio.zarr`; needs zarr >= 3.1."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import numpy
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from ..errors import TiffValueError

THREAD_MIN_BYTES = 64 << 10  # decoded chunks at least this big go to a thread when others wait
INLINE_SEGMENT = 16 << 10  # ... unless made of compressed segments smaller than this
INLINE_FAST_CHUNK = 256 << 10  # ... or chunks of a fast byte codec (Deflate...) smaller than this
INLINE_RAW_SEGMENT = 1 << 20  # ... or of uncompressed ones smaller than this
#: byte codecs that decode at ~1 GB/s (a 128 KiB tile in ~0.1 ms, less than a thread hop under load)
FAST_CODECS = frozenset({5, 8, 32946, 50013, 50000, 34926, 32773})


def slice_bytes(data: numpy.ndarray | bytes, byte_range: ByteRequest | None) -> Any:
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


def to_buffer(prototype: BufferPrototype, data: numpy.ndarray | bytes) -> Buffer:
    if isinstance(data, numpy.ndarray):
        return prototype.buffer.from_array_like(data)
    return prototype.buffer.from_bytes(data)


def chunk_buffer(prototype: BufferPrototype, arr: numpy.ndarray | None, byte_range: ByteRequest | None) -> Buffer | None:
    """A decoded chunk's bytes (None: the chunk is not stored)."""
    if arr is None:
        return None
    return to_buffer(prototype, slice_bytes(arr.reshape(-1).view(numpy.uint8), byte_range))


class ReadOnlyStore(Store):
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
            return to_buffer(prototype, slice_bytes(meta, byte_range))
        handle = self._locate_for_read(key)
        return None if handle is None else chunk_buffer(prototype, self._read(handle), byte_range)

    async def get(self, key: str, prototype: BufferPrototype | None = None,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        prototype = prototype or default_buffer_prototype()
        if byte_range is not None and not isinstance(byte_range, (RangeByteRequest, OffsetByteRequest, SuffixByteRequest)):
            raise ValueError(f"Unexpected byte_range, got {byte_range!r}.")
        meta = self._meta().get(key)
        if meta is not None:
            return to_buffer(prototype, slice_bytes(meta, byte_range))
        handle = self._locate_for_read(key)
        if handle is None:
            return None
        await self._before_read(handle)
        if self._decode_nbytes(handle) >= THREAD_MIN_BYTES:
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
        return chunk_buffer(prototype, arr, byte_range)

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


def prefetch_handles(handles: list[Any]) -> None:
    """Fetch the segments of several chunk handles ((ArrayMap, coords)) per page in one wave each."""
    by_page: dict[int, tuple[Any, list[int]]] = {}
    for arr, coords in handles:
        page, indices = arr.page_segments(coords)
        if page is None or not indices:
            continue
        entry = by_page.setdefault(id(page), (page, []))
        entry[1].extend(indices)
    for page, indices in by_page.values():
        page.prefetch_segments(indices)
