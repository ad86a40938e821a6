"""ImageJ hyperstack metadata: the ImageDescription text and the IJMetadata tag.

Pure functions on strings and bytes (no I/O). The description is ``key=value``
lines starting with ``ImageJ=`` (or ``SCIFIO=``); IJMetadata (50839) is a
``IJIJ`` header (``JIJI`` little-endian) of (type, count) pairs followed by the
entries, whose sizes IJMetadataByteCounts (50838) lists. Strings are UTF-16 in
the file's byte order; ROIs, overlays and plots are ImageJ's own binary formats,
kept as bytes. Value types follow tifffile's ``imagej_metadata`` so results
compare equal.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy

from ..errors import TiffFormatError, TiffValueError

__all__ = [
    "ImageJMetadata", "parse_imagej_description", "parse_ijmetadata", "imagej_shape",
    "build_imagej_description", "pack_ijmetadata", "IJMETADATA", "IJMETADATA_BYTECOUNTS",
]

IJMETADATA_BYTECOUNTS = 50838
IJMETADATA = 50839

# entry type (big-endian spelling) -> (key, kind)
_ENTRY_TYPES: dict[bytes, tuple[str, str]] = {
    b"info": ("Info", "string"),
    b"labl": ("Labels", "string"),
    b"rang": ("Ranges", "doubles"),
    b"luts": ("LUTs", "lut"),
    b"plot": ("Plot", "bytes"),
    b"roi ": ("ROI", "bytes"),
    b"over": ("Overlays", "bytes"),
    b"prop": ("Properties", "string"),
}
_KEY_TYPES = {key: (mtype, kind) for mtype, (key, kind) in _ENTRY_TYPES.items()}


def _convert(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    return text


def is_imagej_description(text: str | None) -> bool:
    return bool(text) and (text[:7] == "ImageJ=" or text[:7] == "SCIFIO=")  # type: ignore[index]


def parse_imagej_description(text: str) -> dict[str, Any]:
    """The ``key=value`` lines of an ImageJ description as a dict (ints, floats and
    booleans converted). Raises :class:`TiffFormatError` if it is not one."""
    result: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        result[key.strip()] = _convert(value.strip())
    if "ImageJ" not in result and "SCIFIO" not in result:
        raise TiffFormatError(f"not an ImageJ description (no ImageJ= line): {text[:64]!r}")
    return result


def parse_ijmetadata(data: bytes, byte_counts: Sequence[int], byteorder: str, where: str = "IJMetadata") -> dict[str, Any]:
    """Decode an IJMetadata tag value: Info, Labels, Ranges, LUTs (n x 256 uint8 arrays),
    Properties (a dict), and Plot / ROI / Overlays as bytes. Unknown entry types are
    kept as bytes under their 4-letter name."""
    if not byte_counts:
        raise TiffFormatError(f"{where}: IJMetadataByteCounts is empty")
    if data[:4] not in (b"IJIJ", b"JIJI"):
        raise TiffFormatError(f"{where}: does not start with IJIJ/JIJI: {bytes(data[:4])!r}")
    header_size = int(byte_counts[0])
    if not 12 <= header_size <= 804 or header_size > len(data):
        raise TiffFormatError(f"{where}: header size {header_size} is not in 12..804 (or passes the value's end)")
    ntypes = (header_size - 4) // 8
    header = struct.unpack(f"{byteorder}{'4sI' * ntypes}", data[4: 4 + 8 * ntypes])
    encoding = "utf-16-be" if byteorder == ">" else "utf-16-le"
    pos = header_size
    counter = 0
    result: dict[str, Any] = {}
    for mtype, count in zip(header[0::2], header[1::2]):
        key_kind = _ENTRY_TYPES.get(mtype) or _ENTRY_TYPES.get(mtype[::-1])
        key, kind = key_kind if key_kind else (mtype.decode("latin-1").strip(), "bytes")
        values: list[Any] = []
        for _ in range(count):
            counter += 1
            if counter >= len(byte_counts):
                raise TiffFormatError(f"{where}: entry {counter} has no byte count ({len(byte_counts)} counts)")
            end = pos + int(byte_counts[counter])
            if end > len(data):
                raise TiffFormatError(f"{where}: entry {counter} ({key}) ends at {end}, past the value ({len(data)} bytes)")
            chunk = bytes(data[pos:end])
            pos = end
            if kind == "string":
                values.append(chunk.decode(encoding, errors="replace"))
            elif kind == "doubles":
                values.append(struct.unpack(f"{byteorder}{len(chunk) // 8}d", chunk[: len(chunk) // 8 * 8]))
            elif kind == "lut":
                values.append(numpy.frombuffer(chunk, numpy.uint8).reshape(-1, 256))
            else:
                values.append(chunk)
        result[key] = values[0] if count == 1 else values
    prop = result.get("Properties")
    if isinstance(prop, list) and len(prop) % 2 == 0:
        result["Properties"] = dict(zip(prop[0::2], prop[1::2]))
    return result


def pack_ijmetadata(metadata: Mapping[str, Any], byteorder: str) -> tuple[bytes, tuple[int, ...]] | None:
    """Encode Info, Labels, Ranges, LUTs, Plot, ROI, Overlays, Properties (keys as in
    :func:`parse_ijmetadata`, lower case accepted) into (IJMetadata bytes,
    IJMetadataByteCounts). None when there is nothing to store."""
    encoding = "utf-16-be" if byteorder == ">" else "utf-16-le"
    header = [b"IJIJ" if byteorder == ">" else b"JIJI"]
    counts = [0]
    body: list[bytes] = []
    for key, (mtype, kind) in _KEY_TYPES.items():
        value = metadata.get(key, metadata.get(key.lower()))
        if value is None:
            continue
        if isinstance(value, Mapping):
            items: list[Any] = [str(v) for kv in value.items() for v in kv]
        elif kind == "doubles":
            items = [value]  # all numbers in one entry
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            items = [value]
        if not items:
            continue
        header.append((mtype if byteorder == ">" else mtype[::-1]) + struct.pack(f"{byteorder}I", len(items)))
        for item in items:
            if kind == "string":
                chunk = str(item).encode(encoding)
            elif kind == "doubles":
                chunk = struct.pack(f"{byteorder}{len(item)}d", *(float(v) for v in item))
            elif kind == "lut":
                lut = numpy.asarray(item)
                if lut.dtype != numpy.uint8 or lut.ndim != 2 or lut.shape[1] != 256:
                    raise TiffValueError(f"an ImageJ LUT is a (3, 256) uint8 array, not {lut.dtype} {lut.shape}")
                chunk = lut.tobytes()
            else:
                chunk = bytes(item)
            body.append(chunk)
            counts.append(len(chunk))
    if not body:
        return None
    head = b"".join(header)
    counts[0] = len(head)
    return head + b"".join(body), tuple(counts)


def imagej_shape(shape: Sequence[int], axes: str | None = None, rgb: bool | None = None) -> tuple[int, int, int, int, int, int]:
    """Normalize a shape to ImageJ's 6-D TZCYXS (as tifffile's ``imagej_shape``)."""
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    if not 2 <= ndim <= 6:
        raise TiffValueError(f"an ImageJ hyperstack has 2 to 6 dimensions, not {ndim} ({shape})")
    if axes is not None:
        axes = axes.upper()
        if len(axes) != ndim:
            raise TiffValueError(f"axes {axes!r} do not match shape {shape}")
        last = -1
        for ax in axes:
            pos = "TZCYXS".find(ax)
            if pos <= last:
                raise TiffValueError(f"ImageJ axes must be a subsequence of TZCYXS, not {axes!r}")
            last = pos
        full = tuple(shape[axes.index(ax)] if ax in axes else 1 for ax in "TZCYXS")
        if full[-1] not in (1, 3, 4):
            raise TiffValueError(f"an ImageJ hyperstack has 1, 3 or 4 samples, not {full[-1]}")
        return full  # type: ignore[return-value]
    if rgb is None:
        rgb = shape[-1] in (3, 4) and ndim > 2
    if rgb and shape[-1] not in (3, 4):
        raise TiffValueError(f"an RGB ImageJ image has 3 or 4 samples, not {shape[-1]}")
    if not rgb and ndim == 6 and shape[-1] != 1:
        raise TiffValueError(f"a 6-D grayscale ImageJ hyperstack ends in 1 sample, not {shape[-1]}")
    if rgb or shape[-1] == 1:
        return (1,) * (6 - ndim) + shape  # type: ignore[return-value]
    return (1,) * (5 - ndim) + shape + (1,)  # type: ignore[return-value]


def build_imagej_description(shape: Sequence[int], axes: str | None = None, *, rgb: bool | None = None,
                             version: str = "1.11a", hyperstack: bool | None = None, mode: str | None = None,
                             loop: bool | None = None, **extra: Any) -> str:
    """The ImageJ description for an array of ``shape`` (normalized by :func:`imagej_shape`);
    ``extra`` adds lines such as ``spacing=``, ``unit=``, ``finterval=``, ``min=``, ``max=``.
    The text equals tifffile's ``imagej_description`` for the same arguments."""
    full = imagej_shape(shape, axes, rgb)
    is_rgb = full[-1] in (3, 4)
    lines = [f"ImageJ={version}", f"images={full[0] * full[1] * full[2]}"]
    tail = ["hyperstack=true" if hyperstack is None else f"hyperstack={str(bool(hyperstack)).lower()}"]
    if hyperstack is None:
        hyperstack = True
    if full[2] > 1:
        lines.append(f"channels={full[2]}")
    if mode is None and not is_rgb:
        mode = "grayscale"
    if hyperstack and mode:
        tail.append(f"mode={mode}")
    if full[1] > 1:
        lines.append(f"slices={full[1]}")
    if full[0] > 1:
        lines.append(f"frames={full[0]}")
        if loop is None:
            tail.append("loop=false")
    if loop is not None:
        tail.append(f"loop={str(bool(loop)).lower()}")
    for key, value in extra.items():
        if key in ("images", "channels", "slices", "frames", "SCIFIO"):
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        tail.append(f"{key.lower()}={text}")
    return "\n".join([*lines, *tail, ""])


@dataclass
class ImageJMetadata:
    """ImageJ metadata of a file: the description's entries and the IJMetadata entries.

    ``images``/``channels``/``slices``/``frames`` default to 1; ``spacing`` (z step),
    ``unit``, ``finterval`` (seconds), ``ranges`` (min, max pairs per channel),
    ``mode`` ('grayscale', 'composite', 'color'), ``labels``, ``luts`` (n x 256 uint8
    arrays), ``rois``/``overlays`` (ImageJ's binary ROI format, as bytes). ``raw`` is the
    whole merged dict, equal to tifffile's ``TiffFile.imagej_metadata``.
    """

    images: int = 1
    channels: int = 1
    slices: int = 1
    frames: int = 1
    hyperstack: bool = False
    mode: str | None = None
    unit: str | None = None
    spacing: float | None = None
    finterval: float | None = None
    loop: bool | None = None
    min: float | None = None
    max: float | None = None
    ranges: tuple[float, ...] | None = None
    labels: list[str] | None = None
    luts: list[numpy.ndarray] | None = None
    info: str | None = None
    properties: dict[str, str] | None = None
    rois: list[bytes] | None = None
    overlays: list[bytes] | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_values(cls, description: str, ijmetadata: Mapping[str, Any] | None = None) -> ImageJMetadata:
        """From the description text and the parsed IJMetadata dict (:func:`parse_ijmetadata`)."""
        raw = parse_imagej_description(description)
        if ijmetadata:
            raw.update(ijmetadata)

        def num(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        def count(key: str) -> int:
            value = raw.get(key, 1)
            return int(value) if isinstance(value, int) and not isinstance(value, bool) else 1

        def listof(key: str) -> list | None:
            value = raw.get(key)
            if value is None:
                return None
            return list(value) if isinstance(value, list) else [value]

        ranges = raw.get("Ranges")
        unit = raw.get("unit")
        return cls(
            images=count("images"), channels=count("channels"), slices=count("slices"), frames=count("frames"),
            hyperstack=raw.get("hyperstack") is True, mode=raw.get("mode") if isinstance(raw.get("mode"), str) else None,
            unit=None if unit is None else str(unit), spacing=num("spacing"), finterval=num("finterval"),
            loop=raw.get("loop") if isinstance(raw.get("loop"), bool) else None, min=num("min"), max=num("max"),
            ranges=tuple(ranges) if ranges is not None else None, labels=listof("Labels"), luts=listof("LUTs"),
            info=raw.get("Info") if isinstance(raw.get("Info"), str) else None,
            properties=raw.get("Properties") if isinstance(raw.get("Properties"), dict) else None,
            rois=listof("ROI"), overlays=listof("Overlays"), raw=raw)
