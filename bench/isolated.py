"""Each side of the bench timed alone, in a fresh Python process of its own.

Two frameworks in one process interfere: after each call, OpenBLAS's and
PyTorch's OpenMP threads spin for a while, taking the cores from whatever is
timed next, so a ratio of the two measured side by side is not what a user
of either sees.  So :func:`run_side` starts ``python -m polyconv.bench.isolated``
for one side (one of :data:`.calls.SIDES`), which imports that side's
framework alone, makes every shape's operands from a seed of the shape's
name (the same values in every process), times each shape alone
(:func:`.timing.time_one`), measures its framework's float32
matrix-product rate, and prints the timings as JSON; the runner combines
the processes' timings into ratios.  The processes run one after another.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zlib
from typing import Any

from .shapes import Shape

__all__ = ["run_side", "operands"]


def operands(shape: Shape) -> tuple[Any, Any]:
    """The shape's float32 lhs and rhs, drawn from a seed of its name."""
    import numpy as np

    rng = np.random.default_rng(zlib.crc32(shape.name.encode()))
    return rng.standard_normal(shape.lhs, dtype=np.float32), rng.standard_normal(shape.rhs, dtype=np.float32)


def run_side(backend: str, side: str, shapes: tuple[Shape, ...], budget: float, threads: int | None,
             timeout: float = 3600.0) -> dict[str, Any]:
    """Time ``side`` of ``backend``'s comparison on every shape in a fresh process.

    Returns ``{"seconds": [...], "peak_extra_bytes": [...], "strategies": [...],
    "matmul_gflops": median rate, "matmul_best_gflops": best rate}``, one entry per
    shape (None where the side cannot run it); the strategies are
    :func:`.calls.strategy`'s."""
    request = {"backend": backend, "side": side, "budget": budget, "threads": threads,
               "shapes": [dataclasses.asdict(s) for s in shapes]}
    proc = subprocess.run([sys.executable, "-m", "polyconv.bench.isolated"], input=json.dumps(request),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"polyconv bench: the process timing {side!r} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _main() -> None:
    from .calls import FRAMEWORK, side_call, strategy
    from .timing import matmul_rates, numpy_peak, time_one

    request = json.loads(sys.stdin.read())
    backend, side = request["backend"], request["side"]
    if request["threads"] is not None and FRAMEWORK[side].startswith("torch"):
        import torch

        torch.set_num_threads(request["threads"])
    seconds: list[float | None] = []
    peaks: list[int | None] = []
    strategies: list[str | None] = []
    for fields in request["shapes"]:
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        shape = Shape(**kwargs)
        x, w = operands(shape)
        call = side_call(backend, side, shape, x, w)
        if call is None:
            seconds.append(None)
            peaks.append(None)
            strategies.append(None)
            continue
        strategies.append(strategy(side, shape, x, w))
        seconds.append(time_one(call, request["budget"]))
        # tracemalloc sees NumPy's allocations only: the NumPy backend's peak memory
        peaks.append(numpy_peak(call) if side == "polyconv numpy" else None)
    rate, best = matmul_rates(framework=FRAMEWORK[side])
    print(json.dumps({"seconds": seconds, "peak_extra_bytes": peaks, "matmul_gflops": rate,
                      "matmul_best_gflops": best, "strategies": strategies}))


if __name__ == "__main__":
    _main()
