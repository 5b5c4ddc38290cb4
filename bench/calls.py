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

__all__ = ["pairs", "side_call", "SIDES", "FRAMEWORK", "lax_style_call", "lax_style_args", "channels_last_operands",
           "synced", "strategy", "importable"]


def lax_style_args(shape: Shape, channels_last: bool = False) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """The shape's convolution as ``(op name, positional arguments after the operands,
    keyword arguments)`` of polyconv's (and ``jax.lax``'s) ops: on operands in the
    suite's layout (PyTorch's: ``NC<spatial>``, ``OI<spatial>``), or, with
    ``channels_last``, on the same operands with their axis 1 moved last
    (:func:`channels_last_operands`: ``N<spatial>C``, ``O<spatial>I``)."""
    n = shape.nspatial
    spatial = "DHW"[3 - n:]
    # the transposed convolution's weight is the forward convolution's: O = the input's channels
    if channels_last:
        dn = ("N" + spatial + "C", "O" + spatial + "I", "N" + spatial + "C")
    else:
        dn = ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    if shape.transpose:
        # PyTorch's transposed convolution with padding p is the convolution of the input
        # dilated by the stride, padded by d*(k-1) - p on each side, with the flipped kernel
        return "conv_transpose", ((shape.stride,) * n, _transpose_pads(shape)), {
            "rhs_dilation": (shape.dilation,) * n, "dimension_numbers": dn, "transpose_kernel": True}
    return "conv_general_dilated", ((shape.stride,) * n, ((shape.padding, shape.padding),) * n), {
        "rhs_dilation": (shape.dilation,) * n, "dimension_numbers": dn, "feature_group_count": shape.groups}


def _transpose_pads(shape: Shape) -> tuple[tuple[int, int], ...]:
    """The transposed shape's padding of its stride-dilated input (``jax.lax.conv_transpose``'s pairs)."""
    return tuple((shape.dilation * (k - 1) - shape.padding,
                  shape.dilation * (k - 1) - shape.padding + shape.output_padding) for k in shape.rhs[2:])


def channels_last_operands(x: Any, w: Any) -> tuple[Any, Any]:
    """NumPy operands in the suite's layout with axis 1 moved last (contiguous):
    ``N<spatial>C`` and ``O<spatial>I``, the layout of :func:`lax_style_args`'s
    ``channels_last``, MLX's own."""
    import numpy as np

    return (np.ascontiguousarray(np.moveaxis(x, 1, -1)), np.ascontiguousarray(np.moveaxis(w, 1, -1)))


def lax_style_call(ops: Any, shape: Shape, lhs: Any, rhs: Any, channels_last: bool = False) -> Callable[[], Any]:
    """The shape's convolution through ``ops``: polyconv or ``jax.lax``, which take the same arguments
    (``channels_last``: see :func:`lax_style_args`)."""
    name, args, kwargs = lax_style_args(shape, channels_last)
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
        elif "mlx" in side:
            import mlx.core as mx

            x, w = (mx.array(a) for a in channels_last_operands(x, w))
        name, args, kwargs = lax_style_args(shape, channels_last="mlx" in side)
        return polyconv.explain(name, x, w, *args, **kwargs).strategy
    return None if "CUDA" in side else "direct"


def _polyconv_call(shape: Shape, lhs: Any, rhs: Any, channels_last: bool = False) -> Callable[[], Any]:
    import polyconv

    return lax_style_call(polyconv, shape, lhs, rhs, channels_last)


def _mlx_calls(shape: Shape, x: Any, w: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Polyconv's call and ``mlx.core.conv_general``'s, both channels-last (MLX's
    layout: no permutation on either side) and evaluated (``mx.eval``: MLX is lazy)."""
    import mlx.core as mx

    cx, cw = channels_last_operands(x, w)
    mx_x = mx.array(cx)
    mine = _polyconv_call(shape, mx_x, mx.array(cw), channels_last=True)
    n, g = shape.nspatial, shape.groups
    args: tuple[Any, ...]
    if shape.transpose:  # cw is (C_in, *k, C_out / g); conv_general's weight is (C_out, *k, C_in / g)
        k = cw.shape[1:-1]
        grouped = cw.reshape(g, cw.shape[0] // g, *k, cw.shape[-1])
        mx_w = mx.array(grouped.transpose(0, n + 2, *range(2, n + 2), 1).reshape(-1, *k, cw.shape[0] // g).copy())
        pads = _transpose_pads(shape)
        # stride 1 over the input dilated by the stride, flipped kernel
        args = (1, ([p[0] for p in pads], [p[1] for p in pads]), shape.dilation, shape.stride, g, True)
    else:
        mx_w = mx.array(cw)
        side = [shape.padding] * n
        args = (shape.stride, (side, side), shape.dilation, 1, g, False)
    conv_general = mx.conv_general
    return synced(mine, mx.eval), synced(lambda: conv_general(mx_x, mx_w, *args), mx.eval)


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
    "mlx": ("polyconv mlx", ("mlx.core.conv_general",)),
}

#: The framework whose matrix-product rate goes with each side (:func:`.timing.matmul_rate`).
FRAMEWORK = {
    "polyconv numpy": "numpy", "torch CPU": "torch", "jax.lax CPU (jit)": "jax",
    "polyconv torch": "torch", "torch.nn.functional": "torch",
    "polyconv jax (jit)": "jax", "jax.lax (jit)": "jax",
    "polyconv cupy": "cupy", "torch CUDA": "torch CUDA",
    "polyconv mlx": "mlx", "mlx.core.conv_general": "mlx",
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
        device = cupy.cuda.Device()
        sync = lambda _: device.synchronize()  # noqa: E731
        if side == "polyconv cupy":
            return synced(_polyconv_call(shape, cx, cw), sync)
        import torch
        from torch.utils.dlpack import from_dlpack  # torch.from_dlpack itself, which torch's stubs do not export

        if not torch.cuda.is_available():
            return None
        return synced(_torch_call(shape, from_dlpack(cx), from_dlpack(cw)), sync)
    if side in ("polyconv mlx", "mlx.core.conv_general"):  # channels-last on both sides: MLX's layout
        mine, native = _mlx_calls(shape, x, w)
        return mine if side == "polyconv mlx" else native
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


def synced(call: Callable[[], Any], wait: Callable[[Any], Any]) -> Callable[[], Any]:
    """``call`` that returns only once its result is computed: ``wait(result)``
    (a GPU's synchronization, MLX's ``mx.eval``)."""
    def synced() -> Any:
        out = call()
        wait(out)
        return out

    return synced


def importable(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(module) is not None
