"""Whether a call's output can exist at all, checked before any backend allocates it.

A valid call can ask for an output no machine can hold (a padding of
``2**62``, an ``lhs_dilation`` of ``2**40``).  Left to the backends, NumPy
raises ``ValueError: Maximum allowed dimension exceeded`` or a bare
``MemoryError``, PyTorch its allocator's ``RuntimeError`` and XLA
``RESOURCE_EXHAUSTED``.  polyconv raises one error instead, the same on every
backend, naming the output's shape, dtype and size in bytes: an
:class:`~polyconv.errors.OutputTooLargeError` (a ``MemoryError``), when the
output would take

* more bytes than any array can address (``sys.maxsize``, ``2**63 - 1`` on
  64-bit machines), on every backend; or
* more bytes than this machine's physical memory, on the backends whose
  results are computed at once.  A backend whose results are lazy (the dask
  backend: blocks computed where and when they are needed, a cluster's
  memory beyond this machine's) declares the feature ``'lazy'`` and is held
  to the first limit only.

Outputs within the limits are computed as before; whether the memory is
free at the time is the backend's business.

Examples
--------
>>> check_output("conv_general_dilated", (8, 64, 32, 32), "float32")
>>> check_output("conv_general_dilated", (1, 1, 2**62), "float32")
Traceback (most recent call last):
...
polyconv.errors.OutputTooLargeError: conv_general_dilated: the output, of shape (1, 1, 4611686018427387904) \
and dtype float32, would take 18446744073709551616 bytes (16 EiB), more than any array can address \
(9223372036854775807 bytes); nothing was allocated
"""

from __future__ import annotations

import math
import os
import sys

from . import caching
from .errors import OutputTooLargeError
from .spec.dtypes import dtype_bits

__all__ = ["check_output", "machine_memory"]


@caching.lru_cache(None, name="polyconv.output_size.machine_memory")
def machine_memory() -> int | None:
    """This machine's physical memory in bytes (``sysconf``), or None where it cannot be read."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return None


def check_output(op: str, shape: tuple[int, ...], dtype: str, lazy: bool = False) -> None:
    """Raise :class:`~polyconv.errors.OutputTooLargeError` if an output of
    ``shape`` and ``dtype`` cannot exist (see the module docstring).

    A dtype without a width (a string dtype such as ``str32``) is left to the
    backend's manifest, which refuses it by name."""
    try:
        bits = dtype_bits(dtype)
    except TypeError:  # not a dtype NumPy can size: no backend supports it
        return
    size = math.prod(shape) * bits // 8
    memory = machine_memory()
    if size <= sys.maxsize and (lazy or memory is None or size <= memory):
        return
    if size > sys.maxsize:
        limit = f"any array can address ({sys.maxsize} bytes)"
    else:
        limit = f"this machine's memory ({memory} bytes, {_human(memory or 0)})"
    raise OutputTooLargeError(
        f"{op}: the output, of shape {tuple(shape)} and dtype {dtype}, would take {size} bytes "
        f"({_human(size)}), more than {limit}; nothing was allocated"
    )


def _human(size: int) -> str:
    """``size`` bytes in binary units, three significant digits.

    >>> _human(1536), _human(2**64)
    ('1.5 KiB', '16 EiB')
    """
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
    value, unit = float(size), 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.3g} {units[unit]}" if unit else f"{size} bytes"
