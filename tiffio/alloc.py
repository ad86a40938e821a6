"""Result arrays as tiffio makes them: allocation that fails as a tiffio error (a result that
cannot be allocated - numpy's MemoryError, or an array larger than the address space - raises
:class:`~tiffio.LimitExceededError` naming the bytes asked for, never MemoryError), and fill
values checked against the array's dtype (:func:`require_fill`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from .errors import LimitExceededError, TiffValueError

__all__ = ["allocate", "out_of_memory", "is_allocation_failure", "require_fill"]


def is_allocation_failure(exc: BaseException) -> bool:
    """True for numpy's ways of saying an array cannot be allocated: MemoryError, and the
    ValueError for a size past the address space."""
    return isinstance(exc, MemoryError) or (isinstance(exc, ValueError) and "array is too big" in str(exc))


def out_of_memory(nbytes: int, what: str) -> LimitExceededError:
    """The error for ``nbytes`` that could not be allocated for ``what``."""
    return LimitExceededError(f"{what}: cannot allocate {nbytes:,} bytes (out of memory); lower "
                              "tiffio.Limits(max_output_bytes=...) or read smaller regions")


def allocate(shape: tuple[int, ...], dtype: numpy.dtype, what: str, fill: Any = None,
             zeros: bool = False) -> numpy.ndarray:
    """``numpy.empty(shape, dtype)`` (``numpy.zeros`` with ``zeros``, ``numpy.full`` with ``fill``)
    that raises LimitExceededError instead of MemoryError."""
    try:
        if zeros:
            return numpy.zeros(shape, dtype)
        return numpy.empty(shape, dtype) if fill is None else numpy.full(shape, fill, dtype)
    except (MemoryError, ValueError) as exc:
        if is_allocation_failure(exc):
            raise out_of_memory(math.prod(shape) * numpy.dtype(dtype).itemsize, what) from None
        raise


def require_fill(value: Any, dtype: numpy.dtype, what: str) -> Any:
    """``value`` as a scalar of ``dtype``, or TiffValueError when it does not fit: not one number,
    a fraction, NaN or infinity for integer samples, outside the dtype's range, a complex
    number for real samples. numpy would wrap, truncate, or turn NaN into 0 silently, or raise
    OverflowError or ValueError in the middle of a read."""
    dtype = numpy.dtype(dtype)
    if isinstance(value, (str, bytes)) or numpy.ndim(value) != 0:
        raise TiffValueError(f"{what}: fill must be one number, not {value!r}")
    try:
        number = value.item() if isinstance(value, (numpy.generic, numpy.ndarray)) else value
        kind = dtype.kind
        if isinstance(number, bool):
            number = int(number)
        if kind in "ui":
            if isinstance(number, float) and number.is_integer():
                number = int(number)
            if not isinstance(number, int):
                raise TiffValueError(f"{what}: fill {value!r} is not an integer; the samples are {dtype}")
            info = numpy.iinfo(dtype)
            if not info.min <= number <= info.max:
                raise TiffValueError(f"{what}: fill {value!r} is outside the range of {dtype} "
                                     f"({info.min}..{info.max})")
        elif kind == "f":
            if not isinstance(number, (int, float)):
                raise TiffValueError(f"{what}: fill {value!r} is not a real number; the samples are {dtype}")
            if math.isfinite(number) and abs(number) > float(numpy.finfo(dtype).max):
                raise TiffValueError(f"{what}: fill {value!r} is outside the range of {dtype}")
        elif kind == "c":
            if not isinstance(number, (int, float, complex)):
                raise TiffValueError(f"{what}: fill {value!r} is not a number; the samples are {dtype}")
        return dtype.type(number)
    except TiffValueError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise TiffValueError(f"{what}: fill {value!r} cannot be stored as {dtype} ({exc})") from None
