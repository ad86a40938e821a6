"""One image of a TiffWriter: ImageWriter (tile grid, tile checks, its tile index) and
TileEncoder (what an ImageWriter pickles to, for encoding in other processes).

An ImageWriter hands the tiles it checked to its owner (:class:`ImageOwner`: the writer's tile feed,
feed.py), which encodes and stores them; it knows nothing else of the writer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy

from ..codecs import compression_name
from ..codecs.decode import SegmentSpec, decode_segment
from ..codecs.encode import EncodeSpec, encode_segment, make_jpegtables
from ..enums import Compression as C
from ..errors import TiffIndexError, TiffTypeError, TiffUsageError, TiffValueError
from ..format.jpeg import starts_with_jfif
from .blocks import BlockEncoder, EncodedBlock, block_tiles, check_block
from .params import SAMPLEFORMAT
from .pyramid import Pyramid, reduce2
from .tileindex import TileIndex

__all__ = ["ImageWriter", "TileEncoder", "ImageOwner"]


class ImageOwner(Protocol):
    """What an ImageWriter needs of the writer it belongs to."""

    @property
    def images(self) -> Sequence[ImageWriter]:
        """Every image of the writer, by index."""

    def submit(self, image: ImageWriter, index: int, array: numpy.ndarray) -> None:
        """Encode and store tile ``index`` of ``image`` (checked pixels)."""

    def submit_raw(self, image: ImageWriter, index: int, data: bytes, reduced: numpy.ndarray | None = None,
                   reduce: bool = True) -> None:
        """Store encoded bytes as tile ``index`` of ``image`` (``reduced``: its quadrant in a pyramid;
        ``reduce=False``: its parent tile is made elsewhere)."""

    def missing_mask(self, image: ImageWriter) -> numpy.ndarray:
        """True for each tile of ``image`` neither stored nor being encoded."""


class TileEncoder:
    """What an ImageWriter pickles to: its encode spec, with :meth:`encode_tile` and, for pyramids,
    :meth:`encode_and_reduce`."""

    def __init__(self, spec: EncodeSpec, filter: str = "mean", height: int | None = None,
                 width: int | None = None) -> None:
        self.spec = spec
        self.filter = filter
        self.height = height
        self.width = width

    def encode_tile(self, array: Any) -> bytes:
        return encode_segment(self.spec, array)

    def encode_and_reduce(self, array: Any, row: int | None = None, col: int | None = None
                          ) -> tuple[bytes, numpy.ndarray]:
        """The encoded tile and the quadrant it gives its parent in a pyramid (the 2 x 2 reduction of
        its pixels inside the image: give ``row`` and ``col``, or an edge tile cropped to the image);
        hand both to ``write_raw_tile(row, col, data, reduced=quadrant)``."""
        arr = numpy.asarray(array)
        data = encode_segment(self.spec, arr)
        if arr.ndim == 3 and self.spec.samples == 1 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if row is not None and col is not None and self.height is not None and self.width is not None:
            th, tw = self.spec.tile
            arr = arr[: max(0, min(th, self.height - row * th)), : max(0, min(tw, self.width - col * tw))]
        return data, reduce2(arr, self.filter)

    def __reduce__(self) -> Any:
        return (TileEncoder, (self.spec, self.filter, self.height, self.width))


class ImageWriter:
    """One image of a :class:`TiffWriter`: write its tiles in any order."""

    def __init__(self, owner: ImageOwner, index: int, params: dict[str, Any], workers: int,
                 byteorder: str) -> None:
        self._owner = owner
        self.index = index
        self.params = params
        p = params
        self.shape = tuple(p["shape"])
        self.dtype = numpy.dtype(p["dtype"])
        self.tile = tuple(p["tile"])
        self.compression = p["compression"]
        self.photometric = p["photometric"]
        self.planarconfig = "separate" if p["planar"] == 2 else "contig"
        self.missing = p["missing"]
        self.workers = workers
        self.samples = p["samples"]
        self.planes = p["samples"] if p["planar"] == 2 else 1
        th, tw = self.tile
        self.tiles_down = -(-p["height"] // th)
        self.tiles_across = -(-p["width"] // tw)
        self.tile_count = self.planes * self.tiles_down * self.tiles_across
        spec = EncodeSpec(compression=p["compression"], dtype=self.dtype, tile=self.tile,
                          samples=1 if p["planar"] == 2 else p["samples"], byteorder=byteorder,
                          predictor=p["predictor"], level=p["level"], photometric=p["photometric"],
                          jpeg_subsampling=tuple(p["subsampling"]), strips=bool(p.get("strips")))
        if spec.compression == C.JPEG:
            spec = replace(spec, jpegtables=make_jpegtables(spec))
        self._spec = spec
        #: where the stored tiles are, and the blank tile
        self.tiles = TileIndex(self.tile_count, self._encode_blank)
        #: the pyramid this image is a level of (set by the writer, join_pyramid), and which level
        self.pyramid: Pyramid | None = None
        self.level = 0

    # -- public ----------------------------------------------------------------------------
    @property
    def parent(self) -> ImageWriter | None:
        """The full-resolution ImageWriter this image is a reduced level of, or None."""
        k = self.params["parent"]
        return None if k is None else self._owner.images[k]

    @property
    def spec(self) -> EncodeSpec:
        """The frozen, picklable :class:`EncodeSpec` that :meth:`encode_tile` uses (send it to other processes)."""
        return self._spec

    def _encoder(self) -> TileEncoder:
        pyramid = self.params.get("pyramid")
        return TileEncoder(self._spec, pyramid["filter"] if pyramid else "mean", self.params["height"],
                           self.params["width"])

    def __reduce__(self) -> Any:
        return self._encoder().__reduce__()

    def __repr__(self) -> str:
        return (f"<ImageWriter {self.index}: {self.shape} {self.dtype} tiles {self.tile} "
                f"{compression_name(self.compression)}, {len(self.missing_tiles())} of {self.tile_count} missing>")

    def encode_tile(self, array: Any) -> bytes:
        """Encode one tile's pixels into the bytes to store (CPU only, thread-safe)."""
        return encode_segment(self._spec, array)

    def encode_and_reduce(self, array: Any, row: int | None = None, col: int | None = None
                          ) -> tuple[bytes, numpy.ndarray]:
        """Encode one tile and reduce it into the quadrant it gives its parent level (see
        :meth:`TileEncoder.encode_and_reduce`; CPU only, thread-safe, picklable as a TileEncoder)."""
        return self._encoder().encode_and_reduce(array, row, col)

    def block_encoder(self) -> BlockEncoder:
        """The picklable encoder of tile-aligned blocks of this image (see tiffio/writer/blocks.py):
        its ``encode_block(pixels, y, x)`` runs anywhere, with the reduced levels of this image's
        pyramid that a block holds whole; hand the result to :meth:`write_encoded_block`."""
        pyramid = self.params.get("pyramid")
        return BlockEncoder(self._spec, self.params["height"], self.params["width"], planes=self.planes,
                            levels=len(self.levels), filter=pyramid["filter"] if pyramid else "mean",
                            where=f"image {self.index}")

    def write_region(self, y: int, x: int, block: Any, *, plane: int | None = None) -> None:
        """Write a block of many tiles whose top-left pixel is (y, x): its edges must fall on tile
        boundaries or the image edge (a block padded to whole tiles past the edge is cropped);
        TiffValueError otherwise, naming the nearest aligned window. The tiles are encoded like
        :meth:`write_tile`'s (the writer's threads, pyramids); with separate planes, give one
        plane (height, width) and ``plane=``, or all samples (height, width, samples)."""
        self._check_writable()
        arr = numpy.asarray(block)
        if arr.ndim < 2:
            raise TiffValueError(f"image {self.index}: a block has at least 2 dimensions, not shape {arr.shape}")
        h, w = check_block(y, x, arr.shape[0], arr.shape[1], self.tile, (self.params["height"], self.params["width"]),
                           f"image {self.index}")
        for row, col, rows, cols in block_tiles(int(y), int(x), h, w, self.tile):
            self.write_tile(row, col, arr[rows, cols][: h - rows.start, : w - cols.start], plane=plane)

    def write_encoded_block(self, encoded: EncodedBlock) -> None:
        """Store what :meth:`block_encoder`'s ``encode_block`` returned (in this process): the
        tiles of every level it made, and its quadrants into this image's pyramid."""
        self._check_writable()
        levels = self.levels
        quadrants = {(q[0], q[1], q[2], q[3]): q[4] for q in encoded.quadrants}
        top = encoded.local_levels
        for level, row, col, plane, data in encoded.tiles:
            if level >= len(levels):
                raise TiffValueError(f"image {self.index}: an encoded block has level {level} tiles, the image "
                                     f"{len(levels)} levels")
            quadrant = quadrants.get((level, row, col, plane))
            if level == 0 and top == 0:  # the tile's parent (if any) is made here, from its quadrant
                self.write_raw_tile(row, col, data, plane=plane, reduced=quadrant)
                continue
            image = levels[level]
            index = image.tile_index(row, col, plane)
            if not isinstance(data, (bytes, bytearray, memoryview)) or not len(data):
                raise TiffValueError(f"image {self.index}: encoded block tile (level {level}, row {row}, col {col}) "
                                     "is not a non-empty bytes-like")
            # below the block's top local level the parents are in the block; at the top, the quadrant
            # (or, when absent, the decoded tile) goes to the pyramid
            self._owner.submit_raw(image, index, bytes(data), quadrant, reduce=level == top)

    @property
    def levels(self) -> list[ImageWriter]:
        """The levels of this image's pyramid, this image first (``[self]`` without a pyramid)."""
        return list(self.pyramid.levels) if self.pyramid is not None else [self]

    @property
    def pyramid_stats(self) -> dict[str, int] | None:
        """Frontier figures of this image's pyramid (bytes held, peak, quadrants spilled), or None."""
        return self.pyramid.stats if self.pyramid is not None else None

    def tile_index(self, row: int, col: int, plane: int = 0) -> int:
        """The tile's index in TileOffsets (libtiff order: plane, row, column)."""
        if not isinstance(row, (int, numpy.integer)) or not isinstance(col, (int, numpy.integer)) or \
                not isinstance(plane, (int, numpy.integer)):
            raise TiffTypeError(f"tile coordinates must be ints, not {row!r}, {col!r}, plane {plane!r}")
        if not (0 <= row < self.tiles_down and 0 <= col < self.tiles_across and 0 <= plane < self.planes):
            raise TiffIndexError(f"image {self.index}: tile (row {row}, col {col}, plane {plane}) is outside the "
                                 f"grid of {self.tiles_down} x {self.tiles_across} tiles x {self.planes} planes")
        return (int(plane) * self.tiles_down + int(row)) * self.tiles_across + int(col)

    def valid_shape(self, row: int, col: int) -> tuple[int, ...]:
        """Shape of the part of tile (row, col) inside the image."""
        th, tw = self.tile
        h = min(th, self.params["height"] - row * th)
        w = min(tw, self.params["width"] - col * tw)
        return (h, w, self._spec.samples) if self._spec.samples > 1 else (h, w)

    def write_tile(self, row: int, col: int, array: Any, *, plane: int | None = None) -> None:
        """Encode and store one tile. Edge tiles may be given cropped to the image.

        With ``planarconfig='separate'``, give either one plane's samples, shape (length, width),
        with ``plane=``, or the whole pixels, shape (length, width, samples), without ``plane=``:
        each plane is then stored as its own tile."""
        self._check_writable()
        arr = numpy.asarray(array)
        if arr.dtype.newbyteorder("=") != self.dtype:
            raise TiffTypeError(f"image {self.index}: tile dtype {arr.dtype} does not match the image's {self.dtype}")
        if self.planes > 1 and plane is None and arr.ndim == 3:
            self.tile_index(row, col)  # checks the coordinates before anything is stored
            full = self._spec.tile_shape
            valid = self.valid_shape(row, col)
            if arr.shape in ((*full, self.planes), (*valid, self.planes)):
                for k in range(self.planes):
                    self._write_checked(row, col, arr[:, :, k], k)
                return
            raise TiffValueError(self._shape_message(row, col, arr.shape, full, valid))
        self._write_checked(row, col, arr, 0 if plane is None else plane)

    def _check_writable(self) -> None:
        if self.level:
            raise TiffUsageError(f"image {self.index} is level {self.level} of a pyramid: the writer makes its "
                                 "tiles from level 0")

    def _shape_message(self, row: int, col: int, shape: tuple[int, ...], full: tuple[int, ...],
                       valid: tuple[int, ...]) -> str:
        accepted = [full] if valid == full else [full, valid]
        text = " or ".join(str(s) for s in accepted)
        edge = " (full or cropped at the edge)" if valid != full else ""
        if self.planes > 1:
            pixels = " or ".join(str((*s, self.planes)) for s in accepted)
            return (f"image {self.index}: tile (row {row}, col {col}) has shape {shape}; expected one plane "
                    f"{text} with plane=, or whole pixels {pixels} without plane={edge}")
        return f"image {self.index}: tile (row {row}, col {col}) has shape {shape}; expected {text}{edge}"

    def _write_checked(self, row: int, col: int, arr: numpy.ndarray, plane: int) -> None:
        index = self.tile_index(row, col, plane)
        full = self._spec.tile_shape
        valid = self.valid_shape(row, col)
        shape = arr.shape
        if self._spec.samples == 1 and arr.ndim == 3 and arr.shape[2] == 1:
            shape = shape[:2]
        if shape != full and shape != valid:
            raise TiffValueError(self._shape_message(row, col, arr.shape, full, valid))
        self._owner.submit(self, index, arr)

    def write_raw_tile(self, row: int, col: int, data: bytes, *, plane: int = 0,
                       reduced: numpy.ndarray | None = None) -> None:
        """Store pre-encoded bytes as the tile (stored as given, not checked).

        In a pyramid, ``reduced`` is the quadrant the tile gives its parent (from
        :meth:`encode_and_reduce`); without it the tile is decoded to compute it."""
        self._check_writable()
        index = self.tile_index(row, col, plane)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TiffTypeError(f"raw tile data must be bytes-like, not {type(data).__name__}")
        data = bytes(data)
        if not data:
            raise TiffValueError("raw tile data is empty (a zero byte count means a missing tile)")
        quadrant = None
        if reduced is not None:
            if self.pyramid is None:
                raise TiffUsageError(f"image {self.index} has no pyramid: reduced= does not apply")
            quadrant = numpy.asarray(reduced)
            if quadrant.dtype.newbyteorder("=") != self.dtype:
                raise TiffTypeError(f"image {self.index}: reduced quadrant dtype {quadrant.dtype} does not match "
                                    f"the image's {self.dtype}")
            expected = self.pyramid.quadrant_shape(0, row, col)
            if quadrant.shape != expected and quadrant.shape != (*expected, 1):
                raise TiffValueError(f"image {self.index}: tile (row {row}, col {col}): reduced quadrant has "
                                     f"shape {quadrant.shape}, expected {expected}")
        self._owner.submit_raw(self, index, data, quadrant)

    def decode_tile(self, data: bytes) -> numpy.ndarray:
        """Decode bytes stored for one of this image's tiles: the full tile, (length, width[, samples])."""
        p = self.params
        spec = self._spec
        colorspace: Any = None
        outcolorspace: Any = None
        if spec.compression == C.JPEG:
            if p["photometric"] == 6:
                outcolorspace = 2
            elif p["photometric"] == 2 and p["planar"] == 1:
                colorspace, outcolorspace = (None if starts_with_jfif(data) else 2), 2
        segment = SegmentSpec(
            compression=spec.compression, dtype=self.dtype, bits=self.dtype.itemsize * 8,
            sampleformat=SAMPLEFORMAT[self.dtype.kind], byteorder=spec.byteorder,
            predictor=spec.predictor, samples=spec.samples, tiled=True, photometric=p["photometric"],
            jpegtables=spec.jpegtables, jpeg_colorspace=colorspace, jpeg_outcolorspace=outcolorspace,
            where=f"image {self.index}", segment_rows=self.tile[0])
        out = decode_segment(segment, data, (1, self.tile[0], self.tile[1], spec.samples))
        return out[0] if spec.samples > 1 else out[0, :, :, 0]

    def missing_tiles(self) -> list[tuple[int, ...]]:
        """The tiles not written yet: (row, col), or (row, col, plane) for separate planes.

        A tile given to :meth:`write_tile` counts as written at once, also while an encoder
        thread still works on it (an encoding error is raised by a later call)."""
        idx = numpy.flatnonzero(self._owner.missing_mask(self))
        per_plane = self.tiles_down * self.tiles_across
        result: list[tuple[int, ...]] = []
        for i in idx.tolist():
            plane, rest = divmod(i, per_plane)
            row, col = divmod(rest, self.tiles_across)
            result.append((row, col, plane) if self.planes > 1 else (row, col))
        return result

    def join_pyramid(self, pyramid: Pyramid, level: int) -> None:
        """Make this image level ``level`` of ``pyramid`` (the writer does, for every level)."""
        self.pyramid = pyramid
        self.level = level

    # -- internal --------------------------------------------------------------------------
    def _encode_blank(self) -> bytes:
        return encode_segment(self._spec, numpy.zeros(self._spec.tile_shape, self.dtype))
