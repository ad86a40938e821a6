"""File sequences: many files, one array (core, no frameworks, no I/O beyond ``glob``).

A sequence is a list of file names plus, optionally, a regular expression that pulls axis
names and indices out of each name. The rules follow tifffile's ``FileSequence`` /
``parse_filenames`` so that a pattern written for tifffile means the same here:

* a glob string is expanded and sorted naturally (``f2`` before ``f10``); a list is kept in
  the given order unless ``sort=True``;
* the pattern is searched in each name relative to the files' common directory;
* in the match, a group whose text starts with a letter names the axis of the next index
  group; a *named* group is an index whose axis is the group's name; an index with no axis
  before it is axis ``Q``; groups that did not take part in the match are skipped;
* ``categories={"axis": {"text": index}}`` maps non-numeric index texts to integers;
* ``axesorder`` reorders the parsed axes; indices are made zero-based per axis (minimum
  subtracted) and the shape is ``max - min + 1`` unless ``shape=`` is given;
* without a pattern, the sequence has one axis ``sequence`` (code ``I``);
* ``pattern="axes"`` is the predefined pattern for Olympus OIF / Leica names (``_c001_t002``).

Positions of the shape that no file maps to are *missing*: ``file_at`` returns None there
and readers fill them (tifffile does the same). Two files mapping to the same position
raise, where tifffile silently keeps the later one.
"""

from __future__ import annotations

import glob as _glob
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..errors import TiffTypeError, TiffValueError

__all__ = ["FileSequence", "SequenceTiling", "parse_filenames", "natural_sorted", "axis_code", "FILE_PATTERNS"]

# Axis names -> one-letter codes (tifffile's TIFF.AXES_NAMES, reversed, plus NDTiff's aliases);
# unknown names map to their first letter, upper-cased.
_AXIS_NAMES = {
    "X": "width", "Y": "height", "Z": "depth", "S": "sample", "I": "sequence", "T": "time",
    "C": "channel", "A": "angle", "P": "phase", "R": "tile", "H": "lifetime", "E": "lambda",
    "L": "exposure", "V": "event", "M": "mosaic", "Q": "other", "J": "column", "K": "row",
}
_AXIS_CODES = {name: code for code, name in _AXIS_NAMES.items()}
_AXIS_CODES.update({"z": "Z", "position": "R"})

_ONE_AXIS = r"_?(?:(q|l|p|a|c|t|x|y|z|ch|tp)(\d{1,4}))"
FILE_PATTERNS = {
    # Olympus OIF and Leica TIFF series: up to seven "<axis letter(s)><index>" pairs
    "axes": "(?ix)" + _ONE_AXIS + (_ONE_AXIS + "?") * 6,
}

_DIGITS = re.compile(r"(\d+)")


def natural_sorted(names: Iterable[str]) -> list[str]:
    """Sort strings with their digit runs compared as numbers (``f2`` < ``f10``)."""
    def key(name: str) -> list[Any]:
        return [int(part) if part.isdigit() else part for part in _DIGITS.split(name)]
    return sorted(names, key=key)


def axis_code(dim: str) -> str:
    """The one-letter code of an axis name: ``channel``/``c``/``ch`` -> ``C``, ``tp`` -> ``T``."""
    return _AXIS_CODES.get(dim.lower(), dim[:1].upper())


def _compile(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    if isinstance(pattern, re.Pattern):
        return pattern
    if not isinstance(pattern, str) or not pattern:
        raise TiffValueError(f"invalid file name pattern {pattern!r}")
    pattern = FILE_PATTERNS.get(pattern, pattern)
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise TiffValueError(f"invalid file name pattern {pattern!r}: {exc}") from None


def _parse_one(regex: re.Pattern[str], name: str, categories: dict[str, dict[str, int]],
               ) -> tuple[tuple[str, ...], tuple[int, ...]]:
    match = regex.search(name)
    if match is None:
        raise TiffValueError(f"file name pattern {regex.pattern!r} does not match {name!r}")
    names_of = {number: group_name for group_name, number in regex.groupindex.items()}
    dims: list[str] = []
    indices: list[int] = []
    axis: str | None = None
    for number, text in enumerate(match.groups(), start=1):
        if text is None:
            continue
        if number in names_of:
            axis = names_of[number]
        elif text[:1].isalpha():
            axis = text  # names the axis of the next index group
            continue
        if axis is None:
            axis = "Q"
        try:
            value = int(categories[axis][text]) if axis in categories else int(text)
        except (KeyError, ValueError):
            raise TiffValueError(f"{name!r}: index {text!r} of axis {axis!r} is not an integer"
                                 + (" nor a listed category" if axis in categories else "")) from None
        dims.append(axis)
        indices.append(value)
        axis = None
    return tuple(dims), tuple(indices)


def parse_filenames(files: Sequence[str], pattern: str | re.Pattern[str] | None = None, *,
                    axesorder: Sequence[int] | None = None,
                    categories: dict[str, dict[str, int]] | None = None,
                    shape: Sequence[int] | None = None,
                    ) -> tuple[tuple[str, ...], tuple[int, ...], list[tuple[int, ...]], tuple[int, ...]]:
    """Axis names, shape, zero-based index of each file, and the subtracted start index.

    The first three are what tifffile's ``parse_filenames`` returns for the same arguments.
    """
    files = [os.fspath(f) for f in files]
    if not files:
        raise TiffValueError("no files in the sequence")
    if pattern is None:
        if shape is not None and (len(shape) != 1 or shape[0] < len(files)):
            raise TiffValueError(f"shape {tuple(shape)} cannot hold {len(files)} files on one axis")
        count = len(files) if shape is None else int(shape[0])
        return ("sequence",), (count,), [(i,) for i in range(len(files))], (0,)
    regex = _compile(pattern)
    categories = categories or {}
    paths = [os.path.normpath(f) for f in files]
    prefix = os.path.dirname(paths[0]) if len(paths) == 1 else os.path.commonpath(paths)
    dims: tuple[str, ...] | None = None
    raw: list[tuple[int, ...]] = []
    for path, name in zip(paths, files):
        these, idx = _parse_one(regex, path[len(prefix):].lstrip(os.sep), categories)
        if dims is None:
            dims = these
            if not dims:
                raise TiffValueError(f"file name pattern {regex.pattern!r} has no index group")
            if axesorder is not None and sorted(axesorder) != list(range(len(dims))):
                raise TiffValueError(f"axesorder {tuple(axesorder)} is not a permutation of the {len(dims)} axes {dims}")
        elif these != dims:
            raise TiffValueError(f"{name!r} has axes {these}, the first file has {dims}")
        if axesorder is not None:
            idx = tuple(idx[i] for i in axesorder)
        raw.append(idx)
    assert dims is not None
    if axesorder is not None:
        dims = tuple(dims[i] for i in axesorder)
    start = tuple(min(col) for col in zip(*raw))
    indices = [tuple(v - s for v, s in zip(idx, start)) for idx in raw]
    parsed = tuple(max(col) + 1 for col in zip(*indices))
    if shape is None:
        out_shape = parsed
    else:
        out_shape = tuple(int(n) for n in shape)
        if len(out_shape) != len(parsed) or any(n < p for n, p in zip(out_shape, parsed)):
            raise TiffValueError(f"the files need shape {parsed}, which does not fit shape {out_shape}")
    return dims, out_shape, indices, start


class FileSequence(Sequence[str]):
    """Files and their positions in an N-D grid of files.

    ``FileSequence("t*_c*.tif", pattern=r"t(\\d+)_c(\\d+)")`` -> ``dims == ("Q", "Q")``;
    with ``pattern=r"(t)(\\d+)_(c)(\\d+)"`` -> ``dims == ("t", "c")``, ``axes == "TC"``.

    Attributes: ``files`` (tuple of paths, in sequence order), ``dims`` (axis names),
    ``axes`` (one letter per axis, as tifffile's ``FileSequence.axes``), ``shape``,
    ``indices`` (the zero-based position of each file), ``start`` (the parsed index that
    became 0 on each axis). Picklable; equal when the files and parse arguments are equal.
    """

    def __init__(self, files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
                 pattern: str | re.Pattern[str] | None = None, axesorder: Sequence[int] | None = None,
                 categories: dict[str, dict[str, int]] | None = None, shape: Sequence[int] | None = None,
                 sort: bool | None = None) -> None:
        if not isinstance(files, (str, os.PathLike)) and not hasattr(files, "__iter__"):
            raise TiffTypeError(f"files must be a path, a glob pattern or a sequence of paths, not "
                                f"{type(files).__name__}")
        if isinstance(files, (str, os.PathLike)):
            spec = os.fspath(files)
            if _glob.has_magic(spec):
                names = _glob.glob(spec)
                if sort is not False:
                    names = natural_sorted(names)
            else:
                names = [spec]
        else:
            try:
                names = [os.fspath(f) for f in files]
            except TypeError as exc:
                raise TiffTypeError(f"files must be paths: {exc}") from None
            if sort:
                names = natural_sorted(names)
        if not names:
            raise TiffValueError(f"no files match {os.fspath(files)!r}" if isinstance(files, (str, os.PathLike))
                                 else "no files in the sequence")
        self.dims, self.shape, indices, self.start = parse_filenames(
            names, pattern, axesorder=axesorder, categories=categories, shape=shape)
        self.files: tuple[str, ...] = tuple(names)
        self.indices: tuple[tuple[int, ...], ...] = tuple(indices)
        self.axes = "".join(axis_code(d) for d in self.dims)
        self.pattern = pattern
        self._args = (self.files, pattern,
                      None if axesorder is None else tuple(axesorder),
                      None if categories is None else tuple(sorted((k, tuple(sorted(v.items())))
                                                                    for k, v in categories.items())),
                      self.shape)
        lookup: dict[tuple[int, ...], str] = {}
        for name, idx in zip(self.files, self.indices):
            if idx in lookup:
                raise TiffValueError(f"{lookup[idx]!r} and {name!r} both map to position {idx} of axes {self.dims}")
            lookup[idx] = name
        self._lookup = lookup

    # -- the grid ------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of positions in the grid (files plus missing positions)."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    def file_at(self, index: Sequence[int]) -> str | None:
        """The file at a grid position, None if no file maps there (a missing file)."""
        idx = tuple(int(i) for i in index)
        if len(idx) != len(self.shape) or any(not 0 <= i < n for i, n in zip(idx, self.shape)):
            raise TiffValueError(f"position {idx} is outside the sequence shape {self.shape}")
        return self._lookup.get(idx)

    def missing(self) -> list[tuple[int, ...]]:
        """Grid positions that no file maps to, in C order."""
        return [idx for idx in _iter_positions(self.shape) if idx not in self._lookup]

    def items(self) -> Iterator[tuple[tuple[int, ...], str]]:
        """(position, file) pairs in sequence order."""
        return iter(zip(self.indices, self.files))

    # -- Sequence[str] -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: Any) -> Any:
        return self.files[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._args == self._args

    def __hash__(self) -> int:
        return hash(self._args)

    def __reduce__(self) -> Any:
        files, pattern, axesorder, categories, shape = self._args
        cats = None if categories is None else {k: dict(v) for k, v in categories}
        return (_rebuild, (files, pattern, axesorder, cats, shape))

    def __repr__(self) -> str:
        missing = self.size - len(self.files)
        return (f"<tiffio.FileSequence {len(self.files)} files, axes {self.axes!r} {self.dims}, shape {self.shape}"
                f"{f', {missing} missing' if missing else ''}>")


def _rebuild(files: tuple[str, ...], pattern: str | re.Pattern[str] | None, axesorder: tuple[int, ...] | None,
             categories: dict[str, dict[str, int]] | None, shape: tuple[int, ...]) -> FileSequence:
    return FileSequence(list(files), pattern=pattern, axesorder=axesorder, categories=categories, shape=shape)


def _iter_positions(shape: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    if not shape:
        yield ()
        return
    for i in range(shape[0]):
        for rest in _iter_positions(shape[1:]):
            yield (i,) + rest


class SequenceTiling:
    """How the files of a sequence lay out one array (tifffile's ``TiledSequence``).

    The array is the sequence shape followed by one file's image shape, one chunk per file;
    ``axestiled={sequence axis: image axis}`` instead lays the files along a sequence axis
    side by side along an image axis (a mosaic of tiles: ``{0: 0, 1: 1}`` puts a rows x
    columns grid of files into one plane). Tiled sequence axes leave the array; the image
    axis they tile grows by their length, and its chunk index is the file's index.
    """

    def __init__(self, stack_shape: Sequence[int], image_shape: Sequence[int],
                 axestiled: dict[int, int] | Sequence[tuple[int, int]] | None = None) -> None:
        self.stack_shape = tuple(int(n) for n in stack_shape)
        self.image_shape = tuple(int(n) for n in image_shape)
        pairs = sorted(dict(axestiled or {}).items())
        ns, ni = len(self.stack_shape), len(self.image_shape)
        seen_s: set[int] = set()
        seen_i: set[int] = set()
        for a, b in pairs:
            if not (0 <= a < ns and 0 <= b < ni) or a in seen_s or b in seen_i:
                raise TiffValueError(f"axestiled {dict(pairs)}: each sequence axis (0..{ns - 1}) must tile a "
                                     f"different image axis (0..{ni - 1}), once")
            seen_s.add(a)
            seen_i.add(b)
        self.axestiled = dict(pairs)
        #: sequence axes that stay axes of the array, in order
        self.kept = [k for k in range(ns) if k not in self.axestiled]
        tiled_by = {b: a for a, b in self.axestiled.items()}
        self.tiled_by = tiled_by
        self.shape = tuple(self.stack_shape[k] for k in self.kept) + tuple(
            n * self.stack_shape[tiled_by[j]] if j in tiled_by else n for j, n in enumerate(self.image_shape))
        self.chunks = (1,) * len(self.kept) + self.image_shape

    def position(self, chunk: Sequence[int]) -> tuple[int, ...]:
        """The sequence position (file) of a chunk of whole files, by chunk coordinates."""
        nk = len(self.kept)
        pos = [0] * len(self.stack_shape)
        for k, c in zip(self.kept, chunk[:nk]):
            pos[k] = c
        for j, c in enumerate(chunk[nk:]):
            if j in self.tiled_by:
                pos[self.tiled_by[j]] = c
        return tuple(pos)

    def chunk(self, position: Sequence[int]) -> tuple[int, ...]:
        """The chunk coordinates of the file at a sequence position (inverse of :meth:`position`)."""
        return tuple(position[k] for k in self.kept) + tuple(
            position[self.tiled_by[j]] if j in self.tiled_by else 0 for j in range(len(self.image_shape)))
