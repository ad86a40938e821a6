"""Single-pass pyramids (TiffWriter.add_image(pyramid=...)): level-0 tiles in any order, reduced levels
made as soon as their children are in. Levels are compared pixel for pixel with an independent numpy
reference (lossless codecs), read back by tifffile, libtiff (imagecodecs.tiff_decode), GDAL (rasterio),
libvips (pyvips) and OpenSlide where installed; the spill path, out-of-process encoding and a crash
(a real subprocess killed with SIGKILL) followed by resume are exercised."""

from __future__ import annotations

import concurrent.futures
import io
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading

import numpy
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiffio
from tests.support.writer_helpers import make_image, read_gdal, read_libtiff
from tiffio.writer.pyramid import level_shapes, reduce2

pytestmark = pytest.mark.crossval

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --- the reference: independent of tiffio's reduce2 --------------------------------------------------

def ref_reduce(a, filter="mean"):
    """2 x 2 reduction, ceil sizes: the mean of the pixels of each block inside the image, rounded half
    up for integers ((2 * sum + n) // (2 * n), n = 1, 2 or 4 pixels); nearest = the top-left pixel."""
    if filter == "nearest":
        return a[::2, ::2]
    h, w = a.shape[:2]
    hh, ww = -(-h // 2), -(-w // 2)
    total = numpy.zeros((hh * 2, ww * 2) + a.shape[2:], numpy.float64 if a.dtype.kind == "f" else object)
    count = numpy.zeros((hh * 2, ww * 2) + (1,) * (a.ndim - 2), numpy.int64)
    total[:h, :w] = a.astype(total.dtype)
    count[:h, :w] = 1
    s = total[0::2, 0::2] + total[1::2, 0::2] + total[0::2, 1::2] + total[1::2, 1::2]
    n = count[0::2, 0::2] + count[1::2, 0::2] + count[0::2, 1::2] + count[1::2, 1::2]
    if a.dtype.kind == "f":
        return (s / n).astype(a.dtype)
    return ((2 * s + n) // (2 * n)).astype(a.dtype)


def ref_levels(data, tile, filter="mean"):
    levels = [data]
    for _ in level_shapes(data.shape[0], data.shape[1], tile)[1:]:
        levels.append(ref_reduce(levels[-1], filter))
    return levels


def z_order(rows, cols):
    def key(rc):
        r, c = rc
        k = 0
        for bit in range(16):
            k |= ((c >> bit) & 1) << (2 * bit) | ((r >> bit) & 1) << (2 * bit + 1)
        return k
    return sorted(((r, c) for r in range(rows) for c in range(cols)), key=key)


def orders(rows, cols):
    coords = [(r, c) for r in range(rows) for c in range(cols)]
    shuffled = coords[:]
    random.Random(5).shuffle(shuffled)
    return {"row-major": coords, "z-order": z_order(rows, cols), "random": shuffled,
            "reversed": coords[::-1]}


def write_pyramid(target, data, tile, order, **kwargs):
    workers = kwargs.pop("workers", 1)
    with tiffio.TiffWriter(target) as w:
        im = w.add_image(data.shape, data.dtype, tile=tile, pyramid=kwargs.pop("pyramid", True), workers=workers,
                         **kwargs)
        th, tw = tile
        for r, c in order:
            im.write_tile(r, c, data[r * th:(r + 1) * th, c * tw:(c + 1) * tw])
        w.flush()
        stats = im.pyramid_stats
        assert [lv.index for lv in im.levels] == list(range(len(im.levels)))
    return stats


def tifffile_levels(path, subifds=False):
    with tifffile.TiffFile(path) as tf:
        if subifds:
            page = tf.pages[0]
            return [page.asarray()] + [tifffile.TiffPage(tf, index=k, offset=o).asarray()
                                       for k, o in enumerate(page.subifds)]
        return [p.asarray() for p in tf.pages]


# --- exact levels ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,shape,compression,filter", [
    ("uint8", (333, 250, 3), "deflate", "mean"),
    ("uint16", (300, 301), "zstd", "mean"),
    ("int16", (129, 200), "lzw", "mean"),
    ("uint8", (333, 250, 3), "lzw", "nearest"),
    ("uint32", (100, 70, 2), None, "mean"),
])
@pytest.mark.parametrize("order_name", ["row-major", "z-order", "random"])
def test_levels_equal_the_reference(tmp_path, dtype, shape, compression, filter, order_name):
    data = make_image(shape, dtype, seed=3)
    tile = (32, 48)
    rows, cols = -(-shape[0] // 32), -(-shape[1] // 48)
    path = tmp_path / "p.tif"
    stats = write_pyramid(path, data, tile, orders(rows, cols)[order_name], compression=compression,
                          pyramid_filter=filter, workers=2)
    expected = ref_levels(data, tile, filter)
    got = tifffile_levels(path)
    assert [g.shape for g in got] == [e.shape for e in expected]
    assert len(got) == stats["levels"] and stats["partial_parents"] == 0 and stats["spills"] == 0
    for k, (g, e) in enumerate(zip(got, expected)):
        numpy.testing.assert_array_equal(g, e, err_msg=f"level {k}")
    with tifffile.TiffFile(path) as tf:
        assert [p.subfiletype for p in tf.pages] == [0] + [1] * (len(expected) - 1)
        assert len(tf.series[0].levels) == len(expected)


def test_float_levels(tmp_path):
    data = make_image((150, 97), "float32")
    path = tmp_path / "f.tif"
    write_pyramid(path, data, (32, 32), orders(5, 4)["random"], compression="deflate", predictor=3)
    for g, e in zip(tifffile_levels(path), ref_levels(data, (32, 32))):
        numpy.testing.assert_allclose(g, e, rtol=1e-6)


def test_level_sizes_are_ceil_down_to_one_tile():
    assert level_shapes(40960, 40960, (512, 512))[-1] == (320, 320)
    assert len(level_shapes(40960, 40960, (512, 512))) == 8
    assert level_shapes(1001, 513, (256, 256)) == [(1001, 513), (501, 257), (251, 129)]
    assert level_shapes(100, 100, (256, 256)) == [(100, 100)]


def test_reduce2_integer_rounding_without_overflow():
    a = numpy.array([[255, 254], [255, 255]], numpy.uint8)
    assert reduce2(a)[0, 0] == 255  # (1019 + 2) // 4, no uint8 overflow
    b = numpy.array([[1, 2], [2, 2]], numpy.uint8)
    assert reduce2(b)[0, 0] == 2  # 7 / 4 = 1.75 -> 2
    c = numpy.array([[-3, -2]], numpy.int8)  # one row: the mean of 2 pixels, -2.5 rounds half up to -2
    assert reduce2(c)[0, 0] == -2
    big = numpy.array([[2**64 - 1, 2**64 - 2], [2**64 - 1, 2**64 - 1]], numpy.uint64)
    assert int(reduce2(big)[0, 0]) == 2**64 - 1
    neg = numpy.array([[-(2**63), -(2**63)], [-(2**63), -(2**63) + 1]], numpy.int64)
    assert int(reduce2(neg)[0, 0]) == -(2**63)
    for dtype in ("uint8", "int16", "uint32", "int64"):
        data = make_image((37, 29, 2), dtype, seed=1)
        numpy.testing.assert_array_equal(reduce2(data), ref_reduce(data))


# --- any order, spilling --------------------------------------------------------------------------

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), budget=st.sampled_from([0, 400, 4000, 64 << 20]),
       filter=st.sampled_from(["mean", "nearest"]))
def test_any_order_any_budget(seed, budget, filter):
    data = make_image((90, 117, 3), "uint8", seed=seed % 7)
    order = [(r, c) for r in range(6) for c in range(8)]
    random.Random(seed).shuffle(order)
    buf = io.BytesIO()
    stats = write_pyramid(buf, data, (16, 16), order, pyramid_filter=filter, pyramid_budget=budget)
    assert stats["partial_parents"] == 0 and stats["frontier_bytes"] == 0
    if budget == 0:
        assert stats["spills"] > 0 and stats["reloads"] == stats["spills"]
    got = tifffile_levels(io.BytesIO(buf.getvalue()))
    for k, (g, e) in enumerate(zip(got, ref_levels(data, (16, 16), filter), strict=True)):
        numpy.testing.assert_array_equal(g, e, err_msg=f"level {k}")


def test_spill_path_with_a_tiny_budget(tmp_path):
    data = make_image((256, 256, 3), "uint8")
    path = tmp_path / "spill.tif"
    order = orders(8, 8)["random"]
    stats = write_pyramid(path, data, (32, 32), order, compression="deflate", pyramid_budget=3 * 16 * 16 * 3,
                          workers=2)
    assert stats["spills"] >= 20 and stats["reloads"] == stats["spills"] and stats["spilled_bytes"] > 0
    for g, e in zip(tifffile_levels(path), ref_levels(data, (32, 32)), strict=True):
        numpy.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("order_name,peak_mib", [("row-major", 31), ("z-order", 4), ("blocks", 15)])
def test_frontier_at_40960_scaled(order_name, peak_mib):
    """The frontier of a 40960² RGB image with 512² tiles (80 x 80 tiles), simulated with 16² tiles:
    same grid, quadrants 1024 x smaller. Row-major, Z-order and 8 x 8-tile blocks in random block order
    stay under the default budget (64 MiB) with room to spare: they never spill."""
    rows = cols = 80
    data = numpy.zeros((rows * 16, cols * 16, 3), numpy.uint8)
    if order_name == "blocks":
        blocks = [(br, bc) for br in range(0, rows, 8) for bc in range(0, cols, 8)]
        random.Random(1).shuffle(blocks)
        order = [(br + r, bc + c) for br, bc in blocks for r in range(8) for c in range(8)]
    else:
        order = orders(rows, cols)[order_name]
    stats = write_pyramid(io.BytesIO(), data, (16, 16), order, pyramid_budget=(64 << 20) // 1024)
    assert stats["spills"] == 0
    assert stats["peak_bytes"] * 1024 <= peak_mib << 20


# --- conventions and readers ----------------------------------------------------------------------

def test_subifds_for_ome(tmp_path):
    data = make_image((200, 170, 3), "uint8")
    path = tmp_path / "sub.tif"
    write_pyramid(path, data, (32, 32), orders(7, 6)["random"], compression="deflate", pyramid="subifds")
    expected = ref_levels(data, (32, 32))
    with tifffile.TiffFile(path) as tf:
        assert len(tf.pages) == 1 and len(tf.pages[0].subifds) == len(expected) - 1
        levels = tf.series[0].levels
        assert len(levels) == len(expected)
        for lv, e in zip(levels, expected):
            numpy.testing.assert_array_equal(lv.asarray(), e)
    with tiffio.open(path) as tf:
        assert [lv.shape for lv in tf.levels] == [e.shape for e in expected]


def test_planar_separate_pyramid(tmp_path):
    data = make_image((3, 100, 90), "uint16")  # (samples, length, width)
    path = tmp_path / "sep.tif"
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(data.shape, "uint16", tile=(16, 32), planarconfig="separate", compression="deflate",
                         pyramid=True)
        order = [(r, c) for r in range(im.tiles_down) for c in range(im.tiles_across)]
        random.Random(2).shuffle(order)
        for r, c in order:
            im.write_tile(r, c, numpy.moveaxis(data[:, r * 16:(r + 1) * 16, c * 32:(c + 1) * 32], 0, 2))
    pixels = numpy.moveaxis(data, 0, 2)
    for g, e in zip(tifffile_levels(path), ref_levels(pixels, (16, 32)), strict=True):
        numpy.testing.assert_array_equal(g, numpy.moveaxis(e, 2, 0))


def test_readers_agree_lossless(tmp_path):
    """tifffile, libtiff, GDAL (overviews) and libvips read every level of a main-chain pyramid equal to
    the reference."""
    data = make_image((300, 260, 3), "uint8")
    path = tmp_path / "interop.tif"
    write_pyramid(path, data, (64, 64), orders(5, 5)["random"], compression="deflate")
    expected = ref_levels(data, (64, 64))
    assert len(expected) == 4
    for k, e in enumerate(expected):
        numpy.testing.assert_array_equal(read_libtiff(path, index=k), e)
        numpy.testing.assert_array_equal(numpy.moveaxis(read_gdal(path, index=k), 0, -1), e)
    pyvips = pytest.importorskip("pyvips", reason="pyvips (libvips) is not installed")
    for k, e in enumerate(expected):
        img = pyvips.Image.tiffload(str(path), page=k)
        numpy.testing.assert_array_equal(img.numpy(), e)


def test_jpeg_pyramid_read_by_all(tmp_path):
    """A JPEG (YCbCr) pyramid: levels close to the reference (made from the original pixels, not
    decoded tiles), and every reader decodes the same pixels as tiffio."""
    rng = numpy.random.default_rng(0)
    yy, xx = numpy.mgrid[0:600, 0:520]
    data = numpy.stack([yy * 0.4, xx * 0.45, (yy + xx) * 0.2], -1).astype(numpy.uint8)  # smooth
    data = numpy.clip(data.astype(int) + rng.integers(-3, 4, data.shape), 0, 255).astype(numpy.uint8)
    path = tmp_path / "jpeg.tif"
    write_pyramid(path, data, (128, 128), orders(5, 5)["z-order"], compression="jpeg", jpeg_quality=95,
                  workers=2)
    expected = ref_levels(data, (128, 128))
    with tiffio.open(path) as tf:
        ours = [lv.ifd.asarray() for lv in tf.levels]
    assert [o.shape for o in ours] == [e.shape for e in expected]
    for k, (o, e) in enumerate(zip(ours, expected)):
        assert numpy.abs(o.astype(int) - e).mean() < 3, k
        numpy.testing.assert_array_equal(read_libtiff(path, index=k), o)
        numpy.testing.assert_array_equal(tifffile.imread(path, key=k), o)


def test_openslide_opens_every_level(tmp_path):
    openslide = pytest.importorskip("openslide", reason="OpenSlide (openslide-python + openslide-bin or "
                                    "Debian's python3-openslide) is not installed")
    data = make_image((700, 600, 3), "uint8")
    path = tmp_path / "slide.tif"
    write_pyramid(path, data, (128, 128), orders(6, 5)["random"], compression="jpeg", jpeg_quality=90,
                  workers=2)
    with tiffio.open(path) as tf:
        ours = [lv.ifd.asarray() for lv in tf.levels]
    slide = openslide.OpenSlide(str(path))
    try:
        assert slide.properties.get("openslide.vendor") == "generic-tiff"
        assert slide.level_count == len(ours) == 4
        assert slide.level_dimensions == tuple((o.shape[1], o.shape[0]) for o in ours)
        for k, o in enumerate(ours):
            down = round(slide.level_downsamples[k])
            region = numpy.asarray(slide.read_region((0, 0), k, (o.shape[1], o.shape[0])))
            assert down == 2**k
            numpy.testing.assert_array_equal(region[..., :3], o)
    finally:
        slide.close()


# --- out-of-process encoding ------------------------------------------------------------------------

def test_encode_and_reduce_in_worker_processes(tmp_path):
    data = make_image((200, 150, 3), "uint8")
    direct = tmp_path / "direct.tif"
    write_pyramid(direct, data, (32, 32), orders(7, 5)["row-major"], compression="deflate")
    path = tmp_path / "raw.tif"
    ctx = multiprocessing.get_context("spawn")
    with tiffio.TiffWriter(path) as w, concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        im = w.add_image(data.shape, "uint8", tile=(32, 32), compression="deflate", pyramid=True)
        coords = orders(im.tiles_down, im.tiles_across)["random"]
        jobs = {pool.submit(im.encode_and_reduce, data[r * 32:(r + 1) * 32, c * 32:(c + 1) * 32], r, c): (r, c)
                for r, c in coords[:20]}
        for job in concurrent.futures.as_completed(jobs):
            r, c = jobs[job]
            encoded, quadrant = job.result()
            im.write_raw_tile(r, c, encoded, reduced=quadrant)
        for r, c in coords[20:]:  # without reduced=: the writer decodes the tile
            full = numpy.zeros((32, 32, 3), numpy.uint8)
            part = data[r * 32:(r + 1) * 32, c * 32:(c + 1) * 32]
            full[: part.shape[0], : part.shape[1]] = part  # full-size edge tile: only the image part counts
            im.write_raw_tile(r, c, im.encode_tile(full))
    for g, e in zip(tifffile_levels(path), tifffile_levels(direct), strict=True):
        numpy.testing.assert_array_equal(g, e)


def test_pyramid_errors(tmp_path):
    with tiffio.TiffWriter(tmp_path / "e.tif") as w:
        with pytest.raises(tiffio.TiffValueError):
            w.add_image((64, 64), "uint8", tile=(16, 16), pyramid="yes")
        with pytest.raises(tiffio.TiffValueError):
            w.add_image((64, 64), "uint8", tile=(16, 16), pyramid=True, pyramid_filter="cubic")
        im = w.add_image((64, 64), "uint8", tile=(16, 16), pyramid=True)
        assert [lv.shape for lv in im.levels] == [(64, 64), (32, 32), (16, 16)]
        with pytest.raises(tiffio.TiffUsageError):
            im.levels[1].write_tile(0, 0, numpy.zeros((16, 16), numpy.uint8))
        with pytest.raises(tiffio.TiffValueError):
            im.write_raw_tile(0, 0, im.encode_tile(numpy.zeros((16, 16), numpy.uint8)),
                              reduced=numpy.zeros((16, 16), numpy.uint8))
        plain = w.add_image((64, 64), "uint8", tile=(16, 16))
        with pytest.raises(tiffio.TiffUsageError):
            plain.write_raw_tile(0, 0, b"x", reduced=numpy.zeros((8, 8), numpy.uint8))
        for r in range(4):
            for c in range(4):
                im.write_tile(r, c, numpy.full((16, 16), 10 * r + c, numpy.uint8))
                plain.write_tile(r, c, numpy.zeros((16, 16), numpy.uint8))


def test_missing_tiles_are_zeros_in_the_levels(tmp_path):
    data = make_image((64, 64), "uint8")
    path = tmp_path / "m.tif"
    order = [(r, c) for r in range(4) for c in range(4) if (r, c) != (3, 3)]
    write_pyramid(path, data, (16, 16), order, compression="deflate")
    holed = data.copy()
    holed[48:, 48:] = 0  # the missing tile is blank (zeros)
    for g, e in zip(tifffile_levels(path), ref_levels(holed, (16, 16)), strict=True):
        numpy.testing.assert_array_equal(g, e)


# --- crash and resume ---------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import random, sys
    sys.path.insert(0, {repo!r})
    import numpy
    import tiffio
    sys.path.insert(0, {tests!r})
    from writer_helpers import make_image

    path, seed = sys.argv[1], int(sys.argv[2])
    data = make_image({shape}, "uint8", seed=4)
    with tiffio.TiffWriter(path, checkpoint_every=7, checkpoint_seconds=None, fsync=False) as w:
        im = w.add_image(data.shape, "uint8", tile=(16, 16), compression="deflate", pyramid=True,
                         pyramid_budget=2000, workers=2)
        coords = [(r, c) for r in range(im.tiles_down) for c in range(im.tiles_across)]
        random.Random(seed).shuffle(coords)
        for n, (r, c) in enumerate(coords):
            im.write_tile(r, c, data[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16])
            if n == {stall}:
                # every tile given so far encoded and stored (records after the last checkpoint), then
                # the parent waits for this line and kills: the tiles on disk are known exactly
                w.flush()
                print("stalled", n, flush=True)
                sys.stdin.readline()  # wait here for the kill
""")


@pytest.mark.parametrize("seed,kill_after", [(1, 20), (2, 45), (3, 70)])
def test_crash_then_resume_equals_uninterrupted(tmp_path, seed, kill_after):
    shape = (150, 170, 3)
    data = make_image(shape, "uint8", seed=4)
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo=REPO, tests=os.path.join(REPO, "tests", "support"), shape=shape,
                                   stall=kill_after))
    path = tmp_path / "crash.tif"
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(seed)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, proc.kill)  # a hang detector only: the child never waits on time
    watchdog.start()
    try:
        assert proc.stdout.readline().split() == ["stalled", str(kill_after)]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        watchdog.cancel()
        if proc.poll() is None:  # pragma: no cover
            proc.kill()
        proc.stdout.close()
        proc.stdin.close()
    if seed == 2:  # tiffio.recover first (a valid TIFF again, levels made from what is complete), then resume
        recovered = tiffio.recover(path)
        assert recovered.pyramid_tiles_decoded > 0
        with tifffile.TiffFile(path) as tf:
            assert len(tf.pages) == 5
    with tiffio.TiffWriter(path, mode="resume") as w:
        report = w.report
        base = w.images[0]
        assert len(base.levels) == 5 and report.images == 5
        assert report.pyramid_tiles_decoded > 0  # partial parents rebuilt from stored children
        missing = base.missing_tiles()
        # written before the kill: exactly the first kill_after + 1 tiles of the child's order
        coords = [(r, c) for r in range(base.tiles_down) for c in range(base.tiles_across)]
        random.Random(seed).shuffle(coords)
        assert sorted(missing) == sorted(coords[kill_after + 1:])
        for r, c in missing:
            base.write_tile(r, c, data[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16])
    reference = tmp_path / "ref.tif"
    with tiffio.TiffWriter(reference) as w:
        im = w.add_image(shape, "uint8", tile=(16, 16), compression="deflate", pyramid=True)
        for r in range(im.tiles_down):
            for c in range(im.tiles_across):
                im.write_tile(r, c, data[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16])
    got, want = tifffile_levels(path), tifffile_levels(reference)
    assert len(got) == len(want) == 5
    for k, (g, e) in enumerate(zip(got, want)):
        numpy.testing.assert_array_equal(g, e, err_msg=f"level {k}")
    for g, e in zip(got, ref_levels(data, (16, 16))):
        numpy.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("photometric", [None, "rgb"])  # YCbCr and RGB JPEG
def test_raw_jpeg_tiles_are_decoded_like_the_reader(tmp_path, photometric):
    """write_raw_tile without reduced=: the writer decodes its own JPEG tiles exactly as tiffio's reader."""
    yy, xx = numpy.mgrid[0:100, 0:120]
    data = numpy.stack([yy * 2, xx * 2, yy + xx], -1).astype(numpy.uint8)
    path = tmp_path / "j.tif"
    with tiffio.TiffWriter(path) as w:
        im = w.add_image(data.shape, "uint8", tile=(64, 64), compression="jpeg", photometric=photometric,
                         pyramid=True)
        for r in range(2):
            for c in range(2):
                im.write_raw_tile(r, c, im.encode_tile(data[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64]))
        w.flush()
        with open(path, "rb") as fh:
            decoded = [im.decode_tile(os.pread(fh.fileno(), int(im.tiles.counts[i]), int(im.tiles.offsets[i])))
                       for i in range(4)]
    with tiffio.open(path) as tf:
        ifd = tf.ifds[0]
        for i in range(4):
            numpy.testing.assert_array_equal(decoded[i], ifd.read_segment(i).reshape(64, 64, 3))
        level1 = tf.ifds[1].asarray()
    # level 1 is the mean of the decoded level-0 tiles, JPEG-encoded again
    assert numpy.abs(level1.astype(int) - ref_reduce(tifffile.imread(path, key=0))).mean() < 2


def test_single_pass_pyramid_to_cog(tmp_path):
    """Tiles in any order -> pyramid in one pass -> tiffio.relayout to GDAL's COG layout: accepted by
    the built-in check and GDAL's validator, every level read by GDAL (overviews) and tifffile."""
    from tests.support.cog_helpers import gdal_validate
    data = make_image((700, 600, 3), "uint8")
    work, cog = tmp_path / "work.tif", tmp_path / "cog.tif"
    write_pyramid(work, data, (128, 128), orders(6, 5)["random"], compression="deflate")
    report = tiffio.relayout(work, cog, layout="cog")
    assert tiffio.check_cog(cog) == []
    expected = ref_levels(data, (128, 128))
    assert len(expected) == 4
    for k, e in enumerate(expected):
        numpy.testing.assert_array_equal(tifffile.imread(cog, key=k), e)
        numpy.testing.assert_array_equal(numpy.moveaxis(read_gdal(cog, index=k), 0, -1), e)
    assert "4 levels" in str(report)
    valid, out = gdal_validate(cog)
    assert valid, out
