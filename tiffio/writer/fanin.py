"""Fan-in: many processes encode tiles, one process writes them (the default recipe for many
producers, DESIGN.md "many producers, one file").

:func:`fan_in` submits one task per tile to any executor with a ``submit(fn, *args)`` method whose
futures have ``add_done_callback`` and ``result``: ``concurrent.futures`` process or thread pools,
a ``dask.distributed.Client``, ... Each task computes the pixels of one tile or of a block of many
tiles (``produce(key)``, in the worker) and encodes them with the image's picklable
:class:`~tiffio.writer.blocks.BlockEncoder`, with the pyramid levels the block holds; only the
encoded bytes (and, in a pyramid, the quadrants for the levels above) travel back, and the calling
process stores them with ``write_encoded_block``. At most ``max_pending`` tasks are in flight, so
memory stays bounded however many tiles there are (back-pressure: the next task is submitted when a
result has been written).

Nothing here imports an executor framework: the futures are only called back.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy

from ..errors import TiffError, TiffValueError
from .blocks import BlockEncoder, EncodedBlock
from .image import ImageWriter

__all__ = ["fan_in", "FanInReport", "encode_task", "run_jobs"]


@dataclass
class FanInReport:
    """What :func:`fan_in` did."""

    tiles: int = 0
    bytes: int = 0
    max_in_flight: int = 0
    seconds: float = 0.0
    blocks: int = 0

    def __str__(self) -> str:
        blocks = f" from {self.blocks} blocks" if self.blocks != self.tiles else ""
        return (f"{self.tiles} tiles{blocks}, {self.bytes} bytes in {self.seconds:.2f} s, "
                f"at most {self.max_in_flight} tasks in flight")


def encode_task(encoder: BlockEncoder, produce: Callable[[Any], Any] | None, key: Any, array: Any = None,
                origin: tuple[int, int, int | None] = (0, 0, None)) -> tuple[Any, EncodedBlock]:
    """The worker's side: (key, encoded block) of the pixels ``produce(key)`` (or ``array``): one
    tile or a block of tiles whose top-left pixel is ``origin`` (y, x, plane or None)."""
    pixels = produce(key) if produce is not None else array
    y, x, plane = origin
    if plane is None and encoder.planes > 1 and numpy.ndim(pixels) == 2:
        plane = 0  # one plane's pixels for a (row, col) key: plane 0
    return key, encoder.encode_block(pixels, y, x, plane)


def _key_coords(key: Any) -> tuple[int, int, int | None]:
    try:
        if len(key) == 2:
            return int(key[0]), int(key[1]), None
        if len(key) == 3:
            return int(key[0]), int(key[1]), int(key[2])
    except TypeError:
        pass
    raise TiffValueError(f"fan_in: a tile key must be (row, col) or (row, col, plane), not {key!r}")


def fan_in(image: ImageWriter, keys: Iterable[Any], produce: Callable[[Any], Any] | None, executor: Any, *,
           max_pending: int | None = None, coords: Callable[[Any], Any] | None = None,
           arrays: Iterable[Any] | None = None) -> FanInReport:
    """Encode tiles in ``executor``'s workers and write them into ``image`` from this process.

    ``keys`` are the tiles to write, (row, col) or (row, col, plane), or any picklable key when
    ``coords(key)`` maps it to those. Each worker runs ``produce(key)`` (a picklable, module-level
    function returning the tile's pixels; edge tiles may be cropped) and encodes the result.
    ``produce`` may also return a *block* of many tiles whose top-left tile is the key's (row, col):
    its edges on tile boundaries or the image edge (see ``ImageWriter.write_region``); the worker
    encodes all its tiles, and in a pyramid the levels the block holds whole, so that the writing
    process decodes nothing. Instead of ``produce``, ``arrays`` may give the pixels of each key
    (they are then sent to the workers). ``max_pending`` (default: twice the executor's workers,
    else 16) bounds the tasks in flight. A failing task stops the run: the tasks not started are
    cancelled and TiffError names the tile; the tiles already written stay in the file
    (checkpointed as usual), so the run can be resumed with ``image.missing_tiles()``.
    """
    if produce is None and arrays is None:
        raise TiffValueError("fan_in needs produce= (pixels computed in the workers) or arrays=")
    if max_pending is None:
        workers = getattr(executor, "_max_workers", None)
        max_pending = 2 * int(workers) if workers else 16
    max_pending = int(max_pending)
    if max_pending < 1:
        raise TiffValueError(f"max_pending must be at least 1, not {max_pending}")
    encoder = image.block_encoder()
    th, tw = image.tile

    def origin(key: Any) -> tuple[int, int, int | None]:
        row, col, plane = _key_coords(coords(key) if coords is not None else key)
        image.tile_index(row, col, plane or 0)  # a key outside the grid fails here, before any work is sent
        return row * th, col * tw, plane

    def jobs() -> Any:
        array_iter = iter(arrays) if arrays is not None else None
        for key in keys:
            where = origin(key)  # a bad key fails here, before any work is sent
            if array_iter is not None:
                yield key, (encode_task, encoder, None, key, next(array_iter), where)
            else:
                yield key, (encode_task, encoder, produce, key, None, where)

    report = FanInReport()
    start = time.perf_counter()
    run_jobs(image, jobs(), executor, max_pending, report, lambda result: (result[1],))
    report.seconds = time.perf_counter() - start
    return report


def _outcome(future: Any, fetch: Callable[[Any], Any] | None) -> tuple[bool, Any]:
    """(True, result) or (False, exception) of a finished future."""
    try:
        return True, future.result() if fetch is None else fetch(future)
    except BaseException as exc:
        return False, exc


def _write_blocks(image: ImageWriter, blocks: Iterable[EncodedBlock], report: FanInReport) -> None:
    for encoded in blocks:
        image.write_encoded_block(encoded)
        report.tiles += len(encoded.tiles)
        report.bytes += encoded.nbytes
        report.blocks += 1


def run_jobs(image: ImageWriter, jobs: Iterable[tuple[Any, tuple[Any, ...]]], executor: Any, max_pending: int,
             report: FanInReport, blocks: Callable[[Any], Iterable[EncodedBlock]],
             fetch: Callable[[Any], Any] | None = None) -> None:
    """The fan-in loop: submit ``(label, (fn, *args))`` jobs to ``executor``, at most ``max_pending``
    in flight, and store the encoded blocks ``blocks(result)`` gives of each result as they arrive.

    A job's result is fetched by the future's done callback (for a ``dask.distributed`` future: in
    its callback thread, so the next result travels to this process while this thread writes the
    last one), with ``fetch(future)`` if given; at most ``max_pending`` results are held here at once. A failing job stops the run:
    the jobs not started are cancelled and TiffError names the job's label."""
    done: queue.Queue = queue.Queue()
    in_flight: dict[Any, Any] = {}   # future -> label
    job_iter = iter(jobs)
    exhausted = False

    def finished(future: Any) -> None:
        done.put((future, _outcome(future, fetch)))

    try:
        while True:
            while not exhausted and len(in_flight) < max_pending:
                try:
                    label, call = next(job_iter)
                except StopIteration:
                    exhausted = True
                    break
                future = executor.submit(*call)
                in_flight[future] = label
                future.add_done_callback(finished)
                report.max_in_flight = max(report.max_in_flight, len(in_flight))
            if not in_flight:
                break
            future, (ok, result) = done.get()
            label = in_flight.pop(future)
            future = None  # let a distributed future release its result
            if not ok:
                raise TiffError(f"fan_in: the task of tile {label!r} failed: {type(result).__name__}: {result}"
                                ) from result
            _write_blocks(image, blocks(result), report)
            result = None
    finally:
        for future in in_flight:
            try:
                future.cancel()
            except Exception:  # pragma: no cover - cancel is best effort
                pass
