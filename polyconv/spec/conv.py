"""``ConvSpec``: every argument of ``conv_general_dilated``, parsed once.

A spec is frozen and hashable and holds no arrays: the operand shapes and
dtype names, the dimension numbers, and strides, padding and dilations in
canonical order (the order of the spatial letters in the rhs spec).  Parsing
validates everything; a backend receives only valid specs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..caching import memoize, typed_key
from ..errors import ConvArgumentError, ConvShapeError, ConvTypeError, DtypeMismatchError
from .dimension_numbers import ConvDimensionNumbers, channels_last, conv_dimension_numbers, spatial_letters
from .dtypes import dtype_kind, dtype_name, is_narrower
from .integers import as_int
from .padding import conv_output_size, dilate_dim, parse_padding
from .precision import parse_precision

__all__ = ["ConvSpec", "conv_spec", "conv_general_shape", "parse_int_tuple"]


@dataclass(frozen=True)
class ConvSpec:
    """A validated convolution, independent of any array.

    Sizes and per-axis parameters are in canonical order: ``lhs_spatial``,
    ``window`` (kernel spatial sizes), ``window_strides``, ``padding``,
    ``lhs_dilation``, ``rhs_dilation`` and ``out_spatial`` all follow the rhs
    spec's spatial letters.  ``out_shape`` is in the output's own layout.
    """

    lhs_shape: tuple[int, ...]
    rhs_shape: tuple[int, ...]
    dimension_numbers: ConvDimensionNumbers
    window_strides: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    lhs_dilation: tuple[int, ...]
    rhs_dilation: tuple[int, ...]
    feature_group_count: int
    batch_group_count: int
    precision: tuple[str, str] | None
    dtype: str
    preferred_element_type: str | None
    out_shape: tuple[int, ...]

    @property
    def nspatial(self) -> int:
        """Number of spatial dimensions."""
        return len(self.lhs_shape) - 2

    @property
    def out_dtype(self) -> str:
        """Dtype of the result: ``preferred_element_type`` or the operands'."""
        return self.preferred_element_type or self.dtype

    @property
    def batch(self) -> int:
        """lhs batch size."""
        return self.lhs_shape[self.dimension_numbers.lhs_spec[0]]

    @property
    def in_features(self) -> int:
        """lhs feature size."""
        return self.lhs_shape[self.dimension_numbers.lhs_spec[1]]

    @property
    def out_features(self) -> int:
        """rhs output feature size (the output's feature size)."""
        return self.rhs_shape[self.dimension_numbers.rhs_spec[0]]

    @property
    def groups(self) -> int:
        """The groups of the convolution: ``feature_group_count`` or
        ``batch_group_count`` (at most one of them exceeds 1)."""
        return max(self.feature_group_count, self.batch_group_count)

    @property
    def lhs_spatial(self) -> tuple[int, ...]:
        """lhs spatial sizes, canonical order."""
        return tuple(self.lhs_shape[a] for a in self.dimension_numbers.lhs_spec[2:])

    @property
    def window(self) -> tuple[int, ...]:
        """Kernel spatial sizes (undilated), canonical order."""
        return tuple(self.rhs_shape[a] for a in self.dimension_numbers.rhs_spec[2:])

    @property
    def out_spatial(self) -> tuple[int, ...]:
        """Output spatial sizes, canonical order."""
        return tuple(self.out_shape[a] for a in self.dimension_numbers.out_spec[2:])


def parse_int_tuple(value: Any, n: int, op: str, param: str, *, default: int | None = None) -> tuple[int, ...]:
    """A sequence of ``n`` positive integers; None gives ``(default,) * n`` when a default is given."""
    expected = f"must be a sequence of {n} positive integer{'' if n == 1 else 's'}"
    if value is None and default is not None:
        return (default,) * n
    if isinstance(value, (str, bytes)):
        raise ConvTypeError(op, param, expected, value)
    try:
        items = tuple(value)
    except TypeError:
        raise ConvTypeError(op, param, expected, value) from None
    try:
        ints = tuple(as_int(v) for v in items)
    except TypeError:
        raise ConvTypeError(op, param, expected, value) from None
    if len(ints) != n or any(v < 1 for v in ints):
        raise ConvArgumentError(op, param, expected, value)
    return ints


def _count(value: Any, op: str, param: str) -> int:
    try:
        v = as_int(value)
    except TypeError:
        raise ConvTypeError(op, param, "must be a positive integer", value) from None
    if v < 1:
        raise ConvArgumentError(op, param, "must be a positive integer", value)
    return v


def _shape(shape: Any, op: str, param: str) -> tuple[int, ...]:
    try:
        dims = tuple(as_int(s) for s in shape)
    except TypeError:
        raise ConvTypeError(op, param, "must have a shape of integers", shape) from None
    if any(d < 0 for d in dims):
        raise ConvShapeError(op, param, "must have a shape of sizes >= 0", got=f"shape {dims}")
    return dims


def conv_spec(
    lhs_shape: Sequence[int],
    rhs_shape: Sequence[int],
    lhs_dtype: Any,
    rhs_dtype: Any,
    window_strides: Any,
    padding: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    feature_group_count: Any = 1,
    batch_group_count: Any = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    *,
    op: str = "conv_general_dilated",
) -> ConvSpec:
    """Validate the arguments of ``conv_general_dilated`` into a :class:`ConvSpec`.

    Results are cached, so parsing the same call twice (a jitted function
    traced twice, a training loop) costs a dictionary look-up.

    Examples
    --------
    >>> s = conv_spec((1, 8, 8, 3), (3, 3, 3, 16), 'float32', 'float32', (2, 2), 'SAME',
    ...               dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    >>> s.out_shape, s.padding
    ((1, 4, 4, 16), ((0, 1), (0, 1)))
    """
    return _conv_spec(
        _shape(lhs_shape, op, "lhs"), _shape(rhs_shape, op, "rhs"), lhs_dtype, rhs_dtype, window_strides,
        padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count, batch_group_count,
        precision, preferred_element_type, op,
    )


@memoize(4096, key=typed_key)
def _conv_spec(
    lhs_shape: Any, rhs_shape: Any, lhs_dtype: Any, rhs_dtype: Any, window_strides: Any, padding: Any,
    lhs_dilation: Any, rhs_dilation: Any, dimension_numbers: Any, feature_group_count: Any,
    batch_group_count: Any, precision: Any, preferred_element_type: Any, op: str,
) -> ConvSpec:
    dn = conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers, op)
    n = len(lhs_shape) - 2
    strides = parse_int_tuple(window_strides, n, op, "window_strides")
    lhs_dil = parse_int_tuple(lhs_dilation, n, op, "lhs_dilation", default=1)
    rhs_dil = parse_int_tuple(rhs_dilation, n, op, "rhs_dilation", default=1)
    fgc = _count(feature_group_count, op, "feature_group_count")
    bgc = _count(batch_group_count, op, "batch_group_count")
    _check_groups(lhs_shape, rhs_shape, dn, fgc, bgc, op, default_layout=dimension_numbers is None)

    lhs_spatial = tuple(lhs_shape[a] for a in dn.lhs_spec[2:])
    window = tuple(rhs_shape[a] for a in dn.rhs_spec[2:])
    if 0 in window:
        raise ConvShapeError(
            op, "rhs", "must have spatial sizes >= 1: an empty window is not a convolution (XLA rejects it)",
            got=f"shape {rhs_shape}",
        )
    eff_window = tuple(dilate_dim(k, d) for k, d in zip(window, rhs_dil))
    pads = parse_padding(padding, n, lhs_spatial, eff_window, strides, lhs_dil, op)
    prec = parse_precision(precision, op)
    dtype, preferred = _check_dtypes(lhs_dtype, rhs_dtype, preferred_element_type, op)

    out_spatial = tuple(
        conv_output_size(dilate_dim(size, ld) + lo + hi, k, s)
        for size, ld, (lo, hi), k, s in zip(lhs_spatial, lhs_dil, pads, eff_window, strides)
    )
    canonical = (lhs_shape[dn.lhs_spec[0]] // bgc, rhs_shape[dn.rhs_spec[0]], *out_spatial)
    out_shape = [0] * len(canonical)
    for size, axis in zip(canonical, dn.out_spec):
        out_shape[axis] = size
    return ConvSpec(
        lhs_shape=lhs_shape, rhs_shape=rhs_shape, dimension_numbers=dn, window_strides=strides,
        padding=pads, lhs_dilation=lhs_dil, rhs_dilation=rhs_dil, feature_group_count=fgc,
        batch_group_count=bgc, precision=prec, dtype=dtype, preferred_element_type=preferred,
        out_shape=tuple(out_shape),
    )


def _check_groups(
    lhs_shape: tuple[int, ...], rhs_shape: tuple[int, ...], dn: ConvDimensionNumbers, fgc: int, bgc: int, op: str,
    *, default_layout: bool = False,
) -> None:
    if fgc > 1 and bgc > 1:
        raise ConvArgumentError(
            op, "feature_group_count", "and batch_group_count cannot both be > 1",
            got=f"feature_group_count={fgc}, batch_group_count={bgc}",
        )
    batch = lhs_shape[dn.lhs_spec[0]]
    c_in = lhs_shape[dn.lhs_spec[1]]
    i_rhs = rhs_shape[dn.rhs_spec[1]]
    o_rhs = rhs_shape[dn.rhs_spec[0]]
    if c_in % fgc:
        raise ConvShapeError(
            op, "feature_group_count", f"must divide the lhs feature size {c_in}", fgc
        )
    if c_in // fgc != i_rhs:
        raise ConvShapeError(
            op,
            "rhs",
            f"input feature size must equal the lhs feature size divided by "
            f"feature_group_count ({c_in} // {fgc} = {c_in // fgc})",
            got=f"{i_rhs} (rhs shape {rhs_shape})",
            hint=_default_layout_hint(len(lhs_shape) - 2) if default_layout else None,
        )
    if o_rhs % fgc:
        raise ConvShapeError(
            op, "feature_group_count", f"must divide the rhs output feature size {o_rhs}", fgc
        )
    if batch % bgc:
        raise ConvShapeError(op, "batch_group_count", f"must divide the lhs batch size {batch}", bgc)
    if o_rhs % bgc:
        raise ConvShapeError(
            op, "batch_group_count", f"must divide the rhs output feature size {o_rhs}", bgc
        )


def _default_layout_hint(n: int) -> str:
    """What ``dimension_numbers=None`` means, and the channels-last spelling."""
    sp = spatial_letters(n)
    return (
        f"dimension_numbers=None means channels first: lhs 'NC{sp}', rhs 'OI{sp}', out 'NC{sp}'; "
        f"for channels-last operands pass dimension_numbers={channels_last(sp)}"
    )


def _check_dtypes(lhs_dtype: Any, rhs_dtype: Any, preferred: Any, op: str) -> tuple[str, str | None]:
    names = []
    for param, dt in (("lhs", lhs_dtype), ("rhs", rhs_dtype)):
        try:
            names.append(dtype_name(dt))
        except TypeError:
            raise ConvTypeError(op, param, "must be an array with a dtype", got=f"dtype {dt!r}") from None
    lhs, rhs = names
    if lhs != rhs:
        raise DtypeMismatchError(
            op, "rhs", f"must have the same dtype as lhs ({lhs})", got=rhs,
            hint=f"Cast one of them first: rhs to {lhs}, or lhs to {rhs}",
        )
    if preferred is None:
        return lhs, None
    try:
        pref = dtype_name(preferred)
    except TypeError:
        raise ConvTypeError(op, "preferred_element_type", "must be None or a dtype", preferred) from None
    kin, kout = dtype_kind(lhs), dtype_kind(pref)
    # JAX's rules: bool may become any numeric type; integers integers or floats;
    # floats floats; complex complex; never signed to unsigned, never narrower.
    allowed = {"b": "biufc", "i": "iuf", "u": "iuf", "f": "f", "c": "c"}
    if kout not in allowed.get(kin, kin):
        raise ConvTypeError(
            op,
            "preferred_element_type",
            f"is incompatible with operands of dtype {lhs}: the combinations allowed are "
            "(integer, integer), (integer, floating), (floating, floating), (complex, complex), (bool, any)",
            got=pref,
        )
    if kin == "i" and kout == "u":
        raise ConvTypeError(
            op, "preferred_element_type", f"must not be unsigned for signed operands of dtype {lhs}", got=pref
        )
    if is_narrower(pref, lhs):
        raise ConvTypeError(
            op, "preferred_element_type", f"must not be narrower than the operands' dtype {lhs}", got=pref
        )
    return lhs, pref


def conv_general_shape(
    lhs_shape: Sequence[int],
    rhs_shape: Sequence[int],
    window_strides: Sequence[int],
    padding: Any,
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
) -> tuple[int, ...]:
    """Output shape of ``conv_general_dilated`` without computing anything.

    Takes the same arguments as :func:`polyconv.conv_general_dilated`, with
    shapes in place of arrays, and raises the same errors.

    Examples
    --------
    >>> conv_general_shape((8, 3, 224, 224), (64, 3, 7, 7), (2, 2), [(3, 3), (3, 3)])
    (8, 64, 112, 112)
    """
    return conv_spec(
        lhs_shape, rhs_shape, "float32", "float32", window_strides, padding, lhs_dilation,
        rhs_dilation, dimension_numbers, feature_group_count, batch_group_count,
        op="conv_general_shape",
    ).out_shape

