"""Module paths of tiffio 0.1.0 that moved into packages, kept importable for one release.

``import tiffio.reader``, ``from tiffio.segment import SegmentSpec`` and ``tiffio.reader`` (as an
attribute) still work: each gives the module at its new path (the same module object, so the same
classes and functions) and warns once with a :class:`DeprecationWarning` naming the new path.

One mechanism serves every old path: a meta-path finder (installed by ``tiffio/__init__``) that
answers the old names, and the package's ``__getattr__`` for attribute access.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

#: old module path -> new module path (removed in the release after 0.1.x)
RENAMED = {
    "tiffio.layout": "tiffio.format.layout",
    "tiffio.header": "tiffio.format.header",
    "tiffio.tags": "tiffio.format.tags",
    "tiffio.grid": "tiffio.format.grid",
    "tiffio.jpeg": "tiffio.format.jpeg",
    "tiffio.ojpeg": "tiffio.format.ojpeg",
    "tiffio.predictors": "tiffio.codecs.predictors",
    "tiffio.segment": "tiffio.codecs.decode",
    "tiffio.encoding": "tiffio.codecs.encode",
    "tiffio.ifd": "tiffio.read.entries",
    "tiffio.ifd_tags": "tiffio.read.ifd.fields",
    "tiffio.segment_read": "tiffio.read.ifd.segments",
    "tiffio.fast_path": "tiffio.read.ifd.fastpath",
    "tiffio.regions": "tiffio.read.ifd.regions",
    "tiffio.directory": "tiffio.read.ifd.ifd",
    "tiffio.tagmeta": "tiffio.read.metadata",
    "tiffio.levels": "tiffio.read.levels",
    "tiffio.series": "tiffio.read.series.series",
    "tiffio.series_detect": "tiffio.read.series.detect",
    "tiffio.series_ome": "tiffio.read.series.ome",
    "tiffio.reader": "tiffio.read.file",
    "tiffio.multifile": "tiffio.read.imread",
    "tiffio.filesequence": "tiffio.read.filesequence",
    "tiffio.cogcheck": "tiffio.read.cogcheck",
    "tiffio.chunkmap": "tiffio._edge.chunkmap",
    "tiffio.storelayout": "tiffio._edge.hierarchy",
    "tiffio.selection": "tiffio._edge.selection",
    "tiffio.sequencemap": "tiffio._edge.sequencemap",
    "tiffio.filecache": "tiffio._edge.filecache",
    "tiffio.zarrcodec": "tiffio._edge.zarrcodec",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; the old path will be removed in the next release",
                  DeprecationWarning, stacklevel=3)


class _AliasLoader(importlib.abc.Loader):
    """Loads an old path as the module at its new path (the same object, its own spec kept)."""

    def __init__(self, new: str) -> None:
        self.new = new
        self.module: ModuleType | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        self.module = importlib.import_module(self.new)
        self.own_spec = self.module.__spec__
        _warn(spec.name, self.new)
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self.own_spec  # the import system set the alias's spec on it


class OldPathFinder(importlib.abc.MetaPathFinder):
    """Finds the old module paths of :data:`RENAMED` (and nothing else)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        new = RENAMED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    if not any(isinstance(finder, OldPathFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, OldPathFinder())  # before any finder that could find a stale copy


def module_getattr(name: str) -> ModuleType:
    """``tiffio.<old name>`` as an attribute: imports the old path (which warns) and returns it."""
    if f"tiffio.{name}" not in RENAMED:
        raise AttributeError(f"module 'tiffio' has no attribute {name!r}")
    return importlib.import_module(f"tiffio.{name}")
