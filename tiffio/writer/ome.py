"""OME-TIFF writing on top of TiffWriter: one IFD per plane in the main chain, the
OME-XML in IFD 0's ImageDescription, and pyramid levels as SubIFDs of each plane
(NewSubfileType 1, largest first, every plane with the same levels), the layout
Bio-Formats / QuPath and tifffile read. BigTIFF is chosen at close when needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy

from ..errors import TiffValueError
from ..metadata.ome import build_ome_xml
from .tiffwriter import TiffWriter

__all__ = ["write_ome", "downsample2"]


def downsample2(plane: numpy.ndarray) -> numpy.ndarray:
    """Half size in Y and X by the mean of 2 x 2 blocks (edges: the mean of what exists)."""
    h, w = plane.shape[:2]
    acc = plane.astype(numpy.float64)
    ph, pw = h + (h & 1), w + (w & 1)
    if (ph, pw) != (h, w):
        pad = [(0, ph - h), (0, pw - w)] + [(0, 0)] * (plane.ndim - 2)
        acc = numpy.pad(acc, pad, mode="edge")
    acc = (acc[0::2, 0::2] + acc[1::2, 0::2] + acc[0::2, 1::2] + acc[1::2, 1::2]) / 4
    if plane.dtype.kind in "iu":
        acc = numpy.rint(acc)
    return acc.astype(plane.dtype)


def _write_plane(image: Any, plane: numpy.ndarray, tile: tuple[int, int]) -> None:
    th, tw = tile
    h, w = plane.shape[:2]
    for row in range(-(-h // th)):
        for col in range(-(-w // tw)):
            image.write_tile(row, col, plane[row * th:(row + 1) * th, col * tw:(col + 1) * tw])


def write_ome(target: str | os.PathLike[str] | Any, data: Any, axes: str, *, subresolutions: int = 0,
              tile: tuple[int, int] = (256, 256), compression: Any = None, name: str | None = None,
              channel_names: Sequence[str] | None = None, physical_size: dict[str, float] | None = None,
              physical_unit: dict[str, str] | None = None, time_increment: float | None = None,
              bigtiff: bool | None = None, workers: int | None = None, extratags: Iterable = (),
              levels: Sequence[Any] | None = None, **image_options: Any) -> str:
    """Write ``data`` (axes: T, Z, C in any order, then YX and an optional trailing S,
    e.g. 'TCZYX', 'CYX', 'YXS') as a tiled OME-TIFF; returns the OME-XML written.

    ``subresolutions``: pyramid levels below full size, each half the previous (2 x 2
    mean), stored as SubIFDs; or ``levels``: the reduced arrays yourself (same axes).
    ``compression`` and other ``image_options`` go to :meth:`TiffWriter.add_image`.
    """
    arr = numpy.asarray(data)
    axes = axes.upper()
    if len(axes) != arr.ndim:
        raise TiffValueError(f"axes {axes!r} do not match data of shape {arr.shape}")
    core = axes[:-1] if axes.endswith("S") else axes
    if not core.endswith("YX"):
        raise TiffValueError(f"OME axes end in YX or YXS, not {axes!r}")
    nplane_axes = len(core) - 2
    planes_shape = arr.shape[:nplane_axes]
    plane_shape = arr.shape[nplane_axes:]
    nplanes = int(numpy.prod(planes_shape)) if planes_shape else 1
    planes = arr.reshape((nplanes, *plane_shape))
    if levels is not None:
        pyramid = [numpy.asarray(level).reshape((nplanes, *numpy.asarray(level).shape[nplane_axes:]))
                   for level in levels]
    else:
        pyramid = []
        current = planes
        for _ in range(int(subresolutions)):
            current = numpy.stack([downsample2(p) for p in current])
            pyramid.append(current)
    xml = build_ome_xml([{
        "shape": arr.shape, "axes": axes, "dtype": arr.dtype, "ifd": 0, "name": name,
        "channel_names": channel_names, "physical_size": physical_size, "physical_unit": physical_unit,
        "time_increment": time_increment}])
    photometric = image_options.pop("photometric", "rgb" if axes.endswith("S") and plane_shape[-1] == 3
                                    and arr.dtype == numpy.uint8 else "minisblack")
    with TiffWriter(target, bigtiff=bigtiff) as writer:
        for i in range(nplanes):
            img = writer.add_image(plane_shape, arr.dtype, tile=tile, compression=compression,
                                   photometric=photometric, description=xml if i == 0 else None,
                                   extratags=extratags if i == 0 else (), workers=workers, **image_options)
            _write_plane(img, planes[i], tile)
            for level in pyramid:
                sub = writer.add_image(level.shape[1:], arr.dtype, tile=tile, compression=compression,
                                       photometric=photometric, parent=img, workers=workers, **image_options)
                _write_plane(sub, level[i], tile)
    return xml
