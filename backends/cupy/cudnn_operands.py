"""The array work around one cuDNN node: operands in, result out.

:func:`operands` turns the caller's lhs and rhs into the C-contiguous,
channels-last arrays a :class:`~.cudnn_plan.CudnnPlan` describes (permuted,
cropped or padded, cast to the plan's dtype; for ``dgrad`` the kernel
regrouped and flipped), :func:`output` allocates what cuDNN writes, and
:func:`result` turns that into the spec's result (unit axes dropped, crops,
the cast to the result dtype, the output layout as a view).

Written against the array API standard (``permute_dims``, ``reshape``,
``flip``, ``concat``, ``zeros``, ``empty``, ``astype``, slicing) with the
operands' namespace ``xp``: the CuPy backend passes CuPy, the tests NumPy.
No array is written in place.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from polyconv.spec.dtypes import namespace_dtype
from polyconv.zero_padding import pad_spatial

from .cudnn_plan import CudnnPlan

__all__ = ["operands", "output", "result"]


def operands(xp: Any, plan: CudnnPlan, lhs: Any, rhs: Any) -> tuple[Any, Any]:
    """``(x, w)``: cuDNN's two operands, of shapes ``plan.x_shape`` and ``plan.w_shape``."""
    dtype = namespace_dtype(xp, plan.io_dtype, lhs)
    n = plan.nspatial
    x = xp.permute_dims(lhs, plan.lhs_perm)  # (N, *S, C), a view
    if any(lo or hi for lo, hi in plan.in_crop):
        crop = (slice(None), *(slice(lo, x.shape[1 + a] - hi) for a, (lo, hi) in enumerate(plan.in_crop)))
        x = x[crop]
    if any(lo or hi for lo, hi in plan.in_pad):
        x = pad_spatial(xp, xp.astype(x, dtype), plan.in_pad, array_api_compat.device(lhs))
    x = xp.reshape(_contiguous(xp, x, dtype), plan.x_shape)

    w = xp.permute_dims(rhs, plan.rhs_perm)
    if plan.op == "dgrad":  # (O, I, *K) -> (G, O/G, I, *K) -> (G, I, *K, O/G) -> (C, *K, O/G), flipped
        o, i = w.shape[0], w.shape[1]
        g = plan.groups
        w = xp.reshape(w, (g, o // g, i, *w.shape[2:]))
        w = xp.permute_dims(w, (0, 2, *range(3, n + 3), 1))
        w = xp.reshape(w, (g * i, *w.shape[2:]))
        if n:
            w = xp.flip(w, axis=tuple(range(1, n + 1)))
    return x, xp.reshape(_contiguous(xp, w, dtype), plan.w_shape)


def output(xp: Any, plan: CudnnPlan, like: Any) -> Any:
    """An uninitialised array of ``plan.y_shape`` in the plan's dtype, on ``like``'s device, for cuDNN to write."""
    dtype = namespace_dtype(xp, plan.io_dtype, like)
    return xp.empty(plan.y_shape, dtype=dtype, device=array_api_compat.device(like))


def result(xp: Any, plan: CudnnPlan, y: Any) -> Any:
    """The spec's result from cuDNN's output ``y``: the output layout is a view of ``y``
    (of a copy when the result dtype differs)."""
    n = plan.nspatial
    full = y.shape[1 : 1 + n]
    out = xp.reshape(y, (y.shape[0], *full, y.shape[-1]))
    if any(lo or hi for lo, hi in plan.out_crop):
        crop = (slice(None), *(slice(lo, s - hi) for s, (lo, hi) in zip(full, plan.out_crop)))
        out = out[crop]
    if plan.out_dtype != plan.io_dtype:
        out = xp.astype(out, namespace_dtype(xp, plan.out_dtype, y))
    return out if plan.out_perm is None else xp.permute_dims(out, plan.out_perm)


def _contiguous(xp: Any, a: Any, dtype: Any) -> Any:
    """``a`` as ``dtype`` in one C-contiguous array (``a`` itself when it already is one)."""
    contiguous = getattr(xp, "ascontiguousarray", None)
    if contiguous is not None:
        return contiguous(a, dtype=dtype)
    return xp.astype(a, dtype, copy=False)
