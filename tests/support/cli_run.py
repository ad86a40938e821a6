"""Run the command line in a real subprocess (``python -m tiffio``, from this checkout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.support.paths import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run(*args: Any, check: int | None = 0, timeout: float = 120, cwd: Any = None) -> subprocess.CompletedProcess:
    """``python -m tiffio ARGS``; asserts the exit status when ``check`` is not None."""
    proc = subprocess.run([sys.executable, "-m", "tiffio", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout, cwd=cwd or REPO)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def run_json(*args: Any, check: int | None = 0) -> Any:
    return json.loads(run(*args, check=check).stdout)
