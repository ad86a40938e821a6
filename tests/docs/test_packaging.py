"""The wheel users install holds the whole package and its py.typed marker (built as pip builds it,
in an isolated environment with setuptools from the package index)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_py_typed_and_every_module(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                           "--quiet", "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("tiffio-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "tiffio/py.typed" in names
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tiffio").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
