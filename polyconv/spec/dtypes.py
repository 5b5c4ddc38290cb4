"""Dtype names, framework-neutral.

polyconv carries dtypes as canonical names (``'float32'``, ``'bfloat16'``,
``'complex64'``) so a spec is hashable and no framework needs importing to
read one.  :func:`dtype_name` turns a NumPy, JAX, CuPy, PyTorch or array-API
dtype (or a string) into that name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import caching

__all__ = ["KNOWN_DTYPES", "dtype_name", "dtype_kind", "dtype_bits", "is_narrower", "numpy_dtype", "namespace_dtype"]

#: name -> (kind, bits); kind as NumPy's: b bool, i signed, u unsigned, f float, c complex.
KNOWN_DTYPES: dict[str, tuple[str, int]] = {
    "bool": ("b", 8),
    "int8": ("i", 8),
    "int16": ("i", 16),
    "int32": ("i", 32),
    "int64": ("i", 64),
    "uint8": ("u", 8),
    "uint16": ("u", 16),
    "uint32": ("u", 32),
    "uint64": ("u", 64),
    "float16": ("f", 16),
    "bfloat16": ("f", 16),
    "float32": ("f", 32),
    "float64": ("f", 64),
    "complex64": ("c", 64),
    "complex128": ("c", 128),
}

#: Canonical names by ``(type(dtype), dtype)``; ``_cached_name`` is its ``dict.get``.
_names: caching.BoundedCache[tuple[type, Any], str] = caching.BoundedCache("polyconv.spec.dtypes.names", 1024)
_cached_name = _names.get
_PYTHON_TYPES = (bool, int, float, complex)


def dtype_name(dtype: Any) -> str:
    """Return the canonical name of ``dtype``.

    Accepts NumPy dtypes and scalar types (JAX's and CuPy's are NumPy's),
    ``torch.dtype``, array-API dtype objects, the Python types ``bool``,
    ``int``, ``float``, ``complex`` (read as NumPy reads them) and strings
    that NumPy understands (``'f4'``) or that name a known dtype
    (``'bfloat16'``).

    Raises ``TypeError`` for something that is not a dtype.

    Examples
    --------
    >>> import numpy as np
    >>> dtype_name(np.float32), dtype_name('f8'), dtype_name('bfloat16')
    ('float32', 'float64', 'bfloat16')
    """
    # keyed by type too: dtype objects of different libraries may compare equal
    # (and some warn when compared with another library's)
    key = (type(dtype), dtype)
    try:
        name = _cached_name(key)
    except TypeError:  # an unhashable dtype: resolved every time
        return _resolve(dtype)
    if name is None:
        name = _resolve(dtype)
        _names.put(key, name)
    return name


def _resolve(dtype: Any) -> str:
    if isinstance(dtype, np.dtype):
        return str(dtype.name)
    if isinstance(dtype, str):
        if dtype in KNOWN_DTYPES:
            return dtype
        return str(np.dtype(dtype).name)
    if isinstance(dtype, type) and dtype in _PYTHON_TYPES:  # as NumPy reads them: int is int64, float float64
        return str(np.dtype(dtype).name)
    if isinstance(dtype, type) and issubclass(dtype, np.generic) or hasattr(dtype, "dtype"):
        return str(np.dtype(dtype).name)
    # torch.float32 prints 'torch.float32', array_api_strict's prints
    # 'array_api_strict.float32': the name is the last dotted part.
    text = str(dtype).rsplit(".", 1)[-1]
    if text in KNOWN_DTYPES:
        return text
    raise TypeError(f"not a dtype: {dtype!r}")


def dtype_kind(name: str) -> str:
    """NumPy-style kind letter of a canonical dtype name ('f', 'c', 'i', 'u', 'b')."""
    if name in KNOWN_DTYPES:
        return KNOWN_DTYPES[name][0]
    return str(np.dtype(name).kind)


def dtype_bits(name: str) -> int:
    """Width in bits of a canonical dtype name."""
    if name in KNOWN_DTYPES:
        return KNOWN_DTYPES[name][1]
    return int(np.dtype(name).itemsize) * 8


def is_narrower(a: str, b: str) -> bool:
    """Whether dtype ``a`` is narrower than dtype ``b`` (by bits)."""
    return dtype_bits(a) < dtype_bits(b)


def numpy_dtype(dtype: Any) -> np.dtype[Any]:
    """The NumPy dtype of any dtype (``'bfloat16'`` through ml_dtypes).

    Examples
    --------
    >>> numpy_dtype('float32'), numpy_dtype(float)
    (dtype('float32'), dtype('float64'))
    """
    name = dtype_name(dtype)
    if name == "bfloat16":
        import ml_dtypes  # optional: only bfloat16 needs it

        bfloat16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
        return bfloat16
    return np.dtype(name)


def namespace_dtype(xp: Any, name: str, like: Any) -> Any:
    """The dtype object of canonical name ``name`` in the array namespace ``xp``.

    ``like.dtype`` when that is the dtype asked for; else the namespace's
    attribute ``name``; else, for ``'bfloat16'``, ml_dtypes' NumPy dtype
    (NumPy's and CuPy's bfloat16).

    Raises ``TypeError`` when the namespace has no such dtype.

    Examples
    --------
    >>> import numpy as np
    >>> namespace_dtype(np, 'float16', np.ones(1))
    <class 'numpy.float16'>
    """
    if dtype_name(like.dtype) == name:
        return like.dtype
    dtype = getattr(xp, name, None)
    if dtype is None and name == "bfloat16":
        dtype = numpy_dtype(name)
    if dtype is None:
        raise TypeError(f"the array namespace {getattr(xp, '__name__', xp)!r} has no dtype {name!r}")
    return dtype
