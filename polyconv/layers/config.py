"""Validation of a layer's fields, once, when the layer is made.

Every field is checked and put in canonical form (tuples of ints, padding
pairs or a padding name, dtype names) in a frozen :class:`Config`.  A bad
field raises a polyconv error naming the layer, the field and the value,
before any array is touched; errors that depend on the inputs (their rank,
their number of features, a mask that does not fit the kernel they give)
are raised by the layer's plan (:mod:`polyconv.layers.plan`), still before
any backend runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConvArgumentError, ConvShapeError, ConvTypeError, UnsupportedFeatureError
from ..spec import dtype_kind, dtype_name, parse_precision
from ..spec.integers import as_int
from ..spec.padding import PADDING_NAMES
from .padding import Pairs, canonicalize_padding

__all__ = ["Config", "conv_config", "transpose_config", "LAYER_PADDING_MODES"]

#: padding names the layers add to jax.lax's (case-sensitive, as in Flax)
LAYER_PADDING_MODES = ("CIRCULAR", "REFLECT", "CAUSAL")


@dataclass(frozen=True)
class Config:
    """A layer's fields in canonical form.

    ``padding`` is a padding name or ``n`` pairs; ``mode`` is ``'CIRCULAR'``,
    ``'REFLECT'`` or ``'CAUSAL'`` for those, else None.  ``kind`` is
    ``'conv'``, ``'local'`` or ``'transpose'``.
    """

    op: str
    kind: str
    features: int
    kernel_size: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str | Pairs
    mode: str | None
    input_dilation: tuple[int, ...]
    kernel_dilation: tuple[int, ...]
    feature_group_count: int
    use_bias: bool
    mask_shape: tuple[int, ...] | None
    dtype: str | None
    param_dtype: str
    transpose_kernel: bool = False
    preferred_element_type: str | None = None

    @property
    def nspatial(self) -> int:
        return len(self.kernel_size)


def _positive(value: Any, op: str, field: str) -> int:
    try:
        v = as_int(value)
    except TypeError:
        raise ConvTypeError(op, field, "must be a positive integer", value) from None
    if v < 1:
        raise ConvArgumentError(op, field, "must be a positive integer", value)
    return v


def _kernel_size(value: Any, op: str) -> tuple[int, ...]:
    expected = "must be a positive integer (1-d) or a sequence of positive integers"
    if isinstance(value, (str, bytes)):
        raise ConvTypeError(op, "kernel_size", expected, value)
    try:
        sizes: tuple[int, ...] = (as_int(value),)
    except TypeError:
        try:
            sizes = tuple(as_int(v) for v in value)
        except TypeError:
            raise ConvTypeError(op, "kernel_size", expected, value) from None
    if any(v < 1 for v in sizes):
        raise ConvArgumentError(op, "kernel_size", expected, value)
    return sizes


def _per_axis(value: Any, n: int, op: str, field: str) -> tuple[int, ...]:
    """Flax's ``maybe_broadcast``: None is 1, an int is repeated, a sequence
    must have one positive integer per kernel_size entry."""
    expected = f"must be None, a positive integer, or a sequence of {n} positive integers (one per kernel_size entry)"
    if value is None:
        return (1,) * n
    try:
        v = as_int(value)
    except TypeError:
        pass
    else:
        if v < 1:
            raise ConvArgumentError(op, field, expected, value)
        return (v,) * n
    if isinstance(value, (str, bytes)):
        raise ConvTypeError(op, field, expected, value)
    try:
        items = tuple(as_int(v) for v in value)
    except TypeError:
        raise ConvTypeError(op, field, expected, value) from None
    if len(items) != n or any(v < 1 for v in items):
        raise ConvArgumentError(op, field, expected, value)
    return items


def _dtype(value: Any, op: str, field: str, *, optional: bool, inexact: bool) -> str | None:
    if value is None and optional:
        return None
    try:
        name = dtype_name(value)
    except TypeError:
        raise ConvTypeError(op, field, "must be " + ("None or " if optional else "") + "a dtype", value) from None
    if inexact and dtype_kind(name) not in "fc":
        raise ConvTypeError(op, field, "must be " + ("None or " if optional else "") + "a floating or complex dtype",
                            value)
    return name


def _callable(value: Any, op: str, field: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise ConvTypeError(op, field, "must be " + ("None or " if optional else "") + "a callable", value)


def _bool(value: Any, op: str, field: str) -> bool:
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise ConvTypeError(op, field, "must be True or False", value)
    return bool(value)


def _mask_shape(mask: Any, op: str) -> tuple[int, ...] | None:
    if mask is None:
        return None
    shape = getattr(mask, "shape", None)
    if shape is None and isinstance(mask, (list, tuple)):
        try:
            shape = np.asarray(mask).shape
        except ValueError:
            shape = None
    if shape is None:
        raise ConvTypeError(
            op, "mask", "must be None or an array of the kernel's shape", got=f"a {type(mask).__name__}"
        )
    return tuple(int(d) for d in shape)


def _padding(
    layer: Any, n: int, op: str, exact: tuple[str, ...], any_case: tuple[str, ...]
) -> tuple[str | Pairs, str | None]:
    """The canonical padding and its layer mode (None for jax.lax's own):
    names in ``exact`` as spelled, names in ``any_case`` in any case."""
    padding = canonicalize_padding(layer.padding, n, op)
    if not isinstance(padding, str):
        return padding, None
    if padding in exact:
        return padding, padding if padding in LAYER_PADDING_MODES else None
    if padding.upper() in any_case:
        return padding, None
    allowed = ", ".join(map(repr, dict.fromkeys(exact + any_case)))
    raise ConvArgumentError(
        op, "padding", f"must be one of {allowed}, an int, or a sequence of {n} ints or (low, high) pairs", padding
    )


def _common(layer: Any, op: str) -> dict[str, Any]:
    features = _positive(layer.features, op, "features")
    kernel_size = _kernel_size(layer.kernel_size, op)
    n = len(kernel_size)
    _callable(layer.kernel_init, op, "kernel_init")
    _callable(layer.bias_init, op, "bias_init")
    _callable(layer.promote_dtype, op, "promote_dtype")
    parse_precision(layer.precision, op)
    return {
        "op": op,
        "features": features,
        "kernel_size": kernel_size,
        "strides": _per_axis(layer.strides, n, op, "strides"),
        "kernel_dilation": _per_axis(layer.kernel_dilation, n, op, "kernel_dilation"),
        "use_bias": _bool(layer.use_bias, op, "use_bias"),
        "mask_shape": _mask_shape(layer.mask, op),
        "dtype": _dtype(layer.dtype, op, "dtype", optional=True, inexact=True),
        "param_dtype": _dtype(layer.param_dtype, op, "param_dtype", optional=False, inexact=False),
    }


def _check_mask_rank(cfg: dict[str, Any], op: str, feature_axis: int) -> None:
    shape, n = cfg["mask_shape"], len(cfg["kernel_size"])
    if shape is None:
        return
    if len(shape) != n + 2 or shape[feature_axis] != cfg["features"]:
        raise ConvShapeError(
            op, "mask", f"must have the kernel's shape: {n + 2} dimensions, the axis {feature_axis} of size "
            f"features={cfg['features']}", got=f"shape {shape}",
        )
    if cfg["kind"] != "local" and shape[:n] != cfg["kernel_size"]:
        raise ConvShapeError(
            op, "mask", f"must have the kernel's shape, starting with kernel_size {cfg['kernel_size']}",
            got=f"shape {shape}",
        )


def conv_config(layer: Any, kind: str) -> Config:
    """The canonical :class:`Config` of a ``Conv`` (``kind='conv'``) or
    ``ConvLocal`` (``kind='local'``), or a polyconv error naming the field.

    Examples
    --------
    >>> from polyconv.layers import Conv
    >>> conv_config(Conv(8, 3, padding=1), 'conv').padding
    ((1, 1),)
    """
    op = type(layer).__name__
    cfg = _common(layer, op)
    cfg["kind"] = kind
    n = len(cfg["kernel_size"])
    cfg["input_dilation"] = _per_axis(layer.input_dilation, n, op, "input_dilation")
    groups = _positive(layer.feature_group_count, op, "feature_group_count")
    if kind == "local" and groups != 1:
        raise UnsupportedFeatureError(
            f"{op}: feature_group_count must be 1 (conv_general_dilated_local has no feature groups); got {groups!r}"
        )
    if cfg["features"] % groups:
        raise ConvArgumentError(
            op, "features", f"must be divisible by feature_group_count ({groups})", cfg["features"]
        )
    cfg["feature_group_count"] = groups
    _callable(layer.conv_general_dilated, op, "conv_general_dilated", optional=True)
    _callable(layer.conv_general_dilated_cls, op, "conv_general_dilated_cls", optional=True)
    padding, mode = _padding(layer, n, op, LAYER_PADDING_MODES, PADDING_NAMES)
    if mode == "CAUSAL" and n != 1:
        raise ConvArgumentError(
            op, "padding", f"'CAUSAL' is only implemented for 1-d convolutions (kernel_size has {n} entries)", padding
        )
    if isinstance(padding, str) and any(d != 1 for d in cfg["input_dilation"]):
        raise ConvArgumentError(
            op, "padding", f"must be explicit (low, high) pairs when input_dilation is not 1 "
            f"(input_dilation={cfg['input_dilation']}), as in jax.lax", padding,
        )
    _check_mask_rank(cfg, op, -1)
    return Config(padding=padding, mode=mode, **cfg)


def transpose_config(layer: Any) -> Config:
    """The canonical :class:`Config` of a ``ConvTranspose``, or a polyconv
    error naming the field.

    Examples
    --------
    >>> from polyconv.layers import ConvTranspose
    >>> transpose_config(ConvTranspose(4, (3, 3), strides=2)).strides
    (2, 2)
    """
    op = type(layer).__name__
    cfg = _common(layer, op)
    cfg["kind"] = "transpose"
    n = len(cfg["kernel_size"])
    cfg["input_dilation"] = (1,) * n
    cfg["feature_group_count"] = 1
    cfg["transpose_kernel"] = _bool(layer.transpose_kernel, op, "transpose_kernel")
    cfg["preferred_element_type"] = _dtype(
        layer.preferred_element_type, op, "preferred_element_type", optional=True, inexact=False
    )
    # jax.lax.conv_transpose takes 'SAME' and 'VALID' as spelled; with unit strides, a
    # string it does not know is handed on to conv_general_dilated, which takes any case
    any_case = PADDING_NAMES if all(s == 1 for s in cfg["strides"]) else ()
    padding, mode = _padding(layer, n, op, ("SAME", "VALID", "CIRCULAR"), any_case)
    _check_mask_rank(cfg, op, -2 if cfg["transpose_kernel"] else -1)
    return Config(padding=padding, mode=mode, **cfg)

