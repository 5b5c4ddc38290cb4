"""1x1 convolutions without padding: one batched matrix product, no copy of the input.

A window of one tap that never reads padding is a matrix product per image
and group: ``y[n, g] = w[g] @ x[n, g, :, positions]``, the positions being a
strided view of the input (the stride picks every ``s``-th element, a
negative padding crops).  NumPy's ``matmul`` takes the view as it is when
BLAS can read it (a contiguous position axis, as in ``NC<spatial>``
layouts; or a contiguous channel axis, as in channels-last ones, which it
passes transposed), and the result is written straight into the output.
"""

from __future__ import annotations

import numpy as np

from polyconv.spec.canonical import Problem

__all__ = ["applies", "run"]


def applies(problem: Problem) -> bool:
    """A window of one tap on every axis whose outputs all read input elements."""
    return all(
        k == 1 and lo <= 0 and (y - 1) * s - lo < size
        for k, lo, y, s, size in zip(problem.window, problem.low, problem.out, problem.strides, problem.sizes)
    )


def _matrix_view(a: np.ndarray, view: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``a`` reshaped to ``shape`` as a view of the same memory as ``view``, whose
    last two axes BLAS can read (one of them contiguous); None if it cannot be."""
    r = a.reshape(shape)
    if r.base is None or r.base is not view.base:  # a copy
        return None
    item = r.itemsize
    if r.strides[-1] != item and r.strides[-2] != item and min(r.shape[-2:]) > 1:
        return None
    return r


def run(problem: Problem, x: np.ndarray, w: np.ndarray, y: np.ndarray, compute: np.dtype,
        max_copy: int | None = None) -> bool:
    """Fill ``y`` (``(N', G, O_g, *Y)``) with the convolution of ``x``
    (``(N', G, C_g, *S)``) and ``w`` (``(G, O_g, C_g, 1, ...)``), computed in ``compute``.

    Returns False, doing nothing, when that would take a copy of the input or a
    temporary result of more than ``max_copy`` bytes (the caller then uses a
    chunked strategy): an input of another dtype than ``compute``, positions
    that do not merge into one axis of a view, or a layout BLAS cannot read.
    """
    index = tuple(slice(-lo, -lo + (yy - 1) * s + 1, s) for lo, yy, s in zip(problem.low, problem.out, problem.strides))
    window = (slice(None), slice(None), slice(None), *index)
    xs = x[window]
    n, g, cg, og = problem.batch, problem.groups, problem.cg, problem.og
    positions = problem.positions
    shape_x, shape_y = (n, g, cg, positions), (n, g, og, positions)
    xm = _matrix_view(xs, x, shape_x) if xs.dtype == compute else None
    ym = _matrix_view(y, y, shape_y) if y.dtype == compute else None
    if max_copy is not None and (
        (xm is None and xs.size * compute.itemsize > max_copy) or (ym is None and y.size * compute.itemsize > max_copy)
    ):
        return False
    if xm is None:
        xm = np.ascontiguousarray(xs, dtype=compute).reshape(shape_x)
    kernel = w.reshape(g, og, cg)
    if kernel.dtype != compute:
        kernel = kernel.astype(compute)
    if ym is None:  # a temporary result
        np.copyto(y, np.matmul(kernel, xm).reshape(y.shape), casting="unsafe")
        return True
    item = ym.itemsize
    if ym.strides[3] != item and og > 1:  # channels last: the product's rows are the positions
        np.matmul(xm.swapaxes(2, 3), kernel.swapaxes(1, 2), out=ym.swapaxes(2, 3))
    else:
        np.matmul(kernel, xm, out=ym)
    return True
