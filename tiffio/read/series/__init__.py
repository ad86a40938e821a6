"""Series: the pages of a file that form one array (stacks, hyperstacks, pyramids).

Lowest layer first (each module imports only those above it in this list)::

    series.py      the Series object (shape, axes, pages, reading pages in parallel) and page keys
    ome.py         the series of an OME-TIFF file, from the OME-XML in IFD 0
    detect.py      find the series of a file, in tifffile's order (shaped JSON, OME, ImageJ, ...)
"""
