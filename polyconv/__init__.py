"""polyconv: one convolution API for every array framework.

The functions follow ``jax.lax`` exactly (names, parameters, defaults,
shapes and values) and run on the backend that owns the operands: NumPy,
CuPy, PyTorch, JAX, or any array-API library.  Importing polyconv imports no
framework.

Examples
--------
>>> import numpy as np, polyconv
>>> x = np.ones((1, 5, 5, 1))                      # NHWC
>>> w = np.ones((3, 3, 1, 2))                      # HWIO
>>> y = polyconv.conv_general_dilated(x, w, (1, 1), 'SAME',
...                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
>>> y.shape, float(y[0, 2, 2, 0]), float(y[0, 0, 0, 0])
((1, 5, 5, 2), 9.0, 4.0)
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from . import errors
from .errors import (
    BackendNotFoundError,
    BackendUnavailableError,
    ConvArgumentError,
    ConvShapeError,
    ConvTypeError,
    DtypeMismatchError,
    MixedArraysError,
    OutputTooLargeError,
    PolyconvError,
    UnsupportedDtypeError,
    UnsupportedFeatureError,
)

if _typing.TYPE_CHECKING:  # imported on first use (see __getattr__); spelled out for type checkers
    from typing import Any

    from . import backend as backend
    from . import layers
    from . import spec as spec
    from .algorithm import fft_mode, use_fft
    from .backend import Backend, Manifest
    from .dispatch import current_backend, use_backend
    from .explanation import explain
    from .ops import (
        conv_general_dilated,
        conv_general_dilated_local,
        conv_general_dilated_patches,
        conv_general_dilated_vjp,
        conv_transpose,
    )
    from .spec import (
        ConvDimensionNumbers,
        ConvSpec,
        conv_dimension_numbers,
        conv_general_dilated_local_shape,
        conv_general_dilated_patches_shape,
        conv_general_permutations,
        conv_general_shape,
        conv_transpose_shape,
        padtype_to_pads,
    )

__version__ = "0.1.0"

# Where each public name lives.  Importing polyconv imports only its errors:
# the rest is imported the first time it is used, so that ``import polyconv``
# is cheap, and so that the torch backend's hook (which torch runs at its own
# import, see polyconv.backends.autoload) can tell whether polyconv's API is
# in use yet.
_LAZY = {
    "Backend": "backend",
    "Manifest": "backend",
    "current_backend": "dispatch",
    "explain": "explanation",
    "fft_mode": "algorithm",
    "use_fft": "algorithm",
    "use_backend": "dispatch",
    **dict.fromkeys(
        ("conv_general_dilated", "conv_general_dilated_local", "conv_general_dilated_patches",
         "conv_general_dilated_vjp", "conv_transpose"),
        "ops",
    ),
    **dict.fromkeys(
        ("ConvDimensionNumbers", "ConvSpec", "conv_dimension_numbers", "conv_general_dilated_local_shape",
         "conv_general_dilated_patches_shape", "conv_general_permutations", "conv_general_shape",
         "conv_transpose_shape", "padtype_to_pads"),
        "spec",
    ),
}
#: Submodules imported on first use: ``layers`` (in ``__all__``), and the two whose
#: API is documented beside it (docs/api): ``backend`` (for backend authors) and ``spec``.
_SUBMODULES = ("layers", "backend", "spec")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(_importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public API alone: ``__all__``, the public submodules and ``__version__``
    (not this module's helpers, nor submodules imported by others)."""
    return sorted({*__all__, *_SUBMODULES, "__version__"})

__all__ = [
    "Backend",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "ConvArgumentError",
    "ConvDimensionNumbers",
    "ConvShapeError",
    "ConvSpec",
    "ConvTypeError",
    "DtypeMismatchError",
    "Manifest",
    "MixedArraysError",
    "OutputTooLargeError",
    "PolyconvError",
    "UnsupportedDtypeError",
    "UnsupportedFeatureError",
    "backend_info",
    "conv_dimension_numbers",
    "conv_general_dilated",
    "conv_general_dilated_local",
    "conv_general_dilated_local_shape",
    "conv_general_dilated_patches",
    "conv_general_dilated_patches_shape",
    "conv_general_dilated_vjp",
    "conv_general_permutations",
    "conv_general_shape",
    "conv_transpose",
    "conv_transpose_shape",
    "current_backend",
    "errors",
    "explain",
    "fft_mode",
    "layers",
    "list_backends",
    "padtype_to_pads",
    "use_backend",
    "use_fft",
]


def list_backends() -> list[str]:
    """Names of the registered, unblocked backends, without loading any.

    Examples
    --------
    >>> 'numpy' in list_backends()
    True
    """
    from .registry import registry

    return registry.names()


def backend_info() -> list[dict[str, Any]]:
    """Every registered backend: name, version, status, reason, distribution,
    capabilities (its manifest) and details (how it computes here, or None).

    Loads each unblocked backend (which imports no framework).  ``status`` is
    ``'ok'``, ``'unavailable'`` (cannot run here; ``reason`` says why),
    ``'broken'`` (failed to load), ``'duplicate'`` or ``'blocked'``.

    Examples
    --------
    >>> row = next(r for r in backend_info() if r['name'] == 'numpy')
    >>> row['status'], 'float32' in row['capabilities']['dtypes']
    ('ok', True)
    """
    from .registry import registry

    return registry.info()


del annotations  # the __future__ feature's name; the feature is in force all the same
