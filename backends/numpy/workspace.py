"""Scratch buffers kept between calls, one set per thread.

A freshly allocated buffer of a few megabytes costs its page faults on every
call (the allocator hands large blocks back to the system), which is a
sizeable part of a millisecond convolution.  The strategies therefore take
their chunk buffers from a small per-thread pool, one buffer per *role*
(slab, windows, result, product), grown as needed and reused.  Buffers larger
than :data:`MAX_POOLED_BYTES` are allocated for the call and freed after it,
so the pool never holds more than ``4 * MAX_POOLED_BYTES`` per thread (in
practice a few times the strategies' chunk budgets).  :func:`release` frees
the calling thread's pool.

A buffer's contents are undefined when it is handed out; nothing the caller
receives ever aliases one.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["buffer", "release", "MAX_POOLED_BYTES"]

#: Largest buffer kept for reuse.
MAX_POOLED_BYTES = 32 << 20

_local = threading.local()


def buffer(role: str, count: int, dtype: np.dtype) -> np.ndarray:
    """A 1-d array of ``count`` elements of ``dtype``, contents undefined, reused
    by later calls on this thread asking for the same ``role``."""
    nbytes = count * dtype.itemsize
    if nbytes > MAX_POOLED_BYTES:
        return np.empty(count, dtype)
    pool: dict[str, np.ndarray] | None = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    raw = pool.get(role)
    if raw is None or raw.nbytes < nbytes:
        raw = pool[role] = np.empty(max(nbytes, 1), np.uint8)
    return raw[:nbytes].view(dtype)


def release() -> None:
    """Free the calling thread's buffers."""
    _local.pool = {}
