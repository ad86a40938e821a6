"""Streaming tiled writer: TiffWriter / ImageWriter, and the writers built on them.

File layout::

    [16 bytes reserved for the header]
    [record][record]...            records = leader + payload: image definitions, tiles, blank tiles
    [state record][IFDs + values]  a checkpoint (repeated; the header points at the newest)
    [record]...                    more tiles after the checkpoint
    [state record][IFDs + values]  the final checkpoint written by close()

Every payload is preceded by a 28-byte *leader* (magic, image number, tile index,
length, CRC-32) that TIFF readers never see (they follow offsets). A checkpoint
writes complete IFDs at the end of the file, flushes and fsyncs, and only then
rewrites the header's first-IFD offset, so a crash at any instant leaves the
previous checkpoint valid. Automatic checkpoints (``checkpoint_every``/``checkpoint_seconds``)
hold the tiles stored so far without waiting for those still in encoder threads, and run their
fsync + header update in a background thread while encoding goes on; :meth:`TiffWriter.checkpoint`
waits for every tile given and is durable when it returns. With ``fsync=True`` a background
fdatasync also runs every ``WRITEBACK_BYTES`` appended, so that the disk writes while tiles are
encoded. The state record just before the first IFD holds the
writer's parameters (JSON), so that :func:`tiffio.recover` and ``mode='resume'``
can rebuild the ImageWriters; tiles written after the last checkpoint are found
by scanning their leaders (over the IFDs of a checkpoint whose header update never happened; from
the start of the file when the newest checkpoint is cut off or damaged).

The first record, right after the 16 header bytes and written with them, is the definition of
image 0: it is the working file's signature. A file tiffio creates stays empty until it, and a writer
closed with no image removes the file it created. Every path that repairs, resumes, appends to or
merges a file proves the signature first (records.read_signature) and otherwise raises
TiffFormatError before a byte is written. Closing a writer whose last checkpoint holds everything
writes nothing, so recovering a complete file leaves it byte-identical.

One writer per file: a writer on a path holds an exclusive flock on a hidden sidecar next to it
(lock.py) for its lifetime; ``atomic=True`` and relayout/merge outputs are written to temporaries
created exclusively in the destination's folder and renamed (files.py).

Whether the file is classic TIFF or BigTIFF is decided at each checkpoint.

The package, lowest layer first (each module imports only those above it in this list)::

    sink.py        positional writes and reads on a path or file object, fsync, fdatasync (the only I/O
                   of file content)
    records.py     the record format: leaders, magics, CRC-32, the state record, the working file's
                   signature, scanning records
    lock.py        one writer per file: the sidecar flock, the filesystems where locks are not reliable
    files.py       the file a writer owns (opened after the regular-file, signature and lock checks;
                   removed if it holds no image), temporaries created exclusively and renamed
    pipeline.py    encoder threads fed by a bounded queue (back-pressure), safe against Ctrl-C
    params.py      add_image's arguments checked into one JSON-serializable dict (stored for resume)
    ifdpack.py     the IFD-entry record (Entry), an IFD's size and bytes: one packing for every writer
    tagpack.py     tag values by field type, an image's IFD entries, the trial packing that add_image
                   runs before anything is stored
    pyramid.py     single-pass pyramids: 2 x 2 reduce, the frontier of partial parents (budget, spill)
    blocks.py      tile-aligned blocks: alignment checks, cutting, BlockEncoder (a block's tiles and the
                   pyramid levels it holds, encoded anywhere), the WriteReport of array writes
    tileindex.py   TileIndex: where an image's stored tiles are, and its blank tile (shared by the
                   writer, checkpoints, recovery, shared append and merge)
    image.py       ImageWriter (one image: grid, tile checks, write_region, encoded blocks; it hands its
                   tiles to an ImageOwner) and TileEncoder (its picklable form)
    appender.py    the file end under one lock: records appended, tiles stored (last write wins), the
                   classic-TIFF bound, background write-back, errors of background threads
    feed.py        TileFeed, the writer's ImageOwner: tiles encoded in the caller or in encoder threads,
                   stored by the appender, handed to their pyramid
    checkpoint.py  when a checkpoint is due, its bytes (state record + every IFD and strile array), its
                   publication (fsync, then the header; in the background for automatic ones)
    recovery.py    the state record read back, resume / recovery of an unfinished file
    tiffwriter.py  TiffWriter: ties them together (the file, images and pyramids, close, atomic
                   publication, resume)
    shared.py      shared append: many processes append tiles to one working file, one coordinator
    imagej.py      ImageJ hyperstacks (planes at fixed offsets, IFDs written up front)
    ome.py         OME-TIFF on top of TiffWriter
    tilecopy.py    copying stored tile bytes between files (copy_file_range runs, COG leaders/trailers)
    relayout.py    final layouts (COG, plain) by copying stored tile bytes (no TiffWriter)
    shards.py      a shared plan for writing one image as several shards
    merge.py       shards -> one TIFF (through relayout)
    fanin.py       many workers encode tiles or blocks, this process writes them (bounded in flight)
    imwrite.py     imwrite: a whole array (numpy or array-like) read in bands of tile rows
    maptiles.py    map_tiles: a function over a TIFF's tiles with a halo, into a new TIFF (through fan_in)

The array writers (``imwrite``, ``tiffio.dask.to_tiff``, ``map_tiles``, ``fan_in`` with blocks) all
cut their data into blocks (blocks.py) and store them through ``ImageWriter``.
"""

from .appender import WRITEBACK_BYTES
from .image import ImageWriter, TileEncoder
from .records import (
    DATA_START,
    FORMAT_VERSION,
    LEADER,
    MAGIC_BLANK,
    MAGIC_IMAGE,
    MAGIC_STATE,
    MAGIC_TILE,
    MAGICS,
    STATE_FOOTER,
    STATE_FOOTER_MAGIC,
    crc32_parts,
)
from .recovery import RecoveryReport
from .tiffwriter import TiffWriter

__all__ = ["TiffWriter", "ImageWriter", "TileEncoder", "RecoveryReport", "LEADER", "DATA_START", "STATE_FOOTER",
           "STATE_FOOTER_MAGIC", "MAGIC_TILE", "MAGIC_IMAGE", "MAGIC_BLANK", "MAGIC_STATE", "MAGICS",
           "FORMAT_VERSION", "WRITEBACK_BYTES", "crc32_parts"]
