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

__all__ = ["JaxHarness", "harness", "UNOPTIMISED_FLOPS"]


#: The most floating-point operations (XLA's cost analysis of the whole compiled
#: function) that the suite compiles without LLVM optimisation.  The suite's
#: batches of 64 cases count up to about 4e7; the two grid cases of a kernel
#: larger than its padded 3-d input count 2e8 each and run 8 times longer
#: unoptimised (4.7 s against 0.6 s) than they save in compilation.
UNOPTIMISED_FLOPS = 1e8

#: The operand dtypes the suite compiles without LLVM optimisation.
_PLAIN = frozenset({"float32", "float64"})


def _flops(lowered: Any) -> float:
    """XLA's count of floating-point operations of a lowered function
    (infinite when it gives none, so that the function is optimised)."""
    cost = lowered.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    flops = cost.get("flops") if isinstance(cost, dict) else None
    return float(flops) if flops is not None else float("inf")


class JaxHarness(Harness):
    """``jax.jit`` and ``jax.vjp``; every eager call compiles, so grids run batched."""

    jit_batches = True

    def jit(self, fn: Callable[..., Any], thorough: bool = False) -> Callable[..., Any]:
        """``jax.jit(fn)``.  Outside the long tier each call lowers ``fn`` and
        compiles it at a lighter XLA backend optimisation level (the same HLO;
        LLVM's pipeline is most of the suite's compile time): level 0 (no LLVM
        optimisation) where that computes the same values, level 1 elsewhere.
        Level 0 only takes functions of float32 and float64 operands (XLA:CPU
        runs their convolutions in Eigen, whatever the level; the loops it
        emits for integer operands accumulate in another order unoptimised:
        2049 int8 products summed in float32 were 1004 off, against 8) that
        XLA's cost analysis counts at most :data:`UNOPTIMISED_FLOPS`
        floating-point operations in (above, unoptimised loops around the
        convolutions run longer than the compilation saves)."""
        jax, _, _ = jax_modules()
        jitted: Any = jax.jit(fn)
        if thorough:
            full: Callable[..., Any] = jitted
            return full

        def compiled(*args: Any) -> Any:
            lowered = jitted.lower(*args)
            plain = all(str(getattr(a, "dtype", "")) in _PLAIN for a in jax.tree_util.tree_leaves(args))
            level = 0 if plain and _flops(lowered) <= UNOPTIMISED_FLOPS else 1
            return lowered.compile({"xla_backend_optimization_level": level})(*args)

        return compiled

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
