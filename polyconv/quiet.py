"""NumPy's floating-point warnings switched off while polyconv computes.

A convolution of operands holding an infinity or NaN forms ``inf * 0`` and
``inf - inf`` by definition; NumPy reports each as a ``RuntimeWarning``
("invalid value encountered in matmul") from deep inside the backend, where
the user can do nothing about it.  ``torch`` and ``jax.lax`` compute the same
values silently, and so does polyconv: the backends that compute with NumPy
(the NumPy backend, the dask backend's partial sums, the array-API backend
over NumPy-based arrays) run under :func:`quiet`, and :mod:`polyconv.ops`
runs the derivations of :mod:`polyconv.derive` (patches, local, transpose,
the VJP on any backend without its own) through :func:`call`.  The values
are unchanged, and the caller's own error state is restored afterwards.

On NumPy 2 the error state is a context variable: :func:`quiet` sets it and
resets it (about 0.2 us, against 2.7 us for entering ``np.errstate``, which
matters on the repeated-call path); on older NumPy it falls back to
``np.errstate``.

Examples
--------
>>> import numpy as np, warnings
>>> run = quiet(lambda a, b: a * b)
>>> with warnings.catch_warnings():
...     warnings.simplefilter("error")
...     float(run(np.float64("inf"), np.float64(0.0)))
nan
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

__all__ = ["quiet", "call"]

F = TypeVar("F", bound=Callable[..., Any])

_extobj_contextvar: Any
try:  # NumPy >= 2: the error state is the context variable np.errstate sets (private, hence the fallback)
    from numpy._core import _ufunc_config

    _extobj_contextvar = _ufunc_config._extobj_contextvar  # type: ignore[attr-defined]
    _IGNORE: Any = _ufunc_config._make_extobj(all="ignore")  # type: ignore[attr-defined]
except (ImportError, AttributeError, TypeError):  # NumPy 1.x
    _extobj_contextvar = None


def quiet(run: F) -> F:
    """``run`` with NumPy's floating-point warnings off for the duration of each call."""
    if _extobj_contextvar is None:
        @functools.wraps(run)
        def errstate(*args: Any, **kwargs: Any) -> Any:
            with np.errstate(all="ignore"):
                return run(*args, **kwargs)

        return errstate  # type: ignore[return-value]

    setting, ignore = _extobj_contextvar, _IGNORE

    @functools.wraps(run)
    def silenced(*args: Any, **kwargs: Any) -> Any:
        token = setting.set(ignore)
        try:
            return run(*args, **kwargs)
        finally:
            setting.reset(token)

    return silenced  # type: ignore[return-value]


def call(run: Callable[..., Any], *args: Any) -> Any:
    """``run(*args)`` with NumPy's floating-point warnings off (``run`` is
    looked up by the caller at each call, so a replaced function is seen).

    >>> import numpy as np
    >>> float(call(np.multiply, np.float64("inf"), 0.0))
    nan
    """
    if _extobj_contextvar is None:
        with np.errstate(all="ignore"):
            return run(*args)
    token = _extobj_contextvar.set(_IGNORE)
    try:
        return run(*args)
    finally:
        _extobj_contextvar.reset(token)
