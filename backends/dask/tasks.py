"""The functions a dask graph of the dask backend calls, on the workers.

Each runs on the chunks themselves (NumPy or CuPy arrays), on the backend
that owns the chunk type, so that a CuPy-backed Dask array runs the CuPy
backend (cuDNN) per block.  They are plain module-level functions, so that
``dask.distributed`` pickles them by reference.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from polyconv.algorithm import use_fft
from polyconv.backend import Backend
from polyconv.quiet import quiet
from polyconv.spec import ConvSpec
from polyconv.spec.dtypes import namespace_dtype

__all__ = ["assemble", "block_conv", "block_kernel_grad", "block_patches", "cast", "join", "matmul", "total",
           "zeros"]


def chunk_backend(x: Any) -> Backend:
    """The backend owning the chunk ``x`` (NumPy for ``numpy.ndarray``...)."""
    from polyconv.dispatch import owner_of
    from polyconv.registry import registry

    name = owner_of(x)
    if name is None or name == "dask":
        raise TypeError(f"polyconv's dask backend: a chunk of type {type(x).__name__} has no backend to run it")
    return registry.load(name)


def join(pieces: Any, axis: int = 2) -> Any:
    """Concatenate nested lists of chunk pieces: the outer list along ``axis``,
    the next along ``axis + 1``, and so on (like ``dask.array.core.concatenate3``)."""
    if not isinstance(pieces, list):
        return pieces
    parts = [join(p, axis + 1) for p in pieces]
    if len(parts) == 1:
        return parts[0]
    xp = array_api_compat.array_namespace(*parts)
    return xp.concat(parts, axis=axis)


def block_conv(spec: ConvSpec, pieces: Any, kernel: Any, fft: str = "auto") -> Any:
    """One block convolution: the joined lhs pieces with the kernel slice, in
    the FFT mode of the call that made the graph (:func:`polyconv.use_fft`)."""
    lhs = join(pieces)
    be = chunk_backend(lhs)
    with use_fft(fft):
        return be.conv_general_dilated(lhs, kernel, spec)


def block_kernel_grad(spec: ConvSpec, pieces: Any, kernel: Any, cotangent: Any, fft: str = "auto") -> Any:
    """One block's share of the kernel's cotangent, with every operand in
    ``spec.dtype`` (the dtype the shares are added up in), in the FFT mode of
    the call that made the graph."""
    from polyconv import derive
    from polyconv.spec import vjp_rhs_plan

    lhs = join(pieces)
    be = chunk_backend(lhs)
    xp = array_api_compat.array_namespace(lhs, kernel, cotangent)
    dtype = namespace_dtype(xp, spec.dtype, cotangent)
    lhs, kernel, cotangent = (xp.astype(a, dtype, copy=False) for a in (lhs, kernel, cotangent))
    with use_fft(fft):
        return derive.vjp_rhs(be, lhs, kernel, cotangent, vjp_rhs_plan(spec), dtype)


def block_patches(block: Any, dtype: str, filter_shape: tuple[int, ...], strides: tuple[int, ...],
                  padding: tuple[tuple[int, int], ...], lhs_dilation: tuple[int, ...], rhs_dilation: tuple[int, ...],
                  preferred: str | None) -> Any:
    """The patches of one block (canonical layout, its spatial axes whole):
    copies of its elements (:func:`polyconv.gather.patches`)."""
    from polyconv import gather
    from polyconv.spec import ConvDimensionNumbers, patches_spec

    axes = tuple(range(block.ndim))
    spec = patches_spec(block.shape, dtype, filter_shape, strides, padding, lhs_dilation, rhs_dilation,
                        ConvDimensionNumbers(axes, axes, axes), None, preferred)
    return gather.patches(block, spec)


def total(a: Any, b: Any) -> Any:
    """The sum of two partial results (a logical or for bool)."""
    xp = array_api_compat.array_namespace(a, b)
    if a.dtype == xp.bool:
        return xp.logical_or(a, b)
    return _add(a, b)


@quiet  # inf + -inf is NaN by definition, without NumPy's warning (polyconv.quiet)
def _add(a: Any, b: Any) -> Any:
    return a + b


@quiet  # inf * 0 is NaN by definition, without NumPy's warning at compute time (polyconv.quiet)
def matmul(a: Any, b: Any) -> Any:
    """The batched matrix product of two chunks (a local convolution's per-position products)."""
    return array_api_compat.array_namespace(a, b).matmul(a, b)


def cast(x: Any, dtype: str) -> Any:
    """``x`` in ``dtype`` (the partial sums' dtype back to the result's)."""
    xp = array_api_compat.array_namespace(x)
    return xp.astype(x, namespace_dtype(xp, dtype, x))


def zeros(meta: Any, shape: tuple[int, ...], dtype: str) -> Any:
    """Zeros of ``shape`` and ``dtype`` in the namespace of ``meta`` (an empty chunk)."""
    xp = array_api_compat.array_namespace(meta)
    return xp.zeros(shape, dtype=namespace_dtype(xp, dtype, meta))


def assemble(meta: Any, shape: tuple[int, ...], dtype: str, parts: list[Any]) -> Any:
    """An array of ``shape`` whose regions ``slices`` hold ``part``, for each
    ``(slices, part)`` in ``parts`` (regions disjoint; the rest zeros)."""
    out = zeros(meta, shape, dtype)
    xp = array_api_compat.array_namespace(out)
    for slices, part in parts:
        out[slices] = xp.astype(part, out.dtype)
    return out
