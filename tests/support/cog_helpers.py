"""GDAL's COG validator (Debian python3-gdal, run with the system Python) for the COG tests."""

from __future__ import annotations

import functools
import os
import subprocess

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
VALIDATOR = "osgeo_utils.samples.validate_cloud_optimized_geotiff"


@functools.lru_cache(maxsize=1)
def have_validator() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    r = subprocess.run([SYSTEM_PYTHON, "-c", f"import {VALIDATOR}"], capture_output=True, timeout=60)
    return r.returncode == 0


def gdal_validate(path) -> tuple[bool, str]:
    """(valid, output) from GDAL's validate_cloud_optimized_geotiff.py --full-check=yes."""
    if not have_validator():
        pytest.skip("GDAL's COG validator is absent (Debian python3-gdal for /usr/bin/python3; .ci/run installs it)")
    r = subprocess.run([SYSTEM_PYTHON, "-m", VALIDATOR, "--full-check=yes", os.fspath(path)],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    return r.returncode == 0 and "is a valid cloud optimized GeoTIFF" in out, out
