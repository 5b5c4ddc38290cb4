"""The MLX backend: ``mlx.core.array`` convolutions through ``mlx.core.conv_general``.

Registered as ``mlx`` in the entry-point group ``polyconv.backends``.
Importing this module does not import MLX; MLX is imported the first time a
method needs it (:func:`._modules.mlx_core`), and :meth:`MlxBackend.owns`
only looks ``mlx.core`` up in ``sys.modules``.

float16, bfloat16 and float32 convolutions with 1-3 spatial dims are
``mlx.core.conv_general`` itself, its operands permuted into its channels-last
layout (no permutation for channels-last dimension numbers); float64,
integers, bool, other ranks and absurd parameters are summed tap by tap in
matrix products (:mod:`.lower`, which says why); complex64 is two real
convolutions.  Every op is native (:mod:`.run`): MLX arrays have most of the
array API but no ``device``, which :mod:`polyconv.derive` needs.  Results are
lazy MLX arrays, computed by MLX on the caller's default device and stream
(float64 and the exact integer products on the CPU stream: Metal has no
float64), and every path is MLX operations on shapes, so ``mx.grad``,
``mx.vjp``, ``mx.value_and_grad`` and ``mx.compile`` go through polyconv's
calls.  ``polyconv.use_fft('always')`` runs large kernels through ``mx.fft``
(:mod:`.spectral`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from polyconv import caching
from polyconv.backend import Backend, Manifest
from polyconv.errors import ConvArgumentError, UnsupportedDtypeError
from polyconv.spec import ConvSpec, LocalSpec, PatchesSpec, TransposeSpec, dtype_name

from ._modules import dtype, mlx_core

__all__ = ["MlxBackend", "backend"]

#: MLX has no complex128; float64 runs on the CPU only (Metal has none).
_DTYPES = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex64",
})

_OPS = frozenset({
    "conv_general_dilated", "conv_transpose", "conv_general_dilated_patches", "conv_general_dilated_local",
    "conv_general_dilated_vjp",
})

Run = Callable[..., Any]


def _runner(op: str, spec: Any, mode: str) -> Run:
    from . import run

    if op == "conv_general_dilated":
        return run.conv(spec)
    if op == "conv_transpose":
        return run.transpose(spec)
    if op == "conv_general_dilated_patches":
        return run.patches(spec)
    if op == "conv_general_dilated_local":
        return run.local(spec)
    return run.vjp(spec)


class MlxBackend(Backend):
    """Runs on ``mlx.core.array`` (and the arrays ``mx.compile``, ``mx.grad``
    and ``mx.vmap`` trace with), through ``mlx.core``."""

    name = "mlx"
    distribution = "mlx"
    #: MLX arrays live in unified memory: every stream reads every array.
    single_device = True

    def __init__(self) -> None:
        self.manifest = Manifest(
            dtypes=_DTYPES,
            devices=("cpu", "gpu"),
            ops=_OPS,
            features=frozenset({
                "lhs_dilation", "feature_group_count", "batch_group_count", "preferred_element_type",
                "autodiff", "jit",
            }),
            derived=False,
            notes=(
                "float16/bfloat16/float32 with 1-3 spatial dims: mlx.core.conv_general (half summed in float32 "
                "on the CPU); complex64: two real conv_general calls",
                "float64 (which conv_general computes in float32), integers and bool (which it refuses), 0 or "
                "more than 3 spatial dims and absurd parameters: tap by tap, float64 matrix products on the "
                "CPU stream; integers and bool exact (16-bit limbs), modulo their width",
                "no complex128 (MLX has none); precision is accepted and ignored (full precision)",
                "every op is native (MLX arrays have no array-API device for polyconv.derive); "
                "mx.grad/mx.vjp/mx.compile trace through every call",
                "FFT (mx.fft, complex64) only under use_fft('always'): single-precision transforms cannot "
                "meet the auto mode's error rule",
            ),
        )
        self._runners: caching.BoundedCache[tuple[str, int, str], tuple[Any, Run]] = caching.BoundedCache(
            "polyconv.backends.mlx.runners", 1024)

    # -- arrays ------------------------------------------------------------------------
    def owns(self, x: Any) -> bool:
        """A type check alone: imports nothing."""
        core = sys.modules.get("mlx.core")
        if core is None:
            return False
        array = getattr(core, "array", None)
        return array is not None and isinstance(x, array)

    def asarray(self, x: Any, like: Any = None) -> Any:
        """``mx.array(x)``: Python floats become float32, ints int32, as MLX makes them."""
        return mlx_core().array(x)

    def from_numpy(self, a: Any, device: str | None = None) -> Any:
        """A copy of NumPy array ``a`` (bfloat16 through float32, exactly); ``device``
        names an MLX device (``'cpu'``, ``'gpu'``) or is None: MLX arrays live in
        unified memory, so it is only checked."""
        import numpy as np

        mx = mlx_core()
        if device is not None:
            self._device(device)
        name = dtype_name(a.dtype)
        if name not in _DTYPES:
            raise UnsupportedDtypeError("from_numpy", "a", "has a dtype MLX does not have", got=name)
        if name == "bfloat16":
            return mx.array(np.ascontiguousarray(a, dtype=np.float32)).astype(mx.bfloat16)
        return mx.array(np.array(a, copy=True, order="C"), dtype=dtype(name))

    def to_numpy(self, x: Any) -> Any:
        import numpy as np

        mx = mlx_core()
        if x.dtype == mx.bfloat16:
            import ml_dtypes

            return np.array(x.astype(mx.float32)).astype(ml_dtypes.bfloat16)
        return np.array(x, copy=True)

    def device(self, x: Any) -> str:
        """The caller's default device (``'cpu'``, ``'gpu'``), where MLX computes
        on ``x``: MLX arrays themselves live in unified memory."""
        return str(mlx_core().default_device().type.name)

    def same_device(self, x: Any, y: Any) -> bool:
        return True

    def _device(self, device: str) -> Any:
        mx = mlx_core()
        kind, _, index = str(device).partition(":")
        if kind not in ("cpu", "gpu") or index not in ("", "0") or (kind == "gpu" and not mx.is_available(mx.gpu)):
            raise ConvArgumentError("from_numpy", "device", "must name an MLX device ('cpu' or 'gpu')", device)
        return getattr(mx, kind)

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("mlx") is None:
            return "MLX is not installed (pip install 'polyconv[mlx]')"
        if sys.platform.startswith("linux") and not any(_installed(d) for d in ("mlx-cpu", "mlx-cuda", "mlx-cuda-12",
                                                                                "mlx-cuda-13")):
            return "MLX is installed without a Linux backend (pip install 'mlx[cpu]')"
        return None

    def details(self) -> str | None:
        core = sys.modules.get("mlx.core")
        if core is None:
            return "mlx.core.conv_general for 16/32-bit floats; float64, integers, bool: exact tap sums"
        return (f"mlx.core.conv_general for 16/32-bit floats; float64, integers, bool: tap sums; default device "
                f"{core.default_device().type.name}")

    # -- the ops -----------------------------------------------------------------------
    def runner(self, op: str, spec: Any) -> Run | None:
        """The function of the operands that computes ``op`` for ``spec`` in the
        current FFT mode (built once per spec and mode)."""
        from polyconv.algorithm import fft_mode

        mode = fft_mode()
        key = (op, id(spec), mode)
        hit = self._runners.get(key)
        if hit is not None and hit[0] is spec:
            return hit[1]
        run = _runner(op, spec, mode)
        self._runners.put(key, (spec, run))
        return run

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        return self._run("conv_general_dilated", spec)(lhs, rhs)

    def conv_transpose(self, lhs: Any, rhs: Any, spec: TransposeSpec) -> Any:
        """The forward convolution of ``spec.conv``; with ``transpose_kernel`` the
        kernel goes to ``conv_general`` as given (``flip``, I and O read swapped)."""
        return self._run("conv_transpose", spec)(lhs, rhs)

    def conv_general_dilated_patches(self, lhs: Any, spec: PatchesSpec) -> Any:
        """A gather of strided slices of the input: no arithmetic, exact in every dtype."""
        return self._run("conv_general_dilated_patches", spec)(lhs)

    def conv_general_dilated_local(self, lhs: Any, rhs: Any, spec: LocalSpec) -> Any:
        """The patches times the kernel, one batched matrix product over the output positions."""
        return self._run("conv_general_dilated_local", spec)(lhs, rhs)

    def conv_general_dilated_vjp(self, lhs: Any, rhs: Any, cotangent: Any, spec: ConvSpec) -> tuple[Any, Any]:
        """The two convolutions of XLA's transpose rules, by this backend's convolution."""
        result: tuple[Any, Any] = self._run("conv_general_dilated_vjp", spec)(lhs, rhs, cotangent)
        return result

    def _run(self, op: str, spec: Any) -> Run:
        run = self.runner(op, spec)
        assert run is not None
        return run

    def explain(self, op: str, spec: Any) -> Any:
        """The path of ``op``'s convolution (:mod:`.lower`) and the FFT decision."""
        from polyconv.algorithm import fft_mode
        from polyconv.explanation import Strategy

        from . import spectral
        from .lower import conv_plan

        if op == "conv_general_dilated_patches":
            return Strategy("gather", "strided slices of the input placed among zeros: no arithmetic")
        if op == "conv_general_dilated_local":
            return Strategy("patches-matmul", "the patches (a gather) times the kernel, one batched matrix "
                            "product over the output positions")
        if op == "conv_general_dilated_vjp":
            return Strategy("transposed-convolutions", "the two convolutions of XLA's transpose rules, each "
                            "computed by this backend's convolution")
        p = conv_plan(spec.conv if op == "conv_transpose" else spec, op == "conv_transpose" and spec.transpose_kernel)
        d = spectral.decision(p, fft_mode())
        if d is not None and d.use:
            return Strategy("fft", f"mx.fft (complex64): {d.why}", (d,))
        why = p.why if d is None else f"{p.why}; not FFT: {d.why}"
        return Strategy(p.path, why, () if d is None else (d,))


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


backend = MlxBackend()
