"""The JPEG marker walk (tiffio.format.jpeg) over every JPEG stream of fixtures/ and ../shared/corpus.

Every segment of every JPEG-compressed IFD (SubIFDs included; compression 7 and its aliases as
stored, old-style JPEG as the stream the reader maps it to) is walked, and its frame header -
height, width, component count, precision - is checked against the array libjpeg
(imagecodecs.jpeg8_decode, with the IFD's JPEGTables) decodes from it. The standalone file of
``IFD.read_segment_jpeg`` must carry the same frame. Streams declaring more than 16 Mi samples
(the decompression-bomb fixtures) are walked but not decoded. Bounded in CPU time (~1 s here for
~1,100 streams)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy
import pytest

import tiffio
from tests.support.paths import CORPUS, FIXTURES
from tests.support.timebound import cpu_bound
from tiffio.codecs import JPEG_COMPRESSIONS
from tiffio.enums import Compression
from tiffio.format.jpeg import frame_fields, parse_header

pytestmark = [pytest.mark.crossval, pytest.mark.corpus]


def _ifds(tif: tiffio.TiffFile) -> list[tiffio.IFD]:
    found = []
    try:
        for ifd in tif.ifds:
            found.append(ifd)
            try:
                found.extend(ifd.subifds)
            except tiffio.TiffError:
                pass
    except tiffio.TiffError:
        pass
    return found


def _jpeg_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix.lower() not in (".md", ".tsv", ".py")]


def _jpeg_ifds(roots: list[Path]) -> Iterator[tuple[Path, tiffio.IFD, int]]:
    """(path, IFD, compression) of every JPEG-compressed IFD the reader can open under ``roots``."""
    for root in roots:
        for path in _jpeg_files(root):
            try:
                tif = tiffio.open(path)
            except tiffio.TiffError:
                continue
            with tif:
                for ifd in _ifds(tif):
                    try:
                        code = ifd.compression
                    except tiffio.TiffError:
                        continue
                    if code in JPEG_COMPRESSIONS:
                        yield path, ifd, code


def _walk_all(roots: list[Path]) -> tuple[int, list[str], list[str]]:
    """(streams compared, mismatches, streams libjpeg refuses)."""
    compared, mismatches, refused = 0, [], []
    for path, ifd, code in _jpeg_ifds(roots):
        try:
            count, tables = ifd.segment_count, ifd.jpegtables
        except tiffio.TiffError:
            continue
        for index in range(count):
            where = f"{path}: {ifd.where}: segment {index}"
            try:
                if code == Compression.OJPEG:
                    data, tables = ifd.read_segment_jpeg(index), None
                else:
                    data = ifd.read_segment_bytes(index)
            except tiffio.TiffError:
                continue  # sparse, truncated, no mappable stream: the reader reports these
            if not data:
                continue
            header = parse_header(data)
            frame = header.frame
            if frame is not None and frame.height * frame.width * len(frame.components) > 1 << 24:
                continue  # decompression-bomb fixtures: a short stream declaring gigapixels
            try:
                decoded = imagecodecs.jpeg8_decode(data, tables=tables)
            except Exception as exc:
                refused.append(f"{where}: {exc}")
                continue
            compared += 1
            if frame is None:
                mismatches.append(f"{where}: libjpeg decodes {decoded.shape}, the walk finds no frame "
                                  f"({header.problem})")
                continue
            count_ = len(frame.components)
            shape = (frame.height, frame.width) + ((count_,) if count_ > 1 else ())
            dtype = numpy.uint8 if frame.precision <= 8 else numpy.uint16
            fields = (frame.precision, frame.height, frame.width, count_)
            if decoded.shape != shape or decoded.dtype != dtype or frame_fields(data) != fields:
                mismatches.append(f"{where}: frame {fields}, libjpeg {decoded.shape} {decoded.dtype}")
            try:
                standalone = parse_header(ifd.read_segment_jpeg(index)).frame
            except tiffio.TiffError as exc:
                mismatches.append(f"{where}: read_segment_jpeg: {exc}")
                continue
            if standalone != frame:
                mismatches.append(f"{where}: read_segment_jpeg's frame {standalone} is not {frame}")
    return compared, mismatches, refused


def test_walk_agrees_with_libjpeg_on_every_jpeg_stream():
    roots = [FIXTURES] + ([CORPUS] if CORPUS.is_dir() else [])
    with cpu_bound(120), warnings.catch_warnings():
        warnings.simplefilter("ignore", tiffio.TiffFormatWarning)
        compared, mismatches, refused = _walk_all(roots)
    assert not mismatches, "\n".join(mismatches[:20])
    # fixtures alone hold ~550 JPEG streams (libtiff, GDAL, libvips, tifffile, corpus copies), the corpus ~600 more
    assert compared >= (1000 if CORPUS.is_dir() else 500), compared
    # streams libjpeg refuses are rare and come from files broken on purpose
    assert len(refused) <= 10, "\n".join(refused)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not present")
def test_corpus_has_jpeg_streams_of_many_writers():
    """The walk above covers more than one kind of stream: tiled and stripped, YCbCr, RGB, gray,
    CMYK, 12-bit, old-style JPEG."""
    kinds = set()
    warnings.simplefilter("ignore", tiffio.TiffFormatWarning)  # pytest restores the filters after the test
    for _path, ifd, code in _jpeg_ifds([CORPUS]):
        try:
            kinds.add((int(code), ifd.photometric, ifd.is_tiled))
        except tiffio.TiffError:
            continue
    assert {(7, 6, True), (7, 6, False), (7, 2, True), (7, 1, False), (7, 5, True), (6, 6, False)} <= kinds
