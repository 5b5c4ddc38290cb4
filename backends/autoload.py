"""Hooks that a framework runs at its own import, through its plugin entry points.

PyTorch: at the end of ``import torch``, PyTorch calls every entry point of
its group ``torch.backends`` (unless ``TORCH_DEVICE_BACKEND_AUTOLOAD=0``).
polyconv registers :func:`on_torch_import` there, so that its torch backend is
ready for ``torch.compile`` before the first trace, whichever of torch and
polyconv is imported first:

* polyconv's API (:mod:`polyconv.ops`) already in use when torch is imported:
  this hook loads the torch backend, which registers polyconv's functions
  with ``torch.compiler.allow_in_graph``;
* torch imported first: :mod:`polyconv.ops`, on its own import, loads every
  backend whose framework is imported (the registry's ``load_imported``),
  the torch backend among them;
* neither: nothing happens here, and ``import torch`` costs this module's
  import alone (``import polyconv`` imports only polyconv's errors).

The hook never raises: PyTorch turns an entry point's exception into a failed
``import torch``.
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["on_torch_import"]


def on_torch_import() -> None:
    """Load polyconv's torch backend if polyconv's API is already in use."""
    if "polyconv.ops" not in sys.modules:
        return
    try:
        from polyconv.registry import registry

        registry.try_load("torch")
    except Exception as exc:  # never break the user's import of torch
        warnings.warn(
            f"polyconv: preparing the torch backend at torch's import failed ({type(exc).__name__}: {exc}); "
            "it loads at its first use instead",
            stacklevel=2,
        )
