"""Predictors 2 (horizontal differencing) and 3 (floating point), both
directions (spec-notes/predictors.md).

Arrays are shaped (depth, length, width, samples); the predictor runs along
width, separately for each sample. Inputs must be in native byte order:
predictor 2 works on sample *values* (so the caller converts from the file's
byte order first), and predictor 3's byte shuffle is independent of the file's
byte order (its decoded output is native).
"""

from __future__ import annotations

import imagecodecs
import numpy

from ..errors import UnsupportedFeatureError

__all__ = ["undo_predictor", "apply_predictor"]

#: from this many samples per pixel on, predictor 2 is undone a column at a time with numpy
#: (each step adds two contiguous rows of samples); imagecodecs' element loop is ~35 x slower
#: there (97 x 65535 uint8 per row: 405 ms vs 11.5 ms), and faster for ordinary images
_COLUMN_LOOP_SAMPLES = 64


def _delta_decode_columns(array: numpy.ndarray) -> numpy.ndarray:
    """Undo horizontal differencing along axis -2 in place, one column of pixels per step
    (integer addition wraps, as the predictor's modular arithmetic requires)."""
    for x in range(1, array.shape[-2]):
        numpy.add(array[..., x, :], array[..., x - 1, :], out=array[..., x, :])
    return array


def _delta_decode(array: numpy.ndarray) -> numpy.ndarray:
    if array.shape[-1] >= _COLUMN_LOOP_SAMPLES:
        return _delta_decode_columns(array)
    return imagecodecs.delta_decode(array, axis=-2, out=array)


def undo_predictor(predictor: int, array: numpy.ndarray, where: str) -> numpy.ndarray:
    """Reverse ``predictor`` in place where possible; returns the decoded array."""
    if predictor == 2:
        if array.dtype.kind in "fc":
            # libtiff differences the sample *bits* as unsigned integers of the sample's size
            if array.dtype.itemsize not in (1, 2, 4, 8):
                raise UnsupportedFeatureError(f"{where}: predictor 2 on {array.dtype} samples")
            _delta_decode(array.view(f"u{array.dtype.itemsize}"))
            return array
        if array.dtype.kind not in "ui":  # not bool: libtiff refuses predictor 2 on 1-bit samples too
            raise UnsupportedFeatureError(f"{where}: predictor 2 on {array.dtype} samples")
        return _delta_decode(array)
    if predictor == 3:
        if array.dtype.kind != "f":
            raise UnsupportedFeatureError(f"{where}: predictor 3 needs floating-point samples, not {array.dtype}")
        return imagecodecs.floatpred_decode(array, axis=-2)
    raise UnsupportedFeatureError(f"{where}: predictor {predictor} is not supported (1, 2 and 3 are)")


def apply_predictor(predictor: int, array: numpy.ndarray) -> numpy.ndarray:
    """Apply ``predictor`` to a native-order (depth, length, width, samples) array
    (returns a new array; the input is left untouched)."""
    if predictor == 2:
        if array.dtype.kind not in "ui":
            raise UnsupportedFeatureError(f"predictor 2 on {array.dtype} samples")
        return imagecodecs.delta_encode(array, axis=-2)
    if predictor == 3:
        if array.dtype.kind != "f":
            raise UnsupportedFeatureError(f"predictor 3 needs floating-point samples, not {array.dtype}")
        return imagecodecs.floatpred_encode(numpy.ascontiguousarray(array), axis=-2)
    raise UnsupportedFeatureError(f"predictor {predictor} is not supported (1, 2 and 3 are)")
