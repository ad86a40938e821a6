"""GeoTIFF and GDAL georeferencing tags: parse into :class:`GeoTiff` and build back.

Pure functions over tag values (no I/O). Read: GeoKeyDirectoryTag (34735) with its
GeoDoubleParams (34736) and GeoAsciiParams (34737), ModelPixelScaleTag (33550),
ModelTiepointTag (33922), ModelTransformationTag (34264), GDAL_NODATA (42113) and
GDAL_METADATA (42112). The affine transform is in rasterio's ``Affine`` order
``(a, b, c, d, e, f)``: x = a*col + b*row + c, y = d*col + e*row + f, for the pixel
corner (PixelIsPoint files are shifted by half a pixel, as GDAL does by default).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

from ..enums import FieldType
from ..errors import TiffFormatError, TiffValueError

__all__ = ["GeoTiff", "GdalItem", "parse_geokeys", "parse_gdal_metadata", "build_gdal_metadata", "GEO_TAGS",
           "GEOKEY_NAMES"]

MODEL_PIXEL_SCALE = 33550
MODEL_TIEPOINT = 33922
MODEL_TRANSFORMATION = 34264
GEO_KEY_DIRECTORY = 34735
GEO_DOUBLE_PARAMS = 34736
GEO_ASCII_PARAMS = 34737
GDAL_METADATA = 42112
GDAL_NODATA = 42113
GEO_TAGS = (MODEL_PIXEL_SCALE, MODEL_TIEPOINT, MODEL_TRANSFORMATION, GEO_KEY_DIRECTORY, GEO_DOUBLE_PARAMS,
            GEO_ASCII_PARAMS, GDAL_METADATA, GDAL_NODATA)

GEOKEY_NAMES = {
    1024: "GTModelTypeGeoKey", 1025: "GTRasterTypeGeoKey", 1026: "GTCitationGeoKey",
    2048: "GeographicTypeGeoKey", 2049: "GeogCitationGeoKey", 2050: "GeogGeodeticDatumGeoKey",
    2051: "GeogPrimeMeridianGeoKey", 2052: "GeogLinearUnitsGeoKey", 2054: "GeogAngularUnitsGeoKey",
    2056: "GeogEllipsoidGeoKey", 2057: "GeogSemiMajorAxisGeoKey", 2058: "GeogSemiMinorAxisGeoKey",
    2059: "GeogInvFlatteningGeoKey", 3072: "ProjectedCSTypeGeoKey", 3073: "PCSCitationGeoKey",
    3074: "ProjectionGeoKey", 3075: "ProjCoordTransGeoKey", 3076: "ProjLinearUnitsGeoKey",
    4096: "VerticalCSTypeGeoKey", 4097: "VerticalCitationGeoKey", 4098: "VerticalDatumGeoKey",
    4099: "VerticalUnitsGeoKey",
}
MODEL_PROJECTED, MODEL_GEOGRAPHIC, MODEL_GEOCENTRIC = 1, 2, 3
PIXEL_IS_AREA, PIXEL_IS_POINT = 1, 2
USER_DEFINED = 32767


@dataclass
class GdalItem:
    """One ``<Item>`` of GDAL_METADATA: ``sample`` is the 0-based band (None: the
    dataset), ``role`` e.g. 'scale', 'offset', 'description', 'unittype'."""

    name: str
    value: str
    sample: int | None = None
    role: str | None = None


@dataclass
class GeoTiff:
    """Georeferencing of one image.

    ``epsg``: the EPSG code of the CRS (ProjectedCSTypeGeoKey, else GeographicTypeGeoKey;
    None when user-defined or absent). ``transform``: (a, b, c, d, e, f) as above.
    ``nodata``: GDAL_NODATA as a float. ``items``: GDAL_METADATA entries
    (``metadata`` and ``band_metadata`` view them). ``geokeys``: every key by id.
    """

    epsg: int | None = None
    transform: tuple[float, float, float, float, float, float] | None = None
    nodata: float | None = None
    pixel_is_point: bool = False
    model_type: int | None = None
    geokeys: dict[int, Any] = field(default_factory=dict)
    items: list[GdalItem] = field(default_factory=list)
    citation: str | None = None

    @property
    def metadata(self) -> dict[str, str]:
        """Dataset-level GDAL metadata items (no band, no role)."""
        return {i.name: i.value for i in self.items if i.sample is None and i.role is None}

    @property
    def band_metadata(self) -> dict[int, dict[str, str]]:
        """Per-band (0-based) items; role items appear under their role name."""
        result: dict[int, dict[str, str]] = {}
        for i in self.items:
            if i.sample is not None:
                result.setdefault(i.sample, {})[i.role or i.name] = i.value
        return result

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def from_tags(cls, value_of: Callable[[int], Any] | Mapping[int, Any], where: str = "GeoTIFF") -> GeoTiff | None:
        """Build from tag values (``value_of(code)`` returns the decoded value or None).
        None when the image has none of the geo tags."""
        get = value_of.get if isinstance(value_of, Mapping) else value_of
        values = {code: get(code) for code in GEO_TAGS}
        if all(v is None for v in values.values()):
            return None
        geo = cls()
        directory = values[GEO_KEY_DIRECTORY]
        if directory is not None:
            geo.geokeys = parse_geokeys(directory, values[GEO_DOUBLE_PARAMS], values[GEO_ASCII_PARAMS], where)
        keys = geo.geokeys
        geo.model_type = keys.get(1024) if isinstance(keys.get(1024), int) else None
        geo.pixel_is_point = keys.get(1025) == PIXEL_IS_POINT
        for key in (3072, 2048):
            code = keys.get(key)
            if isinstance(code, int) and 0 < code < USER_DEFINED:
                geo.epsg = code
                break
        citation = keys.get(1026, keys.get(3073, keys.get(2049)))
        geo.citation = citation if isinstance(citation, str) else None
        geo.transform = _transform(values[MODEL_PIXEL_SCALE], values[MODEL_TIEPOINT], values[MODEL_TRANSFORMATION],
                                   geo.pixel_is_point, where)
        nodata = values[GDAL_NODATA]
        if nodata is not None:
            text = str(nodata).strip()
            try:
                geo.nodata = float(text)
            except ValueError:
                raise TiffFormatError(f"{where}: GDAL_NODATA {text!r} is not a number") from None
        if values[GDAL_METADATA] is not None:
            geo.items = parse_gdal_metadata(str(values[GDAL_METADATA]), where)
        return geo

    # -- writing ---------------------------------------------------------------------------
    def to_tags(self) -> list[tuple[int, int, int, Any]]:
        """The tags as ``(code, field type, count, value)`` for ``TiffWriter.add_image(extratags=)``."""
        tags: list[tuple[int, int, int, Any]] = []
        a, b, c, d, e, f = self.transform or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        if self.pixel_is_point:  # GDAL's default reading shifts point tiepoints by half a pixel
            c += 0.5 * a + 0.5 * b
            f += 0.5 * d + 0.5 * e
        if self.transform is not None:
            if b == 0 and d == 0:
                tags.append((MODEL_PIXEL_SCALE, FieldType.DOUBLE, 3, (float(a), float(-e), 0.0)))
                tags.append((MODEL_TIEPOINT, FieldType.DOUBLE, 6, (0.0, 0.0, 0.0, float(c), float(f), 0.0)))
            else:
                matrix = (a, b, 0.0, c, d, e, 0.0, f, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
                tags.append((MODEL_TRANSFORMATION, FieldType.DOUBLE, 16, tuple(float(v) for v in matrix)))
        keys: dict[int, Any] = dict(self.geokeys)
        if self.epsg is not None:
            model = self.model_type or (MODEL_GEOGRAPHIC if _is_geographic(self.epsg) else MODEL_PROJECTED)
            keys[1024] = model
            keys[2048 if model == MODEL_GEOGRAPHIC else 3072] = int(self.epsg)
            keys.pop(3072 if model == MODEL_GEOGRAPHIC else 2048, None)
        elif self.model_type is not None:
            keys[1024] = self.model_type
        if keys or self.transform is not None:
            keys[1025] = PIXEL_IS_POINT if self.pixel_is_point else PIXEL_IS_AREA
        if self.citation is not None:
            keys[1026] = self.citation
        if keys:
            tags.extend(_pack_geokeys(keys))
        if self.nodata is not None:
            tags.append((GDAL_NODATA, FieldType.ASCII, 0, _format_nodata(self.nodata)))
        if self.items:
            tags.append((GDAL_METADATA, FieldType.ASCII, 0, build_gdal_metadata(self.items)))
        return tags


def _is_geographic(epsg: int) -> bool:
    # EPSG geographic 2-D CRSs: 4000-4999 (e.g. 4326 WGS 84, 4269 NAD83, 4258 ETRS89)
    return 4000 <= epsg <= 4999


def _format_nodata(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _as_tuple(value: Any) -> tuple:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def parse_geokeys(directory: Any, doubles: Any, ascii_params: Any, where: str = "GeoTIFF") -> dict[int, Any]:
    """GeoKeyDirectory -> {key id: int, float, tuple of floats, or str}."""
    entries = _as_tuple(directory)
    if len(entries) < 4:
        raise TiffFormatError(f"{where}: GeoKeyDirectoryTag has {len(entries)} values, fewer than its 4-value header")
    count = int(entries[3])
    if len(entries) < 4 + 4 * count:
        raise TiffFormatError(f"{where}: GeoKeyDirectoryTag declares {count} keys but holds {(len(entries) - 4) // 4}")
    dbl = _as_tuple(doubles)
    text = ascii_params if isinstance(ascii_params, str) else ""
    keys: dict[int, Any] = {}
    for i in range(count):
        key, location, n, value = (int(v) for v in entries[4 + 4 * i: 8 + 4 * i])
        if location == 0:
            keys[key] = value
        elif location == GEO_DOUBLE_PARAMS:
            if value + n > len(dbl):
                raise TiffFormatError(f"{where}: GeoKey {key} reads GeoDoubleParams[{value}:{value + n}] "
                                      f"of {len(dbl)} values")
            part = tuple(float(v) for v in dbl[value: value + n])
            keys[key] = part[0] if n == 1 else part
        elif location == GEO_ASCII_PARAMS:
            if value + n > len(text) + 1:
                raise TiffFormatError(f"{where}: GeoKey {key} reads GeoAsciiParams[{value}:{value + n}] "
                                      f"of {len(text)} characters")
            keys[key] = text[value: value + n].rstrip("|\x00")
        elif location == GEO_KEY_DIRECTORY:
            keys[key] = tuple(int(v) for v in entries[value: value + n])
        else:
            raise TiffFormatError(f"{where}: GeoKey {key} is stored in tag {location}, not a GeoTIFF params tag")
    return keys


def _pack_geokeys(keys: Mapping[int, Any]) -> list[tuple[int, int, int, Any]]:
    shorts: list[int] = []
    doubles: list[float] = []
    text = ""
    for key in sorted(keys):
        value = keys[key]
        if isinstance(value, str):
            s = value + "|"
            shorts += [key, GEO_ASCII_PARAMS, len(s), len(text)]
            text += s
        elif isinstance(value, float) or (isinstance(value, tuple) and value and isinstance(value[0], float)):
            vals = _as_tuple(value)
            shorts += [key, GEO_DOUBLE_PARAMS, len(vals), len(doubles)]
            doubles += [float(v) for v in vals]
        elif isinstance(value, int) and 0 <= value <= 65535:
            shorts += [key, 0, 1, value]
        else:
            raise TiffValueError(f"GeoKey {key}: cannot store {value!r} (int 0-65535, float(s) or str)")
    directory = [1, 1, 0, len(keys), *shorts]
    tags: list[tuple[int, int, int, Any]] = [(GEO_KEY_DIRECTORY, FieldType.SHORT, len(directory), tuple(directory))]
    if doubles:
        tags.append((GEO_DOUBLE_PARAMS, FieldType.DOUBLE, len(doubles), tuple(doubles)))
    if text:
        tags.append((GEO_ASCII_PARAMS, FieldType.ASCII, 0, text))
    return tags


def _transform(scale: Any, tiepoint: Any, matrix: Any, point: bool,
               where: str) -> tuple[float, float, float, float, float, float] | None:
    m = _as_tuple(matrix)
    if len(m) >= 16:
        a, b, c, d, e, f = float(m[0]), float(m[1]), float(m[3]), float(m[4]), float(m[5]), float(m[7])
    else:
        t, s = _as_tuple(tiepoint), _as_tuple(scale)
        if len(t) < 6:
            return None
        if len(s) < 2:
            if len(t) >= 18:  # GCPs only: no affine transform (GDAL fits one; we do not)
                return None
            s = (1.0, 1.0)
        i, j, x, y = float(t[0]), float(t[1]), float(t[3]), float(t[4])
        # a negative ScaleY is taken as the usual north-up one, as GDAL does unless its
        # GTIFF_HONOUR_NEGATIVE_SCALEY option is set (writers that flip its sign mean north-up)
        a, b, d, e = float(s[0]), 0.0, 0.0, -abs(float(s[1]))
        c, f = x - i * a, y - j * e
    if point:
        c -= 0.5 * a + 0.5 * b
        f -= 0.5 * d + 0.5 * e
    return (a, b, c, d, e, f)


def parse_gdal_metadata(text: str, where: str = "GeoTIFF") -> list[GdalItem]:
    """``<GDALMetadata><Item name= [sample=] [role=]>value</Item>...`` -> items."""
    try:
        root = ElementTree.fromstring(text.strip().encode("utf-8"))
    except ElementTree.ParseError as exc:
        raise TiffFormatError(f"{where}: GDAL_METADATA does not parse as XML: {exc}") from None
    items = []
    for item in root.iter("Item"):
        sample = item.attrib.get("sample")
        items.append(GdalItem(item.attrib.get("name", ""), item.text or "",
                              int(sample) if sample is not None and sample.isdigit() else None, item.attrib.get("role")))
    return items


def build_gdal_metadata(items: list[GdalItem]) -> str:
    parts = ["<GDALMetadata>"]
    for i in items:
        attrs = f" name={quoteattr(i.name)}"
        if i.sample is not None:
            attrs += f' sample="{int(i.sample)}"'
        if i.role is not None:
            attrs += f" role={quoteattr(i.role)}"
        parts.append(f"  <Item{attrs}>{escape(i.value)}</Item>")
    parts.append("</GDALMetadata>")
    return "\n".join(parts) + "\n"
