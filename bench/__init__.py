"""``python -m polyconv bench``: polyconv beside each framework's own convolution.

For every shape of :data:`SUITE` and every backend asked for, the same
operands go through polyconv and through the framework's own operation
(``torch.nn.functional.conv*d`` / ``conv_transpose*d``; ``jax.lax`` under
``jax.jit``; for the NumPy backend, which has no native counterpart, PyTorch's
CPU convolution and jitted ``jax.lax`` on copies of the same arrays).  The two
are timed interleaved, repeat by repeat, after a warm-up; the report gives
each side's median time, GFLOP/s, the ratio polyconv / native, and each
GFLOP/s as a fraction of this machine's float32 matrix-product rate, measured
in the same run.  For the NumPy backend it also reports the peak of the
memory that a call allocates beyond its result, as ``tracemalloc`` sees NumPy's
allocations (measured on one extra call, outside the timing, after a warm-up
call and with the backend's reusable scratch buffers freed, so they count).

This module imports frameworks (it is a tool, not the core); nothing in
``polyconv`` imports it except the command line.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Shape", "SUITE", "run", "main_args"]


@dataclass(frozen=True)
class Shape:
    """One benchmark convolution, in PyTorch's terms (``NC<spatial>``, ``OI<spatial>``)."""

    name: str
    lhs: tuple[int, ...]
    rhs: tuple[int, ...]
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    transpose: bool = False  # rhs is then (C_in, C_out / groups, *k), as conv_transpose*d takes it
    output_padding: int = 0

    @property
    def nspatial(self) -> int:
        return len(self.lhs) - 2

    def out_spatial(self) -> tuple[int, ...]:
        k = self.rhs[2:]
        if self.transpose:
            return tuple((s - 1) * self.stride - 2 * self.padding + self.dilation * (kk - 1) + self.output_padding + 1
                         for s, kk in zip(self.lhs[2:], k))
        return tuple((s + 2 * self.padding - self.dilation * (kk - 1) - 1) // self.stride + 1
                     for s, kk in zip(self.lhs[2:], k))

    def flops(self) -> float:
        """Multiply-adds times two, counting only products with input elements (not inserted zeros)."""
        n, c = self.lhs[0], self.lhs[1]
        taps = math.prod(self.rhs[2:])
        if self.transpose:
            out_c = self.rhs[1] * self.groups
            return 2.0 * n * math.prod(self.lhs[2:]) * c * (out_c // self.groups) * taps
        return 2.0 * n * self.rhs[0] * math.prod(self.out_spatial()) * (c // self.groups) * taps


SUITE: tuple[Shape, ...] = (
    Shape("resnet 3x3 64->64 56x56 b8", (8, 64, 56, 56), (64, 64, 3, 3), padding=1),
    Shape("stem 7x7/2 3->64 224x224", (1, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3),
    Shape("pointwise 1x1 256->64 56x56", (8, 256, 56, 56), (64, 256, 1, 1)),
    Shape("depthwise 3x3 128ch 56x56", (8, 128, 56, 56), (128, 1, 3, 3), padding=1, groups=128),
    Shape("grouped 3x3 32 groups 256ch 28x28", (8, 256, 28, 28), (256, 8, 3, 3), padding=1, groups=32),
    Shape("dilated 3x3 rate 2 64ch 56x56", (8, 64, 56, 56), (64, 64, 3, 3), padding=2, dilation=2),
    Shape("1-d k=5 128ch 2048", (8, 128, 2048), (128, 128, 5), padding=2),
    Shape("3-d 3x3x3 16->32 32^3", (2, 16, 32, 32, 32), (32, 16, 3, 3, 3), padding=1),
    Shape("transposed 2x upsample 64->32 28x28", (8, 64, 28, 28), (64, 32, 4, 4), stride=2, padding=1,
          transpose=True),
    Shape("tiny 1ch 8x8 3x3", (1, 1, 8, 8), (1, 1, 3, 3), padding=1),
)


# -- timing ----------------------------------------------------------------------------

def _time_pair(a: Callable[[], Any], b: Callable[[], Any], budget: float) -> tuple[float, float]:
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


def _numpy_peak(call: Callable[[], Any]) -> int:
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
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t0 = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t0)
    return 2.0 * n**3 / statistics.median(times) / 1e9


# -- the calls --------------------------------------------------------------------------

def _lax_style_call(ops: Any, shape: Shape, lhs: Any, rhs: Any) -> Callable[[], Any]:
    """The shape's convolution through ``ops``: polyconv or ``jax.lax``, which take the same arguments."""
    n = shape.nspatial
    spatial = "DHW"[3 - n:]
    # the transposed convolution's weight is the forward convolution's: O = the input's channels
    dn = ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    if shape.transpose:
        # PyTorch's transposed convolution with padding p is the convolution of the input
        # dilated by the stride, padded by d*(k-1) - p on each side, with the flipped kernel
        pads = tuple((shape.dilation * (k - 1) - shape.padding,
                      shape.dilation * (k - 1) - shape.padding + shape.output_padding) for k in shape.rhs[2:])
        return lambda: ops.conv_transpose(lhs, rhs, (shape.stride,) * n, pads, rhs_dilation=(shape.dilation,) * n,
                                          dimension_numbers=dn, transpose_kernel=True)
    return lambda: ops.conv_general_dilated(
        lhs, rhs, (shape.stride,) * n, ((shape.padding, shape.padding),) * n, rhs_dilation=(shape.dilation,) * n,
        dimension_numbers=dn, feature_group_count=shape.groups)


def _polyconv_call(shape: Shape, lhs: Any, rhs: Any) -> Callable[[], Any]:
    import polyconv

    return _lax_style_call(polyconv, shape, lhs, rhs)


def _torch_call(shape: Shape, x: Any, w: Any) -> Callable[[], Any]:
    import torch.nn.functional as F

    n = shape.nspatial
    if shape.transpose:
        f = getattr(F, f"conv_transpose{n}d")
        return lambda: f(x, w, stride=shape.stride, padding=shape.padding, output_padding=shape.output_padding,
                         groups=shape.groups, dilation=shape.dilation)
    f = getattr(F, f"conv{n}d")
    return lambda: f(x, w, stride=shape.stride, padding=shape.padding, dilation=shape.dilation, groups=shape.groups)


def _jitted(ops: Any, shape: Shape, x: Any, w: Any) -> Callable[[], Any]:
    """:func:`_lax_style_call` of ``ops`` under ``jax.jit``, waiting for the result."""
    import jax

    f = jax.jit(lambda a, b: _lax_style_call(ops, shape, a, b)())
    return lambda: f(x, w).block_until_ready()


def _pairs(backend: str, shape: Shape, rng: Any) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """``(native name, polyconv call, native call)`` for one backend and shape."""
    import numpy as np

    x = rng.standard_normal(shape.lhs, dtype=np.float32)
    w = rng.standard_normal(shape.rhs, dtype=np.float32)
    if backend == "torch":
        import torch

        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        return [("torch.nn.functional", _polyconv_call(shape, tx, tw), _torch_call(shape, tx, tw))]
    if backend == "jax":
        import jax.numpy as jnp

        jx, jw = jnp.asarray(x), jnp.asarray(w)
        import jax

        import polyconv

        return [("jax.lax (jit)", _jitted(polyconv, shape, jx, jw), _jitted(jax.lax, shape, jx, jw))]
    if backend == "numpy":
        out = []
        mine = _polyconv_call(shape, x, w)
        if _importable("torch"):
            import torch

            out.append(("torch CPU", mine, _torch_call(shape, torch.from_numpy(x), torch.from_numpy(w))))
        if _importable("jax"):
            import jax
            import jax.numpy as jnp

            out.append(("jax.lax CPU (jit)", mine, _jitted(jax.lax, shape, jnp.asarray(x), jnp.asarray(w))))
        return out
    if backend == "cupy":  # against PyTorch's CUDA convolution (cuDNN) on the same GPU memory
        import cupy
        import torch

        if not torch.cuda.is_available():
            return []
        cx, cw = cupy.asarray(x), cupy.asarray(w)
        sync = cupy.cuda.Device().synchronize
        return [("torch CUDA", _synced(_polyconv_call(shape, cx, cw), sync),
                 _synced(_torch_call(shape, torch.from_dlpack(cx), torch.from_dlpack(cw)), sync))]
    raise ValueError(f"no benchmark for backend {backend!r}")


def _synced(call: Callable[[], Any], sync: Callable[[], Any]) -> Callable[[], Any]:
    """``call`` that waits for the device to finish before returning (GPU timings)."""
    def synced() -> Any:
        out = call()
        sync()
        return out

    return synced


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# -- running ----------------------------------------------------------------------------

def _progress(i: int, total: int, label: str) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    done = width * i // max(total, 1)
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{total} {label[:50]:50s}")
    sys.stderr.flush()
    if i == total:
        sys.stderr.write("\n")


def run(backends: list[str], shapes: tuple[Shape, ...] = SUITE, budget: float = 2.0,
        threads: int | None = None) -> dict[str, Any]:
    """Run the suite; returns the report (what ``--json`` writes)."""
    import numpy as np

    if threads is not None and _importable("torch"):
        import torch

        torch.set_num_threads(threads)
    rate = matmul_rate()
    rng = np.random.default_rng(0)
    results = []
    jobs = [(b, s) for b in backends for s in shapes]
    for i, (backend, shape) in enumerate(jobs):
        _progress(i, len(jobs), f"{backend}: {shape.name}")
        pairs = _pairs(backend, shape, rng)
        # tracemalloc sees NumPy's allocations only: the NumPy backend's peak memory
        peak = _numpy_peak(pairs[0][1]) if backend == "numpy" and pairs else None
        for native_name, mine, native in pairs:
            t_mine, t_native = _time_pair(mine, native, budget)
            flops = shape.flops()
            results.append({
                "backend": backend, "shape": shape.name, "native": native_name,
                "polyconv_s": t_mine, "native_s": t_native, "ratio": t_mine / t_native,
                "polyconv_peak_extra_bytes": peak,
                "polyconv_gflops": flops / t_mine / 1e9, "native_gflops": flops / t_native / 1e9,
                "polyconv_of_matmul": flops / t_mine / 1e9 / rate, "native_of_matmul": flops / t_native / 1e9 / rate,
                "spec": asdict(shape),
            })
    _progress(len(jobs), len(jobs), "done")
    return {"matmul_gflops": rate, "threads": threads, "results": results}


def _fmt_time(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} us"


def _fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MiB"


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table, with the median ratio per backend and native op."""
    lines = [f"float32 matrix-product rate: {report['matmul_gflops']:.1f} GFLOP/s "
             f"(threads: {report['threads'] or 'default'})"]
    header = ["backend", "shape", "vs", "polyconv", "native", "ratio", "GFLOP/s", "of matmul", "peak extra"]
    rows = [[r["backend"], r["shape"], r["native"], _fmt_time(r["polyconv_s"]), _fmt_time(r["native_s"]),
             f"{r['ratio']:.3f}", f"{r['polyconv_gflops']:.1f} / {r['native_gflops']:.1f}",
             f"{r['polyconv_of_matmul']:.2f} / {r['native_of_matmul']:.2f}",
             _fmt_bytes(r.get("polyconv_peak_extra_bytes"))] for r in report["results"]]
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    groups: dict[tuple[str, str], list[float]] = {}
    for r in report["results"]:
        groups.setdefault((r["backend"], r["native"]), []).append(r["ratio"])
    for (backend, native), ratios in groups.items():
        lines.append(f"median ratio {backend} / {native}: {statistics.median(ratios):.3f} "
                     f"(max {max(ratios):.3f}, {len(ratios)} shapes)")
    return "\n".join(lines)


def main_args(backend: str | None, json_file: str | None, budget: float, threads: int | None,
              only: str | None) -> int:
    """Entry point of ``python -m polyconv bench``."""
    from polyconv.registry import registry

    available = [b for b in ("numpy", "torch", "jax", "cupy") if registry.try_load(b) is not None]
    if backend is not None:
        if backend not in available:
            print(f"polyconv bench: backend {backend!r} is not available here "
                  f"(available: {', '.join(available)})", file=sys.stderr)
            return 2
        backends = [backend]
    else:
        backends = available
    shapes = tuple(s for s in SUITE if only is None or only.lower() in s.name.lower())
    report = run(backends, shapes, budget, threads)
    print(format_report(report))
    if json_file:
        with open(json_file, "w") as f:
            json.dump(report, f, indent=2)
    return 0
