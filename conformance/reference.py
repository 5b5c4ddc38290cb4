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

*Structural positions* (the padding and the holes of the lhs dilation) hold
no input element, and they form no product: a kernel tap over one adds
nothing, also when the tap is infinite or NaN (XLA's definition, and what
``jax.lax`` computes on the CPU).  The zeros of steps 2 and 3 give exactly
that for finite kernels; for a tap with a non-finite entry, the products at
structural positions are dropped.  Kernel dilation inserts no elements at
all (a tap is simply further away), so it has no structural positions.
Frameworks that pad with real zeros do form those products (``0 * inf`` is
NaN): :func:`zero_product_nans` says where that can make an element NaN,
which the comparator allows (:mod:`.tolerances`).

The result is returned in the accumulation dtype; :func:`cast_result` turns
it into the output dtype the way an exact computation would (integers wrap).

The other operations are each written from their own definition (never by
calling the forward reference with a rearranged kernel, and sharing no code
with polyconv's derivations); all but the transpose read or write the same
padded, lhs-dilated input ``xp`` of steps 2 and 3:

* :func:`conv_transpose`: a *scatter*, every input element spreading over
  the output through the kernel (the adjoint view of a strided convolution);
* :func:`conv_general_dilated_patches`: a gather of each window's values;
* :func:`conv_general_dilated_local`: the forward sum with a separate kernel
  per output position;
* :func:`conv_general_dilated_vjp`: the cotangents of both operands, the
  kernel's by a gather and the input's by a scatter back through the
  padding and the lhs dilation.

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
import math
from typing import Any

import numpy as np

from polyconv.errors import ConvShapeError
from polyconv.operations import OPERATIONS
from polyconv.spec import (
    ConvSpec,
    LocalSpec,
    PatchesSpec,
    TransposeSpec,
    dilate_dim,
    dtype_kind,
)
from polyconv.spec.dtypes import numpy_dtype

__all__ = [
    "conv_general_dilated",
    "conv_from_spec",
    "conv_transpose",
    "transpose_from_spec",
    "conv_general_dilated_patches",
    "patches_from_spec",
    "conv_general_dilated_local",
    "local_from_spec",
    "conv_general_dilated_vjp",
    "vjp_from_spec",
    "accumulation_dtype",
    "cast_result",
    "zero_product_nans",
    "transpose_zero_product_nans",
    "local_zero_product_nans",
]


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


def _canonical(a: Any, spec: tuple[int, ...], acc: np.dtype) -> np.ndarray:
    """``a`` in the wide dtype ``acc``, axes taken in the order ``spec`` (canonical layout)."""
    canonical: np.ndarray = _to_wide(np.asarray(a), acc).transpose(spec)
    return canonical


def _padded_dilated(x: np.ndarray, lhs_dilation: tuple[int, ...], padding: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Steps 2 and 3: the canonical ``(N, C, *S)`` input, lhs-dilated, then padded and cropped.

    Padded index ``p`` of a spatial axis holds dilated index ``p - low``,
    which is input element ``(p - low) / ld`` when that is a whole number in
    range, and zero otherwise.
    """
    # 2. lhs dilation: the input values land on every ld-th position.
    dilated_shape = x.shape[:2] + tuple(
        0 if s == 0 else (s - 1) * d + 1 for s, d in zip(x.shape[2:], lhs_dilation)
    )
    xd = np.zeros(dilated_shape, x.dtype)
    xd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in lhs_dilation)] = x

    # 3. pad with zeros first, then crop: an axis is zero-extended on both sides.
    grow = [(0, 0), (0, 0)] + [(max(lo, 0), max(hi, 0)) for lo, hi in padding]
    xp = np.pad(xd, grow)
    crop = tuple(
        slice(max(-lo, 0), xp.shape[2 + i] - max(-hi, 0)) for i, (lo, hi) in enumerate(padding)
    )
    return xp[(slice(None), slice(None)) + crop]


def _tap_window(
    tap: tuple[int, ...], rhs_dilation: tuple[int, ...], strides: tuple[int, ...], out_spatial: tuple[int, ...]
) -> tuple[slice, ...]:
    """The padded positions ``y * s + k * rd`` (``y`` over the output) that kernel tap ``k`` sees,
    as one strided slice per spatial axis (with the two leading full axes)."""
    return (slice(None), slice(None)) + tuple(
        slice(t * d, t * d + (y - 1) * s + 1, s) if y > 0 else slice(0, 0)
        for t, d, s, y in zip(tap, rhs_dilation, strides, out_spatial)
    )


def _taps(window: tuple[int, ...]) -> Any:
    """Every kernel tap, in C order (the last spatial axis fastest)."""
    return itertools.product(*(range(k) for k in window))


def _from_canonical(a: np.ndarray, spec: tuple[int, ...]) -> np.ndarray:
    """A canonical array moved into the layout described by ``spec``."""
    moved: np.ndarray = a.transpose(np.argsort(spec))
    return moved


def _real_positions(
    spatial: tuple[int, ...], lhs_dilation: tuple[int, ...], padding: tuple[tuple[int, int], ...]
) -> np.ndarray:
    """``(1, 1, *padded)``: True where the padded, lhs-dilated input holds an
    input element, False at structural positions (padding, holes)."""
    ones = np.ones((1, 1, *spatial), np.int8)
    real: np.ndarray = _padded_dilated(ones, lhs_dilation, padding) != 0
    return real


def _drop_structural(term: np.ndarray, kernel: np.ndarray, real: np.ndarray) -> np.ndarray:
    """One tap's contribution ``term`` (``(N, O, *Y)``) with the products at structural
    positions (``real`` False) dropped, which only matters for a non-finite kernel tap."""
    if np.isfinite(kernel).all():
        return term  # 0 * w == 0: the zeros already add nothing
    dropped: np.ndarray = np.where(real, term, 0)
    return dropped


@np.errstate(invalid="ignore", over="ignore")
def conv_from_spec(lhs: Any, rhs: Any, spec: ConvSpec) -> np.ndarray:
    """Reference ``conv_general_dilated`` for an already parsed spec.

    With ``xp`` the padded, lhs-dilated input in canonical layout and ``G``
    the groups::

        out[n, o, y] = sum_{c, k} xp[n', c', y * s + k * rd] * w[o, c, k]

    where ``o`` is in output-feature block ``g``, and ``(n', c') = (n, g * C/G + c)``
    for feature groups or ``(g * N/G + n, c)`` for batch groups; the sum
    takes no product at a structural position (see the module docstring).
    """
    acc = accumulation_dtype(spec.out_dtype)
    dn = spec.dimension_numbers
    x = _canonical(lhs, dn.lhs_spec, acc)  # (N, C, *S)
    w = _canonical(rhs, dn.rhs_spec, acc)  # (O, I, *K)
    xp = _padded_dilated(x, spec.lhs_dilation, spec.padding)

    # 4. one strided slice per kernel tap, contracted per group.
    batch, out_features = x.shape[0], w.shape[0]
    fgc, bgc = spec.feature_group_count, spec.batch_group_count
    out_spatial = spec.out_spatial
    out = np.zeros((batch // bgc, out_features, *out_spatial), acc)
    groups = max(fgc, bgc)
    og = out_features // groups
    cg = x.shape[1] // fgc
    nb = batch // bgc
    real = _real_positions(spec.lhs_spatial, spec.lhs_dilation, spec.padding)
    for tap in _taps(w.shape[2:]):  # non-finite operands: 0 * inf is NaN, as it should be
        window = _tap_window(tap, spec.rhs_dilation, spec.window_strides, out_spatial)
        seen = xp[window]  # (N, C, *Y)
        kernel = w[(slice(None), slice(None)) + tap]  # (O, I)
        for g in range(groups):
            o = slice(g * og, (g + 1) * og)
            if bgc > 1:  # group g pairs lhs batch block g with output features block g
                xs = seen[g * nb : (g + 1) * nb]
            else:  # group g pairs lhs feature block g with output features block g
                xs = seen[:, g * cg : (g + 1) * cg]
            out[:, o] += _drop_structural(np.einsum("nc...,oc->no...", xs, kernel[o]), kernel[o], real[window])

    # 5. canonical (N, O, *Y) into the output layout.
    return _from_canonical(out, dn.out_spec)


def cast_result(result: np.ndarray, out_dtype: str) -> np.ndarray:
    """Cast a reference result to ``out_dtype`` exactly: integers wrap
    modulo their width, booleans are true where any product was (XLA's
    AND-OR convolution), floats round once."""
    if dtype_kind(out_dtype) in "iub":
        return result.astype(np.int64).astype(numpy_dtype(out_dtype))
    return result.astype(numpy_dtype(out_dtype))


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
    spec = OPERATIONS["conv_general_dilated"].spec((lhs, rhs), (
        window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
        batch_group_count, precision, preferred_element_type))
    return conv_from_spec(lhs, rhs, spec)


# -- conv_transpose ------------------------------------------------------------

def _scatter_range(count: int, step: int, offset: int, size: int) -> tuple[slice, slice] | None:
    """Source indices ``i`` in ``[0, count)`` whose target ``p = i * step + offset`` lies in
    ``[0, size)``: ``(slice of i, slice of p)``, or None when there are none."""
    first = max(0, -(offset // step))  # smallest i with i * step + offset >= 0
    last = min(count - 1, (size - 1 - offset) // step)  # largest i with i * step + offset < size
    if last < first:
        return None
    return slice(first, last + 1), slice(first * step + offset, last * step + offset + 1, step)


@np.errstate(invalid="ignore", over="ignore")
def transpose_from_spec(lhs: Any, rhs: Any, tspec: TransposeSpec) -> np.ndarray:
    """Reference ``conv_transpose`` for an already parsed spec, computed as a scatter.

    With ``x`` the input in canonical layout ``(N, C, *S)`` and ``w`` the
    kernel in canonical layout ``(O, C, *K)`` (taken through the dimension
    numbers *after* the optional ``transpose_kernel`` flip of the spatial
    axes and swap of the I and O axes), every input element spreads over
    the output, per spatial axis::

        out[n, o, i * s + low - k * rd] += x[n, c, i] * w[o, c, k]

    for every tap ``k``, keeping the targets inside the output.  ``s`` is the
    stride, ``rd`` the kernel dilation and ``low`` the low padding of the
    equivalent fractionally strided convolution (``tspec.conv.padding``).
    """
    conv = tspec.conv
    acc = accumulation_dtype(conv.out_dtype)
    dn = conv.dimension_numbers
    x = _canonical(lhs, dn.lhs_spec, acc)  # (N, C, *S)
    w = _canonical(rhs, dn.rhs_spec, acc)  # the kernel as given, canonical axes (O, I, *K)
    if tspec.transpose_kernel:  # flip the window, swap the I and O roles
        w = np.flip(w, axis=tuple(range(2, w.ndim))).swapaxes(0, 1)
    out_spatial = conv.out_spatial
    out = np.zeros((x.shape[0], w.shape[0], *out_spatial), acc)
    lows = [lo for lo, _ in conv.padding]
    for tap in _taps(w.shape[2:]):
        src, dst = [slice(None)] * 2, [slice(None)] * 2
        for i, t in enumerate(tap):
            offset = lows[i] - t * conv.rhs_dilation[i]
            hit = _scatter_range(x.shape[2 + i], conv.lhs_dilation[i], offset, out_spatial[i])
            if hit is None:
                break
            src.append(hit[0])
            dst.append(hit[1])
        else:
            kernel = w[(slice(None), slice(None)) + tap]  # (O, C)
            out[tuple(dst)] += np.einsum("nc...,oc->no...", x[tuple(src)], kernel)
    return _from_canonical(out, dn.out_spec)


def conv_transpose(
    lhs: Any,
    rhs: Any,
    strides: Any,
    padding: Any,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    transpose_kernel: bool = False,
    precision: Any = None,
    preferred_element_type: Any = None,
    use_consistent_padding: bool = False,
) -> np.ndarray:
    """Reference ``conv_transpose`` on NumPy arrays, in the accumulation dtype.

    Same parameters as :func:`polyconv.conv_transpose`; see
    :func:`transpose_from_spec` for the formula.

    Examples
    --------
    >>> x = np.array([1.0, 2.0]).reshape(1, 2, 1)  # NHC
    >>> w = np.array([1.0, 10.0]).reshape(2, 1, 1)  # HIO
    >>> conv_transpose(x, w, (2,), 'VALID')[0, :, 0]
    array([10.,  1., 20.,  2.])
    """
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    tspec = OPERATIONS["conv_transpose"].spec((lhs, rhs), (
        strides, padding, rhs_dilation, dimension_numbers, transpose_kernel, precision, preferred_element_type,
        use_consistent_padding))
    return transpose_from_spec(lhs, rhs, tspec)


# -- patches and local (unshared) convolutions -----------------------------------

def patches_from_spec(lhs: Any, pspec: PatchesSpec) -> np.ndarray:
    """Reference ``conv_general_dilated_patches`` for an already parsed spec: a gather.

    With ``xp`` the padded, lhs-dilated input in canonical layout and
    ``flat(k)`` the C-order index of tap ``k`` over ``filter_shape``
    (canonical order, that of the rhs spec's spatial letters)::

        out[n, c * prod(filter_shape) + flat(k), y] = xp[n, c, y * s + k * rd]
    """
    conv = pspec.conv
    acc = accumulation_dtype(conv.out_dtype)
    dn = conv.dimension_numbers
    xp = _padded_dilated(_canonical(lhs, dn.lhs_spec, acc), conv.lhs_dilation, conv.padding)
    batch, channels = xp.shape[:2]
    taps = math.prod(pspec.filter_shape)
    out = np.zeros((batch, channels, taps, *conv.out_spatial), acc)
    for j, tap in enumerate(_taps(pspec.filter_shape)):
        out[:, :, j] = xp[_tap_window(tap, conv.rhs_dilation, conv.window_strides, conv.out_spatial)]
    out = out.reshape(batch, channels * taps, *conv.out_spatial)
    return _from_canonical(out, dn.out_spec)


def conv_general_dilated_patches(
    lhs: Any,
    filter_shape: Any,
    window_strides: Any,
    padding: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> np.ndarray:
    """Reference ``conv_general_dilated_patches`` on NumPy arrays, in the accumulation dtype.

    Same parameters as :func:`polyconv.conv_general_dilated_patches`; see
    :func:`patches_from_spec` for the formula.

    Examples
    --------
    >>> x = np.arange(4.0).reshape(1, 1, 4)
    >>> conv_general_dilated_patches(x, (2,), (1,), 'VALID')[0]
    array([[0., 1., 2.],
           [1., 2., 3.]])
    """
    lhs = np.asarray(lhs)
    pspec = OPERATIONS["conv_general_dilated_patches"].spec((lhs,), (
        filter_shape, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, precision,
        preferred_element_type))
    return patches_from_spec(lhs, pspec)


@np.errstate(invalid="ignore", over="ignore")
def local_from_spec(lhs: Any, rhs: Any, lspec: LocalSpec) -> np.ndarray:
    """Reference ``conv_general_dilated_local`` for an already parsed spec.

    A separate kernel for every output position ``y``: with ``xp`` the padded,
    lhs-dilated input and ``w`` the kernel in canonical layout
    ``(O, C * prod(filter_shape), *Y)``::

        out[n, o, y] = sum_{c, k} xp[n, c, y * s + k * rd] * w[o, c * prod(filter_shape) + flat(k), y]
    """
    conv = lspec.patches.conv
    acc = accumulation_dtype(conv.out_dtype)
    dn = lspec.dimension_numbers
    xp = _padded_dilated(_canonical(lhs, dn.lhs_spec, acc), conv.lhs_dilation, conv.padding)
    w = _canonical(rhs, dn.rhs_spec, acc)  # (O, C * taps, *Y)
    batch, channels = xp.shape[:2]
    out_spatial = conv.out_spatial
    filter_shape = lspec.patches.filter_shape
    w = w.reshape(w.shape[0], channels, math.prod(filter_shape), *out_spatial)  # channel-major
    out = np.zeros((batch, w.shape[0], *out_spatial), acc)
    real = _real_positions(conv.lhs_spatial, conv.lhs_dilation, conv.padding)
    for j, tap in enumerate(_taps(filter_shape)):
        window = _tap_window(tap, conv.rhs_dilation, conv.window_strides, out_spatial)
        seen = xp[window]  # (N, C, *Y)
        out += _drop_structural(np.einsum("nc...,oc...->no...", seen, w[:, :, j]), w[:, :, j], real[window])
    return _from_canonical(out, dn.out_spec)


def conv_general_dilated_local(
    lhs: Any,
    rhs: Any,
    window_strides: Any,
    padding: Any,
    filter_shape: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    precision: Any = None,
) -> np.ndarray:
    """Reference ``conv_general_dilated_local`` on NumPy arrays, in the accumulation dtype.

    Same parameters as :func:`polyconv.conv_general_dilated_local`; see
    :func:`local_from_spec` for the formula.
    """
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    lspec = OPERATIONS["conv_general_dilated_local"].spec((lhs, rhs), (
        window_strides, padding, filter_shape, lhs_dilation, rhs_dilation, dimension_numbers, precision))
    return local_from_spec(lhs, rhs, lspec)


# -- where products with structural zeros may make NaN ---------------------------

def _nan_taps(
    bad: list[np.ndarray], real: np.ndarray, window_of: Any, taps: Any, out_features: int,
    out_spatial: tuple[int, ...],
) -> np.ndarray:
    """``(O, *Y)``: True where some tap ``j`` with ``bad[j]`` (``(O,)`` or
    ``(O, *Y)``: a non-finite kernel entry) lands on a structural position."""
    mask = np.zeros((out_features, *out_spatial), bool)
    for j, tap in enumerate(taps):
        hits = bad[j]
        if not hits.any():
            continue
        structural = ~real[window_of(tap)][0, 0]  # (*Y)
        mask |= (hits.reshape(hits.shape + (1,) * len(out_spatial)) if hits.ndim == 1 else hits) & structural
    return mask


def _canonical_mask(mask: np.ndarray, batch: int, out_spec: tuple[int, ...]) -> np.ndarray:
    """An ``(O, *Y)`` mask for every image, in the output layout."""
    full = np.broadcast_to(mask, (batch, *mask.shape))
    return _from_canonical(full, out_spec)


def zero_product_nans(rhs: Any, spec: ConvSpec) -> np.ndarray:
    """Where a backend that multiplies the zeros of padding and lhs-dilation
    holes by the kernel may give NaN for ``conv_general_dilated``: the output
    elements (boolean, the output's layout and shape) over whose window a
    non-finite kernel tap lands on a structural position.  All False for a
    finite kernel.

    Examples
    --------
    With one zero of low padding, the first output's first tap reads the padding:

    >>> from polyconv.spec import conv_spec
    >>> spec = conv_spec((1, 1, 2), (1, 1, 2), 'float64', 'float64', (1,), [(1, 0)])
    >>> zero_product_nans(np.array([np.inf, 1.0]).reshape(1, 1, 2), spec)[0, 0]
    array([ True, False])
    >>> zero_product_nans(np.array([1.0, np.inf]).reshape(1, 1, 2), spec)[0, 0]
    array([False, False])
    """
    dn = spec.dimension_numbers
    w = np.asarray(rhs).transpose(dn.rhs_spec)  # (O, I, *K)
    bad = ~np.isfinite(w)
    taps = list(_taps(w.shape[2:]))
    real = _real_positions(spec.lhs_spatial, spec.lhs_dilation, spec.padding)
    mask = _nan_taps(
        [bad[(slice(None), slice(None)) + t].any(axis=1) for t in taps], real,
        lambda t: _tap_window(t, spec.rhs_dilation, spec.window_strides, spec.out_spatial),
        taps, w.shape[0], spec.out_spatial,
    )
    return _canonical_mask(mask, spec.out_shape[dn.out_spec[0]], dn.out_spec)


def transpose_zero_product_nans(rhs: Any, tspec: TransposeSpec) -> np.ndarray:
    """:func:`zero_product_nans` for ``conv_transpose``, seen as the fractionally
    strided convolution ``tspec.conv`` (lhs dilation = the strides), whose
    holes and padding a backend may multiply."""
    conv = tspec.conv
    w = np.asarray(rhs).transpose(conv.dimension_numbers.rhs_spec)
    if tspec.transpose_kernel:
        w = np.flip(w, axis=tuple(range(2, w.ndim))).swapaxes(0, 1)
    return zero_product_nans(_from_canonical(w, conv.dimension_numbers.rhs_spec), conv)


def local_zero_product_nans(rhs: Any, lspec: LocalSpec) -> np.ndarray:
    """:func:`zero_product_nans` for ``conv_general_dilated_local`` (a kernel per output position)."""
    conv = lspec.patches.conv
    dn = lspec.dimension_numbers
    filter_shape = lspec.patches.filter_shape
    w = np.asarray(rhs).transpose(dn.rhs_spec)  # (O, C * taps, *Y)
    w = w.reshape(w.shape[0], -1, math.prod(filter_shape), *conv.out_spatial)
    bad = ~np.isfinite(w)
    taps = list(_taps(filter_shape))
    real = _real_positions(conv.lhs_spatial, conv.lhs_dilation, conv.padding)
    mask = _nan_taps(
        [bad[:, :, j].any(axis=1) for j in range(len(taps))], real,
        lambda t: _tap_window(t, conv.rhs_dilation, conv.window_strides, conv.out_spatial),
        taps, w.shape[0], conv.out_spatial,
    )
    return _canonical_mask(mask, conv.out_shape[dn.out_spec[0]], dn.out_spec)


# -- the gradients of conv_general_dilated -------------------------------------

def _unpadded_undilated(
    buf: np.ndarray, lhs_spatial: tuple[int, ...], lhs_dilation: tuple[int, ...], padding: tuple[tuple[int, int], ...]
) -> np.ndarray:
    """The adjoint of :func:`_padded_dilated`: padded position ``p`` goes back to input
    element ``(p - low) / ld`` where that is a whole number in range; the rest
    (padding, the holes of the dilation) is dropped."""
    # The crop dropped input positions: they receive nothing (zeros).
    regrow = [(0, 0), (0, 0)] + [(max(-lo, 0), max(-hi, 0)) for lo, hi in padding]
    full = np.pad(buf, regrow)  # axis = (max(lo, 0) zeros, dilated input, max(hi, 0) zeros)
    dilated = tuple(slice(max(lo, 0), max(lo, 0) + dilate_dim(size, ld))
                    for (lo, _), size, ld in zip(padding, lhs_spatial, lhs_dilation))
    xd = full[(slice(None), slice(None)) + dilated]
    return xd[(slice(None), slice(None)) + tuple(slice(None, None, ld) for ld in lhs_dilation)]


def vjp_from_spec(lhs: Any, rhs: Any, cotangent: Any, spec: ConvSpec) -> tuple[np.ndarray, np.ndarray]:
    """Reference gradients of ``conv_general_dilated`` for an already parsed spec.

    For ``out = conv(lhs, rhs)`` (see :func:`conv_from_spec`) and a cotangent
    ``g`` of ``out``'s shape, with the same group pairing ``(n', c')``::

        rhs_ct[o, c, k] = sum_{n, y} g[n, o, y] * xp[n', c', y * s + k * rd]   (a gather)
        lhs_ct[n', c', i] = sum over (o, y, k) with y * s + k * rd - low == i * ld
                            of g[n, o, y] * w[o, c, k]                           (a scatter)

    The scatter adds each product at padded position ``p = y * s + k * rd``,
    which holds dilated index ``p - low``, which is input element
    ``(p - low) / ld`` when that is a whole number in range (else it is
    padding or a hole of the dilation and is dropped).

    Returns ``(lhs_ct, rhs_ct)`` in the layouts of ``lhs`` and ``rhs``, in the
    accumulation dtype of the forward output.
    """
    acc = accumulation_dtype(spec.out_dtype)
    dn = spec.dimension_numbers
    cotangent = np.asarray(cotangent)
    if cotangent.shape != spec.out_shape:
        raise ConvShapeError(
            "conv_general_dilated_vjp", "cotangent", f"must have the forward output's shape {spec.out_shape}",
            got=f"shape {cotangent.shape}",
        )
    x = _canonical(lhs, dn.lhs_spec, acc)  # (N, C, *S)
    w = _canonical(rhs, dn.rhs_spec, acc)  # (O, I, *K)
    g = _canonical(cotangent, dn.out_spec, acc)  # (N // bgc, O, *Y)
    xp = _padded_dilated(x, spec.lhs_dilation, spec.padding)
    lhs_ct_padded = np.zeros(xp.shape, acc)
    rhs_ct = np.zeros(w.shape, acc)

    batch, out_features = x.shape[0], w.shape[0]
    fgc, bgc = spec.feature_group_count, spec.batch_group_count
    groups = max(fgc, bgc)
    og = out_features // groups
    cg = x.shape[1] // fgc
    nb = batch // bgc
    positions = math.prod(spec.out_spatial)
    for tap in _taps(w.shape[2:]):
        window = _tap_window(tap, spec.rhs_dilation, spec.window_strides, spec.out_spatial)
        seen = xp[window]  # (N, C, *Y)
        kernel = w[(slice(None), slice(None)) + tap]  # (O, I)
        for gi in range(groups):
            o = slice(gi * og, (gi + 1) * og)
            if bgc > 1:  # lhs batch block gi, all channels
                block = (slice(gi * nb, (gi + 1) * nb), slice(None))
            else:  # lhs channel block gi, the whole batch
                block = (slice(None), slice(gi * cg, (gi + 1) * cg))
            xs = seen[block]
            rhs_ct[(o, slice(None)) + tap] += np.einsum(  # sum over the batch and the output positions
                "noy,ncy->oc", g[:, o].reshape(g.shape[0], og, positions), xs.reshape(*xs.shape[:2], positions)
            )
            target = block + window[2:]
            lhs_ct_padded[target] += np.einsum("no...,oc->nc...", g[:, o], kernel[o])

    lhs_ct = _unpadded_undilated(lhs_ct_padded, spec.lhs_spatial, spec.lhs_dilation, spec.padding)
    return _from_canonical(lhs_ct, dn.lhs_spec), _from_canonical(rhs_ct, dn.rhs_spec)


def conv_general_dilated_vjp(
    lhs: Any,
    rhs: Any,
    cotangent: Any,
    window_strides: Any,
    padding: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference ``(lhs_ct, rhs_ct)`` of ``conv_general_dilated`` at ``(lhs, rhs)`` for ``cotangent``.

    ``cotangent`` is in the forward output's layout; the results are in the
    layouts of ``lhs`` and ``rhs``, in the accumulation dtype.  See
    :func:`vjp_from_spec` for the formulas.
    """
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    spec = OPERATIONS["conv_general_dilated_vjp"].spec((lhs, rhs), (
        window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
        batch_group_count, precision, preferred_element_type))
    return vjp_from_spec(lhs, rhs, cotangent, spec)
