"""The MLX backend's ops: each a function of the operands, made once per spec.

``conv_general_dilated`` and ``conv_transpose`` are :mod:`.lower`'s
convolution (the transposed kernel of ``transpose_kernel=True`` goes to
``conv_general``'s ``flip`` with its I and O axes read swapped: no copy),
with the FFT path of :mod:`.spectral` in front of it where
``polyconv.use_fft('always')`` takes it.  The other ops are native too,
since :mod:`polyconv.derive` needs an array-API namespace that MLX arrays
do not fully have (no ``device``): patches are a gather of strided slices
of the input (no arithmetic, every dtype exact), local convolutions those
patches times the kernel in one batched matrix product per output position,
and the VJP the two convolutions of :func:`polyconv.spec.vjp_lhs_plan` and
:func:`polyconv.spec.vjp_rhs_plan`, run by the same lowering.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product
from typing import Any

import mlx.core as mx

from polyconv.algorithm import use_fft
from polyconv.spec import (
    ConvSpec,
    LocalSpec,
    PatchesSpec,
    TransposeSpec,
    dtype_bits,
    dtype_kind,
    dtype_name,
    vjp_lhs_plan,
    vjp_rhs_plan,
)
from polyconv.spec.canonical import TapReads, axis_reads
from polyconv.spec.dimension_numbers import inverse_permutation

from . import spectral
from ._modules import dtype
from .lower import Matmul, conv_plan, conv_runner, copy, exact_products, flip, from_exact, limbs, on_cpu, place

__all__ = ["conv", "transpose", "patches", "local", "vjp"]

Array = Any
Run = Callable[..., Any]


def conv(spec: ConvSpec, transposed_kernel: bool = False) -> Run:
    """``conv_general_dilated`` of ``spec`` (the forward convolution of a
    ``conv_transpose``, with its kernel as given when ``transposed_kernel``).

    The tap-by-tap path (slices, matrix products, pads) is differentiated by
    MLX itself.  The ``conv_general`` path, the FFT path and complex
    convolutions are ``mx.custom_function`` objects whose VJP is
    :func:`vjp`'s two convolutions, computed directly: MLX's own gradient of
    ``conv_general`` gets the shapes or the values wrong for many strided and
    dilated convolutions (the conformance suite's random autodiff cases), the
    transforms' adjoints would put rounding noise where the direct gradients
    are exact zeros, and complex parts are put together with ``mx.view``.
    That VJP is itself differentiable again; complex cotangents follow MLX's
    convention (conjugated: ``mx.vjp`` of ``a * x`` is ``g * conj(a)``)."""
    p = conv_plan(spec, transposed_kernel)
    direct = conv_runner(p)
    fft = spectral.with_fft(p, direct)
    if fft is None and p.dtypes.mode != "complex" and p.path != "native":
        return direct
    return _differentiable(fft or direct, spec, transposed_kernel, p.dtypes.mode == "complex")


def _differentiable(forward: Run, spec: ConvSpec, transposed_kernel: bool, complex_: bool) -> Run:
    """``forward`` with :func:`vjp` of ``spec`` as its gradient (built at the first backward pass)."""
    fn = mx.custom_function(forward)
    rs = spec.dimension_numbers.rhs_spec
    spatial = tuple(rs[2:])
    grads: list[Run] = []

    def transposed(k: Array) -> Array:  # flip and swap I/O: its own inverse
        return mx.swapaxes(flip(k, spatial), rs[0], rs[1])

    def backward(primals: Any, cotangent: Any, output: Any) -> tuple[Array, Array]:
        if not grads:
            with use_fft("never"):  # the direct convolutions, whatever the mode of the forward call
                grads.append(vjp(spec))
        lhs, rhs = primals
        if isinstance(cotangent, (list, tuple)):
            cotangent = cotangent[0]
        if complex_:
            cotangent = mx.conj(cotangent)
        kernel = transposed(rhs) if transposed_kernel else rhs
        lhs_ct, rhs_ct = grads[0](lhs, kernel, cotangent)
        if transposed_kernel:
            rhs_ct = transposed(rhs_ct)
        if complex_:
            lhs_ct, rhs_ct = mx.conj(lhs_ct), mx.conj(rhs_ct)
        return lhs_ct, rhs_ct

    fn.vjp(backward)
    run: Run = fn
    return run


def transpose(tspec: TransposeSpec) -> Run:
    """``conv_transpose``: the forward convolution of ``tspec.conv``."""
    return conv(tspec.conv, tspec.transpose_kernel)


def _canonical_patches(pspec: PatchesSpec) -> Callable[[Array], Array]:
    """Patches of a canonical ``(N, *S, C)`` input as ``(N, *Y, C, T)`` in the
    input's dtype: for each tap (row-major over ``filter_shape``), the input
    elements its outputs read, placed among zeros (padding, holes)."""
    conv_spec = pspec.conv
    window, out = pspec.filter_shape, conv_spec.out_spatial
    per_axis: list[dict[int, TapReads]] = [
        {r.tap: r for r in axis_reads(size, y, k, s, ld, rd, lo)}
        for size, y, k, s, ld, rd, (lo, _) in zip(conv_spec.lhs_spatial, out, window, conv_spec.window_strides,
                                                  conv_spec.lhs_dilation, conv_spec.rhs_dilation, conv_spec.padding)
    ]
    taps: list[tuple[TapReads, ...] | None] = []
    for tap in product(*(range(k) for k in window)):
        found = [axis.get(t) for axis, t in zip(per_axis, tap)]
        taps.append(None if any(r is None for r in found) else tuple(r for r in found if r is not None))

    def gather(x: Array) -> Array:
        pieces = []
        for combo in taps:
            if combo is None:
                pieces.append(mx.zeros((x.shape[0], *out, x.shape[-1]), dtype=x.dtype))
            else:
                index = (slice(None), *(slice(r.in_start, r.in_stop, r.in_step) for r in combo), slice(None))
                pieces.append(place(x[index], combo, out))
        if len(pieces) == 1:  # one tap: the piece may be a view of the input, and mx.stack keeps it one
            return mx.expand_dims(copy(pieces[0]), -1)
        return mx.stack(pieces, axis=-1)

    return gather


def patches(pspec: PatchesSpec) -> Run:
    """``conv_general_dilated_patches``: a gather, channel-major windows."""
    conv_spec = pspec.conv
    dn = conv_spec.dimension_numbers
    out_dtype = dtype(conv_spec.out_dtype)
    if 0 in conv_spec.out_shape:
        def empty(lhs: Array) -> Array:
            return mx.zeros(conv_spec.out_shape, dtype=out_dtype)

        return empty
    ls = dn.lhs_spec
    lhs_perm = (ls[0], *ls[2:], ls[1])
    os_ = dn.out_spec
    out_perm = inverse_permutation((os_[0], *os_[2:], os_[1]))
    gather = _canonical_patches(pspec)
    features = conv_spec.out_features

    def run(lhs: Array) -> Array:
        x = mx.transpose(lhs, lhs_perm)
        y = gather(x)  # (N, *Y, C, T): a fresh array, never a view of lhs
        y = y.reshape(*y.shape[:-2], features)
        if y.dtype != out_dtype:
            y = y.astype(out_dtype)
        return mx.transpose(y, out_perm)

    return run


def local(lspec: LocalSpec) -> Run:
    """``conv_general_dilated_local``: the patches ``(*Y, N, P)`` times the kernel
    ``(*Y, P, O)``, one matrix product per output position, with the dtype
    policy of :mod:`.plan` (half in float32, float64 on the CPU stream,
    integers and bool exact)."""
    pspec = lspec.patches
    conv_spec = pspec.conv
    dn = lspec.dimension_numbers
    n = conv_spec.nspatial
    name = conv_spec.dtype
    out_dtype = dtype(name)
    contraction = lspec.rhs_shape[dn.rhs_spec[1]]
    if 0 in lspec.out_shape or contraction == 0:
        def empty(lhs: Array, rhs: Array) -> Array:
            return mx.zeros(lspec.out_shape, dtype=out_dtype)

        return empty
    ls, rs, os_ = dn
    lhs_perm = (ls[0], *ls[2:], ls[1])
    rhs_perm = (*rs[2:], rs[1], rs[0])  # (*Y, P, O)
    out_perm = inverse_permutation((os_[0], *os_[2:], os_[1]))
    gather = _canonical_patches(pspec)
    kind = dtype_kind(name)

    def operands(lhs: Array, rhs: Array) -> tuple[Array, Array]:
        pat = gather(mx.transpose(lhs, lhs_perm))  # (N, *Y, C, T)
        pat = mx.moveaxis(pat.reshape(*pat.shape[:-2], contraction), 0, n)  # (*Y, N, P)
        return pat, mx.transpose(rhs, rhs_perm)

    def finish(y: Array) -> Array:  # (*Y, N, O) -> output layout
        y = mx.moveaxis(y, n, 0)
        if y.dtype != out_dtype:
            y = y.astype(out_dtype)
        return mx.transpose(y, out_perm)

    if kind in "biu":
        bits = dtype_bits(name)

        def exact(lhs: Array, rhs: Array) -> Array:
            pat, ker = operands(lhs, rhs)
            pl, largest = limbs(pat, name, bits)
            kl, _ = limbs(ker, name, bits)

            def contract(a: Array, b: Array, matmul: Matmul) -> Array:
                return matmul(a, b)

            total = exact_products(pl, kl, largest, (min(bits, 64) + 15) // 16, contract)
            return finish(from_exact(total, name, name))

        return on_cpu(exact)
    compute = dtype({"f": "float64" if name == "float64" else "float32", "c": "complex64"}[kind])

    def run(lhs: Array, rhs: Array) -> Array:
        pat, ker = operands(lhs, rhs)
        if pat.dtype != compute:
            pat, ker = pat.astype(compute), ker.astype(compute)
        return finish(pat @ ker)

    return on_cpu(run) if name == "float64" else run


def vjp(spec: ConvSpec) -> Run:
    """``conv_general_dilated_vjp``: ``(lhs cotangent, rhs cotangent)`` as the two
    convolutions of XLA's transpose rules (:mod:`polyconv.spec.vjp`), each
    computed by this backend's convolution; integer and bool operands with a
    floating cotangent keep the cotangent's dtype (:func:`polyconv.derive.cotangent_dtype`)."""
    lhs_plan, rhs_plan = vjp_lhs_plan(spec), vjp_rhs_plan(spec)
    lhs_conv = conv(lhs_plan.conv)
    rhs_conv = None if rhs_plan.conv is None else conv(rhs_plan.conv)
    groups, b = lhs_plan.groups, lhs_plan.batch_groups
    n = spec.nspatial
    window = spec.window
    o, i = spec.out_features, spec.rhs_shape[spec.dimension_numbers.rhs_spec[1]]
    lhs_out = inverse_permutation(lhs_plan.lhs_spec)
    floating = dtype_kind(spec.out_dtype) in "fc"

    def cotangent_dtype(primal: Array, cotangent: Array) -> Any:
        if floating and dtype_kind(dtype_name(primal.dtype)) in "iub":
            return cotangent.dtype
        return primal.dtype

    def run(lhs: Array, rhs: Array, cotangent: Array) -> tuple[Array, Array]:
        # (O, I, *K) -> (G, O/G, I, *K) -> (O/G, G, I, *K) -> (O/G, G*I, *K), flipped
        kernel = mx.transpose(rhs, lhs_plan.rhs_spec).reshape(groups, o // groups, i, *window)
        kernel = mx.moveaxis(kernel, 0, 1).reshape(o // groups, groups * i, *window)
        if n:
            kernel = flip(kernel, range(2, n + 2))
        if kernel.dtype != cotangent.dtype:
            kernel = kernel.astype(cotangent.dtype)
        out = lhs_conv(cotangent, kernel)  # canonical (N / B, B * C, *S)
        if b > 1:  # (N/B, B*C, *S) -> (B, N/B, C, *S) -> (N, C, *S): batch groups are batch-major
            nb, bc = out.shape[0], out.shape[1]
            out = mx.moveaxis(out.reshape(nb, b, bc // b, *out.shape[2:]), 1, 0)
            out = out.reshape(b * nb, bc // b, *out.shape[3:])
        lhs_ct = mx.transpose(out, lhs_out)
        lhs_dtype = cotangent_dtype(lhs, cotangent)
        if lhs_ct.dtype != lhs_dtype:
            lhs_ct = lhs_ct.astype(lhs_dtype)
        rhs_dtype = cotangent_dtype(rhs, cotangent)
        if rhs_conv is None:
            return lhs_ct, mx.zeros(rhs.shape, dtype=rhs_dtype)
        source = lhs if lhs.dtype == cotangent.dtype else lhs.astype(cotangent.dtype)
        rhs_ct = rhs_conv(source, cotangent)
        return lhs_ct, rhs_ct if rhs_ct.dtype == rhs_dtype else rhs_ct.astype(rhs_dtype)

    return run
