"""A polyconv layer as a ``torch.nn.Module``: :class:`PolyconvModule`.

Made by :func:`polyconv.layers.torch_module`.  This module imports torch;
nothing imports it until that function is called.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from polyconv.errors import ConvArgumentError, ConvTypeError
from polyconv.layers import Conv, ConvLocal, ConvTranspose
from polyconv.spec import dtype_name

__all__ = ["PolyconvModule"]

_LAYERS = (Conv, ConvLocal, ConvTranspose)


class PolyconvModule(LazyModuleMixin, nn.Module):
    """A polyconv layer (``Conv``, ``ConvLocal``, ``ConvTranspose``) as a ``torch.nn.Module``.

    The parameters ``kernel`` and ``bias`` (None without a bias, as torch's
    own convolutions register it) are ``nn.Parameter``\\ s laid out as Flax
    lays them out (channels-last kernel ``(*kernel_size, in, out)``), so a
    ``state_dict()`` maps one to one onto Flax's ``params``.  ``forward(x)``
    is ``layer.apply({'kernel': ..., 'bias': ...}, x)`` on channels-last
    inputs; autograd flows through polyconv's torch backend.

    Made without ``in_features`` or ``input_shape``, the module is lazy (as
    ``torch.nn.LazyConv2d``): ``kernel`` and ``bias`` are
    ``UninitializedParameter``\\ s until the first forward call, which makes
    them from the input's shape with the layer's initialisers; ``.to()``
    before that call is honoured.

    Examples
    --------
    >>> import torch
    >>> from polyconv.layers import Conv, torch_module
    >>> m = torch_module(Conv(8, (3, 3)), in_features=3, rng=0)
    >>> [(name, tuple(p.shape)) for name, p in m.named_parameters()]
    [('kernel', (3, 3, 3, 8)), ('bias', (8,))]
    >>> m(torch.ones(2, 16, 16, 3)).shape
    torch.Size([2, 16, 16, 8])
    >>> lazy = torch_module(Conv(8, (3, 3)))
    >>> lazy(torch.ones(16, 16, 5)).shape, tuple(lazy.kernel.shape)
    (torch.Size([16, 16, 8]), (3, 3, 5, 8))
    """

    cls_to_become = None

    def __init__(
        self,
        layer: Any,
        in_features: int | None = None,
        *,
        input_shape: Any = None,
        rng: Any = None,
        device: Any = None,
    ) -> None:
        super().__init__()
        op = "torch_module"
        if not isinstance(layer, _LAYERS):
            raise ConvTypeError(op, "layer", "must be a polyconv.layers Conv, ConvLocal or ConvTranspose",
                                got=type(layer).__name__)
        self.layer = layer
        self._rng = rng
        n = layer._config.nspatial
        if input_shape is None and in_features is not None:
            if isinstance(layer, ConvLocal):
                raise ConvArgumentError(
                    op, "input_shape", "must be given for a ConvLocal (its kernel depends on the spatial shape); "
                    "in_features alone is not enough", got="None",
                )
            input_shape = (1,) * (n + 1) + (in_features,)
        dtype = getattr(torch, dtype_name(layer.param_dtype))
        self._input_shape: tuple[int, ...] | None = None
        if input_shape is None:
            # torch's stub gives UninitializedParameter the signature of Parameter (data, requires_grad);
            # at run time its __new__ takes (requires_grad, device, dtype)
            self.kernel: nn.Parameter | UninitializedParameter = UninitializedParameter(  # type: ignore[call-arg]
                device=device, dtype=dtype)
            if layer.use_bias:
                self.bias: nn.Parameter | UninitializedParameter | None = UninitializedParameter(  # type: ignore[call-arg]
                    device=device, dtype=dtype)
            else:
                self.register_parameter("bias", None)
        else:
            sample = torch.empty(tuple(input_shape), device=device)
            params = layer.init(self._generator(), sample)
            self._input_shape = tuple(sample.shape)
            self.kernel = nn.Parameter(params["kernel"])
            if "bias" in params:
                self.bias = nn.Parameter(params["bias"])
            else:
                self.register_parameter("bias", None)

    def _generator(self) -> Any:
        return torch.default_generator if self._rng is None else self._rng

    def initialize_parameters(self, x: torch.Tensor) -> None:
        """Make the lazy parameters from the first input (called by torch before the first forward)."""
        if not self.has_uninitialized_params():
            return
        with torch.no_grad():
            params = self.layer.init(self._generator(), x)
            for name, value in params.items():
                param = getattr(self, name)
                param.materialize(tuple(value.shape))
                param.copy_(value)
        self._input_shape = tuple(x.shape)

    def reset_parameters(self) -> None:
        """Draw new parameters with the layer's initialisers (from torch's
        global generator when the module was made without ``rng``)."""
        if self._input_shape is None or self.has_uninitialized_params():
            return
        sample = torch.empty(self._input_shape, device=self.kernel.device)
        with torch.no_grad():
            for name, value in self.layer.init(self._generator(), sample).items():
                getattr(self, name).copy_(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = {"kernel": self.kernel}
        if self.bias is not None:
            params["bias"] = self.bias
        return self.layer.apply(params, x)  # type: ignore[no-any-return]

    def extra_repr(self) -> str:
        return repr(self.layer)
