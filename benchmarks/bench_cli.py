"""Command-line start-up: `tiffio info` on a 1,048,576-tile file, CPU and bytes read; and
`tiffio tiles --all` against one process per tile.

    python benchmarks/bench_cli.py [--repeat 7] [--write-results]
    python benchmarks/bench_cli.py --tiles [--repeat 3] [--single-calls 100] [--tile 256]

``--tiles``: a 1,000-tile YCbCr JPEG TIFF (25 x 40 tiles of ``--tile`` pixels, written by tiffio),
every tile as a standalone .jpg: `tiffio tiles FILE --all -o DIR/tile_{row}_{col}.jpg` (one
process) against 1,000 single-tile calls `tiffio tiles FILE --at ROW COL -o DIR/tile.jpg`. The
single calls are timed on ``--single-calls`` tiles spread over the grid (all 1,000 with
``--single-calls 1000``) and scaled to 1,000 from their median; the batch is the median of
``--repeat`` runs. Wall and CPU time (user + system of the children), bytecode cached.

Issue 16's targets: `tiffio info` on a file of 1,048,576 tiles reads < 64 KiB of the file and takes
< 0.5 s of CPU, interpreter start and imports included. CPU is user + system time of the child
process (resource.getrusage(RUSAGE_CHILDREN) deltas), the median of ``--repeat`` runs in which the
commands are interleaved; bytes read come from `tiffio info --debug` (the source's counter).

Two settings of the interpreter: "bytecode cached" (as an installed package: .pyc files exist;
here in a temporary PYTHONPYCACHEPREFIX warmed by a first run) and "no bytecode"
(PYTHONDONTWRITEBYTECODE=1, as in this development environment: the standard library and
site-packages use their existing .pyc files, tiffio's modules - a checkout without __pycache__ -
are compiled from source at every start).
Floors: `python -c pass` (the interpreter) and `python -c "import numpy"`. Peers: libtiff's
`tiffinfo` (when installed) and tifffile (open + first page's shape, the least its CLI does).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import record  # noqa: E402

from tests.support.tiffbuild import Builder  # noqa: E402


def million_tile_file(path: Path) -> None:
    """16384 x 16384 uint8, 16 x 16 tiles (1,048,576), BigTIFF, strile arrays 8 MiB each."""
    n = 1024 * 1024
    b = Builder("<", True)
    data_offset = b.blob(numpy.arange(256, dtype=numpy.uint8).tobytes())
    offsets = numpy.full(n, data_offset, numpy.uint64)
    counts = numpy.full(n, 256, numpy.uint64)
    entries = [(256, 4, 16384), (257, 4, 16384), (258, 3, 8), (259, 3, 1), (262, 3, 1), (277, 3, 1),
               (322, 3, 16), (323, 3, 16), (324, 16, offsets), (325, 16, counts)]
    path.write_bytes(b.build(b.ifd(entries)))


def child_cpu(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(CPU seconds, wall seconds, stderr) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed: {proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, proc.stderr


def thousand_tile_jpeg(path: Path, tile: int) -> None:
    """25 x 40 tiles of ``tile`` pixels, RGB stored as YCbCr 2x2 JPEG with JPEGTables (tiffio's writer)."""
    import tiffio

    rows, cols = 25, 40
    y, x = numpy.mgrid[:tile, :tile]
    with tiffio.TiffWriter(path) as w:
        im = w.add_image((rows * tile, cols * tile, 3), "uint8", tile=(tile, tile), compression="jpeg",
                         jpeg_quality=85, workers=2)
        for row in range(rows):
            for col in range(cols):
                im.write_tile(row, col, numpy.stack([(x + 7 * col) % 256, (y + 11 * row) % 256,
                                                     (x ^ y) % 256], axis=-1).astype(numpy.uint8))


def bench_tiles(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_cli_tiles_"))
    path = tmp / "thousand.tif"
    thousand_tile_jpeg(path, args.tile)
    py = sys.executable
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    env.update(PYTHONPATH=str(REPO), PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
    tiles = [(row, col) for row in range(25) for col in range(40)]
    step = max(1, len(tiles) // max(1, min(args.single_calls, len(tiles))))
    sample = tiles[::step][: args.single_calls]

    def batch() -> tuple[float, float]:
        out = tmp / "all"
        shutil.rmtree(out, ignore_errors=True)
        cpu, wall, _ = child_cpu([py, "-m", "tiffio", "tiles", str(path), "--all", "-q", "-o",
                                  str(out / "tile_{row}_{col}.jpg")], env)
        assert len(list(out.iterdir())) == len(tiles)
        return cpu, wall

    def single(row: int, col: int) -> tuple[float, float]:
        cpu, wall, _ = child_cpu([py, "-m", "tiffio", "tiles", str(path), "--at", str(row), str(col), "-o",
                                  str(tmp / "tile.jpg")], env)
        return cpu, wall

    single(0, 0)  # warm the bytecode cache and the page cache
    batch()
    load0 = os.getloadavg()[0]
    batches = [batch() for _ in range(args.repeat)]
    singles = [single(row, col) for row, col in sample]
    load1 = os.getloadavg()[0]
    shutil.rmtree(tmp)

    b_cpu = statistics.median(c for c, _ in batches)
    b_wall = statistics.median(w for _, w in batches)
    s_cpu = statistics.median(c for c, _ in singles)
    s_wall = statistics.median(w for _, w in singles)
    n = len(tiles)
    lines = [(f"File: {25 * args.tile} x {40 * args.tile} RGB, {args.tile} x {args.tile} YCbCr JPEG tiles "
             f"({n} tiles, JPEGTables), {path.name}; every tile as a standalone .jpg."), "",
             "| command | wall | CPU |", "|---|---:|---:|",
             (f"| `tiffio tiles FILE --all -o DIR/tile_{{row}}_{{col}}.jpg` (1 process, median of {args.repeat}) | "
             f"{b_wall:.2f} s | {b_cpu:.2f} s |"),
             (f"| {n} x `tiffio tiles FILE --at ROW COL -o tile.jpg` ({n} processes; median of {len(singles)} "
             f"calls x {n}) | {s_wall * n:.1f} s | {s_cpu * n:.1f} s |"),
             f"| one single-tile call (median) | {s_wall:.3f} s | {s_cpu:.3f} s |", "",
             (f"`--all` is **{s_wall * n / b_wall:.0f} x** faster in wall time, {s_cpu * n / b_cpu:.0f} x in CPU "
             f"(target >= 20 x). 1-minute load average {load0:.1f} at start, {load1:.1f} at end.")]
    print("\n".join(lines))
    record.add(f"tiffio tiles --all, {n} JPEG tiles of {args.tile}² as .jpg, wall", area="cli", tiffio=b_wall,
               peer=f"{n} x tiffio tiles --at (one process per tile)", peer_time=s_wall * n, runs=args.repeat,
               note=f"CPU {b_cpu:.2f} s vs {s_cpu * n:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=None, help="runs per command (default 7; 3 with --tiles)")
    ap.add_argument("--write-results", action="store_true", help="update benchmarks/results/details.md (info only)")
    ap.add_argument("--tiles", action="store_true", help="tiles --all against one process per tile")
    ap.add_argument("--single-calls", type=int, default=100, help="--tiles: single-tile calls timed (default 100)")
    ap.add_argument("--tile", type=int, default=256, help="--tiles: tile size (default 256)")
    record.add_json_arg(ap, "bench_cli")
    args = ap.parse_args()
    record.start("bench_cli", args.record_json)
    if args.tiles:
        args.repeat = args.repeat or 3
        bench_tiles(args)
        record.save()
        return
    args.repeat = args.repeat or 7

    tmp = Path(tempfile.mkdtemp(prefix="bench_cli_"))
    path = tmp / "million.tif"
    million_tile_file(path)
    file_size = path.stat().st_size
    py = sys.executable
    commands = {
        "python -c pass (floor)": [py, "-c", "pass"],
        "python -c 'import numpy' (floor)": [py, "-c", "import numpy"],
        "python -c 'import tiffio'": [py, "-c", "import tiffio"],
        "tiffio info FILE": [py, "-c", "import sys; from tiffio.cli import main; sys.exit(main())", "info",
                             str(path)],
        "tifffile: open + pages[0].shape": [py, "-c", ("import sys, tifffile; "
                                            "print(tifffile.TiffFile(sys.argv[1]).pages[0].shape)"), str(path)],
    }
    if shutil.which("tiffinfo"):
        commands["libtiff tiffinfo FILE"] = ["tiffinfo", str(path)]
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    base["PYTHONPATH"] = str(REPO)
    settings = {
        "bytecode cached": {**base, "PYTHONPYCACHEPREFIX": str(tmp / "pycache")},
        "no bytecode": {**base, "PYTHONDONTWRITEBYTECODE": "1"},
    }
    # warm the bytecode cache and the page cache
    for cmd in commands.values():
        child_cpu(cmd, settings["bytecode cached"])
    _, _, err = child_cpu([py, "-m", "tiffio", "info", "--debug", str(path)], settings["bytecode cached"])
    m = re.search(r"read (\d+) bytes in (\d+) requests", err)
    assert m, err
    nbytes, nrequests = int(m.group(1)), int(m.group(2))

    cpu: dict[tuple[str, str], list[float]] = {}
    wall: dict[tuple[str, str], list[float]] = {}
    load0 = os.getloadavg()[0]
    for _ in range(args.repeat):
        for setting, env in settings.items():
            for name, cmd in commands.items():  # interleaved: one run of each per round
                c, w, _ = child_cpu(cmd, env)
                cpu.setdefault((setting, name), []).append(c)
                wall.setdefault((setting, name), []).append(w)
    load1 = os.getloadavg()[0]
    shutil.rmtree(tmp)

    lines = [(f"File: 16384 x 16384 uint8, 16 x 16 tiles = 1,048,576 tiles, BigTIFF, "
             f"{file_size:,} bytes (strile arrays 2 x 8 MiB)."),
             f"`tiffio info` read **{nbytes:,} bytes in {nrequests} requests** of the file (target < 65,536).", "",
             "| command | CPU, bytecode cached | CPU, no bytecode | wall, bytecode cached |",
             "|---|---:|---:|---:|"]
    for name in commands:
        lines.append(f"| {name} | {statistics.median(cpu[('bytecode cached', name)]):.3f} s | "
                     f"{statistics.median(cpu[('no bytecode', name)]):.3f} s | "
                     f"{statistics.median(wall[('bytecode cached', name)]):.3f} s |")
    info_cached = statistics.median(cpu[("bytecode cached", "tiffio info FILE")])
    info_nobc = statistics.median(cpu[("no bytecode", "tiffio info FILE")])
    numpy_floor = statistics.median(cpu[("bytecode cached", "python -c 'import numpy' (floor)")])
    lines += ["", (f"Median of {args.repeat} interleaved runs; 1-minute load average {load0:.1f} at start, "
              f"{load1:.1f} at end (2 CPUs shared with other engineers' test runs: CPU time is what is compared, "
              "wall time is only indicative)."), "",
              "| target | measured | status |", "|---|---|---|",
              f"| bytes read < 64 KiB | {nbytes:,} | {'**met**' if nbytes < 65536 else 'NOT met'} |",
              (f"| CPU < 0.5 s (interpreter + imports included), as installed | {info_cached:.3f} s "
              f"({info_cached / numpy_floor:.2f} x `import numpy`) | {'**met**' if info_cached < 0.5 else 'NOT met'} |"),
              (f"| same without bytecode (PYTHONDONTWRITEBYTECODE=1) | {info_nobc:.3f} s | "
              f"{'met' if info_nobc < 0.5 else 'not met'} |")]
    lines += ["", ("Where the time goes: the interpreter ~0.05 s, numpy ~0.11 s, tiffio's modules ~0.1 s. tiffio.codecs "
              "builds its codec tables on first use, so `info` loads none of imagecodecs' codec extensions "
              "(measured 12-14 ms less CPU than building them at import, 11 interleaved runs); a lazy "
              "`tiffio/__init__` (writer, metadata, series on first use) was measured too and saved nothing "
              "measurable with bytecode (0.252 vs 0.246 s), so it was not made. libtiff's tiffinfo, a C "
              "program, is the floor no Python tool reaches.")]
    text = "\n".join(lines)
    print(text)
    for setting in settings:
        times = {name: cpu[(setting, name)] for name in commands}
        record.pair(f"tiffio info on 1,048,576 tiles, CPU, {setting}", times, "tiffio info FILE",
                    {name: name for name in commands if "tifffile" in name or "tiffinfo" in name}, area="cli",
                    floor="python -c 'import numpy' (floor)", note=f"reads {nbytes:,} bytes in {nrequests} requests")
    record.save()
    if args.write_results:
        import platform
        head = (f"## Command line (issue 16): `tiffio info` start-up on 1,048,576 tiles\n\n"
                f"Run: {time.strftime('%Y-%m-%d %H:%M')} UTC; {os.cpu_count()} CPUs; Python "
                f"{platform.python_version()}.  \nReproduce: `python benchmarks/bench_cli.py --repeat "
                f"{args.repeat} --write-results`\n\n")
        results = HERE / "results" / "details.md"
        old = results.read_text() if results.exists() else ""
        begin, end = "<!-- cli-issue16:begin -->", "<!-- cli-issue16:end -->"
        block = f"{begin}\n{head}{text}\n{end}"
        if begin in old:
            old = old[: old.index(begin)] + block + old[old.index(end) + len(end):]
        else:
            old = old.rstrip("\n") + "\n\n" + block + "\n"
        results.write_text(old)


if __name__ == "__main__":
    main()
