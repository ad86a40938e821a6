"""``cached_property`` with the semantics of Python 3.12 and later on every supported Python.

Up to 3.11, ``functools.cached_property`` holds one lock per property *of the class* while it
computes a value: two threads computing, say, ``spec`` of two different IFDs (of two files)
wait for each other, even across I/O. Python 3.12 removed that lock (the value may then be
computed twice by racing threads; one result is kept), and tiffio's properties are written
for that: each computes a value from the file alone. Type checkers see functools' version.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

__all__ = ["cached_property"]

if TYPE_CHECKING or sys.version_info >= (3, 12):
    from functools import cached_property
else:
    _NOT_FOUND = object()

    class cached_property:
        """A property computed on first access and kept in the instance's ``__dict__``."""

        def __init__(self, func: Callable[[Any], Any]) -> None:
            self.func = func
            self.attrname: str | None = None
            self.__doc__ = func.__doc__
            self.__module__ = func.__module__

        def __set_name__(self, owner: type, name: str) -> None:
            if self.attrname is None:
                self.attrname = name
            elif name != self.attrname:
                raise TypeError(f"cannot assign the same cached_property to two names ({self.attrname!r} and {name!r})")

        def __get__(self, instance: Any, owner: type | None = None) -> Any:
            if instance is None:
                return self
            name = self.attrname
            if name is None:
                raise TypeError("cannot use cached_property without calling __set_name__ on it")
            cache = instance.__dict__
            value = cache.get(name, _NOT_FOUND)
            if value is _NOT_FOUND:
                value = self.func(instance)
                cache[name] = value
            return value
