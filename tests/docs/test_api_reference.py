"""The API reference builds from the docstrings and names every public name with its summary."""

from __future__ import annotations

import inspect
import runpy
import subprocess
import sys
from pathlib import Path

import tiffio

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "make_api_reference.py"


def test_reference_names_every_public_name() -> None:
    text = runpy.run_path(str(SCRIPT))["build"]()
    for name in tiffio.__all__:
        assert f"## `tiffio.{name}`" in text, name
        doc = inspect.getdoc(getattr(tiffio, name))
        assert doc and doc.splitlines()[0] in text, name
    assert "### `IFD.read_region(" in text and "### `TiffWriter.add_image(" in text
    assert "(no docstring)" not in text


def test_reference_script_runs_as_documented(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"# tiffio {tiffio.__version__} API reference")
