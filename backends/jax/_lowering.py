"""From polyconv's parsed specs to calls of ``jax.lax``'s functions.

Each builder turns a spec into ``(lax_function, positional_args, needs_x64)``
once, and :func:`make_runner` into a function of the operands alone;
:class:`polyconv.caching.IdentityCache` keeps the result for the spec object, so a call (or a
second trace of a jitted function, which gets the same cached spec from
polyconv's parser) costs one dictionary look-up here.  JAX is imported on
first use, never at import time.

Parameters that XLA should not be handed as they are (a stride, dilation or
pad past 2**31, which overflow XLA's int64 shape arithmetic once added up
and cuDNN's int32 ones sooner, or a padded, dilated input far larger than
the input and the output: :func:`polyconv.backends.gemm.reach.beyond_native`)
are computed tap by tap instead (:func:`conv_by_taps`), with ``jax.lax``
operations still, so ``jit``, ``grad`` and ``vmap`` work as before; patches
and local convolutions of such specs then go through :mod:`polyconv.derive`
onto it (their builders give no function).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from itertools import product
from typing import Any, TypeVar

from polyconv.errors import UnsupportedDtypeError
from polyconv.spec import ConvSpec, LocalSpec, PatchesSpec, TransposeSpec

from ..gemm.reach import axis_reads, beyond_native

__all__ = [
    "jax_modules", "lax_conv_args", "transpose_args", "patches_args", "local_args", "make_runner",
    "require_x64", "beyond_xla", "conv_by_taps",
]

Entry = tuple[Any, tuple[Any, ...], bool]
T = TypeVar("T")


@functools.cache
def jax_modules() -> tuple[Any, Any, Any]:
    """``(jax, jax.lax, jax.numpy)``, imported once."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    return jax, lax, jnp


def require_x64(dtype: str | None, op: str) -> None:
    """A 64-bit ``preferred_element_type`` needs x64: JAX would silently truncate it."""
    jax, _, _ = jax_modules()
    if not jax.config.jax_enable_x64:
        raise UnsupportedDtypeError(
            op, "preferred_element_type", "is 64-bit, which the 'jax' backend computes only with "
            "jax_enable_x64 on (jax.config.update('jax_enable_x64', True))", got=dtype,
        )


def make_runner(entry: Entry, dtype: str | None, op: str) -> Callable[..., Any] | None:
    """``fn(*operands, *args)`` as a function of the operands alone (None when
    ``entry`` has no function), checking x64 first where the entry needs it."""
    fn, args, x64 = entry
    if fn is None:
        return None
    if x64:
        def run_x64(*operands: Any) -> Any:
            require_x64(dtype, op)
            return fn(*operands, *args)

        return run_x64

    def run(*operands: Any) -> Any:
        return fn(*operands, *args)

    return run


def _precision(lax: Any, names: tuple[str, str] | None) -> Any:
    if names is None:
        return None
    table = {"default": lax.Precision.DEFAULT, "high": lax.Precision.HIGH, "highest": lax.Precision.HIGHEST}
    return (table[names[0]], table[names[1]])


def _dtype(jnp: Any, name: str | None) -> Any:
    return None if name is None else jnp.dtype(name)


_X64_DTYPES = frozenset({"int64", "uint64", "float64", "complex128"})


def _needs_x64(name: str | None) -> bool:
    return name in _X64_DTYPES


def _widened(lax: Any, fn: Any, spec: ConvSpec) -> Any:
    """``fn``, or, for complex64 operands accumulated in complex128, ``fn`` on the
    operands converted to complex128 first.

    XLA:CPU multiplies and sums complex64 operands in complex64 even when asked
    for a complex128 result (errors of 5e-7 where the documented accumulation
    in complex128 gives 1e-16); the conversion is exact, so the result is the
    documented one on every platform."""
    if spec.dtype != "complex64" or spec.preferred_element_type != "complex128":
        return fn
    def widened(lhs: Any, rhs: Any, *args: Any) -> Any:
        return fn(lax.convert_element_type(lhs, "complex128"), lax.convert_element_type(rhs, "complex128"), *args)

    return widened


def beyond_xla(spec: ConvSpec) -> bool:
    """Whether ``spec``'s parameters are not passed to XLA as they are
    (:func:`polyconv.backends.gemm.reach.beyond_native`): it is then computed
    by :func:`conv_by_taps`."""
    return beyond_native(spec.lhs_spatial, spec.window, spec.out_spatial, spec.window_strides, spec.padding,
                         spec.lhs_dilation, spec.rhs_dilation)


def conv_by_taps(lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
    """``conv_general_dilated`` as a sum over the kernel taps that reach the input.

    On each spatial axis a tap reads the outputs ``y0 + m * P`` from the input
    elements ``i0 + m * s'`` (:func:`polyconv.backends.gemm.reach.axis_reads`):
    one strided ``lax.slice`` of the lhs, convolved with the tap (a 1x1
    ``lax.conv_general_dilated``: groups, layouts, precision and dtypes as
    XLA's) and placed in the output by ``lax.pad`` (its interior padding is
    the step ``P``).  Taps that read only padding or holes are skipped, so no
    array is larger than the output or the operands, whatever the padding,
    strides and dilations.  float16 and bfloat16 taps add up in float32."""
    _, lax, jnp = jax_modules()
    dn = spec.dimension_numbers
    n = spec.nspatial
    out_dtype = jnp.dtype(spec.out_dtype)
    wide = spec.out_dtype in ("float16", "bfloat16")
    preferred = jnp.dtype("float32") if wide else _dtype(jnp, spec.preferred_element_type)
    per_axis = [
        axis_reads(size, y, k, s, ld, rd, lo)
        for size, y, k, s, ld, rd, (lo, _) in zip(spec.lhs_spatial, spec.out_spatial, spec.window, spec.window_strides,
                                                  spec.lhs_dilation, spec.rhs_dilation, spec.padding)
    ]
    total = None
    for reads in product(*per_axis):
        start, limit, step = [0] * lhs.ndim, list(lhs.shape), [1] * lhs.ndim
        kstart, klimit = [0] * rhs.ndim, list(rhs.shape)
        config = [(0, 0, 0)] * len(spec.out_shape)
        for r, lhs_axis, rhs_axis, out_axis, y in zip(reads, dn.lhs_spec[2:], dn.rhs_spec[2:], dn.out_spec[2:],
                                                      spec.out_spatial):
            start[lhs_axis], limit[lhs_axis], step[lhs_axis] = r.in_start, r.in_stop, r.in_step
            kstart[rhs_axis], klimit[rhs_axis] = r.tap, r.tap + 1
            config[out_axis] = (r.out_start, y - r.out_stop, r.out_step - 1)
        part = lax.conv_general_dilated(
            lax.slice(lhs, start, limit, step), lax.slice(rhs, kstart, klimit), (1,) * n, [(0, 0)] * n, None, None,
            lax.ConvDimensionNumbers(*dn), spec.feature_group_count, spec.batch_group_count,
            _precision(lax, spec.precision), preferred,
        )
        part = lax.pad(part, jnp.zeros((), part.dtype), config)
        if total is None:
            total = part
        else:
            total = lax.bitwise_or(total, part) if part.dtype == jnp.bool_ else lax.add(total, part)
    if total is None:  # no tap reaches the input
        return jnp.zeros(spec.out_shape, out_dtype)
    return total if total.dtype == out_dtype else lax.convert_element_type(total, out_dtype)


def lax_conv_args(spec: ConvSpec) -> Entry:
    """``jax.lax.conv_general_dilated`` and its arguments after the operands
    (:func:`conv_by_taps` where :func:`beyond_xla`)."""
    _, lax, jnp = jax_modules()
    if beyond_xla(spec):
        return _widened(lax, conv_by_taps, spec), (spec,), _needs_x64(spec.preferred_element_type)
    args = (
        spec.window_strides,
        spec.padding,
        spec.lhs_dilation,
        spec.rhs_dilation,
        lax.ConvDimensionNumbers(*spec.dimension_numbers),
        spec.feature_group_count,
        spec.batch_group_count,
        _precision(lax, spec.precision),
        _dtype(jnp, spec.preferred_element_type),
    )
    return _widened(lax, lax.conv_general_dilated, spec), args, _needs_x64(spec.preferred_element_type)


def transpose_args(tspec: TransposeSpec) -> Entry:
    """``jax.lax.conv_transpose`` and its arguments: the strides are the forward
    convolution's lhs dilation, and the padding its explicit pairs, whichever
    convention the caller used (so ``use_consistent_padding`` stays False)."""
    _, lax, jnp = jax_modules()
    conv = tspec.conv
    if beyond_xla(conv):  # the forward convolution of the dilated lhs, tap by tap
        return _widened(lax, _transpose_by_taps, conv), (tspec,), _needs_x64(conv.preferred_element_type)
    args = (
        conv.lhs_dilation,
        conv.padding,
        conv.rhs_dilation,
        lax.ConvDimensionNumbers(*conv.dimension_numbers),
        tspec.transpose_kernel,
        _precision(lax, conv.precision),
        _dtype(jnp, conv.preferred_element_type),
    )
    return _widened(lax, lax.conv_transpose, conv), args, _needs_x64(conv.preferred_element_type)


def _transpose_by_taps(lhs: Any, rhs: Any, tspec: TransposeSpec) -> Any:
    """``conv_transpose`` by :func:`conv_by_taps`: the kernel flipped and its I
    and O axes swapped first when ``transpose_kernel`` (as
    :func:`polyconv.derive.conv_transpose`)."""
    _, lax, jnp = jax_modules()
    dn = tspec.conv.dimension_numbers
    if tspec.transpose_kernel:
        rhs = jnp.swapaxes(lax.rev(rhs, tuple(dn.rhs_spec[2:])), dn.rhs_spec[0], dn.rhs_spec[1])
    return conv_by_taps(lhs, rhs, tspec.conv)


def patches_args(pspec: PatchesSpec) -> Entry:
    """``jax.lax.conv_general_dilated_patches`` and its arguments; ``None`` as
    the function when the lhs has no channels (JAX would ask for zero groups)
    or when :func:`beyond_xla` (the identity-kernel convolution of
    :func:`polyconv.derive.patches` then computes them)."""
    _, lax, jnp = jax_modules()
    conv = pspec.conv
    x64 = _needs_x64(conv.preferred_element_type)
    if conv.in_features == 0 or beyond_xla(conv):
        return None, (), x64
    precision = _precision(lax, conv.precision)
    args = (
        pspec.filter_shape,
        conv.window_strides,
        conv.padding,
        conv.lhs_dilation,
        conv.rhs_dilation,
        lax.ConvDimensionNumbers(*conv.dimension_numbers),
        None if precision is None else precision[0],  # JAX takes the lhs precision only
        _dtype(jnp, conv.preferred_element_type),
    )
    return lax.conv_general_dilated_patches, args, x64


def local_args(lspec: LocalSpec) -> Entry:
    """``jax.lax.conv_general_dilated_local`` and its arguments; ``None`` as the
    function when the lhs has no channels or when :func:`beyond_xla`
    (:func:`polyconv.derive.local` then computes it)."""
    _, lax, _ = jax_modules()
    conv = lspec.patches.conv
    if conv.in_features == 0 or beyond_xla(conv):
        return None, (), False
    args = (
        conv.window_strides,
        conv.padding,
        lspec.patches.filter_shape,
        conv.lhs_dilation,
        conv.rhs_dilation,
        lax.ConvDimensionNumbers(*conv.dimension_numbers),
        _precision(lax, lspec.precision),
    )
    return lax.conv_general_dilated_local, args, False
