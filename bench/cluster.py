"""``python -m polyconv bench --backend dask``: one large convolution on a local cluster.

The same convolution (float32, NCHW, 3x3, ``'SAME'``) runs on the NumPy
backend on the whole array in this process, then on the dask backend on a
``dask.distributed.LocalCluster`` of 1 and of 2 worker processes (loopback
only, no dashboard exposed beyond it), each worker with its share of the
cores for its BLAS and the NumPy backend's threads.  The input is made on
the workers (``dask.array.random``, the same values as the NumPy side's) and
persisted there first; each timing is ``y.persist()`` until every block is
done (the result stays on the workers, then is released), the median of the
repeats; the time of the final ``compute()`` that fetches the result for
the comparison is not counted.  The
report gives the times, the speed-up over NumPy, the graph's task count,
each worker's peak resident memory (sampled every 5 ms by a thread on the
worker: the persisted input's share, the results held during a run, the
tasks' temporaries) beside its resident memory after start-up, and the largest difference from the NumPy
result.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

__all__ = ["run_cluster", "format_cluster"]

SHAPE = (8, 16, 1024, 1024)  # float32: 512 MiB
CHUNKS = (2, 16, 512, 512)  # 32 MiB each, 16 chunks
KERNEL = (16, 16, 3, 3)


_PEAK = {"rss": 0}


def _sample_rss(interval: float = 0.005) -> int:
    """Start sampling this process's resident memory every ``interval`` seconds
    (a daemon thread, run on each worker); the current RSS."""
    import importlib
    import threading

    psutil: Any = importlib.import_module("psutil")  # a dependency of dask.distributed, untyped
    proc = psutil.Process()

    def loop() -> None:
        while True:
            _PEAK["rss"] = max(_PEAK["rss"], proc.memory_info().rss)
            time.sleep(interval)

    threading.Thread(target=loop, daemon=True, name="polyconv-bench-rss").start()
    rss: int = proc.memory_info().rss
    return rss


def _peak_rss() -> int:
    """The largest resident memory the sampler has seen in this process."""
    return _PEAK["rss"]


def _timed(call: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _input(da: Any, shape: tuple[int, ...], chunks: tuple[int, ...]) -> Any:
    """The input as a dask expression: the same values wherever it is computed."""
    import numpy as np

    return da.random.default_rng(0).standard_normal(shape, chunks=chunks, dtype=np.float32)


def run_cluster(workers: tuple[int, ...] = (1, 2), repeats: int = 3, shape: tuple[int, ...] = SHAPE,
                chunks: tuple[int, ...] = CHUNKS, kernel: tuple[int, ...] = KERNEL) -> dict[str, Any]:
    """Run the convolution on NumPy and on clusters of ``workers`` processes; the report.

    ``shape``, ``chunks`` and ``kernel`` (NCHW, OIHW) default to the bench's large
    case; the tests run a small one."""
    import dask
    import dask.array as da
    import numpy as np

    import polyconv

    with dask.config.set(scheduler="threads"):
        x = _input(da, shape, chunks).compute()
    w = np.random.default_rng(1).standard_normal(kernel, dtype=np.float32)
    args = ((1, 1), "SAME")
    expected = polyconv.conv_general_dilated(x, w, *args)
    numpy_s = _timed(lambda: polyconv.conv_general_dilated(x, w, *args), repeats)
    cores = os.cpu_count() or 1
    runs = []
    for n in workers:
        runs.append(_on_cluster(n, max(1, cores // n), w, args, expected, repeats, shape, chunks))
    return {"shape": shape, "chunks": chunks, "kernel": kernel, "input_bytes": int(np.prod(shape)) * 4,
            "numpy_s": numpy_s, "cores": cores, "clusters": runs}


def _on_cluster(n: int, threads: int, w: Any, args: Any, expected: Any, repeats: int, shape: tuple[int, ...],
                chunks: tuple[int, ...]) -> dict[str, Any]:
    import importlib

    import numpy as np

    import polyconv

    # dask and distributed have no type annotations: used as Any
    da: Any = importlib.import_module("dask.array")
    distributed: Any = importlib.import_module("distributed")
    Client, LocalCluster, wait = distributed.Client, distributed.LocalCluster, distributed.wait

    env = {v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                     "POLYCONV_NUMPY_THREADS")}
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", env=env) as cluster, Client(cluster) as client:
        baseline = list(client.run(_sample_rss).values())  # after start-up, before any data
        xd = client.persist(_input(da, shape, chunks))  # made on the workers: nothing large crosses from here
        wait(xd)
        y = polyconv.conv_general_dilated(xd, w, *args)
        tasks = len(y.__dask_graph__()) - len(xd.__dask_graph__())
        runs = iter(range(1 + repeats))

        def once() -> None:
            # a kernel of another name per run: new keys, so nothing of an earlier run is reused
            kernel = da.from_array(w, chunks=-1, name=f"bench-kernel-{next(runs)}")
            done = client.persist(polyconv.conv_general_dilated(xd, kernel, *args))
            wait(done)
            del done

        once()  # warm-up: imports and the NumPy backend's first plans on every worker
        seconds = _timed(once, repeats)
        peaks = list(client.run(_peak_rss).values())  # before the result is gathered for the check
        got = y.compute()
    return {"workers": n, "threads_per_worker_blas": threads, "seconds": seconds, "tasks": tasks,
            "blocks": y.npartitions, "peak_rss_per_worker": peaks, "start_rss_per_worker": baseline,
            "max_abs_diff": float(np.max(np.abs(got - expected)))}


def format_cluster(report: dict[str, Any]) -> str:
    """The report as text."""
    mib = 2 ** 20
    lines = [
        f"dask backend: conv_general_dilated of a {report['shape']} float32 input "
        f"({report['input_bytes'] / mib:.0f} MiB, chunks {report['chunks']}), kernel {report['kernel']}, "
        f"stride 1, 'SAME'; {report['cores']} cores",
        f"numpy backend, whole array, this process: {report['numpy_s'] * 1e3:.0f} ms",
        "",
        "| workers | BLAS threads each | time (ms) | NumPy / dask | tasks | output blocks | peak RSS per worker (MiB) "
        "| at start-up (MiB) | max abs diff from NumPy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["clusters"]:
        peaks = ", ".join(f"{p / mib:.0f}" for p in r["peak_rss_per_worker"])
        start = ", ".join(f"{p / mib:.0f}" for p in r["start_rss_per_worker"])
        lines.append(
            f"| {r['workers']} | {r['threads_per_worker_blas']} | {r['seconds'] * 1e3:.0f} | "
            f"{report['numpy_s'] / r['seconds']:.2f} | {r['tasks']} | {r['blocks']} | {peaks} | {start} | "
            f"{r['max_abs_diff']:.2g} |"
        )
    return "\n".join(lines)
