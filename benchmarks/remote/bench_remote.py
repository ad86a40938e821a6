"""Remote reading, side by side in one run: tiffio, GDAL /vsicurl/ (rasterio) and
tifffile + fsspec over HTTP, against tests/support/rangeserver.py on 127.0.0.1 adding ``--rtt`` ms to
every request and to every new connection.

    python benchmarks/remote/make_files.py     # once
    python benchmarks/remote/bench_remote.py --runs 3

Scenarios (level 0 of each file, 512 x 512 JPEG tiles):
  tile    open + tile (row 40, column 40)
  region  open + the 2048 x 2048 window at (20100, 20100): 25 tiles

Each (tool, file, scenario) runs in a fresh process (imports outside the clock; nothing
cached between runs); runs are interleaved. Counted from the server's log: GET and HEAD
requests, connections, bytes sent, and sequential round trips (the longest chain of
requests each starting after the previous one ended). ``limit`` is the physical floor
(issue 13: "(1 + k) round trips"): one connection set-up, one round trip for the metadata
(the first 64 KiB and the last 256 KiB together), one more only where IFD 0 or the strile
entries the read needs lie outside those bytes (a reader learns where they are from IFD 0:
the tifffile layout, whose TileByteCounts start past 64 KiB), one for the data, plus the
time tiffio takes to decode the same tiles from a local file (the loopback's bandwidth
makes the bytes themselves nearly free here). ``floor RTs`` = those request round trips.

One untimed warm-up round (``--warmup``) runs every tool first, so that no tool pays for
the server's disk reads (the data files are larger than the page cache may keep).
``--tools ...,async-tiff`` adds async-tiff (obstore's HTTP client), run by the python of a venv
of its own (``--async-tiff-python``; it is no dependency of tiffio or its tests)::

    python -m venv /tmp/async-tiff-venv && /tmp/async-tiff-venv/bin/pip install async-tiff obstore numpy

``--baseline PATH`` adds ``tiffio-base``: tiffio imported from another checkout (e.g. a
``git worktree`` of main), run interleaved with the current one for a before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(HERE))

import record  # noqa: E402

from tests.support.rangeserver import RangeServer  # noqa: E402

DATA = os.path.join(REPO, "benchmarks", "data")
FILES = {"cog": "remote_cog.tif", "tiffio": "remote_tiffio.tif", "tifffile": "remote_tifffile.tif"}
TILE = (40, 40)
REGION = (20100, 20100, 2048, 2048)

# --- the child process: one tool, one scenario, prints {"wall": seconds} ---------------------------
CHILD = r'''
import json, sys, time
tool, scenario, url, path = sys.argv[1:5]
TILE = (40, 40)
REGION = (20100, 20100, 2048, 2048)
if tool in ("tiffio", "tiffio-base"):
    sys.path.insert(0, sys.argv[5])
    import tiffio
    import tiffio.sources.http  # imports outside the clock, as for the other tools
    t0 = time.perf_counter()
    with tiffio.open(url) as tif:
        ifd = tif.ifds[0]
        if scenario == "tile":
            across = -(-ifd.width // ifd.tile_shape[1])
            arr = ifd.read_segment(TILE[0] * across + TILE[1])
        else:
            arr = ifd.read_region(*REGION)
    wall = time.perf_counter() - t0
elif tool == "tiffio-local":  # decode cost of the same tiles (the limit's CPU part)
    sys.path.insert(0, sys.argv[5])
    import tiffio
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        across = -(-ifd.width // ifd.tile_shape[1])
        ifd.read_segment(0)
        t0 = time.perf_counter()
        if scenario == "tile":
            arr = ifd.read_segment(TILE[0] * across + TILE[1])
        else:
            arr = ifd.read_region(*REGION)
        wall = time.perf_counter() - t0
elif tool == "gdal":
    import os
    os.environ.update(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif",
                      GDAL_HTTP_MAX_RETRY="0")
    import rasterio
    from rasterio.windows import Window
    t0 = time.perf_counter()
    with rasterio.open("/vsicurl/" + url) as ds:
        if scenario == "tile":
            arr = ds.read(window=Window(TILE[1] * 512, TILE[0] * 512, 512, 512))
        else:
            arr = ds.read(window=Window(REGION[1], REGION[0], REGION[3], REGION[2]))
    wall = time.perf_counter() - t0
elif tool == "tifffile":
    import fsspec, numpy, tifffile
    import fsspec.implementations.http  # imports outside the clock
    t0 = time.perf_counter()
    with fsspec.open(url, "rb") as fh, tifffile.TiffFile(fh) as tif:
        page = tif.pages[0]
        across = -(-page.imagewidth // page.tilewidth)
        if scenario == "tile":
            tiles = [TILE]
        else:
            y, x, h, w = REGION
            tiles = [(r, c) for r in range(y // 512, (y + h - 1) // 512 + 1) for c in range(x // 512, (x + w - 1) // 512 + 1)]
        for r, c in tiles:
            i = r * across + c
            fh.seek(page.dataoffsets[i])
            data = fh.read(page.databytecounts[i])
            arr = page.decode(data, i, jpegtables=page.jpegtables)[0]
    wall = time.perf_counter() - t0
print(json.dumps({"wall": wall}))
'''

# async-tiff (Rust, object_store's HTTP client) in its own venv: not a dependency of tiffio or its tests
ASYNC_TIFF_CHILD = r'''
import asyncio, json, sys, time
import numpy
from async_tiff import TIFF
from async_tiff.store import HTTPStore
scenario, url = sys.argv[1:3]
TILE = (40, 40)
REGION = (20100, 20100, 2048, 2048)
base, name = url.rsplit("/", 1)

async def main():
    t0 = time.perf_counter()
    store = HTTPStore.from_url(base + "/", client_options={"allow_http": True})
    tiff = await TIFF.open(name, store=store)
    if scenario == "tile":
        tiles = [await tiff.fetch_tile(TILE[1], TILE[0], 0)]
    else:
        y, x, h, w = REGION
        xy = [(c, r) for r in range(y // 512, (y + h - 1) // 512 + 1) for c in range(x // 512, (x + w - 1) // 512 + 1)]
        tiles = await tiff.fetch_tiles(xy, 0)
    arrays = [numpy.asarray(a) for a in await asyncio.gather(*(t.decode() for t in tiles))]
    return time.perf_counter() - t0

print(json.dumps({"wall": asyncio.run(main())}), flush=True)
import os
os._exit(0)  # async-tiff 0.7.2 sometimes aborts at interpreter exit (PyGILState_Release while finalizing)
'''
ASYNC_TIFF_VENV = "/tmp/async-tiff-venv"
ASYNC_TIFF_SETUP = (f"python -m venv {ASYNC_TIFF_VENV} && "
                    f"{ASYNC_TIFF_VENV}/bin/pip install async-tiff obstore numpy")


def run_child(tool: str, scenario: str, url: str, path: str, repo: str = REPO,
              async_python: str = f"{ASYNC_TIFF_VENV}/bin/python") -> float:
    if tool == "async-tiff":
        cmd = [async_python, "-c", ASYNC_TIFF_CHILD, scenario, url]
    else:
        cmd = [sys.executable, "-c", CHILD, tool, scenario, url, path, repo]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode:
        raise RuntimeError(f"{tool} {scenario} {url}: exit {out.returncode}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["wall"]


HEAD, TAIL = 64 << 10, 256 << 10  # the first round trip's bytes (issue 13)


def needed(path: str, scenario: str) -> tuple[int, int]:
    """(bytes strictly needed, floor of sequential request round trips). Bytes: the tiles,
    IFD 0's entries, and the strile entries of the tiles. Round trips: the metadata (head and
    tail together), one more if IFD 0 or a needed strile entry lies outside them, the data."""
    import tiffio
    with tiffio.open(path) as tif:
        ifd = tif.ifds[0]
        across = -(-ifd.width // ifd.tile_shape[1])
        if scenario == "tile":
            indices = [TILE[0] * across + TILE[1]]
        else:
            y, x, h, w = REGION
            indices = [p.index for p in ifd.grid.region(0, y, x, 1, h, w, 0)]
        entry = tif.layout.entry_size
        ifd_bytes = len(ifd.tags) * entry + 2 * tif.layout.offset_size
        item = 8 if tif.bigtiff else 4
        strile = 2 * len(indices) * item
        size = tif.source.size
        spans = [(ifd.offset, ifd_bytes)]
        for code in (324, 325, 273, 279):
            tag = ifd.tags.get(code)
            if tag is not None and tag.value_offset is not None:
                spans += [(tag.value_offset + i * item, item) for i in indices]

        def first_round(offset: int, n: int) -> bool:
            return offset + n <= HEAD or offset >= size - TAIL

        trips = 2 if all(first_round(o, n) for o, n in spans) else 3
        return sum(ifd.segment_location(i)[1] for i in indices) + ifd_bytes + strile + 16, trips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rtt", type=float, default=20.0, help="ms added per request and per new connection")
    parser.add_argument("--tools", default="tiffio,gdal,tifffile")
    parser.add_argument("--files", default="cog,tiffio,tifffile")
    parser.add_argument("--scenarios", default="tile,region")
    parser.add_argument("--json", help="write the raw results here")
    record.add_json_arg(parser, "bench_remote", flag="--record")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (server page cache)")
    parser.add_argument("--baseline", help="a tiffio checkout to compare with (tool tiffio-base)")
    parser.add_argument("--async-tiff-python", default=f"{ASYNC_TIFF_VENV}/bin/python",
                        help=f"the python of a venv with async-tiff and obstore (tool async-tiff); make it with: "
                             f"{ASYNC_TIFF_SETUP}")
    args = parser.parse_args()
    record.start("bench_remote", args.record_json)
    rtt = args.rtt / 1000
    tools = args.tools.split(",")
    if args.baseline:
        tools.insert(tools.index("tiffio") + 1 if "tiffio" in tools else 0, "tiffio-base")
    if "async-tiff" in tools and not os.path.exists(args.async_tiff_python):
        sys.exit(f"--tools async-tiff needs {args.async_tiff_python}: {ASYNC_TIFF_SETUP}")
    files = args.files.split(",")
    scenarios = args.scenarios.split(",")
    server = RangeServer(rtt=rtt, conn_rtt=rtt).start()
    for name in files:
        server.put_file(FILES[name], os.path.join(DATA, FILES[name]))
    rows: dict[tuple[str, str, str], list[dict]] = {}
    try:
        for run in range(-args.warmup, args.runs):
            for name in files:
                path = os.path.join(DATA, FILES[name])
                url = server.url(FILES[name])
                for scenario in scenarios:
                    for tool in [*tools, "tiffio-local"]:
                        server.reset_log()
                        with server.lock:
                            server.connections = 0
                        repo = args.baseline if tool == "tiffio-base" else REPO
                        wall = run_child(tool, scenario, url, path, repo, args.async_tiff_python)
                        if run < 0:
                            continue
                        time.sleep(0.05)  # let the server log the last answers
                        reqs = server.requests(None)
                        rows.setdefault((name, scenario, tool), []).append({
                            "wall": wall, "gets": sum(r.method == "GET" for r in reqs),
                            "heads": sum(r.method == "HEAD" for r in reqs), "bytes": server.bytes_sent(),
                            "round_trips": server.round_trips(), "connections": server.connections})
    finally:
        server.stop()
    load = os.getloadavg()
    print(f"rtt {args.rtt:g} ms per request and per new connection; {args.runs} runs, medians; "
          f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    header = (f"{'file':9} {'scenario':7} {'tool':11} {'GET':>4} {'HEAD':>4} {'conns':>5} {'RTs':>4} {'bytes':>10} "
              f"{'x needed':>8} {'wall ms':>8} {'floor RTs':>9} {'limit ms':>8} {'x limit':>7}")
    print(header)
    result = {}
    for name in files:
        for scenario in scenarios:
            need, trips = needed(os.path.join(DATA, FILES[name]), scenario)
            decode = statistics.median(r["wall"] for r in rows[(name, scenario, "tiffio-local")])
            limit = (1 + trips) * rtt + decode  # a connection, the request round trips, the decode
            for tool in tools:
                runs = rows[(name, scenario, tool)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                result[f"{name}/{scenario}/{tool}"] = {**med, "needed": need, "floor_round_trips": trips,
                                                       "limit": limit, "walls": [r["wall"] for r in runs]}
                print(f"{name:9} {scenario:7} {tool:11} {med['gets']:4.0f} {med['heads']:4.0f} "
                      f"{med['connections']:5.0f} {med['round_trips']:4.0f} {med['bytes']:10.0f} "
                      f"{med['bytes'] / need:8.2f} {med['wall'] * 1000:8.1f} {trips:9d} {limit * 1000:8.1f} "
                      f"{med['wall'] / limit:7.2f}")
            walls = {tool: [r["wall"] for r in rows[(name, scenario, tool)]] for tool in tools}
            walls["limit"] = [limit] * args.runs
            peers = {"GDAL /vsicurl/ (rasterio)": "gdal", "tifffile + fsspec": "tifffile", "async-tiff": "async-tiff"}
            what = "open + one tile" if scenario == "tile" else "open + 2048² region (25 tiles)"
            case = f"{what}, {FILES[name]}, {args.rtt:g} ms per request"
            if "tiffio" in walls:
                record.pair(case, walls, "tiffio", peers, area="remote", floor="limit",
                            floor_name="1 connection + the request round trips + the local decode")
            if "tiffio-base" in walls and "tiffio" in walls:
                record.pair(f"bench_remote {case}", walls, "tiffio", {"baseline checkout": "tiffio-base"}, area="ab")
    record.save()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
