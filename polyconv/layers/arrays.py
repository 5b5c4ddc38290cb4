"""Putting values into the framework and onto the device of the layer's inputs.

A layer makes its parameters with NumPy (or with whatever a user's
initialiser returns) and holds its ``mask`` as given; both must become
arrays of the inputs' framework, on the inputs' device.  This is the one
place where polyconv converts between frameworks, and only for values the
layer itself owns (initial parameters, the mask constant), never for the
arrays a caller passes to ``apply``.

The inputs' framework is the backend that *owns* them (their type), not the
backend a ``use_backend`` block forces: parameters for a NumPy array are
NumPy arrays whichever backend computes the convolution.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from ..backend import Backend, is_neutral
from ..devices import device_of, on
from ..dispatch import check_operands, owner_of
from ..errors import ConvTypeError, UnsupportedDtypeError
from ..registry import registry
from ..spec import dtype_name

__all__ = ["owner", "to_numpy", "place"]

# a name no device has: only a wildcard device name (the JAX backend's name for
# tracers and uncommitted arrays, which compares equal to every name) equals it
_NO_DEVICE = "\x00polyconv: no device"

_NARROWER = {"float64": "float32", "int64": "int32", "uint64": "uint32", "complex128": "complex64"}


def owner(x: Any, op: str, param: str) -> Backend:
    """The backend that owns ``x`` (NumPy for Python scalars and lists); a
    masked array or a ``numpy.matrix`` is a ``ConvTypeError``, as in every call."""
    if is_neutral(x):
        return registry.load("numpy")
    check_operands(op, (x,), (param,))
    name = owner_of(x)
    if name is None:
        raise ConvTypeError(
            op, param, "must be an array of a framework with a polyconv backend, or an array-API array",
            got=f"a {type(x).__module__}.{type(x).__qualname__}",
        )
    return registry.load(name)


def to_numpy(value: Any, op: str, param: str) -> np.ndarray[Any, Any]:
    """A NumPy array of ``value``: a NumPy array, a Python scalar or list, or
    an array of any framework polyconv has a backend for."""
    if isinstance(value, (np.ndarray, np.generic)) or is_neutral(value):
        return np.asarray(value)
    return np.asarray(owner(value, op, param).to_numpy(value))


def _same_framework(be: Backend, value: Any, like: Any) -> bool:
    if is_neutral(value) or isinstance(value, np.generic):
        return False
    try:
        if be.manifest.fallback:  # any array-API library: compare namespaces
            return array_api_compat.array_namespace(value) is array_api_compat.array_namespace(like)
        return owner_of(value) == be.name and be.device(value) == be.device(like)
    except Exception:  # not an array polyconv knows
        return False


def place(value: Any, like: Any, op: str, param: str) -> Any:
    """``value`` as an array of ``like``'s framework on ``like``'s device.

    ``value`` itself when it already is one; otherwise a copy through NumPy.
    Where the framework cannot hold a 64-bit dtype (JAX without
    ``jax_enable_x64``) the 32-bit one is used, as ``jax.numpy.asarray`` does.

    Examples
    --------
    >>> import numpy as np
    >>> place([1.0, 2.0], np.zeros(3), 'Conv', 'mask')
    array([1., 2.])
    """
    be = owner(like, op, "inputs")
    if _same_framework(be, value, like):
        return value
    array = to_numpy(value, op, param)
    if be.manifest.fallback:
        xp = array_api_compat.array_namespace(like)
        return xp.asarray(array, **on(device_of(like)))
    device: str | None = be.device(like)
    if device == _NO_DEVICE:  # the framework places it (a tracer, an uncommitted JAX array)
        device = None
    try:
        return be.from_numpy(array, device=device)
    except UnsupportedDtypeError:
        narrower = _NARROWER.get(dtype_name(array.dtype))
        if narrower is None:
            raise
        return be.from_numpy(array.astype(narrower), device=device)
