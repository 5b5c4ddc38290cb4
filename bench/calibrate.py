"""``python -m polyconv calibrate``: the FFT cost model's rates, measured on this machine.

For each backend with an FFT path (NumPy, torch, CuPy) that is installed
and usable here, a fresh process of its own (``python -m
polyconv.bench.calibrate NAME``, so that no other framework's threads
interfere) times five things and prints them as JSON; the rates are then
stored for the user (:func:`polyconv.calibration.save`), and every later
automatic choice between FFT and the direct strategies uses them:

* a dense 9x9 convolution, (4, 32, 64, 64) by (32, 32, 9, 9), FFT forbidden:
  ``direct_flops``;
* a depthwise 11x11 one, (4, 64, 64, 64) by (64, 1, 11, 11), FFT forbidden:
  ``depthwise_flops`` (near where FFT starts to win on such shapes: the
  direct strategies' rate falls as kernels grow, and the rate where the
  choice is close is the one that matters);
* a depthwise 31x31 one, (2, 32, 64, 64) by (32, 1, 31, 31), FFT forbidden:
  ``depthwise_large_flops``;
* the same depthwise convolution by FFT: ``fft_points``, its one-axis
  transform passes per second (the frequency domain's products, timed
  apart, taken off), so that the copies, conversions and checks of the FFT
  path count with its transforms;
* a complex128 batched product (4096, 8, 64) @ (4096, 64, 64), as the
  frequency domain has them: ``product_flops``.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from polyconv.backends.fft.decision import product_ops, transform_passes
from polyconv.backends.fft.geometry import SpectralPlan
from polyconv.backends.fft.whole import prepare

from polyconv.calibration import Constants
from polyconv.spec import conv_spec

from .timing import time_one

__all__ = ["BACKENDS", "measure", "main_args"]

#: The backends with an FFT path.
BACKENDS = ("numpy", "torch", "cupy")


def _framework(backend: str) -> tuple[Any, Callable[[Any], Any], Callable[[], None]]:
    """``(xp, from_numpy, synchronize)`` for ``backend``."""
    if backend == "numpy":
        import numpy as np

        return np, lambda a: a, lambda: None
    if backend == "torch":
        import array_api_compat.torch as torch_xp
        import torch

        return torch_xp, torch.from_numpy, lambda: None
    if backend == "cupy":
        import array_api_compat.cupy as cupy_xp
        import cupy

        return cupy_xp, cupy.asarray, lambda: cupy.cuda.Device().synchronize()
    raise ValueError(f"no FFT path on backend {backend!r}; one of {BACKENDS}")


def measure(backend: str, budget: float = 1.0) -> dict[str, float]:
    """The five rates of ``backend``, measured in this process (see the module docstring)."""
    import numpy as np

    import polyconv

    xp, from_numpy, sync = _framework(backend)
    rng = np.random.default_rng(0)

    def seconds(call: Callable[[], Any]) -> float:
        def synced() -> None:
            call()
            sync()

        return time_one(synced, budget)

    def conv(lhs: tuple[int, ...], rhs: tuple[int, ...], groups: int, mode: str) -> tuple[float, SpectralPlan]:
        """Seconds per call of a "SAME" float32 convolution in FFT ``mode``, and its spectral plan."""
        values = rng.standard_normal(lhs, dtype=np.float32)
        values[values == 0] = 1  # no exact zero: FFT's count of nonzero products is not timed
        x, w = from_numpy(values), from_numpy(rng.standard_normal(rhs, dtype=np.float32))

        def call() -> Any:
            with polyconv.use_fft(mode):
                return polyconv.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=groups,
                                                     backend=backend)

        spec = conv_spec(lhs, rhs, "float32", "float32", (1, 1), "SAME", feature_group_count=groups)
        prepared = prepare(spec, "float32", "always", backend)
        assert prepared is not None
        return seconds(call), prepared.plan

    def rate(seconds_and_plan: tuple[float, SpectralPlan]) -> float:
        """The direct rate: two operations per multiply-add."""
        t, sp = seconds_and_plan
        return 2.0 * sp.macs() / t

    pa = from_numpy(rng.standard_normal((4096, 8, 64)) + 1j * rng.standard_normal((4096, 8, 64)))
    pb = from_numpy(rng.standard_normal((4096, 64, 64)) + 1j * rng.standard_normal((4096, 64, 64)))
    product_flops = 8.0 * 4096 * 8 * 64 * 64 / seconds(lambda: xp.matmul(pa, pb))
    depthwise = ((4, 64, 64, 64), (64, 1, 11, 11), 64)
    spectral, sp = conv(*depthwise, "always")
    products = product_ops(sp, False) / product_flops
    return {
        "direct_flops": rate(conv((4, 32, 64, 64), (32, 32, 9, 9), 1, "never")),
        "depthwise_flops": rate(conv(*depthwise, "never")),
        "depthwise_large_flops": rate(conv((2, 32, 64, 64), (32, 1, 31, 31), 32, "never")),
        "fft_points": transform_passes(sp, False) / max(spectral - products, 0.5 * spectral),
        "product_flops": product_flops,
    }


#: The unit of a rate that is not in floating-point operations per second.
_UNITS = {"fft_points": "G passes/s"}


def _usable(backend: str) -> str | None:
    """Why ``backend`` cannot be calibrated here, or None."""
    from polyconv.registry import registry

    try:
        be = registry.load(backend)
    except Exception as exc:  # not installed, blocked
        return str(exc)
    return be.unavailable_reason()


def main_args(backends: str | None, budget: float, threads: int | None) -> int:
    """Measure each backend in its own process, store the rates, print them."""
    from polyconv import calibration

    names = backends.split(",") if backends else list(BACKENDS)
    stored = 0
    for name in names:
        if name not in BACKENDS:
            print(f"{name}: no FFT path (calibrated backends: {', '.join(BACKENDS)})", file=sys.stderr)
            return 2
        why = _usable(name)
        if why is not None:
            print(f"{name}: skipped ({why})")
            continue
        env = dict(os.environ)
        if threads:
            env.update({k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
        done = subprocess.run([sys.executable, "-m", "polyconv.bench.calibrate", name, str(budget)],
                              capture_output=True, text=True, env=env, timeout=1800)
        if done.returncode != 0:
            print(f"{name}: the measurement failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        rates = json.loads(done.stdout.strip().splitlines()[-1])
        calibration.save(name, Constants(**rates), threads=threads or os.cpu_count(),
                                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        print(f"{name}: " + ", ".join(f"{k} {v / 1e9:.2f} {_UNITS.get(k, 'GFLOP/s')}" for k, v in rates.items()))
        stored += 1
    if stored:
        print(f"stored in {calibration.path()}")
    return 0


if __name__ == "__main__":  # one backend in a process of its own: print its rates as JSON
    print(json.dumps(measure(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 1.0)))
