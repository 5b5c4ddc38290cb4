"""The FFT convolution itself, with any array namespace that has the ``fft`` extension.

:func:`convolve` takes the canonical views (input ``(N', G, C_g, *S)``,
kernel ``(G, O_g, C_g, *K)``) and a :class:`.geometry.SpectralPlan`, and
returns the live hull of the output, ``(N', G, O_g, *hull)``, in the compute
dtype.  The transforms go one axis at a time (``rfft``/``irfft`` along the
last axis of real operands, ``fft``/``ifft`` along the others and for
complex ones).  In the frequency domain each group is a matrix product
per frequency, ``(N', C_g) @ (C_g, O_g)`` (a broadcast product when
``C_g == 1``: depthwise); the batch is taken ``chunk`` images at a time so
that the transforms stay within the workspace (:mod:`.decision` sizes it).

With ``split`` threads and a single chunk (one image), each pass is cut
into ``split`` pieces along another axis, which the threads transform into
their parts of one result (NumPy's functions take ``out=``; only the NumPy
backend splits).

The namespace ``xp`` (NumPy, ``array_api_compat.torch``, CuPy) provides
``astype``, ``zeros``, ``empty``, ``flip``, ``reshape``, ``permute_dims``, ``matmul``,
``concat``, ``where``, ``asarray``, ``all``, ``sum``, ``cumulative_sum`` and
``fft.rfft``/``irfft``/``fft``/``ifft``, and its arrays take in-place
additions into slices (the running sums of :func:`window_counts`).  The
operands are never written to; the dilated kernel is built in a fresh array.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from polyconv.zero_padding import pad_axis

from .geometry import AxisPlan, SpectralPlan

__all__ = ["convolve", "magnitudes", "nonzero_products", "window_counts", "running_sum", "dead_mask", "RunChunks"]

#: ``run(work, indices)``: ``work(i)`` for every index (see :func:`convolve`).
RunChunks = Callable[[Callable[[int], None], Sequence[int]], None]


def convolve(xp: Any, x: Any, w: Any, p: SpectralPlan, compute: Any, complex_: bool, chunk: int,
             device: Any = None, run: RunChunks | None = None, split: int = 1) -> Any:
    """The live hull of the convolution of canonical ``x`` and ``w`` (see the module docstring).

    ``compute`` is the namespace's real or complex dtype to compute in,
    ``complex_`` whether it is complex, ``chunk`` the images per transform.
    ``run(work, indices)`` calls ``work(i)`` for each index, in any order or
    on several threads (NumPy's transforms release the GIL); None runs them
    one after the other.  ``split > 1`` (with ``run``, and transform
    functions that take ``out=``, as NumPy's do) cuts each pass into that
    many pieces when the batch is a single chunk, and the kernel's passes
    always.

    When an operand holds a zero, the elements all of whose products are
    zero are made exactly zero, as a direct sum leaves them: the result is
    kept where the count of nonzero products is positive.  With a kernel free
    of zeros that count is the nonzero input elements each window reads
    (:func:`window_counts`: box sums, no transform); otherwise the same
    convolution of the operands' nonzero indicators counts them (integers,
    which float64 transforms give to far better than 0.5), a second
    transform of everything.  Operands without a zero pay one
    ``count_nonzero`` each.
    """
    y = _convolve(xp, x, w, p, compute, complex_, chunk, device, run, split)
    count = nonzero_products(xp, x, w, p, chunk, device, run, split)
    if count is not None:
        y = xp.where(count > 0.5, y, xp.zeros((), dtype=y.dtype, device=device))
    return y


def nonzero_products(xp: Any, x: Any, w: Any, p: SpectralPlan, chunk: int, device: Any = None,
                     run: RunChunks | None = None, split: int = 1) -> Any | None:
    """How many nonzero products each output of the hull sums (broadcasting
    over ``(N', G, O_g, *hull)``), or None when neither operand holds a zero
    (then every output of the hull but the dead ones has some).  With a
    kernel free of zeros, the nonzero input elements each window reads
    (:func:`window_counts`, exact integers); otherwise the convolution of the
    operands' nonzero indicators (float64 transforms: integers to far
    better than 0.5)."""
    kernel_zeros = _has_zero(xp, w)
    if not (kernel_zeros or _has_zero(xp, x)):
        return None
    if not kernel_zeros:  # every product of a nonzero input element is nonzero: count those
        return window_counts(xp, x, p, device)
    real = xp.float64
    return _convolve(xp, xp.astype(x != 0, real), xp.astype(w != 0, real), p, real, False, chunk, device, run, split)


def magnitudes(xp: Any, x: Any, w: Any, p: SpectralPlan, chunk: int, device: Any = None,
               run: RunChunks | None = None, split: int = 1) -> Any:
    """The convolution of ``|x|`` and ``|w|`` by float64 transforms:
    ``(N', G, O_g, *hull)``, each output's magnitude (the sum of its
    products' absolute values), to within the transforms' rounding (for
    :mod:`.accuracy`)."""
    real = xp.float64
    return _convolve(xp, xp.astype(xp.abs(x), real), xp.astype(xp.abs(w), real), p, real, False, chunk, device,
                     run, split)


def _has_zero(xp: Any, a: Any) -> bool:
    """Whether ``a`` holds a zero (``count_nonzero``: no temporary array)."""
    size: int = math.prod(a.shape)
    return int(xp.count_nonzero(a)) < size


def window_counts(xp: Any, x: Any, p: SpectralPlan, device: Any = None) -> Any:
    """How many nonzero input elements the window of each live output reads,
    over the group's channels: ``(N', G, 1, *hull)`` integers (with a kernel
    free of zeros, the output's nonzero products).

    The window is a box (a dilated one), so the count is separable: a box sum
    along one axis at a time, each the difference of two running sums taken
    along every ``dilation``-th element; no transform.

    >>> from polyconv.backends.fft.geometry import spectral_plan
    >>> from polyconv.spec.canonical import Problem
    >>> p = spectral_plan(Problem(1, 1, 1, 1, (6,), (2,), (3,), (2,), (2,), (1,)))  # stride 2, dilation 2, padding 1
    >>> x = np.array([0., 5, 0, 0, 7, 0]).reshape(1, 1, 1, 6)
    >>> window_counts(np, x, p)[0, 0, 0].tolist()  # windows (-1, 1), (1, 3), (3, 5)
    [1, 1, 0]
    """
    x = x[(slice(None),) * 3 + tuple(slice(*a.read) for a in p.axes)]
    bound = p.cg * math.prod(a.live * a.stride + a.extent + 2 * a.dilation for a in p.axes)  # > any running sum
    dtype = xp.int32 if bound < 2**31 else xp.int64
    count = xp.sum(xp.astype(x != 0, dtype), axis=2, keepdims=True, dtype=dtype)
    for i, a in enumerate(p.axes):
        count = _box_sum(xp, count, 3 + i, a, device)
    return count


def _box_sum(xp: Any, c: Any, axis: int, a: AxisPlan, device: Any) -> Any:
    """Along ``axis`` (the read slice of axis plan ``a``), the sums over each
    live output's window: ``window`` elements ``dilation`` apart, starting
    ``stride`` apart, with the padding the windows reach as zeros."""
    d, s = a.dilation, a.stride
    taps = (a.extent - 1) // d + 1
    left = a.extent - 1 - a.first  # padding before the read slice, down to the first window's start
    span = (a.live - 1) * s + a.extent  # from the first window's start to the last window's end
    n = c.shape[axis]
    total = -(-(d + span) // d) * d  # d zeros first (the running sums start from zero), then a multiple of d
    c = pad_axis(xp, c, axis, d + left, total - d - left - n, device)
    shape = tuple(c.shape)
    # running sums along each residue modulo d: split the axis into (total / d, d) and sum along the first
    split = (*shape[:axis], total // d, d, *shape[axis + 1:]) if d > 1 else shape
    running = xp.reshape(running_sum(xp, xp.reshape(c, split), axis), shape)

    def at(start: int) -> Any:
        index = [slice(None)] * len(shape)
        index[axis] = slice(start, start + (a.live - 1) * s + 1, s)
        return running[tuple(index)]

    return at(taps * d) - at(0)  # window j: running[j*s + taps*d] - running[j*s]


def running_sum(xp: Any, c: Any, axis: int) -> Any:
    """The running sums of ``c`` (a fresh array, overwritten) along ``axis``.
    Along the last axis, the namespace's ``cumulative_sum``; along another, one
    slice added into the next at a time (whole slices: faster than NumPy's
    accumulation across a strided axis: 1.6 ms against 8.7 ms for 95 slices
    of 24064 int32 here)."""
    if axis == c.ndim - 1:
        return xp.cumulative_sum(c, axis=axis, dtype=c.dtype)
    before = (slice(None),) * axis
    for i in range(1, c.shape[axis]):
        c[before + (i,)] += c[before + (i - 1,)]
    return c


def _convolve(xp: Any, x: Any, w: Any, p: SpectralPlan, compute: Any, complex_: bool, chunk: int,
              device: Any = None, run: RunChunks | None = None, split: int = 1) -> Any:
    n = len(p.axes)
    spatial = tuple(range(3, 3 + n))
    lengths = p.lengths
    starts = range(0, p.batch, chunk)
    threaded = _Passes(xp, device, run, split)
    alone = _Passes(xp, device, None, 1)
    passes = threaded if len(starts) == 1 else alone  # several chunks: the threads take whole chunks

    x = x[(slice(None),) * 3 + tuple(slice(*a.read) for a in p.axes)]
    if x.dtype != compute:
        x = xp.astype(x, compute)
    w = xp.astype(w, compute) if w.dtype != compute else w
    if any(a.dilation > 1 for a in p.axes):
        stuffed = xp.zeros((*w.shape[:3], *(a.extent for a in p.axes)), dtype=compute, device=device)
        stuffed[(slice(None),) * 3 + tuple(slice(None, None, a.dilation) for a in p.axes)] = w
        w = stuffed
    w = xp.flip(w, axis=spatial)
    kernel = _forward(threaded, w, lengths, spatial, complex_)  # (G, O_g, C_g, *F)
    freq = tuple(kernel.shape[3:])
    points = int(np.prod(freq))
    kernel = xp.reshape(kernel, (p.groups, p.og, p.cg, points))
    if p.cg == 1:
        kernel = kernel[:, :, 0, :]  # (G, O_g, F)
    else:
        kernel = xp.permute_dims(kernel, (0, 3, 2, 1))  # (G, F, C_g, O_g)

    mask = dead_mask(xp, p, device)
    pieces: list[Any] = [None] * len(starts)

    def work(i: int) -> None:
        b0 = starts[i]
        spectrum = _forward(passes, x[b0:b0 + chunk], lengths, spatial, complex_)  # (n, G, C_g, *F)
        m = spectrum.shape[0]
        spectrum = xp.reshape(spectrum, (m, p.groups, p.cg, points))
        if p.cg == 1:
            product = spectrum * kernel  # (n, G, 1, F) * (G, O_g, F)
        else:
            product = xp.matmul(xp.permute_dims(spectrum, (1, 3, 0, 2)), kernel)  # (G, F, n, O_g)
            product = xp.permute_dims(product, (2, 0, 3, 1))
        product = xp.reshape(product, (m, p.groups, p.og, *freq))
        piece = _inverse(passes, product, p, complex_)
        pieces[i] = piece if mask is None else piece * mask

    if run is None or len(starts) == 1:
        for i in range(len(starts)):
            work(i)
    else:
        run(work, list(range(len(starts))))
    return pieces[0] if len(pieces) == 1 else xp.concat(pieces, axis=0)


class _Passes:
    """One-axis passes of the transforms in namespace ``xp``: each on the
    calling thread, or cut into ``split`` pieces along another axis (the
    longest) for ``run``'s threads."""

    def __init__(self, xp: Any, device: Any, run: RunChunks | None, split: int) -> None:
        self.xp, self.device, self.run, self.split = xp, device, run, split

    def __call__(self, name: str, a: Any, n: int, axis: int) -> Any:
        """``xp.fft.<name>(a, n=n, axis=axis)``."""
        xp = self.xp
        fn = getattr(xp.fft, name)
        along = max((i for i in range(a.ndim) if i != axis), key=lambda i: a.shape[i])  # canonical: 4+ axes
        if self.run is None or self.split < 2 or a.shape[along] < 2 * self.split:
            return fn(a, n=n, axis=axis)
        shape = list(a.shape)
        shape[axis] = n // 2 + 1 if name == "rfft" else n
        real = name == "irfft"  # the transforms run in float64 (the error rule): float64 or complex128 results
        out = xp.empty(tuple(shape), dtype=xp.float64 if real else xp.complex128, device=self.device)
        size = a.shape[along]
        bounds = [size * k // self.split for k in range(self.split + 1)]

        def piece(k: int) -> None:
            index = [slice(None)] * a.ndim
            index[along] = slice(bounds[k], bounds[k + 1])
            fn(a[tuple(index)], n=n, axis=axis, out=out[tuple(index)])

        self.run(piece, list(range(self.split)))
        return out


def _forward(passes: _Passes, a: Any, lengths: tuple[int, ...], axes: tuple[int, ...], complex_: bool) -> Any:
    """The transform of ``a`` zero-padded to ``lengths`` along ``axes``, one axis
    at a time, the last first: each 1-d pass runs over the other axes at the
    sizes they have so far, so the padding of the axes not yet transformed
    is never transformed (a small kernel costs a fraction of a full-size
    transform)."""
    last = len(axes) - 1
    a = passes("fft" if complex_ else "rfft", a, lengths[last], axes[last])
    for i in range(last - 1, -1, -1):
        a = passes("fft", a, lengths[i], axes[i])
    return a


def _inverse(passes: _Passes, spectrum: Any, p: SpectralPlan, complex_: bool) -> Any:
    """The outputs kept from the inverse transform of ``spectrum``: one axis at
    a time, the first first, each axis cut to its kept outputs (every
    ``stride``-th from ``first``) before the next pass, so that the last
    (real) pass runs only over kept rows."""
    n = len(p.axes)
    for i, a in enumerate(p.axes):
        axis = 3 + i
        name = "irfft" if i == n - 1 and not complex_ else "ifft"
        spectrum = passes(name, spectrum, a.length, axis)
        index = [slice(None)] * (3 + n)
        index[axis] = slice(a.first, a.first + (a.live - 1) * a.stride + 1, a.stride)
        spectrum = spectrum[tuple(index)]
    return spectrum


def dead_mask(xp: Any, p: SpectralPlan, device: Any) -> Any:
    """A 0/1 array broadcasting over the hull, zero at the dead outputs inside it, or None."""
    if not any(a.dead for a in p.axes):
        return None
    mask = np.ones(tuple(a.live for a in p.axes), np.float32)
    for i, a in enumerate(p.axes):
        index = [slice(None)] * len(p.axes)
        index[i] = list(a.dead)  # type: ignore[call-overload]
        mask[tuple(index)] = 0
    return xp.asarray(mask, device=device)
