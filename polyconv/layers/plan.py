"""What a layer does to inputs of a given shape, worked out from shapes alone.

A :class:`LayerPlan` holds, for one input shape: the leading batch dimensions
and the flat ``(N, *spatial, features)`` shape the convolution sees, the
``'CIRCULAR'``/``'REFLECT'`` padding applied to the inputs, the padding and
dimension numbers handed to the polyconv op, the parameter shapes, and the
output shape.  Shape errors (too few dimensions, features that the groups
do not divide, a mask that does not fit) are raised here, before any array
is touched.  Pure Python; no arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConvShapeError
from ..spec import conv_spec, conv_transpose_spec
from ..spec.dimension_numbers import channels_last
from .config import Config
from .padding import Pairs

__all__ = ["LayerPlan", "make_plan", "dimension_numbers"]

_SPATIAL = {0: "", 1: "W", 2: "HW", 3: "DHW"}
_LETTERS = "ABDEFGHJKLMPQRSTUVWXYZ"  # any letters but N, C, O, I


def dimension_numbers(n: int) -> tuple[str, str, str]:
    """Channels-last dimension numbers for ``n`` spatial dims, as Flax's layers use them.

    Strings, which polyconv and ``jax.lax`` (a ``conv_general_dilated`` hook)
    both take.

    Examples
    --------
    >>> dimension_numbers(2)
    ('NHWC', 'HWIO', 'NHWC')
    """
    return channels_last(_SPATIAL.get(n, _LETTERS[:n]))


@dataclass(frozen=True)
class LayerPlan:
    """A layer's work for one input shape.

    Attributes
    ----------
    in_shape, out_shape
        The layer's input and output shapes (batch dimensions included).
    batch_shape
        The leading batch dimensions of the input (empty for an unbatched one).
    flat_shape
        ``(N, *spatial, features)``: the input with its batch dims flattened
        into one (added when there were none).
    wrap, wrap_mode
        Spatial padding applied to the flat input first (``'wrap'`` or
        ``'reflect'``), or None.
    padding
        What the polyconv op gets: a padding name or pairs.
    kernel_shape, bias_shape
        The parameters' shapes (``bias_shape`` None without a bias).
    conv_shape
        The op's output shape (flat).
    periods
        For a ``'CIRCULAR'`` ConvTranspose: the period of each spatial axis
        its output is wrapped onto; else None.
    """

    in_shape: tuple[int, ...]
    batch_shape: tuple[int, ...]
    flat_shape: tuple[int, ...]
    wrap: Pairs | None
    wrap_mode: str | None
    padding: str | Pairs
    kernel_shape: tuple[int, ...]
    bias_shape: tuple[int, ...] | None
    conv_shape: tuple[int, ...]
    periods: tuple[int, ...] | None
    out_shape: tuple[int, ...]


def make_plan(cfg: Config, in_shape: tuple[int, ...]) -> LayerPlan:
    """The :class:`LayerPlan` of a layer configured by ``cfg`` for inputs of ``in_shape``.

    Examples
    --------
    >>> from polyconv.layers import Conv
    >>> p = make_plan(Conv(8, (3, 3), padding='CIRCULAR')._config, (2, 5, 16, 16, 3))
    >>> p.flat_shape, p.wrap, p.kernel_shape, p.out_shape
    ((10, 16, 16, 3), ((1, 1), (1, 1)), (3, 3, 3, 8), (2, 5, 16, 16, 8))
    """
    op, n = cfg.op, cfg.nspatial
    if len(in_shape) < n + 1:
        raise ConvShapeError(
            op, "inputs", f"must have at least {n + 1} dimensions ({n} spatial then the features, after any batch "
            f"dimensions) for kernel_size {cfg.kernel_size}", got=f"shape {in_shape}",
        )
    nbatch = len(in_shape) - n - 1
    batch_shape = in_shape[:nbatch]
    flat_shape = (math.prod(batch_shape), *in_shape[nbatch:])
    spatial, in_features = flat_shape[1:-1], flat_shape[-1]
    if in_features % cfg.feature_group_count:
        raise ConvShapeError(
            op, "inputs", f"must have a number of features divisible by feature_group_count "
            f"({cfg.feature_group_count})", got=f"{in_features} features (shape {in_shape})",
        )
    wrap: Pairs | None = None
    wrap_mode: str | None = None
    periods: tuple[int, ...] | None = None
    padding = cfg.padding
    conv_in = flat_shape
    if cfg.mode in ("CIRCULAR", "REFLECT") and cfg.kind != "transpose":
        dilated = [(k - 1) * d + 1 for k, d in zip(cfg.kernel_size, cfg.kernel_dilation)]
        wrap = tuple(((k - 1) // 2, k // 2) for k in dilated)
        wrap_mode = "wrap" if cfg.mode == "CIRCULAR" else "reflect"
        _check_extendable(op, cfg.mode, spatial, wrap, in_shape)
        padding = "VALID"
        conv_in = (flat_shape[0], *(s + lo + hi for s, (lo, hi) in zip(spatial, wrap)), in_features)
    elif cfg.mode == "CAUSAL":  # left zeros, then VALID: the same as explicit padding (no input dilation here)
        padding = ((cfg.kernel_dilation[0] * (cfg.kernel_size[0] - 1), 0),)
    elif cfg.mode == "CIRCULAR":  # ConvTranspose: VALID, then wrapped onto in * stride
        padding = "VALID"
        periods = tuple(s * st for s, st in zip(spatial, cfg.strides))
        _check_extendable(op, cfg.mode, spatial, tuple((1, 0) for _ in spatial), in_shape)

    k, dn = cfg.kernel_size, dimension_numbers(n)
    bias_shape: tuple[int, ...] | None = (cfg.features,)
    if cfg.kind == "transpose":
        kernel_shape = (*k, cfg.features, in_features) if cfg.transpose_kernel else (*k, in_features, cfg.features)
        conv_shape = conv_transpose_spec(
            conv_in, kernel_shape, "float32", "float32", cfg.strides, padding, cfg.kernel_dilation, None,
            cfg.transpose_kernel, None, None, False, op=op,
        ).out_shape
    else:
        shared = (*k, in_features // cfg.feature_group_count, cfg.features)
        conv_shape = conv_spec(
            conv_in, shared, "float32", "float32", cfg.strides, padding, cfg.input_dilation, cfg.kernel_dilation,
            dn, cfg.feature_group_count, op=op,
        ).out_shape
        if cfg.kind == "local":
            kernel_shape = (*conv_shape[1:-1], math.prod(k) * in_features, cfg.features)
            bias_shape = conv_shape[1:]
        else:
            kernel_shape = shared
    if cfg.mask_shape is not None and cfg.mask_shape != kernel_shape:
        raise ConvShapeError(
            op, "mask", f"must have the kernel's shape {kernel_shape} (for inputs of shape {in_shape})",
            got=f"shape {cfg.mask_shape}",
        )
    out_flat = conv_shape if periods is None else (conv_shape[0], *periods, conv_shape[-1])
    return LayerPlan(
        in_shape=in_shape,
        batch_shape=batch_shape,
        flat_shape=flat_shape,
        wrap=wrap,
        wrap_mode=wrap_mode,
        padding=padding,
        kernel_shape=kernel_shape,
        bias_shape=bias_shape if cfg.use_bias else None,
        conv_shape=conv_shape,
        periods=periods,
        out_shape=batch_shape + out_flat[1:],
    )


def _check_extendable(op: str, mode: str, spatial: tuple[int, ...], pads: Pairs, in_shape: tuple[int, ...]) -> None:
    for axis, (size, (lo, hi)) in enumerate(zip(spatial, pads)):
        if size == 0 and (lo or hi):
            raise ConvShapeError(
                op, "inputs", f"must not have an empty spatial axis with {mode!r} padding (spatial axis {axis})",
                got=f"shape {in_shape}",
            )
