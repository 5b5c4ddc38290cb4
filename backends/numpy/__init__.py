"""The NumPy backend: convolution on the CPU through BLAS matrix products.

Each spec gets a strategy of its own (:mod:`.strategy`): matrix products on
shifted slices of the padded input for most shapes (:mod:`.offsets`),
elementwise multiply-adds for depthwise ones (:mod:`.depthwise`), one product
for 1x1 windows (:mod:`.pointwise`), one cached gather for small ones
(:mod:`.small`), the polyphase decomposition for lhs dilation
(:mod:`.polyphase`), and the shared gather-GEMM of
:mod:`polyconv.backends.gemm` for integer and bool arithmetic.

Registered as ``numpy`` in the entry-point group ``polyconv.backends``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from polyconv.backend import Backend, Manifest
from polyconv.spec import ConvSpec, TransposeSpec

from . import strategy

__all__ = ["NumpyBackend", "backend"]

_DTYPES = (
    "bool", "float16", "float32", "float64", "complex64", "complex128",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
)


class NumpyBackend(Backend):
    """Runs on ``numpy.ndarray`` (and NumPy scalars) on the CPU."""

    name = "numpy"
    single_device = True  # NumPy arrays all live in host memory

    def __init__(self) -> None:
        dtypes = set(_DTYPES)
        if importlib.util.find_spec("ml_dtypes") is not None:
            dtypes.add("bfloat16")
        self.manifest = Manifest(
            dtypes=frozenset(dtypes),
            devices=("cpu",),
            # conv_transpose: the derivation's kernel flip and axis swap as views, no copy
            ops=frozenset({"conv_general_dilated", "conv_transpose"}),
            features=frozenset(
                {"lhs_dilation", "feature_group_count", "batch_group_count", "preferred_element_type"}
            ),
            notes=(
                "precision is accepted and ignored: every product is computed at full precision "
                "of the accumulation dtype",
                "float16 and bfloat16 accumulate in float32; integers are exact (modulo their width)",
            ),
        )

    def owns(self, x: Any) -> bool:
        if isinstance(x, np.generic):
            return True
        if not isinstance(x, np.ndarray):
            return False
        ma = sys.modules.get("numpy.ma")  # a masked array's mask would be silently dropped
        return ma is None or not isinstance(x, ma.MaskedArray)

    def asarray(self, x: Any, like: Any = None) -> Any:
        return np.asarray(x)

    def from_numpy(self, a: Any, device: str | None = None) -> Any:
        return np.array(a, copy=True)

    def to_numpy(self, x: Any) -> Any:
        return np.array(x, copy=True)

    def version(self) -> str:
        version: str = np.__version__
        return version

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        return strategy.convolve(lhs, rhs, spec)

    def conv_transpose(self, lhs: Any, rhs: Any, spec: TransposeSpec) -> Any:
        return strategy.transpose_runner(spec)(lhs, rhs)

    def explain(self, op: str, spec: Any) -> Any:
        if op not in ("conv_general_dilated", "conv_transpose"):
            return None
        from polyconv.algorithm import fft_mode
        from polyconv.explanation import Strategy

        choice = strategy.choose(spec if op == "conv_general_dilated" else spec.conv, fft_mode())
        return Strategy(choice.name, choice.why, choice.fft)

    def runner(self, op: str, spec: Any) -> Callable[..., Any] | None:
        if op == "conv_general_dilated":
            return strategy.runner(spec)
        if op == "conv_transpose":
            return strategy.transpose_runner(spec)
        return None


backend = NumpyBackend()
