"""planarconfig='separate': write_tile takes one plane (plane=) or whole pixels (length, width, samples);
files read back identically by tiffio, tifffile and libtiff (imagecodecs.tiff_decode)."""

from __future__ import annotations

import numpy
import pytest

import tiffio
from tests.support.writer_helpers import make_image, read_libtiff, read_tifffile, read_tiffio

pytestmark = pytest.mark.crossval


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_whole_pixel_tiles_store_every_plane(tmp_path, compression):
    data = make_image((70, 90, 3), "uint16")  # pixels (length, width, samples)
    path = tmp_path / "sep.tif"
    with tiffio.TiffWriter(path) as w:
        im = w.add_image((3, 70, 90), "uint16", tile=(32, 48), planarconfig="separate",
                         compression=compression, missing="error")
        for row in range(im.tiles_down):
            for col in range(im.tiles_across):
                block = data[row * 32:(row + 1) * 32, col * 48:(col + 1) * 48]
                if (row + col) % 2:  # full-size tile at the edge (zeros outside the image)
                    full = numpy.zeros((32, 48, 3), "uint16")
                    full[:block.shape[0], :block.shape[1]] = block
                    block = full
                im.write_tile(row, col, block)
        assert im.missing_tiles() == []
    expected = numpy.moveaxis(data, 2, 0)  # stored (samples, length, width)
    numpy.testing.assert_array_equal(read_tifffile(path), expected)
    numpy.testing.assert_array_equal(read_libtiff(path), expected)
    numpy.testing.assert_array_equal(read_tiffio(path), expected)


def test_plane_keyword_still_writes_one_plane(tmp_path):
    data = make_image((64, 64, 2), "uint8")
    path = tmp_path / "one.tif"
    with tiffio.TiffWriter(path, missing="sparse") as w:
        im = w.add_image((2, 64, 64), "uint8", tile=(32, 32), planarconfig="separate")
        im.write_tile(0, 0, data[:32, :32, 1], plane=1)
        im.write_tile(1, 1, data[32:, 32:])  # whole pixels: both planes
        assert (0, 0, 0) in im.missing_tiles() and (0, 0, 1) not in im.missing_tiles()
        assert (1, 1, 0) not in im.missing_tiles() and (1, 1, 1) not in im.missing_tiles()
    got = read_tifffile(path)
    numpy.testing.assert_array_equal(got[1, :32, :32], data[:32, :32, 1])
    numpy.testing.assert_array_equal(got[:, 32:, 32:], numpy.moveaxis(data[32:, 32:], 2, 0))
    numpy.testing.assert_array_equal(got[0, :32, :32], 0)


def test_wrong_shape_message_names_the_accepted_shapes(tmp_path):
    with tiffio.TiffWriter(tmp_path / "bad.tif") as w:
        im = w.add_image((3, 40, 64), "uint8", tile=(32, 32), planarconfig="separate", missing="sparse")
        with pytest.raises(tiffio.TiffValueError) as info:
            im.write_tile(1, 0, numpy.zeros((32, 32, 4), "uint8"))
        assert str(info.value) == (
            "image 0: tile (row 1, col 0) has shape (32, 32, 4); expected one plane (32, 32) or (8, 32) with "
            "plane=, or whole pixels (32, 32, 3) or (8, 32, 3) without plane= (full or cropped at the edge)")
        with pytest.raises(tiffio.TiffValueError):  # whole pixels with plane= is one plane's call
            im.write_tile(0, 0, numpy.zeros((32, 32, 3), "uint8"), plane=0)
        with pytest.raises(tiffio.TiffIndexError):  # checked before any plane is stored
            im.write_tile(2, 0, numpy.zeros((32, 32, 3), "uint8"))
        assert len(im.missing_tiles()) == im.tile_count
