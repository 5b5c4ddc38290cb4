"""The torch backend's conformance harness: ``torch.compile`` and autograd.

The suite's ``jit`` items compile with ``torch.compile(fullgraph=True)``:
Dynamo and AOTAutograd trace polyconv's call as they do for any backend
(``backend='aot_eager'``), which is what polyconv's code must survive; with
``--polyconv-thorough`` Inductor also generates and compiles its kernels (the
default backend, about 20 times slower to compile).  The torch backend's own
tests compile with Inductor in every tier.

Registered as ``torch`` in the entry-point group ``polyconv.harnesses``;
only the conformance suite loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from polyconv.conformance.harness import Harness

__all__ = ["TorchHarness", "harness"]


class TorchHarness(Harness):
    """``torch.compile(fullgraph=True)`` and ``torch.autograd``."""

    def jit(self, fn: Callable[..., Any], thorough: bool = False) -> Callable[..., Any]:
        """``torch.compile(fn, fullgraph=True)``: polyconv's functions are single graph
        nodes; Inductor when ``thorough``, else AOTAutograd's eager backend."""
        import torch

        return torch.compile(fn, fullgraph=True, backend="inductor" if thorough else "aot_eager")

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> tuple[Any, ...]:
        """Autograd: the gradients of ``(fn(*primals) * cotangent).sum()``, taken on
        detached copies of the primals (the caller's tensors are left alone)."""
        import torch

        leaves = [p.detach().clone().requires_grad_(True) for p in primals]
        out = fn(*leaves)
        grads = torch.autograd.grad(out, leaves, cotangent, allow_unused=True)
        return tuple(torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads))


    def shares_memory(self, a: Any, b: Any) -> bool:
        """Whether the storages of two tensors overlap (on any device)."""
        ranges = []
        for t in (a, b):
            storage = t.untyped_storage()
            if storage.nbytes() == 0:
                return False
            ranges.append((storage.data_ptr(), storage.data_ptr() + storage.nbytes()))
        (lo_a, hi_a), (lo_b, hi_b) = ranges
        return bool(lo_a < hi_b and lo_b < hi_a)


harness = TorchHarness()
