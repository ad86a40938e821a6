"""Write the small valid TIFFs the fuzzers mutate (fuzz/seeds/*.tif), with tifffile.

Run: python fuzz/make_seeds.py   (deterministic; the files are committed)
"""

from __future__ import annotations

from pathlib import Path

import numpy
import tifffile

OUT = Path(__file__).resolve().parent / "seeds"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rng = numpy.random.default_rng(1)
    gray = (numpy.arange(20 * 24).reshape(20, 24) % 251).astype("u1")
    rgb = rng.integers(0, 255, (20, 24, 3), dtype="u1")
    u16 = (numpy.arange(20 * 24).reshape(20, 24) * 37).astype("u2")
    f32 = numpy.linspace(-1, 1, 16 * 16, dtype="f4").reshape(16, 16)
    bits = (gray > 100)
    w = tifffile.imwrite
    w(OUT / "strips_none_u8.tif", gray, rowsperstrip=7)
    w(OUT / "strips_lzw_pred2_u16_MM.tif", u16, compression="lzw", predictor=True, rowsperstrip=8, byteorder=">")
    w(OUT / "tiles_deflate_rgb.tif", rgb, tile=(16, 16), compression="zlib")
    w(OUT / "tiles_packbits_separate.tif", rgb.transpose(2, 0, 1).copy(), tile=(16, 16), compression="packbits",
      photometric="rgb", planarconfig="separate")
    w(OUT / "bigtiff_zstd_pred3_f32.tif", f32, bigtiff=True, compression="zstd", predictor=True, tile=(16, 16))
    w(OUT / "jpeg_ycbcr_tiles.tif", rgb, tile=(16, 16), compression="jpeg", photometric="rgb")
    w(OUT / "bilevel_strips.tif", bits, rowsperstrip=5)
    w(OUT / "bits12_gray.tif", (u16 & 0xFFF), bitspersample=12, rowsperstrip=10)
    with tifffile.TiffWriter(OUT / "pages_subifds.tif") as tw:
        tw.write(gray, subifds=1, compression="zlib", tile=(16, 16))
        tw.write(gray[::2, ::2], subfiletype=1, compression="zlib", tile=(16, 16))
        tw.write(u16[:8, :8])
    w(OUT / "volume_tiles.tif", numpy.stack([gray[:16, :16]] * 2), tile=(16, 16), volumetric=True)
    # the denial-of-service classes of issue 11, so that mutants explore their neighbourhood
    # (fixtures/malformed is otherwise not seeded): see fixtures/malformed/README.md
    for mode, name in DOS_SEEDS:
        (OUT / f"dos_{name}").write_bytes((MALFORMED / mode / name).read_bytes())


MALFORMED = Path(__file__).resolve().parents[1] / "fixtures" / "malformed"
#: (failure mode, file) of fixtures/malformed copied into the seeds
DOS_SEEDS = [
    ("codec_shape_impossible", "jpeg_5048_samples_700x1100.tif"),  # DoS class 2: declared samples
    ("declared_strips_unbacked", "strips_16m_offsets_count_0.tif"),  # DoS class 1: declared strips
    ("declared_strips_unbacked", "strips_16m_counts_past_eof.tif"),
]


if __name__ == "__main__":
    main()
