"""Coverage-guided fuzzing with atheris (libFuzzer), for manual runs.

    pip install atheris
    python fuzz/atheris_fuzz.py fuzz/corpus_atheris -max_total_time=600 -rss_limit_mb=2048 -timeout=10

The first run copies the seeds (fuzz/harness.py ``load_seeds``) into the corpus folder
given as the first argument. Each input is decoded strict and lenient (fuzz/harness.py
``exercise``, with the fuzz Limits); any exception that is not a TiffError, a hang over
``-timeout`` seconds or RSS over ``-rss_limit_mb`` is reported by libFuzzer with a
reproducer file (crash-*, timeout-*, oom-*). Decoding is deterministic, so a reproducer
replays with ``python -c "from fuzz.harness import exercise; ..."``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    import tiffio  # noqa: F401

from fuzz.harness import exercise, load_seeds


def test_one_input(data: bytes) -> None:
    exercise(data, True)
    exercise(data, False)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    if args:
        corpus = Path(args[0])
        if not corpus.exists():
            corpus.mkdir(parents=True)
            for name, data in load_seeds():
                (corpus / name).write_bytes(data)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
