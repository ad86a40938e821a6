"""Errors people can act on, raised before anything is stored: add_image checks every parameter a
checkpoint packs (resolution, extratags...) and raises TiffValueError naming it; no raw exception
(ValueError, TypeError, struct.error, ZeroDivisionError, an OSError that is not a SourceError) leaves
the writer's public API or the command line's writing commands; messages name the user's files."""

from __future__ import annotations

import numpy
import pytest
import tifffile

import tiffio
from tests.support.cli_run import run
from tests.support.fingerprints import TILE, folder_listing, pixels, write_tiles
from tests.support.paths import FIXTURES

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("resolution", [(NAN, 72), (72, INF), (-72, 72), (0, 72), (72, -INF), (1e20, 72),
                                        (72, 72, "parsec"), (72, 72, None), ("a", 72), 72])
def test_resolution_checked_in_add_image(tmp_path, resolution):
    path = tmp_path / "r.tif"
    data = pixels(0, (32, 32))
    with tiffio.TiffWriter(path) as w:
        im = w.add_image((32, 32), "uint8", tile=(16, 16))
        write_tiles(im, data)
        with pytest.raises(tiffio.TiffUsageError, match="resolution"):
            w.add_image((32, 32), "uint8", tile=(16, 16), resolution=resolution)
        w.checkpoint()  # the writer goes on: nothing of the refused image was stored
    numpy.testing.assert_array_equal(tifffile.imread(path), data)
    assert len(tiffio.open(path).ifds) == 1


BAD_EXTRATAGS = {
    "code >= 65536": [(65536, 3, 1, 1)],
    "negative code": [(-1, 3, 1, 1)],
    "unknown field type": [(65000, 99, 1, 1)],
    "field type 0": [(65000, 0, 1, 1)],
    "IFD offset type": [(65000, 13, 1, 8)],
    "LONG8 in a file that may be classic": [(65000, 16, 1, 1)],
    "SHORT out of range": [(65000, 3, 1, 70000)],
    "BYTE negative": [(65000, 1, 1, -1)],
    "RATIONAL NaN": [(65000, 5, 1, NAN)],
    "RATIONAL negative": [(65000, 5, 1, -2.5)],
    "SRATIONAL pair out of range": [(65000, 10, 1, [2**40, 1])],
    "FLOAT overflow": [(65000, 11, 1, 1e300)],
    "wrong count": [(65000, 3, 2, [1, 2, 3])],
    "negative count": [(65000, 3, -3, [1, 2, 3])],
    "text in a SHORT": [(65000, 3, 1, "abc")],
    "number in an ASCII": [(65000, 2, None, 5)],
    "object value": [(65000, 3, 1, object())],
    "ragged value": [(65000, 3, None, [[1, 2], [3]])],
    "too short item": [(65000, 3, 1)],
    "ImageWidth": [(256, 4, 1, 10)],
    "ImageLength": [(257, 4, 1, 10)],
    "BitsPerSample": [(258, 3, 1, 16)],
    "Compression": [(259, 3, 1, 5)],
    "StripOffsets": [(273, 4, 1, 8)],
    "TileOffsets": [(324, 4, 4, [8, 8, 8, 8])],
    "TileByteCounts": [(325, 4, 4, [1, 1, 1, 1])],
    "TileWidth": [(322, 3, 1, 32)],
    "SamplesPerPixel": [(277, 3, 1, 3)],
    "SubIFDs": [(330, 4, 1, 8)],
    "SampleFormat": [(339, 3, 1, 3)],
    "JPEGTables": [(347, 7, None, b"\xff\xd8")],
    "ExifIFD": [(34665, 4, 1, 8)],
    "NewSubfileType": [(254, 4, 1, 1)],
    "ExtraSamples without extra samples": [(338, 3, 1, 2)],
}


@pytest.mark.parametrize("name", sorted(BAD_EXTRATAGS))
def test_extratags_checked_in_add_image(tmp_path, name):
    path = tmp_path / "e.tif"
    data = pixels(0, (32, 32))
    with tiffio.TiffWriter(path) as w:
        im = w.add_image((32, 32), "uint8", tile=(16, 16))
        write_tiles(im, data)
        with pytest.raises(tiffio.TiffUsageError, match="extratags"):
            w.add_image((32, 32), "uint8", tile=(16, 16), extratags=BAD_EXTRATAGS[name])
    numpy.testing.assert_array_equal(tifffile.imread(path), data)
    assert tiffio.recover(path).changes == 0


def test_good_extratags_still_written(tmp_path):
    path = tmp_path / "g.tif"
    tags = [(65000, 2, None, "text"), (65001, 3, 3, [1, 2, 65535]), (65002, 5, 1, 2.5), (65003, 12, 2, (1.5, NAN)),
            (65004, 7, None, b"\x00\x01"), (65005, 10, 1, [-3, 4]), (305, 2, None, "by extratags"),
            (65006, 3, 2, numpy.array([7, 8], numpy.uint16)), (65007, 4, 1, [numpy.uint32(9)])]
    with tiffio.TiffWriter(path) as w:
        w.add_image((16, 16, 4), "uint8", tile=(16, 16), extratags=tags + [(338, 3, 1, 1)])
        w.images[0].write_tile(0, 0, numpy.zeros((16, 16, 4), "uint8"))
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0].tags
        assert page[65000].value == "text" and tuple(page[65001].value) == (1, 2, 65535)
        assert page[65002].value == (5, 2) and page[65003].value[0] == 1.5
        assert page[65005].value == (-3, 4) and page[305].value == "by extratags"
        assert tuple(page[65006].value) == (7, 8) and page[65007].value == 9 and tuple(page[338].value) == (1,)


def test_long8_extratags_in_a_bigtiff(tmp_path):
    path = tmp_path / "b.tif"
    with tiffio.TiffWriter(path, bigtiff=True) as w:
        w.add_image((16, 16), "uint8", tile=(16, 16), extratags=[(65000, 16, 1, 2**40)])
        w.images[0].write_tile(0, 0, numpy.zeros((16, 16), "uint8"))
    assert tifffile.TiffFile(path).pages[0].tags[65000].value == 2**40


def test_parameters_an_older_tiffio_stored_unchecked_do_not_strand_the_tiles(tmp_path):
    """A file whose image record holds a resolution no checkpoint can pack (an older tiffio stored it
    unchecked; every checkpoint then failed): resume drops it with a warning and the tiles recover."""
    import json

    from tiffio.writer import LEADER, MAGIC_IMAGE, MAGIC_TILE, crc32_parts

    path = tmp_path / "old.tif"
    data = pixels(2, (32, 32))
    with tiffio.TiffWriter(path) as w:
        im = w.add_image((32, 32), "uint8", tile=(16, 16))
        params = dict(im.params)
        tiles = [im.encode_tile(data[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16]) for r in range(2) for c in range(2)]
    params["resolution"] = [NAN, 72.0, 2]
    params["extratags"] = [[65000, 3, 1, [70000]], [65001, 2, None, "kept"]]
    definition = json.dumps({"params": params, "byteorder": "<", "bigtiff": None}, sort_keys=True).encode()
    records = [LEADER.pack(MAGIC_IMAGE, 0, 0, len(definition), crc32_parts([definition])) + definition]
    for k, tile in enumerate(tiles):
        records.append(LEADER.pack(MAGIC_TILE, 0, k, len(tile), crc32_parts([tile])) + tile)
    path.write_bytes(b"\0" * 16 + b"".join(records))  # what such a writer left: records, no checkpoint
    with pytest.warns(tiffio.TiffFormatWarning, match="resolution"):
        report = tiffio.recover(path)
    assert report.tiles_recovered == 4
    numpy.testing.assert_array_equal(tifffile.imread(path), data)
    with tifffile.TiffFile(path) as tf:
        assert 282 not in tf.pages[0].tags and 65000 not in tf.pages[0].tags
        assert tf.pages[0].tags[65001].value == "kept"


# --- no raw exception from the writer's public API -------------------------------------------------

def _writer(tmp_path, **kw):
    return tiffio.TiffWriter(tmp_path / "x.tif", **kw)


def _add(tmp_path, **kw):
    with tiffio.TiffWriter(tmp_path / "x.tif") as w:
        args = {"shape": (32, 32), "dtype": "uint8", "tile": (16, 16), **kw}
        im = w.add_image(args.pop("shape"), args.pop("dtype"), **args)
        im.write_tile(0, 0, numpy.zeros(im.valid_shape(0, 0), im.dtype))


def _write(tmp_path, *args, raw=False, **kw):
    with tiffio.TiffWriter(tmp_path / "x.tif") as w:
        im = w.add_image((32, 32), "uint8", tile=(16, 16))
        (im.write_raw_tile if raw else im.write_tile)(*args, **kw)


BAD_CALLS = {
    "writer bigtiff=float32": lambda t: _writer(t, bigtiff=numpy.float32(1)),
    "writer checkpoint_every=x": lambda t: _writer(t, checkpoint_every="x"),
    "writer checkpoint_every=0": lambda t: _writer(t, checkpoint_every=0),
    "writer checkpoint_seconds=-1": lambda t: _writer(t, checkpoint_seconds=-1),
    "writer checkpoint_seconds=x": lambda t: _writer(t, checkpoint_seconds="x"),
    "writer workers=x": lambda t: _writer(t, workers="x"),
    "writer workers=-1": lambda t: _writer(t, workers=-1),
    "writer workers=2**70": lambda t: _writer(t, workers=2**70),
    "writer software=123": lambda t: _writer(t, software=123),
    "writer atomic resume": lambda t: _writer(t, atomic=True, mode="resume"),
    "writer target int": lambda t: tiffio.TiffWriter(5),
    "add shape=x": lambda t: _add(t, shape="ab"),
    "add shape=(x, 1)": lambda t: _add(t, shape=("x", 1)),
    "add shape=(2**70, 1)": lambda t: _add(t, shape=(2**70, 16)),
    "add dtype=object": lambda t: _add(t, dtype=object),
    "add dtype=xyz": lambda t: _add(t, dtype="xyz"),
    "add tile={}": lambda t: _add(t, tile={}),
    "add tile=(a, 16)": lambda t: _add(t, tile=("a", 16)),
    "add tile=(0, 16)": lambda t: _add(t, tile=(0, 16)),
    "add photometric=70000": lambda t: _add(t, photometric=70000),
    "add photometric=x": lambda t: _add(t, photometric="x"),
    "add predictor=x": lambda t: _add(t, predictor=[1]),
    "add jpeg_quality=x": lambda t: _add(t, compression="jpeg", jpeg_quality="x"),
    "add compression_level=x": lambda t: _add(t, compression="zstd", compression_level="x"),
    "add compression_level=nan": lambda t: _add(t, compression="deflate", compression_level=NAN),
    "add subsampling=x": lambda t: _add(t, shape=(32, 32, 3), compression="jpeg", subsampling="xy"),
    "add subsampling=float32": lambda t: _add(t, subsampling=numpy.float32(1)),
    "add planarconfig=list": lambda t: _add(t, planarconfig=[1]),
    "add pyramid=list": lambda t: _add(t, pyramid=[1]),
    "add software=bytes list": lambda t: _add(t, software=[b"x"]),
    "add description=5": lambda t: _add(t, description=5),
    "add datetime=5": lambda t: _add(t, datetime=5),
    "add workers=x": lambda t: _add(t, workers="x"),
    "add extratags=5": lambda t: _add(t, extratags=5),
    "add extratags=str": lambda t: _add(t, extratags="abc"),
    "write_tile row=a": lambda t: _write(t, "a", 0, numpy.zeros((16, 16), "uint8")),
    "write_tile row=None": lambda t: _write(t, None, None, numpy.zeros((16, 16), "uint8")),
    "write_tile object array": lambda t: _write(t, 0, 0, numpy.zeros((16, 16), object)),
    "write_tile text": lambda t: _write(t, 0, 0, "abc"),
    "write_tile plane=x": lambda t: _write(t, 0, 0, numpy.zeros((16, 16), "uint8"), plane="x"),
    "write_raw_tile None": lambda t: _write(t, 0, 0, None, raw=True),
    "write_raw_tile str": lambda t: _write(t, 0, 0, "abc", raw=True),
    "recover None": lambda t: tiffio.recover(None),
    "recover missing": lambda t: tiffio.recover(t / "missing.tif"),
    "recover folder": lambda t: tiffio.recover(t),
    "merge None": lambda t: tiffio.merge(t / "m.tif", [None]),
    "merge dst None": lambda t: tiffio.merge(None, [t / "s.tif"]),
    "merge one path": lambda t: tiffio.merge(t / "m.tif", str(t / "s.tif")),
    "merge missing shard": lambda t: tiffio.merge(t / "m.tif", [t / "missing.tif"]),
    "relayout dst None": lambda t: tiffio.relayout(FIXTURES / "gdal" / "cog_jpeg_rgb.tif", None),
    "relayout dst 5": lambda t: tiffio.relayout(FIXTURES / "gdal" / "cog_jpeg_rgb.tif", 5),
    "plan shape=ab": lambda t: tiffio.Plan.create("ab", "uint8", workers=1),
    "plan workers=x": lambda t: tiffio.Plan.create((32, 32), "uint8", workers="x"),
    "plan levels=0": lambda t: tiffio.Plan.create((32, 32), "uint8", workers=1, levels=0),
    "plan writer_options=5": lambda t: tiffio.Plan.create((32, 32), "uint8", workers=1, writer_options=5),
    "plan resolution nan": lambda t: tiffio.Plan.create((32, 32), "uint8", workers=1, resolution=(NAN, 1)),
    "plan structural tag": lambda t: tiffio.Plan.create((32, 32), "uint8", workers=1, extratags=[(256, 4, 1, 1)]),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_no_raw_exception_from_the_writer_api(tmp_path, name):
    with pytest.raises(tiffio.TiffError):
        BAD_CALLS[name](tmp_path)
    assert [n for n in folder_listing(tmp_path) if n.startswith(".")] == []  # no lock or temporary left


# --- the command line's writing commands ---------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--tile", "0"], ["--tile", "15"], ["--tile", "-16"], ["--tile", "abc"], ["--tile", "16", "32", "48"],
    ["--workers", "0"], ["--workers", "-2"], ["--quality", "-1"], ["--region", "-1", "0", "10", "10"],
    ["--region", "0", "0", "0", "10"], ["--region", "0", "0", "99999", "10"], ["--level", "99"],
    ["--tile", "0", "--cog"], ["--pyramid-filter", "mean"],
])
def test_invalid_cli_numbers_are_usage_errors(tmp_path, args):
    proc = run("convert", FIXTURES / "gdal" / "cog_jpeg_rgb.tif", tmp_path / "out.tif", *args, check=2)
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "ZeroDivisionError" not in proc.stderr
    assert folder_listing(tmp_path) == []


def test_convert_cog_messages_name_the_users_files(tmp_path):
    """convert --cog re-encodes into a tiled intermediate of its own; a failure names DST, never the
    intermediate (it was DST.tiled.partial), and leaves nothing."""
    src = tmp_path / "u16.tif"
    tifffile.imwrite(src, numpy.zeros((64, 64), numpy.uint16), tile=(16, 16))
    dst = tmp_path / "out.tif"
    proc = run("convert", src, dst, "--cog", "--compression", "jpeg", check=1)
    assert "partial" not in proc.stderr and ".tiffio" not in proc.stderr and "tiled" not in proc.stderr
    assert f"{dst}:" in proc.stderr and "JPEG" in proc.stderr and proc.stderr.count("\n") == 1
    assert folder_listing(tmp_path) == ["u16.tif"]


def test_cli_merge_and_recover_errors(tmp_path):
    shard = tmp_path / "s.tif"
    shard.write_bytes(b"\0" * 4096)
    for command in (["recover", shard], ["merge", tmp_path / "m.tif", shard], ["recover", tmp_path]):
        proc = run(*command, check=None)
        assert proc.returncode in (1, 2) and "internal error" not in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1
    assert shard.read_bytes() == b"\0" * 4096
    assert folder_listing(tmp_path) == ["s.tif"]


def test_writer_name_is_the_users_path(tmp_path):
    """Messages of an atomic writer name its target, not the temporary it writes."""
    with tiffio.TiffWriter(tmp_path / "a.tif", atomic=True) as w:
        assert w.name == str(tmp_path / "a.tif")
        im = w.add_image((32, 32), "uint8", tile=(TILE, TILE))
        with pytest.raises(tiffio.TiffValueError):
            im.write_tile(0, 0, numpy.zeros((15, 16), "uint8"))
        write_tiles(im, pixels(0, (32, 32)))
