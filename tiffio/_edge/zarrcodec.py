"""The ``tiffio`` zarr v3 codec: a chunk is one TIFF segment's stored bytes, decoded by
:func:`tiffio.decode_segment` (the edge: needs zarr).

It lets a store serve the file's bytes as they are (``TiffStore(decode="codec")``) and lets
kerchunk-style references (``TiffStore.to_references()``) point straight into the TIFF:
whatever tiffio decodes, the codec decodes (CCITT, FillOrder 2, packed bits, JPEG with tables,
YCbCr JPEG, predictors, a short last strip). Its configuration is the IFD's
:class:`tiffio.SegmentSpec` as JSON, the stored segment shape and the chunk shape.
Registered with zarr as ``"tiffio"`` when this module is imported (``import tiffio.zarr``
does it; the ``zarr.codecs`` entry point does it for readers that only have the references).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import numpy
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.registry import register_codec

from ..codecs.decode import SegmentSpec, decode_segment
from ..errors import CorruptSegmentError, TiffError
from ..format.jpeg import starts_with_jfif
from .chunkmap import spec_from_json, spec_to_json

__all__ = ["TiffioCodec", "spec_to_json", "spec_from_json"]

_THREAD_MIN_BYTES = 64 << 10


@dataclasses.dataclass(frozen=True)
class TiffioCodec(ArrayBytesCodec):
    """Decode one stored TIFF segment into one zarr chunk."""

    is_fixed_size = False

    spec: SegmentSpec
    segment: tuple[int, int, int, int]   # stored (depth, rows, width, samples) of a full segment
    chunk: tuple[int, int, int, int]     # the chunk as (depth, rows, width, samples)
    last_rows: int = 0                   # rows of a short last strip (0: none)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TiffioCodec:
        config = data.get("configuration") or {}
        return cls(spec=spec_from_json(config["spec"]), segment=tuple(config["segment"]),
                   chunk=tuple(config["chunk"]), last_rows=int(config.get("last_rows", 0)))

    def to_dict(self) -> dict[str, Any]:
        return {"name": "tiffio", "configuration": {
            "spec": spec_to_json(self.spec), "segment": list(self.segment), "chunk": list(self.chunk),
            "last_rows": self.last_rows}}

    def decode_bytes(self, data: bytes, fill: Any = 0) -> numpy.ndarray:
        """Stored bytes -> the chunk as a (depth, rows, width, samples) array."""
        spec = self.spec
        if spec.jpeg_colorspace == "auto-rgb":  # RGB JPEG: JFIF streams are YCbCr inside (as the reader)
            spec = dataclasses.replace(spec, jpeg_colorspace=None if starts_with_jfif(data) else 2)
        try:
            arr = decode_segment(spec, data, self.segment)
        except CorruptSegmentError:
            if not self.last_rows:
                raise
            d, _h, w, s = self.segment
            try:  # the short last strip of the image
                arr = decode_segment(spec, data, (d, self.last_rows, w, s))
            except TiffError:
                pass
            else:
                return self._fit(arr, fill)
            raise
        return self._fit(arr, fill)

    def _fit(self, arr: numpy.ndarray, fill: Any) -> numpy.ndarray:
        cd, ch, cw, _s = self.chunk
        d, h, w, _ = arr.shape
        if (d, h, w) == (cd, ch, cw):
            return arr
        if d >= cd and h >= ch and w >= cw:
            return arr[:cd, :ch, :cw]
        full = numpy.full(self.chunk, fill, arr.dtype)
        full[:d, :h, :w] = arr[:cd, :ch, :cw]
        return full

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: Any) -> NDBuffer:
        arr = self.decode_bytes(chunk_bytes.to_bytes(), chunk_spec.fill_value)
        native = chunk_spec.dtype.to_native_dtype()
        arr = numpy.ascontiguousarray(arr, dtype=native).reshape(chunk_spec.shape)
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(arr)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: Any) -> NDBuffer:
        if numpy.prod(self.chunk) * self.spec.dtype.itemsize >= _THREAD_MIN_BYTES:
            return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)
        return self._decode_sync(chunk_bytes, chunk_spec)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: Any) -> Buffer | None:
        raise NotImplementedError("the tiffio codec only decodes (TIFF segments are written by tiffio.TiffWriter)")

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: Any) -> int:
        raise NotImplementedError("the size of a stored TIFF segment is not a function of its decoded size")


register_codec("tiffio", TiffioCodec)
