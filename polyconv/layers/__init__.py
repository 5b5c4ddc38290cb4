"""Flax's convolution layers on every backend: ``Conv``, ``ConvLocal``, ``ConvTranspose``.

The layers have ``flax.linen``'s fields, defaults and semantics (padding
modes, masks, groups, dilations, dtype promotion, parameter names and
shapes) and work on NumPy, PyTorch, JAX and array-API inputs alike:

* ``layer.init(rng, x)`` makes the parameters, a plain dict
  ``{'kernel': ..., 'bias': ...}`` named and shaped as Flax's ``params``, as
  arrays of ``x``'s framework on ``x``'s device;
* ``layer.apply(params, x)`` runs the layer;
* ``layer.param_shapes(shape)`` and ``layer.output_shape(shape)`` plan
  without arrays;
* :func:`torch_module` wraps a layer as a ``torch.nn.Module``.

Examples
--------
>>> import numpy as np
>>> from polyconv.layers import Conv
>>> layer = Conv(features=8, kernel_size=(3, 3), padding='CIRCULAR')
>>> x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype(np.float32)
>>> params = layer.init(0, x)
>>> params['kernel'].shape, params['bias'].shape
((3, 3, 3, 8), (8,))
>>> y = layer.apply(params, x)
>>> y.shape, y.dtype
((2, 16, 16, 8), dtype('float32'))
"""

from __future__ import annotations

from typing import Any

from . import initializers
from .conv_layers import Conv, ConvLocal
from .padding import canonicalize_padding
from .promotion import promote_dtype
from .transpose import ConvTranspose

__all__ = [
    "Conv",
    "ConvLocal",
    "ConvTranspose",
    "canonicalize_padding",
    "initializers",
    "promote_dtype",
    "torch_module",
]


def torch_module(
    layer: Conv | ConvLocal | ConvTranspose,
    in_features: int | None = None,
    *,
    input_shape: Any = None,
    rng: Any = None,
    device: Any = None,
) -> Any:
    """``layer`` as a ``torch.nn.Module`` whose parameters are ``nn.Parameter``\\ s.

    ``kernel`` and ``bias`` (Flax's names, so ``state_dict()`` keys match
    Flax's ``params``) are registered parameters: optimisers,
    ``state_dict``/``load_state_dict`` and ``.to(device)`` work as for any
    module.  Without ``in_features`` or ``input_shape`` the module is lazy,
    like ``torch.nn.LazyConv2d``: its parameters are made from the first
    input's shape, on its device.

    Parameters
    ----------
    layer
        The polyconv layer.
    in_features
        The inputs' number of features: make the parameters now
        (``Conv``, ``ConvTranspose``).
    input_shape
        A whole input shape: make the parameters now (any layer;
        ``ConvLocal`` needs the spatial shape).
    rng
        Any rng :meth:`Conv.init` takes; None draws from torch's global
        generator, so ``torch.manual_seed`` makes it reproducible.
    device
        Where the parameters go (torch's default device when None).

    Returns
    -------
    polyconv.backends.torch.module.PolyconvModule

    Raises
    ------
    polyconv.errors.BackendUnavailableError
        When PyTorch is not installed.
    """
    try:
        from polyconv.backends.torch.module import PolyconvModule
    except ImportError as exc:
        from ..errors import BackendUnavailableError

        raise BackendUnavailableError(f"torch_module needs PyTorch ({exc}): pip install 'polyconv[torch]'") from None
    return PolyconvModule(layer, in_features, input_shape=input_shape, rng=rng, device=device)
