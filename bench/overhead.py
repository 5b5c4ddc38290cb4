"""The fixed cost of a repeated call: polyconv beside the framework's own call on a tiny convolution.

For library code that calls small convolutions in loops, the per-call cost
is the whole cost.  For each backend, one tiny float32 convolution (batch 1,
one channel, 8 samples, 3 taps, ``'VALID'``) is called repeatedly with the
same shapes, dtypes and arguments, through polyconv and through the
framework's own call:

* NumPy: the NumPy backend's own strategy for the spec, called directly
  (``strategy.runner(spec)``: NumPy has no convolution of its own);
* torch: ``torch.nn.functional.conv1d``;
* JAX: ``jax.lax.conv_general_dilated``, eagerly (``block_until_ready``);
* MLX: ``mlx.core.conv_general``, both sides channels-last (MLX's layout)
  and evaluated (``mlx.core.eval``).

Both sides use one framework, so they are timed in one process, interleaved
(:func:`.timing.time_pair`), each backend in a fresh process of its own
(``python -m polyconv.bench.overhead``).  The figure of merit is the
difference, polyconv's microseconds over the framework's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["calls", "measure", "run_overhead", "format_overhead", "BACKENDS"]

#: The backends whose fixed cost is measured, and the framework call each is compared with.
BACKENDS = {"numpy": "the NumPy backend's strategy, called directly", "torch": "torch.nn.functional.conv1d",
            "jax": "jax.lax.conv_general_dilated (eager)", "mlx": "mlx.core.conv_general (evaluated)"}


def calls(backend: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """``(polyconv's call, the framework's call)`` of the tiny convolution on ``backend``."""
    import numpy as np

    import polyconv

    x = np.arange(8, dtype=np.float32).reshape(1, 1, 8)
    w = np.ones((1, 1, 3), np.float32)
    if backend == "numpy":
        from polyconv.backends.numpy import strategy

        from polyconv.spec import conv_spec

        run = strategy.runner(conv_spec(x.shape, w.shape, x.dtype, w.dtype, (1,), "VALID"))
        return (lambda: polyconv.conv_general_dilated(x, w, (1,), "VALID")), (lambda: run(x, w))
    if backend == "torch":
        import torch
        import torch.nn.functional as F

        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        return (lambda: polyconv.conv_general_dilated(tx, tw, (1,), "VALID")), (lambda: F.conv1d(tx, tw))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        jx, jw = jnp.asarray(x), jnp.asarray(w)
        lax = jax.lax
        return ((lambda: polyconv.conv_general_dilated(jx, jw, (1,), "VALID").block_until_ready()),
                (lambda: lax.conv_general_dilated(jx, jw, (1,), "VALID").block_until_ready()))
    if backend == "mlx":
        import mlx.core as mx

        from .calls import synced

        mx_x, mx_w = mx.array(x.reshape(1, 8, 1)), mx.array(w.reshape(1, 3, 1))  # NWC, OWI
        conv_general, dn = mx.conv_general, ("NWC", "OWI", "NWC")
        return (synced(lambda: polyconv.conv_general_dilated(mx_x, mx_w, (1,), "VALID", dimension_numbers=dn), mx.eval),
                synced(lambda: conv_general(mx_x, mx_w), mx.eval))
    raise ValueError(f"no fixed-cost measurement for backend {backend!r} (have: {', '.join(BACKENDS)})")


def measure(backend: str, budget: float = 2.0) -> dict[str, Any]:
    """Microseconds per call of both sides (interleaved, in this process), their difference and ratio."""
    from .timing import time_pair

    mine, native = calls(backend)
    a, b = mine(), native()  # the same values on both sides
    import numpy as np

    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    t_mine, t_native = time_pair(mine, native, budget)
    return {"backend": backend, "native": BACKENDS[backend], "polyconv_us": t_mine * 1e6,
            "native_us": t_native * 1e6, "over_us": (t_mine - t_native) * 1e6, "ratio": t_mine / t_native}


def run_overhead(backends: list[str], budget: float = 2.0) -> list[dict[str, Any]]:
    """:func:`measure` for each backend of ``backends`` it knows, each in a fresh process."""
    rows = []
    for backend in backends:
        if backend not in BACKENDS:
            continue
        proc = subprocess.run([sys.executable, "-m", "polyconv.bench.overhead"],
                              input=json.dumps({"backend": backend, "budget": budget}),
                              capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"polyconv bench: timing the fixed cost on {backend!r} failed:\n{proc.stderr[-4000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def format_overhead(rows: list[dict[str, Any]]) -> str:
    """The fixed-cost table as text.

    >>> print(format_overhead([{"backend": "torch", "native": "F.conv1d", "polyconv_us": 5.0,
    ...                         "native_us": 4.0, "over_us": 1.0, "ratio": 1.25}]))
    fixed cost of a repeated tiny call (same shapes, dtypes and arguments; both sides interleaved in one process):
      torch: polyconv 5.00 us, F.conv1d 4.00 us: +1.00 us (ratio 1.250)
    """
    lines = ["fixed cost of a repeated tiny call (same shapes, dtypes and arguments; "
             "both sides interleaved in one process):"]
    lines += [f"  {r['backend']}: polyconv {r['polyconv_us']:.2f} us, {r['native']} {r['native_us']:.2f} us: "
              f"{r['over_us']:+.2f} us (ratio {r['ratio']:.3f})" for r in rows]
    return "\n".join(lines)


def _main() -> None:
    request = json.loads(sys.stdin.read())
    print(json.dumps(measure(request["backend"], request["budget"])))


if __name__ == "__main__":
    _main()
