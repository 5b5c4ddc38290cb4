"""What every layer does around its convolution: ``init`` and ``apply``.

``init(rng, x)``: the plan for ``x``'s shape, one key per parameter
(:mod:`.rng`), the initialisers' arrays put into ``x``'s framework and device
(:mod:`.arrays`).

``apply(params, x)``: the plan; the parameters checked (names, shapes, one
framework and device with ``x``); batch dimensions flattened into one (or
one added); ``'CIRCULAR'``/``'REFLECT'`` padding; the mask; dtype
promotion; the convolution (the subclass's ``_run``); the bias; batch
dimensions restored.  Every array operation goes through the inputs' own
namespace (``array_api_compat``), so it runs, differentiates and traces on
the inputs' framework.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import array_api_compat
import numpy as np

from ..backend import is_neutral
from ..dispatch import resolve
from ..errors import ConvArgumentError, ConvShapeError, ConvTypeError
from ..spec import dtype_name
from .arrays import owner, place
from .config import Config
from .padding import fold_periodic, pad_periodic
from .plan import LayerPlan, make_plan
from .promotion import astype, promote_types
from .rng import param_keys

__all__ = ["LayerMixin"]

_PLANS_SIZE = 256


class LayerMixin:
    """``init``, ``apply``, ``param_shapes`` and ``output_shape`` of a layer
    whose fields are checked into ``self._config``; the subclass provides
    ``_run(plan, inputs, kernel)``."""

    _config: Config
    _plans: dict[tuple[int, ...], LayerPlan]
    kernel_init: Any
    bias_init: Any
    param_dtype: Any
    dtype: Any
    mask: Any
    promote_dtype: Any
    transpose_kernel: bool = False

    def __repr__(self) -> str:
        """The class and the fields that differ from their defaults."""
        parts = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and _same(value, f.default):
                continue
            parts.append(f"{f.name}={_short(value)}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _setup(self, config: Config) -> None:
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_plans", {})

    def _plan(self, in_shape: tuple[int, ...]) -> LayerPlan:
        plan = self._plans.get(in_shape)
        if plan is None:
            plan = make_plan(self._config, in_shape)
            if len(self._plans) >= _PLANS_SIZE:
                self._plans.clear()
            self._plans[in_shape] = plan
        return plan

    # -- shapes, without arrays ---------------------------------------------------------

    def param_shapes(self, input_shape: Any) -> dict[str, tuple[int, ...]]:
        """The parameters' shapes for inputs of ``input_shape``, by name.

        Examples
        --------
        >>> from polyconv.layers import ConvLocal
        >>> ConvLocal(4, (3,), padding='VALID').param_shapes((1, 8, 3))
        {'kernel': (6, 9, 4), 'bias': (6, 4)}
        """
        plan = self._plan(_shape(input_shape, self._config.op))
        shapes = {"kernel": plan.kernel_shape}
        if plan.bias_shape is not None:
            shapes["bias"] = plan.bias_shape
        return shapes

    def output_shape(self, input_shape: Any) -> tuple[int, ...]:
        """The output's shape for inputs of ``input_shape``.

        Examples
        --------
        >>> from polyconv.layers import Conv
        >>> Conv(16, (3, 3), strides=2).output_shape((4, 7, 32, 32, 3))
        (4, 7, 16, 16, 16)
        """
        return self._plan(_shape(input_shape, self._config.op)).out_shape

    # -- parameters --------------------------------------------------------------------

    def init(self, rng: Any, x: Any) -> dict[str, Any]:
        """New parameters for inputs like ``x``, as arrays of ``x``'s framework on ``x``'s device.

        Parameters
        ----------
        rng
            An int seed, a ``numpy.random.Generator`` or ``SeedSequence``, a
            JAX PRNG key (typed or raw), or a ``torch.Generator``.  Each
            parameter's initialiser gets a key of its own: with a JAX key,
            the JAX key Flax gives it; otherwise a ``numpy.random.Generator``
            (see :mod:`polyconv.layers.rng`).
        x
            An input (only its shape, framework and device are used).

        Returns
        -------
        dict
            ``{'kernel': ..., 'bias': ...}`` (no ``'bias'`` when
            ``use_bias=False``), named and shaped as Flax's ``params``.
        """
        op = self._config.op
        x = _as_array(x)
        owner(x, op, "inputs")
        plan = self._plan(tuple(x.shape))
        kernel_key, bias_key = param_keys(rng, 2, op)
        params = {"kernel": self._make("kernel_init", kernel_key, plan.kernel_shape, x)}
        if plan.bias_shape is not None:
            params["bias"] = self._make("bias_init", bias_key, plan.bias_shape, x)
        return params

    def _make(self, field: str, key: Any, shape: tuple[int, ...], x: Any) -> Any:
        op = self._config.op
        value = getattr(self, field)(key, shape, self.param_dtype)
        got = tuple(getattr(value, "shape", np.shape(value)))
        if got != shape:
            raise ConvShapeError(op, field, f"must return an array of the requested shape {shape}", got=f"shape {got}")
        return place(value, x, op, field)

    # -- the computation ---------------------------------------------------------------

    def apply(self, params: Mapping[str, Any], x: Any) -> Any:
        """The layer on inputs ``x`` with parameters ``params``.

        Parameters
        ----------
        params
            ``{'kernel': ..., 'bias': ...}`` as :meth:`init` makes them (or
            Flax's variables ``{'params': {...}}``), arrays of ``x``'s
            framework on ``x``'s device.
        x
            Channels-last inputs ``(*batch, *spatial, features)``: any number
            of leading batch dimensions (flattened for the convolution and
            restored), or none.

        Returns
        -------
        array
            Of ``x``'s framework, on its device.
        """
        cfg = self._config
        op = cfg.op
        x = _as_array(x)
        plan = self._plan(tuple(x.shape))
        params = _unwrap(params, op)
        kernel = _param(params, "kernel", plan.kernel_shape, plan, op)
        bias = None if plan.bias_shape is None else _param(params, "bias", plan.bias_shape, plan, op)
        arrays, names = [x, kernel], ["inputs", "params['kernel']"]
        if bias is not None:
            arrays.append(bias)
            names.append("params['bias']")
        resolve(arrays, op=op, params=names)  # one framework, one device: else a MixedArraysError naming both

        xp = array_api_compat.array_namespace(x)
        h = x if plan.flat_shape == plan.in_shape else xp.reshape(x, plan.flat_shape)
        if plan.wrap is not None and plan.wrap_mode is not None:
            h = pad_periodic(h, plan.wrap, plan.wrap_mode)
        if self.mask is not None:
            kernel = _times(kernel, place(self.mask, x, op, "mask"))
        h, kernel, bias = self.promote_dtype(h, kernel, bias, dtype=self.dtype)
        y = self._run(plan, h, kernel)
        if plan.periods is not None:
            y = fold_periodic(y, plan.periods, self.transpose_kernel)
        if bias is not None:
            y = _add(y, xp.reshape(bias, (1,) * (y.ndim - bias.ndim) + tuple(bias.shape)))
        return y if tuple(y.shape) == plan.out_shape else xp.reshape(y, plan.out_shape)

    def _run(self, plan: LayerPlan, inputs: Any, kernel: Any) -> Any:
        raise NotImplementedError


def _same(value: Any, default: Any) -> bool:
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # arrays
        return False


def _short(value: Any) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"<{type(value).__name__} of shape {tuple(value.shape)}>"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"<{getattr(value, '__module__', '?')}.{value.__qualname__}>"
    return repr(value)


def _shape(value: Any, op: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in value)
    except TypeError:
        raise ConvTypeError(op, "input_shape", "must be a sequence of integers", value) from None


def _as_array(x: Any) -> Any:
    return np.asarray(x) if is_neutral(x) else x


def _unwrap(params: Any, op: str) -> Mapping[str, Any]:
    if not isinstance(params, Mapping):
        raise ConvTypeError(op, "params", "must be a mapping {'kernel': ..., 'bias': ...}", got=type(params).__name__)
    if "kernel" not in params and set(params) == {"params"} and isinstance(params["params"], Mapping):
        inner: Mapping[str, Any] = params["params"]  # Flax's variables
        return inner
    return params


def _param(params: Mapping[str, Any], name: str, shape: tuple[int, ...], plan: LayerPlan, op: str) -> Any:
    if name not in params:
        raise ConvArgumentError(
            op, "params", f"must have a {name!r} entry", got=f"the keys {sorted(map(str, params))}"
        )
    value = _as_array(params[name])
    got = tuple(getattr(value, "shape", ()))
    if got != shape:
        raise ConvShapeError(
            op, f"params[{name!r}]", f"must have the shape {shape} for inputs of shape {plan.in_shape}",
            got=f"shape {got}",
        )
    return value


def _common(a: Any, b: Any) -> tuple[Any, Any]:
    """``a`` and ``b`` cast to the dtype JAX promotes them to."""
    target = promote_types(dtype_name(a.dtype), dtype_name(b.dtype))
    return astype(a, target), astype(b, target)


def _times(kernel: Any, mask: Any) -> Any:
    kernel, mask = _common(kernel, mask)
    return kernel * mask


def _add(y: Any, bias: Any) -> Any:
    y, bias = _common(y, bias)
    return y + bias
