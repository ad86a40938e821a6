"""Every ```python block of README.md runs, in order, in one namespace, in an empty folder.

A block that cannot run here (a remote URL, a cluster) is marked on the line before it with
``<!-- readme-test: skip: REASON -->``; the reason is required and the count of skipped blocks
is reported, so a skipped example is a decision someone wrote down, not an accident.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_SKIP = re.compile(r"<!--\s*readme-test:\s*skip:\s*(\S.*?)\s*-->\s*$")


def readme_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line number, code, skip reason or None) of every python block, in order."""
    blocks = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        blocks.append((line, textwrap.dedent(match.group(1)), skip.group(1) if skip else None))
    return blocks


def test_readme_has_examples() -> None:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    assert sum(1 for _, _, skip in blocks if skip is None) >= 2


def test_skip_marker_needs_a_reason() -> None:
    text = "x\n<!-- readme-test: skip: needs a cluster -->\n```python\n1/0\n```\n```python\nok = 1\n```\n"
    assert [(line, skip) for line, _, skip in readme_blocks(text)] == [(3, "needs a cluster"), (6, None)]
    assert readme_blocks("<!-- readme-test: skip: -->\n```python\npass\n```\n")[0][2] is None


def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    for line, code, skip in readme_blocks(README.read_text(encoding="utf-8")):
        if skip is not None:
            continue
        try:
            exec(compile(code, f"README.md:{line}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"the README block at line {line} failed: {exc!r}") from exc
