"""Dtype promotion for the layers, as Flax does it, on any framework.

Flax's layers cast the inputs, the kernel and the bias to one dtype before
convolving (``flax.linen.dtypes.promote_dtype``): the dtype the layer was
given, or else ``jnp.result_type`` of the three, raised to a floating dtype
when it is not one.  ``jnp.result_type`` follows JAX's type-promotion lattice,
which differs from NumPy's and PyTorch's (``int32`` with ``float16`` is
``float16``; ``bfloat16`` with ``float16`` is ``float32``; ``uint8`` with
``int8`` is ``int16``).  This module implements that lattice on canonical
dtype names, so a layer promotes identically on NumPy, PyTorch, JAX and
array-API arrays, and casts through the arrays' own namespace.

JAX with 64-bit types disabled never holds a 64-bit array, so its result is
the 32-bit one; on other frameworks the 64-bit result stands.
"""

from __future__ import annotations

import functools
from typing import Any

import array_api_compat

from .. import caching
from ..errors import ConvTypeError
from ..spec import dtype_kind, dtype_name
from ..spec.dtypes import numpy_dtype

__all__ = ["promote_types", "result_type", "canonicalize_dtype", "promote_dtype", "astype", "numpy_dtype"]

# JAX's lattice (jax._src.dtypes): each node and the nodes directly above it.
# 'i*', 'f*', 'c*' are the weak (Python scalar) types.
_LATTICE: dict[str, tuple[str, ...]] = {
    "bool": ("i*",),
    "i*": ("uint8", "int8"),
    "uint8": ("uint16", "int16"),
    "uint16": ("uint32", "int32"),
    "uint32": ("uint64", "int64"),
    "uint64": ("f*",),
    "int8": ("int16",),
    "int16": ("int32",),
    "int32": ("int64",),
    "int64": ("f*",),
    "f*": ("bfloat16", "float16", "c*"),
    "bfloat16": ("float32",),
    "float16": ("float32",),
    "float32": ("float64", "complex64"),
    "float64": ("complex128",),
    "c*": ("complex64",),
    "complex64": ("complex128",),
    "complex128": (),
}
# a weak type as a result means the widest concrete type of its kind
_WEAK = {"i*": "int64", "f*": "float64", "c*": "complex128"}


@caching.memoize(1024)
def _upper(name: str) -> frozenset[str]:
    """Every node at or above ``name`` in the lattice."""
    return frozenset({name}).union(*(_upper(above) for above in _LATTICE[name]))


@caching.memoize(1024)
def promote_types(a: str, b: str) -> str:
    """The dtype JAX promotes ``a`` and ``b`` to (``jnp.promote_types``), by name.

    Examples
    --------
    >>> promote_types('int32', 'float16'), promote_types('bfloat16', 'float16')
    ('float16', 'float32')
    >>> promote_types('uint8', 'int8'), promote_types('float32', 'complex64')
    ('int16', 'complex64')
    """
    for name in (a, b):
        if name not in _LATTICE:
            raise ConvTypeError("promote_types", "dtype", "must be a known dtype name", name)
    common = _upper(a) & _upper(b)
    least = next(n for n in common if common <= _upper(n))
    return _WEAK.get(least, least)


def result_type(*names: str) -> str:
    """:func:`promote_types` over any number of dtype names."""
    return functools.reduce(promote_types, names)


def canonicalize_dtype(*args: Any, dtype: Any = None, inexact: bool = True, op: str = "promote_dtype") -> str:
    """The name of the dtype that ``args`` (arrays or None) are cast to, as
    ``flax.linen.dtypes.canonicalize_dtype`` decides it.

    Examples
    --------
    >>> import numpy as np
    >>> canonicalize_dtype(np.ones(2, np.int32), np.ones(2, np.float16))
    'float16'
    >>> canonicalize_dtype(np.ones(2, np.int8), None)
    'float32'
    >>> canonicalize_dtype(np.ones(2, np.float32), dtype='bfloat16')
    'bfloat16'
    """
    if dtype is None:
        names = [dtype_name(a.dtype) for a in args if a is not None]
        if not names:
            raise ConvTypeError(op, "args", "must hold at least one array when dtype is None")
        name = result_type(*names)
        if inexact and dtype_kind(name) not in "fc":
            name = promote_types("float32", name)
    else:
        try:
            name = dtype_name(dtype)
        except TypeError:
            raise ConvTypeError(op, "dtype", "must be None or a dtype", dtype) from None
    if inexact and dtype_kind(name) not in "fc":
        raise ConvTypeError(op, "dtype", "must be a floating or complex dtype", dtype)
    return name


def promote_dtype(*args: Any, dtype: Any = None, inexact: bool = True) -> list[Any]:
    """Cast every array in ``args`` (None passes through) to one dtype, as
    ``flax.linen.dtypes.promote_dtype`` does, on any framework.

    The default ``promote_dtype`` of the layers.

    Examples
    --------
    >>> import numpy as np
    >>> x, k = np.ones(2, np.float16), np.ones(2, np.int32)
    >>> [a.dtype.name for a in promote_dtype(x, k, None) if a is not None]
    ['float16', 'float16']
    """
    target = canonicalize_dtype(*args, dtype=dtype, inexact=inexact)
    return [None if a is None else astype(a, target) for a in args]


def astype(x: Any, name: str) -> Any:
    """``x`` cast to the dtype named ``name`` in its own namespace (``x`` itself when it has it)."""
    if dtype_name(x.dtype) == name:
        return x
    xp = array_api_compat.array_namespace(x)
    return xp.astype(x, _framework_dtype(xp, name))


def _framework_dtype(xp: Any, name: str) -> Any:
    """The dtype object named ``name`` in namespace ``xp``."""
    found = getattr(xp, name, None)
    if found is not None:
        return found
    return numpy_dtype(name)  # NumPy's, CuPy's and JAX's take NumPy dtypes (bfloat16 through ml_dtypes)

