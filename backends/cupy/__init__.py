"""The CuPy backend: convolutions of CuPy arrays on their GPU.

CuPy has had no convolution of its own since v14 dropped its cuDNN
bindings, so each call takes one of two paths (:mod:`.paths` decides, once
per spec and device):

* **cuDNN**, through NVIDIA's cuDNN frontend (``nvidia-cudnn-frontend``,
  the ``cudnn`` extra), for the floating-point convolutions one cuDNN node
  expresses: ``conv_fprop`` for the forward convolution, ``conv_dgrad`` for
  lhs dilation (the transposed convolution), groups and rhs dilation
  natively (:mod:`.cudnn_plan` has the rules, :mod:`.cudnn_graph` the
  frontend calls);
* **the gather-GEMM** of :mod:`polyconv.backends.gemm` (the NumPy backend's
  algorithm, the same code) run with CuPy, i.e. on cuBLAS, for everything
  else: integers, bool, complex, batch groups, more than 3 spatial dims,
  and whatever cuDNN declines or is not installed for.

Results are CuPy arrays on the operands' device, computed on CuPy's current
stream of that device.  Registered as ``cupy`` in the entry-point group
``polyconv.backends``; importing this module imports neither CuPy nor cuDNN.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sys
from typing import Any

from polyconv.backend import Backend, Manifest
from polyconv.errors import ConvArgumentError, UnsupportedDtypeError
from polyconv.spec import ConvSpec, dtype_name

from . import probe
from .paths import Path, Paths

__all__ = ["CupyBackend", "backend"]

_DTYPES = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
})
_DEVICE = re.compile(r"(?:cuda|gpu)?:?(\d+)")


def _load_engine() -> Any:
    from .cudnn_graph import CudnnEngine

    return CudnnEngine()


class CupyBackend(Backend):
    """Runs on ``cupy.ndarray``, on the array's own CUDA device and CuPy's current stream there."""

    name = "cupy"

    def __init__(self) -> None:
        dtypes = set(_DTYPES)
        version = probe.cupy_version()
        major = int(version.split(".")[0]) if version and version.split(".")[0].isdigit() else 0
        if major >= 14 and importlib.util.find_spec("ml_dtypes") is not None:
            dtypes.add("bfloat16")  # CuPy 14 holds ml_dtypes.bfloat16 arrays
        self.manifest = Manifest(
            dtypes=frozenset(dtypes),
            devices=("cuda",),
            ops=frozenset({"conv_general_dilated"}),
            features=frozenset({
                "lhs_dilation", "feature_group_count", "batch_group_count", "preferred_element_type",
                "reduced_precision",
            }),
            notes=(
                "floating-point convolutions of 0-3 spatial dims without batch groups run cuDNN "
                "(nvidia-cudnn-frontend: conv_fprop, conv_dgrad for lhs dilation) where it is installed; "
                "everything else runs the gather-GEMM on cuBLAS",
                "precision='highest' excludes TF32 and reduced-precision cuDNN engines; 'default' and "
                "'high' allow TF32 on cuDNN; the gather-GEMM computes float32 in full FP32 (CuPy's default)",
                "results stay on the operands' device and are computed on CuPy's current stream there",
                "integers are exact (modulo their width); float16 and bfloat16 accumulate in float32",
            ),
        )
        self.paths = Paths(_load_engine)

    # -- which arrays ---------------------------------------------------------------
    def owns(self, x: Any) -> bool:
        cupy = sys.modules.get("cupy")
        return cupy is not None and isinstance(x, cupy.ndarray)

    def device(self, x: Any) -> str:
        return f"cuda:{x.device.id}"

    # -- making and reading arrays --------------------------------------------------
    def asarray(self, x: Any, like: Any = None) -> Any:
        cupy = _cupy()
        with like.device if like is not None else contextlib.nullcontext():
            return cupy.asarray(x)

    def from_numpy(self, a: Any, device: Any = None) -> Any:
        """A copy of the NumPy array ``a`` on ``device``: None (the current device),
        a device number, ``'cuda:N'`` (as :meth:`device` writes it) or a ``cupy.cuda.Device``."""
        cupy = _cupy()
        with cupy.cuda.Device(_device_id(device)) if device is not None else contextlib.nullcontext():
            try:
                return cupy.array(a, copy=True)
            except (TypeError, ValueError) as exc:  # bfloat16 before CuPy 14
                raise UnsupportedDtypeError(
                    "from_numpy", "a", f"has a dtype CuPy {cupy.__version__} cannot hold ({exc})",
                    got=dtype_name(a.dtype),
                ) from None

    def to_numpy(self, x: Any) -> Any:
        return _cupy().asnumpy(x)

    # -- about ------------------------------------------------------------------------
    def version(self) -> str | None:
        return probe.cupy_version()

    def unavailable_reason(self) -> str | None:
        return probe.cupy_unavailable()

    def details(self) -> str | None:
        """Which path convolutions take here (``python -m polyconv info`` shows it)."""
        gemm = "the gather-GEMM on cuBLAS"
        loaded = self.paths.engine_loaded
        if loaded is None:  # not tried yet in this process: say what is installed
            fe = probe.frontend_version()
            if fe is None:
                return f"{gemm} (for cuDNN: pip install 'polyconv[cudnn]')"
            return f"cuDNN via nvidia-cudnn-frontend {fe} where it can, else {gemm}"
        if loaded:
            engine = self.paths.engine()
            return f"cuDNN ({getattr(engine, 'version', '?')}) where it can, else {gemm}"
        return f"{gemm} (cuDNN unusable: {self.paths.engine_error})"

    def path(self, spec: ConvSpec, device: int | None = None) -> Path:
        """The path (``'cudnn'`` or ``'gemm'``, with the reason) that ``spec`` takes on
        device number ``device`` (default: the current device), deciding it now if it
        is not decided yet.  Needs a GPU."""
        cupy = _cupy()
        device = cupy.cuda.runtime.getDevice() if device is None else device
        with cupy.cuda.Device(device):
            return self.paths.path(spec, device)

    # -- the primitive --------------------------------------------------------------
    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        import array_api_compat

        xp = array_api_compat.array_namespace(lhs, rhs)
        with lhs.device:  # every kernel, and cuDNN's handle, on the operands' device
            return self.paths.conv(xp, lhs, rhs, spec, lhs.device.id)


def _cupy() -> Any:
    import cupy

    return cupy


def _device_id(device: Any) -> int:
    if isinstance(device, int) and not isinstance(device, bool):
        return device
    if hasattr(device, "id"):  # cupy.cuda.Device
        return int(device.id)
    match = _DEVICE.fullmatch(str(device).strip())
    if match is None:
        raise ConvArgumentError(
            "from_numpy", "device", "must be a CUDA device number, 'cuda:N' or a cupy.cuda.Device", device
        )
    return int(match.group(1))


backend = CupyBackend()
