"""Build tiffio's API reference (Markdown) from the docstrings of its public names.

    python docs/make_api_reference.py > api.md

No network and nothing beyond the standard library: every name in ``tiffio.__all__``, with its
signature and docstring, and the public methods and properties of each exported class (the ones
its mixins define included). The test suite builds it (tests/docs/test_api_reference.py).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from typing import Any

import tiffio


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def _doc(obj: Any) -> str:
    if isinstance(obj, property):
        obj = obj.fget
    elif hasattr(obj, "func") and not inspect.isfunction(obj):  # functools.cached_property
        obj = obj.func
    return inspect.cleandoc(obj.__doc__ or "")


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("tiffio"):
            continue
        for name, value in vars(klass).items():
            if name in seen or name.startswith("_"):
                continue
            seen.add(name)
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if inspect.isfunction(value) or isinstance(value, property) or hasattr(value, "__set_name__"):
                yield name, value


def build() -> str:
    """The reference as one Markdown document."""
    out = [f"# tiffio {tiffio.__version__} API reference", "",
           "Generated from the docstrings by `python docs/make_api_reference.py`.", ""]
    for name in tiffio.__all__:
        obj = getattr(tiffio, name)
        kind = "class" if inspect.isclass(obj) else "function" if callable(obj) else "value"
        out += [f"## `tiffio.{name}`{_signature(obj) if kind == 'function' else ''}", "", f"*{kind}*", ""]
        out += [_doc(obj) or "(no docstring)", ""]
        if inspect.isclass(obj) and obj.__module__.startswith("tiffio") and not issubclass(obj, BaseException):
            for member, value in sorted(_members(obj)):
                is_property = isinstance(value, property) or not inspect.isfunction(value)
                sig = "" if is_property else _signature(value)
                out += [f"### `{name}.{member}{sig}`" + (" *(property)*" if is_property else ""), ""]
                out += [_doc(value) or "(no docstring)", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(build())
