"""Where the tests find the repository, its fixtures and the shared corpus."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
#: the corpus of real-world files beside the repository (TIFFIO_CORPUS overrides); tests over it skip
#: where it is absent
CORPUS = Path(os.environ.get("TIFFIO_CORPUS", REPO.parent / "shared" / "corpus"))
