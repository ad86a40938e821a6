"""``python -m tiffio COMMAND ...``: the command line (see :mod:`tiffio.cli`)."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
