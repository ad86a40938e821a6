"""``tiffio convert``, ``recover``, errors, help, Ctrl-C and the progress bar, in real subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy
import pytest
import tifffile

import tiffio
from tests.support.cli_run import ENV, run, run_json
from tests.support.paths import FIXTURES


def _rasterio_read(path) -> numpy.ndarray:
    rasterio = pytest.importorskip("rasterio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            arr = ds.read()
    return numpy.moveaxis(arr, 0, -1) if arr.shape[0] > 1 else arr[0]


def test_convert_level_region_codec_read_identically_by_tifffile_and_gdal(tmp_path):
    src = FIXTURES / "libtiff" / "zip_rgb_separate_tiles.tif"
    out1 = tmp_path / "region.tif"
    run("convert", src, out1, "--compression", "zstd", "--predictor", "horizontal", "--tile", "16", "32",
        "--region", "3", "5", "40", "50")
    expected = numpy.moveaxis(tifffile.imread(src), 0, -1)[3:43, 5:55]
    assert numpy.array_equal(tifffile.imread(out1), expected)
    assert numpy.array_equal(_rasterio_read(out1), expected)
    with tifffile.TiffFile(out1) as t:
        page = t.pages[0]
        assert (page.tilelength, page.tilewidth, page.compression, page.predictor) == (16, 32, 50000, 2)
        assert page.planarconfig == 1

    src = FIXTURES / "gdal" / "cog_jpeg_rgb.tif"  # level 1 of a JPEG COG, losslessly
    out2 = tmp_path / "level1.tif"
    run("convert", src, out2, "--level", "1", "--tile", "64", "--compression", "deflate")
    with tiffio.open(src) as tif:
        level1 = tif.levels[1].ifd.asarray()
    assert numpy.array_equal(tifffile.imread(out2), level1)
    assert numpy.array_equal(_rasterio_read(out2), level1)
    out4 = tmp_path / "level1_jpeg.tif"  # by default the source's codec: JPEG, re-encoded
    run("convert", src, out4, "--level", "1", "--tile", "64")
    with tifffile.TiffFile(out4) as t:
        assert t.pages[0].compression == 7 and t.pages[0].photometric == 6 and t.pages[0].shape == level1.shape
        decoded = t.pages[0].asarray()
    assert numpy.abs(decoded.astype(int) - level1).mean() < 3  # lossy re-encode
    with tiffio.open(out4) as tif:
        assert numpy.array_equal(tif.ifds[0].asarray(), decoded)
    # GDAL decodes YCbCr JPEG through libtiff's upsampling: equal up to rounding at sharp edges
    assert numpy.abs(_rasterio_read(out4).astype(int) - decoded).mean() < 1

    src = FIXTURES / "gdal" / "sparse_tiled_f32_nodata.tif"  # nodata kept
    out3 = tmp_path / "nodata.tif"
    run("convert", src, out3, "--compression", "deflate", "--predictor", "floatingpoint", "--tile", "32")
    assert numpy.array_equal(tifffile.imread(out3), tifffile.imread(src), equal_nan=True)
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(src) as a, rasterio.open(out3) as b:
        assert a.nodata == b.nodata == -9999

    doc = run_json("check", "--decode", "--json", out1, out2, out3, out4)
    assert [r["status"] for r in doc["files"]] == ["ok"] * 4, doc


def test_convert_region_keeps_the_georeferencing(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import Affine
    src = tmp_path / "geo.tif"
    data = numpy.arange(100 * 120, dtype="float32").reshape(100, 120)
    with rasterio.open(src, "w", driver="GTiff", width=120, height=100, count=1, dtype="float32", crs="EPSG:32633",
                       transform=Affine(10, 0, 500000, 0, -10, 4600000), nodata=-1, tiled=True, blockxsize=32,
                       blockysize=32) as ds:
        ds.write(data, 1)
    out = tmp_path / "crop.tif"
    run("convert", src, out, "--region", "20", "30", "50", "60", "--tile", "32")
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.nodata == -1
        assert ds.transform == Affine(10, 0, 500000 + 30 * 10, 0, -10, 4600000 - 20 * 10)
        assert numpy.array_equal(ds.read(1), data[20:70, 30:90])


def test_convert_errors_leave_nothing(tmp_path):
    src = FIXTURES / "gdal" / "cog_jpeg_rgb.tif"
    dst = tmp_path / "x.tif"
    proc = run("convert", src, dst, "--region", "0", "0", "1000", "10", check=2)
    assert "not inside the image" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run("convert", src, dst, "--compression", "nonsense", check=1)
    assert "unknown compression 'nonsense'" in proc.stderr and proc.stderr.count("\n") == 1
    assert os.listdir(tmp_path) == []
    proc = run("convert", src, dst, "--compression", "nonsense", "--debug", check=1)
    assert "Traceback (most recent call last)" in proc.stderr and "TiffValueError" in proc.stderr


def test_errors_are_one_line_and_help_has_examples(tmp_path):
    proc = run("info", tmp_path / "missing.tif", check=2)
    assert proc.stderr == f"tiffio info: {tmp_path / 'missing.tif'}: no such file\n"
    doc = run_json("check", "--json", tmp_path, tmp_path / "missing.tif", check=2)   # a folder, a missing file
    assert [(r["status"], [f["code"] for f in r["findings"]]) for r in doc["files"]] == [
        ("unreadable", ["unreadable"]), ("unreadable", ["unreadable"])]
    bad = FIXTURES / "malformed" / "not_a_tiff" / "png_signature.tif"
    proc = run("info", bad, check=1)
    assert proc.stderr.startswith(f"tiffio info: {bad}: not a TIFF file") and proc.stderr.count("\n") == 1
    # every command's --help, in one interpreter (argparse exits after printing each)
    commands = ("info", "dump", "check", "tiles", "convert", "merge", "recover")
    script = ("import sys\nfrom tiffio.cli import main\nfor c in sys.argv[1:]:\n"
              "    try:\n        main([c, '--help'])\n    except SystemExit as e:\n"
              "        print('=== exit', e.code, flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", script, *commands], capture_output=True, text=True, env=ENV,
                          check=True, timeout=120)
    pages = proc.stdout.split("=== exit 0\n")
    assert len(pages) == len(commands) + 1 and pages[-1] == ""
    for command, out in zip(commands, pages):
        assert out.startswith(f"usage: tiffio {command}"), out[:100]
        assert "examples:" in out and f"tiffio {command}" in out.split("examples:")[1], command
    assert "examples:" in run("--help").stdout


def _big_source(path, size: int = 1024) -> None:
    """An uncompressed gray image whose conversion to 16 x 16 tiles takes a while."""
    data = (numpy.arange(size * size, dtype=numpy.uint32) % 251).astype(numpy.uint8).reshape(size, size)
    tifffile.imwrite(path, data, tile=(256, 256))


def test_ctrl_c_removes_the_partial_output(tmp_path):
    src = tmp_path / "src.tif"
    _big_source(src, 4096)  # ~8 s of conversion (2048: ~2 s, which a loaded machine's scheduling delay can pass)
    dst = tmp_path / "out.tif"
    proc = subprocess.Popen([sys.executable, "-m", "tiffio", "convert", str(src), str(dst), "--tile", "16",
                             "--compression", "deflate"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # (a shell's background job inherits SIGINT ignored; Python then installs no KeyboardInterrupt handler)
    for _ in range(600):  # bounded: up to 60 s for the writer to start on a loaded machine
        partial = list(tmp_path.glob(".out.tif.*.partial"))  # the temporary: a hidden, unpredictable name
        if partial and partial[0].stat().st_size > 100_000:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # pragma: no cover - finished before the signal
        pytest.skip("the conversion finished before Ctrl-C")
    assert proc.returncode == 130, (proc.returncode, err)
    assert err == "tiffio convert: interrupted\n"
    assert sorted(os.listdir(tmp_path)) == ["src.tif"]


def test_recover_reports_and_repairs(tmp_path):
    path = tmp_path / "crashed.tif"
    script = f"""
import os, numpy, tiffio
w = tiffio.TiffWriter({str(path)!r}, checkpoint_every=None, checkpoint_seconds=None)
img = w.add_image((64, 64), 'uint8', tile=(16, 16), compression='deflate')
for r in range(4):
    img.write_tile(0, r, numpy.full((16, 16), r + 1, numpy.uint8))
w.checkpoint()
for r in range(4):
    img.write_tile(1, r, numpy.full((16, 16), r + 11, numpy.uint8))
w.flush()
os._exit(0)  # a crash: no close()
"""
    subprocess.run([sys.executable, "-c", script], env=ENV, check=True, timeout=120)
    doc = run_json("recover", "--json", path)
    assert doc["tiles_in_checkpoint"] == 4 and doc["tiles_recovered"] == 4
    arr = tifffile.imread(path)
    assert arr[16:32, 48:64].tolist() == numpy.full((16, 16), 14).tolist()
    proc = run("recover", FIXTURES / "gdal" / "cog_jpeg_rgb.tif", check=1)
    assert "not a file written by tiffio" in proc.stderr and proc.stderr.count("\n") == 1


def _terminal_output(pid: int, fd: int) -> str:
    """Everything the pty child wrote, once it exits (bounded: 120 s); asserts it exited 0."""
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_renders_on_a_terminal_and_disappears(tmp_path):
    """Under a pseudo-terminal the bar shows tiles/s and is erased at the end; piped, nothing is drawn."""
    pty = pytest.importorskip("pty")
    pytest.importorskip("tqdm")
    src = tmp_path / "src.tif"
    _big_source(src, 1024)
    dst = tmp_path / "out.tif"
    pid, fd = pty.fork()
    if pid == 0:  # child: stdout and stderr are the terminal
        os.environ.update(ENV)
        os.execv(sys.executable, [sys.executable, "-m", "tiffio", "convert", str(src), str(dst), "--tile", "16"])
    text = _terminal_output(pid, fd)
    assert "convert out.tif" in text and "tile/s" in text, text[-2000:]
    assert "4096/4096" in text or "%" in text
    last = text.split("\r")[-1]
    assert last.strip() == "", repr(text[-300:])  # the bar was erased
    assert numpy.array_equal(tifffile.imread(dst), tifffile.imread(src))
    proc = run("convert", src, tmp_path / "again.tif", "--tile", "16")
    assert proc.stdout == "" and proc.stderr == ""  # not a terminal: no bar


def test_relayout_and_merge_show_a_byte_progress_bar_on_a_terminal(tmp_path):
    """convert --cog (relayout: tile bytes copied) draws a byte bar under a pseudo-terminal and erases it."""
    pty = pytest.importorskip("pty")
    pytest.importorskip("tqdm")
    src = FIXTURES / "gdal" / "rgb_ycbcr_jpeg_tiled_ovr.tif"
    dst = tmp_path / "relaid.tif"
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(ENV)
        os.execv(sys.executable, [sys.executable, "-m", "tiffio", "convert", str(src), str(dst), "--cog"])
    text = _terminal_output(pid, fd)
    assert "cog relaid.tif" in text and "B/s" in text, text[-2000:]
    assert "cog layout" in text  # the report printed after the bar


def test_recover_shows_a_byte_progress_bar_on_a_terminal_only(tmp_path):
    """recover under a pseudo-terminal draws a byte bar (the scan after the checkpoint) and erases it
    before its report; with --quiet, or piped, nothing but the report is written."""
    pty = pytest.importorskip("pty")
    pytest.importorskip("tqdm")
    from tests.support.writer_helpers import crash_writer

    pristine = tmp_path / "pristine.tif"
    data = crash_writer(pristine, side=2048, tile=64, checkpoint_after=20)  # ~4 MiB of tiles to scan
    expected = data.copy()
    expected[-64:, -64:] = 0  # the torn last tile
    outputs = {}
    for mode in ("bar", "quiet", "piped"):
        path = tmp_path / f"{mode}.tif"
        shutil.copyfile(pristine, path)
        if mode == "piped":
            proc = run("recover", path)
            assert proc.stderr == ""
            outputs[mode] = proc.stdout
        else:
            pid, fd = pty.fork()
            if pid == 0:
                os.environ.update(ENV)
                os.execv(sys.executable, [sys.executable, "-m", "tiffio", "recover", str(path)]
                         + (["--quiet"] if mode == "quiet" else []))
            outputs[mode] = _terminal_output(pid, fd)
        assert numpy.array_equal(tifffile.imread(path), expected), mode
        assert f"{mode}.tif: checkpoint at " in outputs[mode] and "1003 recovered after it" in outputs[mode]
    text = outputs["bar"]
    assert "recover bar.tif" in text and "B/s" in text, text[-2000:]
    assert "/4.14M" in text  # the total reached the bar: 1,003 records of 28 + 4,096 bytes and a torn half one
    pieces = text.split("\r")
    at = next(k for k, piece in enumerate(pieces) if "checkpoint at" in piece)
    assert pieces[at - 1].strip() == "" and "recover bar.tif" not in "".join(pieces[at:])  # erased first
    assert outputs["quiet"].replace("\r\n", "\n") == outputs["piped"].replace("piped.tif", "quiet.tif")
    assert "B/s" not in outputs["quiet"] and "\r" not in outputs["quiet"].replace("\r\n", "")


def test_convert_cog_relayout_and_reencode_pass_gdal_validator(tmp_path):
    from tests.support.cog_helpers import gdal_validate, have_validator
    src = FIXTURES / "gdal" / "rgb_ycbcr_jpeg_tiled_ovr.tif"     # tiled, 2 overviews, not a COG
    relaid = tmp_path / "relaid.tif"
    proc = run("convert", src, relaid, "--cog")                  # no re-encoding asked: relayout
    assert "cog layout" in proc.stdout and "3 levels" in proc.stdout
    planar = FIXTURES / "libtiff" / "zip_rgb_separate_tiles.tif"
    reencoded = tmp_path / "reencoded.tif"
    run("convert", planar, reencoded, "--cog", "--tile", "16", "--compression", "zstd")
    assert sorted(os.listdir(tmp_path)) == ["reencoded.tif", "relaid.tif"]  # no temporary left
    with tiffio.open(src) as a, tiffio.open(relaid) as b:           # raw tiles copied: identical bytes
        for la, lb in zip(a.levels, b.levels):
            assert la.shape == lb.shape
            assert all(la.ifd.read_segment_bytes(i) == lb.ifd.read_segment_bytes(i)
                       for i in range(la.ifd.segment_count))
    assert numpy.array_equal(tifffile.imread(relaid), tifffile.imread(src))
    expected = numpy.moveaxis(tifffile.imread(planar), 0, -1)
    assert numpy.array_equal(tifffile.imread(reencoded), expected)
    assert numpy.array_equal(_rasterio_read(reencoded), expected)
    doc = run_json("check", "--cog", "--json", relaid, reencoded, src, check=1)
    assert [r["status"] for r in doc["files"]] == ["ok", "ok", "problems"]
    assert {f["code"] for f in doc["files"][2]["findings"]} == {"cog"}
    if have_validator():
        for path in (relaid, reencoded):
            valid, out = gdal_validate(path)
            assert valid, out
        assert not gdal_validate(src)[0]


def test_convert_pyramid_in_one_pass_read_by_tifffile_and_gdal(tmp_path):
    """--pyramid: reduced levels down to one tile, in the main chain (COG-able) or as SubIFDs."""
    rasterio = pytest.importorskip("rasterio")
    from tests.support.cog_helpers import gdal_validate, have_validator
    src = tmp_path / "src.tif"
    _big_source(src, 1024)
    data = tifffile.imread(src)
    main, subifds, cog = tmp_path / "main.tif", tmp_path / "subifds.tif", tmp_path / "cog.tif"
    run("convert", src, main, "--pyramid", "--pyramid-filter", "nearest", "--tile", "128", "--compression", "zstd")
    run("convert", src, subifds, "--pyramid", "subifds", "--tile", "128")
    run("convert", src, cog, "--pyramid", "--cog", "--tile", "128", "--compression", "deflate")
    with tifffile.TiffFile(main) as t:
        levels = [p.asarray() for p in t.pages]
    assert [lv.shape for lv in levels] == [(1024 >> k, 1024 >> k) for k in range(4)]   # down to one tile
    for k, lv in enumerate(levels):
        assert numpy.array_equal(lv, data[:: 2**k, :: 2**k])                        # nearest: [::2, ::2]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(main, overview_level=k - 1) if k else rasterio.open(main) as ds:
                assert numpy.array_equal(ds.read(1), lv)
    with tifffile.TiffFile(subifds) as t:
        assert len(t.pages) == 1 and [p.shape for p in t.pages[0].pages] == [(512, 512), (256, 256), (128, 128)]
        mean1 = t.pages[0].pages[0].asarray()
    with tiffio.open(cog) as a:
        assert [lv.shape for lv in a.levels] == [(1024 >> k, 1024 >> k) for k in range(4)]
        assert numpy.array_equal(a.levels[0].ifd.asarray(), data)
        assert numpy.array_equal(a.levels[1].ifd.asarray(), mean1)                  # the same mean filter
    assert run_json("check", "--cog", "--json", cog)["files"][0]["status"] == "ok"
    if have_validator():
        valid, out = gdal_validate(cog)
        assert valid, out


def test_merge_shards_with_a_report(tmp_path):
    from tests.support.scale_workers import TILE, level_arrays, write_shard
    plan = tiffio.Plan.create((200, 170), "uint8", workers=2, levels=2, tile=(TILE, TILE), compression="deflate")
    shards = [write_shard(plan, tmp_path / f"shard{w}.tif", w) for w in range(2)]
    doc = run_json("merge", "--json", "--cog", tmp_path / "out.tif", *shards)
    assert doc["layout"] == "cog" and doc["levels"] == 2 and doc["duplicates"] == []
    with tiffio.open(tmp_path / "out.tif") as tif:
        for level, expected in zip(tif.levels, level_arrays(plan)):
            assert numpy.array_equal(level.ifd.asarray(), expected)
    assert run_json("check", "--cog", "--json", tmp_path / "out.tif")["files"][0]["status"] == "ok"
    proc = run("merge", tmp_path / "half.tif", shards[0], check=1)   # tiles of worker 1 missing
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "half.tif").exists()
    proc = run("merge", "--missing", "sparse", tmp_path / "half.tif", shards[0])
    assert "half.tif: plain layout" in proc.stdout
