"""Shared helpers of the command line: errors, opening files, names of codes, output.

Only the public API of tiffio is used here and in every command module (ARCHITECTURE.md, "Layers").
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["CLIError", "current", "current_file", "open_tiff", "enum_name", "dump_json", "abbreviate",
           "fmt_bytes", "is_url", "capture_warnings"]

#: exit statuses
EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_UNREADABLE = 2
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """A failure the command reports as one line (the file and place are in the message)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


_CURRENT: dict[str, str | None] = {"file": None}


def current(path: Any) -> None:
    """Name the file the command works on now: error messages start with it (a URL without its
    password or signature: tiffio.sources.redact_url)."""
    from tiffio.sources import redact_url

    _CURRENT["file"] = None if path is None else redact_url(os.fspath(path) if not isinstance(path, str) else path)


def current_file() -> str | None:
    return _CURRENT["file"]


def is_url(path: str) -> bool:
    return "://" in path[:16]


def open_tiff(path: str, *, strict: bool = False) -> Any:
    """tiffio.open on a path or URL, naming the file first in any error."""
    import tiffio

    current(path)
    if not is_url(path):
        if not os.path.exists(path):
            raise CLIError(f"{path}: no such file", EXIT_UNREADABLE)
        if os.path.isdir(path):
            raise CLIError(f"{path}: is a folder, not a file", EXIT_UNREADABLE)
    try:
        return tiffio.open(path, strict=strict)
    except TypeError as exc:
        # remote URLs are opened by tiffio.open where the library supports them
        if is_url(path):
            raise CLIError(f"{path}: this tiffio cannot open URLs ({exc})", EXIT_UNREADABLE) from exc
        raise


@contextmanager
def capture_warnings() -> Iterator[list[str]]:
    """Collect tiffio.TiffFormatWarning messages (and nothing else) raised inside the block."""
    import tiffio

    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", tiffio.TiffFormatWarning)
        try:
            yield found
        finally:
            seen: set[str] = set()
            for w in caught:
                if issubclass(w.category, tiffio.TiffFormatWarning):
                    text = str(w.message)
                    if text not in seen:
                        seen.add(text)
                        found.append(text)
                else:  # not ours: let Python show it as usual
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def enum_name(enum_cls: Any, code: Any) -> str:
    """The spec name of a code, or the number for codes the enum does not know."""
    if code is None:
        return "none"
    try:
        return str(enum_cls(int(code)).name)
    except (ValueError, TypeError):
        return str(code)


def enum_json(enum_cls: Any, code: Any) -> dict[str, Any] | None:
    if code is None:
        return None
    return {"code": int(code), "name": enum_name(enum_cls, code)}


def fmt_bytes(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"  # pragma: no cover


def abbreviate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with a note of how much was left out."""
    if limit <= 0 or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def dump_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=False, default=_json_default)
    sys.stdout.write("\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
