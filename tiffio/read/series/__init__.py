"""Series: the pages of a file that form one array (stacks, hyperstacks, pyramids).

Lowest layer first (each module imports only those above it in this list)::

    pages.py       pages as tifffile sees them (axes, dtype, key, size) and the axes arithmetic of
                   series (squeeze, reshape, dimension names); the pages no series describes
    series.py      the Series object (shape, axes, levels, reading pages in parallel) and the
                   contiguous-stack page
    ome.py         the series of an OME-TIFF file, from the OME-XML in IFD 0
    detect.py      find the series of a file, in tifffile's order (shaped JSON, OME, ImageJ,
                   uniform, generic)
"""
