"""The side-by-side calls: one shape through polyconv and through a framework's own convolution.

:func:`pairs` gives, for one backend and shape, the ``(native name,
polyconv call, native call)`` triples that the runner times against each
other, on the same operands.  Frameworks are imported only here, and only
when a pair needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .shapes import Shape

__all__ = ["pairs", "lax_style_call", "importable"]


def lax_style_call(ops: Any, shape: Shape, lhs: Any, rhs: Any) -> Callable[[], Any]:
    """The shape's convolution through ``ops``: polyconv or ``jax.lax``, which take the same arguments."""
    n = shape.nspatial
    spatial = "DHW"[3 - n:]
    # the transposed convolution's weight is the forward convolution's: O = the input's channels
    dn = ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    if shape.transpose:
        # PyTorch's transposed convolution with padding p is the convolution of the input
        # dilated by the stride, padded by d*(k-1) - p on each side, with the flipped kernel
        pads = tuple((shape.dilation * (k - 1) - shape.padding,
                      shape.dilation * (k - 1) - shape.padding + shape.output_padding) for k in shape.rhs[2:])
        return lambda: ops.conv_transpose(lhs, rhs, (shape.stride,) * n, pads, rhs_dilation=(shape.dilation,) * n,
                                          dimension_numbers=dn, transpose_kernel=True)
    return lambda: ops.conv_general_dilated(
        lhs, rhs, (shape.stride,) * n, ((shape.padding, shape.padding),) * n, rhs_dilation=(shape.dilation,) * n,
        dimension_numbers=dn, feature_group_count=shape.groups)


def _polyconv_call(shape: Shape, lhs: Any, rhs: Any) -> Callable[[], Any]:
    import polyconv

    return lax_style_call(polyconv, shape, lhs, rhs)


def _torch_call(shape: Shape, x: Any, w: Any) -> Callable[[], Any]:
    import torch.nn.functional as F

    n = shape.nspatial
    if shape.transpose:
        f = getattr(F, f"conv_transpose{n}d")
        return lambda: f(x, w, stride=shape.stride, padding=shape.padding, output_padding=shape.output_padding,
                         groups=shape.groups, dilation=shape.dilation)
    f = getattr(F, f"conv{n}d")
    return lambda: f(x, w, stride=shape.stride, padding=shape.padding, dilation=shape.dilation, groups=shape.groups)


def _jitted(ops: Any, shape: Shape, x: Any, w: Any) -> Callable[[], Any]:
    """:func:`lax_style_call` of ``ops`` under ``jax.jit``, waiting for the result."""
    import jax

    f = jax.jit(lambda a, b: lax_style_call(ops, shape, a, b)())
    return lambda: f(x, w).block_until_ready()


def pairs(backend: str, shape: Shape, rng: Any) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """``(native name, polyconv call, native call)`` for one backend and shape."""
    import numpy as np

    x = rng.standard_normal(shape.lhs, dtype=np.float32)
    w = rng.standard_normal(shape.rhs, dtype=np.float32)
    if backend == "torch":
        import torch

        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        return [("torch.nn.functional", _polyconv_call(shape, tx, tw), _torch_call(shape, tx, tw))]
    if backend == "jax":
        import jax.numpy as jnp

        jx, jw = jnp.asarray(x), jnp.asarray(w)
        import jax

        import polyconv

        return [("jax.lax (jit)", _jitted(polyconv, shape, jx, jw), _jitted(jax.lax, shape, jx, jw))]
    if backend == "numpy":
        out = []
        mine = _polyconv_call(shape, x, w)
        if importable("torch"):
            import torch

            out.append(("torch CPU", mine, _torch_call(shape, torch.from_numpy(x), torch.from_numpy(w))))
        if importable("jax"):
            import jax
            import jax.numpy as jnp

            out.append(("jax.lax CPU (jit)", mine, _jitted(jax.lax, shape, jnp.asarray(x), jnp.asarray(w))))
        return out
    if backend == "cupy":  # against PyTorch's CUDA convolution (cuDNN) on the same GPU memory
        import cupy
        import torch
        from torch.utils.dlpack import from_dlpack  # torch.from_dlpack itself, which torch's stubs do not export

        if not torch.cuda.is_available():
            return []
        cx, cw = cupy.asarray(x), cupy.asarray(w)
        sync = cupy.cuda.Device().synchronize
        return [("torch CUDA", _synced(_polyconv_call(shape, cx, cw), sync),
                 _synced(_torch_call(shape, from_dlpack(cx), from_dlpack(cw)), sync))]
    raise ValueError(f"no benchmark for backend {backend!r}")


def _synced(call: Callable[[], Any], sync: Callable[[], Any]) -> Callable[[], Any]:
    """``call`` that waits for the device to finish before returning (GPU timings)."""
    def synced() -> Any:
        out = call()
        sync()
        return out

    return synced


def importable(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(module) is not None
