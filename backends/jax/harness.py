"""The JAX backend's conformance harness: ``jax.jit``, ``jax.vjp`` and 64-bit types.

Registered as ``jax`` in the entry-point group ``polyconv.harnesses``; only
the conformance suite loads it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from polyconv.conformance.harness import Harness

from ._lowering import jax_modules

__all__ = ["JaxHarness", "harness"]


class JaxHarness(Harness):
    """``jax.jit`` and ``jax.vjp``; every eager call compiles, so grids run batched."""

    jit_batches = True

    def jit(self, fn: Callable[..., Any], thorough: bool = False) -> Callable[..., Any]:
        """``jax.jit(fn)``; outside the long tier compiled at XLA's backend
        optimisation level 1 (LLVM's lighter pipeline: the same HLO, about a
        quarter less compile time on the suite's batches)."""
        jax, _, _ = jax_modules()
        options = None if thorough else {"xla_backend_optimization_level": 1}
        jitted: Callable[..., Any] = jax.jit(fn, compiler_options=options)
        return jitted

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> tuple[Any, ...]:
        """``jax.vjp(fn, *primals)[1](cotangent)``."""
        jax, _, _ = jax_modules()
        return tuple(jax.vjp(fn, *primals)[1](cotangent))

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """64-bit types on (``jax_enable_x64``) while the suite runs, restored after."""
        jax, _, _ = jax_modules()
        previous = jax.config.read("jax_enable_x64")
        jax.config.update("jax_enable_x64", True)
        try:
            yield
        finally:
            jax.config.update("jax_enable_x64", previous)


harness = JaxHarness()
