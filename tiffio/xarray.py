"""TIFF files as xarray datasets (the edge: needs ``pip install 'tiffio[xarray]'``).

``xr.open_dataset(path, engine="tiffio")`` (the ``xarray.backends`` entry point) opens one
series of a file - pyramid level ``level`` of series ``series``, or its pages ``key`` selects -
as a dataset with one variable, ``image``, read lazily (through dask with ``chunks=``; the
preferred chunks are the file's tiles). ``xr.open_datatree(path, engine="tiffio")`` opens every
series, level, mask and associated image, at the paths :class:`tiffio.zarr.TiffStore` gives
them (``/0``, ``/1``: the levels of series 0; ``/series/1/0``; ``/masks/0``...).

Dimensions are named from the series' axes (:func:`tiffio.read.series.pages.dimension_names`). A
GeoTIFF reads as ``rioxarray.open_rasterio`` reads it: dimensions ``(band, y, x)`` (the
samples first, ``band`` numbered from 1, a band axis of length 1 for one-band images),
``x``/``y`` coordinates at pixel centres from the GeoTIFF transform (PixelIsPoint files as
GDAL reads them; rotated transforms give 2-D ``xc``/``yc``), a ``spatial_ref`` coordinate
with the CRS as rioxarray writes it (CF grid mapping, ``crs_wkt``, ``spatial_ref``,
``GeoTransform``; from the EPSG code, through pyproj), and the nodata value as
``_FillValue``. OME-TIFF physical sizes and time increments, and ImageJ spacing, frame
interval and resolution, become coordinates of their axes (with ``units``), OME channel
names the ``c`` coordinate.

The arrays pickle to their arguments and reopen the file lazily in each process, so the
datasets run on ``dask.distributed`` clusters.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy

try:
    import xarray
    from xarray.backends import BackendArray, BackendEntrypoint
    from xarray.core import indexing
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("tiffio.xarray needs xarray: pip install 'tiffio[xarray]'") from exc

from ._edge.filecache import open_cached, source_path
from ._edge.selection import Selection
from .dask import TiffRegionArray
from .errors import TiffError, TiffValueError
from .metadata.geotiff import GeoTiff
from .read.file import TiffFile
from .read.series.pages import dimension_names
from .read.series.series import Series

__all__ = ["TiffBackendEntrypoint", "TiffBackendArray", "open_dataset", "open_groups"]

_EXTENSIONS = (".tif", ".tiff", ".btf", ".tf8", ".tf2", ".ome.tif", ".ome.tiff", ".svs", ".ndpi", ".lsm", ".stk",
               ".gtif", ".cog")


class TiffBackendArray(BackendArray):
    """A lazy, picklable, thread-safe array for xarray: a :class:`tiffio.dask.TiffRegionArray`
    with its axes reordered (``order``: the source axis of each axis) and, optionally, a
    length-1 axis inserted at ``insert`` (a one-band GeoTIFF's ``band``)."""

    def __init__(self, source: TiffRegionArray, order: list[int], insert: int | None = None) -> None:
        self.source = source
        self.order = list(order)
        self.insert = insert
        shape = [source.shape[k] for k in self.order]
        if insert is not None:
            shape.insert(insert, 1)
        self.shape = tuple(shape)
        self.dtype = source.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._read)

    def _read(self, key: tuple[Any, ...]) -> numpy.ndarray:
        key = tuple(key) + (slice(None),) * (len(self.shape) - len(key))
        inserted = None
        if self.insert is not None:
            inserted = key[self.insert]
            key = key[: self.insert] + key[self.insert + 1:]
        box: list[slice] = [slice(0, 0)] * len(self.source.shape)
        after: list[Any] = []
        for k, axis in zip(key, self.order):
            n = self.source.shape[axis]
            if isinstance(k, slice):
                picked = range(*k.indices(n))
                if not picked:
                    box[axis] = slice(0, 0)
                    after.append(slice(None))
                else:  # read the ascending span, then step through it (backwards for a negative step)
                    low, high = min(picked[0], picked[-1]), max(picked[0], picked[-1])
                    box[axis] = slice(low, high + 1)
                    after.append(slice(None, None, picked.step))
            else:
                i = int(k) + (n if int(k) < 0 else 0)
                box[axis] = slice(i, i + 1)
                after.append(0)
        data = self.source[tuple(box)]
        data = data.transpose(self.order)[tuple(after)]
        if inserted is not None:
            kept = sum(isinstance(a, slice) for a in after[: self.insert])
            if isinstance(inserted, slice):
                data = numpy.expand_dims(data, kept)[(slice(None),) * kept + (inserted,)]
        return numpy.ascontiguousarray(data)

    def __reduce__(self) -> Any:
        return (type(self), (self.source, self.order, self.insert))


# --- coordinates and attributes -------------------------------------------------------------------
def _geo(sel: Selection) -> GeoTiff | None:
    geo = sel.keyframe.geotiff
    return geo if geo is not None and geo.transform is not None else None


def _geo_coords(geo: GeoTiff, height: int, width: int) -> dict[str, Any]:
    """x/y at pixel centres (or 2-D xc/yc for rotated transforms) and spatial_ref, as rioxarray."""
    a, b, c, d, e, f = geo.transform  # type: ignore[misc]
    coords: dict[str, Any] = {}
    # the transform moved to pixel centres, then applied to pixel indices: the same floating-point
    # operations in the same order as rioxarray (affine's product with a half-pixel translation),
    # so that the coordinates are identical, not only close
    c0, f0 = a * 0.5 + b * 0.5 + c, d * 0.5 + e * 0.5 + f
    if b == 0 and d == 0:
        coords["x"] = ("x", numpy.arange(width) * a + c0)
        coords["y"] = ("y", numpy.arange(height) * e + f0)
    else:
        cols, rows = numpy.meshgrid(numpy.arange(width), numpy.arange(height))
        coords["xc"] = (("y", "x"), cols * a + rows * b + c0)
        coords["yc"] = (("y", "x"), cols * d + rows * e + f0)
    attrs: dict[str, Any] = {}
    crs = _crs(geo)
    if crs is not None:
        try:
            attrs.update(crs.to_cf())
        except Exception:  # a CRS with no CF form still has its WKT
            pass
        wkt = crs.to_wkt()
        attrs["crs_wkt"] = wkt
        attrs["spatial_ref"] = wkt
    attrs["GeoTransform"] = " ".join(str(float(v)) for v in (c, a, b, f, d, e))
    coords["spatial_ref"] = xarray.Variable((), numpy.int64(0), attrs)
    return coords


def _crs(geo: GeoTiff) -> Any:
    """The CRS of an EPSG-coded GeoTIFF as a pyproj CRS (None: user-defined, or no pyproj)."""
    if geo.epsg is None:
        return None
    try:
        import pyproj
    except ImportError:  # pragma: no cover - pyproj comes with the xarray extra
        return None
    try:
        return pyproj.CRS.from_epsg(geo.epsg)
    except Exception:
        return None


def _geo_attrs(geo: GeoTiff) -> dict[str, Any]:
    """The variable's attributes as rioxarray.open_rasterio gives them (mask_and_scale=False)."""
    attrs: dict[str, Any] = {}
    if 1025 in geo.geokeys:  # GTRasterTypeGeoKey: GDAL reports AREA_OR_POINT only when the file says
        attrs["AREA_OR_POINT"] = "Point" if geo.pixel_is_point else "Area"
    attrs.update(geo.metadata)
    band = geo.band_metadata.get(0, {})
    attrs.update({k: v for k, v in band.items() if k not in ("scale", "offset", "description", "unittype")})
    roles = {item.role: item.value for item in geo.items if item.sample in (None, 0) and item.role}
    attrs["scale_factor"] = float(roles.get("scale", 1.0))
    attrs["add_offset"] = float(roles.get("offset", 0.0))
    if roles.get("unittype"):
        attrs["units"] = roles["unittype"]
    if roles.get("description"):
        attrs["long_name"] = roles["description"]
    return attrs


def _physical_coords(tif: TiffFile, series: Series, names: dict[str, str], shape: dict[str, int]) -> dict[str, Any]:
    """Coordinates from OME physical sizes and channel names, or ImageJ calibration."""
    coords: dict[str, Any] = {}

    def axis(letter: str, step: float, unit: str | None) -> None:
        name = names.get(letter)
        if name is None or not step:
            return
        coords[name] = xarray.Variable(name, numpy.arange(shape[name]) * float(step),
                                       {"units": unit} if unit else {})

    image = getattr(series, "ome_image", None)
    if image is not None:
        for letter, step in image.physical_sizes.items():
            axis(letter, step, image.physical_units.get(letter))
        labels = [ch.name for ch in image.channels]
        name = names.get("C")
        if name is not None and len(labels) == shape[name] and all(labels):
            coords[name] = (name, numpy.array(labels, dtype=object))
        return coords
    ij = tif.imagej_metadata if series.kind == "imagej" else None
    if ij is not None:
        axis("Z", ij.spacing or 0.0, ij.unit)
        axis("T", ij.finterval or 0.0, "s")
        res = series.keyframe.resolution
        if res is not None and res.unit is None:
            px, py = res.pixel_size
            axis("X", px, ij.unit)
            axis("Y", py, ij.unit)
    return coords


def _dataset(path: str, tif: TiffFile, sel: Selection, source: TiffRegionArray, name: str,
             geo_layout: bool = True) -> Any:
    """One selection (a series level, pages, or one image) as a Dataset."""
    axes = sel.axes
    dims = dimension_names(axes)
    geo = _geo(sel) if geo_layout else None
    order = list(range(len(dims)))
    insert = None
    if geo is not None:
        # rioxarray's layout: (..., band, y, x), the samples first, a band of 1 if there are none
        y, x = axes.index("Y"), axes.index("X")
        rest = [k for k in range(len(axes)) if k not in (y, x) and axes[k] != "S"]
        if "S" in axes:
            s = axes.index("S")
            order = [*rest, s, y, x]
        else:
            order = [*rest, y, x]
            insert = len(rest)
        dims = [dims[k] for k in rest] + ["band", "y", "x"]
    else:
        dims = [dims[k] for k in order]
    array = TiffBackendArray(source, order, insert)
    shape = dict(zip(dims, array.shape))
    kf = sel.keyframe
    chunks = list(sel.chunk_shape((1, 1)))
    chunk_of = [chunks[k] for k in order]
    if insert is not None:
        chunk_of.insert(insert, 1)
    encoding = {"preferred_chunks": dict(zip(dims, chunk_of)), "dtype": sel.dtype}
    attrs: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    if geo is not None:
        coords.update(_geo_coords(geo, shape["y"], shape["x"]))
        coords["band"] = ("band", numpy.arange(1, shape["band"] + 1))
        attrs.update(_geo_attrs(geo))
        encoding["grid_mapping"] = "spatial_ref"
    nodata = kf.nodata
    if nodata is not None:
        attrs["_FillValue"] = sel.dtype.type(nodata)
    if sel.series is not None:
        letters = dict(zip([axes[k] for k in order], dims))
        if geo is None:
            coords.update(_physical_coords(tif, sel.series, letters, shape))
    data = indexing.LazilyIndexedArray(array)
    var = xarray.Variable(dims, data, attrs, encoding)
    ds_attrs: dict[str, Any] = {"tiffio_axes": "".join(axes[k] for k in order), "source": path}
    if sel.series is not None:
        ds_attrs.update({"series": sel.series.index, "series_kind": sel.series.kind})
    return xarray.Dataset({name: var}, coords=coords, attrs=ds_attrs)


def open_dataset(path: Any, *, series: int = 0, level: int = 0, key: Any = None, squeeze: bool | None = None,
                 fill: Any = None, strict: bool | None = None, name: str = "image", **remote: Any) -> Any:
    """One series of a TIFF as a lazy :class:`xarray.Dataset` (what ``xr.open_dataset(path,
    engine="tiffio", ...)`` returns before xarray's chunking and decoding): pyramid level
    ``level`` of series ``series``, or its pages ``key`` selects; the variable ``name``.
    ``remote``: :func:`tiffio.open`'s keywords for URLs (``timeout=``, ``headers=``...)."""
    source = TiffRegionArray(path, series=series, level=level, key=key, squeeze=squeeze, fill=fill, workers=1,
                             strict=strict, **remote)
    tif = open_cached(source.path, strict, remote)
    return _dataset(source.path, tif, source.selection, source, name)


def open_groups(path: Any, *, squeeze: bool | None = None, fill: Any = None, strict: bool | None = None,
                name: str = "image", **remote: Any) -> dict[str, Any]:
    """Every series, level, mask and associated image of a TIFF as lazy datasets, by the
    paths :class:`tiffio.zarr.TiffStore` gives them (``/0``, ``/series/1/0``, ``/masks/0``...);
    ``/`` holds no variable, and lists series that cannot be read in ``attrs["errors"]``."""
    spath = source_path(path)
    tif = open_cached(spath, strict, remote)
    groups: dict[str, Any] = {}
    errors: list[str] = []
    for s in tif.series:
        base = "" if s.index == 0 else f"/series/{s.index}"
        for k in range(len(s.levels)):
            try:
                source = TiffRegionArray(spath, series=s.index, level=k, squeeze=squeeze, fill=fill, strict=strict,
                                         **remote)
                groups[f"{base}/{k}"] = _dataset(spath, tif, source.selection, source, name)
            except TiffError as exc:
                errors.append(f"series {s.index} level {k}: {type(exc).__name__}: {exc}")
    for i, mask in enumerate(tif.masks):
        groups[f"/masks/{i}"] = _ifd_dataset(spath, tif, mask, name, strict)
    for akey, ifd in tif.associated_images.items():
        groups[f"/associated/{akey}"] = _ifd_dataset(spath, tif, ifd, name, strict)
    root_attrs: dict[str, Any] = {"source": spath, "series": len(tif.series)}
    if errors:
        root_attrs["errors"] = errors
    groups["/"] = xarray.Dataset(attrs=root_attrs)
    return groups


def _ifd_dataset(path: str, tif: TiffFile, ifd: Any, name: str, strict: bool | None) -> Any:
    """A mask or associated image: read whole (they are small), no geo layout."""
    sel = Selection.of_ifd(ifd)
    data = sel.read([slice(None)] * len(sel.shape))
    dims = dimension_names(sel.axes)
    return xarray.Dataset({name: (dims, data)}, attrs={"tiffio_axes": sel.axes, "source": path, "ifd": ifd.path})


class TiffBackendEntrypoint(BackendEntrypoint):
    """The ``tiffio`` engine of xarray: ``xr.open_dataset(path, engine="tiffio")``.

    Keywords: ``series``, ``level``, ``key``, ``squeeze`` (the array, as
    :func:`tiffio.dask.from_tiff`), ``fill`` (sparse tiles and missing pages), ``strict``
    (passed to :func:`tiffio.open`), ``name`` (the variable, default ``image``),
    ``mask_and_scale`` (default False, as ``rioxarray.open_rasterio``: True masks the nodata
    value to NaN and applies a GDAL scale/offset), ``drop_variables``. ``chunks`` and
    ``cache`` are xarray's. ``open_datatree`` opens every series and level. Any other keyword
    is one of :func:`tiffio.open`'s for URLs (``timeout=``, ``headers=``, ``storage_options=``...).
    """

    description = "TIFF/BigTIFF series, pyramids, OME-TIFF, ImageJ and GeoTIFF through tiffio"
    url = "https://github.com/tiffio/tiffio"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "series", "level", "key", "squeeze", "fill",
                               "strict", "name", "mask_and_scale")
    supports_groups = True

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        try:
            text = os.fspath(filename_or_obj)
        except TypeError:
            return False
        return isinstance(text, str) and text.lower().endswith(_EXTENSIONS)

    def open_dataset(self, filename_or_obj: Any, *, drop_variables: str | Iterable[str] | None = None,
                     series: int = 0, level: int = 0, key: Any = None, squeeze: bool | None = None, fill: Any = None,
                     strict: bool | None = None, name: str = "image", mask_and_scale: bool = False,
                     **remote: Any) -> Any:
        ds = open_dataset(_path_of(filename_or_obj), series=series, level=level, key=key, squeeze=squeeze, fill=fill,
                          strict=strict, name=name, **remote)
        return _finish(ds, drop_variables, mask_and_scale)

    def open_groups_as_dict(self, filename_or_obj: Any, *, drop_variables: str | Iterable[str] | None = None,
                            squeeze: bool | None = None, fill: Any = None, strict: bool | None = None,
                            name: str = "image", mask_and_scale: bool = False, **remote: Any) -> dict[str, Any]:
        groups = open_groups(_path_of(filename_or_obj), squeeze=squeeze, fill=fill, strict=strict, name=name,
                             **remote)
        return {path: _finish(ds, drop_variables, mask_and_scale) for path, ds in groups.items()}

    def open_datatree(self, filename_or_obj: Any, *, drop_variables: str | Iterable[str] | None = None,
                      squeeze: bool | None = None, fill: Any = None, strict: bool | None = None, name: str = "image",
                      mask_and_scale: bool = False, **remote: Any) -> Any:
        groups = self.open_groups_as_dict(filename_or_obj, drop_variables=drop_variables, squeeze=squeeze, fill=fill,
                                          strict=strict, name=name, mask_and_scale=mask_and_scale, **remote)
        return xarray.DataTree.from_dict(groups)


def _path_of(filename_or_obj: Any) -> str:
    if isinstance(filename_or_obj, (str, os.PathLike)):
        return os.fspath(filename_or_obj)
    raise TiffValueError(f"the tiffio engine opens paths and URLs (the file is reopened in each process), "
                         f"not {type(filename_or_obj).__name__}")


def _finish(ds: Any, drop_variables: str | Iterable[str] | None, mask_and_scale: bool) -> Any:
    if drop_variables:
        ds = ds.drop_vars([drop_variables] if isinstance(drop_variables, str) else list(drop_variables),
                          errors="ignore")
    if mask_and_scale:
        for var in ds.data_vars.values():
            # a scale of 1 and an offset of 0 change nothing: left out, so that masking picks the
            # float type rioxarray picks (float32 for 16-bit integers), not float64
            if var.attrs.get("scale_factor") == 1.0 and var.attrs.get("add_offset") == 0.0:
                var.encoding.update(scale_factor=var.attrs.pop("scale_factor"),
                                    add_offset=var.attrs.pop("add_offset"))
        ds = xarray.decode_cf(ds, mask_and_scale=True, decode_times=False, decode_coords=False)
    return ds
