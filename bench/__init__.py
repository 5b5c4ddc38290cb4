"""``python -m polyconv bench``: polyconv beside each framework's own convolution.

For every shape of :data:`SUITE` and every backend asked for, the same
operands (drawn from a seed of the shape's name) go through polyconv and
through the framework's own operation (``torch.nn.functional.conv*d`` /
``conv_transpose*d``; ``jax.lax`` under ``jax.jit``; ``mlx.core.conv_general``
for MLX, both sides channels-last, MLX's layout; for the NumPy backend,
which has no native counterpart, PyTorch's CPU convolution and jitted
``jax.lax``).  Sides of two frameworks are each timed alone, in a fresh
process of its own, one after another (two frameworks' thread pools in one
process take cores from each other: :mod:`.isolated`); polyconv and its own
framework's op are timed in one fresh process, interleaved, so that a
machine that slows down for a while slows both alike.  Every side is timed
after a warm-up; each process also
measures its framework's float32 matrix-product rate.  The report gives each
side's median time, GFLOP/s, the ratio polyconv / native, and each GFLOP/s as
a fraction of the side's own framework's matrix-product rate.  For the NumPy
backend it also reports the peak of the memory that a call allocates beyond
its result, as ``tracemalloc`` sees NumPy's allocations (measured on one
extra call, outside the timing, after a warm-up call and with the backend's
reusable scratch buffers freed, so they count).  ``--plot FILE.png`` draws
the ratios (:mod:`.plot`).  The run ends with the fixed cost of a repeated
tiny call per backend (:mod:`.overhead`) and, with the JAX backend, the time
of ``jax.grad`` on the depthwise and large-kernel shapes beside
``jax.lax``'s (:mod:`.gradients`).

The work is split by job: :mod:`.shapes` (:class:`Shape`, :data:`SUITE`),
:mod:`.calls` (the sides of each comparison, as calls), :mod:`.timing`
(timing, peak memory, matrix-product rates), :mod:`.gemm` (the NumPy
backend's matrix products timed alone), :mod:`.isolated` (one side in
a process of its own), :mod:`.runner` (:func:`run`: the whole suite into one
report), :mod:`.report` (:func:`format_report`: the report as a text
table), :mod:`.plot` (the chart), :mod:`.overhead` and :mod:`.gradients`
(above), :mod:`.cluster` (``--backend dask``: one large convolution on local
clusters) and :mod:`.command` (:func:`main_args`: the command line's ``bench``).

This package imports frameworks (it is a tool, not the core); nothing in
``polyconv`` imports it except the command line.
"""

from __future__ import annotations

from .command import main_args
from .report import format_report
from .runner import run
from .shapes import SUITE, Shape
from .timing import matmul_rate, peak_extra_bytes

__all__ = ["Shape", "SUITE", "run", "main_args", "format_report", "peak_extra_bytes", "matmul_rate"]
