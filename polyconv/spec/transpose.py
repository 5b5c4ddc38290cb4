"""``conv_transpose``: a fractionally strided convolution, as ``jax.lax`` defines it.

A transposed convolution of ``lhs`` with stride ``s`` is the forward
convolution of ``lhs`` dilated by ``s`` (``lhs_dilation = strides``, window
strides 1) with padding chosen as follows, per spatial axis with effective
(dilated) kernel size ``k``:

* ``'SAME'``: ``pad_len = k + s - 2``; ``low = k - 1`` if ``s > k - 1`` else
  ``ceil(pad_len / 2)``; ``high = pad_len - low``. The output has
  ``in * s`` elements.
* ``'VALID'``: ``pad_len = k + s - 2 + max(k - s, 0)``; ``low = k - 1``. The
  output has ``in * s + max(k - s, 0)`` elements.
* explicit ``(low, high)`` pairs: the padding of the transposed convolution
  itself, or, with ``use_consistent_padding=True``, the padding of the
  *forward* convolution this one transposes (PyTorch's meaning): the pads
  become ``(k - 1 - low, k - 1 - high)``.
* any other string (as in JAX, only with strides of 1): the forward padding.

Default layouts are TensorFlow's for 0 to 3 spatial dims (``NC``/``IO``,
``NHC``/``HIO``, ``NHWC``/``HWIO``, ``NHWDC``/``HWDIO``); JAX refuses more
spatial dims, where polyconv goes on with the same channels-last pattern.
``transpose_kernel=True`` flips the kernel's spatial axes and swaps its I and
O axes (Keras ``Conv2DTranspose``, the gradient of a forward conv).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..caching import memoize, typed_key
from ..errors import ConvArgumentError, ConvShapeError, ConvTypeError
from .conv import ConvSpec, _shape, conv_spec, parse_int_tuple
from .dimension_numbers import channels_last, conv_dimension_numbers, spatial_letters
from .padding import _explicit_pairs, dilate_dim

__all__ = ["TransposeSpec", "conv_transpose_spec", "conv_transpose_shape", "default_transpose_dimension_numbers"]


@dataclass(frozen=True)
class TransposeSpec:
    """A validated ``conv_transpose``: the equivalent forward convolution.

    ``conv`` describes the convolution of ``lhs`` with the kernel *after*
    the optional transposition (``conv.rhs_shape`` has I and O swapped when
    ``transpose_kernel``); ``rhs_shape`` is the kernel as given.
    """

    conv: ConvSpec
    rhs_shape: tuple[int, ...]
    transpose_kernel: bool

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of the result."""
        return self.conv.out_shape


def default_transpose_dimension_numbers(ndim: int) -> tuple[str, str, str]:
    """``conv_transpose``'s default layouts for operands of rank ``ndim``.

    TensorFlow's for up to 3 spatial dims; the same channels-last pattern
    (with spatial letters ``a``, ``b``, ...) beyond, where JAX refuses.

    Examples
    --------
    >>> default_transpose_dimension_numbers(4)
    ('NHWC', 'HWIO', 'NHWC')
    >>> default_transpose_dimension_numbers(6)
    ('NabcdC', 'abcdIO', 'NabcdC')
    """
    return channels_last(spatial_letters(ndim - 2))


def _flag(value: Any, op: str, param: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConvTypeError(op, param, "must be True or False", value)
    return bool(value)


def _transpose_pads(k: int, s: int, padding: Any) -> tuple[int, int]:
    if padding == "SAME":
        pad_len = k + s - 2
        low = k - 1 if s > k - 1 else -(-pad_len // 2)
    elif padding == "VALID":
        pad_len = k + s - 2 + max(k - s, 0)
        low = k - 1
    else:  # the forward conv's (low, high)
        lo, hi = padding
        return (k - 1 - lo, k - 1 - hi)
    return (low, pad_len - low)


def conv_transpose_spec(
    lhs_shape: Any,
    rhs_shape: Any,
    lhs_dtype: Any,
    rhs_dtype: Any,
    strides: Any,
    padding: Any,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    transpose_kernel: Any = False,
    precision: Any = None,
    preferred_element_type: Any = None,
    use_consistent_padding: Any = False,
    op: str = "conv_transpose",
) -> TransposeSpec:
    """Validate the arguments of ``conv_transpose`` (cached, like :func:`conv_spec`)."""
    return _conv_transpose_spec(
        _shape(lhs_shape, op, "lhs"), _shape(rhs_shape, op, "rhs"), lhs_dtype, rhs_dtype, strides, padding,
        rhs_dilation, dimension_numbers, transpose_kernel, precision, preferred_element_type,
        use_consistent_padding, op,
    )


@memoize(4096, key=typed_key)
def _conv_transpose_spec(
    lhs_shape: tuple[int, ...], rhs_shape: tuple[int, ...], lhs_dtype: Any, rhs_dtype: Any, strides: Any,
    padding: Any, rhs_dilation: Any, dimension_numbers: Any, transpose_kernel: Any, precision: Any,
    preferred_element_type: Any, use_consistent_padding: Any, op: str,
) -> TransposeSpec:
    transpose_kernel = _flag(transpose_kernel, op, "transpose_kernel")
    consistent = _flag(use_consistent_padding, op, "use_consistent_padding")
    if dimension_numbers is None and len(lhs_shape) >= 2:
        dimension_numbers = default_transpose_dimension_numbers(len(lhs_shape))
    dn = conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers, op)
    n = len(lhs_shape) - 2
    strides = parse_int_tuple(strides, n, op, "strides")
    rhs_dil = parse_int_tuple(rhs_dilation, n, op, "rhs_dilation", default=1)

    _check_kernel(lhs_shape, rhs_shape, dn, transpose_kernel, op)
    kernel = list(rhs_shape)
    if transpose_kernel:  # the kernel's I and O axes trade places
        o, i = dn.rhs_spec[0], dn.rhs_spec[1]
        kernel[o], kernel[i] = kernel[i], kernel[o]
    window = [dilate_dim(rhs_shape[a], d) for a, d in zip(dn.rhs_spec[2:], rhs_dil)]

    pads: Any
    if isinstance(padding, str) and padding in ("SAME", "VALID"):
        pads = tuple(_transpose_pads(k, s, padding) for k, s in zip(window, strides))
    elif consistent:
        if isinstance(padding, str):
            raise ConvArgumentError(
                op, "padding", f"must be 'SAME', 'VALID' or {n} (low, high) "
                f"pair{'' if n == 1 else 's'} when use_consistent_padding is True", padding,
            )
        forward = _explicit_pairs(padding, n, op)
        pads = tuple(_transpose_pads(k, s, p) for k, s, p in zip(window, strides, forward))
        for axis, ((lo, hi), a, s) in enumerate(zip(pads, dn.lhs_spec[2:], strides)):
            size = dilate_dim(lhs_shape[a], s)
            if size + lo + hi < 0:
                raise ConvShapeError(
                    op, "padding", f"crops more than spatial axis {axis} holds (size {size} after lhs "
                    "dilation): as the forward convolution's padding (use_consistent_padding=True) it is "
                    f"the transposed padding {pads}", padding,
                )
    elif isinstance(padding, str) and any(s != 1 for s in strides):
        raise ConvArgumentError(
            op, "padding", f"must be 'SAME', 'VALID' or {n} (low, high) pair{'' if n == 1 else 's'} "
            f"when strides are not 1 (strides={strides})", padding,
        )
    else:
        pads = padding  # the transposed convolution's own padding
    conv = conv_spec(
        lhs_shape, tuple(kernel), lhs_dtype, rhs_dtype, (1,) * n, pads, strides, rhs_dil, dn,
        precision=precision, preferred_element_type=preferred_element_type, op=op,
    )
    return TransposeSpec(conv=conv, rhs_shape=rhs_shape, transpose_kernel=transpose_kernel)


def _check_kernel(
    lhs_shape: tuple[int, ...], rhs_shape: tuple[int, ...], dn: Any, transpose_kernel: bool, op: str
) -> None:
    """Kernel checks in the caller's terms (the forward spec sees the swapped kernel)."""
    if any(rhs_shape[a] == 0 for a in dn.rhs_spec[2:]):
        raise ConvShapeError(
            op, "rhs", "must have spatial sizes >= 1: an empty window is not a convolution (XLA rejects it)",
            got=f"shape {rhs_shape}",
        )
    features = lhs_shape[dn.lhs_spec[1]]
    axis, which = (dn.rhs_spec[0], "output") if transpose_kernel else (dn.rhs_spec[1], "input")
    if rhs_shape[axis] != features:
        when = " when transpose_kernel is True" if transpose_kernel else ""
        raise ConvShapeError(
            op, "rhs", f"{which} feature size must equal the lhs feature size ({features}){when}",
            got=f"{rhs_shape[axis]} (rhs shape {rhs_shape})",
        )


def conv_transpose_shape(
    lhs_shape: Any,
    rhs_shape: Any,
    strides: Any,
    padding: Any,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    transpose_kernel: bool = False,
    use_consistent_padding: bool = False,
) -> tuple[int, ...]:
    """Output shape of ``conv_transpose`` without computing anything.

    Examples
    --------
    >>> conv_transpose_shape((1, 8, 8, 16), (3, 3, 16, 4), (2, 2), 'SAME')
    (1, 16, 16, 4)
    >>> conv_transpose_shape((1, 8, 8, 16), (3, 3, 16, 4), (2, 2), 'VALID')
    (1, 17, 17, 4)
    """
    return conv_transpose_spec(
        lhs_shape, rhs_shape, "float32", "float32", strides, padding, rhs_dilation, dimension_numbers,
        transpose_kernel, None, None, use_consistent_padding, op="conv_transpose_shape",
    ).out_shape

