"""Classic TIFF vs BigTIFF x byte order, in one object (spec-notes/structure.md,
spec-notes/bigtiff.md).

Everything that differs between the four on-disk variants lives here, chosen once
when the header is parsed (or when a writer decides), so that no other module
branches on ``bigtiff``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy

from ..enums import FieldType

__all__ = ["Layout", "FIELD_TYPE_SIZE", "FIELD_TYPE_CHAR", "CLASSIC_LE", "CLASSIC_BE", "BIG_LE", "BIG_BE"]

#: size in bytes of one value of each field type (spec-notes/structure.md, "Field types")
FIELD_TYPE_SIZE: dict[int, int] = {
    1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
    16: 8, 17: 8, 18: 8,
}
#: numpy/struct element code of each field type (RATIONALs as pairs of 32-bit ints)
FIELD_TYPE_CHAR: dict[int, str] = {
    1: "B", 2: "B", 3: "H", 4: "I", 5: "I", 6: "b", 7: "B", 8: "h", 9: "i", 10: "i",
    11: "f", 12: "d", 13: "I", 16: "Q", 17: "q", 18: "Q",
}


@dataclass(frozen=True)
class Layout:
    """On-disk layout of one TIFF variant.

    Attributes are derived from ``byteorder`` (``'<'`` or ``'>'``) and ``bigtiff``.
    """

    byteorder: str
    bigtiff: bool
    header_size: int = field(init=False)
    #: the header after the byte-order mark: version (42 or 43), [offset size 8, reserved 0,] first-IFD offset
    header_struct: struct.Struct = field(init=False, repr=False)
    header_fields: tuple[int, ...] = field(init=False, repr=False)  # the fields before the first-IFD offset
    #: "BigTIFF" or "classic TIFF", for messages and listings
    kind: str = field(init=False, repr=False)
    count_size: int = field(init=False)       # size of the IFD entry count
    entry_size: int = field(init=False)       # size of one IFD entry
    inline_size: int = field(init=False)      # bytes of the value/offset field
    offset_size: int = field(init=False)      # size of file offsets (next IFD, value offsets)
    max_offset: int = field(init=False)
    count_struct: struct.Struct = field(init=False, repr=False)
    offset_struct: struct.Struct = field(init=False, repr=False)
    entry_struct: struct.Struct = field(init=False, repr=False)  # code, type, count, (raw inline bytes)
    entry_head_struct: struct.Struct = field(init=False, repr=False)  # code, type, count (then the value field)
    entry_dtype: numpy.dtype = field(init=False, repr=False)
    offset_dtype: numpy.dtype = field(init=False, repr=False)   # numpy dtype of file offsets (strile arrays)

    def __post_init__(self) -> None:
        bo = self.byteorder
        if bo not in "<>":
            raise ValueError(f"byteorder must be '<' or '>', not {bo!r}")
        big = self.bigtiff
        s = object.__setattr__
        s(self, "header_size", 16 if big else 8)
        s(self, "header_struct", struct.Struct(bo + ("HHHQ" if big else "HI")))
        s(self, "header_fields", (43, 8, 0) if big else (42,))
        s(self, "kind", "BigTIFF" if big else "classic TIFF")
        s(self, "count_size", 8 if big else 2)
        s(self, "entry_size", 20 if big else 12)
        s(self, "inline_size", 8 if big else 4)
        s(self, "offset_size", 8 if big else 4)
        s(self, "max_offset", 2**64 - 1 if big else 2**32 - 1)
        s(self, "count_struct", struct.Struct(bo + ("Q" if big else "H")))
        s(self, "offset_struct", struct.Struct(bo + ("Q" if big else "I")))
        s(self, "entry_struct", struct.Struct(bo + ("HHQ8s" if big else "HHI4s")))
        s(self, "entry_head_struct", struct.Struct(bo + ("HHQ" if big else "HHI")))
        s(self, "offset_dtype", numpy.dtype(bo + ("u8" if big else "u4")))
        s(self, "entry_dtype", numpy.dtype([
            ("code", bo + "u2"), ("type", bo + "u2"),
            ("count", bo + ("u8" if big else "u4")),
            ("value", "V8" if big else "V4"),
        ]))

    def value_dtype(self, field_type: int) -> numpy.dtype:
        """numpy dtype of one element of ``field_type`` in this byte order."""
        return numpy.dtype(self.byteorder + FIELD_TYPE_CHAR[field_type])

    def pack_offset(self, offset: int) -> bytes:
        return self.offset_struct.pack(offset)

    @property
    def offset_field_type(self) -> FieldType:
        """The field type a writer uses for offset arrays."""
        return FieldType.LONG8 if self.bigtiff else FieldType.LONG

    @property
    def subifd_field_type(self) -> FieldType:
        """The field type a writer uses for SubIFDs offsets."""
        return FieldType.IFD8 if self.bigtiff else FieldType.IFD

    def stored_field_type(self, field_type: int) -> int:
        """The field type that stores values of ``field_type`` here: classic TIFF has no 64-bit
        integer types (LONG8, SLONG8, IFD8 become LONG, SLONG, IFD; the values must then fit)."""
        return field_type if self.bigtiff else _CLASSIC_TYPE.get(field_type, field_type)

    def holds(self, size: int, classic_limit: int = 2**32 - 1) -> bool:
        """True when a file of ``size`` bytes can be written in this layout: always for BigTIFF, up to
        ``classic_limit`` (4 GiB - 1 unless given lower) for classic TIFF."""
        return self.bigtiff or size <= classic_limit

    @staticmethod
    def choices(byteorder: str, bigtiff: bool | None) -> tuple[Layout, ...]:
        """The layouts a writer may use: the one ``bigtiff`` forces, or classic then BigTIFF (None)."""
        if bigtiff is None:
            return get_layout(byteorder, False), get_layout(byteorder, True)
        return (get_layout(byteorder, bool(bigtiff)),)


#: the classic TIFF field type of each 64-bit one
_CLASSIC_TYPE = {int(FieldType.LONG8): int(FieldType.LONG), int(FieldType.SLONG8): int(FieldType.SLONG),
                 int(FieldType.IFD8): int(FieldType.IFD)}


CLASSIC_LE = Layout("<", False)
CLASSIC_BE = Layout(">", False)
BIG_LE = Layout("<", True)
BIG_BE = Layout(">", True)


def get_layout(byteorder: str, bigtiff: bool) -> Layout:
    return {("<", False): CLASSIC_LE, (">", False): CLASSIC_BE, ("<", True): BIG_LE, (">", True): BIG_BE}[
        (byteorder, bool(bigtiff))
    ]
