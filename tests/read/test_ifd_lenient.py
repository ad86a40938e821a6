"""tiffio.open reads what libtiff reads by default; strict=True raises (issue 11).

Each case is a violation seen in real files. The default mode reads the file as libtiff
(imagecodecs.tiff_decode) and tifffile read it, with a TiffFormatWarning whose message is the
one strict mode raises (it says where); strict=True raises that TiffFormatError subclass.
"""

from __future__ import annotations

import warnings

import numpy
import pytest

import tiffio
from tests.support.tiffbuild import Builder

pytestmark = pytest.mark.crossval

tifffile = pytest.importorskip("tifffile")
imagecodecs = pytest.importorskip("imagecodecs")

IMAGE = (numpy.arange(8 * 8, dtype=numpy.uint8).reshape(8, 8) * 3)


def _gray(entries_extra=(), data=IMAGE, rows=None):
    """A one-strip (or ``rows``-row strips) 8-bit gray image with extra entries (duplicates kept)."""
    b = Builder()
    h, w = data.shape
    rows = rows or h
    offsets = [b.blob(data[r:r + rows].tobytes()) for r in range(0, h, rows)]
    counts = [data[r:r + rows].nbytes for r in range(0, h, rows)]
    entries = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, offsets),
               (277, 3, 1), (278, 4, rows), (279, 4, counts)] + list(entries_extra)
    return b.build(b.ifd(entries))


def _libtiff(raw: bytes) -> numpy.ndarray | None:
    if not getattr(imagecodecs.TIFF, "available", False):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return imagecodecs.tiff_decode(raw)


def _tifffile(raw: bytes) -> numpy.ndarray:
    import io
    import logging
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    with tifffile.TiffFile(io.BytesIO(raw)) as tf:
        return tf.pages[0].asarray()


def _default(raw: bytes, match: str) -> tuple[numpy.ndarray, list[str], tiffio.TiffFile]:
    """Read page 0 in the default mode; the warnings' messages; the open file (closed)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tiffio.open(raw) as tif:
            got = tif.ifds[0].asarray()
    messages = [str(w.message) for w in caught if issubclass(w.category, tiffio.TiffFormatWarning)]
    assert any(match in m for m in messages), messages
    return got, messages, tif


def _strict_error(raw: bytes, error: type[Exception], call=lambda tif: tif.ifds[0].asarray()) -> str:
    with pytest.raises(error) as info:
        with tiffio.open(raw, strict=True) as tif:
            call(tif)
    return str(info.value)


def test_default_is_lenient_and_strict_is_on_request():
    raw = _gray()
    with tiffio.open(raw) as tif:
        assert tif.strict is False and tif.ifds[0].spec.strict is False
    with tiffio.TiffFile(raw) as tif:
        assert tif.strict is False
    with tiffio.open(raw, strict=True) as tif:
        assert tif.strict is True and tif.ifds[0].spec.strict is True


def test_image_description_twice_micro_manager():
    """Micro-Manager OME-TIFFs hold ImageDescription twice (OME-XML, then its JSON): the first
    is kept, as libtiff (later duplicates marked ignored) and tifffile (first tag of a code) do."""
    ome = '<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"/>'
    raw = _gray([(270, 2, ome), (270, 2, '{"MicroManagerVersion": "2.0"}')])
    got, messages, _ = _default(raw, "ImageDescription (270) appears twice; the first is used")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tiffio.open(raw) as tif:
            assert tif.ifds[0].get("ImageDescription") == ome
    with tifffile.TiffFile(__import__("io").BytesIO(raw)) as tf:
        assert tf.pages[0].description == ome
    assert numpy.array_equal(got, IMAGE)
    message = _strict_error(raw, tiffio.TiffFormatError, call=lambda tif: None)
    assert messages[0] in message and message.startswith("IFD 0 at offset ")


@pytest.mark.parametrize("code, first, second, name", [
    (305, "Scanner 1.0", "Scanner 2.0", "Software"),   # old-style JPEG scanners
    (256, 8, 4, "ImageWidth"),
    (258, 8, 16, "BitsPerSample"),
])
def test_repeated_tag_first_wins_like_libtiff(code, first, second, name):
    ftype = 2 if isinstance(first, str) else 3 if code == 258 else 4
    b = Builder()
    strip = b.blob(IMAGE.tobytes())
    entries = [(256, 4, 8), (257, 4, 8), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, strip),
               (277, 3, 1), (278, 4, 8), (279, 4, 64)]
    entries = [e for e in entries if e[0] != code] + [(code, ftype, first), (code, ftype, second)]
    raw = b.build(b.ifd(entries))
    got, messages, _ = _default(raw, f"{name} ({code}) appears twice; the first is used")
    assert got.shape == (8, 8) and got.dtype == numpy.uint8 and numpy.array_equal(got, IMAGE)
    assert numpy.array_equal(got, _tifffile(raw))
    ref = _libtiff(raw)
    if ref is not None:
        assert numpy.array_equal(got, ref.reshape(got.shape))
    assert messages[0] in _strict_error(raw, tiffio.TiffFormatError, call=lambda tif: None)


def test_next_ifd_pointer_cut_off_by_the_end_of_the_file():
    """The last IFD's 4-byte next pointer is missing (the file was cut right after the entries);
    the image data lies before the IFD and is whole: libtiff reads it (next offset 0)."""
    b = Builder()
    strip = b.blob(IMAGE.tobytes())
    offset = b.ifd([(256, 4, 8), (257, 4, 8), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, strip),
                    (277, 3, 1), (278, 4, 8), (279, 4, 64)])
    raw = b.build(offset)[:-4]
    got, messages, _ = _default(raw, "the next-IFD offset is cut off by the end of the file")
    assert numpy.array_equal(got, IMAGE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tiffio.open(raw) as tif:
            assert len(tif.ifds) == 1
    ref = _libtiff(raw)
    if ref is not None:
        assert numpy.array_equal(got, ref.reshape(got.shape))
    message = _strict_error(raw, tiffio.TruncatedError, call=lambda tif: None)
    assert messages[0] in message


def test_strip_byte_counts_shorter_than_the_strip_count():
    """4 strips, StripByteCounts has 2 values: the strips without a count read as empty (fill),
    as tifffile reads them; strict mode refuses the inconsistent arrays."""
    data = numpy.arange(8 * 8, dtype=numpy.uint8).reshape(8, 8) + 1
    b = Builder()
    offsets = [b.blob(data[r:r + 2].tobytes()) for r in range(0, 8, 2)]
    raw = b.build(b.ifd([(256, 4, 8), (257, 4, 8), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, offsets),
                         (277, 3, 1), (278, 4, 2), (279, 4, [16, 16])]))
    got, messages, _ = _default(raw, "StripByteCounts has 2 values, expected 4 (4 strips)")
    expected = data.copy()
    expected[4:] = 0
    assert numpy.array_equal(got, expected)
    assert numpy.array_equal(got, _tifffile(raw))
    assert messages[0] in _strict_error(raw, tiffio.TiffFormatError)
