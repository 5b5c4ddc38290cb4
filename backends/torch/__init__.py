"""The PyTorch backend: every convolution lowered to PyTorch's own kernels.

Registered as ``torch`` in the entry-point group ``polyconv.backends``.
Importing this module does not import torch; the lowering (:mod:`.lower`)
is imported on the first call.

``torch.compile``: polyconv's public functions are registered with
``torch.compiler.allow_in_graph`` once torch and :mod:`polyconv.ops` are both
imported (:mod:`polyconv.backends.autoload` lists when: at whichever import
comes second, and, as a fallback, when this backend loads with torch imported
and at the first use of its run path; never in :meth:`TorchBackend.owns`).
Dynamo then records each call as one node instead of tracing polyconv's
dispatch and argument parsing (Python that Dynamo cannot follow: logging,
context variables), and AOTAutograd traces the node into the PyTorch ops of
:mod:`.lower`, so ``fullgraph=True`` holds and Inductor sees plain
convolutions.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from polyconv.backend import Backend, Manifest
from polyconv.spec import ConvSpec, LocalSpec, PatchesSpec, TransposeSpec

__all__ = ["TorchBackend", "backend"]

# torch has uint16/32/64 tensors but almost no arithmetic on them
_DTYPES = frozenset({
    "bool", "uint8", "int8", "int16", "int32", "int64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
})


class TorchBackend(Backend):
    """Runs on ``torch.Tensor`` on any device PyTorch supports."""

    name = "torch"
    distribution = "torch"

    def __init__(self) -> None:
        self.manifest = Manifest(
            dtypes=_DTYPES,
            devices=("cpu", "cuda", "mps", "xpu"),
            ops=frozenset({
                "conv_general_dilated", "conv_transpose", "conv_general_dilated_patches", "conv_general_dilated_local",
            }),
            features=frozenset({
                "lhs_dilation", "feature_group_count", "batch_group_count", "preferred_element_type",
                "autodiff", "jit", "reduced_precision",
            }),
            notes=(
                "1-3 spatial dims run torch.nn.functional.conv*d; lhs dilation runs conv_transpose*d (with "
                "conv_transpose's transpose_kernel=True kernel as it is); "
                "more dims are sums of 3-d convolutions",
                "precision='highest' disables TF32 for the call; 'default' and 'high' follow "
                "PyTorch's global setting (TF32 convolutions on CUDA by default)",
                "integers are exact modulo their width; float16/bfloat16 accumulate in float32 on the CPU",
            ),
        )
        self._torch: Any = None

    # -- arrays ---------------------------------------------------------------------
    def owns(self, x: Any) -> bool:
        """A type check alone: imports and registers nothing."""
        torch = sys.modules.get("torch")
        if torch is None:
            return False
        tensor = getattr(torch, "Tensor", None)  # None while torch is still importing
        return tensor is not None and isinstance(x, tensor)

    def _t(self) -> Any:
        """torch, imported at the first use of the run path, which also registers
        polyconv's functions with ``torch.compile`` (see the module's docstring)."""
        if self._torch is None:
            import torch

            from .compile import allow_in_compiled_graphs

            allow_in_compiled_graphs()
            self._torch = torch
        return self._torch

    def asarray(self, x: Any, like: Any = None) -> Any:
        torch = self._t()
        return torch.as_tensor(x, device=like.device if like is not None else None)

    def from_numpy(self, a: Any, device: str | None = None) -> Any:
        torch = self._t()
        if a.dtype.name == "bfloat16":
            import numpy as np

            return torch.from_numpy(a.astype(np.float32)).to(dtype=torch.bfloat16, device=device)
        return torch.from_numpy(a.copy()).to(device=device)

    def to_numpy(self, x: Any) -> Any:
        torch = self._t()
        x = x.detach().cpu().resolve_conj().resolve_neg()
        if x.dtype == torch.bfloat16:
            import ml_dtypes

            return x.float().numpy().astype(ml_dtypes.bfloat16)
        return x.numpy().copy()

    def device(self, x: Any) -> str:
        return str(x.device)

    def same_device(self, x: Any, y: Any) -> bool:
        # is_cpu is a property (0.07 us) where .device builds a torch.device (0.09 us, and the
        # comparison as much again): two CPU tensors, the common case, are told apart from the rest first
        return (x.is_cpu and y.is_cpu) or bool(x.device == y.device)

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "PyTorch is not installed (pip install 'polyconv[torch]')"
        return None

    # -- ops ------------------------------------------------------------------------
    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        from .run import conv

        return conv(self._t(), lhs, rhs, spec)

    def conv_transpose(self, lhs: Any, rhs: Any, spec: TransposeSpec) -> Any:
        """With ``transpose_kernel=True`` the kernel is PyTorch's transposed-convolution
        weight: it goes to ``conv_transpose*d`` as it is, not flipped twice."""
        from .run import conv

        return conv(self._t(), lhs, rhs, spec.conv, transposed_kernel=spec.transpose_kernel)

    def explain(self, op: str, spec: Any) -> Any:
        if op != "conv_general_dilated":
            return None
        from .run import describe

        return describe(spec)

    def runner(self, op: str, spec: Any) -> Any:
        if op != "conv_general_dilated":
            return None
        from .run import conv_runner

        return conv_runner(self._t(), self, spec)

    def conv_general_dilated_patches(self, lhs: Any, spec: PatchesSpec) -> Any:
        from .run import patches

        return patches(self._t(), self, lhs, spec)

    def conv_general_dilated_local(self, lhs: Any, rhs: Any, spec: LocalSpec) -> Any:
        from .run import local

        return local(self._t(), self, lhs, rhs, spec)


backend = TorchBackend()
if "torch" in sys.modules:  # loaded with torch imported: register with torch.compile now (see the docstring)
    backend._t()
