"""Measurements: the timing of one call (:func:`time_one`, what each side's
process runs) or of two interleaved (:func:`time_pair`), the peak memory of
one, and a framework's float32 matrix-product rate on this machine."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["time_one", "time_pair", "peak_extra_bytes", "numpy_peak", "matmul_rate", "matmul_rates"]


def time_one(call: Callable[[], Any], budget: float) -> float:
    """Median seconds per call of ``call``, after two warm-up calls, timed in
    blocks of about 20 ms, 5 to 31 blocks within about ``budget`` seconds."""
    for _ in range(2):
        call()
    t0 = time.perf_counter()
    call()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(0.02 / one))
    repeats = max(5, min(31, int(budget / (one * inner))))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            call()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def time_pair(a: Callable[[], Any], b: Callable[[], Any], budget: float, warmups: int = 2,
              min_repeats: int = 5) -> tuple[float, float]:
    """Median seconds per call of ``a`` and ``b``, timed alternately: after ``warmups``
    calls of each, in blocks of about 20 ms, ``min_repeats`` to 31 blocks of each within
    about ``budget`` seconds."""
    for _ in range(warmups):
        a(), b()
    t0 = time.perf_counter()
    a()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(0.02 / one))  # blocks of about 20 ms
    repeats = max(min_repeats, min(31, int(budget / (2 * one * inner))))
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            a()
        t1 = time.perf_counter()
        for _ in range(inner):
            b()
        t2 = time.perf_counter()
        ta.append((t1 - t0) / inner)
        tb.append((t2 - t1) / inner)
    return statistics.median(ta), statistics.median(tb)


def peak_extra_bytes(call: Callable[[], Any]) -> int:
    """Peak bytes that ``call()`` allocates through Python's and NumPy's allocators
    beyond the result it returns (``tracemalloc``: NumPy arrays, not other frameworks')."""
    import tracemalloc

    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not already:
            tracemalloc.stop()
    return max(0, peak - base - int(getattr(result, "nbytes", 0)))


def numpy_peak(call: Callable[[], Any]) -> int:
    """:func:`peak_extra_bytes` of a NumPy-backend call, once imports and plans are
    warm and with the backend's scratch buffers freed first, so that they count."""
    from polyconv.backends.numpy import workspace

    call()
    workspace.release()
    return peak_extra_bytes(call)


def matmul_rate(seconds: float = 1.0, framework: str = "numpy") -> float:
    """A framework's float32 matrix-product rate here, in GFLOP/s: the median of
    :func:`matmul_rates`."""
    return matmul_rates(seconds, framework)[0]


def matmul_rates(seconds: float = 1.0, framework: str = "numpy") -> tuple[float, float]:
    """A framework's float32 matrix-product rates here, in GFLOP/s: a 1024 x 1024
    product with NumPy (``'numpy'``), ``torch.mm`` (``'torch'``, on the CPU;
    ``'torch CUDA'``), jitted ``jnp.dot`` (``'jax'``), CuPy (``'cupy'``) or
    MLX (``'mlx'``), waited for (a GPU) or evaluated (MLX is lazy), timed
    for about ``seconds``: ``(median, best)``.  The
    best of every framework in a run is the bench's measure of the machine's
    float32 peak (a BLAS product reaches most of the FMA units' rate; no
    convolution computed directly can do more)."""
    import numpy as np

    n = 1024
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    product: Callable[[], Any]
    if framework == "numpy":
        product = lambda: a @ a  # noqa: E731
    elif framework in ("torch", "torch CUDA"):
        import torch

        t = torch.from_numpy(a).to("cuda" if framework == "torch CUDA" else "cpu")
        sync: Any = torch.cuda.synchronize if framework == "torch CUDA" else (lambda: None)
        product = lambda: (torch.mm(t, t), sync())  # noqa: E731
    elif framework == "jax":
        import jax
        import jax.numpy as jnp

        j = jnp.asarray(a)
        dot: Any = jax.jit(jnp.dot)
        product = lambda: dot(j, j).block_until_ready()  # noqa: E731
    elif framework == "mlx":
        import mlx.core as mx

        m = mx.array(a)
        product = lambda: mx.eval(mx.matmul(m, m))  # noqa: E731
    elif framework == "cupy":
        import cupy

        c = cupy.asarray(a)
        product = lambda: (c @ c, cupy.cuda.Device().synchronize())  # noqa: E731
    else:
        raise ValueError(f"no matrix product for framework {framework!r}")
    product()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t0 = time.perf_counter()
        product()
        times.append(time.perf_counter() - t0)
    return 2.0 * n**3 / statistics.median(times) / 1e9, 2.0 * n**3 / min(times) / 1e9
