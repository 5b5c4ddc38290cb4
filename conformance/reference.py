"""The reference semantics, written directly from the definition.

This module shares no code with any backend; it uses only polyconv's spec
parsing.  It favours being obviously right over being fast:

1. put both operands in canonical layout, ``(N, C, *spatial)`` and
   ``(O, I, *window)``, in a wide accumulation dtype (float64, complex128,
   or int64 for exact integer arithmetic modulo 2**64);
2. dilate the lhs by writing it into every ``lhs_dilation``-th element of a
   zero array;
3. pad with zeros, then crop for negative pads (XLA's order: an axis is
   extended with zeros on both sides and the window starts at ``-low``);
4. for each kernel tap, take the strided slice of the padded input it sees
   and contract the channels of each group with ``einsum``;
5. move the canonical result into the output layout.

The result is returned in the accumulation dtype; :func:`cast_result` turns
it into the output dtype the way an exact computation would (integers wrap).

Examples
--------
>>> import numpy as np
>>> x = np.arange(5.0).reshape(1, 1, 5)
>>> w = np.array([1.0, 0.0, -1.0]).reshape(1, 1, 3)
>>> conv_general_dilated(x, w, (1,), 'VALID')
array([[[-2., -2., -2.]]])
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from polyconv.spec import ConvSpec, conv_spec, dtype_kind

__all__ = ["conv_general_dilated", "conv_from_spec", "accumulation_dtype", "cast_result"]


def accumulation_dtype(out_dtype: str) -> np.dtype:
    """The exact-as-possible dtype the reference computes a result in."""
    kind = dtype_kind(out_dtype)
    if kind in "iub":
        return np.dtype(np.int64)
    if kind == "c":
        return np.dtype(np.complex128)
    return np.dtype(np.float64)


def _to_wide(a: np.ndarray, acc: np.dtype) -> np.ndarray:
    if acc.kind == "i" and a.dtype.kind == "u" and a.dtype.itemsize == 8:
        return a.view(np.int64)  # same bits: arithmetic modulo 2**64 is unchanged
    return a.astype(acc)


def conv_from_spec(lhs: Any, rhs: Any, spec: ConvSpec) -> np.ndarray:
    """Reference ``conv_general_dilated`` for an already parsed spec."""
    acc = accumulation_dtype(spec.out_dtype)
    dn = spec.dimension_numbers
    x = _to_wide(np.asarray(lhs), acc).transpose(dn.lhs_spec)  # (N, C, *S)
    w = _to_wide(np.asarray(rhs), acc).transpose(dn.rhs_spec)  # (O, I, *K)
    # 2. lhs dilation: the input values land on every ld-th position.
    dilated_shape = x.shape[:2] + tuple(
        0 if s == 0 else (s - 1) * d + 1 for s, d in zip(x.shape[2:], spec.lhs_dilation)
    )
    xd = np.zeros(dilated_shape, acc)
    xd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in spec.lhs_dilation)] = x

    # 3. pad with zeros first, then crop: an axis is zero-extended on both sides.
    grow = [(0, 0), (0, 0)] + [(max(lo, 0), max(hi, 0)) for lo, hi in spec.padding]
    xp = np.pad(xd, grow)
    crop = tuple(
        slice(max(-lo, 0), xp.shape[2 + i] - max(-hi, 0)) for i, (lo, hi) in enumerate(spec.padding)
    )
    xp = xp[(slice(None), slice(None)) + crop]

    # 4. one strided slice per kernel tap, contracted per group.
    batch, out_features = x.shape[0], w.shape[0]
    fgc, bgc = spec.feature_group_count, spec.batch_group_count
    out_spatial = spec.out_spatial
    out = np.zeros((batch // bgc, out_features, *out_spatial), acc)
    groups = max(fgc, bgc)
    og = out_features // groups
    cg = x.shape[1] // fgc
    nb = batch // bgc
    for tap in itertools.product(*(range(k) for k in w.shape[2:])):
        window = tuple(
            slice(t * d, t * d + (y - 1) * s + 1, s) if y > 0 else slice(0, 0)
            for t, d, s, y in zip(tap, spec.rhs_dilation, spec.window_strides, out_spatial)
        )
        seen = xp[(slice(None), slice(None)) + window]  # (N, C, *Y)
        kernel = w[(slice(None), slice(None)) + tap]  # (O, I)
        for g in range(groups):
            o = slice(g * og, (g + 1) * og)
            if bgc > 1:  # group g pairs lhs batch block g with output features block g
                xs = seen[g * nb : (g + 1) * nb]
            else:  # group g pairs lhs feature block g with output features block g
                xs = seen[:, g * cg : (g + 1) * cg]
            out[:, o] += np.einsum("nc...,oc->no...", xs, kernel[o])

    # 5. canonical (N, O, *Y) into the output layout.
    return out.transpose(np.argsort(dn.out_spec))


def cast_result(result: np.ndarray, out_dtype: str) -> np.ndarray:
    """Cast a reference result to ``out_dtype`` exactly: integers wrap
    modulo their width, booleans are true where any product was (XLA's
    AND-OR convolution), floats round once."""
    if dtype_kind(out_dtype) in "iub":
        return result.astype(np.int64).astype(_np_dtype(out_dtype))
    return result.astype(_np_dtype(out_dtype))


def _np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


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
) -> np.ndarray:
    """Reference ``conv_general_dilated`` on NumPy arrays, in the accumulation dtype.

    Same parameters as :func:`polyconv.conv_general_dilated`.  ``precision``
    is validated and otherwise ignored: the reference is always exact to
    float64 (or exact, for integers).
    """
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    spec = conv_spec(
        lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, window_strides, padding, lhs_dilation,
        rhs_dilation, dimension_numbers, feature_group_count, batch_group_count, precision,
        preferred_element_type,
    )
    return conv_from_spec(lhs, rhs, spec)
