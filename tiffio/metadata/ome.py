"""OME-XML (the ImageDescription of an OME-TIFF's first IFD): parse and build.

Pure text <-> structure (no I/O). Parsing keeps what a reader needs to map IFDs to
array positions: per Image the Pixels sizes, DimensionOrder, PixelType, physical
sizes, channels and TiffData blocks. Building writes the structure tifffile's
``OmeXml`` and Bio-Formats rely on: OME root with the 2016-06 namespace and a UUID,
``Image/Pixels`` with ``DimensionOrder``, ``Type``, ``Size*``, ``Interleaved``,
``Channel`` elements with ``SamplesPerPixel``, and ``TiffData IFD= PlaneCount=``
counting main-chain IFDs only (SubIFD pyramid levels are not counted).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

import numpy

from ..errors import TiffFormatError, TiffValueError

__all__ = ["OmeMetadata", "OmeImage", "OmeChannel", "OmeTiffData", "parse_ome_xml", "build_ome_xml",
           "is_ome_xml", "OME_NAMESPACE", "OME_PIXEL_TYPES"]

OME_NAMESPACE = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
OME_PIXEL_TYPES = {
    "int8": "int8", "int16": "int16", "int32": "int32", "uint8": "uint8", "uint16": "uint16", "uint32": "uint32",
    "float": "float32", "float32": "float32", "double": "float64", "float64": "float64", "bit": "bool",
    "complex": "complex64", "double-complex": "complex128",
}
_DTYPE_TO_OME = {"int8": "int8", "int16": "int16", "int32": "int32", "uint8": "uint8", "uint16": "uint16",
                 "uint32": "uint32", "float32": "float", "float64": "double", "complex64": "complex",
                 "complex128": "double-complex", "bool": "bit"}


def is_ome_xml(text: str | None) -> bool:
    """The test tifffile applies: the description ends with ``OME>``."""
    return bool(text) and text[-10:].strip().endswith("OME>")  # type: ignore[index]


@dataclass
class OmeChannel:
    id: str | None = None
    name: str | None = None
    samples_per_pixel: int = 1


@dataclass
class OmeTiffData:
    """One TiffData block: planes from ``ifd`` on (``plane_count``, 0 = all remaining)
    placed at the plane index of (first_c, first_z, first_t); ``uuid``/``filename``
    name another file of a multi-file set."""

    ifd: int = 0
    plane_count: int = 0
    first: dict[str, int] = field(default_factory=dict)
    uuid: str | None = None
    filename: str | None = None


@dataclass
class OmeImage:
    name: str | None
    dimension_order: str
    sizes: dict[str, int]
    pixel_type: str
    interleaved: bool | None = None
    physical_sizes: dict[str, float] = field(default_factory=dict)
    physical_units: dict[str, str] = field(default_factory=dict)
    channels: list[OmeChannel] = field(default_factory=list)
    tiffdata: list[OmeTiffData] = field(default_factory=list)
    annotation_refs: list[str] = field(default_factory=list)

    @property
    def dtype(self) -> numpy.dtype:
        name = OME_PIXEL_TYPES.get(self.pixel_type)
        if name is None:
            raise TiffFormatError(f"OME-XML: unknown PixelType {self.pixel_type!r}")
        return numpy.dtype(name)

    @property
    def samples_per_pixel(self) -> int:
        return self.channels[0].samples_per_pixel if self.channels else 1

    @property
    def axes(self) -> str:
        """Plane axes slowest first (DimensionOrder reversed), e.g. 'TCZYX'."""
        return self.dimension_order[::-1]

    @property
    def channel_names(self) -> list[str | None]:
        return [c.name for c in self.channels]


@dataclass
class OmeMetadata:
    uuid: str | None
    images: list[OmeImage]
    binary_only: bool = False
    xml: str = ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _int(attrib: dict[str, str], key: str, default: int, where: str) -> int:
    try:
        return int(attrib.get(key, default))
    except ValueError:
        raise TiffFormatError(f"{where}: {key}={attrib.get(key)!r} is not an integer") from None


def parse_ome_xml(text: str) -> OmeMetadata:
    """Parse OME-XML into :class:`OmeMetadata`; a malformed document raises
    :class:`TiffFormatError`."""
    try:
        root = ElementTree.fromstring(text.encode("utf-8") if isinstance(text, str) else text)
    except ElementTree.ParseError as exc:
        raise TiffFormatError(f"OME-XML does not parse: {exc}") from None
    if _local(root.tag) != "OME":
        raise TiffFormatError(f"OME-XML: the root element is {_local(root.tag)!r}, not OME")
    meta = OmeMetadata(uuid=root.attrib.get("UUID"), images=[], xml=text)
    for element in root:
        kind = _local(element.tag)
        if kind == "BinaryOnly":
            meta.binary_only = True
            continue
        if kind != "Image":
            continue
        refs = [a.attrib.get("ID", "") for a in element if _local(a.tag) == "AnnotationRef"]
        for pixels in element:
            if _local(pixels.tag) != "Pixels":
                continue
            where = f"OME-XML Image {element.attrib.get('ID', len(meta.images))}"
            attr = pixels.attrib
            order = attr.get("DimensionOrder", "XYCZT")
            if sorted(order) != sorted("XYCZT"):
                raise TiffFormatError(f"{where}: DimensionOrder {order!r} is not a permutation of XYCZT")
            sizes = {ax: _int(attr, "Size" + ax, 1, where) for ax in "XYCZT"}
            image = OmeImage(name=element.attrib.get("Name"), dimension_order=order, sizes=sizes,
                             pixel_type=attr.get("Type", attr.get("PixelType", "uint8")), annotation_refs=refs)
            if "Interleaved" in attr:
                image.interleaved = attr["Interleaved"].lower() == "true"
            for ax in "XYZ":
                if "PhysicalSize" + ax in attr:
                    try:
                        image.physical_sizes[ax] = float(attr["PhysicalSize" + ax])
                    except ValueError:
                        raise TiffFormatError(f"{where}: PhysicalSize{ax} is not a number") from None
                    image.physical_units[ax] = attr.get(f"PhysicalSize{ax}Unit", "µm")
            if "TimeIncrement" in attr:
                image.physical_sizes["T"] = float(attr["TimeIncrement"])
                image.physical_units["T"] = attr.get("TimeIncrementUnit", "s")
            for child in pixels:
                ckind = _local(child.tag)
                if ckind == "Channel":
                    image.channels.append(OmeChannel(child.attrib.get("ID"), child.attrib.get("Name"),
                                                     _int(child.attrib, "SamplesPerPixel", 1, where)))
                elif ckind == "TiffData":
                    a = child.attrib
                    count = _int(a, "NumPlanes", 1 if "IFD" in a else 0, where)
                    td = OmeTiffData(ifd=_int(a, "IFD", 0, where), plane_count=_int(a, "PlaneCount", count, where),
                                     first={ax: _int(a, "First" + ax, 0, where) for ax in "CZT"})
                    for u in child:
                        if _local(u.tag) == "UUID":
                            td.uuid = (u.text or "").strip() or None
                            td.filename = u.attrib.get("FileName")
                            break
                    image.tiffdata.append(td)
            meta.images.append(image)
    return meta


def _axes_to_order(axes: str) -> str:
    """Array axes (any order of T, Z, C, then YX and optional S) -> DimensionOrder."""
    planes = [ax for ax in axes if ax in "TZC"]
    order = "XY" + "".join(reversed(planes))
    for ax in "CZT":
        if ax not in order:
            order += ax
    return order


def build_ome_xml(images: Sequence[dict[str, Any]], *, uuid: str | None = None, creator: str | None = None) -> str:
    """OME-XML for a list of images, each a dict with ``shape``, ``axes`` (letters from
    T, Z, C before Y, X and an optional trailing S, e.g. 'TCZYX' or 'YXS'), ``dtype``,
    ``ifd`` (first main-chain IFD of the image) and optional ``name``,
    ``channel_names``, ``physical_size`` ({'X': 0.5, 'Y': 0.5, 'Z': 2.0}),
    ``physical_unit`` ({'X': 'µm'}), ``time_increment``. Planes are stored one IFD each,
    the non-YX axes in ``axes`` order (last fastest)."""
    uid = uuid or f"urn:uuid:{uuidlib.uuid4()}"
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<OME xmlns="{OME_NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{OME_NAMESPACE} {OME_NAMESPACE}/ome.xsd" UUID={quoteattr(uid)}'
        + (f" Creator={quoteattr(creator)}" if creator else "") + ">",
    ]
    for index, image in enumerate(images):
        shape = tuple(int(n) for n in image["shape"])
        axes = str(image["axes"]).upper()
        if len(axes) != len(shape):
            raise TiffValueError(f"OME image {index}: axes {axes!r} do not match shape {shape}")
        core = axes.rstrip("S")
        if not core.endswith("YX") or any(ax not in "TZC" for ax in core[:-2]) or len(set(axes)) != len(axes):
            raise TiffValueError(f"OME image {index}: axes must be T/Z/C in any order, then YX and an optional S, "
                                 f"not {axes!r}")
        dim = dict(zip(axes, shape))
        spp = dim.get("S", 1)
        dtype = numpy.dtype(image["dtype"])
        ptype = _DTYPE_TO_OME.get(dtype.name)
        if ptype is None:
            raise TiffValueError(f"OME image {index}: no OME PixelType for {dtype}")
        nchannels = dim.get("C", 1)
        order = _axes_to_order(axes)
        attrs = [f'ID="Pixels:{index}"', f'DimensionOrder="{order}"', f'Type="{ptype}"',
                 f'SizeX="{dim["X"]}"', f'SizeY="{dim["Y"]}"', f'SizeC="{nchannels * spp}"',
                 f'SizeZ="{dim.get("Z", 1)}"', f'SizeT="{dim.get("T", 1)}"']
        if spp > 1:
            attrs.append(f'Interleaved="{"true" if image.get("interleaved", True) else "false"}"')
        for ax, value in (image.get("physical_size") or {}).items():
            ax = ax.upper()
            attrs.append(f'PhysicalSize{ax}="{float(value)!r}"')
            unit = (image.get("physical_unit") or {}).get(ax)
            if unit:
                attrs.append(f"PhysicalSize{ax}Unit={quoteattr(unit)}")
        if image.get("time_increment") is not None:
            attrs.append(f'TimeIncrement="{float(image["time_increment"])!r}"')
        name = image.get("name")
        parts.append(f'<Image ID="Image:{index}"' + (f" Name={quoteattr(str(name))}" if name else "") + ">")
        parts.append("<Pixels " + " ".join(attrs) + ">")
        names = list(image.get("channel_names") or [])
        for c in range(nchannels):
            cname = f" Name={quoteattr(str(names[c]))}" if c < len(names) and names[c] is not None else ""
            parts.append(f'<Channel ID="Channel:{index}:{c}"{cname} SamplesPerPixel="{spp}"/>')
        nplanes = int(numpy.prod([dim.get(ax, 1) for ax in "TZC"]))
        parts.append(f'<TiffData IFD="{int(image.get("ifd", 0))}" PlaneCount="{nplanes}"/>')
        parts.append("</Pixels></Image>")
    parts.append("</OME>")
    return "\n".join(parts[:2]) + "".join(parts[2:])

