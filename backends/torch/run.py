"""The torch backend's ops: layouts and dtypes around :mod:`.lower`.

Operands are permuted (views) into the canonical layout, cast to the
computation dtype (:class:`.plan.TorchDtypes`), convolved by :mod:`.lower` (or
:mod:`.exact` for integers where PyTorch has no integer convolution), cast
to the result dtype and permuted (a view) into the output layout.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from polyconv import caching, derive
from polyconv.algorithm import fft_mode
from polyconv.dispatch import check_devices
from polyconv.spec import ConvSpec, LocalSpec, PatchesSpec, dtype_bits, dtype_kind
from polyconv.spec.dimension_numbers import inverse_permutation

from .. import fft
from . import exact, lower
from .plan import TorchDtypes, plan_dtypes

__all__ = ["conv", "conv_runner", "patches", "local"]


@contextlib.contextmanager
def _ieee_float32(torch: Any) -> Iterator[None]:
    """No TF32 inside: cuDNN convolutions and cuBLAS matrix products in full
    float32.  The caller's settings are restored on exit."""
    settings: list[tuple[Any, str, str | bool]] = [
        (owner, "fp32_precision", "ieee")
        for owner in (getattr(torch.backends.cudnn, "conv", None), getattr(torch.backends.cuda, "matmul", None))
        if owner is not None and hasattr(owner, "fp32_precision")
    ]
    if not settings:  # PyTorch before 2.9
        settings = [(torch.backends.cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False)]
    saved = [getattr(owner, attr) for owner, attr, _ in settings]
    try:
        for owner, attr, value in settings:
            setattr(owner, attr, value)
        yield
    finally:
        for (owner, attr, _), value in zip(settings, saved):
            setattr(owner, attr, value)


def _precision(torch: Any, precision: tuple[str, str] | None, compute: str, device_type: str) -> Any:
    if (
        precision is not None and "highest" in precision
        and device_type == "cuda" and compute in ("float32", "complex64")
    ):
        return _ieee_float32(torch)
    return contextlib.nullcontext()


@dataclass(frozen=True)
class _ConvPlan:
    """Everything about one spec on one device type that does not depend on values."""

    empty: bool
    lhs_perm: tuple[int, ...] | None  # None: already canonical
    rhs_perm: tuple[int, ...] | None
    out_perm: tuple[int, ...] | None
    compute: str
    cast: bool  # the operands to the computation dtype
    dtypes: TorchDtypes
    contraction: int
    run: Callable[[Any, Any], Any] | None


def _perm(perm: tuple[int, ...]) -> tuple[int, ...] | None:
    return None if perm == tuple(range(len(perm))) else perm


@caching.memoize(1024)
def _conv_plan(spec: ConvSpec, device_type: str, transposed_kernel: bool = False) -> _ConvPlan:
    dn = spec.dimension_numbers
    contraction = spec.in_features // spec.feature_group_count * math.prod(spec.window)
    empty = 0 in spec.out_shape or 0 in spec.lhs_shape or contraction == 0  # nothing to add: zeros
    p = plan_dtypes(spec, contraction, device_type)
    run = None if empty else lower.plan_canonical(
        spec.nspatial, spec.window_strides, spec.padding, spec.lhs_dilation, spec.rhs_dilation,
        spec.feature_group_count, spec.batch_group_count,
    )
    if run is not None and transposed_kernel:
        run = lower.with_transposed_kernel(
            run, spec.nspatial, spec.window_strides, spec.padding, spec.lhs_dilation, spec.rhs_dilation)
    return _ConvPlan(
        empty, _perm(dn.lhs_spec), _perm(dn.rhs_spec), _perm(inverse_permutation(dn.out_spec)), p.compute,
        p.compute != spec.dtype, p, contraction, run,
    )


def _zeros(torch: Any, shape: tuple[int, ...], dtype: Any, *operands: Any) -> Any:
    """Zeros of ``shape``: a result with nothing to sum.  When autograd records,
    they are tied to the operands through empty sums (exactly zero, also for
    infinite or NaN operands), so ``backward`` reaches the operands with zero
    gradients instead of failing on a result outside the graph."""
    out = operands[0].new_zeros(shape, dtype=dtype)
    if torch.is_grad_enabled() and any(x.requires_grad for x in operands):
        out = out + sum(x.reshape(-1)[:0].sum() for x in operands).to(dtype)
    return out


def conv(torch: Any, lhs: Any, rhs: Any, spec: ConvSpec, transposed_kernel: bool = False) -> Any:
    """``conv_general_dilated`` of two tensors for a validated spec.

    ``transposed_kernel``: ``rhs`` is the kernel of ``conv_transpose(...,
    transpose_kernel=True)`` whose forward convolution ``spec`` is (its I and O
    axes swapped and its window flipped relative to ``spec``'s kernel), which
    the lowering to ``conv_transpose*d`` takes as it is."""
    device_type = lhs.device.type
    cp = _conv_plan(spec, device_type, transposed_kernel)
    if cp.empty:
        return _zeros(torch, spec.out_shape, getattr(torch, spec.out_dtype), lhs, rhs)
    if cp.dtypes.mode == "float":
        prepared = fft.prepare(spec, cp.compute, fft_mode(), "torch")
        if prepared is not None:
            out = _by_fft(torch, lhs, rhs, spec, prepared, transposed_kernel)
            if out is not None:
                return out
    x = lhs if cp.lhs_perm is None else lhs.permute(cp.lhs_perm)
    w = rhs if cp.rhs_perm is None else rhs.permute(cp.rhs_perm)
    if cp.cast:
        compute = getattr(torch, cp.compute)
        x, w = x.to(compute), w.to(compute)
    mode = cp.dtypes.mode
    assert cp.run is not None
    if mode == "int" and device_type != "cpu":  # no integer convolution off the CPU
        out = exact.integer_conv(
            cp.run, x, w, dtype_bits(spec.dtype), dtype_bits(spec.out_dtype), cp.contraction, "conv_general_dilated"
        )
    elif spec.precision is not None and device_type == "cuda":
        with _precision(torch, spec.precision, cp.compute, device_type):
            out = cp.run(x, w)
    else:
        out = cp.run(x, w)
    if mode == "count" and spec.out_dtype == "bool":
        out = out != 0
    elif mode == "count" and dtype_kind(spec.out_dtype) in "iu":
        out = out.long()  # exact counts; the cast below wraps them as XLA does
    if out.dtype != (out_dtype := getattr(torch, spec.out_dtype)):
        out = out.to(out_dtype)
    return out if cp.out_perm is None else out.permute(cp.out_perm)


def _by_fft(torch: Any, lhs: Any, rhs: Any, spec: ConvSpec, prepared: fft.Prepared,
            transposed_kernel: bool = False) -> Any:
    """The convolution by FFT (:mod:`polyconv.backends.fft`, on ``torch.fft``), or
    None where the direct path runs: inside ``torch.compile`` tracing (the FFT
    path checks values), while autograd records (the transforms' adjoints
    would put rounding noise where the direct convolution's gradients are
    exact zeros), and for non-finite operands."""
    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    if compiling is not None and compiling():
        return None
    if torch.is_grad_enabled() and (lhs.requires_grad or rhs.requires_grad):
        return None
    import array_api_compat.torch as xp

    if transposed_kernel:  # the forward kernel: window flipped, I and O swapped
        rs = spec.dimension_numbers.rhs_spec
        perm = list(range(rhs.ndim))
        perm[rs[0]], perm[rs[1]] = rs[1], rs[0]
        rhs = rhs.flip(list(rs[2:])).permute(perm) if spec.nspatial else rhs.permute(perm)
    return fft.run(xp, lhs, rhs, prepared, lhs.device)


def describe(spec: ConvSpec) -> Any:
    """How :func:`conv` computes ``spec`` on CPU tensors in the current FFT mode
    (a :class:`polyconv.explanation.Strategy`), for :func:`polyconv.explain`."""
    from polyconv.explanation import Strategy

    cp = _conv_plan(spec, "cpu")
    if cp.empty:
        return Strategy("zeros", "nothing to add up (a zero-size axis, no taps or no channels)")
    mode = cp.dtypes.mode
    if mode != "float":
        return Strategy(f"exact-{mode}", f"{spec.dtype} operands summed exactly ({mode} mode, in {cp.compute})")
    decision = fft.decision(spec, cp.compute, fft_mode(), "torch")
    if decision.use:
        return Strategy("fft", decision.why, (decision,))
    return Strategy("native", f"torch's own convolution in {cp.compute}; not FFT: {decision.why}", (decision,))


def conv_runner(torch: Any, be: Any, spec: ConvSpec) -> Callable[[Any, Any], Any]:
    """:func:`conv` for one spec as a function of the operands.  CPU tensors
    of a dtype PyTorch convolves as it is (the common case) go straight to
    the planned native call, or to the FFT path where it is chosen in the
    current FFT mode (which the call cache's key holds); everything else
    takes :func:`conv`.

    The planned call tests that both operands are on the CPU, which it needs
    anyway, so it checks the devices of a repeated call itself
    (``checks_devices``, see :meth:`polyconv.Backend.runner`): a repeated
    call reads two properties, not four and a method's."""
    cp = _conv_plan(spec, "cpu")

    def general(lhs: Any, rhs: Any) -> Any:
        return conv(torch, lhs, rhs, spec)

    if not cp.empty and cp.dtypes.mode == "float" and fft.prepare(spec, cp.compute, fft_mode(), "torch"):
        return general
    if cp.empty or cp.cast or cp.dtypes.mode != "float" or cp.compute != spec.out_dtype or cp.run is None:
        return general
    lhs_perm, rhs_perm, out_perm, run = cp.lhs_perm, cp.rhs_perm, cp.out_perm, cp.run

    def planned(lhs: Any, rhs: Any) -> Any:
        if lhs.is_cpu and rhs.is_cpu:  # properties: far cheaper than .device, which builds a torch.device
            x = lhs if lhs_perm is None else lhs.permute(lhs_perm)
            out = run(x, rhs if rhs_perm is None else rhs.permute(rhs_perm))
            return out if out_perm is None else out.permute(out_perm)
        if not be.same_device(lhs, rhs):
            check_devices(be, (lhs, rhs), ("lhs", "rhs"), "conv_general_dilated")  # raises
        return conv(torch, lhs, rhs, spec)

    planned.checks_devices = True  # type: ignore[attr-defined]
    return planned


def patches(torch: Any, be: Any, lhs: Any, spec: PatchesSpec, private: bool = False) -> Any:
    """``conv_general_dilated_patches`` as strided windows (``Tensor.unfold``)
    of the padded input: a copy, no arithmetic.  lhs dilation and parameters
    PyTorch cannot be handed go through :func:`polyconv.gather.patches` (copies
    too, into a zeroed tensor).

    The windows are views of the input until they are reshaped into the patch
    axis; that reshape copies except where the windows' memory already is
    one (a 1x1 window, one channel, a window covering the input, no spatial
    dims).  Unless padding made a new tensor first, the result is then copied
    so that it never shares memory with ``lhs``; ``private=True`` (a caller
    that only reads the patches, such as :func:`local`) skips that copy.
    """
    conv_spec = spec.conv
    dn = conv_spec.dimension_numbers
    if any(d != 1 for d in conv_spec.lhs_dilation) or lower.needs_taps(
        conv_spec.lhs_spatial, spec.filter_shape, conv_spec.window_strides, conv_spec.padding,
        conv_spec.lhs_dilation, conv_spec.rhs_dilation,
    ):  # lhs dilation, or absurd pads or dilations: copied tap by tap
        return derive.patches(be, lhs, spec)
    out_dtype = getattr(torch, conv_spec.out_dtype)
    if 0 in conv_spec.out_shape:
        return _zeros(torch, conv_spec.out_shape, out_dtype, lhs)
    n = conv_spec.nspatial
    x = lhs.permute(dn.lhs_spec)
    fresh = any(lo > 0 or hi > 0 for lo, hi in conv_spec.padding)
    if fresh:  # F.pad writes a new tensor
        x = lower.pad(x, conv_spec.padding)
    else:  # crops only: views
        for axis, (lo, hi) in enumerate(conv_spec.padding):
            if lo or hi:
                x = x.narrow(2 + axis, -lo, x.shape[2 + axis] + lo + hi)
    for axis, (k, s, d) in enumerate(zip(spec.filter_shape, conv_spec.window_strides, conv_spec.rhs_dilation)):
        x = x.unfold(2 + axis, (k - 1) * d + 1, s)[..., ::d]  # window appended as the last axis
    # (N, C, *Y, *K) -> (N, C, *K, *Y) -> (N, C * prod(K), *Y): channel-major windows
    x = x.permute(0, 1, *range(2 + n, 2 + 2 * n), *range(2, 2 + n))
    shape = (x.shape[0], x.shape[1] * math.prod(spec.filter_shape), *conv_spec.out_spatial)
    if fresh or private:
        x = x.reshape(shape).to(out_dtype)
    else:  # the one copy the reshape would make where it copies, also where it would be a view of lhs
        x = x.to(out_dtype, memory_format=torch.contiguous_format, copy=True).view(shape)
    return x.permute(inverse_permutation(dn.out_spec))


def local(torch: Any, be: Any, lhs: Any, rhs: Any, spec: LocalSpec) -> Any:
    """``conv_general_dilated_local``: the patches (:func:`patches`), then one
    batched matrix product over the output positions, with the dtype policy
    of :func:`conv` (PyTorch multiplies no bool matrices, and no integer ones
    off the CPU)."""
    dn = spec.dimension_numbers
    n = len(dn.out_spec) - 2
    pspec = spec.patches
    out_dtype = getattr(torch, spec.patches.conv.dtype)
    contraction = rhs.shape[dn.rhs_spec[1]]
    if 0 in spec.out_shape or contraction == 0:
        return _zeros(torch, spec.out_shape, out_dtype, lhs, rhs)
    device_type = lhs.device.type
    p = plan_dtypes(pspec.conv, contraction, device_type)
    compute = getattr(torch, p.compute)
    pat = patches(torch, be, lhs, pspec, private=True)  # read only: may be a view of lhs
    # patches to (*Y, N, I), kernel to (*Y, I, O): a batched matrix product over positions
    spatial = tuple(range(2, n + 2))
    pat = pat.permute(tuple(dn.out_spec[a] for a in (*spatial, 0, 1))).to(compute)
    ker = rhs.permute(tuple(dn.rhs_spec[a] for a in (*spatial, 1, 0))).to(compute)
    if p.mode == "int" and device_type != "cpu":
        bits = dtype_bits(pspec.conv.dtype)
        out = exact.integer_conv(torch.matmul, pat, ker, bits, bits, contraction, "conv_general_dilated_local")
    else:
        with _precision(torch, spec.precision, p.compute, device_type):
            out = torch.matmul(pat, ker)  # (*Y, N, O)
    if p.mode == "count":
        out = out != 0
    canonical = out.to(out_dtype).permute(n, n + 1, *range(n))  # (N, O, *Y)
    return canonical.permute(inverse_permutation(dn.out_spec))
