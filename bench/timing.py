"""Measurements: interleaved timing of two calls, the peak memory of one, and
this machine's float32 matrix-product rate."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["time_pair", "peak_extra_bytes", "numpy_peak", "matmul_rate"]


def time_pair(a: Callable[[], Any], b: Callable[[], Any], budget: float) -> tuple[float, float]:
    """Median seconds per call of ``a`` and ``b``, timed alternately."""
    for _ in range(2):
        a(), b()
    t0 = time.perf_counter()
    a()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(0.02 / one))  # blocks of about 20 ms
    repeats = max(5, min(31, int(budget / (2 * one * inner))))
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


def matmul_rate(seconds: float = 1.0) -> float:
    """This machine's float32 matrix-product rate with NumPy, in GFLOP/s."""
    import numpy as np

    n = 1024
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t0 = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t0)
    return 2.0 * n**3 / statistics.median(times) / 1e9
