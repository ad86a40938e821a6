"""Writing a dask array to a TIFF (:func:`tiffio.dask.to_tiff`, re-exported there): blocks aligned
to the tile grid are computed and encoded in the workers, grouped into tasks of decreasing size,
returned as one packed buffer per task, and written by the calling process through fan-in with a
bounded number of tasks in flight."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy

from ..errors import TiffTypeError, TiffValueError
from .chunkmap import window_shape


class _BlockTask:
    """One block of a dask array to write: its tile coordinates and the pickled graph that computes
    it (culled to the block), run in a worker by :func:`_compute_block`."""

    __slots__ = ("row", "col", "key", "graph")

    def __init__(self, row: int, col: int, key: Any, graph: bytes) -> None:
        self.row, self.col, self.key, self.graph = row, col, key, graph

    def __getstate__(self) -> tuple[int, int, Any, bytes]:
        return (self.row, self.col, self.key, self.graph)

    def __setstate__(self, state: tuple[int, int, Any, bytes]) -> None:
        self.row, self.col, self.key, self.graph = state

    def __repr__(self) -> str:
        return f"(block at tile row {self.row}, col {self.col})"


def _compute_block(task: _BlockTask) -> numpy.ndarray:
    """The worker's side: compute one block from its own graph, in this thread (dask's synchronous
    scheduler), so that computing and encoding happen in the same task."""
    import pickle

    import dask
    graph = pickle.loads(task.graph)
    return numpy.asarray(dask.get(graph, task.key))


def _encode_blocks(encoder: Any, tasks: list[_BlockTask]) -> Any:
    """The worker's side of one task: compute and encode its blocks one after the other (one block's
    pixels in memory at a time); the encoded tiles travel back packed in one buffer."""
    from ..writer.blocks import PackedBlocks
    th, tw = encoder.spec.tile
    return PackedBlocks([encoder.encode_block(_compute_block(task), task.row * th, task.col * tw)
                         for task in tasks])


def _unpack(result: Any) -> Any:
    return result.blocks()


def _direct_fetch(executor: Any) -> Any:
    """For a dask.distributed Client whose workers all listen on this machine's loopback (a
    LocalCluster) and that was not told how to gather: fetch each result from its worker directly.
    Through the scheduler (distributed's default) every encoded byte crosses two more sockets, and
    the scheduler of a LocalCluster runs in this process: ~0.4 s of this process's CPU per 337 MB."""
    if type(executor).__module__.split(".")[0] != "distributed" or not hasattr(executor, "gather") or \
            getattr(executor, "direct_to_workers", True) is not None:
        return None
    try:
        workers = list(executor.scheduler_info()["workers"])
    except Exception:  # pragma: no cover - an unusual client: gather as it is configured
        return None
    if not workers or not all(w.startswith(("tcp://127.", "inproc://", "tls://127.", "ucx://127.")) for w in workers):
        return None

    def fetch(future: Any) -> Any:
        return executor.gather(future, direct=True)
    return fetch


def _group_limit(executor: Any, block_bytes: int, jpeg: bool) -> int:
    """The most blocks one task computes. Each task of a dask.distributed cluster or a process pool
    costs the scheduler and the writing process a few milliseconds whatever its size (~4 ms of the
    writing process's CPU per task on a LocalCluster), so several blocks go in one task, computed
    and encoded one at a time in the worker; the writing process holds up to ``max_pending``
    results, so a task's encoded bytes stay under ~32 MiB (JPEG counted at 1/8 of the pixels).
    Threads take one block per task."""
    if isinstance(executor, _InlineExecutor) or type(executor).__name__ == "ThreadPoolExecutor":
        return 1
    return max(1, (32 << 20) // max(1, block_bytes // 8 if jpeg else block_bytes))


def _groups(tasks: Any, total: int, limit: int, count: int) -> Any:
    """``tasks`` in lists of decreasing size ("guided" scheduling): each a quarter of a worker's
    share of the blocks left, at most ``limit``, so that large tasks cut the per-task cost and the
    last ones, a block each, leave no worker idle long at the end."""
    batch: list[Any] = []
    left = total
    size = max(1, min(limit, -(-left // (4 * count))))
    for task in tasks:
        batch.append(task)
        if len(batch) >= size:
            yield batch
            left -= len(batch)
            batch = []
            size = max(1, min(limit, -(-left // (4 * count))))
    if batch:
        yield batch


class _InlineExecutor:
    """``submit`` runs the function at once (dask's synchronous scheduler as an executor)."""

    def submit(self, fn: Any, *args: Any) -> Any:
        from concurrent.futures import Future
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


def _executor(scheduler: Any, workers: int | None) -> tuple[Any, bool, int]:
    """(executor with submit(), whether to_tiff owns (and shuts down) it, its worker count) for
    ``scheduler``: None (dask's configured scheduler: a distributed Client if one is the default,
    else threads), 'threads', 'processes', 'sync', a Client, or a concurrent.futures executor."""
    import dask
    if scheduler is None:
        scheduler = dask.config.get("scheduler", None)
    if scheduler in (None, "dask.distributed", "distributed"):
        try:
            from distributed import default_client
            client = default_client()
        except (ImportError, ValueError):
            if scheduler is not None:
                raise TiffValueError("scheduler='distributed' but no dask.distributed Client is running") from None
            scheduler = "threads"
        else:
            return client, False, max(1, sum(client.nthreads().values()))
    if hasattr(scheduler, "submit"):
        count = getattr(scheduler, "_max_workers", None)
        if count is None and hasattr(scheduler, "nthreads"):
            count = sum(scheduler.nthreads().values())
        return scheduler, False, max(1, int(count or workers or os.cpu_count() or 1))
    count = int(workers or dask.config.get("num_workers", None) or os.cpu_count() or 1)
    if scheduler in ("threads", "threading"):
        from concurrent.futures import ThreadPoolExecutor
        return ThreadPoolExecutor(count, thread_name_prefix="tiffio-to-tiff"), True, count
    if scheduler in ("processes", "multiprocessing"):
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context
        context = get_context(dask.config.get("multiprocessing.context", "spawn"))
        return ProcessPoolExecutor(count, mp_context=context), True, count
    if scheduler in ("sync", "synchronous", "single-threaded"):
        return _InlineExecutor(), True, 1
    raise TiffValueError(f"unknown scheduler {scheduler!r}: 'threads', 'processes', 'sync', a dask.distributed "
                         "Client or a concurrent.futures executor")


def _block_shape(chunks: tuple[tuple[int, ...], ...], tile: tuple[int, int], shape: tuple[int, ...],
                 block: Any, pyramid: bool) -> tuple[int, int]:
    """Block (height, width): ``block`` or the array's chunks, rounded up to whole tiles; for a
    pyramid to a power of two of tiles, so that every block holds its reduced levels whole."""
    th, tw = tile
    if block is not None:
        bh, bw = window_shape(block, "block (height, width)")
    else:
        bh, bw = max(chunks[0]), max(chunks[1])
    ty, tx = max(1, -(-bh // th)), max(1, -(-bw // tw))
    if pyramid:
        ty, tx = 1 << (ty - 1).bit_length(), 1 << (tx - 1).bit_length()
    ty = min(ty, -(-shape[0] // th))
    tx = min(tx, -(-shape[1] // tw))
    return ty * th, tx * tw


def to_tiff(array: Any, target: Any, *, tile: Any = (256, 256), compression: Any = None, predictor: Any = None,
            pyramid: bool = False, metadata: Any = {}, geotiff: Any = None,  # noqa: B006
            compute: bool = True, resume: bool = False, scheduler: Any = None, workers: int | None = None,
            max_pending: int | None = None, block: Any = None, bigtiff: bool | None = None,
            fsync: bool = True, **options: Any) -> Any:
    """Write a dask array (length, width[, samples]) to a tiled TIFF at ``target`` (a path).

    The array is rechunked to blocks of whole tiles (its chunks rounded up to tile multiples, or
    ``block=(height, width)``; for ``pyramid=True`` a power of two of tiles). Each task computes
    blocks from each block's own graph **and encodes their tiles in the worker** (with the pyramid
    levels a block holds whole), one block at a time: on threads one block per task; on a cluster or
    a process pool several (the first tasks up to ~32 MiB of encoded bytes, the last ones a block
    each), since every task costs the scheduler and this process a few milliseconds. The tiles come
    back packed in one buffer per task; this process writes them as they arrive, with at most
    ``max_pending`` tasks in flight (default: twice the workers), so memory stays bounded. The
    workers of a cluster on this machine (loopback addresses) are gathered from directly unless
    the Client was given ``direct_to_workers``.
    ``scheduler``: None (dask's: the default ``dask.distributed`` Client if there is one, else
    threads), 'threads', 'processes', 'sync', a Client or a ``concurrent.futures`` executor;
    ``workers`` sizes the pools to_tiff makes. With a cluster, ``target`` is written by this
    process only. Graphs whose blocks share intermediate results (``map_overlap`` halos, rechunks
    that merge chunks) compute those once per block that needs them: give chunks that are whole
    tiles to avoid that.

    ``resume=True`` continues a file a killed run left (``TiffWriter(mode='resume')``): only the
    blocks with missing tiles are computed; without a file it starts a new one. ``compute=False``
    returns a ``dask.delayed`` object that does the whole write when computed (by a worker, on a
    cluster: ``target`` must be writable there). ``tile``, ``compression``, ``predictor``,
    ``metadata`` / ``geotiff`` (as :func:`tiffio.imwrite`) and ``options`` are those of
    ``TiffWriter.add_image``. Returns a :class:`tiffio.WriteReport`.
    """
    if not compute:
        import dask
        kwargs = dict(tile=tile, compression=compression, predictor=predictor, pyramid=pyramid, metadata=metadata,
                      geotiff=geotiff, resume=resume, workers=workers, max_pending=max_pending, block=block,
                      bigtiff=bigtiff, fsync=fsync, **options)
        return dask.delayed(_to_tiff_task, pure=False)(_Opaque(array), target, kwargs)
    return _to_tiff(array, target, tile=tile, compression=compression, predictor=predictor, pyramid=pyramid,
                    metadata=metadata, geotiff=geotiff, resume=resume, scheduler=scheduler, workers=workers,
                    max_pending=max_pending, block=block, bigtiff=bigtiff, fsync=fsync, options=options)


class _Opaque:
    """Carries a dask array into a delayed task without dask computing it first."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _to_tiff_task(holder: _Opaque, target: Any, kwargs: dict[str, Any]) -> Any:
    """to_tiff(compute=False)'s task: on a distributed worker, fan in through the cluster (the
    task leaves the worker's thread pool while it waits), else through threads."""
    try:
        from distributed import get_worker, worker_client
        get_worker()
    except (ImportError, ValueError):
        return to_tiff(holder.value, target, scheduler="threads", **kwargs)
    with worker_client() as client:
        return to_tiff(holder.value, target, scheduler=client, **kwargs)


def _to_tiff(array: Any, target: Any, *, tile: Any, compression: Any, predictor: Any, pyramid: bool, metadata: Any,
             geotiff: Any, resume: bool, scheduler: Any, workers: int | None, max_pending: int | None, block: Any,
             bigtiff: bool | None, fsync: bool, options: dict[str, Any]) -> Any:
    import time

    import dask
    from dask.optimization import cull

    from ..codecs import compression_name
    from ..codecs.encode import parse_compression
    from ..metadata.geotiff import GeoTiff
    from ..writer.blocks import WriteReport
    from ..writer.fanin import FanInReport, run_jobs
    from ..writer.imwrite import shaped_description
    from ..writer.tiffwriter import TiffWriter

    start = time.perf_counter()
    if not hasattr(array, "__dask_graph__"):
        raise TiffTypeError(f"to_tiff writes a dask array, not {type(array).__name__} (tiffio.imwrite writes others)")
    shape = tuple(int(n) for n in array.shape)
    if len(shape) not in (2, 3) or any(math.isnan(n) for n in array.shape):
        raise TiffValueError(f"to_tiff writes arrays of shape (length, width[, samples]) with known sizes, not {shape}")
    th, tw = window_shape(tile, "tile (length, width)")
    extratags = list(options.pop("extratags", ()))
    if geotiff is not None:
        if not isinstance(geotiff, GeoTiff):
            raise TiffTypeError(f"geotiff must be a tiffio.GeoTiff, not {type(geotiff).__name__}")
        extratags = geotiff.to_tags() + extratags
    description = options.pop("description", None) or shaped_description(shape, metadata)
    path = os.fspath(target)
    resuming = resume and os.path.exists(path) and os.path.getsize(path) > 0
    with TiffWriter(path, mode="resume" if resuming else "w", bigtiff=bigtiff, fsync=fsync) as writer:
        if resuming:
            image = writer.images[0] if writer.images else None
            if image is None or image.shape != shape or image.dtype != array.dtype or image.tile != (th, tw) or \
                    image.compression != parse_compression(compression) or \
                    bool(image.params.get("pyramid")) != bool(pyramid):
                raise TiffValueError(f"{path}: resume=True, but the file holds {image!r}, not a {shape} "
                                     f"{array.dtype} image with {th} x {tw} tiles, compression {compression!r}, "
                                     f"pyramid={pyramid}")
        else:
            image = writer.add_image(shape, array.dtype, tile=(th, tw), compression=compression, predictor=predictor,
                                     pyramid=True if pyramid else None, description=description, extratags=extratags,
                                     **options)
        report = WriteReport(path=path, shape=shape, dtype=numpy.dtype(array.dtype).str,
                             levels=[tuple(level.shape) for level in image.levels], tile=(th, tw),
                             compression=compression_name(image.compression))
        bh, bw = _block_shape(array.chunks, (th, tw), shape, block, bool(pyramid))
        if tuple(array.chunks[0][:-1]) != (bh,) * (len(array.chunks[0]) - 1) or \
                tuple(array.chunks[1][:-1]) != (bw,) * (len(array.chunks[1]) - 1) or \
                (len(shape) == 3 and len(array.chunks[2]) > 1):
            array = array.rechunk((bh, bw) + ((shape[2],) if len(shape) == 3 else ()))
        (optimized,) = dask.optimize(array)
        graph = dict(optimized.__dask_graph__())
        flat = optimized.__dask_keys__()
        keys = [[key[0] if len(shape) == 3 else key for key in row] for row in flat]
        grid = (len(keys), len(keys[0]))
        needed = _blocks_to_write(image, grid, (bh, bw)) if resuming else None

        def tasks() -> Any:
            for i in range(grid[0]):
                for j in range(grid[1]):
                    if needed is not None and (i, j) not in needed:
                        continue
                    key = keys[i][j]
                    culled, _ = cull(graph, [key])
                    yield _BlockTask(i * bh // th, j * bw // tw, key, _pickle_graph(culled))

        executor, owned, count = _executor(scheduler, workers)
        blocks = grid[0] * grid[1] if needed is None else len(needed)
        limit = _group_limit(executor, bh * bw * numpy.dtype(array.dtype).itemsize *
                             (shape[2] if len(shape) == 3 else 1), image.compression == 7)
        encoder = image.block_encoder()

        def jobs() -> Any:
            for batch in _groups(tasks(), blocks, limit, count):
                yield batch[0], (_encode_blocks, encoder, batch)

        fan = FanInReport()
        try:
            run_jobs(image, jobs(), executor, max_pending or 2 * count, fan, _unpack, _direct_fetch(executor))
        finally:
            if owned:
                executor.shutdown(wait=True)
        report.blocks = fan.blocks
        report.skipped = grid[0] * grid[1] - fan.blocks
        report.max_in_flight = fan.max_in_flight
    report.segments = sum(level.tile_count - len(level.missing_tiles()) for level in image.levels)
    report.file_bytes = os.path.getsize(path)
    report.seconds = time.perf_counter() - start
    return report


def _pickle_graph(graph: dict) -> bytes:
    """A block's graph as bytes the worker unpickles: cloudpickle (dask's own dependency), which
    stores functions of ``__main__``, lambdas and local functions by value, as dask does."""
    import cloudpickle  # type: ignore[import-untyped]
    data: bytes = cloudpickle.dumps(graph, protocol=5)
    return data


def _blocks_to_write(image: Any, grid: tuple[int, int], block: tuple[int, int]) -> set[tuple[int, int]]:
    """The blocks (i, j) with a tile missing in a level the block writes (resume)."""
    th, tw = image.tile
    bh, bw = block
    height, width = image.params["height"], image.params["width"]
    encoder = image.block_encoder()
    levels = image.levels
    missing = [{tuple(t[:2]) for t in im.missing_tiles()} for im in levels]
    needed: set[tuple[int, int]] = set()
    for i in range(grid[0]):
        for j in range(grid[1]):
            y, x = i * bh, j * bw
            h, w = min(bh, height - y), min(bw, width - x)
            for level in range(encoder.local_levels(y, x, h, w) + 1):
                step = 2 ** level
                rows = range(y // th // step, -(-(y + h) // (th * step)))
                cols = range(x // tw // step, -(-(x + w) // (tw * step)))
                if any((r, c) in missing[level] for r in rows for c in cols):
                    needed.add((i, j))
                    break
    return needed
