"""Every array of a TIFF as one zarr v3 hierarchy, as data (the keys a store serves).

No framework imports: :class:`tiffio.zarr.TiffStore` serves a ``StoreHierarchy`` through zarr's
Store interface. The default layout is a group that lists everything the file holds:

* the root is series 0 as an OME-NGFF 0.5 multiscales group: ``"0"``, ``"1"``, ... are its
  pyramid levels (:attr:`tiffio.Series.levels`), each with the series' shape (pages as
  leading axes) and named dimensions; dimensions of a lower level whose length differs from
  level 0 get the level number appended (``y1``, ``x1``), so that xarray can open the group;
* ``series/<i>`` is series ``i`` (i >= 1), a multiscales group laid out the same way;
* ``masks/<i>`` and ``associated/<name>`` (Aperio label, macro, thumbnail) are extra arrays;
* the root's ``tiffio`` attribute lists every series (path, name, kind, shape, axes, dtype,
  level shapes), and every series or page that could not be described, with the reason.

With ``series=`` the root is that series' multiscales group alone; with ``level=``, ``key=``
or ``multiscales=False`` the root is one array.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ..errors import TiffError
from ..read.file import IFD, TiffFile
from ..read.series.pages import dimension_names, undescribed_pages
from ..read.series.series import Series
from .chunkmap import ArrayMap, dumps_json
from .selection import Selection

__all__ = ["StoreHierarchy"]

_AXIS_TYPES = {"x": "space", "y": "space", "z": "space", "t": "time", "c": "channel", "s": "channel"}


def _group(attributes: dict[str, Any] | None = None) -> bytes:
    return dumps_json({"zarr_format": 3, "node_type": "group", "attributes": attributes or {}})


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class StoreHierarchy:
    """Everything a store serves, built once per process from the open file."""

    def __init__(self, tif: TiffFile, name: str, level: int | None, multiscales: bool, chunks: Any, fill: Any,
                 extras: bool, workers: int | None, raw: bool = False, *, series: int | None = None, key: Any = None,
                 squeeze: bool | None = None, attrs: dict[str, Any] | None = None) -> None:
        self.raw = raw
        self.arrays: list[ArrayMap] = []
        self.meta: dict[str, bytes] = {}
        self._chunks, self._fill, self._workers, self._squeeze = chunks, fill, workers, squeeze
        user_attrs = dict(attrs or {})
        all_series = tif.series
        if level is not None or key is not None or not multiscales:
            # one array at the root
            sel = Selection.of_file(tif, series=0 if series is None else series, level=0 if level is None else level,
                                    key=key, squeeze=squeeze)
            arr = ArrayMap("", sel, chunks, fill, workers, raw, attributes=user_attrs)
            self.arrays.append(arr)
            self.meta["zarr.json"] = dumps_json(arr.metadata)
            return
        if series is not None:
            s = Selection.of_file(tif, series=series).series
            assert s is not None
            attributes = self._multiscales("", s, os.path.basename(name) if not s.name else s.name)
            attributes.update(user_attrs)
            self.meta["zarr.json"] = _group(attributes)
            return
        listing: list[dict[str, Any]] = []
        root: dict[str, Any] = {}
        for s in all_series:
            path = "" if s.index == 0 else f"series/{s.index}"
            entry: dict[str, Any] = {"index": s.index, "path": path, "name": s.name, "kind": s.kind}
            try:
                attributes = self._multiscales(path + "/" if path else "", s,
                                               s.name or os.path.basename(name))
            except TiffError as exc:
                entry["error"] = _error_text(exc)
                listing.append(entry)
                continue
            shape, axes = s.shape_axes(squeeze)
            entry.update({"shape": list(shape), "axes": axes, "dtype": s.dtype.str,
                          "levels": [list(lv.shape_axes(squeeze)[0]) for lv in s.levels]})
            listing.append(entry)
            if path:
                if "series/zarr.json" not in self.meta:
                    self.meta["series/zarr.json"] = _group()
                self.meta[f"{path}/zarr.json"] = _group(attributes)
            else:
                root = attributes
        info: dict[str, Any] = {"series": listing}
        undescribed = undescribed_pages(tif)
        if undescribed:
            info["undescribed_pages"] = [{"ifd": where, "error": reason} for where, reason in undescribed]
        if extras:
            masks = tif.masks
            associated = tif.associated_images
            if masks:
                self.meta["masks/zarr.json"] = _group()
                for i, ifd in enumerate(masks):
                    self._add_ifd(f"masks/{i}/", ifd, chunks, None)
            if associated:
                self.meta["associated/zarr.json"] = _group()
                for akey, ifd in associated.items():
                    self._add_ifd(f"associated/{akey}/", ifd, "segment" if raw else "image", None)
            info.update({"masks": len(masks), "associated": sorted(associated)})
        root["tiffio"] = info
        root.update(user_attrs)
        self.meta["zarr.json"] = _group(root)

    def _add_ifd(self, prefix: str, ifd: IFD, chunks: Any, fill: Any) -> ArrayMap:
        arr = ArrayMap.of_ifd(prefix, ifd, chunks, fill, self._workers, self.raw)
        self.arrays.append(arr)
        self.meta[prefix + "zarr.json"] = dumps_json(arr.metadata)
        return arr

    def _multiscales(self, prefix: str, s: Series, title: str) -> dict[str, Any]:
        """The arrays of every level of ``s`` under ``prefix``; the group's OME-NGFF attributes.
        Nothing is added if any level cannot be described (the TiffError propagates)."""
        shape0, axes0 = s.shape_axes(self._squeeze)
        names0 = dimension_names(axes0)
        maps = []
        for k, lv in enumerate(s.levels):
            shape, axes = lv.shape_axes(self._squeeze)
            names = dimension_names(axes)
            if k and len(shape) == len(shape0):
                names = [f"{n}{k}" if a != b else n for n, a, b in zip(names, shape, shape0)]
            maps.append(ArrayMap.of_series(f"{prefix}{k}/", lv, self._chunks, self._fill, self._workers, self.raw,
                                           squeeze=self._squeeze, names=names))
        datasets = []
        for k, arr in enumerate(maps):
            self.arrays.append(arr)
            self.meta[arr.prefix + "zarr.json"] = dumps_json(arr.metadata)
            scale = [float(a) / b if ax in "XYZ" and b else 1.0 for ax, a, b in zip(axes0, shape0, arr.shape)] \
                if len(arr.shape) == len(shape0) else [1.0] * len(arr.shape)
            datasets.append({"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
        axes_json = []
        for n in names0:
            entry = {"name": n}
            kind = _AXIS_TYPES.get(n)
            if kind:
                entry["type"] = kind
            axes_json.append(entry)
        return {"ome": {"version": "0.5", "multiscales": [{"name": title, "axes": axes_json, "datasets": datasets}]}}

    def chunk(self, key: str) -> tuple[ArrayMap, tuple[int, ...]] | None:
        for arr in self.arrays:
            head = arr.prefix + "c/"
            if key.startswith(head):
                coords = arr.coords(key[len(head):])
                return None if coords is None else (arr, coords)
        return None

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        for key in self.meta:
            if key.startswith(prefix):
                yield key
        for arr in self.arrays:
            head = arr.prefix + "c/"
            if head.startswith(prefix) or prefix.startswith(head):
                yield from (k for k in arr.iter_chunk_keys() if k.startswith(prefix))
