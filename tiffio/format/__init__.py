"""The TIFF and BigTIFF formats as data and arithmetic: bytes in, structure out, no I/O.

Nothing here opens a file or holds a byte source; the reading side (:mod:`tiffio.read`), the codecs
(:mod:`tiffio.codecs`) and the writer (:mod:`tiffio.writer`) all build on it.

The package, lowest layer first (each module imports only those above it in this list, and the
vocabulary modules ``tiffio.enums`` / ``tiffio.errors``)::

    layout.py      classic TIFF vs BigTIFF x byte order in one object: struct formats, entry and
                   inline-value sizes, offset limits, field-type sizes (the only place that branches
                   on BigTIFF)
    header.py      parse and pack the 8-byte classic or 16-byte BigTIFF header
    tags.py        the tag table: code, spec name, allowed field types, count, default
    grid.py        segment-grid arithmetic: tile/strip counts, index <-> (plane, row, col), valid
                   edge shapes, region -> the segments it covers
    jpeg.py        JPEG streams as structure: the one marker walk (frames, tables, splitting,
                   standalone streams)
    ojpeg.py       old-style JPEG (compression 6) tables mapped to decodable JPEG streams
    cog.py         GDAL's ghost area (the COG layout's leading metadata block)
"""
