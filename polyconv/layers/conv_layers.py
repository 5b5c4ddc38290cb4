"""``Conv`` and ``ConvLocal``: ``flax.linen.Conv`` and ``flax.linen.ConvLocal`` on every backend."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import ops
from . import initializers
from .base import LayerMixin
from .config import conv_config
from .plan import LayerPlan, dimension_numbers
from .promotion import promote_dtype

__all__ = ["Conv", "ConvLocal"]

_FIELDS_DOC = """
    Attributes
    ----------
    features : int
        Number of output features (convolution filters).
    kernel_size : int or sequence of int
        The window; an int is a 1-d window.  Its length ``n`` is the number
        of spatial dimensions.
    strides : None, int or sequence of n ints
        Inter-window strides (default 1; None means 1).
    padding : str, int, or sequence of ints or (low, high) pairs
        ``'SAME'``, ``'VALID'``, ``'SAME_LOWER'`` (any case, as ``jax.lax``),
        ``'CIRCULAR'`` (periodic), ``'REFLECT'`` (mirrored, edge not
        repeated), ``'CAUSAL'`` (1-d only: left padding, same-sized output),
        an int (both sides of every axis), or ``n`` entries, each an int or
        a ``(low, high)`` pair.  Negative pads crop.
    input_dilation : None, int or sequence of n ints
        Dilation of the inputs (transposed convolution); padding must then
        be explicit pairs, as in ``jax.lax``.
    kernel_dilation : None, int or sequence of n ints
        Dilation of the kernel (atrous convolution).
    feature_group_count : int
        Feature groups: ``in_features`` and ``features`` must be divisible by it.
    use_bias : bool
        Add a bias (default True).
    mask : array or None
        Multiplies the kernel before the convolution; of the kernel's shape.
    dtype : dtype or None
        The dtype of the computation; None infers it from the inputs and
        parameters (JAX's promotion rules, then at least floating).
    param_dtype : dtype
        The dtype the initialisers are asked for (default float32).
    precision : None, str, jax.lax.Precision or a pair
        Passed to the convolution.
    kernel_init, bias_init : callable
        ``init(key, shape, dtype) -> array``; defaults: LeCun normal
        (``variance_scaling(1, 'fan_in', 'truncated_normal')``) and zeros.
    promote_dtype : callable
        ``promote_dtype(inputs, kernel, bias, dtype=dtype)``, returning the
        three cast to one dtype.
    conv_general_dilated : callable or None
        Used by ``Conv`` in place of :func:`polyconv.conv_general_dilated`
        (Flax's hook; ConvLocal accepts it and, like Flax, uses no other
        convolution than its local one).
    conv_general_dilated_cls : callable or None
        A factory returning that function (Flax's other hook).
"""


@dataclass(frozen=True, eq=False, repr=False)
class _Conv(LayerMixin):
    features: int
    kernel_size: int | Sequence[int]
    strides: None | int | Sequence[int] = 1
    padding: Any = "SAME"
    input_dilation: None | int | Sequence[int] = 1
    kernel_dilation: None | int | Sequence[int] = 1
    feature_group_count: int = 1
    use_bias: bool = True
    mask: Any = None
    dtype: Any = None
    param_dtype: Any = "float32"
    precision: Any = None
    kernel_init: Callable[..., Any] = initializers.lecun_normal()
    bias_init: Callable[..., Any] = initializers.zeros_init()
    promote_dtype: Callable[..., Any] = promote_dtype
    conv_general_dilated: Callable[..., Any] | None = None
    conv_general_dilated_cls: Any = None

    _kind = "conv"

    def __post_init__(self) -> None:
        self._setup(conv_config(self, self._kind))


@dataclass(frozen=True, eq=False, repr=False)
class Conv(_Conv):
    __doc__ = """A convolution with shared weights: ``flax.linen.Conv`` on every backend.

    The kernel has the shape ``(*kernel_size, in_features // feature_group_count,
    features)``, the bias ``(features,)``.  Inputs are channels-last,
    ``(*batch, *spatial, in_features)``, with any number of leading batch
    dimensions (flattened for the convolution and restored) or none.
    ``init(rng, x)`` makes the parameters in ``x``'s framework and device;
    ``apply(params, x)`` runs the layer.
""" + _FIELDS_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> from polyconv.layers import Conv
    >>> layer = Conv(features=4, kernel_size=(3,), padding='VALID')
    >>> x = np.ones((1, 8, 3), np.float32)
    >>> params = layer.init(0, x)
    >>> {k: v.shape for k, v in params.items()}
    {'kernel': (3, 3, 4), 'bias': (4,)}
    >>> layer.apply(params, x).shape
    (1, 6, 4)
    >>> Conv(4, (3, 3), strides=2, padding='CIRCULAR').output_shape((5, 2, 8, 8, 3))  # two batch dims
    (5, 2, 4, 4, 4)
    """

    def _run(self, plan: LayerPlan, inputs: Any, kernel: Any) -> Any:
        cfg = self._config
        if self.conv_general_dilated_cls is not None:
            conv = self.conv_general_dilated_cls()
        elif self.conv_general_dilated is not None:
            conv = self.conv_general_dilated
        else:
            conv = ops.conv_general_dilated
        return conv(
            inputs, kernel, cfg.strides, plan.padding,
            lhs_dilation=cfg.input_dilation,
            rhs_dilation=cfg.kernel_dilation,
            dimension_numbers=dimension_numbers(cfg.nspatial),
            feature_group_count=cfg.feature_group_count,
            precision=self.precision,
        )


@dataclass(frozen=True, eq=False, repr=False)
class ConvLocal(_Conv):
    __doc__ = """An unshared ("locally connected") convolution: ``flax.linen.ConvLocal`` on every backend.

    Every output position has its own kernel: the kernel has the shape
    ``(*out_spatial, prod(kernel_size) * in_features, features)`` and the
    bias ``(*out_spatial, features)``, so both depend on the inputs' spatial
    shape.  ``feature_group_count`` must be 1.
""" + _FIELDS_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> from polyconv.layers import ConvLocal
    >>> layer = ConvLocal(features=4, kernel_size=(3,), padding='VALID')
    >>> x = np.ones((1, 8, 3), np.float32)
    >>> params = layer.init(0, x)
    >>> {k: v.shape for k, v in params.items()}
    {'kernel': (6, 9, 4), 'bias': (6, 4)}
    >>> layer.apply(params, x).shape
    (1, 6, 4)
    """

    _kind = "local"

    def _run(self, plan: LayerPlan, inputs: Any, kernel: Any) -> Any:
        cfg = self._config
        return ops.conv_general_dilated_local(
            inputs, kernel, cfg.strides, plan.padding, cfg.kernel_size,
            lhs_dilation=cfg.input_dilation,
            rhs_dilation=cfg.kernel_dilation,
            dimension_numbers=dimension_numbers(cfg.nspatial),
            precision=self.precision,
        )
