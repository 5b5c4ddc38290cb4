"""Which convolutions the cuDNN path takes, and as which cuDNN graph.

Pure Python: a validated :class:`~polyconv.spec.ConvSpec` in, the
:class:`CudnnPlan` objects that compute it with one cuDNN convolution node
out (or the reason there are none).  Nothing here imports CuPy or cuDNN, so
every rule is tested on machines without a GPU.

cuDNN takes a convolution as one of two graph nodes:

* ``conv_fprop`` (forward): every spec without lhs dilation.  Padding goes
  to cuDNN's ``pre_padding`` / ``post_padding``; negative padding crops the
  input first.
* ``conv_dgrad`` (the data gradient, i.e. the transposed convolution): every
  spec with lhs dilation and window strides of 1.  The convolution of the
  input dilated by ``d``, padded by ``(lo, hi)``, with kernel ``W``, is the
  data gradient of a forward convolution with stride ``d``, the spatially
  flipped and regrouped kernel, and padding ``((k-1)r - lo, (k-1)r - hi)``
  (``k`` the window, ``r`` the rhs dilation): no zeros are inserted.

Each plan also carries a second variant with symmetric padding (the smaller
side natively, the rest as an explicit pad of the input for ``fprop`` or a
crop of the output for ``dgrad``), tried when a cuDNN build rejects the
asymmetric one.

Everything cuDNN sees is channels-last (``N, *spatial, C``), the layout its
convolution engines are built for, with 1-d and 0-d convolutions given unit
spatial axes up to cuDNN's minimum of two.  What does not fit goes to the
gather-GEMM (:func:`why_not` says why): integer, bool and complex dtypes
(cuDNN has no exact integer or complex convolution), more than 3 spatial
dims, batch groups, empty operands or results, lhs dilation together with a
window stride, transposed padding beyond the dilated kernel, and crops
past the input's edge.

Examples
--------
>>> from polyconv.spec import conv_spec
>>> spec = conv_spec((1, 8, 8, 3), (3, 3, 3, 16), 'float32', 'float32', (2, 2), 'SAME',
...                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
>>> plan = cudnn_plans(spec)[0]
>>> plan.op, plan.pre_padding, plan.post_padding, plan.stride
('fprop', (0, 0), (1, 1), (2, 2))
>>> plan.x_dims, plan.x_strides
((1, 3, 8, 8), (192, 1, 24, 3))
>>> why_not(conv_spec((1, 1, 4), (1, 1, 2), 'int32', 'int32', (1,), 'VALID'))
'int32 convolutions: cuDNN has no exact integer convolution'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from polyconv import caching
from polyconv.spec import ConvSpec, dtype_bits, dtype_kind

__all__ = ["CudnnPlan", "cudnn_plans", "why_not", "CUDNN_DATA_TYPES", "MAX_SPATIAL", "MIN_SPATIAL"]

#: polyconv dtype name -> ``cudnn.data_type`` member name, for what cuDNN convolves.
CUDNN_DATA_TYPES = {"float16": "HALF", "bfloat16": "BFLOAT16", "float32": "FLOAT", "float64": "DOUBLE"}
#: cuDNN convolves 4-d and 5-d tensors: 2 or 3 spatial dims (fewer are padded with unit axes).
MIN_SPATIAL = 2
MAX_SPATIAL = 3

Pairs = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class CudnnPlan:
    """One cuDNN convolution node for a spec, and the array work around it.

    Shapes named ``*_shape`` are physical (C-contiguous, channels-last, with
    the unit spatial axes cuDNN needs); ``*_dims`` and ``*_strides`` are the
    same tensors as cuDNN's logical ``N, C, *spatial`` descriptors.

    Attributes
    ----------
    op
        ``'fprop'`` or ``'dgrad'``.
    io_dtype
        Dtype of cuDNN's operands and output (the operands are cast to it).
    compute_dtype
        cuDNN's accumulation dtype (``float32``, or ``float64`` for doubles).
    out_dtype
        The result's dtype; the output is cast to it when it differs from ``io_dtype``.
    avoid_notes
        ``cudnn.numerical_note`` members whose engines are excluded
        (``precision='highest'``: no TF32, no down-converted inputs, no
        reduced-precision reductions).
    groups
        Feature groups (cuDNN infers them from the channel counts).
    lhs_perm
        lhs axes -> ``(N, *S, C)``, spatial axes in canonical order.
    in_crop, in_pad
        Per spatial axis of the spec, ``(low, high)`` elements cropped from
        and then zeros added to the input before cuDNN reads it.
    rhs_perm
        rhs axes -> ``(O, *K, I)`` for ``fprop``, ``(O, I, *K)`` for ``dgrad``
        (then regrouped to ``(C, *K, O / G)`` and spatially flipped).
    x_shape, w_shape, y_shape
        What cuDNN reads and writes, physically.
    pre_padding, post_padding, stride, dilation
        cuDNN's convolution attributes, one per cuDNN spatial axis.
    out_crop
        Per spatial axis of the spec, ``(low, high)`` elements cropped from cuDNN's output.
    out_perm
        ``(N, *Y, O)`` -> the output layout, None for the identity.
    """

    op: str
    io_dtype: str
    compute_dtype: str
    out_dtype: str
    avoid_notes: tuple[str, ...]
    groups: int
    lhs_perm: tuple[int, ...]
    in_crop: Pairs
    in_pad: Pairs
    rhs_perm: tuple[int, ...]
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    pre_padding: tuple[int, ...]
    post_padding: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    out_crop: Pairs
    out_perm: tuple[int, ...] | None

    @property
    def nspatial(self) -> int:
        """Spatial dims of the spec (cuDNN's may be more: see :attr:`extra_axes`)."""
        return len(self.in_crop)

    @property
    def extra_axes(self) -> int:
        """Unit spatial axes added at the end for cuDNN."""
        return len(self.pre_padding) - self.nspatial

    @property
    def x_dims(self) -> tuple[int, ...]:
        return _nc(self.x_shape)[0]

    @property
    def x_strides(self) -> tuple[int, ...]:
        return _nc(self.x_shape)[1]

    @property
    def w_dims(self) -> tuple[int, ...]:
        return _nc(self.w_shape)[0]

    @property
    def w_strides(self) -> tuple[int, ...]:
        return _nc(self.w_shape)[1]

    @property
    def y_dims(self) -> tuple[int, ...]:
        return _nc(self.y_shape)[0]

    @property
    def y_strides(self) -> tuple[int, ...]:
        return _nc(self.y_shape)[1]

    @property
    def asymmetric(self) -> bool:
        """Whether cuDNN is asked for different padding on the two sides of an axis."""
        return self.pre_padding != self.post_padding


def _nc(physical: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Logical ``(N, C, *spatial)`` dims and element strides of a C-contiguous
    ``(N, *spatial, C)`` array."""
    strides = [math.prod(physical[i + 1 :]) for i in range(len(physical))]
    dims = (physical[0], physical[-1], *physical[1:-1])
    return dims, (strides[0], strides[-1], *strides[1:-1])


def why_not(spec: ConvSpec) -> str | None:
    """Why cuDNN cannot run ``spec`` (the gather-GEMM does), or None when it can."""
    for kind in (dtype_kind(spec.dtype), dtype_kind(spec.out_dtype)):
        if kind in "iub":
            return f"{spec.dtype} convolutions: cuDNN has no exact integer convolution"
        if kind == "c":
            return f"{spec.dtype} convolutions: cuDNN has no complex convolution"
    if spec.nspatial > MAX_SPATIAL:
        return f"{spec.nspatial} spatial dims: cuDNN convolves at most {MAX_SPATIAL}"
    if spec.batch_group_count > 1:
        return "batch_group_count > 1: cuDNN has no batch groups"
    contraction = spec.in_features // spec.feature_group_count * math.prod(spec.window)
    if 0 in spec.out_shape or 0 in spec.lhs_shape or contraction == 0:
        return "empty operands or result: the result is zeros"
    if any(d > 1 for d in spec.lhs_dilation):
        if any(s > 1 for s in spec.window_strides):
            return "lhs dilation with a window stride: no single cuDNN node does both"
        for (lo, hi), k, r in zip(spec.padding, spec.window, spec.rhs_dilation):
            if not (0 <= lo <= (k - 1) * r and 0 <= hi <= (k - 1) * r):
                return "lhs dilation with padding outside [0, dilated window - 1]: not a cuDNN data gradient"
        return None
    for (lo, hi), size in zip(spec.padding, spec.lhs_spatial):
        if max(0, -lo) + max(0, -hi) > size:
            return "negative padding that crops past the input's edge"
    return None


@caching.memoize(1024)
def cudnn_plans(spec: ConvSpec) -> tuple[CudnnPlan, ...]:
    """The cuDNN plans that compute ``spec``, in order of preference (empty when
    :func:`why_not` gives a reason): cuDNN's own, possibly asymmetric,
    padding first, then, if that differs, symmetric padding with the rest done
    around cuDNN."""
    if why_not(spec) is not None:
        return ()
    native = _plan(spec, symmetric=False)
    if not native.asymmetric:
        return (native,)
    return (native, _plan(spec, symmetric=True))


def _dtypes(spec: ConvSpec) -> tuple[str, str]:
    """``(io, compute)``: cuDNN convolves in the wider of the operand and result dtypes."""
    io = spec.dtype
    if spec.out_dtype != spec.dtype:
        io = max((spec.dtype, spec.out_dtype), key=dtype_bits)
        if dtype_bits(spec.dtype) == dtype_bits(spec.out_dtype):  # float16 <-> bfloat16
            io = "float32"
    return io, "float64" if io == "float64" else "float32"


def _avoid_notes(spec: ConvSpec, io: str) -> tuple[str, ...]:
    if spec.precision is None or "highest" not in spec.precision:
        return ()
    notes = ("DOWN_CONVERT_INPUTS", "REDUCED_PRECISION_REDUCTION")
    return ("TENSOR_CORE", *notes) if io == "float32" else notes


def _plan(spec: ConvSpec, symmetric: bool) -> CudnnPlan:
    n = spec.nspatial
    dn = spec.dimension_numbers
    extra = max(0, MIN_SPATIAL - n)
    ones = (1,) * extra
    io, compute = _dtypes(spec)
    g = spec.feature_group_count
    batch, c, o = spec.batch, spec.in_features, spec.out_features
    i = c // g
    window, rd = spec.window, spec.rhs_dilation
    lhs_perm = (dn.lhs_spec[0], *dn.lhs_spec[2:], dn.lhs_spec[1])
    none: Pairs = ((0, 0),) * n
    canonical = (0, n + 1, *range(1, n + 1))  # N, O, spatial axes of (N, *Y, O)
    out_perm = [0] * (n + 2)
    for axis, src in zip(dn.out_spec, canonical):
        out_perm[axis] = src
    perm = None if out_perm == sorted(out_perm) else tuple(out_perm)

    if any(d > 1 for d in spec.lhs_dilation):  # the transposed convolution: cuDNN's data gradient
        pre = [(k - 1) * r - lo for (lo, _), k, r in zip(spec.padding, window, rd)]
        post = [(k - 1) * r - hi for (_, hi), k, r in zip(spec.padding, window, rd)]
        crop = none
        if symmetric:
            both = [min(a, b) for a, b in zip(pre, post)]
            crop = tuple((a - m, b - m) for a, b, m in zip(pre, post, both))
            pre = post = both
        full = tuple(y + lo + hi for y, (lo, hi) in zip(spec.out_spatial, crop))
        return CudnnPlan(
            "dgrad", io, compute, spec.out_dtype, _avoid_notes(spec, io), g,
            lhs_perm, none, none, (dn.rhs_spec[0], dn.rhs_spec[1], *dn.rhs_spec[2:]),
            (batch, *spec.lhs_spatial, *ones, c), (c, *window, *ones, o // g), (batch, *full, *ones, o),
            (*pre, *(0,) * extra), (*post, *(0,) * extra), (*spec.lhs_dilation, *ones), (*rd, *ones),
            crop, perm,
        )

    in_crop = tuple((max(0, -lo), max(0, -hi)) for lo, hi in spec.padding)
    pre = [max(0, lo) for lo, _ in spec.padding]
    post = [max(0, hi) for _, hi in spec.padding]
    in_pad = none
    if symmetric:
        both = [min(a, b) for a, b in zip(pre, post)]
        in_pad = tuple((a - m, b - m) for a, b, m in zip(pre, post, both))
        pre = post = both
    sizes = tuple(
        s - clo - chi + plo + phi for s, (clo, chi), (plo, phi) in zip(spec.lhs_spatial, in_crop, in_pad)
    )
    return CudnnPlan(
        "fprop", io, compute, spec.out_dtype, _avoid_notes(spec, io), g,
        lhs_perm, in_crop, in_pad, (dn.rhs_spec[0], *dn.rhs_spec[2:], dn.rhs_spec[1]),
        (batch, *sizes, *ones, c), (o, *window, *ones, i), (batch, *spec.out_spatial, *ones, o),
        (*pre, *(0,) * extra), (*post, *(0,) * extra), (*spec.window_strides, *ones), (*rd, *ones),
        none, perm,
    )
