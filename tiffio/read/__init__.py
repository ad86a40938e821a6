"""The reading side: an open TIFF (:class:`tiffio.TiffFile`), its IFDs, levels, series and metadata.

Reads are positional through a :mod:`tiffio.sources` byte source; decoding goes through
:mod:`tiffio.codecs` with a frozen spec and no file handle; the format's arithmetic comes from
:mod:`tiffio.format`.

The package, lowest layer first (each module imports only those above it in this list)::

    handle.py       the file-handle Protocol every reading-side module annotates against (what an
                    IFD, the levels, the series and the metadata readers need from their file)
    pool.py         the one shared thread pool and the one parallel map (one error policy)
    entries.py      IFD entries: parsing by field type, lazy tag values (Tag), lazy strile arrays
                    (StrileArray, read a block of entries on demand), the chain walk with cycle
                    detection
    ifd/            the IFD class, one layer per module (tags and geometry -> segments and the fast
                    path -> regions -> IFD and its chains)
    metadata.py     metadata read from an open file (resolution, ICC, XMP, EXIF, GeoTIFF, ImageJ,
                    OME): the I/O side of :mod:`tiffio.metadata`
    levels.py       the resolution levels of the main image, whatever convention wrote them
    series/         the pages of a file that form one array: the Series object and its detection
    file.py         TiffFile and open(): header, the IFD chain, levels, series, metadata
    filesequence.py many files, one array (names and patterns; no framework)
    imread.py       tiffio.imread: one file's series, or a file sequence stacked into one array
    cogcheck.py     check_cog: a file against the Cloud-Optimized GeoTIFF layout rules
"""
