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

__all__ = ["pairs", "side_call", "SIDES", "FRAMEWORK", "lax_style_call", "lax_style_args", "strategy", "importable"]


def lax_style_args(shape: Shape) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """The shape's convolution as ``(op name, positional arguments after the operands,
    keyword arguments)`` of polyconv's (and ``jax.lax``'s) ops."""
    n = shape.nspatial
    spatial = "DHW"[3 - n:]
    # the transposed convolution's weight is the forward convolution's: O = the input's channels
    dn = ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    if shape.transpose:
        # PyTorch's transposed convolution with padding p is the convolution of the input
        # dilated by the stride, padded by d*(k-1) - p on each side, with the flipped kernel
        pads = tuple((shape.dilation * (k - 1) - shape.padding,
                      shape.dilation * (k - 1) - shape.padding + shape.output_padding) for k in shape.rhs[2:])
        return "conv_transpose", ((shape.stride,) * n, pads), {
            "rhs_dilation": (shape.dilation,) * n, "dimension_numbers": dn, "transpose_kernel": True}
    return "conv_general_dilated", ((shape.stride,) * n, ((shape.padding, shape.padding),) * n), {
        "rhs_dilation": (shape.dilation,) * n, "dimension_numbers": dn, "feature_group_count": shape.groups}


def lax_style_call(ops: Any, shape: Shape, lhs: Any, rhs: Any) -> Callable[[], Any]:
    """The shape's convolution through ``ops``: polyconv or ``jax.lax``, which take the same arguments."""
    name, args, kwargs = lax_style_args(shape)
    op = getattr(ops, name)
    return lambda: op(lhs, rhs, *args, **kwargs)


def strategy(side: str, shape: Shape, x: Any, w: Any) -> str | None:
    """How ``side`` computes ``shape``: polyconv's strategy (``polyconv.explain``) on
    its sides, ``'direct'`` for a framework's own CPU convolution, None where it is
    not known (a GPU library may pick FFT or Winograd).  A direct computation
    cannot run above the machine's peak; FFT can, in effective GFLOP/s."""
    if side.startswith("polyconv"):
        import polyconv

        if "torch" in side:
            import torch

            x, w = torch.from_numpy(x), torch.from_numpy(w)
        elif "jax" in side:
            import jax.numpy as jnp

            x, w = jnp.asarray(x), jnp.asarray(w)
        elif "cupy" in side:
            import cupy

            x, w = cupy.asarray(x), cupy.asarray(w)
        name, args, kwargs = lax_style_args(shape)
        return polyconv.explain(name, x, w, *args, **kwargs).strategy
    return None if "CUDA" in side else "direct"


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


#: For each backend: polyconv's side, and the framework's own sides it is compared with.
SIDES: dict[str, tuple[str, tuple[str, ...]]] = {
    "numpy": ("polyconv numpy", ("torch CPU", "jax.lax CPU (jit)")),
    "torch": ("polyconv torch", ("torch.nn.functional",)),
    "jax": ("polyconv jax (jit)", ("jax.lax (jit)",)),
    "cupy": ("polyconv cupy", ("torch CUDA",)),
}

#: The framework whose matrix-product rate goes with each side (:func:`.timing.matmul_rate`).
FRAMEWORK = {
    "polyconv numpy": "numpy", "torch CPU": "torch", "jax.lax CPU (jit)": "jax",
    "polyconv torch": "torch", "torch.nn.functional": "torch",
    "polyconv jax (jit)": "jax", "jax.lax (jit)": "jax",
    "polyconv cupy": "cupy", "torch CUDA": "torch CUDA",
}


def side_call(backend: str, side: str, shape: Shape, x: Any, w: Any) -> Callable[[], Any] | None:
    """One side of ``backend``'s comparison (a name of :data:`SIDES`) as a call of
    no arguments on copies of the NumPy operands ``x`` and ``w``, in the side's
    framework; None where it cannot run here (no CUDA for ``'torch CUDA'``).
    Only the side's own framework is imported."""
    if side == "polyconv numpy":
        return _polyconv_call(shape, x, w)
    if side in ("polyconv torch", "torch.nn.functional", "torch CPU"):
        import torch

        tx, tw = torch.from_numpy(x.copy()), torch.from_numpy(w.copy())
        return _polyconv_call(shape, tx, tw) if side == "polyconv torch" else _torch_call(shape, tx, tw)
    if side in ("polyconv jax (jit)", "jax.lax (jit)", "jax.lax CPU (jit)"):
        import jax
        import jax.numpy as jnp

        jx, jw = jnp.asarray(x), jnp.asarray(w)
        if side == "polyconv jax (jit)":
            import polyconv

            return _jitted(polyconv, shape, jx, jw)
        return _jitted(jax.lax, shape, jx, jw)
    if side in ("polyconv cupy", "torch CUDA"):  # the same GPU memory, waited for
        import cupy

        cx, cw = cupy.asarray(x), cupy.asarray(w)
        sync = cupy.cuda.Device().synchronize
        if side == "polyconv cupy":
            return _synced(_polyconv_call(shape, cx, cw), sync)
        import torch
        from torch.utils.dlpack import from_dlpack  # torch.from_dlpack itself, which torch's stubs do not export

        if not torch.cuda.is_available():
            return None
        return _synced(_torch_call(shape, from_dlpack(cx), from_dlpack(cw)), sync)
    raise ValueError(f"no benchmark side {side!r} (sides: {sorted(FRAMEWORK)})")


def pairs(backend: str, shape: Shape, rng: Any) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """``(native name, polyconv call, native call)`` for one backend and shape, in
    one process (the tests check that both sides compute the same convolution;
    the bench times each side in a process of its own: :mod:`.isolated`)."""
    import numpy as np

    if backend not in SIDES:
        raise ValueError(f"no benchmark for backend {backend!r}")
    x = rng.standard_normal(shape.lhs, dtype=np.float32)
    w = rng.standard_normal(shape.rhs, dtype=np.float32)
    mine_side, natives = SIDES[backend]
    mine = side_call(backend, mine_side, shape, x, w)
    out = []
    for native_side in natives:
        if not importable(FRAMEWORK[native_side].split()[0]):
            continue
        native = side_call(backend, native_side, shape, x, w)
        if mine is not None and native is not None:
            out.append((native_side, mine, native))
    return out


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
