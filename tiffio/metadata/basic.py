"""Resolution, ICC profile, XMP and EXIF values as parsed, read-only objects (no I/O).

``Resolution`` comes from XResolution/YResolution/ResolutionUnit; ``IccProfile``
decodes the 128-byte header of an InterColorProfile (34675, ICC.1 section 7.2);
``parse_xmp`` returns the XMP packet (700) as text; EXIF and GPS tag names are
tables used by the reader when it parses those sub-IFDs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ..errors import TiffFormatError

__all__ = ["Resolution", "IccProfile", "parse_resolution", "parse_icc_profile", "parse_xmp",
           "EXIF_TAG_NAMES", "GPS_TAG_NAMES"]

_UNITS = {1: None, 2: "inch", 3: "centimeter"}


@dataclass(frozen=True)
class Resolution:
    """Pixels per ``unit`` along x and y; ``unit`` is 'inch', 'centimeter' or None
    (ResolutionUnit 1: no absolute unit)."""

    x: float
    y: float
    unit: str | None

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Size of one pixel (x, y) in ``unit``."""
        return (1.0 / self.x if self.x else 0.0, 1.0 / self.y if self.y else 0.0)


def _rational(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, tuple) and len(value) == 2 and not isinstance(value[0], tuple):
        num, den = value
        return float(num) / float(den) if den else 0.0
    if isinstance(value, tuple):  # several rationals: the first
        return _rational(value[0])
    return float(value)


def parse_resolution(x: Any, y: Any, unit: Any) -> Resolution | None:
    """From the decoded tag values (rationals as (numerator, denominator)); None when
    XResolution and YResolution are both absent. ResolutionUnit defaults to 2 (inch)."""
    fx, fy = _rational(x), _rational(y)
    if fx is None and fy is None:
        return None
    code = 2 if unit is None else int(unit)
    return Resolution(fx if fx is not None else fy or 0.0, fy if fy is not None else fx or 0.0,
                      _UNITS.get(code, f"unit {code}"))


@dataclass(frozen=True)
class IccProfile:
    """An ICC profile: ``data`` is the whole profile; the header fields decoded."""

    data: bytes
    size: int
    cmm: str
    version: str
    device_class: str
    color_space: str
    connection_space: str
    description: str | None = None


def parse_icc_profile(data: bytes, where: str = "InterColorProfile") -> IccProfile:
    if len(data) < 128:
        raise TiffFormatError(f"{where}: an ICC profile has a 128-byte header, this one has {len(data)} bytes")
    size, cmm, version = struct.unpack(">I4sI", data[:12])
    major, minor = version >> 24, (version >> 20) & 0xF
    device_class, color_space, pcs = (data[i: i + 4].decode("latin-1").strip() for i in (12, 16, 20))
    if data[36:40] != b"acsp":
        raise TiffFormatError(f"{where}: the ICC header has no 'acsp' signature at byte 36")
    return IccProfile(bytes(data), size, cmm.decode("latin-1").strip("\x00 "), f"{major}.{minor}", device_class,
                      color_space, pcs, _icc_description(data))


def _icc_description(data: bytes) -> str | None:
    """The 'desc' tag (ICC v2 textDescriptionType or v4 multiLocalizedUnicodeType)."""
    try:
        (count,) = struct.unpack(">I", data[128:132])
        for i in range(min(count, 1000)):
            sig, offset, size = struct.unpack(">4sII", data[132 + 12 * i: 144 + 12 * i])
            if sig != b"desc":
                continue
            body = data[offset: offset + size]
            if body[:4] == b"desc":
                (n,) = struct.unpack(">I", body[8:12])
                return body[12: 12 + n].split(b"\x00", 1)[0].decode("latin-1")
            if body[:4] == b"mluc":
                nrec, _ = struct.unpack(">II", body[8:16])
                if nrec:
                    length, off = struct.unpack(">II", body[20:28])
                    return body[off: off + length].decode("utf-16-be")
    except (struct.error, UnicodeDecodeError):
        return None
    return None


def parse_xmp(value: Any) -> str:
    """The XMP packet (tag 700, BYTE or UNDEFINED) as text."""
    data = bytes(value) if not isinstance(value, str) else value.encode("utf-8")
    if isinstance(value, tuple):
        data = bytes(value)
    return data.decode("utf-8", errors="replace").rstrip("\x00")


EXIF_TAG_NAMES = {
    33434: "ExposureTime", 33437: "FNumber", 34850: "ExposureProgram", 34852: "SpectralSensitivity",
    34855: "ISOSpeedRatings", 36864: "ExifVersion", 36867: "DateTimeOriginal", 36868: "DateTimeDigitized",
    36880: "OffsetTime", 37121: "ComponentsConfiguration", 37377: "ShutterSpeedValue", 37378: "ApertureValue",
    37379: "BrightnessValue", 37380: "ExposureBiasValue", 37381: "MaxApertureValue", 37382: "SubjectDistance",
    37383: "MeteringMode", 37384: "LightSource", 37385: "Flash", 37386: "FocalLength", 37500: "MakerNote",
    37510: "UserComment", 37520: "SubsecTime", 37521: "SubsecTimeOriginal", 37522: "SubsecTimeDigitized",
    40960: "FlashpixVersion", 40961: "ColorSpace", 40962: "PixelXDimension", 40963: "PixelYDimension",
    40965: "InteroperabilityTag", 41486: "FocalPlaneXResolution", 41487: "FocalPlaneYResolution",
    41488: "FocalPlaneResolutionUnit", 41495: "SensingMethod", 41728: "FileSource", 41729: "SceneType",
    41985: "CustomRendered", 41986: "ExposureMode", 41987: "WhiteBalance", 41988: "DigitalZoomRatio",
    41989: "FocalLengthIn35mmFilm", 41990: "SceneCaptureType", 41991: "GainControl", 41992: "Contrast",
    41993: "Saturation", 41994: "Sharpness", 41996: "SubjectDistanceRange", 42016: "ImageUniqueID",
    42032: "CameraOwnerName", 42033: "BodySerialNumber", 42034: "LensSpecification", 42035: "LensMake",
    42036: "LensModel", 42037: "LensSerialNumber",
}

GPS_TAG_NAMES = {
    0: "GPSVersionID", 1: "GPSLatitudeRef", 2: "GPSLatitude", 3: "GPSLongitudeRef", 4: "GPSLongitude",
    5: "GPSAltitudeRef", 6: "GPSAltitude", 7: "GPSTimeStamp", 8: "GPSSatellites", 9: "GPSStatus",
    10: "GPSMeasureMode", 11: "GPSDOP", 12: "GPSSpeedRef", 13: "GPSSpeed", 14: "GPSTrackRef", 15: "GPSTrack",
    16: "GPSImgDirectionRef", 17: "GPSImgDirection", 18: "GPSMapDatum", 27: "GPSProcessingMethod",
    29: "GPSDateStamp",
}
