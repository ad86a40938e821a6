"""JPEG-in-TIFF consistency for ``tiffio check``: what a JPEG stream declares (tables, frame,
components, Adobe transform) against what its IFD says (spec-notes/jpeg.md). The streams are
read by :mod:`tiffio.format.jpeg`."""

from __future__ import annotations

from typing import Any

from ..format.jpeg import parse_header

__all__ = ["check_jpeg"]

#: frame headers whose DCT scans need both quantization and Huffman tables
_DCT_HUFFMAN = (0xC0, 0xC1, 0xC2)


def check_jpeg(ifd: Any, stored: Any, add: Any) -> None:
    import tiffio

    where = ifd.where
    tables = ifd.jpegtables
    t = parse_header(tables) if tables else None
    if t is not None and (not t.soi or not t.eoi):
        add("jpeg-tables", "error", where, "JPEGTables is not an abbreviated JPEG stream (SOI ... EOI)")
    if not stored.any():
        return
    first = int(stored.argmax())
    try:
        data = ifd.read_segment_bytes(first)
    except tiffio.TiffError:  # reported by the segment checks
        return
    s = parse_header(bytes(data[:65536]))
    seg = f"{where}: segment {first}"
    if not s.soi:
        add("jpeg-tables", "error", seg, "the segment does not start with a JPEG SOI marker")
        return
    dqt = bool(s.qtables or (t is not None and t.qtables))
    dht = bool(s.htables or (t is not None and t.htables))
    sof = s.frame
    if sof is not None and sof.marker in _DCT_HUFFMAN and not (dqt and dht):
        missing = " and ".join(n for n, ok in (("quantization (DQT)", dqt), ("Huffman (DHT)", dht)) if not ok)
        add("jpeg-tables", "error", seg, f"no {missing} tables in the stream or in JPEGTables")
    if sof is None:
        add("jpeg-stream", "error", seg, "no JPEG frame header (SOF) before the scan")
        return
    if sof.differential:
        add("jpeg-stream", "error", seg,
            f"the JPEG frame is SOF{sof.marker - 0xC0}, a differential frame of hierarchical JPEG: TIFF does not "
            "allow hierarchical JPEG and libjpeg cannot decode it")
    comps = [(c.id, c.h, c.v) for c in sof.components]
    expected = 1 if ifd.is_separate else ifd.samples_per_pixel
    if len(comps) != expected:
        add("jpeg-stream", "error", seg,
            f"the JPEG stream has {len(comps)} components, the IFD {expected} samples per "
            f"{'plane' if ifd.is_separate else 'pixel'}")
        return
    photometric = ifd.photometric
    if photometric == 6 and len(comps) == 3 and not ifd.is_separate:
        declared = ifd.subsampling or (2, 2)
        luma = (comps[0][1], comps[0][2])
        chroma = (comps[1][1], comps[1][2])
        if chroma != (1, 1) or luma != (declared[0], declared[1]):
            add("jpeg-stream", "warning", seg,
                f"YCbCrSubSampling is {declared[0]}x{declared[1]} but the JPEG stream samples Y at "
                f"{luma[0]}x{luma[1]} and chroma at {chroma[0]}x{chroma[1]}")
    if photometric == 2 and len(comps) == 3 and s.adobe_transform == 1:
        add("jpeg-stream", "warning", seg,
            "Photometric is RGB but the JPEG stream says it holds YCbCr (Adobe transform 1)")
    if photometric == 6 and s.adobe_transform == 0:
        add("jpeg-stream", "warning", seg,
            "Photometric is YCbCr but the JPEG stream says it holds untransformed RGB (Adobe transform 0)")
    if ifd.is_tiled:
        tl, tw = ifd.tile_shape
        if (sof.height, sof.width) != (tl, tw):
            add("jpeg-stream", "error", seg, f"the JPEG frame is {sof.height} x {sof.width}, the tile {tl} x {tw}")
    elif sof.width != ifd.width or sof.height > ifd.rows_per_strip:
        add("jpeg-stream", "error", seg, f"the JPEG frame is {sof.height} x {sof.width}, the strip "
                                          f"{ifd.rows_per_strip} x {ifd.width}")
    bits = ifd.bits_per_sample
    if sof.precision != bits:
        add("jpeg-stream", "error", seg, f"the JPEG stream has {sof.precision}-bit samples, BitsPerSample is {bits}")
