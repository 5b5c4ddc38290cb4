"""The torch backend's conformance harness: ``torch.compile`` and autograd.

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

    def jit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``torch.compile(fn, fullgraph=True)``: polyconv's functions are single graph nodes."""
        import torch

        return torch.compile(fn, fullgraph=True)

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> tuple[Any, ...]:
        """Autograd: the gradients of ``(fn(*primals) * cotangent).sum()``, taken on
        detached copies of the primals (the caller's tensors are left alone)."""
        import torch

        leaves = [p.detach().clone().requires_grad_(True) for p in primals]
        out = fn(*leaves)
        grads = torch.autograd.grad(out, leaves, cotangent, allow_unused=True)
        return tuple(torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads))


harness = TorchHarness()
