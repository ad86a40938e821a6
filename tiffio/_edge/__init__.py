"""Private helpers of the edge (:mod:`tiffio.zarr`, :mod:`tiffio.dask`, :mod:`tiffio.xarray`).

Data and logic the framework adapters share, none of it public API; only ``zarrbase`` and
``daskwrite`` touch a framework (zarr, dask), and only the adapter that needs them imports them.
Lowest layer first (each module imports only those above it in this list)::

    filecache.py    open files shared by the edge's lazy objects within one process
    selection.py    a series, or the pages of it a key selects, as one N-d array
    chunkmap.py     the zarr v3 view of one TIFF array: metadata and chunk key <-> segment/window
    hierarchy.py    every array of a TIFF as one zarr v3 hierarchy (the keys a store serves)
    sequencemap.py  a file sequence as one zarr v3 array
    zarrcodec.py    the ``tiffio`` zarr v3 codec (a chunk is one segment's stored bytes)
    zarrbase.py     the read-only zarr store every tiffio store builds on, and its buffer helpers
    daskwrite.py    writing a dask array (``tiffio.dask.to_tiff``): blocks encoded in the workers
"""
