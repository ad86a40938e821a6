#!/bin/sh
# Run the benchmarks with their standard options, each under the benchmark lock, then regenerate the
# tables of benchmarks/README.md from the JSON records they wrote (benchmarks/results/*.json).
#
#   benchmarks/run_all.sh            the A/B set: bench_read, bench_region, bench_write (jpeg, deflate), bench_zarr
#   benchmarks/run_all.sh --full     ... and bench_deflate, bench_asarray, bench_threads, bench_series, bench_cli,
#                                    bench_write_tiles, bench_pyramid, bench_scale, bench_arrays, remote/bench_remote
#
# PYTHON (default: python) runs them; LOCK (default /tmp/tiffio-bench.lock) is held around each one, so
# that no two benchmarks overlap on a shared machine. Stops at the first benchmark that fails.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
LOCK=${LOCK:-/tmp/tiffio-bench.lock}
FULL=no
[ "${1:-}" = "--full" ] && FULL=yes

run() {
    echo "== $*" >&2
    flock "$LOCK" "$PYTHON" "$@"
}

[ -e benchmarks/data/wsi_40960_jpeg.tif ] && [ -e benchmarks/data/tiles16_16384_u8.tif ] \
    || run benchmarks/make_data.py

run benchmarks/bench_read.py --repeat 7 --tiles 200
run benchmarks/bench_region.py --repeat 5 --workers 2
run benchmarks/bench_write.py jpeg --repeat 5
run benchmarks/bench_write.py deflate --repeat 3
run benchmarks/bench_zarr.py --repeat 5

if [ "$FULL" = yes ]; then
    run benchmarks/bench_deflate.py --repeat 7 --workers 2
    run benchmarks/bench_asarray.py --repeat 7
    run benchmarks/bench_threads.py --repeat 7
    run benchmarks/bench_series.py --repeat 5
    run benchmarks/bench_cli.py --repeat 7
    run benchmarks/bench_cli.py --tiles --repeat 3
    run benchmarks/bench_write.py checkpoint --repeat 9
    run benchmarks/bench_write_tiles.py
    run benchmarks/bench_pyramid.py --size 40960 --rounds 1
    run benchmarks/bench_scale.py shards --size 40960 --runs 2
    run benchmarks/bench_scale.py merge --size 40960 --runs 3
    run benchmarks/bench_scale.py cog --size 40960 --runs 1
    run benchmarks/bench_arrays.py imwrite
    run benchmarks/remote/make_files.py
    run benchmarks/remote/bench_remote.py --runs 3
fi

"$PYTHON" benchmarks/report.py
