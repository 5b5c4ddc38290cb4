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
the input and the output: :func:`polyconv.spec.canonical.beyond_native`)
are computed tap by tap instead (:func:`conv_by_taps`), with ``jax.lax``
operations still, so ``jit``, ``grad`` and ``vmap`` work as before.
Convolutions and transposed convolutions with a pad that XLA:CPU, or the
convolutions of JAX's gradient rules, compute wrongly are rewritten
(:func:`tight`: the input cropped, the outputs that read padding alone added
back as zeros).  Patches, and so local convolutions, are copies of the input
(:func:`polyconv.gather.patches`), never XLA's identity-kernel convolution.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from typing import Any, TypeVar

from polyconv import caching, gather
from polyconv.errors import UnsupportedDtypeError
from polyconv.spec import ConvSpec, LocalSpec, PatchesSpec, TransposeSpec, dtype_kind
from polyconv.spec.canonical import axis_reach, axis_reads, beyond_native
from polyconv.spec.dimension_numbers import inverse_permutation

from . import cpu_lowering

__all__ = [
    "jax_modules", "lax_conv_args", "transpose_args", "patches_args", "local_args", "make_runner",
    "require_x64", "beyond_xla", "conv_by_taps", "tight", "tight_conv", "Tight",
]

Entry = tuple[Any, tuple[Any, ...], bool]
T = TypeVar("T")


@caching.lru_cache(None, name="polyconv.backends.jax.modules")
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


#: Operands accumulated in a wider dtype that are converted first (see _widened): always, and
#: on JAX before 0.7 only (whose transposition rule breaks on the others).
_WIDENED = {("complex64", "complex128"): "complex128"}
_WIDENED_BEFORE_0_7 = {**_WIDENED, ("float32", "float64"): "float64", ("float16", "float32"): "float32",
                       ("bfloat16", "float32"): "float32"}
#: float16 convolutions summed in float32 and rounded once, on the CPU with JAX before 0.7.2 (see _widened).
_F16_SUMS_BEFORE_0_7_2 = {("float16", "float16"): "float32"}


def jax_release() -> tuple[int, ...]:
    """JAX's release as numbers, ``(0, 10, 2)`` for ``'0.10.2'``, for the rules that
    depend on it (read at every call: tests set ``jax.__version__``)."""
    return tuple(int(p) for p in jax_modules()[0].__version__.split(".")[:3] if p.isdigit())


@caching.lru_cache(None, name="polyconv.backends.jax.widenings")
def _widenings() -> dict[tuple[str, str], str]:
    jax = jax_modules()[0]
    release = jax_release()
    table = dict(_WIDENED_BEFORE_0_7 if release < (0, 7) else _WIDENED)
    if release < (0, 7, 2) and jax.default_backend() == "cpu":
        table.update(_F16_SUMS_BEFORE_0_7_2)
    return table


def _widened(lax: Any, fn: Any, spec: ConvSpec) -> Any:
    """``fn``, or, for operands accumulated in a wider dtype where that is
    needed, ``fn`` on the operands converted to the wider dtype first (and its
    result rounded to the spec's dtype once, where that is narrower).

    XLA:CPU multiplies and sums complex64 operands in complex64 even when asked
    for a complex128 result (errors of 5e-7 where the documented accumulation
    in complex128 gives 1e-16): always.  JAX before 0.7 differentiates a
    convolution with a wider ``preferred_element_type`` (float16 or bfloat16
    to float32, float32 to float64) into a convolution of a wide cotangent
    with a narrow operand, which it then refuses: on those versions.  XLA:CPU
    in JAX before 0.7.2 sums float16 convolutions in float16 on processors
    with AVX512-FP16 (Intel Xeon, Sapphire Rapids and later: errors 4.7 times float32
    accumulation's, past the suite's tolerance; JAX 0.7.2 and later sum in
    float32 there too): on those versions, on the CPU.  The conversion is exact
    (so are the products, in the wider dtype), so the result is the documented
    one on every platform and version."""
    wide = _widenings().get((spec.dtype, spec.preferred_element_type or spec.dtype))
    if wide is None:
        return fn
    out_dtype = spec.out_dtype

    def widened(lhs: Any, rhs: Any, *args: Any) -> Any:
        out = fn(lax.convert_element_type(lhs, wide), lax.convert_element_type(rhs, wide), *args)
        return out if out.dtype == out_dtype else lax.convert_element_type(out, out_dtype)

    return widened


def beyond_xla(spec: ConvSpec) -> bool:
    """Whether ``spec``'s parameters are not passed to XLA as they are
    (:func:`polyconv.spec.canonical.beyond_native`): it is then computed
    by :func:`conv_by_taps`."""
    return beyond_native(spec.lhs_spatial, spec.window, spec.out_spatial, spec.window_strides, spec.padding,
                         spec.lhs_dilation, spec.rhs_dilation)


def conv_by_taps(lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
    """``conv_general_dilated`` as a sum over the kernel taps that reach the input.

    On each spatial axis a tap reads the outputs ``y0 + m * P`` from the input
    elements ``i0 + m * s'`` (:func:`polyconv.spec.canonical.axis_reads`):
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


def grouped_matmul(lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
    """A convolution without spatial axes and with feature or batch groups, as
    one ``lax.dot_general`` batched over the groups.

    XLA:CPU before JAX 0.7 computes such convolutions wrongly (every element
    off, ``jax.lax`` itself included: 0-d, ``feature_group_count=2`` gives
    errors of the size of the values on JAX 0.4.30 to 0.6.2); without
    spatial axes a convolution is a matrix product per group, which every
    version computes right, differentiates and batches."""
    _, lax, jnp = jax_modules()
    dn = spec.dimension_numbers
    x = lax.transpose(lhs, dn.lhs_spec)  # (N, C)
    w = lax.transpose(rhs, dn.rhs_spec)  # (O, I)
    n, c = x.shape
    o = w.shape[0]
    if spec.batch_group_count > 1:  # (B, N', C) with (B, O_g, C): batch-major groups
        g = spec.batch_group_count
        x = lax.reshape(x, (g, n // g, c))
    else:  # (N, G, C_g) with (G, O_g, C_g)
        g = spec.feature_group_count
        x = lax.transpose(lax.reshape(x, (n, g, c // g)), (1, 0, 2))
    w = lax.reshape(w, (g, o // g, w.shape[1]))
    y = lax.dot_general(x, w, (((2,), (2,)), ((0,), (0,))), _precision(lax, spec.precision),
                        _dtype(jnp, spec.preferred_element_type))  # (G, N', O_g)
    y = lax.reshape(lax.transpose(y, (1, 0, 2)), (y.shape[1], o))  # (N', O)
    return lax.transpose(y, tuple(inverse_permutation(dn.out_spec)))


@dataclass(frozen=True)
class Tight:
    """A convolution rewritten so that XLA sees no negative low pad and no
    output that reads padding alone (see :func:`tight`).

    Attributes
    ----------
    empty
        No output reads an input element: the result is zeros.
    crop
        Per spatial axis, the input elements cut off at its start.
    padding
        Per spatial axis, the ``(low, high)`` pads of the rewritten convolution.
    outputs
        Per spatial axis, ``(before, after)``: the outputs that read padding
        alone, restored as zeros around the rewritten convolution's.
    """

    empty: bool
    crop: tuple[int, ...] = ()
    padding: tuple[tuple[int, int], ...] = ()
    outputs: tuple[tuple[int, int], ...] = ()


@caching.lru_cache(1024, name="polyconv.backends.jax.tight")
def tight(spec: ConvSpec) -> Tight | None:
    """``spec`` as XLA computes it right, or None where it is already so.

    XLA:CPU (JAX 0.10, and earlier) computes a convolution with a negative low
    pad and a positive high one on the same axis wrongly, reading memory past
    the input: ``jax.lax.conv_general_dilated`` itself returns values off by
    the size of the results, or of 1e21 (float32; float64 is right).  Its
    gradients meet the same case wherever JAX's transposition rules make one:
    the input's cotangent (low pad ``reach - 1 - low``) of a convolution
    whose low pad is the window's reach or more (outputs that read padding
    alone), the kernel's (low pad ``low``) of one whose low pad is negative.
    So, on every axis whose low pad is negative or the window's reach or
    more, the input is cropped to where the first output that reads an
    element of it starts (``lax.slice``; what remains of the crop inside a
    hole of the lhs dilation becomes a low pad), the outputs before it and
    after the last such one are left out and put back as zeros
    (``lax.dynamic_update_slice``): the low pad is then between 0 and
    the window's reach, and so are the rules' (high pads, negative ones
    included, XLA computes right).

    >>> from polyconv.spec import conv_spec
    >>> tight(conv_spec((1, 1, 9), (1, 1, 4), "float32", "float32", (1,), [(-1, 1)]))
    Tight(empty=False, crop=(1,), padding=((0, 1),), outputs=((0, 0),))
    >>> tight(conv_spec((1, 1, 9), (1, 1, 3), "float32", "float32", (1,), [(5, 0)]))
    Tight(empty=False, crop=(0,), padding=((2, 0),), outputs=((3, 0),))
    >>> tight(conv_spec((1, 1, 9), (1, 1, 3), "float32", "float32", (1,), "SAME")) is None
    True
    """
    crop, padding, outputs = [], [], []
    rewrite = False
    for size, out, k, s, ld, d, (lo, hi) in zip(spec.lhs_spatial, spec.out_spatial, spec.window,
                                                 spec.window_strides, spec.lhs_dilation, spec.rhs_dilation,
                                                 spec.padding):
        reach = axis_reach(size, out, k, s, ld, d, lo) if out > 0 else None
        if reach is None and out > 0:
            return Tight(True)
        extent = (k - 1) * d + 1  # the window's reach
        if reach is None or 0 <= lo < extent:  # no output, or the rules' low pads are nonnegative too
            crop.append(0)
            padding.append((lo, hi))
            outputs.append((0, 0))
            continue
        rewrite = True
        y0, y1 = reach.outputs
        first = y0 * s - lo  # where output y0's window starts, on the dilated input
        c = -(-first // ld) if first > 0 else 0  # the first input element at or after it
        low = c * ld - first  # below the reach: output y0's window holds an element
        dilated = (size - c - 1) * ld + 1
        crop.append(c)
        padding.append((low, (y1 - y0 - 1) * s + extent - low - dilated))
        outputs.append((y0, out - y1))
    return Tight(False, tuple(crop), tuple(padding), tuple(outputs)) if rewrite else None


def tight_conv(lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
    """``jax.lax.conv_general_dilated`` of ``spec`` in its :func:`tight` form."""
    _, lax, jnp = jax_modules()
    t = tight(spec)
    assert t is not None  # only called for specs that need it
    if t.empty:
        return jnp.zeros(spec.out_shape, jnp.dtype(spec.out_dtype))
    dn = spec.dimension_numbers
    start, limit = [0] * lhs.ndim, list(lhs.shape)
    for axis, c in zip(dn.lhs_spec[2:], t.crop):
        start[axis] = c
    x = lax.slice(lhs, start, limit) if any(t.crop) else lhs
    y = lax.conv_general_dilated(x, rhs, *_conv_args(spec, t.padding))
    if not any(b or a for b, a in t.outputs):
        return y
    # placed into zeros, not padded: the transposition of a pad is a negative pad, which
    # jaxlib 0.5's XLA:CPU does not compile; that of dynamic_update_slice is a slice
    starts = [0] * y.ndim
    for axis, (before, _) in zip(dn.out_spec[2:], t.outputs):
        starts[axis] = before
    return lax.dynamic_update_slice(jnp.zeros(spec.out_shape, y.dtype), y, starts)


def _transpose_tight(lhs: Any, rhs: Any, tspec: TransposeSpec) -> Any:
    """``conv_transpose`` by :func:`tight_conv` (the kernel as :func:`_forward_kernel` makes it)."""
    return tight_conv(lhs, _forward_kernel(rhs, tspec), tspec.conv)


def _compiled(jax: Any, fn: Callable[..., Any], *args: Any) -> Callable[[Any, Any], Any]:
    """``fn(lhs, rhs, *args)`` as one ``jax.jit`` function of the operands.

    A CPU lowering is tens of ``jax.lax`` operations: called eagerly one by
    one, each would be dispatched alone, unfused, its intermediates copied
    (every ``dynamic_update_slice`` of the stacked windows a copy of the
    whole buffer); jitted, an eager call runs one compiled computation.
    Under an outer ``jit`` it is inlined; ``grad``, ``vmap`` and
    ``linear_transpose`` see through it.  The runner caches keep one per spec,
    so it is traced once per spec."""
    def lowered(lhs: Any, rhs: Any) -> Any:
        return fn(lhs, rhs, *args)

    jitted: Callable[[Any, Any], Any] = jax.jit(lowered)
    return jitted


def lax_conv_args(spec: ConvSpec) -> Entry:
    """``jax.lax.conv_general_dilated`` and its arguments after the operands
    (:func:`conv_by_taps` where :func:`beyond_xla`; on the CPU platform, the
    shifted multiply-adds or the matrix product of :mod:`.cpu_lowering` where
    it applies; :func:`grouped_matmul` for grouped convolutions without
    spatial axes)."""
    jax, lax, _ = jax_modules()
    if beyond_xla(spec):
        return _widened(lax, conv_by_taps, spec), (spec,), _needs_x64(spec.preferred_element_type)
    fast = cpu_lowering.lowering(spec, jax.default_backend())
    if fast == "depthwise":
        return _compiled(jax, cpu_lowering.depthwise, spec), (), False
    if fast == "pointwise":
        return _compiled(jax, cpu_lowering.pointwise, spec, _precision(lax, spec.precision)), (), False
    if fast == "shifted":  # differentiated as stacked (the default), folded or XLA's own convolution
        other = cpu_lowering.shifted_derivative(spec)
        derivative = None if other == "stacked" else \
            make_runner(_xla(spec) if other == "lax" else _folded(spec), spec.dtype, "conv_general_dilated")
        return _compiled(jax, cpu_lowering.shifted, spec, _precision(lax, spec.precision), derivative), (), False
    if fast == "folded":
        return _folded(spec)
    if fast == "stacked":
        return _compiled(jax, cpu_lowering.stacked, spec, _precision(lax, spec.precision)), (), False
    return _xla(spec)


def _folded(spec: ConvSpec) -> Entry:
    """:func:`lax_conv_args` of the ``folded`` CPU lowering: the convolution of one spatial
    axis fewer (:func:`.cpu_lowering.folded_spec`) computed as this backend computes it."""
    jax, _, _ = jax_modules()
    inner = make_runner(lax_conv_args(cpu_lowering.folded_spec(spec)), spec.dtype, "conv_general_dilated")
    return _compiled(jax, cpu_lowering.folded, spec, inner), (), False


def _xla(spec: ConvSpec) -> Entry:
    """:func:`lax_conv_args` where no CPU lowering applies: XLA's convolution (a matrix
    product for grouped convolutions without spatial axes)."""
    _, lax, _ = jax_modules()
    if spec.nspatial == 0 and spec.groups > 1 and \
            dtype_kind(spec.dtype) != "b":
        return _widened(lax, grouped_matmul, spec), (spec,), _needs_x64(spec.preferred_element_type)
    if tight(spec) is not None:
        return _widened(lax, tight_conv, spec), (spec,), _needs_x64(spec.preferred_element_type)
    return _widened(lax, lax.conv_general_dilated, spec), _conv_args(spec, spec.padding), \
        _needs_x64(spec.preferred_element_type)


def _conv_args(spec: ConvSpec, padding: tuple[tuple[int, int], ...]) -> tuple[Any, ...]:
    """``jax.lax.conv_general_dilated``'s arguments after the operands, for
    ``spec`` with ``padding`` (its own, or :func:`tight`'s)."""
    _, lax, jnp = jax_modules()
    return (
        spec.window_strides,
        padding,
        spec.lhs_dilation,
        spec.rhs_dilation,
        lax.ConvDimensionNumbers(*spec.dimension_numbers),
        spec.feature_group_count,
        spec.batch_group_count,
        _precision(lax, spec.precision),
        _dtype(jnp, spec.preferred_element_type),
    )


def transpose_args(tspec: TransposeSpec) -> Entry:
    """``jax.lax.conv_transpose`` and its arguments: the strides are the forward
    convolution's lhs dilation, and the padding its explicit pairs, whichever
    convention the caller used (so ``use_consistent_padding`` stays False)."""
    _, lax, jnp = jax_modules()
    conv = tspec.conv
    if beyond_xla(conv):  # the forward convolution of the dilated lhs, tap by tap
        return _widened(lax, _transpose_by_taps, conv), (tspec,), _needs_x64(conv.preferred_element_type)
    if tight(conv) is not None:
        return _widened(lax, _transpose_tight, conv), (tspec,), _needs_x64(conv.preferred_element_type)
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


def _forward_kernel(rhs: Any, tspec: TransposeSpec) -> Any:
    """The kernel of ``tspec``'s forward convolution: flipped and its I and O axes
    swapped when ``transpose_kernel`` (as :func:`polyconv.derive.conv_transpose`)."""
    if not tspec.transpose_kernel:
        return rhs
    _, lax, jnp = jax_modules()
    dn = tspec.conv.dimension_numbers
    return jnp.swapaxes(lax.rev(rhs, tuple(dn.rhs_spec[2:])), dn.rhs_spec[0], dn.rhs_spec[1])


def _transpose_by_taps(lhs: Any, rhs: Any, tspec: TransposeSpec) -> Any:
    """``conv_transpose`` by :func:`conv_by_taps` (the kernel as :func:`_forward_kernel` makes it)."""
    return conv_by_taps(lhs, _forward_kernel(rhs, tspec), tspec.conv)


def patches_args(pspec: PatchesSpec) -> Entry:
    """The patches by copying (:func:`polyconv.gather.patches`: strided
    slices spread and bordered by zeros, stacked), not
    ``jax.lax.conv_general_dilated_patches``: XLA's identity-kernel
    convolution turns the neighbours of an infinite or NaN input into NaN
    (``inf * 0``), rounds complex128 patches to complex64, and on the CPU runs
    6 to 55 times slower than the copies (``docs/jax-backend.md``).  Any
    parameters, channels or none, and bounded memory whatever the padding.
    Jitted, as the CPU lowerings are (:func:`_compiled`)."""
    jitted = jax_modules()[0].jit(functools.partial(gather.patches, spec=pspec))
    return jitted, (), _needs_x64(pspec.conv.preferred_element_type)


def local_args(lspec: LocalSpec) -> Entry:
    """``jax.lax.conv_general_dilated_local``'s computation on the copied
    patches (:func:`patches_args`): one ``lax.dot_general`` over the patch
    axis, batched over the output positions, with the spec's precision;
    jitted."""
    return jax_modules()[0].jit(functools.partial(_local, lspec=lspec)), (), False


def _local(lhs: Any, rhs: Any, lspec: LocalSpec) -> Any:
    _, lax, jnp = jax_modules()
    dn = lspec.dimension_numbers
    patches = gather.patches(lhs, lspec.patches)
    positions = sorted(range(len(dn.out_spec) - 2), key=lambda k: dn.out_spec[2 + k])  # the patches' axis order
    batch = (tuple(dn.out_spec[2 + k] for k in positions), tuple(dn.rhs_spec[2 + k] for k in positions))
    precision = _precision(lax, lspec.precision)
    out = lax.dot_general(patches, rhs, (((dn.out_spec[1],), (dn.rhs_spec[1],)), batch), precision=precision)
    return jnp.moveaxis(out, (-2, -1), (dn.out_spec[0], dn.out_spec[1]))  # (*Y, N, O) in the output's layout
