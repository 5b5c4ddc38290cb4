"""From polyconv's parsed specs to calls of ``jax.lax``'s functions.

Each builder turns a spec into ``(lax_function, positional_args, needs_x64)``
once, and :func:`make_runner` into a function of the operands alone;
:class:`polyconv.caching.IdentityCache` keeps the result for the spec object, so a call (or a
second trace of a jitted function, which gets the same cached spec from
polyconv's parser) costs one dictionary look-up here.  JAX is imported on
first use, never at import time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from polyconv.errors import UnsupportedDtypeError
from polyconv.spec import ConvSpec, LocalSpec, PatchesSpec, TransposeSpec

__all__ = [
    "jax_modules", "lax_conv_args", "transpose_args", "patches_args", "local_args", "make_runner",
    "require_x64",
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


def lax_conv_args(spec: ConvSpec) -> Entry:
    """``jax.lax.conv_general_dilated`` and its arguments after the operands."""
    _, lax, jnp = jax_modules()
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


def patches_args(pspec: PatchesSpec) -> Entry:
    """``jax.lax.conv_general_dilated_patches`` and its arguments; ``None`` as
    the function when the lhs has no channels (JAX would ask for zero groups)."""
    _, lax, jnp = jax_modules()
    conv = pspec.conv
    x64 = _needs_x64(conv.preferred_element_type)
    if conv.in_features == 0:
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
    function when the lhs has no channels."""
    _, lax, _ = jax_modules()
    conv = lspec.patches.conv
    if conv.in_features == 0:
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
