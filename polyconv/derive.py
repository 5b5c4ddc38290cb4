"""Every op written in terms of the one primitive, ``conv_general_dilated``.

A backend that supplies only the primitive gets ``conv_transpose``,
``conv_general_dilated_patches``, ``conv_general_dilated_local`` and the
gradients from here (the patches by copying, :mod:`polyconv.gather`, never
through the primitive).  The few array manipulations around the primitive (flip,
permute, reshape, a batched matrix product) go through
the operands' array-API namespace (``array_api_compat.array_namespace``), so
they work on NumPy, CuPy, PyTorch, JAX and array-API arrays alike, stay on the
operands' device, and are traced like any other operation under ``jax.jit``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from . import gather
from .backend import Backend
from .devices import device_of, on
from .spec import LocalSpec, PatchesSpec, TransposeSpec, VjpLhsPlan, VjpRhsPlan, dtype_kind, dtype_name
from .spec.dimension_numbers import inverse_permutation

__all__ = ["conv_transpose", "patches", "local", "vjp_lhs", "vjp_rhs", "cotangent_dtype"]


def conv_transpose(be: Backend, lhs: Any, rhs: Any, spec: TransposeSpec) -> Any:
    """``conv_transpose``: the forward convolution of the lhs dilated by the strides."""
    if spec.transpose_kernel:
        xp = array_api_compat.array_namespace(rhs)
        dn = spec.conv.dimension_numbers
        rhs = xp.flip(rhs, axis=tuple(dn.rhs_spec[2:]))
        perm = list(range(rhs.ndim))
        perm[dn.rhs_spec[0]], perm[dn.rhs_spec[1]] = dn.rhs_spec[1], dn.rhs_spec[0]
        rhs = xp.permute_dims(rhs, tuple(perm))
    return be.conv_general_dilated(lhs, rhs, spec.conv)


def patches(be: Backend, lhs: Any, spec: PatchesSpec) -> Any:
    """``conv_general_dilated_patches``: a gather (:func:`polyconv.gather.patches`).

    Not a convolution with an identity kernel (``jax.lax``'s way), whose
    products ``inf * 0`` would turn the neighbours of an infinite or NaN input
    into NaN, nor an FFT, whose rounding noise would replace the copies;
    ``be`` is not called."""
    return gather.patches(lhs, spec)


def local(be: Backend, lhs: Any, rhs: Any, spec: LocalSpec, patches_of: Any = None, product: Any = None) -> Any:
    """``conv_general_dilated_local``: patches, then one matrix product per output position.

    ``patches_of(lhs, patches_spec)`` computes the patches (the backend's
    native path, or :func:`patches`); ``product(a, b)`` the batched matrix
    product of ``(*Y, N, I)`` by ``(*Y, I, O)`` (the namespace's ``matmul``,
    or the backend's own).
    """
    xp = array_api_compat.array_namespace(lhs, rhs)
    dn = spec.dimension_numbers
    n = len(dn.out_spec) - 2
    pat = patches(be, lhs, spec.patches) if patches_of is None else patches_of(lhs, spec.patches)
    # patches to (*Y, N, I), kernel to (*Y, I, O): a batched matrix product over positions
    spatial = tuple(range(2, n + 2))
    pat = xp.permute_dims(pat, tuple(dn.out_spec[a] for a in (*spatial, 0, 1)))
    ker = xp.permute_dims(rhs, tuple(dn.rhs_spec[a] for a in (*spatial, 1, 0)))
    if pat.dtype == xp.bool:  # the standard's matmul is numeric: count the true products instead
        pat, ker = xp.astype(pat, xp.int32), xp.astype(ker, xp.int32)
    out = (xp.matmul if product is None else product)(pat, ker)  # (*Y, N, O)
    if out.dtype != lhs.dtype:  # NumPy's matmul promotes bfloat16 to float32
        out = xp.astype(out, lhs.dtype)
    # (*Y, N, O) -> canonical (N, O, *Y) -> output layout
    canonical = xp.permute_dims(out, (n, n + 1, *range(n)))
    return xp.permute_dims(canonical, inverse_permutation(dn.out_spec))


def vjp_lhs(be: Backend, rhs: Any, cotangent: Any, plan: VjpLhsPlan, lhs_dtype: Any) -> Any:
    """Cotangent of the lhs: the cotangent convolved with the regrouped, flipped kernel."""
    xp = array_api_compat.array_namespace(rhs, cotangent)
    conv = plan.conv
    n = conv.nspatial
    groups = plan.groups
    o_g, gi = conv.rhs_shape[0], conv.rhs_shape[1]
    window = conv.rhs_shape[2:]
    # (O, I, *K) -> (G, O/G, I, *K) -> (O/G, G, I, *K) -> (O/G, G*I, *K), flipped
    kernel = xp.permute_dims(rhs, plan.rhs_spec)
    kernel = xp.reshape(kernel, (groups, o_g, gi // groups, *window))
    kernel = xp.permute_dims(kernel, (1, 0, *range(2, n + 3)))
    kernel = xp.reshape(kernel, (o_g, gi, *window))
    kernel = xp.astype(xp.flip(kernel, axis=tuple(range(2, n + 2))), cotangent.dtype)
    out = be.conv_general_dilated(cotangent, kernel, conv)  # canonical (N / B, B * C, *S)
    b = plan.batch_groups
    if b > 1:  # (N/B, B*C, *S) -> (B, N/B, C, *S) -> (N, C, *S): batch groups are batch-major
        nb, bc = out.shape[0], out.shape[1]
        out = xp.reshape(out, (nb, b, bc // b, *out.shape[2:]))
        out = xp.permute_dims(out, (1, 0, *range(2, n + 3)))
        out = xp.reshape(out, (b * nb, bc // b, *out.shape[3:]))
    return xp.astype(xp.permute_dims(out, inverse_permutation(plan.lhs_spec)), lhs_dtype)


def vjp_rhs(be: Backend, lhs: Any, rhs: Any, cotangent: Any, plan: VjpRhsPlan, rhs_dtype: Any) -> Any:
    """Cotangent of the rhs: the lhs convolved with the cotangent as the kernel."""
    xp = array_api_compat.array_namespace(lhs, rhs, cotangent)
    if plan.conv is None:
        return xp.zeros(rhs.shape, dtype=rhs_dtype, **on(device_of(rhs)))
    out = be.conv_general_dilated(xp.astype(lhs, cotangent.dtype), cotangent, plan.conv)
    return xp.astype(out, rhs_dtype)


def cotangent_dtype(primal: Any, cotangent: Any) -> Any:
    """An operand's cotangent has the operand's dtype, except that integer and
    bool operands with a floating cotangent keep the cotangent's dtype:
    rounding real-valued gradients to integers would destroy them."""
    if dtype_kind(dtype_name(primal.dtype)) in "iub" and dtype_kind(dtype_name(cotangent.dtype)) in "fc":
        return cotangent.dtype
    return primal.dtype
