"""JPEG-in-TIFF consistency for ``tiffio check``: what a JPEG stream declares (tables, frame,
components, Adobe transform) against what its IFD says (spec-notes/jpeg.md)."""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["jpeg_markers", "check_jpeg"]


def jpeg_markers(data: bytes) -> dict[str, Any]:
    """What a JPEG stream (or JPEGTables) declares before its scan: tables, frame components,
    Adobe transform, JFIF. Stops at the first SOS or at anything malformed."""
    info: dict[str, Any] = {"soi": data[:2] == b"\xff\xd8", "dqt": False, "dht": False, "sof": None,
                            "adobe_transform": None, "jfif": False, "eoi": data[-2:] == b"\xff\xd9"}
    pos = 2
    n = len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            break
        (length,) = struct.unpack(">H", data[pos + 2: pos + 4])
        body = data[pos + 4: pos + 2 + length]
        if marker == 0xDB:
            info["dqt"] = True
        elif marker == 0xC4:
            info["dht"] = True
        elif marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCA, 0xCB) and len(body) >= 6:
            ncomp = body[5]
            comps = []
            for k in range(ncomp):
                c = body[6 + 3 * k: 9 + 3 * k]
                if len(c) == 3:
                    comps.append((c[0], c[1] >> 4, c[1] & 15))
            info["sof"] = {"marker": marker, "bits": body[0], "height": (body[1] << 8) | body[2],
                           "width": (body[3] << 8) | body[4], "components": comps}
        elif marker == 0xEE and body[:5] == b"Adobe" and len(body) >= 12:
            info["adobe_transform"] = body[11]
        elif marker == 0xE0 and body[:5] == b"JFIF\x00":
            info["jfif"] = True
        elif marker == 0xDA:
            break
        pos += 2 + length
    return info


def check_jpeg(ifd: Any, stored: Any, add: Any) -> None:
    import tiffio

    where = ifd.where
    tables = ifd.jpegtables
    t = jpeg_markers(tables) if tables else None
    if t is not None and (not t["soi"] or not t["eoi"]):
        add("jpeg-tables", "error", where, "JPEGTables is not an abbreviated JPEG stream (SOI ... EOI)")
    if not stored.any():
        return
    first = int(stored.argmax())
    try:
        data = ifd.read_segment_bytes(first)
    except tiffio.TiffError:  # reported by the segment checks
        return
    s = jpeg_markers(bytes(data[:65536]))
    seg = f"{where}: segment {first}"
    if not s["soi"]:
        add("jpeg-tables", "error", seg, "the segment does not start with a JPEG SOI marker")
        return
    dqt = s["dqt"] or (t is not None and t["dqt"])
    dht = s["dht"] or (t is not None and t["dht"])
    if s["sof"] is not None and s["sof"]["marker"] in (0xC0, 0xC1, 0xC2) and not (dqt and dht):
        missing = " and ".join(n for n, ok in (("quantization (DQT)", dqt), ("Huffman (DHT)", dht)) if not ok)
        add("jpeg-tables", "error", seg, f"no {missing} tables in the stream or in JPEGTables")
    sof = s["sof"]
    if sof is None:
        add("jpeg-stream", "error", seg, "no JPEG frame header (SOF) before the scan")
        return
    comps = sof["components"]
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
    if photometric == 2 and len(comps) == 3 and s["adobe_transform"] == 1:
        add("jpeg-stream", "warning", seg,
            "Photometric is RGB but the JPEG stream says it holds YCbCr (Adobe transform 1)")
    if photometric == 6 and s["adobe_transform"] == 0:
        add("jpeg-stream", "warning", seg,
            "Photometric is YCbCr but the JPEG stream says it holds untransformed RGB (Adobe transform 0)")
    if ifd.is_tiled:
        tl, tw = ifd.tile_shape
        if (sof["height"], sof["width"]) != (tl, tw):
            add("jpeg-stream", "error", seg, f"the JPEG frame is {sof['height']} x {sof['width']}, the tile "
                                              f"{tl} x {tw}")
    elif sof["width"] != ifd.width or sof["height"] > ifd.rows_per_strip:
        add("jpeg-stream", "error", seg, f"the JPEG frame is {sof['height']} x {sof['width']}, the strip "
                                          f"{ifd.rows_per_strip} x {ifd.width}")
    bits = ifd.bits_per_sample
    if sof["bits"] != bits:
        add("jpeg-stream", "error", seg, f"the JPEG stream has {sof['bits']}-bit samples, BitsPerSample is {bits}")
