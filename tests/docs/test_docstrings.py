"""Every public name of tiffio has a docstring (the API reference is built from them)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import tiffio


def _own_members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public functions and properties the class defines or inherits from tiffio's own classes (mixins)."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("tiffio"):
            continue
        for name, value in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
            yield from _member(name, value)


def _member(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    if name.startswith("_") and name not in ("__init__", "__call__"):
        return
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if inspect.isfunction(value) or isinstance(value, property) or hasattr(value, "__set_name__"):
        yield name, value


def public_objects() -> Iterator[tuple[str, Any]]:
    """(qualified name, object) of everything tiffio.__all__ exports, with the public members of its classes."""
    for name in tiffio.__all__:
        obj = getattr(tiffio, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        yield f"tiffio.{name}", obj
        if inspect.isclass(obj) and obj.__module__.startswith("tiffio"):
            for member, value in _own_members(obj):
                if member == "__init__" and not inspect.signature(value).parameters.keys() - {"self"}:
                    continue
                yield f"tiffio.{name}.{member}", value


def _doc(obj: Any) -> str | None:
    if isinstance(obj, property):
        return obj.fget.__doc__ if obj.fget else None
    if hasattr(obj, "func") and not inspect.isfunction(obj):  # functools.cached_property
        return obj.func.__doc__
    return obj.__doc__


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for qualname, obj in public_objects():
        if qualname.endswith(".__init__"):
            continue  # documented on the class
        if inspect.isclass(obj) and issubclass(obj, (tuple, int)) and not obj.__module__.startswith("tiffio"):
            continue
        doc = _doc(obj)
        if not doc or not doc.strip():
            missing.append(qualname)
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)
