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

Two sides of one framework (polyconv's torch backend and
``torch.nn.functional``, the JAX backend and ``jax.lax``, the MLX backend and
``mlx.core.conv_general``) share their thread pools anyway, so
:func:`run_pair` times them in one process, interleaved
(:func:`.timing.time_pair`): a machine that slows down for a while slows
both alike, and the ratio is what a user of that framework sees.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zlib
from typing import Any

from .shapes import Shape

__all__ = ["run_side", "run_pair", "operands"]


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
    return _run(backend, (side,), shapes, budget, threads, timeout)[0]


def run_pair(backend: str, mine: str, native: str, shapes: tuple[Shape, ...], budget: float,
             threads: int | None, timeout: float = 3600.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time two sides of one framework on every shape in one fresh process, interleaved
    (:func:`.timing.time_pair`); each side's result as :func:`run_side` gives it."""
    first, second = _run(backend, (mine, native), shapes, budget, threads, timeout)
    return first, second


def _run(backend: str, sides: tuple[str, ...], shapes: tuple[Shape, ...], budget: float, threads: int | None,
         timeout: float) -> list[dict[str, Any]]:
    request = {"backend": backend, "sides": list(sides), "budget": budget, "threads": threads,
               "shapes": [dataclasses.asdict(s) for s in shapes]}
    proc = subprocess.run([sys.executable, "-m", "polyconv.bench.isolated"], input=json.dumps(request),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"polyconv bench: the process timing {' and '.join(map(repr, sides))} failed:\n"
                           f"{proc.stderr[-4000:]}")
    result: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _main() -> None:
    from .calls import FRAMEWORK, side_call, strategy
    from .gemm import in_gemm
    from .timing import matmul_rates, numpy_peak, time_one, time_pair

    request = json.loads(sys.stdin.read())
    backend, sides = request["backend"], request["sides"]
    framework = FRAMEWORK[sides[0]]
    if len(sides) > 2 or any(FRAMEWORK[side] != framework for side in sides):
        raise ValueError(f"one process times one side, or two of one framework: got {sides}")
    if request["threads"] is not None and framework.startswith("torch"):
        import torch

        torch.set_num_threads(request["threads"])
    results: list[dict[str, Any]] = [{"seconds": [], "peak_extra_bytes": [], "strategies": [], "in_gemm": []}
                                     for _ in sides]
    for fields in request["shapes"]:
        shape = Shape.from_fields(fields)
        x, w = operands(shape)
        maybe = [side_call(backend, side, shape, x, w) for side in sides]
        calls = [call for call in maybe if call is not None]
        if len(calls) < len(sides):
            for result in results:
                for key in result:
                    result[key].append(None)
            continue
        seconds = [time_one(calls[0], request["budget"])] if len(calls) == 1 else time_pair(
            calls[0], calls[1], request["budget"])
        for side, call, result, t in zip(sides, calls, results, seconds):
            result["strategies"].append(strategy(side, shape, x, w))
            result["seconds"].append(t)
            # tracemalloc sees NumPy's allocations only: the NumPy backend's peak memory
            result["peak_extra_bytes"].append(numpy_peak(call) if side == "polyconv numpy" else None)
            # and its matrix products alone, on operands of the same sizes (what BLAS takes of its time)
            result["in_gemm"].append(in_gemm(shape, call, request["budget"]) if side == "polyconv numpy" else None)
    rate, best = matmul_rates(framework=framework)
    # the machine's peak is NumPy's BLAS product's too, measured here after the timings: a
    # framework whose own product is slow (MLX's CPU build) must not lower the bar
    machine = best if framework == "numpy" or "CUDA" in framework or framework == "cupy" else max(
        best, matmul_rates(framework="numpy")[1])
    for result in results:
        result.update(matmul_gflops=rate, matmul_best_gflops=best, machine_best_gflops=machine)
    print(json.dumps(results))


if __name__ == "__main__":
    _main()
