"""polyconv and ``torch.compile``: the one place where polyconv's public
functions are registered with ``torch.compiler.allow_in_graph``.

Dynamo then records each polyconv call as one graph node instead of tracing
polyconv's dispatch and argument parsing (see :mod:`polyconv.backends.torch`).
The functions are registered once both torch and polyconv's API
(:mod:`polyconv.ops`) are imported, by whichever of the two is imported
second, at these points and nowhere else:

* :func:`on_torch_import`: PyTorch calls it at the end of ``import torch``
  (polyconv's entry point in PyTorch's group ``torch.backends``; PyTorch
  skips its entry points when ``TORCH_DEVICE_BACKEND_AUTOLOAD=0``).  With
  :mod:`polyconv.ops` already imported it registers; otherwise it does
  nothing, and ``import torch`` costs this module's import alone (``import
  polyconv`` imports only polyconv's errors).
* :func:`on_api_import`: the last statement of :mod:`polyconv.ops`, run only
  when torch is already imported.
* the torch backend, as it loads with torch imported and at the first use
  of its run path (``TorchBackend._t``): for a process where PyTorch's entry
  points are off, its first eager call on a tensor (or
  ``polyconv.registry.registry.load('torch')``) registers before any trace.

Registering loads no backend, and a type check (``owns()``) never registers.
It imports ``torch._dynamo`` (seconds on a small machine), which a process
that never uses polyconv's API with torch never pays.  None of these points
raises: a failure is a warning, and ``torch.compile`` then traces polyconv's
Python (with graph breaks) instead.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

__all__ = ["on_torch_import", "on_api_import", "register_with_torch_compile", "try_register"]

#: the functions registered last (the same objects are not registered twice)
_registered: tuple[Any, ...] = ()


def register_with_torch_compile() -> bool:
    """Register every function of ``polyconv.ops.__all__`` with
    ``torch.compiler.allow_in_graph``, when torch and :mod:`polyconv.ops` are
    both imported (imports neither; loads no backend).

    Returns whether they are registered now.  Raises what PyTorch raises.
    """
    global _registered
    torch = sys.modules.get("torch")
    ops = sys.modules.get("polyconv.ops")
    if torch is None or ops is None:
        return False
    functions = tuple(getattr(ops, name) for name in ops.__all__)
    if functions == _registered:
        return True
    allow = getattr(getattr(torch, "compiler", None), "allow_in_graph", None)
    if allow is None:  # PyTorch without torch.compiler
        return False
    for fn in functions:
        allow(fn)
    _registered = functions
    return True


def try_register(when: str) -> bool:
    """:func:`register_with_torch_compile`, with a warning instead of an
    exception (``when`` says where, for the warning)."""
    try:
        return register_with_torch_compile()
    except Exception as exc:  # never break the user's import or call
        warnings.warn(
            f"polyconv: registering polyconv's functions with torch.compile {when} failed "
            f"({type(exc).__name__}: {exc}); torch.compile traces them instead",
            stacklevel=3,
        )
        return False


def on_torch_import() -> None:
    """At the end of ``import torch``: register polyconv's functions with
    ``torch.compile`` if polyconv's API is already imported, else nothing."""
    if "polyconv.ops" in sys.modules:
        try_register("at torch's import")


def on_api_import() -> None:
    """At the end of :mod:`polyconv.ops`'s import: register its functions with
    ``torch.compile`` if torch is already imported, else nothing."""
    if "torch" in sys.modules:
        try_register("at polyconv.ops's import")
