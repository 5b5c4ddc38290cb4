"""What XLA:CPU runs fastest, for the convolutions it is slowest at: decided at trace time.

XLA:CPU computes every convolution with one general kernel, which is slow on
the shapes that are mostly memory traffic: a depthwise 3x3 convolution took
71 ms where PyTorch took 1.5 ms, a 1x1 convolution (a matrix product) 15 ms.
On the CPU platform, the JAX backend writes these specs with other
``jax.lax`` operations that XLA compiles well:

* **depthwise** (one input channel per group, at most
  :data:`MAX_MULTIPLIER` outputs per group, at most :data:`MAX_TAPS` taps,
  floating operands, no lhs dilation): the input padded once (``lax.pad``,
  and a ``lax.slice`` for negative pads), then one strided ``lax.slice`` per tap times the
  tap's weights, summed: XLA fuses the whole sum into one loop over the
  output.
* **pointwise** (every window a single tap: a 1x1 kernel, or any kernel on a
  size-1 axis; no lhs dilation, no batch groups): the strided, cropped input
  and one ``lax.dot_general`` over the channels (batched over the groups).
* **shifted** (grouped convolutions of two or more spatial axes whose groups are small:
  a group's input channels times its taps at most :data:`MAX_SHIFTED_TERMS`, its input
  channels times its outputs at most :data:`MAX_SHIFTED_GROUP`, and :func:`stacked`'s
  conditions below): the shifted multiply-adds of *depthwise*, one term per tap and
  input channel of a group, which XLA fuses into one loop, 2 to 8 times faster than
  :func:`stacked`'s products on such groups (32 groups of 8 channels: 16 against 34
  ms).  Their derivatives are not: XLA's gradient of the sum is a reduction per term,
  and where the cotangent is computed from the result XLA fuses the whole sum into its
  consumers, several times over (270 ms against 75 for the same gradient through
  :func:`stacked`).  So the convolution is a ``jax.custom_jvp`` whose rule computes
  :func:`stacked` and its tangents: ``grad``, ``jvp`` and higher orders run as
  :func:`stacked`'s, a plain or batched call runs the sum.
  *Ungrouped* convolutions with few channels are written the same way (at most
  :data:`MAX_UNGROUPED_TERMS` terms per output and :data:`MAX_UNGROUPED_PRODUCTS` products
  per position: input channels times outputs times taps; results of at least
  :data:`MIN_UNGROUPED_OUTPUTS` elements), any number of spatial axes: image filters and
  the first layers of networks on one to three channels, where XLA's convolution runs at a
  few GFLOP/s (a 9x9 filter on a 512x512 image 1.7 against 64 ms, 1 to 8 channels 5x5 1.2
  against 9.6 ms, 3 to 16 channels 3x3 2.7 against 8.1 ms).  These are differentiated as
  the lowering they replace (:func:`shifted_derivative`): :func:`folded` for ungrouped
  ones it takes, XLA's own convolution otherwise, whose gradient was faster than
  :func:`stacked`'s on most such shapes (3 to 16 channels: 25 against 41 ms).
* **folded** (ungrouped convolutions of three or more spatial axes, any strides and rhs
  dilations; of two where the first axis has a stride and input channels times outputs
  are at least :data:`MIN_FOLDED_CHANNEL_PAIRS`; no lhs dilation, no batch groups; while
  its input stays within :data:`MAX_STACKED_BYTES` or :data:`STACKED_GROWTH` times the
  input's and the output's bytes): the convolution of one spatial axis fewer
  (:func:`folded_spec`), computed as this backend computes it (so a 4-d one is folded
  twice, a 3-d one whose other axes are 1x1 becomes :func:`pointwise`'s product).  The
  first axis' outputs go into the batch, its taps' windows (strided slices of the padded
  input, channels last) side by side along the channels (``lax.concatenate``, of
  ``K_0`` pieces, a few milliseconds), and its taps' weights into the kernel's input
  channels.  XLA:CPU's convolutions of two spatial axes run near its dense rate where its
  3-d ones do not; a stride on the first axis becomes a strided slice (XLA's own 2-d
  convolutions with such a stride were up to 2.6 times slower than folded, on eight of nine
  shapes measured; the ninth, one 224x224 image 3->64 7x7, was 1.2 times slower once and
  level once).  The gradients are XLA's of the smaller
  convolution: the bench's 3x3x3 16->32 (2x32^3) 28 against 44 ms through
  :func:`stacked` and 100 through ``jax.lax`` forward, 153 against 188 and 412 for
  ``jax.grad``; a video stem (3->16, 3x7x7, stride (1, 2, 2)) 7 against 18 and 114 forward,
  82 against 251 and 4900 ms for the gradient (``docs/jax-backend.md``).
* **stacked** (grouped convolutions of two or more spatial axes; no lhs
  dilation, no batch groups; while its buffers stay within
  :data:`MAX_STACKED_BYTES`, or :data:`STACKED_GROWTH` times the input's and
  the output's bytes): one ``lax.dot_general`` per group (batched over the
  groups).  The windows of the taps of every axis but the first are stacked
  into the contraction (im2col over those axes, written tap by tap with
  ``lax.dynamic_update_slice``: XLA:CPU copies a concatenation's operands
  element by element, several times slower); the first axis' taps become
  the product's rows, over every position of that axis any tap reads, and
  the result is the sum of those row blocks, each shifted by its tap.  With
  a stride on the first axis the product computes the skipped positions
  too.  XLA:CPU's grouped convolutions, and their gradients, are far slower: on a
  2-core AVX2 machine, a grouped 3x3 (32 groups of 8 channels) 2.5 times
  faster and its gradient 100 times (``docs/jax-backend.md``).  Ungrouped
  convolutions took it before :func:`folded` (a 3x3x3 16->32 convolution 1.7
  times faster than ``jax.lax`` and its gradient 2 times).  The gradients are
  JAX's own, of these operations.  Where the two buffers would pass
  :data:`STACKED_BLOCK_BYTES`, the outputs of the first stacked axis are computed in
  blocks, one after another (a ``lax.map`` over the blocks' overlapping inputs), so
  that XLA's temporaries stay small (below).

Everything else, and every spec on GPU and TPU (where cuDNN's kernels are
fast), stays ``jax.lax.conv_general_dilated``.  The choice depends on the
spec and the default platform only, so it is made once per spec, under
``jit`` as well (shapes are static).  Both forms are ``jax.lax`` operations:
``jit``, ``grad`` (of any order), ``vmap`` and sharded arrays work as for the
convolution, and :func:`polyconv.explain` names the lowering a spec takes.

XLA:CPU allocates a computation's temporaries at every call, and glibc's ``malloc``
maps every block above 32 MiB afresh, so pages of larger temporaries fault in again at
every call: 1.5 us a page on the 2-core Intel VM the blocks were measured on, 29 ms of
the 73 that a 3x3x3 16->32 convolution's (2x32^3) stacked product took computed whole (77
MB of temporaries, 19600 faults a call); in blocks of 8 MiB it took 49-51 ms (18 MB, a few
hundred faults).  :func:`folded` is not computed in blocks: its input is ``K_0`` times the
convolution's (12 MB on that shape), and XLA's convolution blocks its own work.  jaxlib before 0.10
(0.5.1, 0.7.1, 0.8.0 and 0.9.2 measured) cannot ``jax.linear_transpose`` a ``lax.map``, so
there the product is computed whole, as before.

Values: the products are those of the convolution, summed in the operands'
floating type (float32 for float16 and bfloat16, as XLA does), tap by tap or
by the dot's own order, which the conformance suite's tolerance for running
sums covers.  Padding is formed by real zeros, which an infinite or NaN
kernel tap turns into NaN there, as the suite's non-finite rule allows
(``docs/conformance-guide.md``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from itertools import product
from typing import Any

from polyconv.spec import ConvSpec
from polyconv.spec.canonical import Problem, problem
from polyconv.spec.dimension_numbers import inverse_permutation

__all__ = ["lowering", "shifted_derivative", "xla_flops", "depthwise", "pointwise", "shifted", "folded", "folded_spec",
           "stacked", "MAX_TAPS", "MAX_MULTIPLIER", "MAX_SHIFTED_TERMS", "MAX_SHIFTED_GROUP", "MAX_UNGROUPED_TERMS",
           "MAX_UNGROUPED_PRODUCTS", "MIN_UNGROUPED_OUTPUTS", "MAX_STACKED_BYTES", "STACKED_BLOCK_BYTES",
           "STACKED_GROWTH", "MIN_FOLDED_CHANNEL_PAIRS", "XLA_FLOPS_PER_CHANNEL_PAIR"]

#: Depthwise kernels up to this many taps are written as shifted multiply-adds
#: (larger ones are for the FFT decision, or stay with XLA).
MAX_TAPS = 49
#: Outputs per group of a depthwise convolution written as shifted multiply-adds.
MAX_MULTIPLIER = 4
#: Grouped convolutions are written as :func:`shifted` multiply-adds while each output
#: sums at most this many terms (input channels of a group times taps)...
MAX_SHIFTED_TERMS = 144
#: ...and a group's input channels times its outputs are at most this (beyond, the
#: products of :func:`stacked` are faster).
MAX_SHIFTED_GROUP = 64
#: Ungrouped convolutions are written as :func:`shifted` multiply-adds while each output sums
#: at most this many terms (input channels times taps; XLA:CPU's code for one fused sum of
#: 289 terms ran 7 times slower per term than for 225)...
MAX_UNGROUPED_TERMS = 225
#: ...and the products of all outputs of a position, input channels times outputs times
#: taps, are at most this (beyond, XLA's own convolution is as fast or faster).
MAX_UNGROUPED_PRODUCTS = 512
#: ...and the result has at least this many elements: the sum is two of XLA:CPU's
#: kernels (the padding, the fused sum) where its convolution is one, which costs more
#: than it saves on the smallest convolutions (a 3x3 filter on one 8x8 image: 11.8 us
#: against 11.5 for ``jax.lax``, 12x12: 12.2 against 25.6).
MIN_UNGROUPED_OUTPUTS = 128
#: :func:`stacked` (and a grouped :func:`shifted`, which is differentiated as it) is taken while its
#: buffers need at most this many bytes, or :data:`STACKED_GROWTH` times the input's and
#: the output's, whichever is more.
MAX_STACKED_BYTES = 256 << 20
#: :func:`stacked` computes in blocks where its buffers would pass this many bytes: XLA:CPU
#: allocates a computation's temporaries at every call, and glibc's ``malloc`` maps blocks
#: above 32 MiB afresh each time, so their pages fault in again at every call (1.5 us a
#: page on the 2-core Intel VM of ``docs/jax-backend.md``: 29 of the 3-d bench shape's 73 ms).
STACKED_BLOCK_BYTES = 8 << 20
STACKED_GROWTH = 16
#: Ungrouped convolutions of two spatial axes are :func:`folded` (into XLA's of one axis) where
#: the first axis has a stride and input channels times outputs are at least this: with such a
#: stride folding was faster on eight of nine shapes measured (the ninth faster once and level
#: once), without one slower on five of fifteen and level on two; below this the FFT
#: decision's rate for XLA's convolution (:data:`XLA_FLOPS_PER_CHANNEL_PAIR`) is not the
#: dense one.
MIN_FOLDED_CHANNEL_PAIRS = 96
#: The FFT decision's rate for XLA:CPU's own convolution (the direct path of a spec no lowering
#: here takes), per input channel of a group times its outputs, up to the backend's dense rate.
#: Measured with ``jax.lax`` on 4 images of 96x96, 3x3 to 11x11 kernels, on the 2-core Intel VM
#: of ``docs/jax-backend.md``: 0.5-0.9 GFLOP/s for 1 channel to 1, 1.4-3.4 for 3 to 1, 4-15 for
#: 1 to 8, 10-26 for 3 to 8, 24-45 for 8 to 8, 56-80 for 16 to 16, 85-164 for 32 to 32 and more.
XLA_FLOPS_PER_CHANNEL_PAIR = 1e9
_FLOATS = ("float32", "float16", "bfloat16")


def lowering(spec: ConvSpec, platform: str) -> str | None:
    """``'depthwise'``, ``'pointwise'``, ``'shifted'``, ``'folded'``, ``'stacked'`` or None
    (``jax.lax.conv_general_dilated``) for ``spec`` on ``platform`` (``jax.default_backend()``).

    >>> from polyconv.spec import conv_spec
    >>> dw = conv_spec((8, 128, 56, 56), (128, 1, 3, 3), "float32", "float32", (1, 1), "SAME",
    ...                feature_group_count=128)
    >>> lowering(dw, "cpu"), lowering(dw, "gpu")
    ('depthwise', None)
    >>> lowering(conv_spec((8, 256, 56, 56), (64, 256, 1, 1), "float32", "float32", (1, 1), "VALID"), "cpu")
    'pointwise'
    >>> lowering(conv_spec((8, 256, 28, 28), (256, 8, 3, 3), "float32", "float32", (1, 1), "SAME",
    ...                    feature_group_count=32), "cpu")
    'shifted'
    >>> lowering(conv_spec((8, 256, 28, 28), (256, 16, 3, 3), "float32", "float32", (1, 1), "SAME",
    ...                    feature_group_count=16), "cpu")
    'stacked'
    >>> lowering(conv_spec((2, 16, 32, 32, 32), (32, 16, 3, 3, 3), "float32", "float32", (1, 1, 1), "SAME"), "cpu")
    'folded'
    """
    if platform != "cpu" or spec.dtype not in _FLOATS or spec.nspatial == 0 or 0 in spec.out_shape \
            or 0 in spec.lhs_shape or 0 in spec.rhs_shape or any(d != 1 for d in spec.lhs_dilation):
        return None
    if spec.out_dtype not in _FLOATS:
        return None
    p = problem(spec)
    if spec.batch_group_count == 1 and p.groups > 1 and p.cg == 1 and p.og <= MAX_MULTIPLIER \
            and p.taps <= MAX_TAPS:
        return "depthwise"
    if spec.batch_group_count == 1 and p.taps == 1:
        return "pointwise"
    if spec.batch_group_count != 1:
        return None
    if p.groups > 1 and p.cg * p.taps <= MAX_SHIFTED_TERMS and p.cg * p.og <= MAX_SHIFTED_GROUP \
            and _stackable(spec, p):
        return "shifted"
    if p.groups == 1 and p.cg * p.taps <= MAX_UNGROUPED_TERMS and p.cg * p.og * p.taps <= MAX_UNGROUPED_PRODUCTS \
            and math.prod(spec.out_shape) >= MIN_UNGROUPED_OUTPUTS:
        return "shifted"
    if _foldable(spec, p):
        return "folded"
    return "stacked" if _stackable(spec, p) else None


def xla_flops(spec: ConvSpec, platform: str, dense_flops: float) -> float | None:
    """The rate, in operations per second, that the FFT decision takes for the direct path of
    ``spec`` on ``platform``: on the CPU, where :func:`lowering` leaves a floating spec to
    XLA's own convolution, :data:`XLA_FLOPS_PER_CHANNEL_PAIR` times a group's input channels
    times its outputs, at most ``dense_flops`` (the backend's rate for dense convolutions);
    None elsewhere (the backend's rates apply).

    >>> from polyconv.spec import conv_spec
    >>> image = conv_spec((8, 3, 128, 128), (1, 3, 9, 9), "float32", "float32", (1, 1), "SAME")
    >>> xla_flops(image, "cpu", 150e9), xla_flops(image, "gpu", 150e9)
    (3000000000.0, None)
    """
    if platform != "cpu" or spec.dtype not in _FLOATS or spec.out_dtype not in _FLOATS \
            or lowering(spec, platform) is not None:
        return None
    p = problem(spec)
    return min(dense_flops, XLA_FLOPS_PER_CHANNEL_PAIR * p.cg * p.og)


def _foldable(spec: ConvSpec, p: Problem) -> bool:
    """Whether :func:`folded` is taken for ``spec`` (of a floating type, without lhs
    dilation or batch groups) where nothing before it in :func:`lowering` is."""
    if p.groups != 1 or spec.nspatial < 2:
        return False
    if spec.nspatial == 2 and (p.strides[0] == 1 or p.cg * p.og < MIN_FOLDED_CHANNEL_PAIRS):
        return False
    return _folded_bytes(p) <= max(MAX_STACKED_BYTES, STACKED_GROWTH * _operand_bytes(spec))


def _folded_bytes(p: Problem) -> int:
    """Bytes (4 per element) of :func:`folded`'s input: the first axis' taps' windows,
    stacked along the channels."""
    return 4 * p.batch * p.out[0] * math.prod(p.sizes[1:]) * p.window[0] * p.cg


def folded_spec(spec: ConvSpec) -> ConvSpec:
    """The convolution of one spatial axis fewer that :func:`folded` computes ``spec`` by:
    channels last, the first axis' outputs in the batch, its taps in the channels.

    >>> from polyconv.spec import conv_spec
    >>> s = folded_spec(conv_spec((2, 16, 32, 32, 32), (32, 16, 3, 3, 3), "float32", "float32",
    ...                           (2, 1, 1), "SAME"))
    >>> s.lhs_shape, s.rhs_shape, s.out_shape, s.padding
    ((32, 32, 32, 48), (3, 3, 48, 32), (32, 32, 32, 32), ((1, 1), (1, 1)))
    """
    from polyconv.spec import conv_spec
    from polyconv.spec.dimension_numbers import channels_last, spatial_letters

    p = problem(spec)
    c = p.window[0] * p.cg
    return conv_spec((p.batch * p.out[0], *p.sizes[1:], c), (*p.window[1:], c, p.og), spec.dtype, spec.dtype,
                     p.strides[1:], spec.padding[1:], None, p.dilation[1:],
                     channels_last(spatial_letters(spec.nspatial - 1)), 1, 1, spec.precision,
                     spec.preferred_element_type)


def _stackable(spec: ConvSpec, p: Problem) -> bool:
    """Whether :func:`stacked` is taken for ``spec`` (of a floating type, without lhs
    dilation or batch groups) where nothing before it in :func:`lowering` is."""
    return spec.nspatial >= 2 and p.groups > 1 \
        and _stacked_bytes(p) <= max(MAX_STACKED_BYTES, STACKED_GROWTH * _operand_bytes(spec))


def shifted_derivative(spec: ConvSpec) -> str:
    """``'stacked'``, ``'folded'`` or ``'lax'``: the lowering whose forward mode (and through
    it, whose gradients) the :func:`shifted` lowering of ``spec`` takes, the one the spec
    would take without it.

    >>> from polyconv.spec import conv_spec
    >>> grouped = conv_spec((8, 256, 28, 28), (256, 8, 3, 3), "float32", "float32", (1, 1), "SAME",
    ...                     feature_group_count=32)
    >>> image = conv_spec((4, 3, 224, 224), (8, 3, 3, 3), "float32", "float32", (1, 1), "SAME")
    >>> volume = conv_spec((2, 4, 32, 32, 32), (4, 4, 3, 3, 3), "float32", "float32", (1, 1, 1), "SAME")
    >>> lowering(image, "cpu"), shifted_derivative(grouped), shifted_derivative(image), shifted_derivative(volume)
    ('shifted', 'stacked', 'lax', 'folded')
    """
    p = problem(spec)
    if _stackable(spec, p):
        return "stacked"
    return "folded" if _foldable(spec, p) else "lax"


def _limit(tap: int, dilation: int, out: int, stride: int) -> int:
    """One past the last padded position that tap ``tap`` reads for ``out`` outputs
    (from ``tap * dilation``, every ``stride``-th)."""
    return tap * dilation + (out - 1) * stride + 1


def _extent(p: Problem, level: int) -> tuple[int, ...]:
    """Per spatial axis, the positions of :func:`stacked`'s product split at ``level``: on
    the first ``level`` axes every padded position a tap reads, on the others the outputs."""
    wide = (_limit(p.window[i] - 1, p.dilation[i], p.out[i], p.strides[i]) for i in range(level))
    return (*wide, *p.out[level:])


def _stacked_bytes(p: Problem, level: int = 1) -> int:
    """Bytes (4 per element) of the two buffers :func:`stacked` makes, computed whole: the
    stacked windows ``(G, T * C_g, M)`` and the product ``(G, R * O_g, M)``."""
    columns = p.batch * math.prod(_extent(p, level))
    return 4 * p.groups * columns * (math.prod(p.window[level:]) * p.cg + math.prod(p.window[:level]) * p.og)


def _operand_bytes(spec: ConvSpec) -> int:
    """Bytes (4 per element) of the input and the output."""
    return 4 * (math.prod(spec.lhs_shape) + math.prod(spec.out_shape))


def _spatial_pad(lax: Any, jnp: Any, x: Any, padding: tuple[tuple[int, int], ...]) -> Any:
    """``x`` (``(A, B, *S)``) padded with zeros on its spatial axes, negative pads cropping:
    the crop as a ``lax.slice``, never a negative ``lax.pad`` (XLA:CPU in jaxlib 0.5
    compiles a negative pad that it has not rewritten as a slice to an error)."""
    grown = [(max(lo, 0), max(hi, 0), 0) for lo, hi in padding]
    if any(lo or hi for lo, hi, _ in grown):
        x = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (0, 0, 0), *grown])
    if any(lo < 0 or hi < 0 for lo, hi in padding):
        start = (0, 0, *(max(-lo, 0) for lo, _ in padding))
        limit = (x.shape[0], x.shape[1], *(size - max(-hi, 0) for size, (_, hi) in zip(x.shape[2:], padding)))
        x = lax.slice(x, start, limit)
    return x


def _accumulation(jnp: Any, spec: ConvSpec) -> Any:
    """The dtype products are summed in: float32 for 16-bit floats, else the result's."""
    return jnp.dtype("float32") if spec.out_dtype in ("float16", "bfloat16") or \
        spec.dtype in ("float16", "bfloat16") else jnp.dtype(spec.out_dtype)


def depthwise(lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
    """A grouped convolution as shifted multiply-adds, one term per tap and input channel of
    a group (see the module docstring): the ``depthwise`` lowering, and the forward
    computation of :func:`shifted`."""
    from ._lowering import jax_modules

    _, lax, jnp = jax_modules()
    dn = spec.dimension_numbers
    n = spec.nspatial
    p = problem(spec)
    acc = _accumulation(jnp, spec)
    x = lax.convert_element_type(lax.transpose(lhs, dn.lhs_spec), acc)  # (N, C, *S)
    w = lax.convert_element_type(lax.transpose(rhs, dn.rhs_spec), acc)  # (O, C_g, *K)
    x = _spatial_pad(lax, jnp, x, spec.padding)
    batch, out = x.shape[0], p.out
    x = lax.reshape(x, (batch, p.groups, p.cg, *x.shape[2:]))  # (N, G, C_g, *S_padded)
    w = lax.reshape(w, (p.groups, p.og, p.cg, *p.window))  # (G, O_g, C_g, *K)
    total = None
    for tap in product(*(range(k) for k in p.window)):
        for i in range(p.cg):
            start = (0, 0, i, *(t * d for t, d in zip(tap, p.dilation)))
            limit = (batch, p.groups, i + 1,
                     *(_limit(t, d, y, s) for t, d, y, s in zip(tap, p.dilation, out, p.strides)))
            xs = lax.slice(x, start, limit, (1, 1, 1, *p.strides))  # (N, G, 1, *Y)
            wk = lax.slice(w, (0, 0, i, *tap), (p.groups, p.og, i + 1, *(t + 1 for t in tap)))  # (G, O_g, 1, 1...)
            term = xs * lax.reshape(wk, (1, p.groups, p.og, *(1,) * n))  # (N, G, O_g, *Y)
            total = term if total is None else total + term
    assert total is not None  # at least one tap
    y = lax.reshape(total, (batch, p.groups * p.og, *out))
    y = lax.convert_element_type(y, jnp.dtype(spec.out_dtype))
    return lax.transpose(y, tuple(inverse_permutation(dn.out_spec)))


def shifted(lhs: Any, rhs: Any, spec: ConvSpec, precision: Any = None,
            derivative: Callable[[Any, Any], Any] | None = None) -> Any:
    """A convolution as :func:`depthwise`'s shifted multiply-adds, differentiated as
    ``derivative(lhs, rhs)`` (default: :func:`stacked`), a ``jax.custom_jvp``; see the
    module docstring."""
    from ._lowering import jax_modules

    jax, _, _ = jax_modules()
    from jax.custom_derivatives import SymbolicZero

    def other(a: Any, b: Any) -> Any:
        return stacked(a, b, spec, precision) if derivative is None else derivative(a, b)

    @jax.custom_jvp  # type: ignore[untyped-decorator]
    def conv(lhs: Any, rhs: Any) -> Any:
        return depthwise(lhs, rhs, spec)

    def jvp(primals: tuple[Any, Any], tangents: tuple[Any, Any]) -> tuple[Any, Any]:
        # the other lowering's own forward mode, over the operands whose tangents are not
        # zero (so that stacked's windows of lhs are made once, for the result and the
        # kernel's tangent)
        lhs, rhs = primals
        d_lhs, d_rhs = (None if isinstance(t, SymbolicZero) else t for t in tangents)
        out: tuple[Any, Any]
        if d_lhs is None and d_rhs is None:  # JAX calls the rule with one tangent at least
            primal = other(lhs, rhs)
            out = primal, jax.lax.zeros_like_array(primal)
        elif d_lhs is None:
            out = jax.jvp(lambda b: other(lhs, b), (rhs,), (d_rhs,))
        elif d_rhs is None:
            out = jax.jvp(lambda a: other(a, rhs), (lhs,), (d_lhs,))
        else:
            out = jax.jvp(other, primals, (d_lhs, d_rhs))
        return out

    conv.defjvp(jvp, symbolic_zeros=True)
    return conv(lhs, rhs)


def pointwise(lhs: Any, rhs: Any, spec: ConvSpec, precision: Any = None) -> Any:
    """A convolution whose windows are single taps as one ``lax.dot_general`` over the
    channels of the strided, cropped input (see the module docstring)."""
    from ._lowering import jax_modules

    _, lax, jnp = jax_modules()
    dn = spec.dimension_numbers
    n = spec.nspatial
    p = problem(spec)
    acc = _accumulation(jnp, spec)
    x = lax.transpose(lhs, dn.lhs_spec)  # (N, C, *S)
    if any(lo or hi for lo, hi in spec.padding) or any(s != 1 for s in p.strides):
        x = _spatial_pad(lax, jnp, x, spec.padding)
        limit = (x.shape[0], x.shape[1], *(_limit(0, 1, y, s) for y, s in zip(p.out, p.strides)))
        x = lax.slice(x, (0,) * (n + 2), limit, (1, 1, *p.strides))  # (N, C, *Y)
    w = lax.reshape(lax.transpose(rhs, dn.rhs_spec), (p.groups, p.og, p.cg))  # (G, O_g, C_g)
    batch, positions = x.shape[0], math.prod(p.out)
    x = lax.reshape(x, (batch, p.groups, p.cg, positions))
    # (G, O_g, C_g) x (N, G, C_g, P) -> (G, O_g, N, P), contracting C_g, batched over G
    y = lax.dot_general(w, x, (((2,), (2,)), ((0,), (1,))), precision, acc)
    y = lax.transpose(y, (2, 0, 1, 3))  # (N, G, O_g, P)
    y = lax.reshape(lax.convert_element_type(y, jnp.dtype(spec.out_dtype)), (batch, p.groups * p.og, *p.out))
    return lax.transpose(y, tuple(inverse_permutation(dn.out_spec)))


def folded(lhs: Any, rhs: Any, spec: ConvSpec, inner: Callable[[Any, Any], Any]) -> Any:
    """An ungrouped convolution of ``n`` spatial axes as one of ``n - 1`` (see the module
    docstring): ``inner`` computes :func:`folded_spec`'s convolution of the first axis'
    windows, stacked along the channels (``(N * Y_0, *S_rest, K_0 * C)``), with the
    kernel's taps on that axis moved into its input channels (``(*K_rest, K_0 * C, O)``)."""
    from ._lowering import jax_modules

    _, lax, jnp = jax_modules()
    dn = spec.dimension_numbers
    n = spec.nspatial
    p = problem(spec)
    x = lax.transpose(lhs, (dn.lhs_spec[0], *dn.lhs_spec[2:], dn.lhs_spec[1]))  # (N, S_0, *S_rest, C)
    low, high = spec.padding[0]
    if low > 0 or high > 0:
        grow = [(0, 0, 0)] * x.ndim
        grow[1] = (max(low, 0), max(high, 0), 0)
        x = lax.pad(x, jnp.zeros((), x.dtype), grow)
    k0, d0, s0, y0 = p.window[0], p.dilation[0], p.strides[0], p.out[0]
    skip = max(-low, 0)  # a negative low pad: the first elements cut off
    # the windows of tap t of the first axis: every s0-th padded position from t * d0
    pieces = [lax.slice_in_dim(x, skip + t * d0, skip + _limit(t, d0, y0, s0), s0, axis=1) for t in range(k0)]
    x = pieces[0] if k0 == 1 else lax.concatenate(pieces, n + 1)  # (N, Y_0, *S_rest, K_0 * C)
    x = lax.reshape(x, (p.batch * y0, *x.shape[2:]))
    w = lax.transpose(rhs, (*dn.rhs_spec[3:], dn.rhs_spec[2], dn.rhs_spec[1], dn.rhs_spec[0]))  # (*K_rest, K_0, C, O)
    w = lax.reshape(w, (*p.window[1:], k0 * p.cg, p.og))
    y = inner(x, w)  # (N * Y_0, *Y_rest, O)
    y = lax.reshape(y, (p.batch, y0, *y.shape[1:]))  # (N, Y_0, *Y_rest, O)
    logical = (0, n + 1, *range(1, n + 1))  # the axes of (N, O, *Y) in y
    return lax.transpose(y, tuple(logical[i] for i in inverse_permutation(dn.out_spec)))


def stacked(lhs: Any, rhs: Any, spec: ConvSpec, precision: Any = None, level: int = 1) -> Any:
    """A convolution as one ``lax.dot_general`` per group: the taps of the axes from
    ``level`` on stacked into the contraction, those of the axes before it into the
    product's rows (see the module docstring).  Where its buffers would pass
    :data:`STACKED_BLOCK_BYTES`, the outputs of axis ``level`` are computed in blocks that
    keep them under it (:func:`_blocks`), one after another in a ``lax.map``."""
    from ._lowering import jax_modules

    _, lax, jnp = jax_modules()
    dn = spec.dimension_numbers
    p = problem(spec)
    x = lax.transpose(lhs, (dn.lhs_spec[1], dn.lhs_spec[0], *dn.lhs_spec[2:]))  # (C, N, *S)
    x = _spatial_pad(lax, jnp, x, spec.padding)
    x = lax.reshape(x, (p.groups, p.cg, x.shape[1], *x.shape[2:]))  # (G, C_g, N, *S_padded)
    w = lax.reshape(lax.transpose(rhs, dn.rhs_spec), (p.groups, p.og, p.cg, *p.window))  # (G, O_g, C_g, *K)
    count, size = _blocks(p, level)
    if count == 1:
        y = _stacked_product(lax, jnp, x, w, p, spec, precision, level)  # (G, O_g, N, *Y)
    else:  # blocks of `size` outputs of axis `level`, the last one padded to full size and cut after
        axis, stride = 3 + level, p.strides[level]
        reach = _limit(p.window[level] - 1, p.dilation[level], size, stride)  # input positions a block reads
        need = (count - 1) * size * stride + reach
        if need > x.shape[axis]:
            grow = [(0, 0, 0)] * x.ndim
            grow[axis] = (0, need - x.shape[axis], 0)
            x = lax.pad(x, jnp.zeros((), x.dtype), grow)
        block = dataclasses.replace(p, out=(*p.out[:level], size, *p.out[level + 1:]))

        # the blocks' inputs (overlapping by the window's reach), mapped over: the product is
        # then linear in what lax.map maps over, which jaxlib 0.5 can transpose (not an index)
        pieces = jnp.stack([lax.slice_in_dim(x, i * size * stride, i * size * stride + reach, axis=axis)
                            for i in range(count)])
        y = lax.map(lambda piece: _stacked_product(lax, jnp, piece, w, block, spec, precision, level), pieces)
        # (B, G, O_g, N, *Y with `size` on axis `level`)
        y = jnp.moveaxis(y, 0, 3 + level)
        y = lax.reshape(y, (*y.shape[:3 + level], count * size, *y.shape[5 + level:]))
        y = lax.slice_in_dim(y, 0, p.out[level], axis=3 + level)
    y = lax.reshape(y, (p.groups * p.og, p.batch, *p.out))  # (O, N, *Y)
    y = lax.convert_element_type(y, jnp.dtype(spec.out_dtype))
    return lax.transpose(y, tuple(inverse_permutation((dn.out_spec[1], dn.out_spec[0], *dn.out_spec[2:]))))


def _blocks(p: Problem, level: int) -> tuple[int, int]:
    """How many blocks :func:`stacked` splits the outputs of axis ``level`` into, and their
    size: one where its buffers fit :data:`STACKED_BLOCK_BYTES` (or nothing is left to
    split), else blocks of equal size whose buffers do."""
    whole = _stacked_bytes(p, level)
    if level >= p.nspatial or p.out[level] == 1 or whole <= STACKED_BLOCK_BYTES or not _maps_transpose():
        return 1, 0  # one block, the whole product (the size is not used)
    size = max(1, p.out[level] * STACKED_BLOCK_BYTES // whole)
    count = -(-p.out[level] // size)
    size = -(-p.out[level] // count)  # the same count, blocks as even as it allows
    return count, size


def _maps_transpose() -> bool:
    """Whether this JAX can ``jax.linear_transpose`` a ``lax.map`` (0.10 on; 0.5.1, 0.7.1,
    0.8.0 and 0.9.2 fail: its linear inputs are not marked linear there)."""
    from ._lowering import jax_release

    return jax_release() >= (0, 10)


def _stacked_product(lax: Any, jnp: Any, x: Any, w: Any, p: Problem, spec: ConvSpec, precision: Any,
                     level: int) -> Any:
    """:func:`stacked`'s product for the padded input ``x`` ``(G, C_g, N, *S)`` and the
    kernel ``w`` ``(G, O_g, C_g, *K)``, ``p`` giving the outputs: ``(G, O_g, N, *Y)``, in
    the accumulation dtype."""
    acc = _accumulation(jnp, spec)
    groups, cg, og = p.groups, p.cg, p.og
    batch = x.shape[2]
    extent = _extent(p, level)  # the wide axes' reach, then the stacked axes' outputs
    reach, ones = extent[:level], (1,) * level
    columns = batch * math.prod(extent)
    taps = list(product(*(range(k) for k in p.window[level:])))
    # the windows written in place, one copy per tap: XLA:CPU copies a concatenation's
    # operands element by element, several times slower
    cols = jnp.zeros((groups, len(taps), cg, columns), x.dtype)
    for i, tap in enumerate(taps):  # (G, 1, C_g, M): the stacked axes' windows of this tap
        start = (0, 0, 0, *(0 for _ in reach), *(t * d for t, d in zip(tap, p.dilation[level:])))
        limit = (groups, cg, batch, *reach,
                 *(_limit(t, d, y, s) for t, d, y, s in zip(tap, p.dilation[level:], p.out[level:],
                                                            p.strides[level:])))
        piece = lax.slice(x, start, limit, (1, 1, 1, *ones, *p.strides[level:]))
        cols = lax.dynamic_update_slice(cols, lax.reshape(piece, (groups, 1, cg, columns)), (0, i, 0, 0))
    cols = lax.reshape(cols, (groups, len(taps) * cg, columns))  # (G, T * C_g, M)
    rows = math.prod(p.window[:level])
    w = lax.reshape(w, (groups, og, cg, rows, len(taps)))
    w = lax.reshape(lax.transpose(w, (0, 3, 1, 4, 2)), (groups, rows * og, len(taps) * cg))  # (G, R * O_g, T * C_g)
    z = lax.dot_general(w, cols, (((2,), (1,)), ((0,), (0,))), precision, acc)  # (G, R * O_g, M)
    z = lax.reshape(z, (groups, rows, og, batch, *extent))
    total = None
    inner = p.out[level:]
    for r, tap in enumerate(product(*(range(k) for k in p.window[:level]))):  # the wide axes' taps: shifted row blocks
        start = (0, r, 0, 0, *(t * d for t, d in zip(tap, p.dilation)), *(0 for _ in inner))
        limit = (groups, r + 1, og, batch, *(_limit(t, d, y, s) for t, d, y, s in zip(tap, p.dilation, p.out,
                                                                                     p.strides)), *inner)
        term = lax.slice(z, start, limit, (1, 1, 1, 1, *p.strides[:level], *(1 for _ in inner)))
        total = term if total is None else total + term
    assert total is not None  # at least one tap
    return lax.reshape(total, (groups, og, batch, *p.out))
