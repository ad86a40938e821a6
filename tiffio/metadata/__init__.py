"""Metadata formats on top of tags, pure (no I/O): ImageJ, OME-XML, GeoTIFF, and the
resolution / ICC / XMP / EXIF values. The reader exposes them as
``TiffFile.imagej_metadata``, ``TiffFile.ome_metadata``, ``IFD.geotiff``, ...;
writers build tags from the same objects."""

from .basic import IccProfile, Resolution, parse_icc_profile, parse_resolution, parse_xmp
from .geotiff import GdalItem, GeoTiff
from .imagej import (
    ImageJMetadata,
    build_imagej_description,
    imagej_shape,
    pack_ijmetadata,
    parse_ijmetadata,
    parse_imagej_description,
)
from .ome import OmeChannel, OmeImage, OmeMetadata, OmeTiffData, build_ome_xml, parse_ome_xml

__all__ = [
    "Resolution", "IccProfile", "parse_resolution", "parse_icc_profile", "parse_xmp",
    "GeoTiff", "GdalItem",
    "ImageJMetadata", "parse_imagej_description", "parse_ijmetadata", "imagej_shape",
    "build_imagej_description", "pack_ijmetadata",
    "OmeMetadata", "OmeImage", "OmeChannel", "OmeTiffData", "parse_ome_xml", "build_ome_xml",
]
