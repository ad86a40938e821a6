"""tiffio: low-level TIFF/BigTIFF tile codec library.

Read any tile, strip or region of a TIFF or BigTIFF lazily; write tiled TIFFs
incrementally. See README.md for a tour.
"""

from . import _oldpaths
from .codecs.decode import SegmentSpec, decode_segment
from .enums import (
    Compression,
    ExtraSamples,
    FieldType,
    FillOrder,
    NewSubfileType,
    Photometric,
    PlanarConfiguration,
    Predictor,
    ResolutionUnit,
    SampleFormat,
)
from .errors import (
    CorruptSegmentError,
    LimitExceededError,
    NotARegularFileError,
    NotATiffError,
    SourceError,
    SourceIsADirectoryError,
    SourceNotFoundError,
    SourcePermissionError,
    SourceTimeoutError,
    TiffError,
    TiffFormatError,
    TiffFormatWarning,
    TiffIndexError,
    TiffTypeError,
    TiffUsageError,
    TiffValueError,
    TruncatedError,
    UnsupportedFeatureError,
)
from .limits import Limits
from .metadata import GeoTiff, ImageJMetadata, OmeMetadata
from .read.cogcheck import check_cog
from .read.entries import StrileArray, Tag
from .read.file import IFD, TiffFile, open
from .read.filesequence import FileSequence
from .read.imread import imread
from .read.series.series import Series
from .recovery import recover
from .writer import ImageWriter, RecoveryReport, TiffWriter
from .writer.blocks import WriteReport
from .writer.fanin import FanInReport, fan_in
from .writer.imagej import ImageJWriter, write_imagej, write_imagej_plane
from .writer.imwrite import imwrite
from .writer.maptiles import map_tiles
from .writer.merge import merge
from .writer.ome import write_ome
from .writer.relayout import RelayoutReport, relayout
from .writer.shards import Plan
from .writer.shared import SharedAppender, SharedWriter

__version__ = "0.1.0"

_oldpaths.install()


def __getattr__(name: str) -> object:
    """The module paths of 0.1.0 that moved (``tiffio.reader`` ...), with a DeprecationWarning."""
    return _oldpaths.module_getattr(name)


__all__ = [
    "open", "TiffFile", "TiffWriter", "imwrite", "map_tiles", "WriteReport", "ImageWriter", "recover", "RecoveryReport", "relayout", "RelayoutReport", "merge", "Plan", "fan_in", "FanInReport", "SharedWriter", "SharedAppender",
    "check_cog", "imread", "Series", "ImageJWriter", "write_imagej", "write_imagej_plane", "write_ome",
    "GeoTiff", "ImageJMetadata", "OmeMetadata", "IFD", "Tag", "StrileArray", "Limits", "SegmentSpec", "decode_segment", "FileSequence",
    "TiffError", "TiffFormatError", "NotATiffError", "TruncatedError", "CorruptSegmentError",
    "UnsupportedFeatureError", "LimitExceededError", "TiffUsageError", "TiffIndexError", "TiffValueError",
    "TiffTypeError", "SourceError", "SourceNotFoundError", "SourcePermissionError", "SourceIsADirectoryError",
    "SourceTimeoutError", "NotARegularFileError", "TiffFormatWarning",
    "FieldType", "Compression", "Photometric", "PlanarConfiguration", "Predictor", "SampleFormat",
    "FillOrder", "ExtraSamples", "NewSubfileType", "ResolutionUnit",
]
