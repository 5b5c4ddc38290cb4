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

from typing import Any

from . import errors, layers
from .backend import Backend, Manifest
from .dispatch import current_backend, use_backend
from .errors import (
    BackendNotFoundError,
    BackendUnavailableError,
    ConvArgumentError,
    ConvShapeError,
    ConvTypeError,
    MixedArraysError,
    PolyconvError,
    UnsupportedDtypeError,
    UnsupportedFeatureError,
)
from .imports import when_imported
from .ops import (
    conv_general_dilated,
    conv_general_dilated_local,
    conv_general_dilated_patches,
    conv_general_dilated_vjp,
    conv_transpose,
)
from .registry import registry as _registry
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

# Frameworks whose polyconv backend must be ready before their first trace
# (torch.compile records polyconv's functions as graph nodes only once the
# torch backend has registered them): the backend loads as soon as the
# framework is imported, which is cheap, since the framework is then loaded.
def _prepare_torch() -> None:
    _registry.try_load("torch")


when_imported("torch", _prepare_torch)

__all__ = [
    "Backend",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "ConvArgumentError",
    "ConvDimensionNumbers",
    "ConvShapeError",
    "ConvSpec",
    "ConvTypeError",
    "Manifest",
    "MixedArraysError",
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
    "layers",
    "list_backends",
    "padtype_to_pads",
    "use_backend",
]


def list_backends() -> list[str]:
    """Names of the registered, unblocked backends, without loading any.

    Examples
    --------
    >>> 'numpy' in list_backends()
    True
    """
    return _registry.names()


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
    return _registry.info()
