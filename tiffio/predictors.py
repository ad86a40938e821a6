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

from .errors import UnsupportedFeatureError

__all__ = ["undo_predictor", "apply_predictor"]


def undo_predictor(predictor: int, array: numpy.ndarray, where: str) -> numpy.ndarray:
    """Reverse ``predictor`` in place where possible; returns the decoded array."""
    if predictor == 2:
        if array.dtype.kind in "fc":
            # libtiff differences the sample *bits* as unsigned integers of the sample's size
            if array.dtype.itemsize not in (1, 2, 4, 8):
                raise UnsupportedFeatureError(f"{where}: predictor 2 on {array.dtype} samples")
            as_int = array.view(f"u{array.dtype.itemsize}")
            imagecodecs.delta_decode(as_int, axis=-2, out=as_int)
            return array
        if array.dtype.kind not in "ui":  # not bool: libtiff refuses predictor 2 on 1-bit samples too
            raise UnsupportedFeatureError(f"{where}: predictor 2 on {array.dtype} samples")
        return imagecodecs.delta_decode(array, axis=-2, out=array)
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
