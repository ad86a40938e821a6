"""Many producers, one file (issue 14): shards + merge vs one writer, merge alone, relayout to COG
vs gdal_translate -of COG.

    python benchmarks/bench_scale.py shards --size 40960 --runs 2   # 2 worker processes + merge vs 1 process, 2 threads
    python benchmarks/bench_scale.py merge --size 40960 --runs 3    # merge alone, with and without fsync
    python benchmarks/bench_scale.py cog --size 40960 --runs 2      # relayout(cog) vs gdal_translate -of COG

RGB uint8, 512 x 512 JPEG (quality 75) tiles. Pixels are 16 precomputed read-only tiles reused, so
generating them costs nothing for every contender. ``shards``: "one" is one process with a
TiffWriter and 2 encoder threads writing every tile; "shards" starts 2 worker processes (Python
start-up and imports included), each writes the tiles a tiffio.Plan gives it into its own shard (1
encoder thread, as each process is one core's work), then tiffio.merge builds the file (layout
"plain"); end to end from before the processes start to the rename. Both fsync. Runs alternate
(one, shards, one, shards...); the report prints every run and the per-run ratio. ``cog``: a
tiffio pyramid (levels halved until <= 512 px) is written once (untimed), then relayout(layout="cog")
and `gdal_translate -of COG -co COMPRESS=JPEG -co QUALITY=75 -co BLOCKSIZE=512 -co NUM_THREADS=2`
(which reuses the source overviews and re-encodes every tile) alternate; both outputs go through
GDAL's validator when it is installed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)

import record  # noqa: E402
from bench_pyramid import TILE, make_tiles  # noqa: E402  (the same synthetic RGB tiles)

import tiffio  # noqa: E402


def plan_for(size: int, workers: int, shard_fsync: bool = True) -> tiffio.Plan:
    return tiffio.Plan.create((size, size, 3), "uint8", workers=workers, tile=(TILE, TILE), compression="jpeg",
                              jpeg_quality=75, writer_options={"fsync": shard_fsync})


def shard_worker(size: int, workers: int, worker: int, path: str, shard_fsync: bool) -> None:
    """Body of a worker process: write the plan's tiles of ``worker`` into ``path``."""
    tiles = make_tiles()
    plan = plan_for(size, workers, shard_fsync)
    with plan.open_shard(path, workers=1) as w:
        im = w.images[0]
        for r, c in plan.tiles(worker):
            im.write_tile(r, c, tiles[(r * 7 + c) % len(tiles)])


def remove(*paths: str) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def run_one(size: int, path: str) -> tuple[float, float]:
    """(seconds, CPU seconds) of one process with 2 encoder threads writing every tile."""
    tiles = make_tiles()
    remove(path)
    n = size // TILE
    c0 = cpu(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with tiffio.TiffWriter(path, workers=2) as w:
        im = w.add_image((size, size, 3), "uint8", tile=(TILE, TILE), compression="jpeg", jpeg_quality=75)
        for r in range(n):
            for c in range(n):
                im.write_tile(r, c, tiles[(r * 7 + c) % len(tiles)])
    return time.perf_counter() - t0, cpu(resource.RUSAGE_SELF) - c0


def copy_floor(paths: list[str], dst: str) -> float:
    """Seconds to copy whole files into one with os.copy_file_range + fsync (the I/O floor of a merge)."""
    t0 = time.perf_counter()
    out = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    pos = 0
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        n = os.fstat(fd).st_size
        off = 0
        while off < n:
            k = os.copy_file_range(fd, out, n - off, off, pos)
            off += k
            pos += k
        os.close(fd)
    os.fsync(out)
    os.close(out)
    dt = time.perf_counter() - t0
    remove(dst)
    return dt


def run_shards(size: int, path: str, workers: int = 2, shard_fsync: bool = True) -> tuple[float, float, float, float, int]:
    """(end-to-end seconds, CPU seconds of workers + merge, merge seconds, copy floor seconds, tile bytes)."""
    shards = [tiffio.Plan.shard_path(path, w) for w in range(workers)]
    remove(path, *shards)
    c0 = cpu(resource.RUSAGE_CHILDREN) + cpu(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "_worker", str(size), str(workers), str(w),
                               shards[w], str(int(shard_fsync))]) for w in range(workers)]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"worker failed: {p.returncode}")
    t1 = time.perf_counter()
    report = tiffio.merge(path, shards)
    t2 = time.perf_counter()
    c1 = cpu(resource.RUSAGE_CHILDREN) + cpu(resource.RUSAGE_SELF)
    floor = copy_floor(shards, path + ".floor")
    remove(*shards)
    return t2 - t0, c1 - c0, t2 - t1, floor, report.data_bytes


def shards_section(args: argparse.Namespace) -> None:
    one_path = os.path.join(args.dir, "scale_one.tif")
    merged = os.path.join(args.dir, "scale_merged.tif")
    tiles = (args.size // TILE) ** 2
    print(f"# shards: {args.size}^2 RGB JPEG q75, {tiles} tiles of {TILE}^2, shard fsync "
          f"{'off' if args.shards_no_fsync else 'on'}; load {os.getloadavg()}")
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    merge_rates: list[float] = []
    walls: dict[str, list[float]] = {"one": [], "shards": []}
    for run in range(args.runs):
        t_one, c_one = run_one(args.size, one_path)
        t_sh, c_sh, t_merge, t_floor, nbytes = run_shards(args.size, merged, shard_fsync=not args.shards_no_fsync)
        walls["one"].append(t_one)
        walls["shards"].append(t_sh)
        ratios.append(t_one / t_sh)
        cpu_ratios.append(c_one / c_sh)
        merge_rates.append(nbytes / t_merge / 1e6)
        print(f"run {run}: one process 2 threads {t_one:.2f} s (CPU {c_one:.2f} s) | 2 processes + merge {t_sh:.2f} s "
              f"(CPU {c_sh:.2f} s; merge {t_merge:.2f} s, {nbytes / 1e6:.0f} MB, {nbytes / t_merge / 1e6:.0f} MB/s; "
              f"whole-file copy floor {t_floor:.2f} s) | speed shards/one {t_one / t_sh:.2f}, by CPU time "
              f"{c_one / c_sh:.2f}; load {os.getloadavg()[0]:.2f}", flush=True)
    with tiffio.open(one_path) as a, tiffio.open(merged) as b:
        assert a.ifds[0].read_segment_bytes(0) == b.ifds[0].read_segment_bytes(0)
    print(f"speed ratio shards+merge / one process: wall median {sorted(ratios)[len(ratios) // 2]:.2f} "
          f"[{min(ratios):.2f}..{max(ratios):.2f}], CPU time median {sorted(cpu_ratios)[len(cpu_ratios) // 2]:.2f} "
          f"[{min(cpu_ratios):.2f}..{max(cpu_ratios):.2f}]; merge {min(merge_rates):.0f}-{max(merge_rates):.0f} MB/s")
    record.pair(f"2 shard processes + merge, {args.size}² RGB JPEG, shard fsync {'off' if args.shards_no_fsync else 'on'}",
                walls, "shards", {"one tiffio process, 2 threads": "one"}, area="write",
                note=f"merge {min(merge_rates):.0f}-{max(merge_rates):.0f} MB/s")
    remove(one_path, merged)


def merge_section(args: argparse.Namespace) -> None:
    """Merge alone: shards written once (untimed), then merge with and without fsync and the
    whole-file copy floor, interleaved."""
    merged = os.path.join(args.dir, "scale_merge.tif")
    shards = [tiffio.Plan.shard_path(merged, w) for w in range(2)]
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "_worker", str(args.size), "2", str(w),
                               shards[w], "0"]) for w in range(2)]
    for p in procs:
        p.wait()
    total = sum(os.path.getsize(s) for s in shards)
    print(f"# merge: 2 shards of {args.size}^2 RGB JPEG, {total / 1e6:.0f} MB; load {os.getloadavg()}")
    times: dict[str, list[float]] = {"True": [], "False": [], "floor": []}
    for run in range(args.runs):
        line = f"run {run}:"
        for fsync in (True, False):
            remove(merged)
            t0 = time.perf_counter()
            report = tiffio.merge(merged, shards, fsync=fsync)
            dt = time.perf_counter() - t0
            times[str(fsync)].append(dt)
            line += f" merge fsync={fsync} {dt:.2f} s {report.data_bytes / dt / 1e6:.0f} MB/s |"
        floor = copy_floor(shards, merged + ".floor")
        times["floor"].append(floor)
        line += f" whole-file copy+fsync {floor:.2f} s {total / floor / 1e6:.0f} MB/s; load {os.getloadavg()[0]:.2f}"
        print(line, flush=True)
    for fsync in ("True", "False"):
        record.pair(f"merge of 2 shards, {args.size}² RGB JPEG ({total / 1e6:.0f} MB), fsync={fsync}", times, fsync, None,
                    area="write", floor="floor", floor_name="whole-file copy + fsync")
    remove(merged, *shards)


def make_pyramid(size: int, path: str) -> None:
    tiles = make_tiles()
    with tiffio.TiffWriter(path, workers=2, fsync=False) as w:
        level = size
        k = 0
        while True:
            im = w.add_image((level, level, 3), "uint8", tile=(TILE, TILE), compression="jpeg", jpeg_quality=75,
                             reduced=k > 0)
            for r in range(im.tiles_down):
                for c in range(im.tiles_across):
                    im.write_tile(r, c, tiles[(r * 7 + c + k) % len(tiles)][: min(TILE, level - r * TILE),
                                                                             : min(TILE, level - c * TILE)])
            if level <= TILE:
                break
            level = -(-level // 2)
            k += 1


def validate(path: str) -> str:
    try:
        r = subprocess.run(["/usr/bin/python3", "-m", "osgeo_utils.samples.validate_cloud_optimized_geotiff", "-q",
                            path], capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        return "validator absent"
    return "valid" if r.returncode == 0 else f"INVALID {r.stdout.strip()[:200]}"


def cog_section(args: argparse.Namespace) -> None:
    src = os.path.join(args.dir, "scale_pyramid.tif")
    ours = os.path.join(args.dir, "scale_cog_tiffio.tif")
    gdal = os.path.join(args.dir, "scale_cog_gdal.tif")
    t0 = time.perf_counter()
    make_pyramid(args.size, src)
    print(f"# cog: {args.size}^2 RGB JPEG pyramid written in {time.perf_counter() - t0:.1f} s "
          f"({os.path.getsize(src) / 1e6:.0f} MB); load {os.getloadavg()}")
    have_gdal = shutil.which("gdal_translate") is not None
    ratios = []
    times: dict[str, list[float]] = {"tiffio": [], "gdal": []}
    for run in range(args.runs):
        remove(ours)
        t0 = time.perf_counter()
        report = tiffio.relayout(src, ours, layout="cog")
        t_ours = time.perf_counter() - t0
        times["tiffio"].append(t_ours)
        line = f"run {run}: relayout {t_ours:.2f} s ({report.data_bytes / t_ours / 1e6:.0f} MB/s)"
        if have_gdal:
            remove(gdal)
            t0 = time.perf_counter()
            subprocess.run(["gdal_translate", "-q", "-of", "COG", "-co", "COMPRESS=JPEG", "-co", "QUALITY=75",
                            "-co", f"BLOCKSIZE={TILE}", "-co", "NUM_THREADS=2", src, gdal], check=True)
            t_gdal = time.perf_counter() - t0
            times["gdal"].append(t_gdal)
            ratios.append(t_gdal / t_ours)
            line += f" | gdal_translate -of COG {t_gdal:.2f} s | relayout is {t_gdal / t_ours:.1f} x faster"
        print(line + f"; load {os.getloadavg()[0]:.2f}", flush=True)
    valid = validate(ours)
    print(f"validator: tiffio {valid}" + (f", gdal {validate(gdal)}" if have_gdal else ""))
    record.pair(f"relayout to COG, {args.size}² RGB JPEG pyramid", times, "tiffio",
                {"gdal_translate -of COG, 2 threads": "gdal"}, area="pyramid", note=f"validator: {valid}")
    print(f"built-in check of tiffio's output: {tiffio.check_cog(ours) or 'no violation'}")
    if ratios:
        print(f"relayout speed / gdal_translate: median {sorted(ratios)[len(ratios) // 2]:.1f} x "
              f"[{min(ratios):.1f}..{max(ratios):.1f}]")
    remove(src, ours, gdal)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        shard_worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6] == "1")
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("section", choices=["shards", "merge", "cog"])
    ap.add_argument("--size", type=int, default=40960)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--shards-no-fsync", action="store_true",
                    help="shards without fsync (safe against killed processes, not power loss); merge still fsyncs")
    record.add_json_arg(ap, "bench_scale")
    args = ap.parse_args()
    record.start("bench_scale", args.record_json)
    print(f"# {os.cpu_count()} CPUs, python {sys.version.split()[0]}, tiffio from {os.path.dirname(tiffio.__file__)}")
    {"shards": shards_section, "merge": merge_section, "cog": cog_section}[args.section](args)
    record.save()


if __name__ == "__main__":
    main()
