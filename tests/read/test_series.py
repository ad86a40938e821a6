"""TiffFile.series against tifffile's series (issue 15).

* files tifffile writes with each of its series kinds (ImageJ hyperstacks, shaped
  JSON, OME-XML with SubIFD pyramids, plain stacks): equal shape, axes, dtype, levels
  and pixels;
* every fixture and corpus file where tifffile finds series: equal shape, axes, dtype
  and level shapes, except the files listed in ``differs`` below (tifffile reports a
  series for a page without a dtype or size, which it cannot decode either);
* a contiguous ImageJ stack is read without parsing its other IFDs: the metadata bytes
  read to open it and read one plane do not grow with the page count.
"""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path

import numpy
import pytest

import tiffio
from tests.support.paths import CORPUS, FIXTURES

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")

RNG = numpy.random.default_rng(15)


def rand(shape, dtype="uint16"):
    return RNG.integers(0, 200, shape).astype(dtype)


def _tifffile_series(path):
    with tifffile.TiffFile(path) as t:
        return [(s.kind, s.shape, s.axes, s.dtype, [(lv.shape, lv.axes) for lv in s.levels], s.asarray())
                for s in t.series]


def _write_cases(d: Path) -> list[Path]:
    cases = {
        "ij_tzcyx": lambda p: tifffile.imwrite(p, rand((3, 4, 2, 32, 40)), imagej=True, metadata={
            "axes": "TZCYX", "spacing": 2.5, "unit": "um", "finterval": 0.5}),
        "ij_zyx_u8": lambda p: tifffile.imwrite(p, rand((5, 16, 24), "uint8"), imagej=True, metadata={"axes": "ZYX"}),
        "ij_rgb": lambda p: tifffile.imwrite(p, rand((3, 16, 24, 3), "uint8"), imagej=True,
                                             metadata={"axes": "TYXS"}, photometric="rgb"),
        "ij_f32": lambda p: tifffile.imwrite(p, rand((3, 16, 24), "float32"), imagej=True,
                                             metadata={"axes": "CYX", "mode": "composite"}),
        "ij_yx": lambda p: tifffile.imwrite(p, rand((16, 24)), imagej=True),
        "ij_zlib": lambda p: tifffile.imwrite(p, rand((4, 16, 24)), imagej=True, compression="zlib",
                                              metadata={"axes": "TYX"}),
        "shaped_4d": lambda p: tifffile.imwrite(p, rand((3, 2, 16, 24)), metadata={"axes": "TZYX"}),
        "shaped_noaxes": lambda p: tifffile.imwrite(p, rand((2, 3, 16, 24)), photometric="minisblack"),
        "shaped_tiled": lambda p: tifffile.imwrite(p, rand((4, 32, 48)), tile=(16, 16), compression="zlib",
                                                   photometric="minisblack", metadata={"axes": "ZYX"}),
        "shaped_contig": lambda p: tifffile.imwrite(p, rand((50, 8, 8)), metadata={"axes": "TYX"}, contiguous=True),
        "ome_tczyx": lambda p: tifffile.imwrite(p, rand((2, 3, 4, 16, 24)), ome=True, metadata={
            "axes": "TCZYX", "PhysicalSizeX": 0.5, "Channel": {"Name": ["a", "b", "c"]}}),
        "ome_rgb": lambda p: tifffile.imwrite(p, rand((16, 24, 3), "uint8"), ome=True, photometric="rgb"),
        "ome_planar": lambda p: tifffile.imwrite(p, rand((3, 16, 24), "uint8"), ome=True, photometric="rgb",
                                                 planarconfig="separate"),
        "plain_stack": lambda p: tifffile.imwrite(p, rand((10, 16, 24)), metadata=None),
        "plain_small": lambda p: tifffile.imwrite(p, rand((3, 16, 24)), metadata=None, photometric="minisblack"),
    }
    paths = []
    for name, make in cases.items():
        path = d / f"{name}.tif"
        make(path)
        paths.append(path)
    with tifffile.TiffWriter(d / "shaped_multi.tif") as w:
        w.write(rand((3, 16, 24)), metadata={"axes": "QYX"}, photometric="minisblack")
        w.write(rand((8, 10, 3), "uint8"), photometric="rgb")
        w.write(rand((2, 2, 8, 8), "float32"), metadata={"axes": "CZYX"})
    with tifffile.TiffWriter(d / "shaped_pyramid.tif") as w:
        w.write(rand((2, 64, 64)), subifds=2, tile=(16, 16), metadata={"axes": "CYX"})
        w.write(rand((2, 32, 32)), subfiletype=1, tile=(16, 16))
        w.write(rand((2, 16, 16)), subfiletype=1, tile=(16, 16))
    with tifffile.TiffWriter(d / "ome_multi.tif", ome=True) as w:
        w.write(rand((2, 16, 24)), metadata={"axes": "ZYX"})
        w.write(rand((3, 8, 8), "uint8"), metadata={"axes": "CYX"})
    with tifffile.TiffWriter(d / "ome_pyramid.tif", ome=True) as w:
        data = rand((2, 64, 64))
        w.write(data, subifds=2, tile=(16, 16), metadata={"axes": "CYX"})
        w.write(data[:, ::2, ::2], subfiletype=1, tile=(16, 16))
        w.write(data[:, ::4, ::4], subfiletype=1, tile=(16, 16))
    with tifffile.TiffWriter(d / "generic_pyramid.tif") as w:
        data = rand((64, 96), "uint8")
        w.write(data, tile=(16, 16), metadata=None)
        w.write(data[::2, ::2], tile=(16, 16), subfiletype=1, metadata=None)
        w.write(rand((10, 10), "float32"), metadata=None)
    return [*paths, d / "shaped_multi.tif", d / "shaped_pyramid.tif", d / "ome_multi.tif", d / "ome_pyramid.tif",
            d / "generic_pyramid.tif"]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return _write_cases(tmp_path_factory.mktemp("series"))


def test_series_of_tifffile_written_files(written):
    kinds = set()
    for path in written:
        expected = _tifffile_series(path)
        with tiffio.open(path) as tif:
            got = tif.series
            assert len(got) == len(expected), path.name
            for s, (kind, shape, axes, dtype, levels, array) in zip(got, expected):
                assert (s.kind, s.shape, s.axes, s.dtype) == (kind, shape, axes, dtype), path.name
                assert [(lv.shape, lv.axes) for lv in s.levels] == levels, path.name
                result = s.asarray(workers=2)
                assert result.shape == shape and result.dtype == dtype
                numpy.testing.assert_array_equal(result, array, err_msg=path.name)
                for lv_index, lv in enumerate(s.levels[1:], 1):
                    with tifffile.TiffFile(path) as t:
                        want = t.series[s.index].levels[lv_index].asarray()
                    numpy.testing.assert_array_equal(lv.asarray(), want)
                kinds.add(kind)
    assert kinds == {"imagej", "shaped", "ome", "uniform", "generic"}


def test_contiguous_flags(written):
    by_name = {p.stem: p for p in written}
    with tiffio.open(by_name["ij_tzcyx"]) as tif:
        s = tif.series[0]
        assert s.kind == "imagej" and s.is_contiguous and s.npages == 24
    with tiffio.open(by_name["ij_zlib"]) as tif:
        s = tif.series[0]
        assert not s.is_contiguous and len(s.ifds) == 4
    with tiffio.open(by_name["shaped_contig"]) as tif:
        s = tif.series[0]
        assert s.is_contiguous and s.npages == 50


def test_asarray_key_and_read_region(written):
    path = next(p for p in written if p.stem == "ij_tzcyx")
    full = tifffile.imread(path)
    planes = full.reshape(24, 32, 40)
    with tiffio.open(path) as tif:
        s = tif.series[0]
        numpy.testing.assert_array_equal(s.asarray(key=5), planes[5])
        numpy.testing.assert_array_equal(s.asarray(key=-1), planes[23])
        numpy.testing.assert_array_equal(s.asarray(key=slice(2, 8, 3)), planes[2:8:3])
        numpy.testing.assert_array_equal(s.asarray(key=[7, 1]), planes[[7, 1]])
        out = numpy.zeros(s.shape, s.dtype)
        assert s.asarray(out=out) is out
        numpy.testing.assert_array_equal(out, full)
        region = s.read_region(3, 5, 10, 20, workers=2)
        numpy.testing.assert_array_equal(region, full[..., 3:13, 5:25])
        numpy.testing.assert_array_equal(s.read_region(3, 5, 10, 20, key=4), planes[4, 3:13, 5:25])
        with pytest.raises(tiffio.TiffIndexError):
            s.asarray(key=24)
        with pytest.raises(tiffio.TiffValueError):
            s.asarray(out=numpy.zeros((2, 2), s.dtype))
    # a compressed (walked) stack reads regions through its IFDs
    path = next(p for p in written if p.stem == "shaped_tiled")
    full = tifffile.imread(path)
    with tiffio.open(path) as tif:
        numpy.testing.assert_array_equal(tif.series[0].read_region(7, 9, 20, 30), full[:, 7:27, 9:39])


def test_contiguous_stack_reads_independent_of_page_count(tmp_path):
    """Open + read one plane of an ImageJ stack: the same metadata bytes for 1,000 and 4,000 pages."""
    figures = []
    for pages in (1000, 4000):
        path = tmp_path / f"stack{pages}.tif"
        data = numpy.arange(pages * 16 * 16, dtype="uint16").reshape(pages, 16, 16)
        tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX"})
        with tiffio.open(path) as tif:
            s = tif.series[0]
            plane = s.asarray(key=pages // 2)
            numpy.testing.assert_array_equal(plane, data[pages // 2])
            figures.append((tif.context.metadata_bytes, len(tif.ifds._items)))
    assert figures[0] == figures[1]
    assert figures[1][1] == 1  # only IFD 0 parsed


def test_imagej_stack_cut_short_is_not_read_past_the_end(tmp_path):
    """The description promises 4 planes, the file holds 2: like tifffile, no ImageJ series
    (the first page alone), and nothing is read past the end of the file."""
    path = tmp_path / "short.tif"
    data = numpy.arange(4 * 16 * 16, dtype="uint16").reshape(4, 16, 16)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX"})
    with tiffio.open(path) as tif:
        offset = int(tif.series[0].keyframe.segment_offsets[0])
    cut = tmp_path / "cut.tif"
    cut.write_bytes(path.read_bytes()[: offset + 2 * 512])
    with tifffile.TiffFile(cut) as t:
        expected = [(s.kind, s.shape, s.axes) for s in t.series]
    with pytest.warns(tiffio.TiffFormatWarning), tiffio.open(cut, strict=False) as tif:
        got = [(s.kind, s.shape, s.axes) for s in tif.series]
        numpy.testing.assert_array_equal(tif.series[0].asarray(), data[0])
    assert got == expected == [("generic", (16, 16), "YX")]


def test_contiguous_shaped_stack_is_not_walked(tmp_path):
    """A shaped (tifffile JSON) contiguous stack: its last IFD is found from the IFD stride and
    ends the chain, so no other IFD is parsed whatever the page count; a second series after a
    contiguous one is still found."""
    parsed = []
    for pages in (100, 3000):
        path = tmp_path / f"shaped{pages}.tif"
        data = numpy.arange(pages * 64, dtype="uint16").reshape(pages, 8, 8)
        tifffile.imwrite(path, data, metadata={"axes": "TYX"}, contiguous=True)
        with tiffio.open(path) as tif:
            (s,) = tif.series
            assert (s.kind, s.shape, s.axes, s.is_contiguous) == ("shaped", (pages, 8, 8), "TYX", True)
            numpy.testing.assert_array_equal(s.asarray(key=pages - 1), data[-1])
            parsed.append(len(tif.ifds._items))
    assert parsed == [1, 1]
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as w:
        w.write(numpy.zeros((5, 8, 8), "uint16"), metadata={"axes": "TYX"}, contiguous=True)
        w.write(numpy.ones((3, 4, 4), "uint8"), metadata={"axes": "ZYX"}, contiguous=True)
    with tiffio.open(path) as tif, tifffile.TiffFile(path) as t:
        assert [(x.shape, x.axes) for x in tif.series] == [(x.shape, x.axes) for x in t.series] == \
            [((5, 8, 8), "TYX"), ((3, 4, 4), "ZYX")]


# --- fixtures and corpus --------------------------------------------------------------------
def _files():
    paths = sorted(p for p in FIXTURES.rglob("*.tif*") if "malformed" not in p.parts)
    manifest = CORPUS / "manifest.tsv"
    if manifest.exists():
        paths += [CORPUS / r["path"] for r in csv.DictReader(manifest.open(), delimiter="\t")]
    return paths


def _decodable(t) -> bool:
    """tifffile series whose pages have a dtype and a non-empty shape (it reports others
    with dtype float64 and cannot decode them)."""
    for s in t.series:
        if s.keyframe.dtype is None or not s.shape or 0 in s.shape:
            return False
    return True


#: decodable files where tiffio's series differ from tifffile's, with the reason
KNOWN_DIFFERENCES = {
    # TileWidth without TileLength: tiffio's reader refuses the page's geometry
    # (TiffFormatError); tifffile reads it as strips
    "Pillow/Tests/images/crash-63b1dffefc8c075ddc606c0a2f5fdc15ece78863.tif": "TileLength missing",
    # one of two SubIFD offsets is outside the file: IFD.subifds raises TruncatedError, so the
    # generic series skips both SubIFDs of that page; tifffile skips only the bad one
    "tifftools/tests/data/bad_subifd_offset.tif": "SubIFD offset outside the file",
}


@pytest.mark.corpus
def test_series_equal_tifffile_on_fixtures_and_corpus():
    checked = 0
    differs = []
    unexpected = []
    logging.disable(logging.CRITICAL)
    try:
        for path in _files():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    with tifffile.TiffFile(path) as t:
                        if not t.series:
                            continue
                        decodable = _decodable(t)
                        expected = [(s.shape, s.axes, s.dtype, [lv.shape for lv in s.levels]) for s in t.series]
                except Exception:
                    continue
                try:
                    with tiffio.open(path, strict=False) as tif:
                        got = [(s.shape, s.axes, s.dtype, [lv.shape for lv in s.levels]) for s in tif.series]
                except tiffio.TiffError as exc:
                    got = exc
            if got != expected:
                differs.append(path)
                known = any(str(path).endswith(name) for name in KNOWN_DIFFERENCES)
                if decodable and not known:
                    unexpected.append(f"{path}: tifffile {expected}, tiffio {got}")
            else:
                checked += 1
    finally:
        logging.disable(logging.NOTSET)
    assert not unexpected, "\n".join(unexpected)
    assert checked >= 150
    # the differences are all files tifffile cannot decode either (no dtype or no size)
    assert len(differs) <= 45


def test_hostile_ome_sizes_hit_a_limit(tmp_path):
    """OME-XML promising 10**11 planes raises LimitExceededError instead of allocating."""
    path = tmp_path / "ome.tif"
    tifffile.imwrite(path, numpy.zeros((2, 8, 8), "uint8"), ome=True, metadata={"axes": "ZYX"})
    raw = path.read_bytes()
    old, new = b'SizeT="1"><Channel ID="Channel:0:0"', b'SizeT="99999999999"><Channel ID="C"'
    assert len(old) == len(new) and old in raw  # same length: every offset in the file stays valid
    forged = raw.replace(old, new, 1)
    path.write_bytes(forged)
    with tiffio.open(path) as tif, pytest.raises(tiffio.LimitExceededError, match="max_ifds"):
        tif.series  # noqa: B018


def test_multifile_ome_series(tmp_path):
    """An OME image whose planes live in two files (TiffData with UUID + FileName): the
    series spans both files, as tifffile's does."""
    ua, ub = "urn:uuid:00000000-0000-0000-0000-00000000000a", "urn:uuid:00000000-0000-0000-0000-00000000000b"
    planes = numpy.arange(2 * 8 * 12, dtype="uint16").reshape(2, 8, 12)
    xml = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
           f'UUID="{ua}"><Image ID="Image:0" Name="two"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" '
           f'SizeX="12" SizeY="8" SizeZ="2" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
           f'<TiffData FirstZ="0" IFD="0" PlaneCount="1"><UUID FileName="a.ome.tif">{ua}</UUID></TiffData>'
           f'<TiffData FirstZ="1" IFD="0" PlaneCount="1"><UUID FileName="b.ome.tif">{ub}</UUID></TiffData>'
           f'</Pixels></Image></OME>')
    tifffile.imwrite(tmp_path / "a.ome.tif", planes[0], description=xml, metadata=None)
    tifffile.imwrite(tmp_path / "b.ome.tif", planes[1], description=xml.replace(f'UUID="{ua}"', f'UUID="{ub}"', 1),
                     metadata=None)
    with tifffile.TiffFile(tmp_path / "a.ome.tif") as t:
        want = (t.series[0].kind, t.series[0].shape, t.series[0].axes)
        numpy.testing.assert_array_equal(t.series[0].asarray(), planes)
    with tiffio.open(tmp_path / "a.ome.tif") as tif:
        s = tif.series[0]
        assert (s.kind, s.shape, s.axes) == want == ("ome", (2, 8, 12), "ZYX")
        numpy.testing.assert_array_equal(s.asarray(workers=2), planes)
        member = s.ifds[1]._tiff
        assert member is not tif and not member.closed
    assert member.closed  # closing the root file closes the member files it opened
    (tmp_path / "b.ome.tif").unlink()  # a missing member file: no OME series (tifffile zero-fills)
    with tiffio.open(tmp_path / "a.ome.tif") as tif:
        assert tif.series[0].kind != "ome"
