"""The tiffio command line: ``tiffio COMMAND ...`` (console script) or ``python -m tiffio COMMAND ...``.

One module per command group - :mod:`.info`, :mod:`.dump`, :mod:`.check`, :mod:`.tiles`,
:mod:`.convert` (convert, merge, recover) - over shared output, progress and error helpers, all on
tiffio's public API (only the edge knows about frameworks: ARCHITECTURE.md). Optional frameworks (tqdm for progress bars, the ``cli``
extra) are imported only when used, so that ``tiffio info`` starts fast.

Exit statuses: 0 success; 1 failure (or, for ``check``, problems found); 2 unreadable input or a
usage error; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from ._common import EXIT_INTERRUPTED, CLIError, current, current_file

__all__ = ["main", "build_parser"]

_COMMANDS = ("info", "dump", "check", "tiles", "convert")

DESCRIPTION = """Inspect, validate, extract from and write TIFF / BigTIFF files with tiffio.

examples:
  tiffio info slide.svs
  tiffio dump --full image.tif
  tiffio check *.tif
  tiffio tiles slide.svs --level 2 --at 3 4 --png -o tile.png
  tiffio convert in.tif out.tif --compression zstd --tile 512
  tiffio recover unfinished.tif
Run 'tiffio COMMAND --help' for each command's options and examples."""


def build_parser() -> argparse.ArgumentParser:
    import importlib

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error (and I/O figures)")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser = argparse.ArgumentParser(prog="tiffio", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the tiffio version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub, common)
    return parser


def _error_line(command: str, exc: BaseException) -> str:
    import tiffio

    message = str(exc) or type(exc).__name__
    if not isinstance(exc, (CLIError, tiffio.TiffError, OSError)):
        message = f"internal error, {type(exc).__name__}: {message} (--debug shows the traceback)"
    where = current_file()
    if isinstance(exc, CLIError) or where is None or message.startswith(where) or where in message:
        return f"tiffio {command}: {message}"
    return f"tiffio {command}: {where}: {message}"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import tiffio

        print(tiffio.__version__)
        return 0
    if not args.command:
        parser.print_help()
        return 2
    current(None)
    command = args.command
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"tiffio {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `tiffio dump f | head`: stop quietly, and keep Python from complaining at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        status = _status(exc)
        if args.debug:
            traceback.print_exc()
        print(_error_line(command, exc), file=sys.stderr)
        return status


def _status(exc: BaseException) -> int:
    return exc.status if isinstance(exc, CLIError) else 1
