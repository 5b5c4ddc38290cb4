"""What is installed, asked cheaply: CuPy, a CUDA driver, the cuDNN frontend.

The registry asks every backend whether it can run here the first time any
polyconv call resolves a backend, in every process, so the answer must cost
little and change nothing: this module never imports CuPy or cuDNN (unless
the user already imported CuPy, which is then asked directly) and never
initialises CUDA.  Without CuPy imported, "a GPU is here" means that the
CUDA driver library loads and ``CUDA_VISIBLE_DEVICES`` does not hide every
device; CuPy itself checks the rest when its first array is made.

Examples
--------
>>> cupy_unavailable(find_spec=lambda name: None)
"CuPy is not installed (pip install 'polyconv[cupy]')"
>>> cupy_unavailable(find_spec=lambda name: object(), modules={}, environ={'CUDA_VISIBLE_DEVICES': ''},
...                  load_driver=lambda: None)
"no CUDA device: CUDA_VISIBLE_DEVICES='' hides every GPU"
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from polyconv import caching

__all__ = ["cupy_unavailable", "cupy_version", "frontend_version", "load_cuda_driver"]

INSTALL_HINT = "pip install 'polyconv[cupy]'"
_DRIVER_LIBRARIES = {"win32": ("nvcuda.dll",)}.get(sys.platform, ("libcuda.so.1", "libcuda.so"))


def load_cuda_driver() -> None:
    """Load the CUDA driver library (without initialising it); raises ``OSError`` when there is none."""
    errors = []
    for name in _DRIVER_LIBRARIES:
        try:
            ctypes.CDLL(name)
            return
        except OSError as exc:
            errors.append(str(exc))
    raise OSError("; ".join(errors))


def cupy_unavailable(
    find_spec: Callable[[str], Any] = importlib.util.find_spec,
    modules: Mapping[str, Any] = sys.modules,
    environ: Mapping[str, str] = os.environ,
    load_driver: Callable[[], None] = load_cuda_driver,
) -> str | None:
    """Why CuPy cannot run here, or None.  The parameters are for tests."""
    if find_spec("cupy") is None:
        return f"CuPy is not installed ({INSTALL_HINT})"
    cupy = modules.get("cupy")
    if cupy is not None:  # the user imported it: ask CuPy
        try:
            count = int(cupy.cuda.runtime.getDeviceCount())
        except Exception as exc:  # CUDARuntimeError: no driver, no device, a driver too old
            return f"no CUDA device: {type(exc).__name__}: {exc}"
        return None if count > 0 else "no CUDA device: CuPy sees none"
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and (not visible.strip() or visible.strip().startswith("-1")):
        return f"no CUDA device: CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    try:
        load_driver()
    except OSError as exc:
        return f"no CUDA device: the NVIDIA driver library cannot be loaded ({exc})"
    return None


@caching.memoize(64)
def _distribution_of(module: str) -> str | None:
    """The installed distribution that provides the top-level ``module`` (CuPy's
    has several names: cupy, cupy-cuda12x, cupy-cuda13x...)."""
    names = importlib.metadata.packages_distributions().get(module)
    return names[0] if names else None


def cupy_version() -> str | None:
    """CuPy's version, from CuPy when imported, else from the installed distribution."""
    if importlib.util.find_spec("cupy") is None:
        return None
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        return str(cupy.__version__)
    dist = _distribution_of("cupy")
    return None if dist is None else importlib.metadata.version(dist)


def frontend_version() -> str | None:
    """The version of the installed ``nvidia-cudnn-frontend`` (module ``cudnn``), or None."""
    if importlib.util.find_spec("cudnn") is None:
        return None
    try:
        return importlib.metadata.version("nvidia-cudnn-frontend")
    except importlib.metadata.PackageNotFoundError:  # a module named cudnn from elsewhere
        return None
