"""Lowering ``conv_general_dilated`` to MLX: layouts, ``mlx.core.conv_general``, tap-by-tap sums.

Every convolution is computed in canonical channels-last terms, the layout
of ``mlx.core.conv_general``: the input ``(N, *S, C)``, the kernel
``(O, *K, C_g)``, the output ``(N', *Y, O)``.  The caller's layouts are
permuted into it (``mx.transpose``, a view: no permutation at all for
``NHWC``/``OHWI``/``NHWC``-style dimension numbers) and the result back.
Batch groups fold the batch into feature groups (``(B * N', C) -> (N', B * C)``,
``B`` groups), as the torch backend does.  Then one of three paths
(:func:`conv_plan` picks it once per spec):

* ``'zeros'``: nothing to add up (a zero-size axis, no channels, no taps, or
  no output whose window reads an input element): zeros of the result's shape;
* ``'native'``: ``mlx.core.conv_general`` itself, for 16- and 32-bit floats
  (complex64 as two real convolutions) with 1-3 spatial dims (3-d feature
  groups one convolution per group: MLX groups only 1-d and 2-d ones).  Its padding
  pairs, strides, both dilations, feature groups and ``flip`` (the
  transposed kernel of ``conv_transpose(..., transpose_kernel=True)``) are
  passed as parsed, except that the input is first cut to what the windows
  read (:func:`native_crops`: MLX does not crop negative pads as XLA does,
  and its gradient needs windows that end at the padded input's end);
* ``'taps'``: everything else (float64, integers and bool, no spatial dims
  or more than 3, and parameters no framework should be handed as they are,
  :func:`polyconv.spec.canonical.beyond_native`): a sum over the kernel taps
  that reach the input (:func:`polyconv.spec.canonical.axis_reads`), each one
  strided slice of the input times the tap's ``(O, C_g)`` weights in one
  matrix product per group, placed in the output by zero-stuffing and
  ``mx.pad``.  No product reads padding or the holes of the lhs dilation,
  and no array is larger than the output or the operands.  Integers and
  bool are exact (:func:`exact_products`).

Everything is an MLX operation on shapes known when the spec is parsed, so
``mx.grad``/``mx.vjp`` differentiate it and ``mx.compile`` traces it; nothing
reads array values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import mlx.core as mx

from polyconv import caching
from polyconv.spec import ConvSpec, dtype_bits, dtype_kind
from polyconv.spec.canonical import TapReads, axis_reach, axis_reads, beyond_native
from polyconv.spec.dimension_numbers import inverse_permutation

from ._modules import dtype
from .plan import MlxDtypes, plan_dtypes

__all__ = [
    "ConvPlan", "conv_plan", "conv_runner", "canonical_perms", "place", "exact_products", "limbs", "on_cpu",
    "grouped_matmul", "native_crops", "flip", "copy",
]

Array = Any
Matmul = Callable[[Array, Array], Array]


def _perm(perm: Sequence[int]) -> tuple[int, ...] | None:
    perm = tuple(perm)
    return None if perm == tuple(range(len(perm))) else perm


def canonical_perms(spec: ConvSpec, transposed_kernel: bool = False) -> tuple[
        tuple[int, ...] | None, tuple[int, ...] | None, tuple[int, ...] | None]:
    """The permutations of the lhs to ``(N, *S, C)``, of the rhs to ``(O, *K, I)``
    and of the canonical output ``(N', *Y, O)`` to the output's layout (None:
    the identity).  ``transposed_kernel``: the rhs is the kernel of
    ``conv_transpose(..., transpose_kernel=True)``, its I and O axes swapped."""
    ls, rs, os_ = spec.dimension_numbers
    rhs = (rs[1], *rs[2:], rs[0]) if transposed_kernel else (rs[0], *rs[2:], rs[1])
    out = inverse_permutation((os_[0], *os_[2:], os_[1]))
    return _perm((ls[0], *ls[2:], ls[1])), _perm(rhs), _perm(out)


def native_crops(
    sizes: Sequence[int], padding: Sequence[tuple[int, int]], lhs_dilation: Sequence[int],
    window: Sequence[int], rhs_dilation: Sequence[int], strides: Sequence[int], out: Sequence[int],
) -> tuple[tuple[tuple[int, int] | None, ...], tuple[tuple[int, int], ...]] | None:
    """The input as ``conv_general`` is handed it: per axis the input elements
    ``[i0, i1)`` to keep (None: all of them) and non-negative pads, such that
    the padded, dilated axis is exactly the part the windows read: its
    positions ``[0, (Y - 1) * s + (K - 1) * rd + 1)``.  None when an axis
    keeps no element (no window reads the input).

    A pad of ``-c`` removes ``c`` positions of the dilated input (XLA's
    semantics, past the edge too), which MLX's ``conv_general`` miscounts; and
    where the windows stop short of the padded end (a stride that does not
    divide it), MLX's own gradient of ``conv_general`` gets the input's shape
    wrong.  So the elements no window reads are sliced off first, the holes
    of the lhs dilation left at a new edge become padding, and the padding
    past the last window is left out.

    >>> native_crops((5,), ((-2, -1),), (1,), (1,), (1,), (1,), (2,))
    (((2, 4),), ((0, 0),))
    >>> native_crops((5,), ((-3, 1),), (2,), (1,), (1,), (1,), (7,))  # positions 0..8, elements at 0, 2, 4, 6, 8
    (((2, 5),), ((1, 1),))
    >>> native_crops((6,), ((1, 1),), (1,), (3,), (1,), (2,), (3,))  # windows read positions 0..6 of 0..7
    ((None,), ((1, 0),))
    >>> native_crops((5,), ((-6, 3),), (1,), (1,), (1,), (1,), (2,)) is None
    True
    """
    crops: list[tuple[int, int] | None] = []
    pads: list[tuple[int, int]] = []
    for size, (lo, _), d, k, rd, s, y in zip(sizes, padding, lhs_dilation, window, rhs_dilation, strides, out):
        used = (y - 1) * s + (k - 1) * rd + 1  # the padded positions some window reads
        i0 = -(-max(-lo, 0) // d)  # the first element at a position >= 0
        i1 = min(size - 1, (used - 1 - lo) // d)  # the last one at a position < used
        if i1 < i0:
            return None
        new_lo = i0 * d + lo
        new_hi = used - new_lo - ((i1 - i0) * d + 1)
        crops.append(None if (i0, i1 + 1) == (0, size) else (i0, i1 + 1))
        pads.append((new_lo, new_hi))
    return tuple(crops), tuple(pads)


@dataclass(frozen=True)
class ConvPlan:
    """How one spec is computed, worked out once (see the module docstring).

    Attributes
    ----------
    spec, dtypes
        The convolution and its dtypes (:mod:`.plan`).
    path, why
        ``'zeros'``, ``'native'`` or ``'taps'``, and why, in words.
    lhs_perm, rhs_perm, out_perm
        The layout permutations (:func:`canonical_perms`).
    groups
        Feature groups of the canonical convolution (batch groups folded in).
    flip
        The kernel's spatial axes are reversed (``transpose_kernel``).
    crops, padding
        ``'native'``: the input slices and the pads (:func:`native_crops`).
    reads
        ``'taps'``: per spatial axis, the taps that read input elements.
    """

    spec: ConvSpec
    dtypes: MlxDtypes
    path: str
    why: str
    lhs_perm: tuple[int, ...] | None
    rhs_perm: tuple[int, ...] | None
    out_perm: tuple[int, ...] | None
    groups: int
    flip: bool
    crops: tuple[tuple[int, int] | None, ...] = ()
    padding: tuple[tuple[int, int], ...] = ()
    reads: tuple[tuple[TapReads, ...], ...] = ()


@caching.memoize(1024, name="polyconv.backends.mlx.lower.conv_plan")
def conv_plan(spec: ConvSpec, transposed_kernel: bool = False) -> ConvPlan:
    """The :class:`ConvPlan` of ``spec`` (``transposed_kernel``: see :func:`canonical_perms`)."""
    dtypes = plan_dtypes(spec)
    perms = canonical_perms(spec, transposed_kernel)
    groups = spec.groups
    n = spec.nspatial

    def plan(path: str, why: str, **more: Any) -> ConvPlan:
        return ConvPlan(spec, dtypes, path, why, *perms, groups, transposed_kernel, **more)

    contraction = spec.in_features // spec.feature_group_count * math.prod(spec.window)
    if 0 in spec.out_shape or 0 in spec.lhs_shape or contraction == 0:
        return plan("zeros", "nothing to add up (a zero-size axis, no taps or no channels)")
    geometry = list(zip(spec.lhs_spatial, spec.out_spatial, spec.window, spec.window_strides, spec.lhs_dilation,
                        spec.rhs_dilation, (lo for lo, _ in spec.padding)))
    if any(axis_reach(*g) is None for g in geometry):
        return plan("zeros", "no output's window reads an input element (padding and holes only)")
    beyond = beyond_native(spec.lhs_spatial, spec.window, spec.out_spatial, spec.window_strides, spec.padding,
                           spec.lhs_dilation, spec.rhs_dilation)
    if dtypes.mode in ("float", "complex") and 1 <= n <= 3 and not beyond:
        crops = native_crops(spec.lhs_spatial, spec.padding, spec.lhs_dilation, spec.window, spec.rhs_dilation,
                             spec.window_strides, spec.out_spatial)
        if crops is not None:
            parts = "two real mlx.core.conv_general calls (real and imaginary parts)" \
                if dtypes.mode == "complex" else f"mlx.core.conv_general in {dtypes.compute}"
            return plan("native", parts, crops=crops[0], padding=crops[1])
    reads = tuple(axis_reads(*g) for g in geometry)
    if dtypes.mode == "exact":
        why = f"{spec.dtype} operands summed exactly (float64 matrix products of 16-bit limbs, int64 sums)"
    elif dtypes.mode == "wide":
        why = "float64 accumulation, which mlx.core.conv_general computes in float32: float64 matrix products"
    elif n == 0 or n > 3:
        why = f"{n} spatial dims (mlx.core.conv_general takes 1-3)"
    else:
        why = "parameters no framework's convolution should be handed as they are (a stride, dilation or pad " \
              "past 2**31, or a padded input far larger than the input and the output)"
    return plan("taps", f"tap by tap, one matrix product per kernel tap that reads the input: {why}", reads=reads)


def on_cpu(fn: Callable[..., Array]) -> Callable[..., Array]:
    """``fn`` run on MLX's CPU stream when the default device is another one
    (Metal has no float64): the paths of float64 and exact integer products."""
    def run(*args: Any) -> Array:
        if mx.default_device() == mx.cpu:
            return fn(*args)
        with mx.stream(mx.cpu):
            return fn(*args)

    return run


def flip(a: Array, axes: Sequence[int]) -> Array:
    """``a`` reversed along ``axes`` (a slice with step -1, a view)."""
    return a[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(a.ndim))]


def copy(a: Array) -> Array:
    """A new array of ``a``'s values, sharing no memory with it (``mx.where`` of a
    constant condition: an elementwise copy MLX traces and differentiates)."""
    return mx.where(mx.array(True), a, a)


def stuff(a: Array, axis: int, step: int) -> Array:
    """``a`` with ``step - 1`` zeros after each element along ``axis``, the
    trailing ones dropped: ``(M - 1) * step + 1`` elements."""
    m = a.shape[axis]
    if step == 1 or m == 0:
        return a
    expanded = mx.expand_dims(a, axis + 1)
    widths = [(0, 0)] * expanded.ndim
    widths[axis + 1] = (0, step - 1)
    expanded = mx.pad(expanded, widths)
    merged = expanded.reshape(*a.shape[:axis], m * step, *a.shape[axis + 1:])
    index = [slice(None)] * a.ndim
    index[axis] = slice(0, (m - 1) * step + 1)
    return merged[tuple(index)]


def place(part: Array, reads: Sequence[TapReads], out: Sequence[int]) -> Array:
    """``part`` ``(N, *counts, F)``, the outputs ``out_start + m * out_step`` of
    each spatial axis, placed in zeros of ``(N, *out, F)``."""
    widths = [(0, 0)] * part.ndim
    for axis, (r, size) in enumerate(zip(reads, out), start=1):
        if r.count == size:
            continue
        part = stuff(part, axis, r.out_step)
        widths[axis] = (r.out_start, size - r.out_stop)
    if any(w != (0, 0) for w in widths):
        part = mx.pad(part, widths)
    return part


def grouped_matmul(xs: Array, wt: Array, groups: int, matmul: Matmul) -> Array:
    """``(N, *counts, G * C_g)`` times ``(G * O_g, C_g)`` per group: ``(N, *counts, G * O_g)``."""
    lead, c, o = xs.shape[:-1], xs.shape[-1], wt.shape[0]
    if groups == 1:
        return matmul(xs.reshape(-1, c), wt.T).reshape(*lead, o)
    cg, og = c // groups, o // groups
    a = xs.reshape(-1, groups, cg).transpose(1, 0, 2)  # (G, M, C_g)
    b = wt.reshape(groups, og, cg).transpose(0, 2, 1)  # (G, C_g, O_g)
    return matmul(a, b).transpose(1, 0, 2).reshape(*lead, o)


# -- exact integer products ---------------------------------------------------------------

#: float64 adds integers exactly below this.
_EXACT = 2**53


def limbs(a: Array, name: str, out_bits: int) -> tuple[list[Array], int]:
    """The float64 limbs of integer or bool array ``a`` of dtype ``name``
    (``a = sum_i limbs[i] * 2**(16 i)`` modulo ``2**64``: the low limbs
    unsigned, the top one signed) for a result exact modulo ``2**out_bits``,
    and the largest magnitude of a limb.  Operands of at most 16 bits are
    one limb, their own values."""
    f64 = mx.float64
    bits = dtype_bits(name)
    if dtype_kind(name) == "b":
        return [a.astype(f64)], 1
    if bits <= 16:
        return [a.astype(f64)], 2 ** bits
    count = (min(out_bits, 64) + 15) // 16
    wide = mx.view(a, mx.int64) if name == "uint64" else a.astype(mx.int64)
    parts = [((wide >> (16 * i)) & 0xFFFF).astype(f64) for i in range(count - 1)]
    return [*parts, (wide >> (16 * (count - 1))).astype(f64)], 2**16


def exact_products(
    a_limbs: Sequence[Array], b_limbs: Sequence[Array], largest: int, count: int,
    contract: Callable[[Array, Array, Matmul], Array],
) -> Array:
    """The exact integer result (int64, modulo ``2**64``) of a bilinear
    ``contract(a, b, matmul)`` (a convolution's tap, a batched matrix
    product), from the limbs of both operands: each limb product is a float64
    matrix product whose sums stay below ``2**53`` (the contraction is split
    where it would not), turned into int64 and weighted by ``2**(16 (i + j))``
    (only the pairs with ``i + j < count`` survive modulo ``2**64``)."""
    limit = max(1, (_EXACT - 1) // (largest * largest))

    def matmul(a: Array, b: Array) -> Array:
        k = a.shape[-1]
        total = None
        for start in range(0, k, limit):  # one chunk for any realistic contraction
            if start == 0 and k <= limit:
                part = (a @ b).astype(mx.int64)
            else:
                part = (a[..., start:start + limit] @ b[..., start:start + limit, :]).astype(mx.int64)
            total = part if total is None else total + part
        assert total is not None
        return total

    total = None
    for i, a in enumerate(a_limbs):
        for j, b in enumerate(b_limbs):
            if i + j >= count:
                continue
            part = contract(a, b, matmul)
            if i + j:
                part = part * (1 << (16 * (i + j)))
            total = part if total is None else total + part
    assert total is not None
    return total


def from_exact(total: Array, spec_dtype: str, out: str) -> Array:
    """The int64 sums (or counts, for bool operands) as the result dtype ``out``."""
    if out == "bool":
        return total != 0
    return total.astype(dtype(out))


# -- the paths -------------------------------------------------------------------------------

def _fold_batch_groups(x: Array, b: int) -> Array:
    """``(B * N', *S, C) -> (N', *S, B * C)``: batch group ``i`` becomes feature group ``i``."""
    n = x.shape[0] // b
    x = mx.moveaxis(x.reshape(b, n, *x.shape[1:]), 0, -2)  # (N', *S, B, C)
    return x.reshape(*x.shape[:-2], b * x.shape[-1])


def _native(p: ConvPlan) -> Callable[[Array, Array], Array]:
    """``mx.conv_general`` on canonical operands, negative pads cropped first."""
    spec = p.spec
    strides, kd, ld = list(spec.window_strides), list(spec.rhs_dilation), list(spec.lhs_dilation)
    padding = ([lo for lo, _ in p.padding], [hi for _, hi in p.padding])
    index = None
    if any(c is not None for c in p.crops):
        index = (slice(None), *(slice(None) if c is None else slice(*c) for c in p.crops), slice(None))
    groups, flip = p.groups, p.flip
    split = groups > 1 and spec.nspatial == 3  # MLX convolves groups in 1-d and 2-d only

    def conv(x: Array, w: Array) -> Array:
        if index is not None:
            x = x[index]
        if split:  # one 3-d convolution per group
            cg, og = x.shape[-1] // groups, w.shape[0] // groups
            return mx.concatenate([
                mx.conv_general(x[..., g * cg:(g + 1) * cg], w[g * og:(g + 1) * og], strides, padding, kd, ld, 1, flip)
                for g in range(groups)
            ], axis=-1)
        return mx.conv_general(x, w, strides, padding, kd, ld, groups, flip)

    if p.dtypes.mode != "complex":
        return conv

    def complex_conv(x: Array, w: Array) -> Array:
        n = x.shape[0]
        both = mx.concatenate([mx.real(x), mx.imag(x)], axis=0)  # (2N, *S, C)
        a, b = conv(both, mx.real(w)), conv(both, mx.imag(w))
        re, im = a[:n] - b[n:], b[:n] + a[n:]
        return mx.view(mx.stack([re, im], axis=-1), mx.complex64).squeeze(-1)

    return complex_conv


def _taps(p: ConvPlan) -> Callable[[Array, Array], Array]:
    """The sum over the kernel taps that read the input (module docstring)."""
    spec = p.spec
    window, out, groups, flip = spec.window, spec.out_spatial, p.groups, p.flip
    combos = list(product(*p.reads))

    def tap_index(combo: Sequence[TapReads]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        xi = (slice(None), *(slice(r.in_start, r.in_stop, r.in_step) for r in combo), slice(None))
        taps = ((k - 1 - r.tap) if flip else r.tap for r, k in zip(combo, window))
        return xi, (slice(None), *taps, slice(None))

    indices = [tap_index(c) for c in combos]

    if p.dtypes.mode == "exact":
        out_bits = 64 if dtype_kind(spec.out_dtype) not in "iu" else dtype_bits(spec.out_dtype)
        count = (min(out_bits, 64) + 15) // 16

        def exact(x: Array, w: Array) -> Array:
            xl, largest = limbs(x, spec.dtype, out_bits)
            wl, _ = limbs(w, spec.dtype, out_bits)
            total = None
            for combo, (xi, wi) in zip(combos, indices):
                def contract(a: Array, b: Array, matmul: Matmul, xi: Any = xi, wi: Any = wi) -> Array:
                    return grouped_matmul(a[xi], b[wi], groups, matmul)

                part = place(exact_products(xl, wl, largest, count, contract), combo, out)
                total = part if total is None else total + part
            assert total is not None
            return from_exact(total, spec.dtype, spec.out_dtype)

        return exact

    compute = dtype({"float": "float32", "wide": "float64", "complex": "complex64"}[p.dtypes.mode])

    def matmul(a: Array, b: Array) -> Array:
        return a @ b

    def summed(x: Array, w: Array) -> Array:
        if x.dtype != compute:
            x, w = x.astype(compute), w.astype(compute)
        total = None
        for combo, (xi, wi) in zip(combos, indices):
            part = place(grouped_matmul(x[xi], w[wi], groups, matmul), combo, out)
            total = part if total is None else total + part
        assert total is not None
        return total

    return summed


def canonical_runner(p: ConvPlan) -> Callable[[Array, Array], Array]:
    """The convolution of canonical ``(N, *S, C)`` and ``(O, *K, C_g)`` operands
    (batch groups not yet folded) as canonical ``(N', *Y, O)``, in the result's dtype."""
    spec, dtypes = p.spec, p.dtypes
    out_dtype = dtype(spec.out_dtype)
    b = spec.batch_group_count
    if p.path == "zeros":
        shape = tuple(spec.out_shape[a] for a in (spec.dimension_numbers.out_spec[0],
                                                  *spec.dimension_numbers.out_spec[2:],
                                                  spec.dimension_numbers.out_spec[1]))

        def zeros(x: Array, w: Array) -> Array:
            return mx.zeros(shape, dtype=out_dtype)

        return zeros
    inner = _native(p) if p.path == "native" else _taps(p)
    compute = dtype(dtypes.compute) if dtypes.mode in ("float", "complex") else None

    def run(x: Array, w: Array) -> Array:
        if b > 1:
            x = _fold_batch_groups(x, b)
        if compute is not None and x.dtype != compute:
            x, w = x.astype(compute), w.astype(compute)
        y = inner(x, w)
        return y if y.dtype == out_dtype else y.astype(out_dtype)

    return on_cpu(run) if dtypes.mode in ("wide", "exact") else run


def conv_runner(p: ConvPlan) -> Callable[[Array, Array], Array]:
    """``conv_general_dilated`` for the plan ``p``, as a function of the two
    operands in the caller's layouts."""
    run = canonical_runner(p)
    lp, rp, op = p.lhs_perm, p.rhs_perm, p.out_perm
    if lp is None and rp is None and op is None:
        return run

    def permuted(lhs: Array, rhs: Array) -> Array:
        y = run(lhs if lp is None else mx.transpose(lhs, lp), rhs if rp is None else mx.transpose(rhs, rp))
        return y if op is None else mx.transpose(y, op)

    return permuted
