"""The one JSON record every benchmark writes, beside its human output.

A benchmark script calls, once its figures are computed::

    import record
    record.add_json_arg(parser, "bench_read")           # --json PATH (default benchmarks/results/bench_read.json)
    ...
    record.start("bench_read", args.json)               # in main, after parsing
    record.pair("tiles wsi_40960_jpeg.tif", times, "tiffio", {"tifffile": "tifffile"}, area="read", floor="floor")
    record.save()                                       # at the end of main

``pair`` takes the per-run times the script already measured ({method: [seconds per run]}, runs
interleaved so that run k of every method saw the same machine) and stores the median tiffio time,
the fastest peer's median time, ``ratio`` = the median over runs of tiffio time / peer time (below 1:
tiffio is faster), ``spread`` = the lowest and highest of those per-run ratios, and, where the script
measures one, the floor's median time and ``floor_ratio`` = median of tiffio / floor. ``add`` stores
figures the script computed some other way (one run, throughput, a ratio of medians).

Every record carries the date, the git commit, the machine (cores, CPU, python, numpy, imagecodecs, tifffile,
GDAL and libvips versions), the exact command line and ``source``: "run" (this machine, this command),
"loaded" (the same, run with TIFFIO_BENCH_SOURCE=loaded on a machine known to be busy), "history" (a figure
copied from the diary, benchmarks/history/RESULTS-2026.md, before the benchmarks wrote JSON).

``save`` merges into the file: a record replaces the stored record of the same case, records of other
cases (another section, another option) stay. ``python benchmarks/report.py`` turns the files into the
tables of benchmarks/README.md. Without ``start`` (a script imported by another one), ``pair``, ``add``
and ``save`` do nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS_DIR = os.path.join(HERE, "results")

#: report.py's tables, in README order: area key -> title
AREAS = {
    "read": "Reading tiles and regions",
    "whole": "Whole-image reads",
    "zarr": "zarr and dask",
    "write": "Writing",
    "pyramid": "Pyramids and COG",
    "arrays": "Arrays: imwrite, to_tiff, map_tiles",
    "cli": "Command line",
    "remote": "Remote reading (HTTP)",
    "ab": "A/B between two checkouts",
}

#: the fields every record has (None where a benchmark has no such figure)
FIELDS = ("bench", "area", "case", "tiffio", "unit", "peer", "peer_time", "ratio", "spread", "floor", "floor_time",
          "floor_ratio", "runs", "note", "date", "commit", "machine", "command", "source")
SOURCES = ("run", "history", "loaded")

_state: dict[str, Any] = {"bench": None, "path": None, "records": [], "context": None}


def default_path(bench: str) -> str:
    return os.path.join(RESULTS_DIR, f"{bench}.json")


def add_json_arg(parser: Any, bench: str, flag: str = "--json") -> None:
    """The option that says where the records go (``''``: nowhere)."""
    parser.add_argument(flag, dest="record_json", metavar="PATH", default=default_path(bench),
                        help=f"write the JSON records here, merged by case (default {os.path.relpath(default_path(bench))};"
                             " '' for none); benchmarks/report.py makes the README tables from them")


def _run(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, cwd=REPO)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def git_commit() -> str:
    commit = _run(["git", "rev-parse", "--short=12", "HEAD"]) or "unknown"
    if _run(["git", "status", "--porcelain", "--untracked-files=no", "--", "tiffio"]):
        commit += "-dirty"
    return commit


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:
        return None


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), or "unknown"."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, Any]:
    cpu = cpu_name()
    gdal = None
    if shutil.which("gdalinfo"):
        gdal = _run(["gdalinfo", "--version"]).split(",")[0].replace("GDAL ", "") or None
    libvips = None
    if shutil.which("vips"):
        libvips = _run(["vips", "--version"]).replace("vips-", "") or None
    if libvips is None and _version("pyvips"):
        try:
            import pyvips
            libvips = ".".join(str(pyvips.version(k)) for k in range(3))
        except Exception:  # pyvips without a loadable libvips
            libvips = None
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "numpy": _version("numpy"), "imagecodecs": _version("imagecodecs"), "tifffile": _version("tifffile"),
            "zarr": _version("zarr"), "dask": _version("dask"), "gdal": gdal, "libvips": libvips,
            "pyvips": _version("pyvips"), "rasterio": _version("rasterio"),
            "loadavg": round(os.getloadavg()[0], 2)}


def command_line(argv: Sequence[str] | None = None) -> str:
    """``python benchmarks/<script> ARGS`` as typed (the script's path relative to the checkout)."""
    argv = list(sys.argv if argv is None else argv)
    script = os.path.abspath(argv[0]) if argv else ""
    if script.startswith(REPO + os.sep):
        script = os.path.relpath(script, REPO)
    return shlex.join(["python", script, *argv[1:]])


def start(bench: str, path: str | None = None, argv: Sequence[str] | None = None, source: str | None = None) -> None:
    """Begin collecting the records of one invocation (``path`` None: the default file, ``''``: none).
    ``source`` defaults to $TIFFIO_BENCH_SOURCE, else "run" (``TIFFIO_BENCH_SOURCE=loaded`` marks a run
    on a machine known to be busy)."""
    source = source or os.environ.get("TIFFIO_BENCH_SOURCE") or "run"
    if source not in SOURCES:
        raise SystemExit(f"TIFFIO_BENCH_SOURCE must be one of {', '.join(SOURCES)}, not {source!r}")
    _state.update(bench=bench, path=default_path(bench) if path is None else path, records=[],
                  context={"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                           "commit": git_commit(), "machine": None, "command": command_line(argv),
                           "source": source})


def active() -> bool:
    return _state["bench"] is not None


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def add(case: str, *, area: str, tiffio: float | None, unit: str = "s", peer: str | None = None,
        peer_time: float | None = None, ratio: float | None = None, spread: Sequence[float] | None = None,
        floor: str | None = None, floor_time: float | None = None, floor_ratio: float | None = None,
        runs: int | None = None, note: str | None = None) -> None:
    """One figure. ``tiffio``/``peer_time``/``floor_time`` in ``unit`` (seconds unless said);
    ``ratio`` = tiffio / peer (computed from the times when not given); ``spread`` = (lowest, highest)."""
    if not active():
        return
    assert area in AREAS, area
    if ratio is None and tiffio is not None and peer_time:
        ratio = tiffio / peer_time
    if floor_ratio is None and tiffio is not None and floor_time:
        floor_ratio = tiffio / floor_time
    rec = {"bench": _state["bench"], "area": area, "case": case, "tiffio": _clean(tiffio), "unit": unit,
           "peer": peer, "peer_time": _clean(peer_time), "ratio": _clean(ratio),
           "spread": [_clean(float(spread[0])), _clean(float(spread[1]))] if spread is not None else None,
           "floor": floor, "floor_time": _clean(floor_time), "floor_ratio": _clean(floor_ratio), "runs": runs,
           "note": note}
    _state["records"].append(rec)


def _ratios(times: Mapping[str, Sequence[float]], a: str, b: str) -> list[float]:
    return sorted(x / y for x, y in zip(times[a], times[b]))


def pair(case: str, times: Mapping[str, Sequence[float]], tiffio: str, peers: Mapping[str, str] | None, *, area: str,
         floor: str | None = None, floor_name: str | None = None, per: float = 1.0, note: str | None = None) -> None:
    """A record from per-run times ``{method: [seconds, ...]}`` of interleaved runs. ``peers`` maps a
    peer's display name to its key in ``times``; the fastest (lowest median) is the one recorded.
    ``per`` divides the times (e.g. the number of tiles, for a time per tile)."""
    if not active():
        return
    peer = peer_key = None
    if peers:
        peer, peer_key = min(((name, key) for name, key in peers.items() if times.get(key)),
                             key=lambda item: statistics.median(times[item[1]]), default=(None, None))
    ratios = _ratios(times, tiffio, peer_key) if peer_key else []
    floors = _ratios(times, tiffio, floor) if floor and times.get(floor) else []
    add(case, area=area, tiffio=statistics.median(times[tiffio]) / per, peer=peer,
        peer_time=statistics.median(times[peer_key]) / per if peer_key else None,
        ratio=statistics.median(ratios) if ratios else None, spread=(ratios[0], ratios[-1]) if ratios else None,
        floor=(floor_name or floor) if floors else None,
        floor_time=statistics.median(times[floor]) / per if floors else None,
        floor_ratio=statistics.median(floors) if floors else None, runs=len(times[tiffio]), note=note)


def load(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            return list(json.load(fh)["records"])
    except FileNotFoundError:
        return []


def dump(path: str, records: list[dict[str, Any]]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"records": records}, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)


def save() -> str | None:
    """Merge this invocation's records into its file (a case replaces the stored one of the same
    name); returns the path, or None when there was nothing to write."""
    path, records = _state["path"], _state["records"]
    if not active() or not path or not records:
        return None
    context = dict(_state["context"])
    context["machine"] = machine()
    new = [{**rec, **context} for rec in records]
    cases = {rec["case"] for rec in new}
    kept = [rec for rec in load(path) if rec["case"] not in cases]
    dump(path, kept + new)
    print(f"records: {len(new)} written to {path}", file=sys.stderr)
    _state["records"] = []
    return path
