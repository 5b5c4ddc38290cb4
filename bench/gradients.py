"""The JAX backend's gradients beside ``jax.lax``'s: ``jax.grad`` of the depthwise and large-kernel shapes.

A faster forward pass is of little use to a JAX user whose training step
spends its time in the backward pass.  For the suite's shapes of
:data:`SHAPES` (where the JAX backend leaves XLA's own convolution), both
sides compute, jitted, the gradient of ``sum(tanh(conv(x, w)))`` with
respect to both operands (the ``tanh`` makes the cotangent depend on the
result, as a real loss's does): polyconv's JAX backend and
``jax.lax.conv_general_dilated``.  Both sides use one framework, so they are
timed in one process, interleaved (:func:`.timing.time_pair`), in a fresh
process of their own (``python -m polyconv.bench.gradients``), after
checking that they give the same gradients.  ``jax.lax``'s gradient of the
31x31 depthwise shape takes seconds here, so each side runs one warm-up
call (the compilation) and at least three timed ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from .shapes import SUITE, Shape

__all__ = ["SHAPES", "calls", "measure", "run_gradients", "format_gradients"]

#: The shapes whose gradients are timed: the depthwise 3x3 and the large kernels.
SHAPES: tuple[Shape, ...] = tuple(s for s in SUITE if s.name.startswith(("depthwise", "large")))


def calls(shape: Shape, lhs: Any, rhs: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``(polyconv's gradient, jax.lax's gradient)`` of ``shape`` at the NumPy operands ``lhs``
    and ``rhs``, jitted, each waiting for its result."""
    import jax
    import jax.numpy as jnp

    import polyconv

    from .calls import lax_style_call

    x, w = jnp.asarray(lhs), jnp.asarray(rhs)

    def gradient(ops: Any) -> Callable[[], Any]:
        loss = lambda a, b: jnp.sum(jnp.tanh(lax_style_call(ops, shape, a, b)()))  # noqa: E731
        step = jax.jit(jax.grad(loss, argnums=(0, 1)))

        def run() -> Any:
            grads = step(x, w)
            for g in grads:
                g.block_until_ready()
            return grads

        return run

    return gradient(polyconv), gradient(jax.lax)


def measure(shape: Shape, budget: float = 2.0) -> dict[str, Any]:
    """Seconds per gradient of both sides (interleaved, in this process), their ratio, and the
    strategy of polyconv's forward pass; both sides' gradients checked against each other."""
    import numpy as np

    from .calls import strategy
    from .isolated import operands
    from .timing import time_pair

    x, w = operands(shape)
    mine, native = calls(shape, x, w)
    for a, b in zip(mine(), native()):  # the same gradients, up to float32 rounding of long sums
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = max(float(np.abs(b).max()), 1e-30)
        if not float(np.abs(a - b).max()) <= 1e-3 * scale:
            raise AssertionError(f"{shape.name}: polyconv's gradient differs from jax.lax's by "
                                 f"{float(np.abs(a - b).max()):.3g} (largest element {scale:.3g})")
    t_mine, t_native = time_pair(mine, native, budget, warmups=1, min_repeats=3)
    return {"shape": shape.name, "strategy": strategy("polyconv jax (jit)", shape, x, w),
            "polyconv_s": t_mine, "native_s": t_native, "ratio": t_mine / t_native}


def run_gradients(shapes: tuple[Shape, ...] = SHAPES, budget: float = 2.0) -> list[dict[str, Any]]:
    """:func:`measure` for every shape of ``shapes`` that is one of :data:`SHAPES`, in one fresh process."""
    chosen = [s for s in shapes if s in SHAPES]
    if not chosen:
        return []
    request = {"shapes": [asdict(s) for s in chosen], "budget": budget}
    proc = subprocess.run([sys.executable, "-m", "polyconv.bench.gradients"], input=json.dumps(request),
                          capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"polyconv bench: timing the JAX gradients failed:\n{proc.stderr[-4000:]}")
    rows: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return rows


def format_gradients(rows: list[dict[str, Any]]) -> str:
    """The gradient table as text.

    >>> print(format_gradients([{"shape": "large 15x15", "strategy": "fft", "polyconv_s": 0.2,
    ...                          "native_s": 1.0, "ratio": 0.2}]))
    jax.grad of sum(tanh(conv)) in both operands, jitted (beside jax.lax's, interleaved in one process):
      large 15x15: polyconv 200.00 ms (fft), jax.lax 1000.00 ms: ratio 0.200 (5.0x)
    """
    lines = ["jax.grad of sum(tanh(conv)) in both operands, jitted (beside jax.lax's, interleaved in one process):"]
    lines += [f"  {r['shape']}: polyconv {r['polyconv_s'] * 1e3:.2f} ms ({r['strategy']}), "
              f"jax.lax {r['native_s'] * 1e3:.2f} ms: ratio {r['ratio']:.3f} ({1 / r['ratio']:.1f}x)" for r in rows]
    return "\n".join(lines)


def _main() -> None:
    request = json.loads(sys.stdin.read())
    rows = []
    for fields in request["shapes"]:
        rows.append(measure(Shape.from_fields(fields), request["budget"]))
    print(json.dumps(rows))


if __name__ == "__main__":
    _main()
