"""The IFD: one image of a TIFF file, built as layers, one per module.

Lowest layer first (each module imports only those above it in this list)::

    fields.py      tags and geometry: tag access by code or spec name, the image structure derived
                   from the tags (dtype, shape, segment grid), the frozen decoding spec
    fastpath.py    the prepared hot path of read_segment for the common cases (one closure per IFD)
    striles.py     where each segment is stored: strile arrays, (offset, byte count), libtiff's repairs
    segments.py    segments: their bytes and their decoded samples (read_segment, read_segments)
    regions.py     regions: read_region / asarray / iter_regions over the shared thread pool
    ifd.py         the IFD class and the lazily parsed IFD chains (main chain and SubIFDs)
"""
