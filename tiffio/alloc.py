"""Array allocation that fails as a tiffio error: a result that cannot be allocated
(numpy's MemoryError, or an array larger than the address space) raises
:class:`~tiffio.LimitExceededError` naming the bytes asked for, never MemoryError.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from .errors import LimitExceededError

__all__ = ["allocate", "out_of_memory", "is_allocation_failure"]


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
