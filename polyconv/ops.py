"""The public convolution functions: normalise, dispatch, run.

Each function resolves the backend (which checks that the operands belong to
one framework and one device), turns Python scalars and lists into that
backend's arrays, parses every argument into a :class:`~polyconv.spec.ConvSpec`
(raising polyconv errors before any backend computes anything), checks the
spec against the backend's manifest, and only then calls the backend.
"""

from __future__ import annotations

from typing import Any

from .backend import Backend, is_neutral
from .dispatch import resolve
from .errors import ConvTypeError
from .spec import conv_spec

__all__ = ["conv_general_dilated"]


def conv_general_dilated(
    lhs: Any,
    rhs: Any,
    window_strides: Any,
    padding: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    *,
    backend: str | None = None,
) -> Any:
    """General n-dimensional convolution with dilation, as ``jax.lax.conv_general_dilated``.

    Runs on the backend that owns the operands (NumPy, CuPy, PyTorch, JAX,
    any array-API library) and returns that framework's array, on the
    operands' device.

    Parameters
    ----------
    lhs
        Input, rank ``n + 2``.
    rhs
        Kernel, rank ``n + 2``.
    window_strides
        ``n`` positive integers.
    padding
        ``'SAME'``, ``'SAME_LOWER'``, ``'VALID'`` or ``n`` ``(low, high)``
        pairs; negative pads crop.
    lhs_dilation, rhs_dilation
        None or ``n`` positive integers.  lhs dilation is transposed
        convolution; rhs dilation is atrous convolution.  String padding
        with lhs dilation is an error.
    dimension_numbers
        None (``NC<spatial>``, ``OI<spatial>``, ``NC<spatial>``), a
        :class:`~polyconv.ConvDimensionNumbers`, or three strings such as
        ``('NHWC', 'HWIO', 'NHWC')``.  Strides, dilations and padding follow
        the order of the spatial letters in the rhs string.
    feature_group_count, batch_group_count
        Grouping as in XLA; at most one of them may exceed 1.
    precision
        None, ``'default'``, ``'high'``, ``'highest'``, a
        ``jax.lax.Precision``, or a pair of them (lhs, rhs).
    preferred_element_type
        Accumulation and output dtype, or None for the operands' dtype.
    backend
        Name of the backend to use, overriding every other rule.

    Returns
    -------
    array
        The convolution, of the operands' framework and device.

    Raises
    ------
    polyconv.errors.PolyconvError
        A subclass naming the parameter and value, for any invalid argument,
        before any backend runs.

    Examples
    --------
    >>> import numpy as np, polyconv
    >>> x = np.arange(6.0).reshape(1, 1, 6)      # N, C, W
    >>> w = np.array([1.0, -1.0]).reshape(1, 1, 2)  # O, I, W
    >>> polyconv.conv_general_dilated(x, w, (1,), 'VALID')
    array([[[-1., -1., -1., -1., -1.]]])
    """
    op = "conv_general_dilated"
    be = resolve((lhs, rhs), backend, op)
    if is_neutral(lhs):
        lhs = _from_python(be, lhs, None if is_neutral(rhs) else rhs, op, "lhs")
    if is_neutral(rhs):
        rhs = _from_python(be, rhs, lhs, op, "rhs")
    spec = conv_spec(
        tuple(lhs.shape), tuple(rhs.shape), lhs.dtype, rhs.dtype, window_strides, padding,
        lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count, batch_group_count,
        precision, preferred_element_type, op=op,
    )
    be.manifest.check(spec, be.name, op)
    return be.conv_general_dilated(lhs, rhs, spec)


def _from_python(be: Backend, value: Any, like: Any, op: str, param: str) -> Any:
    """A Python scalar or nested list as the backend's array, or a polyconv error."""
    try:
        return be.asarray(value, like=like)
    except (ValueError, TypeError) as exc:  # ragged lists, strings in lists...
        text = repr(value)
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise ConvTypeError(
            op, param, f"must be an array or a rectangular nested list of numbers ({exc})", got=shown
        ) from None
