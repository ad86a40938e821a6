"""Writing arrays: tiffio.imwrite, tiffio.dask.to_tiff and tiffio.map_tiles against what users run today.

    python benchmarks/bench_arrays.py imwrite  [--size 20000] [--workers 2] [--rounds 3]
    python benchmarks/bench_arrays.py to_tiff  [--size 40960] [--rounds 1]
    python benchmarks/bench_arrays.py map_tiles [--size 20000] [--rounds 1]

imwrite: a 20000 x 20000 uint16 array (smooth + noise), 256 x 256 tiles, Deflate + horizontal
predictor: ``tiffio.imwrite(..., workers=N)`` vs ``tifffile.imwrite(..., maxworkers=N)``, interleaved in
one process (the array is made once); both files are read back and compared pixel for pixel.

to_tiff: a 40960 x 40960 RGB dask array of cheap synthetic chunks (2048 x 2048: a 512 x 512 texture
tiled and shifted per chunk), 512 x 512 JPEG tiles, contenders each in a fresh process:
``floor`` (the chunks computed and their tiles JPEG-encoded on 2 threads, no file), ``floor_worker_env``
(the same in two processes started before the clock, in the environment a dask Nanny gives its worker
processes, ``distributed.nanny.pre-spawn-environ``:
``MALLOC_TRIM_THRESHOLD_=65536`` makes glibc map every allocation over 128 KiB afresh, so each 12 MiB chunk
costs page faults; every task of a LocalCluster(processes=True) pays that, whatever it runs), ``to_tiff`` and
``to_tiff_pyramid`` on ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``,
``tifffile`` (``tifffile.imwrite(path, x.compute(), tile=(512, 512), compression='jpeg',
maxworkers=2)``: the whole array in memory), ``rioxarray`` (``to_raster(tiled=True, lock=Lock)`` on the
same cluster, JPEG 512 x 512 blocks). The workers of to_tiff's cluster import tiffio before the clock
starts (~0.25 s each, in the floor's process before its clock too). Peak RSS of the timed process (with a LocalCluster: the
client, which also runs the scheduler): VmHWM.

map_tiles: a 9 x 9 Laplacian of Gaussian (scipy.ndimage.gaussian_laplace, sigma 1.4, radius 4) over a
20000 x 20000 uint8 tiled TIFF (512 x 512 Deflate tiles, made once in --dir), float32 output,
uncompressed: ``tiffio.map_tiles(..., overlap=4, workers=2, processes=True)`` vs pyvips
``new_from_file(...).conv(mask, precision='float').tiffsave(tile=True, 512 x 512)`` with
VIPS_CONCURRENCY=2 (the same kernel as a 9 x 9 mask). Peak RSS of the process and of its children.

Wrap runs in ``flock /tmp/tiffio-bench.lock`` so that benchmarks never overlap.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from synthetic import dask_array, synthetic_chunk  # noqa: E402  (importable by the cluster's workers)

import tiffio  # noqa: E402

# -- data ----------------------------------------------------------------------------------------


def smooth_uint16(n):
    out = numpy.empty((n, n), numpy.uint16)
    x = numpy.arange(n)
    rng = numpy.random.default_rng(0)
    for y0 in range(0, n, 1000):
        y = numpy.arange(y0, min(n, y0 + 1000))[:, None]
        band = (numpy.sin(x / 17.0)[None, :] + numpy.cos(y / 23.0)) * 12000 + 30000
        out[y0:y0 + len(y)] = band.astype(numpy.uint16) + rng.integers(0, 400, (len(y), n), dtype=numpy.uint16)
    return out


def log_kernel():
    import scipy.ndimage
    impulse = numpy.zeros((9, 9))
    impulse[4, 4] = 1
    return scipy.ndimage.gaussian_laplace(impulse, 1.4, truncate=4 / 1.4)


def log9(a):
    import scipy.ndimage
    return scipy.ndimage.gaussian_laplace(a, 1.4, output=numpy.float32, truncate=4 / 1.4)


def map_source(directory, n):
    path = os.path.join(directory, f"bench_map_{n}_u8.tif")
    if not os.path.exists(path):
        rng = numpy.random.default_rng(2)

        class Rows:  # a generated array-like: imwrite reads it in tile rows
            shape, dtype = (n, n), numpy.dtype(numpy.uint8)

            def __getitem__(self, key):
                ys = key[0]
                y = numpy.arange(ys.start, min(n, ys.stop))[:, None]
                x = numpy.arange(n)[None, :]
                base = (numpy.sin(x / 31.0) + numpy.cos(y / 19.0)) * 50 + 120
                return (base + rng.integers(0, 30, base.shape)).astype(numpy.uint8)

        tiffio.imwrite(path + ".part", Rows(), tile=(512, 512), compression="deflate", metadata=None)
        os.replace(path + ".part", path)
    return path


_FLOOR_SPEC = []


def floor_task(nij):
    """The floor's unit of work: one 2048 x 2048 chunk computed and its 512 x 512 tiles JPEG-encoded."""
    from tiffio.codecs.encode import EncodeSpec, encode_segment, make_jpegtables
    if not _FLOOR_SPEC:
        spec = EncodeSpec(compression=7, dtype=numpy.dtype(numpy.uint8), tile=(512, 512), samples=3, level=75,
                          photometric=6, jpeg_subsampling=(2, 2))
        _FLOOR_SPEC.append(dataclasses.replace(spec, jpegtables=make_jpegtables(spec)))
    spec = _FLOOR_SPEC[0]
    n, i, j = nij
    y0, x0 = i * 2048, j * 2048
    info = {None: {"array-location": [(y0, min(n, y0 + 2048)), (x0, min(n, x0 + 2048)), (0, 3)]}}
    block = synthetic_chunk(info)
    total = 0
    for ty in range(0, block.shape[0], 512):
        for tx in range(0, block.shape[1], 512):
            total += len(encode_segment(spec, block[ty:ty + 512, tx:tx + 512]))
    return total


# -- one contender in a fresh process ----------------------------------------------------------


def run_one(case, contender, args):
    out = os.path.join(args.dir, f"bench_arrays_{case}_{contender}.tif")
    if os.path.exists(out):
        os.remove(out)
    n = args.size
    result = {"case": case, "contender": contender}
    if case == "to_tiff":
        x = dask_array(n)
        start = time.perf_counter()
        if contender in ("floor", "floor_worker_env"):
            grid = [(n, i, j) for i in range(-(-n // 2048)) for j in range(-(-n // 2048))]
            if contender == "floor":
                from concurrent.futures import ThreadPoolExecutor
                pool = ThreadPoolExecutor(2)
            else:  # two processes, as the cluster's workers, started before the clock
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor
                pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
                list(pool.map(floor_task, [(256, 0, 0)] * 2))
            start = time.perf_counter()
            with pool:
                result["bytes"] = sum(pool.map(floor_task, grid))
        elif contender in ("to_tiff", "to_tiff_pyramid"):
            from dask.distributed import Client, LocalCluster

            from tiffio.dask import to_tiff
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                              silence_logs=50) as cluster, Client(cluster) as client:
                # the workers import tiffio before the clock starts, as the floor's process did
                client.run(importlib.import_module, "tiffio.dask")
                start = time.perf_counter()
                report = to_tiff(x, out, tile=(512, 512), compression="jpeg",
                                             pyramid=contender == "to_tiff_pyramid")
                result["seconds"] = time.perf_counter() - start
            result["report"] = str(report)
        elif contender == "tifffile":
            import tifffile
            tifffile.imwrite(out, x.compute(scheduler="threads", num_workers=2), tile=(512, 512), compression="jpeg",
                             maxworkers=2, bigtiff=True)
        elif contender == "rioxarray":
            import rioxarray  # noqa: F401
            import xarray
            from dask.distributed import Client, LocalCluster, Lock
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                              silence_logs=50) as cluster, Client(cluster):
                arr = xarray.DataArray(x.transpose(2, 0, 1), dims=("band", "y", "x"))
                start = time.perf_counter()
                arr.rio.to_raster(out, tiled=True, blockxsize=512, blockysize=512, compress="JPEG",
                                  BIGTIFF="YES", lock=Lock("rio"))
                result["seconds"] = time.perf_counter() - start
        result.setdefault("seconds", time.perf_counter() - start)
    elif case == "map_tiles":
        src = map_source(args.dir, n)
        start = time.perf_counter()
        if contender == "map_tiles":
            report = tiffio.map_tiles(src, out, log9, overlap=4, workers=2, processes=True)
            result["report"] = str(report)
        elif contender == "pyvips":
            os.environ["VIPS_CONCURRENCY"] = "2"
            import pyvips
            mask = pyvips.Image.new_from_array(log_kernel().tolist())
            image = pyvips.Image.new_from_file(src, access="sequential")
            image.conv(mask, precision="float").tiffsave(out, tile=True, tile_width=512, tile_height=512,
                                                         bigtiff=True)
        result["seconds"] = time.perf_counter() - start
    if os.path.exists(out):
        result["file_bytes"] = os.path.getsize(out)
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    result["maxrss_mib"] = int(status["VmHWM"].split()[0]) / 1024   # (ru_maxrss may keep the forking parent's)
    result["children_maxrss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(result), flush=True)


# -- drivers -------------------------------------------------------------------------------------


def contender_env(contender):
    env = dict(os.environ)
    if contender == "floor_worker_env":
        import dask
        import distributed  # noqa: F401  (its configuration defaults)
        env.update({k: str(v) for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()})
    return env


def subprocess_case(case, contenders, args):
    times = {c: [] for c in contenders}
    rows = {}
    for r in range(args.rounds):
        order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
        for c in order:
            proc = subprocess.run([sys.executable, __file__, "_one", case, c, "--size", str(args.size),
                                   "--dir", args.dir], capture_output=True, text=True, env=contender_env(c))
            if proc.returncode != 0:
                print(f"{c}: failed\n{proc.stderr[-3000:]}")
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            times[c].append(row["seconds"])
            rows[c] = row
            print(json.dumps(row), flush=True)
    print(f"\n{case}, size {args.size}, {args.rounds} round(s); load average {os.getloadavg()}")
    for c in contenders:
        if times[c]:
            med = statistics.median(times[c])
            row = rows[c]
            print(f"  {c:16s} {med:8.2f} s  (runs {', '.join(f'{t:.2f}' for t in times[c])})  "
                  f"peak RSS {row['maxrss_mib']:.0f} MiB, children {row['children_maxrss_mib']:.0f} MiB")
    return {c: statistics.median(t) for c, t in times.items() if t}


def bench_imwrite(args):
    import tifffile
    data = smooth_uint16(args.size)
    paths = {c: os.path.join(args.dir, f"bench_imwrite_{c}.tif") for c in ("tiffio", "tifffile")}
    times = {c: [] for c in paths}
    for r in range(args.rounds):
        for c in (["tiffio", "tifffile"] if r % 2 == 0 else ["tifffile", "tiffio"]):
            if os.path.exists(paths[c]):
                os.remove(paths[c])
            start = time.perf_counter()
            if c == "tiffio":
                tiffio.imwrite(paths[c], data, tile=(256, 256), compression="deflate", predictor=True,
                               workers=args.workers, metadata=None)
            else:
                tifffile.imwrite(paths[c], data, tile=(256, 256), compression="zlib", predictor=True,
                                 maxworkers=args.workers, metadata=None, bigtiff=True)
            times[c].append(time.perf_counter() - start)
            print(f"round {r}: {c} {times[c][-1]:.2f} s", flush=True)
    with tiffio.open(paths["tiffio"]) as a, tiffio.open(paths["tifffile"]) as b:
        same = bool(numpy.array_equal(a.ifds[0].asarray(), data)) and bool(numpy.array_equal(b.ifds[0].asarray(), data))
    med = {c: statistics.median(t) for c, t in times.items()}
    print(f"\nimwrite {args.size}^2 uint16, 256^2 Deflate + predictor, {args.workers} threads, {args.rounds} rounds; "
          f"load average {os.getloadavg()}")
    for c in times:
        print(f"  {c:9s} {med[c]:7.2f} s (runs {', '.join(f'{t:.2f}' for t in times[c])}), "
              f"{os.path.getsize(paths[c]) / 2**20:.0f} MiB")
    ratios = [b / a for a, b in zip(times["tiffio"], times["tifffile"])]
    print(f"  speed tiffio / tifffile: {statistics.median(ratios):.2f} x [{min(ratios):.2f}..{max(ratios):.2f}]; "
          f"both files read back equal to the array: {same}")
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("case", choices=["imwrite", "to_tiff", "map_tiles", "_one"])
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--contenders", default=None, help="comma-separated subset")
    parser.add_argument("--json", dest="record_json", metavar="PATH", default=None,
                        help="JSON records (default benchmarks/results/bench_arrays.json, '' for none)")
    args = parser.parse_args()
    if args.case == "_one":
        run_one(args.rest[0], args.rest[1], args)
        return
    if args.case == "imwrite":
        args.size = args.size or 20000
        args.rounds = args.rounds or 3
        record_json(args, bench_imwrite(args))
    elif args.case == "to_tiff":
        args.size = args.size or 40960
        args.rounds = args.rounds or 1
        contenders = (args.contenders or "floor,floor_worker_env,to_tiff,to_tiff_pyramid,tifffile,rioxarray").split(",")
        med = subprocess_case("to_tiff", contenders, args)
        for floor in ("floor", "floor_worker_env"):
            if floor in med:
                for c in ("to_tiff", "tifffile", "rioxarray"):
                    if c in med:
                        print(f"  {c} speed vs the 2-core {floor}: {med[floor] / med[c]:.2f} x")
        if "to_tiff" in med:
            for c in ("tifffile", "rioxarray"):
                if c in med:
                    print(f"  to_tiff speed vs {c}: {med[c] / med['to_tiff']:.2f} x")
            if "to_tiff_pyramid" in med:
                print(f"  pyramid / level 0 alone: {med['to_tiff_pyramid'] / med['to_tiff']:.2f} x")
        record_json(args, {c: [t] for c, t in med.items()})
    else:
        args.size = args.size or 20000
        args.rounds = args.rounds or 1
        map_source(args.dir, args.size)  # made here, not in a measured process (its peak RSS would count)
        med = subprocess_case("map_tiles", (args.contenders or "map_tiles,pyvips").split(","), args)
        if len(med) == 2:
            print(f"  map_tiles time / pyvips time: {med['map_tiles'] / med['pyvips']:.2f} x")
        record_json(args, {c: [t] for c, t in med.items()})


# -- JSON records (benchmarks/record.py) ---------------------------------------------------------


def record_json(args, times):
    """The JSON records of one case from its per-round times {contender: [seconds]} (to_tiff and
    map_tiles: the medians, one value per contender)."""
    import record

    record.start("bench_arrays", args.record_json)
    note = f"median of {args.rounds} round(s)" if args.case != "imwrite" else None
    if args.case == "imwrite":
        record.pair(f"imwrite {args.size}² uint16, 256² Deflate + predictor, {args.workers} threads", times, "tiffio",
                    {"tifffile.imwrite": "tifffile"}, area="arrays")
    elif args.case == "to_tiff":
        peers = {"tifffile.imwrite of x.compute()": "tifffile", "rioxarray to_raster": "rioxarray"}
        for name in ("to_tiff", "to_tiff_pyramid"):
            if name in times:
                record.pair(f"dask to_tiff {args.size}² RGB JPEG 512², {'pyramid' if 'pyramid' in name else 'level 0'}"
                            f", LocalCluster 2 processes", times, name, peers, area="arrays", floor="floor",
                            floor_name="chunks computed + tiles JPEG-encoded, no file", note=note)
    elif "map_tiles" in times:
        record.pair(f"map_tiles 9 x 9 LoG over {args.size}² uint8, 2 processes", times, "map_tiles",
                    {"pyvips conv + tiffsave": "pyvips"}, area="arrays", note=note)
    record.save()


if __name__ == "__main__":
    main()
