"""The error rule of the automatic FFT path, checked per call on the operands' values.

A direct sum's error at one output element is about ``sqrt(K) * u`` times
that element's *own* magnitude ``M_j``, the sum of its products' absolute
values (``K`` products, ``u`` the unit roundoff of the accumulation); the
conformance suite allows ``4 * sqrt(K) * u * M_j`` (plus the rounding of the
result, and the output dtype's smallest normal number for zeros).  A
transform's error does not follow ``M_j``: it is spread over the whole
result at the scale of the whole problem, so an output much smaller than the
largest ones (a region of small values beside large ones, the tail taps of a
kernel at a padded edge, subnormal values) can get rounding noise far above
its own tolerance.  ``use_fft('auto')`` therefore takes FFT only when
:func:`fits` proves, for this call's operands, that

    E = KAPPA * log2(prod(L)) * u64 * R   <=   4 * sqrt(K) * u32 * M_j + tiny

at every output that has a nonzero product, where:

* ``L`` are the transform lengths, ``u64 = 2**-53`` (the transforms run in
  float64), ``u32 = 2**-24`` (float32 accumulation, the only kind FFT
  takes) and ``tiny`` the output dtype's smallest normal number;
* ``R`` bounds the size of the whole problem for one image, group and
  output channel: ``sum_c sqrt(n) * max|x_c| * ||w_oc||_2`` over the group's
  input channels ``c`` (``n`` input elements per channel read by the
  transform, ``max|x_c|`` and the Euclidean norm of the kernel ``w_oc``).
  The transform's error in any element, measured on random, structured
  (constants, impulses, ramps, aligned sinusoids) and wide-range operands
  in one and two dimensions, stayed below ``0.28 * log2(prod(L)) * u64``
  times the smaller ``sum_c ||x_c||_2 ||w_oc||_2``, so ``KAPPA = 4`` leaves a
  margin of more than 14, and ``sqrt(n) * max|x_c| >= ||x_c||_2`` more;
* ``M_j`` is first bounded from below without computing it: for a box ``B``
  of taps, ``M_j >= min_B |w| * sum_B |x|`` (the kernel's smallest
  magnitude in the box, over the group's output and input channels, times
  the sum of the input's magnitudes under the box, over the group's
  channels), and that sum is bounded from below by the input elements of a
  sparse grid under the box (every ``r``-th on each axis, a few per window;
  float64 running sums less their rounding bound).  The boxes tried: the
  whole kernel, then boxes halving around the kernel's largest tap (for
  kernels with small tails, such as Gaussians).  This costs a pass over the
  input and work on a grid of a ninth of it or less: 3 to 10 percent of an
  FFT convolution on the benchmark's large kernels;
* where that bound falls short (wide-range operands, dilated kernels,
  outputs at a far padded edge that read a few input elements), ``M_j``
  itself, as the float64 FFT convolution of ``|x|`` and ``|w|``, whose own
  error is at most ``E`` (the same norms): ``M_j >= computed - E``.  This
  costs one more FFT convolution; the direct path it may save is ten or
  more times slower;
* an output none of whose products is nonzero is exactly zero on the FFT
  path too (:func:`.conv.convolve`): it needs no bound.

A non-finite operand fails the rule too (the scan of ``max |x|``, as
``max(max x, -min x)``, keeps an infinity or a NaN): a transform would
spread it over the whole result.  The scan replaces the finiteness check
the call made before.

``use_fft('always')`` does not apply this rule (only the finiteness
check): it trades accuracy for speed wherever the transform is possible.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .geometry import SpectralPlan
from .transforms import RunChunks, dead_mask, magnitudes, nonzero_products, running_sum

__all__ = ["fits", "KAPPA", "finite"]

#: The factor of the transform's error bound (see the module docstring).
KAPPA = 4.0
#: Unit roundoffs: the transforms (float64) and the accumulation the tolerance allows (float32).
U64, U32 = 2.0**-53, 2.0**-24
#: The smallest normal number of each output dtype (the tolerance's absolute floor).
TINY = {"float16": 6.1e-5, "bfloat16": 1.2e-38, "float32": 1.2e-38, "complex64": 1.2e-38}
#: Boxes tried after the whole kernel: each halves the last one, around the largest tap.
MAX_HALVINGS = 8


def finite(xp: Any, *arrays: Any) -> bool:
    """Whether every element of ``arrays`` is finite (the check of ``use_fft('always')``)."""
    return all(bool(xp.all(xp.isfinite(a))) for a in arrays)


def fits(xp: Any, x: Any, w: Any, p: SpectralPlan, out_dtype: str, chunk: int, device: Any = None,
         run: RunChunks | None = None, split: int = 1) -> bool:
    """Whether the FFT convolution of canonical ``x`` ``(N', G, C_g, *S)`` and
    ``w`` ``(G, O_g, C_g, *K)`` planned by ``p`` is within the conformance
    tolerance of the direct sum at every output (see the module docstring),
    its result being rounded to ``out_dtype``.  False for non-finite operands.
    ``chunk``, ``run`` and ``split`` are :func:`.conv.convolve`'s, for the
    magnitudes' transforms when they are needed.

    >>> from polyconv.backends.fft.geometry import spectral_plan
    >>> from polyconv.spec.canonical import Problem
    >>> p = spectral_plan(Problem(1, 1, 1, 1, (64,), (15,), (64,), (1,), (1,), (7,)))
    >>> w = np.ones((1, 1, 1, 15), np.float32)
    >>> fits(np, np.ones((1, 1, 1, 64), np.float32), w, p, "float32", 1)
    True
    >>> wide = np.ones((1, 1, 1, 64), np.float32)
    >>> wide[..., :32] = 1e8          # a region of 1e8 beside ones
    >>> wide[..., 32:] = 1e-3         # and one of 1e-3
    >>> fits(np, wide, w, p, "float32", 1)
    False
    """
    spatial = tuple(range(3, 3 + len(p.axes)))
    xr = x[(slice(None),) * 3 + tuple(slice(*a.read) for a in p.axes)]
    b = xp.astype(xp.abs(w), xp.float64)
    if spatial and not xp.isdtype(xr.dtype, "complex floating"):  # max |x| as max(max x, -min x): no |x| written
        peak = xp.maximum(xp.astype(xp.max(xr, axis=spatial), xp.float64),
                          -xp.astype(xp.min(xr, axis=spatial), xp.float64))
    else:
        peak = xp.astype(xp.max(xp.abs(xr), axis=spatial) if spatial else xp.abs(xr), xp.float64)  # (N', G, C_g)
    if not (bool(xp.all(xp.isfinite(peak))) and bool(xp.all(xp.isfinite(b)))):  # max and min keep a NaN
        return False
    n = math.prod(hi - lo for lo, hi in (a_.read for a_ in p.axes))
    kernel_norm = xp.sqrt(xp.sum(b * b, axis=spatial))  # (G, O_g, C_g)
    size = xp.sum(peak[:, :, None, :] * kernel_norm[None, :, :, :], axis=3) * math.sqrt(n)  # R: (N', G, O_g)
    error = KAPPA * math.log2(max(p.points(), 2)) * U64 * size  # E: (N', G, O_g)
    tiny = TINY.get(out_dtype, 1.2e-38)
    if bool(xp.all(error <= tiny)):
        return True
    coef = 4.0 * math.sqrt(p.cg * math.prod(p.window)) * U32
    floor = xp.max((error - tiny) / coef, axis=2)  # (N', G): every output's M_j must reach this
    for box in _boxes(xp, b, p):  # on a sparse grid of the input: enough for ordinary operands, and cheap
        smallest = _smallest(xp, b, box)
        if bool(xp.all(smallest > 0)):
            least = _sampled_least_sums(xp, xr, p, box)
            if least is not None and bool(xp.all(smallest[None, :] * least >= floor)):
                return True
    # Output by output: the magnitudes themselves, by one more (float64) transform of |x| and |w|, whose
    # own error is at most E: M_j >= computed - E.
    expand = (*error.shape, *(1,) * len(p.axes))
    magnitude = magnitudes(xp, x, w, p, chunk, device, run, split) - xp.reshape(error, expand)
    short = magnitude * coef + tiny < xp.reshape(error, expand)
    if not bool(xp.any(short)):
        return True
    count = nonzero_products(xp, x, w, p, chunk, device, run, split)  # an output with none is an exact zero
    if count is None:  # every output of the hull has a nonzero product, but the dead ones (dilation)
        mask = dead_mask(xp, p, device)
        return mask is not None and not bool(xp.any(xp.logical_and(short, mask > 0.5)))
    return not bool(xp.any(xp.logical_and(short, count > 0.5)))


def _smallest(xp: Any, b: Any, box: tuple[tuple[int, int], ...]) -> Any:
    """``(G,)``: the smallest kernel magnitude in ``box``, over each group's output and input channels."""
    inside = b[(slice(None),) * 3 + tuple(slice(k0, k1) for k0, k1 in box)]
    return xp.min(xp.reshape(inside, (inside.shape[0], -1)), axis=1)


def _sampled_least_sums(xp: Any, xr: Any, p: SpectralPlan, box: tuple[tuple[int, int], ...]) -> Any:
    """``(N', G)``: a lower bound of ``sum_box |x|`` (over the group's channels)
    at every output, from a sparse grid: every ``r``-th input element on each
    axis (``r`` an eighth of the box, or up to 3 for boxes of 8 to 23 taps),
    so that each window holds four to ten of them per axis; the sum of those under the window (running sums
    on the grid), less their rounding bound, is at most the window's.  None
    when some window holds no grid point (an output that reads only a few
    input elements, at a far padded edge) or the kernel is dilated: then
    only the exact box sums can tell."""
    if any(ax.dilation != 1 for ax in p.axes):
        return None
    steps = [max(1, (k1 - k0) // 8, min(3, (k1 - k0) // 4)) for k0, k1 in box]
    ranges = []
    for ax, (k0, k1), r in zip(p.axes, box, steps):
        n = ax.read[1] - ax.read[0]
        starts = np.arange(ax.live) * ax.stride - (ax.extent - 1 - ax.first)  # window j's first tap, read coordinates
        first = -(-np.maximum(starts + k0, 0) // r)  # the first grid point in the box's part of the window
        stop = -(-np.minimum(starts + k1, n) // r)
        # Consecutive windows share most of their grid points: for a run of windows moving half a box
        # in all, the points common to all of them (from the last one's first to the first one's stop)
        # bound each one's sum from below, and there are few such runs to sum.
        run = max(1, (k1 - k0) // (2 * ax.stride))
        ends = np.minimum(np.arange(run - 1, ax.live + run - 1, run), ax.live - 1)
        first, stop = (first[ends], stop[::run]) if bool(np.all(stop[::run] > first[ends])) else (first, stop)
        if bool(np.any(stop <= first)):
            return None
        change = np.ones(len(first), dtype=bool)  # ranges repeat in runs: each is summed once
        change[1:] = (first[1:] != first[:-1]) | (stop[1:] != stop[:-1])
        ranges.append((first[change], stop[change]))
    device = getattr(xr, "device", None)
    grid = xp.abs(xr[(slice(None),) * 3 + tuple(slice(None, None, r) for r in steps)])
    sums = xp.sum(grid, axis=2, dtype=xp.float64) if grid.shape[2] > 1 else xp.astype(grid[:, :, 0], xp.float64)
    n_axes = len(p.axes)
    total = xp.sum(sums, axis=tuple(range(2, 2 + n_axes)))  # (N', G)
    for i in reversed(range(n_axes)):  # the last axis first: the others then run over fewer sums
        first, stop = ranges[i]
        axis = 2 + i
        shape = list(sums.shape)
        shape[axis] = 1
        zero = xp.zeros(tuple(shape), dtype=xp.float64, device=device)
        padded = xp.concat([zero, sums], axis=axis)
        small = math.prod(shape) <= 1 << 16  # few lines: one accumulation beats a Python loop over slices
        running = xp.cumulative_sum(padded, axis=axis) if small else running_sum(xp, padded, axis)
        sums = xp.take(running, xp.asarray(stop, device=device), axis=axis) - \
            xp.take(running, xp.asarray(first, device=device), axis=axis)
    least = xp.min(xp.reshape(sums, (*sums.shape[:2], -1)), axis=2)
    return least - 4.0 * (sum(grid.shape[3:]) + xr.shape[2] + n_axes) * U64 * total


def _boxes(xp: Any, b: Any, p: SpectralPlan) -> list[tuple[tuple[int, int], ...]]:
    """The tap boxes tried: the whole kernel, then boxes halving around its largest tap."""
    window = p.window
    boxes = [tuple((0, k) for k in window)]
    if math.prod(window) == 1:
        return boxes
    profile = xp.sum(b, axis=(0, 1, 2))  # the kernel's magnitude per tap, over groups and channels
    centre = np.unravel_index(int(xp.argmax(xp.reshape(profile, (-1,)))), window)
    sizes = list(window)
    for _ in range(MAX_HALVINGS):
        sizes = [max(1, -(-size // 2)) for size in sizes]
        box = tuple((min(max(int(c) - size // 2, 0), k - size), min(max(int(c) - size // 2, 0), k - size) + size)
                    for c, size, k in zip(centre, sizes, window))
        if box != boxes[-1]:
            boxes.append(box)
        if all(size == 1 for size in sizes):
            break
    return boxes
