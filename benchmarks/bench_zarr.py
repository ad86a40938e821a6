"""zarr / dask benchmark (issue 12): tiffio's TiffStore and tiffio.dask vs tifffile's zarr store.

    python benchmarks/bench_zarr.py [--repeat 3] [--write-results]

Files (generated on first run into benchmarks/data/, with tifffile):
  zarr_jpeg_8192.tif    8192 x 8192 RGB JPEG (YCbCr 2x2), 256 x 256 tiles (1024), one 2x level
  zarr_u16_4096.tif     4096 x 4096 uint16 Deflate, 64 x 64 tiles (4096 chunks)
  zarr_seq/t*_c*.tif    1000 files (10 t x 100 c) of 128 x 128 uint16 Deflate

Measures (time.perf_counter; methods interleaved run by run in rotating order; ratio = median
of per-run ratios; tiffio / tifffile):
  M2  300 seeded random single-chunk reads ``z[tile]`` through zarr (arrays opened beforehand):
      TiffStore(level=0) vs tifffile ``aszarr(level=0)``                        target <= 1.0
  M3  whole level ``z[:]`` through zarr                                         target <= 0.8
      (also with TiffStore(chunks=(1024, 1024)): tile-aligned windows read with read_region)
  M4  dask ``sum()`` of level 0, threaded scheduler: ``tiffio.dask.from_tiff(chunks=(1024,
      1024))`` vs ``da.from_zarr(aszarr())`` (tile chunks)                       target <= 0.35
      and per-chunk overhead: from_tiff sum on the sync scheduler vs a loop of read_region
      over the same windows (workers=1)                                          target <= 1.10
  M5  dask.distributed: LocalCluster(n_workers=2, processes=True) sum of level 0 and of level 1;
      the same with tifffile's store (which does not pickle: its error is recorded)
  M6  1000-file sequence into one dask array and computed (threaded):
      ``tiffio.dask.imread(glob, pattern)`` vs ``da.from_zarr(TiffSequence(glob,
      pattern).aszarr())``                                                       target <= 0.5
  M7  a 40-page 2048 x 2048 uint16 stack (tifffile's default layout: contiguous uncompressed
      pages) read whole through zarr: ``group["0"][:]`` of TiffStore vs tifffile's
      ``aszarr()``                                                               target <= 0.8
      (also a Deflate stack of 256 x 256 tiles, for information)
  M8  one page of that stack through zarr, 10 seeded random pages ``z[k]``      target <= 1.0
  M9  ``tiffio.dask.from_tiff(wsi, level=1).sum()`` on the threaded scheduler vs a bare
      threaded pread + jpeg8_decode + sum of the same 1600 tiles (wsi_40960_jpeg.tif of
      make_data.py, measured when it exists)                                    target <= 1.15

    python benchmarks/bench_zarr.py --only stack,wsi     # a subset: files,sequence,distributed,stack,wsi
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from typing import Any

import numpy
import tifffile
import zarr

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import record  # noqa: E402
from bench_read import (  # noqa: E402
    fmt_time,
    loadavg,
    machine_info,
    machine_text,
    med,
    paired_ratio,
    ratio_spread,
    run_interleaved,
    update_results,
    verdict,
)
from make_data import texture  # noqa: E402

import tiffio  # noqa: E402
import tiffio.dask as tdask  # noqa: E402
from tiffio.zarr import TiffStore  # noqa: E402

DATA = os.path.join(HERE, "data")
JPEG = os.path.join(DATA, "zarr_jpeg_8192.tif")
U16 = os.path.join(DATA, "zarr_u16_4096.tif")
SEQ = os.path.join(DATA, "zarr_seq")
SEQ_GLOB = os.path.join(SEQ, "t*_c*.tif")
SEQ_PATTERN = r"(t)(\d+)_(c)(\d+)"
STACK = os.path.join(DATA, "zarr_stack_40x2048.tif")
STACK_Z = os.path.join(DATA, "zarr_stack_40x2048_deflate.tif")
WSI = os.path.join(DATA, "wsi_40960_jpeg.tif")


def make_data() -> None:
    os.makedirs(DATA, exist_ok=True)
    rng = numpy.random.default_rng(12)
    if not os.path.exists(JPEG):
        tex = [texture(rng) for _ in range(2)]

        def tiles(size: int) -> Any:
            for _ in range((size // 256) ** 2):
                k = int(rng.integers(2))
                y, x = (int(v) for v in rng.integers(0, 1024 - 256, 2))
                yield tex[k][y:y + 256, x:x + 256]
        with tifffile.TiffWriter(JPEG, bigtiff=False) as w:
            w.write(tiles(8192), shape=(8192, 8192, 3), dtype="uint8", tile=(256, 256), compression="jpeg",
                    subifds=1)
            w.write(tiles(4096), shape=(4096, 4096, 3), dtype="uint8", tile=(256, 256), compression="jpeg",
                    subfiletype=1)
    if not os.path.exists(U16):
        y, x = numpy.mgrid[0:4096, 0:4096]
        img = ((y * 7 + x * 3) % 4096 + rng.integers(0, 64, (4096, 4096))).astype(numpy.uint16)
        tifffile.imwrite(U16, img, tile=(64, 64), compression="zlib")
    if not os.path.exists(STACK) or not os.path.exists(STACK_Z):
        y, x = numpy.mgrid[0:2048, 0:2048]
        base = ((y * 7 + x * 3) % 4096).astype(numpy.uint16)
        pages = (base + rng.integers(0, 64, (40, 1, 1)).astype(numpy.uint16) + (numpy.arange(40, dtype=numpy.uint16)
                 [:, None, None] * 13))
        tifffile.imwrite(STACK, pages)  # tifffile's default: shaped, contiguous uncompressed pages
        tifffile.imwrite(STACK_Z, pages, tile=(256, 256), compression="zlib")
    if len(glob.glob(SEQ_GLOB)) != 1000:
        os.makedirs(SEQ, exist_ok=True)
        for t in range(10):
            for c in range(100):
                img = rng.integers(0, 4096, (128, 128), dtype=numpy.uint16)
                tifffile.imwrite(os.path.join(SEQ, f"t{t}_c{c}.tif"), img, compression="zlib")


def tifffile_array(path: str, level: int = 0) -> Any:
    store = tifffile.TiffFile(path).series[0].aszarr(level=level)
    fmt = 3 if "zarr.json" in store._store else 2
    return zarr.open_array(store, mode="r", zarr_format=fmt)


def tiffio_array(path: str, level: int = 0) -> Any:
    return zarr.open_array(TiffStore(path, level=level), mode="r")


def bench_file(path: str, repeat: int) -> dict[str, Any]:
    import dask.array as da
    ours, theirs = tiffio_array(path), tifffile_array(path)
    ref = tiffio.open(path).ifds[0].asarray()
    assert numpy.array_equal(ours[:], ref) and numpy.array_equal(theirs[:], ref)
    th, tw = ours.chunks[:2]
    rng = numpy.random.default_rng(300)
    picks = [(int(rng.integers(ours.shape[0] // th)), int(rng.integers(ours.shape[1] // tw))) for _ in range(300)]

    def reads(z: Any) -> Any:
        def run() -> None:
            for i, j in picks:
                z[i * th:(i + 1) * th, j * tw:(j + 1) * tw]
        return run
    m2 = run_interleaved({"tiffio": reads(ours), "tifffile": reads(theirs)}, repeat)
    # the floor of any store: zarr's own per-chunk pipeline over the same chunks held decoded
    # in memory (MemoryStore, no codec), timed in the same interleaved runs
    floor = zarr.create_array(zarr.storage.MemoryStore(), shape=ref.shape, chunks=ours.chunks, dtype=ref.dtype,
                              compressors=None, filters=None, fill_value=0)
    floor[:] = ref
    m3 = run_interleaved({"tiffio": lambda: ours[:], "tifffile": lambda: theirs[:], "floor": lambda: floor[:]},
                         repeat)
    windows = zarr.open_array(TiffStore(path, level=0, chunks=(1024, 1024)), mode="r")
    assert numpy.array_equal(windows[:], ref)
    m3w = run_interleaved({"tiffio": lambda: windows[:], "tifffile": lambda: theirs[:]}, repeat)
    total = int(ref.sum(dtype=numpy.int64))
    ours_da = tdask.from_tiff(path, chunks=(1024, 1024))
    theirs_da = da.from_zarr(theirs)
    assert int(ours_da.sum().compute()) == total == int(theirs_da.sum().compute())
    m4 = run_interleaved({"tiffio": lambda: ours_da.sum().compute(scheduler="threads"),
                          "tifffile": lambda: theirs_da.sum().compute(scheduler="threads")}, repeat)
    tif = tiffio.open(path)
    ifd = tif.ifds[0]
    windows = [(y, x, min(1024, ifd.length - y), min(1024, ifd.width - x))
               for y in range(0, ifd.length, 1024) for x in range(0, ifd.width, 1024)]

    def loop() -> int:
        return sum(int(ifd.read_region(*w, workers=1).sum(dtype=numpy.int64)) for w in windows)
    overhead = run_interleaved({"from_tiff": lambda: ours_da.sum(dtype=numpy.int64).compute(scheduler="sync"),
                                "read_region": loop}, repeat)
    return {"m2": m2, "m3": m3, "m3w": m3w, "m4": m4, "overhead": overhead, "chunks": ours.nchunks,
            "dask_tasks": (ours_da.npartitions, theirs_da.npartitions)}


def bench_stack(repeat: int) -> dict[str, Any]:
    """M7 / M8: a multi-page series through the stores."""
    out: dict[str, Any] = {}
    for key, path in (("m7", STACK), ("m7z", STACK_Z)):
        ours = zarr.open_group(TiffStore(path), mode="r")["0"]
        theirs = tifffile_array(path)
        ref = tiffio.imread(path)
        assert ours.shape == theirs.shape == ref.shape == (40, 2048, 2048)
        assert numpy.array_equal(ours[:], ref) and numpy.array_equal(theirs[:], ref)
        out[key] = run_interleaved({"tiffio": lambda o=ours: o[:], "tifffile": lambda t=theirs: t[:]}, repeat)
        if key == "m7":
            pages = [int(k) for k in numpy.random.default_rng(8).integers(0, 40, 10)]

            def one(z: Any) -> Any:
                def run() -> None:
                    for k in pages:
                        z[k]
                return run
            out["m8"] = run_interleaved({"tiffio": one(ours), "tifffile": one(theirs)}, repeat)
    return out


def bench_wsi(repeat: int) -> dict[str, Any] | None:
    """M9: from_tiff(level=1).sum() (threads) vs a bare threaded pread + decode + sum of its tiles."""
    if not os.path.exists(WSI):
        return None
    import concurrent.futures

    import imagecodecs
    tif = tiffio.open(WSI)
    ifd = tif.series[0].levels[1].keyframe
    locations = ifd.segment_locations(list(range(ifd.segment_count)))
    fd = os.open(WSI, os.O_RDONLY)
    workers = os.cpu_count() or 1
    pool = concurrent.futures.ThreadPoolExecutor(workers)

    def tile_sum(location: tuple[int, int]) -> int:
        offset, count = location
        return int(imagecodecs.jpeg8_decode(os.pread(fd, count, offset)).sum(dtype=numpy.uint64))

    def bare() -> int:
        return sum(pool.map(tile_sum, locations, chunksize=8))

    def ours() -> int:
        return int(tdask.from_tiff(WSI, level=1).sum().compute(scheduler="threads"))

    assert bare() == ours()
    times = run_interleaved({"tiffio": ours, "bare": bare}, repeat)
    pool.shutdown()
    os.close(fd)
    tif.close()
    return {"m9": times, "tiles": len(locations), "workers": workers}


def bench_sequence(repeat: int) -> dict[str, Any]:
    import dask.array as da
    ours = tdask.imread(SEQ_GLOB, pattern=SEQ_PATTERN)
    seq = tifffile.TiffSequence(SEQ_GLOB, pattern=SEQ_PATTERN)
    zs = seq.aszarr()
    theirs = da.from_zarr(zarr.open_array(zs, mode="r", zarr_format=3 if "zarr.json" in zs._store else 2))
    assert ours.shape == theirs.shape
    assert numpy.array_equal(ours.compute(), theirs.compute())

    def ours_run() -> None:
        tdask.imread(SEQ_GLOB, pattern=SEQ_PATTERN).compute(scheduler="threads")

    def theirs_run() -> None:
        s = tifffile.TiffSequence(SEQ_GLOB, pattern=SEQ_PATTERN).aszarr()
        da.from_zarr(zarr.open_array(s, mode="r", zarr_format=3 if "zarr.json" in s._store else 2)).compute(
            scheduler="threads")
    return {"m6": run_interleaved({"tiffio": ours_run, "tifffile": theirs_run}, repeat)}


def bench_distributed() -> dict[str, Any]:
    import dask.array as da
    from dask.distributed import Client, LocalCluster
    out: dict[str, Any] = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=50) as cluster, Client(cluster):
        for level in (0, 1):
            with tiffio.open(JPEG) as tif:
                expected = int(tif.levels[level].ifd.asarray().sum(dtype=numpy.int64))
            t0 = time.perf_counter()
            got = int(tdask.from_tiff(JPEG, level=level, chunks=(1024, 1024)).sum().compute())
            out[f"tiffio level {level}"] = (got == expected, time.perf_counter() - t0)
            t0 = time.perf_counter()
            got = int(da.from_zarr(tiffio_array(JPEG, level)).sum().compute())
            out[f"TiffStore level {level}"] = (got == expected, time.perf_counter() - t0)
        seq_expected = int(tdask.imread(SEQ_GLOB, pattern=SEQ_PATTERN).sum().compute(scheduler="threads"))
        t0 = time.perf_counter()
        got = int(tdask.imread(SEQ_GLOB, pattern=SEQ_PATTERN).sum().compute())
        out["tiffio sequence"] = (got == seq_expected, time.perf_counter() - t0)
        try:
            da.from_zarr(tifffile_array(JPEG, 0)).sum().compute()
            out["tifffile"] = "passed"
        except Exception as exc:  # recorded, as the issue asks
            text = str(exc).splitlines()[0][:300]
            out["tifffile"] = f"{type(exc).__name__}: {text}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--only", default="files,sequence,distributed,stack,wsi",
                        help="comma-separated subset of files,sequence,distributed,stack,wsi")
    record.add_json_arg(parser, "bench_zarr")
    args = parser.parse_args(argv)
    record.start("bench_zarr", args.record_json)
    parts = set(args.only.split(","))
    make_data()
    info = machine_info()
    load0 = loadavg()
    results = {}
    if "files" in parts:
        for name, path in (("JPEG 256²", JPEG), ("uint16 64²", U16)):
            results[name] = bench_file(path, args.repeat)
            print(name, {k: {m: [round(x, 4) for x in v] for m, v in t.items()} for k, t in results[name].items()
                         if isinstance(t, dict)}, flush=True)
    seq = bench_sequence(args.repeat) if "sequence" in parts else None
    print("sequence", seq, flush=True)
    dist = bench_distributed() if "distributed" in parts else {}
    print("distributed", dist, flush=True)
    stack = bench_stack(args.repeat) if "stack" in parts else None
    print("stack", stack, flush=True)
    wsi = bench_wsi(args.repeat) if "wsi" in parts else None
    print("wsi", wsi, flush=True)
    cmd = (f"python benchmarks/bench_zarr.py --repeat {args.repeat} --only {args.only}"
           f"{' --write-results' if args.write_results else ''}")
    lines = [f"### zarr / dask (issue 12): `{cmd}`", "",
             (f"{machine_text(info)}; load average {load0} at the start, {loadavg()} at the end. "
              f"Ratios of interleaved runs (median of {args.repeat} per-run ratios, spread in brackets) are what "
              "counts."), "",
             "| measure | file | tiffio | tifffile | ratio | target |", "|---|---|---:|---:|---:|---|"]
    targets = {"m2": 1.0, "m3": 0.8, "m3w": 0.8, "m4": 0.35}
    names = {"m2": "M2 300 random one-chunk reads", "m3": "M3 whole level `z[:]`",
             "m3w": "M3 whole level `z[:]`, TiffStore(chunks=(1024, 1024)) vs tifffile's tile chunks",
             "m4": "M4 dask sum, threads (from_tiff 1024² vs from_zarr tiles)"}
    for key in ("m2", "m3", "m3w", "m4"):
        for fname, res in results.items():
            t = res[key]
            r = paired_ratio(t, "tiffio", "tifffile")
            lines.append(f"| {names[key]} | {fname} | {fmt_time(med(t['tiffio']))} | {fmt_time(med(t['tifffile']))} "
                         f"| {r:.2f} ({ratio_spread(t, 'tiffio', 'tifffile')}) | <= {targets[key]} {verdict(r <= targets[key])} |")
            if key == "m3":
                rf = paired_ratio(t, "floor", "tifffile")
                lines.append(f"| M3 floor: zarr's own pipeline, same chunks decoded in a MemoryStore | {fname} | "
                             f"{fmt_time(med(t['floor']))} | {fmt_time(med(t['tifffile']))} | {rf:.2f} "
                             f"({ratio_spread(t, 'floor', 'tifffile')}) | no store can go below it |")
    for fname, res in results.items():
        t = res["overhead"]
        r = paired_ratio(t, "from_tiff", "read_region")
        lines.append(f"| M4 per-chunk overhead: from_tiff sum (sync) / read_region loop | {fname} | "
                     f"{fmt_time(med(t['from_tiff']))} | {fmt_time(med(t['read_region']))} (loop) | {r:.2f} "
                     f"({ratio_spread(t, 'from_tiff', 'read_region')}) | <= 1.10 {verdict(r <= 1.10)} |")
    if seq is not None:
        t = seq["m6"]
        r = paired_ratio(t, "tiffio", "tifffile")
        lines.append(f"| M6 1000-file sequence, dask compute (threads) | 1000 x 128² u16 | {fmt_time(med(t['tiffio']))} | "
                     f"{fmt_time(med(t['tifffile']))} | {r:.2f} ({ratio_spread(t, 'tiffio', 'tifffile')}) | <= 0.5 "
                     f"{verdict(r <= 0.5)} |")
    if stack is not None:
        for key, label, fname, target in (
                ("m7", "M7 40-page stack read whole through the store", "40 x 2048² u16 contiguous", 0.8),
                ("m7z", "M7 (information) 40-page Deflate stack read whole", "40 x 2048² u16 Deflate 256²", None),
                ("m8", "M8 one page through the store (10 pages)", "40 x 2048² u16 contiguous", 1.0)):
            t = stack[key]
            r = paired_ratio(t, "tiffio", "tifffile")
            goal = f"<= {target} {verdict(r <= target)}" if target else "-"
            lines.append(f"| {label} | {fname} | {fmt_time(med(t['tiffio']))} | {fmt_time(med(t['tifffile']))} | "
                         f"{r:.2f} ({ratio_spread(t, 'tiffio', 'tifffile')}) | {goal} |")
    if wsi is not None:
        t = wsi["m9"]
        r = paired_ratio(t, "tiffio", "bare")
        lines.append(f"| M9 from_tiff(level=1).sum(), threads, vs bare threaded pread + decode + sum "
                     f"({wsi['tiles']} tiles, {wsi['workers']} threads) | wsi_40960_jpeg.tif level 1 | "
                     f"{fmt_time(med(t['tiffio']))} | {fmt_time(med(t['bare']))} (bare) | {r:.2f} "
                     f"({ratio_spread(t, 'tiffio', 'bare')}) | <= 1.15 {verdict(r <= 1.15)} |")
    lines += ["", "Chunks / dask tasks: " + "; ".join(
        f"{k}: {v['chunks']} zarr chunks, from_tiff {v['dask_tasks'][0]} tasks vs from_zarr(aszarr) {v['dask_tasks'][1]}"
        for k, v in results.items()), "",
        "M5 dask.distributed, `LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`:", ""]
    for key, value in dist.items():
        if isinstance(value, tuple):
            lines.append(f"- {key}: {'sum equals numpy' if value[0] else 'WRONG SUM'} ({value[1]:.2f} s)")
        else:
            lines.append(f"- tifffile's store (`da.from_zarr(zarr.open_array(aszarr()))`): {value}")
    text = "\n".join(lines)
    print(text)
    peer = {"tifffile aszarr": "tifffile"}
    for key in ("m2", "m3", "m3w", "m4"):
        for fname, res in results.items():
            record.pair(f"{names[key]} ({fname})", res[key], "tiffio", peer, area="zarr",
                        floor="floor" if key == "m3" else None, floor_name="zarr MemoryStore of the decoded chunks")
    for fname, res in results.items():
        record.pair(f"M4 per-chunk overhead: from_tiff sum (sync) ({fname})", res["overhead"], "from_tiff",
                    {"read_region loop": "read_region"}, area="zarr")
    if seq is not None:
        record.pair("M6 1000-file sequence, dask compute (threads)", seq["m6"], "tiffio",
                    {"tifffile TiffSequence aszarr": "tifffile"}, area="zarr")
    if stack is not None:
        for key, label in (("m7", "M7 40-page 2048² u16 stack read whole through the store"),
                           ("m7z", "M7 40-page 2048² u16 Deflate stack read whole"),
                           ("m8", "M8 one page through the store (10 pages)")):
            record.pair(label, stack[key], "tiffio", peer, area="zarr")
    if wsi is not None:
        record.pair(f"M9 from_tiff(level=1).sum(), threads ({wsi['tiles']} tiles)", wsi["m9"], "tiffio", None,
                    area="zarr", floor="bare", floor_name="threaded pread + jpeg8_decode + sum")
    record.save()
    if args.write_results:
        update_results("bench_zarr", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
