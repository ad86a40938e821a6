"""Worker functions for the many-producer tests (importable by spawned processes)."""

from __future__ import annotations

import os
import sys
import time

import numpy

import tiffio

TILE = 32


def pixels(shape, seed=0):
    """The deterministic test image (any worker can produce any tile of it)."""
    rng = numpy.random.default_rng(seed)
    return rng.integers(0, 255, shape).astype("uint8")


def level_arrays(plan, seed=0):
    base = pixels(plan.shape, seed)
    levels = [base]
    for k in range(1, plan.levels):
        shape = plan.level_shape(k)
        levels.append(numpy.ascontiguousarray(levels[-1][::2, ::2])[: shape[0], : shape[1]])
    return levels


def tile_of(arr, row, col, tile=TILE):
    return arr[row * tile:(row + 1) * tile, col * tile:(col + 1) * tile]


def write_shard(plan, path, worker, seed=0, delay=0.0, checkpoint_every=None, skip=(), stall_after=None):
    """Write ``worker``'s tiles of every level into its shard (resuming one that exists).

    With ``stall_after=N``: after N tiles, print "stalled N" and wait on stdin (for a kill)."""
    levels = level_arrays(plan, seed)
    written = 0
    with plan.open_shard(path, checkpoint_every=checkpoint_every, checkpoint_seconds=None, fsync=False) as w:
        for k, im in enumerate(w.images):
            done = set(im.missing_tiles())
            for r, c in plan.tiles(worker, k):
                if (k, r, c) in skip or (r, c) not in done:
                    continue
                im.write_tile(r, c, tile_of(levels[k], r, c, plan.tile[0]))
                written += 1
                if delay:
                    time.sleep(delay)
                if written == stall_after:
                    print("stalled", written, flush=True)
                    sys.stdin.readline()
    return path


def produce_tile(key):
    """A fan-in producer: the pixels of tile key = (seed, shape, row, col)."""
    seed, shape, row, col = key
    return tile_of(pixels(shape, seed), row, col)


def produce_tile_slow(key):
    """produce_tile, taking 50 ms (so that a worker can be killed while it works)."""
    time.sleep(0.05)
    return produce_tile(key)


def append_tiles(path, worker, workers, shape, delay=0.0, only_missing=None, stall_after=None):
    """A shared-append producer: append the tiles of rows worker::workers of pixels(shape).

    With ``stall_after=N``: after N tiles, print "stalled N" and wait on stdin (for a kill)."""
    data = pixels(shape)
    with tiffio.SharedAppender(path) as app:
        im = app.images[0]
        for r in range(worker, im.tiles_down, workers):
            for c in range(im.tiles_across):
                if only_missing is not None and (r, c) not in only_missing:
                    continue
                app.write_tile(r, c, tile_of(data, r, c))
                if delay:
                    time.sleep(delay)
                if stall_after is not None and app.tiles_written == stall_after:
                    print("stalled", stall_after, flush=True)
                    sys.stdin.readline()
        return app.tiles_written


if __name__ == "__main__" and sys.argv[1] == "append":  # ... append PATH W N DELAY [STALL_AFTER]
    print("started", flush=True)
    append_tiles(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), (192, 160), float(sys.argv[5]),
                 stall_after=int(sys.argv[6]) if len(sys.argv) > 6 else None)
    print("done", flush=True)
elif __name__ == "__main__":  # python -m tests.support.scale_workers PLAN_REPR PATH WORKER DELAY EVERY [STALL_AFTER]
    import ast
    args = ast.literal_eval(sys.argv[1])
    plan = tiffio.Plan.create(args["shape"], "uint8", workers=args["workers"], levels=args.get("levels", 1),
                              tile=(TILE, TILE), compression=args.get("compression", "deflate"))
    print("started", flush=True)
    write_shard(plan, sys.argv[2], int(sys.argv[3]), delay=float(sys.argv[4]),
                checkpoint_every=int(sys.argv[5]) or None, stall_after=int(sys.argv[6]) if len(sys.argv) > 6 else None)
    print("done", os.getpid(), flush=True)
