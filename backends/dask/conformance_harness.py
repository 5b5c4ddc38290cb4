"""The dask backend's conformance harness: random chunks, the synchronous scheduler.

Registered as ``dask`` in the entry-point group ``polyconv.harnesses``.
While the suite runs (:meth:`DaskHarness.session`), every operand the suite
makes is chunked at random along every axis (:func:`random_chunks`: chunks
of size 1, chunks smaller than any halo, uneven chunks), seeded by the
operand's bytes so that a failure reproduces, and ``.compute()`` runs on
dask's synchronous scheduler without low-level task fusion (one thread, and
graphs run as built: for the suite's many small graphs, thread hand-offs
and fusing would cost four times the blocks themselves).  The cluster tests
(``tests/test_dask_backend.py``) run dask's defaults.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from polyconv.conformance.harness import Harness

from . import chunking

__all__ = ["DaskHarness", "harness", "random_chunks"]

#: At most this many chunks along one axis, and in all (their product): the graphs
#: stay small enough for the suite's thousands of calls.
MAX_CHUNKS = 4
MAX_TOTAL_CHUNKS = 12


def random_chunks(a: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """Random chunks for every axis of ``a``, seeded by its shape, dtype and bytes.

    The axes are visited in random order; each of size ``n > 1`` is cut into
    up to ``MAX_CHUNKS`` pieces at distinct random points, while the product
    of the counts stays within ``MAX_TOTAL_CHUNKS``; a fifth of the axes stay
    whole, and a quarter of the cut ones get a chunk of size 1 first.

    >>> random_chunks(np.zeros((1, 0, 5)))[:2]
    ((1,), (0,))
    >>> sum(random_chunks(np.arange(10.0))[0])
    10
    """
    digest = hashlib.blake2b(repr((a.shape, a.dtype.str)).encode() + np.ascontiguousarray(a).tobytes(),
                             digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    out: list[tuple[int, ...]] = [(n,) for n in a.shape]
    budget = MAX_TOTAL_CHUNKS
    for axis in rng.permutation(a.ndim):
        n = a.shape[axis]
        most = min(MAX_CHUNKS, n, budget)
        if most <= 1 or rng.random() < 0.2:
            continue
        count = int(rng.integers(2, most + 1))
        cuts = set(int(c) for c in rng.choice(np.arange(1, n), size=count - 1, replace=False))
        if rng.random() < 0.25:
            cuts = set(sorted(cuts)[1:]) | {1}  # a chunk of size 1 first, the count unchanged
        edges = [0, *sorted(cuts), n]
        out[axis] = tuple(b - a for a, b in zip(edges, edges[1:]))
        budget //= len(out[axis])
    return tuple(out)


class DaskHarness(Harness):
    """No compiler, no autodiff; random chunks and the synchronous scheduler in a session."""

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        import dask

        with chunking(random_chunks), dask.config.set({"scheduler": "synchronous", "optimization.fuse.active": False}):
            yield

    def overwrite(self, x: Any, values: Any) -> bool:
        """``x[...] = values``: dask replaces the array's graph, so a lazy result
        made before still reads the old values, and one made after the new.
        An empty array has nothing to change (and dask's ``__setitem__`` fails on one)."""
        if 0 not in x.shape:
            x[...] = values
        return True

    def materialize(self, arrays: Sequence[Any]) -> list[Any]:
        """The arrays computed together, in one graph: a chunk that a result
        passes through unchanged is then the same object as the operand's, which
        :meth:`~polyconv.conformance.harness.Harness.shares_memory` sees."""
        import dask.base

        compute: Any = dask.base.compute  # untyped in dask
        return list(compute(*arrays))


harness = DaskHarness()
