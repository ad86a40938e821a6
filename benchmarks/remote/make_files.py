"""Make the three layouts of the remote benchmark from benchmarks/data/wsi_40960_jpeg.tif
(``python benchmarks/make_data.py`` makes it: tifffile's output, IFD 0 and its strile arrays
first, each SubIFD level after its data).

    python benchmarks/remote/make_files.py

benchmarks/data/remote_tifffile.tif  a link to the tifffile pyramid (layout c)
benchmarks/data/remote_tiffio.tif    tiffio's writer output (layout b): the same JPEG tiles
                                     copied raw, levels as SubIFDs, IFDs and arrays at the end,
                                     a leader before every tile
benchmarks/data/remote_cog.tif       GDAL's COG driver (layout a): gdal_translate -of COG,
                                     JPEG q85, 512 x 512 blocks, overviews computed by GDAL
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), "data")
SOURCE = os.path.join(DATA, "wsi_40960_jpeg.tif")
FILES = {name: os.path.join(DATA, f"remote_{name}.tif") for name in ("cog", "tiffio", "tifffile")}


def make_tiffio(path: str) -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
    import tiffio
    with tiffio.open(SOURCE) as src, tiffio.TiffWriter(path + ".part") as w:
        levels = [src.ifds[0], *src.ifds[0].subifds]
        parent = None
        for ifd in levels:
            kwargs = {} if parent is None else {"parent": parent}
            img = w.add_image(ifd.shape, "uint8", tile=ifd.tile_shape, compression="jpeg", photometric="ycbcr",
                              subsampling=ifd.subsampling, **kwargs)
            across = -(-ifd.width // ifd.tile_shape[1])
            for index in range(ifd.segment_count):
                img.write_raw_tile(index // across, index % across, ifd.read_segment_bytes(index))
            parent = parent or img
    os.replace(path + ".part", path)


def make_cog(path: str) -> None:
    subprocess.run(["gdal_translate", "-q", "-of", "COG", "-co", "COMPRESS=JPEG", "-co", "QUALITY=85",
                    "-co", "BLOCKSIZE=512", "-co", "NUM_THREADS=2", "-co", "OVERVIEW_RESAMPLING=NEAREST",
                    SOURCE, path + ".part"], check=True)
    os.replace(path + ".part", path)


def main() -> None:
    if not os.path.exists(SOURCE):
        sys.exit(f"{SOURCE} is missing: run python benchmarks/make_data.py first")
    if not os.path.exists(FILES["tifffile"]):
        os.link(SOURCE, FILES["tifffile"])
    for name, make in (("tiffio", make_tiffio), ("cog", make_cog)):
        if not os.path.exists(FILES[name]):
            t = time.perf_counter()
            make(FILES[name])
            print(f"{name}: {os.path.getsize(FILES[name]) / 1e6:.0f} MB in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
