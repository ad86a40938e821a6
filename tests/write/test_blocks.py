"""Tile-aligned blocks: ImageWriter.write_region, BlockEncoder (pyramid levels made in the block),
fan_in tasks that return blocks, strips (add_image rowsperstrip=)."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context

import imagecodecs
import numpy
import pytest
import tifffile

import tiffio
from tests.support.array_workers import TILE, pixels, produce_block
from tiffio.writer.blocks import BlockEncoder, PackedBlocks, check_block


def _tile_by_tile(path, data, **kwargs):
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(data.shape, data.dtype, **kwargs)
        th, tw = im.tile
        for r in range(im.tiles_down):
            for c in range(im.tiles_across):
                im.write_tile(r, c, data[r * th:(r + 1) * th, c * tw:(c + 1) * tw])


def _levels(path):
    with tiffio.open(path) as tif:
        return [ifd.asarray() for ifd in tif.ifds]


def _assert_same_levels(a, b):
    la, lb = _levels(a), _levels(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert x.shape == y.shape and x.dtype == y.dtype
        numpy.testing.assert_array_equal(x, y)


def test_check_block_accepts_aligned_and_edge_blocks():
    tile, image = (64, 64), (1000, 1300)
    assert check_block(0, 0, 128, 192, tile, image, "w") == (128, 192)
    assert check_block(960, 1280, 40, 20, tile, image, "w") == (40, 20)      # cropped at the edge
    assert check_block(960, 1280, 64, 64, tile, image, "w") == (40, 20)      # padded to whole tiles
    assert check_block(896, 0, 104, 1300, tile, image, "w") == (104, 1300)   # to the image edge


@pytest.mark.parametrize("y, x, h, w, window", [
    (10, 64, 90, 136, "y=0, x=64, 128 x 128"),
    (64, 0, 100, 64, "y=64, x=0, 128 x 64"),
    (0, 0, 64, 1290, "y=0, x=0, 64 x 1280"),
    (960, 1280, 128, 64, "y=960, x=1280, 40 x 20"),       # padded by more than a tile
])
def test_check_block_names_the_nearest_aligned_window(y, x, h, w, window):
    with pytest.raises(tiffio.TiffValueError, match="nearest aligned window is " + window):
        check_block(y, x, h, w, (64, 64), (1000, 1300), "image 0")
    with pytest.raises(tiffio.TiffValueError, match="not inside"):
        check_block(1000, 0, 64, 64, (64, 64), (1000, 1300), "image 0")
    with pytest.raises(tiffio.TiffTypeError):
        check_block(0.0, 0, 64, 64, (64, 64), (1000, 1300), "image 0")


def test_write_region_equals_tile_by_tile(tmp_path):
    data = pixels((1000, 1300), dtype="uint16")
    _tile_by_tile(tmp_path / "ref.tif", data, tile=(64, 64), compression="deflate", predictor=2)
    with tiffio.TiffWriter(tmp_path / "out.tif", workers=2) as w:
        im = w.add_image(data.shape, data.dtype, tile=(64, 64), compression="deflate", predictor=2, workers=2)
        for y in range(0, 1000, 192):                 # bands of 3 tile rows, the last one cropped
            for x in (0, 512):
                im.write_region(y, x, data[y:y + 192, x:x + 512])
            im.write_region(y, 1024, numpy.pad(data[y:y + 192, 1024:], ((0, 0), (0, 44))))  # padded at the edge
        with pytest.raises(tiffio.TiffValueError, match="nearest aligned window"):
            im.write_region(0, 32, data[:64, 32:96])
        assert im.missing_tiles() == []
    _assert_same_levels(tmp_path / "ref.tif", tmp_path / "out.tif")


def test_write_region_separate_planes(tmp_path):
    data = pixels((100, 150, 3))
    with tiffio.TiffWriter(tmp_path / "p.tif") as w:
        im = w.add_image((3, 100, 150), "uint8", tile=(32, 32), planarconfig="separate", compression="zstd")
        im.write_region(0, 0, data[:64])               # all planes
        for k in range(3):
            im.write_region(64, 0, data[64:, :, k], plane=k)
        assert im.missing_tiles() == []
    assert numpy.array_equal(tifffile.imread(tmp_path / "p.tif"), numpy.moveaxis(data, -1, 0))


def test_write_region_pyramid_equals_tile_by_tile(tmp_path):
    data = pixels((1000, 1300, 3))
    _tile_by_tile(tmp_path / "ref.tif", data, tile=(64, 64), compression="zstd", pyramid=True)
    with tiffio.TiffWriter(tmp_path / "out.tif") as w:
        im = w.add_image(data.shape, "uint8", tile=(64, 64), compression="zstd", pyramid=True, workers=2)
        for y in range(0, 1000, 192):
            im.write_region(y, 0, data[y:y + 192])
    _assert_same_levels(tmp_path / "ref.tif", tmp_path / "out.tif")


def test_block_encoder_makes_the_levels_a_block_holds(tmp_path):
    """A block of 4 x 4 tiles at a multiple of 4 tiles holds levels 1 and 2 of its area: the worker
    encodes them and ships only the quadrants of its level-2 tile; the file equals a tile-by-tile
    pyramid, and no tile is decoded by the writer."""
    data = pixels((1000, 1300, 3))
    _tile_by_tile(tmp_path / "ref.tif", data, tile=(64, 64), compression="zstd", pyramid=True)
    with tiffio.TiffWriter(tmp_path / "out.tif") as w:
        im = w.add_image(data.shape, "uint8", tile=(64, 64), compression="zstd", pyramid=True)
        encoder = pickle.loads(pickle.dumps(im.block_encoder()))
        assert isinstance(encoder, BlockEncoder) and encoder.levels == len(im.levels) == 6
        assert encoder.local_levels(0, 0, 256, 256) == 2
        assert encoder.local_levels(256, 0, 256, 256) == 2
        assert encoder.local_levels(64, 0, 256, 256) == 0          # origin not on 2 tiles
        assert encoder.local_levels(0, 0, 192, 256) == 0           # 3 tiles high, not at the edge
        assert encoder.local_levels(768, 1024, 232, 276) == 2      # ragged at the image edge
        assert encoder.local_levels(0, 0, 1000, 1300) == 5
        encoded = encoder.encode_block(data[:256, :256], 0, 0)
        assert encoded.local_levels == 2
        assert sorted({t[0] for t in encoded.tiles}) == [0, 1, 2]
        assert [t[0] for t in encoded.tiles].count(1) == 4 and [t[0] for t in encoded.tiles].count(2) == 1
        assert [(q[0], q[1], q[2], q[4].shape) for q in encoded.quadrants] == [(2, 0, 0, (32, 32, 3))]
        im.write_encoded_block(encoded)
        for y in range(0, 1000, 256):
            for x in range(0, 1300, 256):
                if (y, x) != (0, 0):
                    im.write_encoded_block(encoder.encode_block(data[y:y + 256, x:x + 256], y, x))
        assert all(level.missing_tiles() == [] for level in im.levels[:3])
    _assert_same_levels(tmp_path / "ref.tif", tmp_path / "out.tif")
    with tiffio.TiffWriter(tmp_path / "bad.tif") as w:
        plain = w.add_image(data.shape, "uint8", tile=(64, 64))
        with pytest.raises(tiffio.TiffValueError, match="levels"):
            plain.write_encoded_block(encoder.encode_block(data[:256, :256], 0, 0))


def test_packed_blocks_travel_as_one_buffer(tmp_path):
    """Blocks packed for the trip from a worker: one uint8 buffer and one index array, pickled
    (protocol 5, out of band as dask.distributed does) and unpacked to the same tiles, quadrants
    and levels; written, the file equals the tile-by-tile pyramid."""
    data = pixels((300, 520, 3))
    _tile_by_tile(tmp_path / "ref.tif", data, tile=(64, 64), compression="zstd", pyramid=True)
    with tiffio.TiffWriter(tmp_path / "out.tif") as w:
        im = w.add_image(data.shape, "uint8", tile=(64, 64), compression="zstd", pyramid=True)
        encoder = im.block_encoder()
        blocks = [encoder.encode_block(data[y:y + 128, x:x + 256], y, x)
                  for y in range(0, 300, 128) for x in range(0, 520, 256)]
        buffers: list = []
        wire = pickle.dumps(PackedBlocks(blocks), protocol=5, buffer_callback=buffers.append)
        assert len(wire) < 4000 and sum(b.raw().nbytes for b in buffers) > sum(b.nbytes for b in blocks)  # out of band
        got = pickle.loads(wire, buffers=buffers).blocks()
        assert [(b.y, b.x, b.local_levels) for b in got] == [(b.y, b.x, b.local_levels) for b in blocks]
        for a, b in zip(got, blocks):
            assert [(t[:4], bytes(t[4])) for t in a.tiles] == [(t[:4], t[4]) for t in b.tiles]
            assert [q[:4] for q in a.quadrants] == [q[:4] for q in b.quadrants]
            for qa, qb in zip(a.quadrants, b.quadrants):
                numpy.testing.assert_array_equal(qa[4], qb[4])
            im.write_encoded_block(a)
    _assert_same_levels(tmp_path / "ref.tif", tmp_path / "out.tif")


def test_fan_in_blocks_process_pool_pyramid(tmp_path):
    data = pixels((200, 260, 3))
    _tile_by_tile(tmp_path / "ref.tif", data, tile=(TILE, TILE), compression="deflate", pyramid=True)
    keys = [(r, c) for r in range(0, 7, 2) for c in range(0, 9, 2)]
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool, \
            tiffio.TiffWriter(tmp_path / "out.tif") as w:
        im = w.add_image(data.shape, "uint8", tile=(TILE, TILE), compression="deflate", pyramid=True)
        report = tiffio.fan_in(im, keys, produce_block, pool, max_pending=3)
        assert im.missing_tiles() == []
    assert report.blocks == len(keys) == 20 and report.max_in_flight == 3
    assert report.tiles == 7 * 9 + 4 * 5          # level 0 and level 1 come from the workers
    _assert_same_levels(tmp_path / "ref.tif", tmp_path / "out.tif")


def test_fan_in_block_keys_checked_before_work(tmp_path):
    with ThreadPoolExecutor(1) as pool, tiffio.TiffWriter(tmp_path / "k.tif") as w:
        im = w.add_image((64, 64), "uint8", tile=(32, 32))
        with pytest.raises(tiffio.TiffIndexError):
            tiffio.fan_in(im, [(2, 0)], lambda key: numpy.zeros((32, 32), "uint8"), pool)


@pytest.mark.parametrize("compression, predictor", [(None, None), ("deflate", 2), ("lzw", 2), ("packbits", None),
                                                     ("zstd", None)])
def test_strips_read_by_libtiff_and_tifffile(tmp_path, compression, predictor):
    data = numpy.arange(100 * 37 * 3, dtype="uint16").reshape(100, 37, 3)
    path = tmp_path / "s.tif"
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(data.shape, data.dtype, rowsperstrip=30, compression=compression, predictor=predictor)
        assert im.tile == (30, 37) and im.tiles_down == 4
        im.write_region(0, 0, data[:60])
        im.write_tile(2, 0, data[60:90])
        im.write_tile(3, 0, data[90:])                # the last strip: 10 rows, stored as 10 rows
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert not page.is_tiled and page.rowsperstrip == 30 and len(page.dataoffsets) == 4
        numpy.testing.assert_array_equal(page.asarray(), data)
    if compression != "zstd":
        numpy.testing.assert_array_equal(imagecodecs.tiff_decode(path.read_bytes()), data)
    with tiffio.open(path) as tif:
        numpy.testing.assert_array_equal(tif.ifds[0].asarray(), data)


def test_strips_refusals(tmp_path):
    with tiffio.TiffWriter(tmp_path / "r.tif") as w:
        with pytest.raises(tiffio.TiffValueError, match="tiled"):
            w.add_image((100, 100), "uint8", rowsperstrip=10, pyramid=True)
        with pytest.raises(tiffio.TiffValueError, match="MCU"):
            w.add_image((100, 100, 3), "uint8", rowsperstrip=10, compression="jpeg")
        with pytest.raises(tiffio.TiffValueError, match="rowsperstrip"):
            w.add_image((100, 100), "uint8", rowsperstrip=0)
        w.add_image((100, 100), "uint8", rowsperstrip=32, compression="jpeg")   # a multiple of 16: fine


def test_predictor_true_stores_a_predictor(tmp_path):
    """add_image(predictor=True) stores horizontal differencing (True == 1 once made it none)."""
    with tiffio.TiffWriter(tmp_path / "p.tif") as w:
        w.add_image((32, 32), "uint16", tile=(32, 32), compression="deflate", predictor=True).write_tile(
            0, 0, numpy.arange(1024, dtype="uint16").reshape(32, 32))
        w.add_image((32, 32), "float32", tile=(32, 32), compression="deflate", predictor=True).write_tile(
            0, 0, numpy.ones((32, 32), "float32"))
    with tifffile.TiffFile(tmp_path / "p.tif") as tif:
        assert [p.predictor for p in tif.pages] == [2, 3]
