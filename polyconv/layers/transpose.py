"""``ConvTranspose``: ``flax.linen.ConvTranspose`` on every backend."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import ops
from . import initializers
from .base import LayerMixin
from .config import transpose_config
from .plan import LayerPlan
from .promotion import promote_dtype

__all__ = ["ConvTranspose"]


@dataclass(frozen=True, eq=False, repr=False)
class ConvTranspose(LayerMixin):
    """A transposed ("fractionally strided") convolution: ``flax.linen.ConvTranspose`` on every backend.

    Runs :func:`polyconv.conv_transpose` with its default channels-last
    layout.  The kernel has the shape ``(*kernel_size, in_features, features)``,
    or ``(*kernel_size, features, in_features)`` with ``transpose_kernel``
    (the layout of the forward ``Conv`` it transposes); the bias
    ``(features,)``.  Inputs as for :class:`Conv`.

    Attributes
    ----------
    features : int
        Number of output features.
    kernel_size : int or sequence of int
        The window; an int is a 1-d window.
    strides : None, int or sequence of n ints
        The fractional strides (the inputs are dilated by them); None means 1.
    padding : str, int, or sequence of ints or (low, high) pairs
        ``'SAME'`` (output ``in * stride``), ``'VALID'``, ``'CIRCULAR'`` (the
        ``'VALID'`` result wrapped periodically onto ``in * stride``, as
        Flax does), or explicit pairs: the padding of the transposed
        convolution itself, as ``jax.lax.conv_transpose`` reads them.
    kernel_dilation : None, int or sequence of n ints
        Dilation of the kernel.
    use_bias, mask, dtype, param_dtype, precision, kernel_init, bias_init, promote_dtype
        As for :class:`Conv`.
    transpose_kernel : bool
        Flip the kernel's spatial axes and swap its input and output feature
        axes: the gradient of a forward convolution with the same kernel.
    preferred_element_type : dtype or None
        Accumulation and output dtype of the convolution.

    Examples
    --------
    >>> import numpy as np
    >>> from polyconv.layers import ConvTranspose
    >>> layer = ConvTranspose(features=4, kernel_size=(3,), padding='VALID')
    >>> x = np.ones((1, 8, 3), np.float32)
    >>> params = layer.init(0, x)
    >>> {k: v.shape for k, v in params.items()}
    {'kernel': (3, 3, 4), 'bias': (4,)}
    >>> layer.apply(params, x).shape
    (1, 10, 4)
    >>> ConvTranspose(4, (6, 6), strides=(2, 2), padding='CIRCULAR', transpose_kernel=True).param_shapes((15, 15, 3))
    {'kernel': (6, 6, 4, 3), 'bias': (4,)}
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: None | int | Sequence[int] = None
    padding: Any = "SAME"
    kernel_dilation: None | int | Sequence[int] = None
    use_bias: bool = True
    mask: Any = None
    dtype: Any = None
    param_dtype: Any = "float32"
    precision: Any = None
    kernel_init: Callable[..., Any] = initializers.lecun_normal()
    bias_init: Callable[..., Any] = initializers.zeros_init()
    transpose_kernel: bool = False
    promote_dtype: Callable[..., Any] = promote_dtype
    preferred_element_type: Any = None

    def __post_init__(self) -> None:
        self._setup(transpose_config(self))

    def _run(self, plan: LayerPlan, inputs: Any, kernel: Any) -> Any:
        cfg = self._config
        return ops.conv_transpose(
            inputs, kernel, cfg.strides, plan.padding,
            rhs_dilation=cfg.kernel_dilation,
            transpose_kernel=cfg.transpose_kernel,
            precision=self.precision,
            preferred_element_type=self.preferred_element_type,
        )
