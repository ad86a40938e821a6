"""TiffStore, FileSequenceStore and tiffio.dask over every series of a file, against tifffile:
stacks, hyperstacks, OME-TIFF, several series, pyramids of stacks, key= selections, squeeze,
named dimensions, the group's listing of what the file holds, and tifffile's sequence options."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy
import pytest

zarr = pytest.importorskip("zarr")
tifffile = pytest.importorskip("tifffile")
da = pytest.importorskip("dask.array")

import tiffio  # noqa: E402
import tiffio.dask as tdask  # noqa: E402
from tests.support.paths import FIXTURES  # noqa: E402
from tests.support.tiffbuild import Builder  # noqa: E402
from tiffio.zarr import FileSequenceStore, TiffStore  # noqa: E402

pytestmark = pytest.mark.crossval

RNG = numpy.random.default_rng(23)


def rand(shape, dtype="uint16"):
    return RNG.integers(0, 60000 if dtype == "uint16" else 250, shape).astype(dtype)


def _theirs(store) -> numpy.ndarray:
    fmt = 3 if "zarr.json" in store._store else 2  # tifffile < 2026.5 serves zarr v2 metadata
    return zarr.open_array(store, mode="r", zarr_format=fmt)[:]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("series")
    out = {}

    def add(name, make):
        out[name] = d / f"{name}.tif"
        make(out[name])

    add("stack", lambda p: tifffile.imwrite(p, rand((40, 64, 80)), metadata=None))           # uniform pages
    add("stack_shaped", lambda p: tifffile.imwrite(p, rand((12, 64, 80)), contiguous=True))  # contiguous, shaped
    add("stack_tiled", lambda p: tifffile.imwrite(p, rand((6, 64, 80)), tile=(32, 32), compression="zlib",
                                                  photometric="minisblack", metadata={"axes": "ZYX"}))
    add("hyper", lambda p: tifffile.imwrite(p, rand((4, 3, 64, 80)), imagej=True, metadata={"axes": "TCYX"}))
    add("hyper_rgb", lambda p: tifffile.imwrite(p, rand((3, 32, 40, 3), "uint8"), imagej=True, photometric="rgb",
                                                metadata={"axes": "TYXS"}))
    add("ome", lambda p: tifffile.imwrite(p, rand((2, 3, 4, 32, 40)), ome=True, metadata={"axes": "TCZYX"}))
    add("ome_planar", lambda p: tifffile.imwrite(p, rand((2, 3, 32, 40), "uint8"), ome=True, photometric="rgb",
                                                 planarconfig="separate", metadata={"axes": "TSYX"}))

    def multi(p):
        with tifffile.TiffWriter(p) as w:
            w.write(rand((3, 16, 24)), metadata={"axes": "QYX"}, photometric="minisblack")
            w.write(rand((8, 10, 3), "uint8"), photometric="rgb")
            w.write(rand((2, 2, 8, 8), "float32"), metadata={"axes": "CZYX"})
    add("multi", multi)

    def ome_pyramid(p):
        data = rand((3, 2, 64, 64))
        with tifffile.TiffWriter(p, ome=True) as w:
            w.write(data, subifds=2, tile=(16, 16), metadata={"axes": "TCYX"})
            w.write(data[..., ::2, ::2], subfiletype=1, tile=(16, 16))
            w.write(data[..., ::4, ::4], subfiletype=1, tile=(16, 16))
    add("ome_pyramid", ome_pyramid)
    return out


CASES = ["stack", "stack_shaped", "stack_tiled", "hyper", "hyper_rgb", "ome", "ome_planar", "multi", "ome_pyramid"]


@pytest.mark.parametrize("name", CASES)
def test_every_series_and_level_equals_tifffile(files, name):
    path = files[name]
    group = zarr.open_group(TiffStore(path), mode="r")
    listing = group.attrs["tiffio"]["series"]
    with tifffile.TiffFile(path) as tf:
        assert len(listing) == len(tf.series)
        for s, series in enumerate(tf.series):
            entry = listing[s]
            assert (entry["path"], entry["shape"], entry["axes"]) == ("" if s == 0 else f"series/{s}",
                                                                       list(series.shape), series.axes)
            for k, level in enumerate(series.levels):
                with tf.aszarr(series=s, level=k) as zs:
                    ref = _theirs(zs)
                assert ref.shape == level.shape
                node = group[f"{entry['path']}/{k}" if entry["path"] else str(k)]
                alone = zarr.open_array(TiffStore(path, series=s, level=k), mode="r")
                lazy = tdask.from_tiff(path, series=s, level=k, chunks=(32, 32))
                for got in (node[:], alone[:], lazy.compute(scheduler="threads")):
                    assert got.shape == ref.shape and got.dtype == ref.dtype
                    assert numpy.array_equal(got, ref), (name, s, k)
                # chunks: one page's segment, page axes chunked by 1
                page = series.levels[k].keyframe
                lead = len(level.shape) - len(page.shape)
                assert alone.chunks[:lead] == (1,) * lead
            # the series group and the sequence-less dask.imread
            if s == 0:
                assert numpy.array_equal(tdask.imread(path).compute(), tiffio.imread(path))


def test_stack_is_not_a_page_any_more(files):
    """The issue's report: a 40-page stack was (512, 512) through the store and (1, ...) through dask.imread."""
    path = files["stack"]
    arr = zarr.open_group(TiffStore(path), mode="r")["0"]
    assert arr.shape == (40, 64, 80) and arr.chunks == (1, 64, 80)
    assert arr.metadata.dimension_names == ("i", "y", "x")
    assert tdask.imread(path).shape == tiffio.imread(path).shape == (40, 64, 80)
    assert zarr.open_array(TiffStore(path, level=0), mode="r").shape == (40, 64, 80)


@pytest.mark.parametrize("name", ["stack", "stack_shaped", "hyper", "ome", "ome_pyramid"])
def test_key_selections_equal_tifffile(files, name):
    path = files[name]
    with tifffile.TiffFile(path) as tf:
        n = len(tf.series[0].pages)
        for key in (0, 2, n - 1, -1):
            with tf.aszarr(series=0, key=key) as zs:
                ref = _theirs(zs)
            got = zarr.open_array(TiffStore(path, series=0, key=key), mode="r")
            assert got.shape == ref.shape and numpy.array_equal(got[:], ref), key
            assert numpy.array_equal(tdask.from_tiff(path, key=key).compute(), ref)
        for key in (slice(1, None, 2), [n - 1, 0, 1], slice(0, 1)):
            ref = tf.asarray(series=0, key=key)
            got = zarr.open_array(TiffStore(path, key=key, chunks=(32, 32)), mode="r")
            expected = ref.reshape(got.shape)
            assert got.shape[0] == len(range(n)[key] if isinstance(key, slice) else key)
            assert numpy.array_equal(got[:], expected), key
            assert numpy.array_equal(tdask.from_tiff(path, key=key).compute(), expected)
            assert numpy.array_equal(tiffio.imread(path, key=key).reshape(got.shape), expected)
    with pytest.raises(tiffio.TiffIndexError):
        zarr.open_array(TiffStore(path, key=10**6), mode="r")


def test_squeeze_as_tifffile(tmp_path):
    path = tmp_path / "shaped.tif"
    data = rand((1, 5, 1, 32, 40))
    tifffile.imwrite(path, data, metadata={"axes": "TZCYX"})
    with tifffile.TiffFile(path) as tf:
        s = tf.series[0]
        want = {None: s.shape, True: s.get_shape(True), False: s.get_shape(False)}
        axes = {None: s.axes, True: s.get_axes(True), False: s.get_axes(False)}
    for squeeze in (None, True, False):
        arr = zarr.open_array(TiffStore(path, level=0, squeeze=squeeze), mode="r")
        assert arr.shape == want[squeeze]
        assert arr.metadata.dimension_names == tuple(tiffio.read.series.pages.dimension_names(axes[squeeze]))
        assert numpy.array_equal(arr[:], data.reshape(want[squeeze]))
        assert numpy.array_equal(tdask.from_tiff(path, squeeze=squeeze).compute(), data.reshape(want[squeeze]))
    assert want[None] == want[False] != want[True]  # tifffile does not squeeze shaped series by default


def test_dimension_names_and_multiscales_axes(files):
    group = zarr.open_group(TiffStore(files["ome"]), mode="r")
    assert group["0"].metadata.dimension_names == ("t", "c", "z", "y", "x")
    ms = group.attrs["ome"]["multiscales"][0]
    assert [(a["name"], a.get("type")) for a in ms["axes"]] == [
        ("t", "time"), ("c", "channel"), ("z", "space"), ("y", "space"), ("x", "space")]
    rgb = zarr.open_group(TiffStore(files["hyper_rgb"]), mode="r")["0"]
    assert rgb.metadata.dimension_names == ("t", "y", "x", "c")  # samples are the channels
    assert tiffio.read.series.pages.dimension_names("TCYXS") == ["t", "c", "y", "x", "s"]
    assert tiffio.read.series.pages.dimension_names("QQYX") == ["q", "q1", "y", "x"]
    pyr = zarr.open_group(TiffStore(files["ome_pyramid"]), mode="r")
    # lower levels rename the axes whose length differs, so that xarray can hold them together
    assert [pyr[k].metadata.dimension_names for k in ("0", "1", "2")] == [
        ("t", "c", "y", "x"), ("t", "c", "y1", "x1"), ("t", "c", "y2", "x2")]
    assert [d["coordinateTransformations"][0]["scale"] for d in pyr.attrs["ome"]["multiscales"][0]["datasets"]] == [
        [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 4.0, 4.0]]


def test_series_argument_and_attrs(files):
    path = files["multi"]
    one = zarr.open_group(TiffStore(path, series=2, attrs={"project": "x", "n": [1, 2]}), mode="r")
    assert one.attrs["project"] == "x" and one.attrs["n"] == [1, 2]
    assert list(one.array_keys()) == ["0"]
    with tifffile.TiffFile(path) as tf:
        assert numpy.array_equal(one["0"][:], tf.series[2].asarray())
    arr = zarr.open_array(TiffStore(path, series=1, level=0, attrs={"a": 1}), mode="r")
    assert arr.attrs["a"] == 1
    root = zarr.open_group(TiffStore(path, attrs={"b": True}), mode="r")
    assert root.attrs["b"] is True and "tiffio" in root.attrs
    with pytest.raises(tiffio.TiffValueError, match="series 3 out of range"):
        zarr.open_group(TiffStore(path, series=3), mode="r")
    with pytest.raises(tiffio.TiffValueError, match="attrs"):
        TiffStore(path, attrs={"x": object()})
    store = TiffStore(path, series=1, key=[0], squeeze=True, attrs={"a": 1})
    again = pickle.loads(pickle.dumps(store))
    assert again == store and pickle.dumps(again) == pickle.dumps(store)
    assert store != TiffStore(path, series=1, key=[0], squeeze=True, attrs={"a": 2})


def test_undescribable_pages_and_series_are_listed(tmp_path):
    """A page tiffio cannot describe (33 bits per sample) is listed with the reason, and so is a
    series the store cannot serve; the other series are served."""
    b = Builder()
    pixels = numpy.arange(64, dtype=numpy.uint8).reshape(8, 8)
    first = b.blob(pixels.tobytes())
    odd = b.blob(bytes(8 * 8 * 5))
    second = b.ifd([(256, 3, 8), (257, 3, 8), (258, 3, 33), (259, 3, 1), (262, 3, 1), (273, 4, odd),
                    (278, 3, 8), (279, 4, 8 * 8 * 5)])
    ifd0 = b.ifd([(256, 3, 8), (257, 3, 8), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, first), (278, 3, 8),
                  (279, 4, 64)], next_offset=second)
    path = tmp_path / "odd.tif"
    path.write_bytes(b.build(ifd0))
    group = zarr.open_group(TiffStore(path), mode="r")
    info = group.attrs["tiffio"]
    assert [s["shape"] for s in info["series"]] == [[8, 8]]
    (page,) = info["undescribed_pages"]
    # every location names the file first (as every message of an opened file does)
    assert page["ifd"].startswith(f"{path}: IFD 1 at offset") and "33 bits per sample" in page["error"]
    assert numpy.array_equal(group["0"][:], pixels)

    # a series the store cannot serve in raw mode (old-style JPEG strips are not complete
    # streams): listed with the reason, not silently left out
    ojpeg = FIXTURES / "corpus" / "Pillow" / "Tests" / "images" / "old-style-jpeg-compression.tif"
    raw = zarr.open_group(TiffStore(ojpeg, decode="codec"), mode="r")
    (entry,) = raw.attrs["tiffio"]["series"]
    assert entry["path"] == "" and entry["error"].startswith("UnsupportedFeatureError") and "old-style JPEG" in \
        entry["error"]
    assert "0" not in raw


def test_file_without_series_raises_its_first_page_error(tmp_path):
    b = Builder()
    odd = b.blob(bytes(8 * 8 * 5))
    ifd = b.ifd([(256, 3, 8), (257, 3, 8), (258, 3, 33), (259, 3, 1), (262, 3, 1), (273, 4, odd), (278, 3, 8),
                 (279, 4, 320)])
    path = tmp_path / "none.tif"
    path.write_bytes(b.build(ifd))
    with pytest.raises(tiffio.UnsupportedFeatureError, match="33 bits per sample"):
        zarr.open_array(TiffStore(path, level=0), mode="r")
    with pytest.raises(tiffio.UnsupportedFeatureError, match="33 bits per sample"):
        tdask.from_tiff(path)
    info = zarr.open_group(TiffStore(path), mode="r").attrs["tiffio"]
    assert info["series"] == [] and "33 bits" in info["undescribed_pages"][0]["error"]


def test_contiguous_stack_store_reads_no_other_ifd(tmp_path):
    """A 2,000-page ImageJ stack through the store: the chunks of the last page read from the
    computed plane offset; no IFD but the first is parsed."""
    path = tmp_path / "ij.tif"
    data = numpy.arange(2000 * 16 * 16, dtype="uint16").reshape(2000, 16, 16)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX"})
    store = TiffStore(path, level=0)
    arr = zarr.open_array(store, mode="r")
    assert numpy.array_equal(arr[1999], data[1999]) and numpy.array_equal(arr[7, 3:9, 2:5], data[7, 3:9, 2:5])
    assert len(store.tiff.ifds._items) == 1
    raw = zarr.open_array(TiffStore(path, level=0, decode="codec"), mode="r")
    assert numpy.array_equal(raw[1500:1503], data[1500:1503])


@pytest.mark.parametrize("name", ["stack", "stack_shaped", "stack_tiled", "hyper", "ome"])
def test_references_of_a_stack(files, name):
    fsspec = pytest.importorskip("fsspec")
    path = files[name]
    refs = TiffStore(path).to_references()
    fs = fsspec.filesystem("reference", fo=json.loads(json.dumps(refs)), asynchronous=True)
    group = zarr.open_group(zarr.storage.FsspecStore(fs, read_only=True, path=""), mode="r")
    assert numpy.array_equal(group["0"][:], tiffio.imread(path))


# --- sequences as tifffile has them -----------------------------------------------------------------
@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    d = tmp_path_factory.mktemp("mosaic")
    tiles = rand((2, 3, 16, 20))
    for r in range(2):
        for c in range(3):
            tifffile.imwrite(d / f"r{r}_c{c}.tif", tiles[r, c], tile=(16, 16), compression="zlib")
    return d, tiles


def test_axestiled_equals_tifffile(mosaic):
    d, _tiles = mosaic
    pattern = r"(r)(\d+)_(c)(\d+)"
    ts = tifffile.TiffSequence(str(d / "r*_c*.tif"), pattern=pattern)
    for axestiled in ({0: 0, 1: 1}, {1: 1}, {0: 1}):
        with ts.aszarr(axestiled=axestiled) as zs:
            ref = zarr.open_array(zs, mode="r", zarr_format=2)
            ref_chunks, ref_data = ref.chunks, ref[:]
        store = FileSequenceStore(str(d / "r*_c*.tif"), pattern=pattern, axestiled=axestiled)
        arr = zarr.open_array(store, mode="r")
        assert arr.shape == ref_data.shape and arr.chunks == ref_chunks
        assert numpy.array_equal(arr[:], ref_data), axestiled
        lazy = tdask.imread(str(d / "r*_c*.tif"), pattern=pattern, axestiled=axestiled)
        assert numpy.array_equal(lazy.compute(), ref_data)
        assert pickle.loads(pickle.dumps(store)) == store
    full = zarr.open_array(FileSequenceStore(str(d / "r*_c*.tif"), pattern=pattern, axestiled={0: 0, 1: 1}), mode="r")
    assert full.metadata.dimension_names == ("y", "x")
    assert full.attrs["tiffio"]["axestiled"] == {"0": 0, "1": 1}
    with pytest.raises(tiffio.TiffValueError, match="axestiled"):
        FileSequenceStore(str(d / "r*_c*.tif"), pattern=pattern, axestiled={0: 0, 1: 0})._meta()
    with pytest.raises(tiffio.TiffValueError, match="chunks='segment'"):
        FileSequenceStore(str(d / "r*_c*.tif"), pattern=pattern, axestiled={0: 0}, chunks="segment")._meta()


def test_missing_tile_of_a_mosaic_is_fill(mosaic, tmp_path):
    d, tiles = mosaic
    for r in range(2):
        for c in range(3):
            if (r, c) != (1, 1):
                (tmp_path / f"r{r}_c{c}.tif").write_bytes((d / f"r{r}_c{c}.tif").read_bytes())
    arr = zarr.open_array(FileSequenceStore(str(tmp_path / "r*_c*.tif"), pattern=r"(r)(\d+)_(c)(\d+)",
                                            axestiled={0: 0, 1: 1}, fill=7), mode="r")
    expected = tiles.copy()
    expected[1, 1] = 7
    assert numpy.array_equal(arr[:], expected.transpose(0, 2, 1, 3).reshape(32, 60))
    assert arr.nchunks_initialized == 5


def _read_png(path):
    import imagecodecs
    return imagecodecs.imread(path)


def test_imread_hook_chunkshape_and_attrs(tmp_path):
    imagecodecs = pytest.importorskip("imagecodecs")
    frames = rand((4, 16, 20, 3), "uint8")
    for t in range(4):
        imagecodecs.imwrite(tmp_path / f"f{t}.png", frames[t])
    ts = tifffile.FileSequence(_read_png, str(tmp_path / "f*.png"), pattern=r"f(\d+)")
    with ts.aszarr() as zs:
        ref = zarr.open_array(zs, mode="r", zarr_format=2)[:]
    store = FileSequenceStore(str(tmp_path / "f*.png"), pattern=r"f(\d+)", imread=_read_png, attrs={"source": "png"})
    arr = zarr.open_array(store, mode="r")
    assert arr.shape == ref.shape == (4, 16, 20, 3) and numpy.array_equal(arr[:], ref)
    assert arr.metadata.dimension_names == ("q", "y", "x", "c") and arr.attrs["source"] == "png"
    assert pickle.loads(pickle.dumps(store)) == store
    # chunkshape and chunkdtype given: the first file is not read to learn them
    reads = []

    def counting(path):
        reads.append(path)
        return _read_png(path)

    given = FileSequenceStore(str(tmp_path / "f*.png"), pattern=r"f(\d+)", imread=counting, chunkshape=(16, 20, 3),
                              chunkdtype="uint8")
    assert zarr.open_array(given, mode="r").shape == (4, 16, 20, 3) and reads == []
    wrong = FileSequenceStore(str(tmp_path / "f*.png"), pattern=r"f(\d+)", imread=_read_png, chunkshape=(16, 21, 3),
                              chunkdtype="uint8")
    with pytest.raises(tiffio.TiffValueError, match="differs from the first file"):
        zarr.open_array(wrong, mode="r")[:]
    lazy = tdask.imread(str(tmp_path / "f*.png"), pattern=r"f(\d+)", imread=_read_png)
    assert numpy.array_equal(lazy.compute(), frames)


def test_sequence_of_stacks_reads_each_files_series(tmp_path):
    """Each file of a sequence contributes its series (as tiffio.imread reads it), not its first page."""
    data = rand((3, 5, 16, 20))
    for t in range(3):
        tifffile.imwrite(tmp_path / f"t{t}.tif", data[t], imagej=True, metadata={"axes": "ZYX"})
    arr = zarr.open_array(FileSequenceStore(str(tmp_path / "t*.tif"), pattern=r"(t)(\d+)"), mode="r")
    assert arr.shape == (3, 5, 16, 20) and arr.metadata.dimension_names == ("t", "z", "y", "x")
    assert numpy.array_equal(arr[:], data)
    seg = zarr.open_array(FileSequenceStore(str(tmp_path / "t*.tif"), pattern=r"(t)(\d+)", chunks="segment"), mode="r")
    assert seg.chunks == (1, 1, 16, 20) and numpy.array_equal(seg[:], data)
    assert numpy.array_equal(tdask.imread(str(tmp_path / "t*.tif"), pattern=r"(t)(\d+)").compute(), data)
    assert numpy.array_equal(tiffio.imread(str(tmp_path / "t*.tif"), pattern=r"(t)(\d+)"), data)
    first_pages = zarr.open_array(FileSequenceStore(str(tmp_path / "t*.tif"), pattern=r"(t)(\d+)", ifd=0), mode="r")
    assert numpy.array_equal(first_pages[:], data[:, 0])


def test_backward_compatible_calls(files):
    """The calls of the earlier single-page store still work on 2-D files and mean the same."""
    path = files["ome_pyramid"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = zarr.open_array(TiffStore(path, multiscales=False), mode="r")
        lv = zarr.open_array(TiffStore(path, level=1), mode="r")
    with tifffile.TiffFile(path) as tf:
        assert numpy.array_equal(flat[:], tf.series[0].asarray())
        assert numpy.array_equal(lv[:], tf.series[0].levels[1].asarray())
