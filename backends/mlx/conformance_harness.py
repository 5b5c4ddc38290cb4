"""The MLX backend's conformance harness: ``mx.compile`` and ``mx.vjp``.

Registered as ``mlx`` in the entry-point group ``polyconv.harnesses``; only
the conformance suite loads it.  MLX is eager from the caller's view (each
call builds a lazy graph that ``mx.eval`` computes), so the suite runs its
grids case by case and a sample under ``mx.compile``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from polyconv.conformance.harness import Harness

from ._modules import mlx_core

__all__ = ["MlxHarness", "harness"]


class MlxHarness(Harness):
    """``mx.compile`` and ``mx.vjp``."""

    def jit(self, fn: Callable[..., Any], thorough: bool = False) -> Callable[..., Any]:
        """``mx.compile(fn)``: polyconv's dispatch runs while MLX traces, on shapes
        and dtypes, and the traced graph is MLX's to fuse and run."""
        compiled: Callable[..., Any] = mlx_core().compile(fn)
        return compiled

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> tuple[Any, ...]:
        """``mx.vjp(fn, primals, [cotangent])``'s cotangents of the primals."""
        _, cotangents = mlx_core().vjp(fn, list(primals), [cotangent])
        return tuple(cotangents)

    def materialize(self, arrays: Sequence[Any]) -> list[Any]:
        """The lazy arrays computed together (``mx.eval``), then read as they are."""
        mlx_core().eval(*[a for a in arrays if isinstance(a, mlx_core().array)])
        return list(arrays)


harness = MlxHarness()
