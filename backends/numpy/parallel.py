"""Chunks on several threads, for the strategies whose work is NumPy's own loops.

BLAS spreads a matrix product over the cores by itself; NumPy's elementwise
operations and copies run on the calling thread, but release the GIL while
they run.  :func:`run_chunks` hands the chunks of such a strategy (each
writes its own part of the output, with its own thread's scratch buffers) to
a pool of threads.

The number of threads is ``POLYCONV_NUMPY_THREADS`` when set (read at each
call), else the number of cores this process may run on, at most
:data:`MAX_THREADS`; 1 runs everything on the calling thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["threads", "run_chunks", "MAX_THREADS"]

#: Threads used at most when ``POLYCONV_NUMPY_THREADS`` is not set.
MAX_THREADS = 8

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_pool_key = (0, 0)  # (threads, process id): a forked child makes its own pool
_lock = threading.Lock()


def threads() -> int:
    """The number of threads :func:`run_chunks` uses."""
    env = os.environ.get("POLYCONV_NUMPY_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_THREADS, cores))


def _executor(size: int) -> ThreadPoolExecutor:
    """The pool of ``size`` threads; the caller holds :data:`_lock` until it
    has submitted its work, so no other thread shuts the pool down between
    handing it out and its receiving the work.  Replacing a pool (another
    size, or a forked child) shuts the old one down without waiting: work
    already submitted to it still completes."""
    global _pool, _pool_key
    key = (size, os.getpid())
    if _pool is None or _pool_key != key:
        if _pool is not None and _pool_key[1] == key[1]:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(size, thread_name_prefix="polyconv-numpy")
        _pool_key = key
    return _pool


def run_chunks(work: Callable[[T], None], chunks: Sequence[T], min_chunks: int = 2) -> None:
    """``work(chunk)`` for every chunk: on the calling thread alone when there
    is one thread or fewer than ``min_chunks`` chunks per thread, else in
    contiguous runs of chunks, one on the calling thread and one on each of
    the pool's threads.

    Safe to call from several threads while ``POLYCONV_NUMPY_THREADS``
    changes: the pool is taken and the runs submitted under one lock, and a
    pool replaced after that still finishes the runs it was given.
    """
    n = threads()
    if n == 1 or len(chunks) < n * min_chunks or threading.current_thread().name.startswith("polyconv-numpy"):
        for chunk in chunks:
            work(chunk)
        return
    step = -(-len(chunks) // n)
    parts = [chunks[i : i + step] for i in range(0, len(chunks), step)]

    def run(part: Sequence[T]) -> None:
        for chunk in part:
            work(chunk)

    with _lock:
        pool = _executor(n - 1)
        futures = [pool.submit(run, part) for part in parts[1:]]
    try:
        run(parts[0])
    finally:
        for f in futures:
            f.result()
