"""``tiffio check``: one expected finding per failure mode of fixtures/malformed, nothing on clean files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli_run import run, run_json
from tests.support.paths import FIXTURES

#: failure mode (folder of fixtures/malformed) -> the finding code every file in it must get
EXPECTED = {
    "bits_per_sample_differ": "unsupported",
    "byte_count_wrong": "byte-count",
    "codec_shape_impossible": "codec-shape",
    "corrupt_segment": "corrupt-segment",
    "declared_strips_unbacked": "strile-count",
    "deflate_short_stream": "corrupt-segment",
    "deflate_trailing_bytes": "trailing-bytes",
    "ifd_chain_cycle": "ifd-cycle",
    "image_stream_too_large": "corrupt-segment",
    "jpeg_stream_shape_mismatch": "jpeg-stream",
    "limit_exceeded": "limit",
    "lzw_corrupt_stream": "corrupt-segment",
    "lzw_truncated_strip": "corrupt-segment",
    "missing_required_tag": "missing-tag",
    "nonnumeric_tag_value": "tag-value",
    "not_a_tiff": "not-a-tiff",
    "offset_past_end": "offset-outside-file",
    "oom_reproducer": "offset-outside-file",
    "predictor_unsupported": "unsupported",
    "sparse_huge_segment": "sparse-segments",
    "strile_count_mismatch": "strile-count",
    "subifd_cycle": "ifd-cycle",
    "tile_depth_exceeds_image": "tile-depth",
    "tile_not_multiple_of_16": "tile-size",
    "truncated": "offset-outside-file",
    "unsupported_feature": "unsupported",
    "zero_dimension": "geometry",
}
#: files whose defect is another mode's (the folder names how they were found, not what they hold)
OVERRIDES = {
    # StripOffsets declares 8e18 bytes past the end: the reader drops it, so it is missing
    "strile_count_mismatch/gdal_huge-number-strips.tif": "missing-tag",
    # StripOffsets/StripByteCounts values would pass the end of the file
    "declared_strips_unbacked/strips_16m_counts_past_eof.tif": "offset-outside-file",
    # Compression of field type 0 and a RATIONAL RowsPerStrip of 15 values
    "zero_dimension/image-tiff_divide_by_zero_000035.tif": "tag-value",
    # ImageWidth stored as a DOUBLE (field type 12) of value 0: the type is the violation named
    "zero_dimension/fuzz_jpeg_strips_width_0.tif": "tag-value",
}
#: files that cannot be opened at all (status "unreadable", exit status 2)
UNREADABLE = {"not_a_tiff/bigtiff_bad_offset_size.tif", "not_a_tiff/png_signature.tif",
              "not_a_tiff/tifftools_bad_header1.tif", "limit_exceeded/too_many_entries.tif",
              "offset_past_end/first_ifd_past_end.tif", "truncated/header_only.tif"}

MALFORMED = sorted((FIXTURES / "malformed").glob("*/*.tif"))
CLEAN = sorted(p for d in ("libtiff", "gdal", "libvips", "tifffile") for p in (FIXTURES / d).glob("*.tif"))


def _rel(path: Path) -> str:
    return path.relative_to(FIXTURES / "malformed").as_posix()


@pytest.fixture(scope="module")
def malformed_reports() -> dict[str, dict]:
    doc = run_json("check", "--decode", "--json", *MALFORMED, check=None)
    assert doc["schema"] == "tiffio.check/1"
    return {_rel(Path(r["file"])): r for r in doc["files"]}


def test_every_mode_has_an_expectation():
    modes = {p.parent.name for p in MALFORMED}
    assert modes == set(EXPECTED), modes ^ set(EXPECTED)


@pytest.mark.parametrize("path", MALFORMED, ids=_rel)
def test_check_finds_the_failure_mode(path, malformed_reports):
    report = malformed_reports[_rel(path)]
    expected = OVERRIDES.get(_rel(path), EXPECTED[path.parent.name])
    codes = [f["code"] for f in report["findings"]]
    assert expected in codes, (expected, report["findings"])
    for f in report["findings"]:
        assert f["severity"] in ("error", "warning", "info")
        assert f["message"]
    if _rel(path) in UNREADABLE:
        assert report["status"] == "unreadable"
    elif expected != "sparse-segments":
        assert report["status"] == "problems", report
    else:
        assert report["status"] == "ok", report  # sparse segments are valid (info)


def test_check_exit_status_and_text():
    ok = FIXTURES / "gdal" / "cog_jpeg_rgb.tif"
    bad = FIXTURES / "malformed" / "tile_not_multiple_of_16" / "tiles_12x20.tif"
    unreadable = FIXTURES / "malformed" / "not_a_tiff" / "png_signature.tif"
    assert run("check", ok).stdout == f"{ok}: ok\n"
    proc = run("check", ok, bad, check=1)
    assert "tile-size" in proc.stdout and "tile size 20 x 12 is not a multiple of 16" in proc.stdout
    proc = run("check", ok, bad, unreadable, check=2)
    assert f"{unreadable}: unreadable" in proc.stdout and "not-a-tiff" in proc.stdout


def test_check_reports_nothing_on_clean_files():
    """Files written by libtiff, GDAL, libvips and tifffile: no error or warning, every segment decodes."""
    doc = run_json("check", "--decode", "--json", *CLEAN)
    for report in doc["files"]:
        problems = [f for f in report["findings"] if f["severity"] != "info"]
        assert report["status"] == "ok" and not problems, report
        for f in report["findings"]:
            assert f["code"] in ("sparse-segments", "bigtiff-not-needed", "shared-segments"), f
    sparse = {Path(r["file"]).name for r in doc["files"] if any(f["code"] == "sparse-segments" for f in r["findings"])}
    assert sparse == {"sparse_strips_rgb_band.tif", "sparse_tiled_f32_nodata.tif", "sparse_tiled_u8.tif"}


def test_check_decode_names_the_corrupt_tiles(tmp_path):
    """--decode decodes every segment (in a pool, in batches) and names each corrupt one."""
    import numpy
    import tifffile

    import tiffio
    path = tmp_path / "tiles.tif"
    data = numpy.random.default_rng(1).integers(0, 255, (16 * 30, 16 * 30), dtype=numpy.uint8)
    tifffile.imwrite(path, data, tile=(16, 16), compression="zlib")  # 900 tiles
    raw = bytearray(path.read_bytes())
    with tiffio.open(path) as tif:
        where = tif.ifds[0].where.removeprefix(f"{tif.name}: ")  # a report names its file once, not per finding
        for index in (3, 400, 899):
            offset, count = tif.ifds[0].segment_location(index)
            raw[offset: offset + count] = b"\xff" * count
    path.write_bytes(raw)
    report = run_json("check", "--decode", "--json", path, check=1)["files"][0]
    corrupt = [f["where"] for f in report["findings"] if f["code"] == "corrupt-segment"]
    assert corrupt == [f"{where}: segment {i}" for i in (3, 400, 899)]


def _patched_entry(tmp_path, name: str, code: int, new_code: int | None = None, value: bytes | None = None) -> Path:
    """fixtures/gdal/cog_jpeg_rgb.tif (classic, little-endian) with IFD 0's entry ``code`` changed."""
    import struct

    import tiffio
    src = FIXTURES / "gdal" / "cog_jpeg_rgb.tif"
    raw = bytearray(src.read_bytes())
    with tiffio.open(src) as tif:
        first = tif.ifds[0].offset
    (count,) = struct.unpack_from("<H", raw, first)
    for k in range(count):
        entry = first + 2 + 12 * k
        if struct.unpack_from("<H", raw, entry)[0] == code:
            if new_code is not None:
                struct.pack_into("<H", raw, entry, new_code)
            if value is not None:
                raw[entry + 8: entry + 12] = value
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def test_check_jpeg_tables_and_subsampling_against_the_streams(tmp_path):
    no_tables = _patched_entry(tmp_path, "no_tables.tif", 347, new_code=348)          # JPEGTables gone
    subsampling = _patched_entry(tmp_path, "sub11.tif", 530, value=b"\x01\x00\x01\x00")  # says 1x1, streams 2x2
    doc = run_json("check", "--json", no_tables, subsampling, check=1)
    first, second = ({(f["code"], f["severity"]): f["message"] for f in r["findings"]} for r in doc["files"])
    # GDAL's streams carry their Huffman tables; the quantization tables were only in JPEGTables
    assert first[("jpeg-tables", "error")] == "no quantization (DQT) tables in the stream or in JPEGTables"
    assert second[("jpeg-stream", "warning")] == ("YCbCrSubSampling is 1x1 but the JPEG stream samples Y at 2x2 "
                                                  "and chroma at 1x1")


@pytest.mark.parametrize("sof", [0xC5, 0xCF])
def test_check_reads_every_frame_marker_of_table_b1(tmp_path, sof):
    """SOF5-SOF7 and SOF13-SOF15 are frame headers (differential frames of hierarchical JPEG, T.81
    Table B.1). check's own marker walk used to know only SOF0-3 and SOF9-11 and reported "no
    JPEG frame header" for them, where the decoder's probe saw the frame; the one walk of
    tiffio.format.jpeg finds it, and check says what is wrong with it."""
    import numpy

    import tiffio
    path = tmp_path / "hierarchical.tif"
    with tiffio.TiffWriter(path) as w:
        im = w.add_image((16, 16), "uint8", tile=(16, 16), compression="jpeg")
        im.write_tile(0, 0, numpy.arange(256, dtype=numpy.uint8).reshape(16, 16))
    raw = bytearray(path.read_bytes())
    with tiffio.open(path) as tif:
        offset, count = tif.ifds[0].segment_location(0)
        where = tif.ifds[0].where.removeprefix(f"{path}: ")   # a report names its file once, not per finding
    k = raw.index(b"\xff\xc0", offset, offset + count)
    raw[k + 1] = sof
    path.write_bytes(raw)
    findings = run_json("check", "--json", path, check=1)["files"][0]["findings"]
    assert [(f["code"], f["severity"], f["where"], f["message"]) for f in findings] == [
        ("jpeg-stream", "error", f"{where}: segment 0",
         (f"the JPEG frame is SOF{sof - 0xC0}, a differential frame of hierarchical JPEG: TIFF does not allow "
          "hierarchical JPEG and libjpeg cannot decode it"))]


def test_check_overlapping_shared_and_bigtiff(tmp_path):
    import numpy

    from tests.support.tiffbuild import Builder

    def strips(path, offsets_of, big=False):
        b = Builder("<", big)
        data = b.blob(numpy.arange(64, dtype=numpy.uint8).tobytes())
        offsets = offsets_of(data)
        entries = [(256, 3, 8), (257, 3, 8), (258, 3, 8), (259, 3, 1), (262, 3, 1), (277, 3, 1), (278, 3, 2),
                   (273, 4, offsets), (279, 4, [16] * 4)]
        path.write_bytes(b.build(b.ifd(entries)))
        return path

    overlapping = strips(tmp_path / "overlap.tif", lambda d: [d, d + 8, d + 32, d + 48])
    shared = strips(tmp_path / "shared.tif", lambda d: [d, d, d + 32, d + 48])
    clean_big = strips(tmp_path / "big.tif", lambda d: [d, d + 16, d + 32, d + 48], big=True)
    doc = run_json("check", "--json", overlapping, shared, clean_big, check=1)
    (a, b, c) = ({f["code"]: f for f in r["findings"]} for r in doc["files"])
    assert a["overlapping-segments"]["severity"] == "error"
    assert a["overlapping-segments"]["where"].endswith("segment 1")
    assert set(b) == {"shared-segments"} and "1 segments share" in b["shared-segments"]["message"]
    assert set(c) == {"bigtiff-not-needed"}
    assert [r["status"] for r in doc["files"]] == ["problems", "ok", "ok"]
