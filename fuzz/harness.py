"""Shared fuzzing harness: what "decode a file" means, the seeds, and the mutators.

Used by ``fuzz/run_fuzz.py`` (the long campaign), ``tests/read/test_fuzz.py`` (bounded
hypothesis tests) and ``tests/read/test_corpus_limits.py``.

The contract under test (DESIGN.md "Errors"): for any input, ``exercise`` either
returns or raises a :class:`tiffio.TiffError` subclass - within a time bound and a
memory bound. Anything else is a finding.
"""

from __future__ import annotations

import random
import struct
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import tiffio

ROOT = Path(__file__).resolve().parents[1]
SEEDS_DIR = Path(__file__).resolve().parent / "seeds"

#: limits used while fuzzing: tight enough that a correct reader stays far below the
#: memory bound of the fuzzing process, loose enough for every seed to decode
FUZZ_LIMITS = tiffio.Limits(max_output_bytes=64 << 20, max_segment_bytes=64 << 20)

#: at most this many IFDs / SubIFDs are decoded per file (keeps one execution short)
MAX_IFDS_DECODED = 16


def _touch_ifd(ifd: tiffio.IFD, depth: int) -> None:
    for tag in list(ifd.tags.values()):
        tag.value  # noqa: B018 - reading every tag value is part of the exercise
    ifd.shape  # noqa: B018
    ifd.dtype  # noqa: B018
    if ifd.segment_count:
        ifd.read_segment_bytes(0)
        ifd.read_segment(0)
    ifd.asarray(workers=1)


def _exercise_ifd(ifd: tiffio.IFD, depth: int, errors: list[BaseException], max_ifds: int) -> None:
    """Decode one IFD and its SubIFDs; a TiffError in one IFD does not stop the others."""
    try:
        _touch_ifd(ifd, depth)
    except tiffio.TiffError as exc:
        errors.append(exc)
    if depth < 10:  # past the default Limits.max_subifd_depth (8)
        try:
            subs = ifd.subifds
        except tiffio.TiffError as exc:
            errors.append(exc)
            return
        for sub in subs[:max_ifds]:
            _exercise_ifd(sub, depth + 1, errors, max_ifds)


def exercise(data: bytes, strict: bool | None, limits: tiffio.Limits | None = FUZZ_LIMITS,
             max_ifds: int = MAX_IFDS_DECODED) -> str:
    """Open ``data``, walk every IFD, read every tag, decode every image and SubIFD.
    ``strict`` None opens in tiffio's default mode (no ``strict`` argument).

    Returns "ok" or the class name of the first TiffError met. Any other exception
    propagates (that is a finding).
    """
    errors: list[BaseException] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
        try:
            tif = tiffio.open(data, limits=limits) if strict is None else \
                tiffio.open(data, strict=strict, limits=limits)
        except tiffio.TiffError as exc:
            return type(exc).__name__
        with tif:
            try:
                len(tif.ifds)
            except tiffio.TiffError as exc:
                errors.append(exc)
            for i, ifd in enumerate(tif.ifds):
                if i >= max_ifds:
                    break
                _exercise_ifd(ifd, 0, errors, max_ifds)
    return type(errors[0]).__name__ if errors else "ok"


def exercise_both(data: bytes, limits: tiffio.Limits | None = FUZZ_LIMITS) -> tuple[str, str]:
    """``exercise`` in strict and in lenient mode."""
    return exercise(data, True, limits), exercise(data, False, limits)


# --- seeds -------------------------------------------------------------------------------------

def iter_seed_paths(max_size: int = 16384) -> Iterator[Path]:
    """The committed seeds (fuzz/seeds) plus the small files of fixtures/ when present."""
    seen: set[bytes] = set()
    paths = sorted(SEEDS_DIR.glob("*.tif"))
    fixtures = ROOT / "fixtures"
    if fixtures.is_dir():
        paths += sorted(p for p in fixtures.rglob("*.tif*")
                        if "malformed" not in p.parts and p.stat().st_size <= max_size)
    for path in paths:
        data = path.read_bytes()
        if data not in seen:
            seen.add(data)
            yield path


def load_seeds(max_size: int = 16384) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in iter_seed_paths(max_size)]


# --- structure of a (valid) TIFF, for structure-aware mutations --------------------------------

class Field:
    """Where one IFD entry's parts live in the file."""

    __slots__ = ("entry", "code", "type", "count", "value_pos", "value_size", "bo", "big")

    def __init__(self, entry: int, code: int, type_: int, count: int, value_pos: int, value_size: int,
                 bo: str, big: bool) -> None:
        self.entry, self.code, self.type, self.count = entry, code, type_, count
        self.value_pos, self.value_size, self.bo, self.big = value_pos, value_size, bo, big


_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


def scan_structure(data: bytes) -> tuple[list[int], list[Field], list[int]]:
    """(positions of offset fields: header + next-IFD pointers, fields, IFD offsets) of a TIFF,
    best effort, never raising."""
    pointers: list[int] = []
    fields: list[Field] = []
    ifds: list[int] = []
    try:
        bo = "<" if data[:2] == b"II" else ">"
        big = struct.unpack_from(bo + "H", data, 2)[0] == 43
        if big:
            pointers.append(8)
            offset = struct.unpack_from(bo + "Q", data, 8)[0]
        else:
            pointers.append(4)
            offset = struct.unpack_from(bo + "I", data, 4)[0]
        todo = [offset]
        while todo and len(ifds) < 64:
            offset = todo.pop(0)
            if not offset or offset in ifds or offset >= len(data):
                continue
            ifds.append(offset)
            if big:
                (n,) = struct.unpack_from(bo + "Q", data, offset)
                pos, esize, isize, ofmt = offset + 8, 20, 8, "Q"
            else:
                (n,) = struct.unpack_from(bo + "H", data, offset)
                pos, esize, isize, ofmt = offset + 2, 12, 4, "I"
            n = min(n, 4096)
            for _ in range(n):
                if big:
                    code, typ, count = struct.unpack_from(bo + "HHQ", data, pos)
                else:
                    code, typ, count = struct.unpack_from(bo + "HHI", data, pos)
                vfield = pos + esize - isize
                size = _TYPE_SIZE.get(typ, 1) * count
                if size <= isize:
                    vpos = vfield
                else:
                    vpos = struct.unpack_from(bo + ofmt, data, vfield)[0]
                fields.append(Field(pos, code, typ, count, vpos, size, bo, big))
                if code in (330, 34665, 34853) and size and vpos + size <= len(data):
                    isz = _TYPE_SIZE.get(typ, 4)
                    if isz in (4, 8):
                        fmt = bo + ("Q" if isz == 8 else "I")
                        for k in range(min(count, 16)):
                            todo.append(struct.unpack_from(fmt, data, vpos + k * isz)[0])
                pos += esize
            pointers.append(pos)
            todo.append(struct.unpack_from(bo + ofmt, data, pos)[0])
    except struct.error:
        pass
    return pointers, fields, ifds


# --- mutators ----------------------------------------------------------------------------------

INTERESTING = [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 127, 128, 255, 256, 1023, 1024, 4095,
               4096, 32767, 32768, 65535, 65536, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF,
               1 << 32, 1 << 40, 1 << 62]
TYPES = list(range(20))
IMPORTANT_TAGS = [254, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 292, 317, 322, 323, 324, 325,
                  330, 338, 339, 347, 513, 514, 530, 32997, 32998, 42113]


def _put_int(buf: bytearray, pos: int, size: int, value: int, bo: str) -> None:
    if pos < 0 or pos + size > len(buf):
        return
    value &= (1 << (8 * size)) - 1
    buf[pos: pos + size] = value.to_bytes(size, "little" if bo == "<" else "big")


def _interesting(rng: random.Random, data_len: int) -> int:
    r = rng.random()
    if r < 0.5:
        return rng.choice(INTERESTING)
    if r < 0.8:
        return rng.randrange(0, max(data_len + 16, 1))  # a plausible offset
    return rng.getrandbits(rng.choice((8, 16, 32, 64)))


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """Generic byte-level mutations (bit flips, interesting values, chunk ops, truncation)."""
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 4, 8))):
        if not buf:
            buf.extend(rng.randbytes(8))
        op = rng.random()
        pos = rng.randrange(len(buf))
        if op < 0.3:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op < 0.5:
            buf[pos] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op < 0.65:
            size = rng.choice((2, 4, 8))
            _put_int(buf, pos, size, _interesting(rng, len(buf)), rng.choice("<>"))
        elif op < 0.75:
            del buf[pos: pos + rng.randrange(1, 64)]
        elif op < 0.82:
            chunk = bytes(buf[rng.randrange(len(buf)):][: rng.randrange(1, 64)])
            buf[pos:pos] = chunk
        elif op < 0.9:
            del buf[rng.randrange(len(buf) + 1):]  # truncate
        else:
            n = rng.randrange(1, 32)
            buf[pos: pos + n] = rng.randbytes(n)
    return bytes(buf)


def mutate_structure(data: bytes, rng: random.Random) -> bytes:
    """Structure-aware mutations: entry counts, types, tag codes, values and offsets,
    the header and next-IFD pointers, strile array contents, IFD entry counts."""
    pointers, fields, ifds = scan_structure(data)
    if not fields:
        return mutate_bytes(data, rng)
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        f = rng.choice(fields)
        bo, big = f.bo, f.big
        op = rng.random()
        if op < 0.08 and pointers:  # header / next-IFD pointer
            target = rng.choice(ifds + [0, rng.randrange(len(buf) + 8), _interesting(rng, len(buf))])
            _put_int(buf, rng.choice(pointers), 8 if big else 4, target, bo)
        elif op < 0.14 and ifds:  # IFD entry count
            _put_int(buf, rng.choice(ifds), 8 if big else 2, rng.choice((0, 1, 2, 3, 0xFFFF, _interesting(rng, 99))), bo)
        elif op < 0.26:  # field type
            _put_int(buf, f.entry + 2, 2, rng.choice(TYPES), bo)
        elif op < 0.40:  # count
            count = rng.choice((0, 1, 2, f.count - 1, f.count + 1, f.count * 2, f.count * 1000,
                                _interesting(rng, len(buf))))
            _put_int(buf, f.entry + 4, 8 if big else 4, count, bo)
        elif op < 0.50:  # tag code: duplicate or swap for an important one
            _put_int(buf, f.entry, 2, rng.choice(IMPORTANT_TAGS + [rng.randrange(65536)]), bo)
        elif op < 0.62:  # value / offset field
            _put_int(buf, f.entry + (12 if big else 8), 8 if big else 4, _interesting(rng, len(buf)), bo)
        elif op < 0.88 and f.value_size:  # one element of the value (small numbers matter most)
            isz = _TYPE_SIZE.get(f.type, 1)
            k = rng.randrange(max(1, min(f.count, 4096)))
            value = rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 24, 32, 64, 128, _interesting(rng, len(buf))))
            if rng.random() < 0.3:
                # a whole-number value near the old one
                try:
                    old = int.from_bytes(buf[f.value_pos + k * isz: f.value_pos + (k + 1) * isz],
                                         "little" if bo == "<" else "big")
                    value = old + rng.choice((-16, -2, -1, 1, 2, 16, 1000))
                except Exception:
                    pass
            _put_int(buf, f.value_pos + k * isz, min(isz, 8), value, bo)
        else:
            return mutate_bytes(bytes(buf), rng)
    return bytes(buf)


def mutate(data: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.55:
        return mutate_structure(data, rng)
    return mutate_bytes(data, rng)


MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "bytes": mutate_bytes, "structure": mutate_structure, "mixed": mutate,
}
