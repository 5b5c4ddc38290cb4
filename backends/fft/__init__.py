"""Convolution by FFT, shared by the backends that have transforms (NumPy, PyTorch, CuPy).

:mod:`.geometry` works out, from the canonical problem alone, what to
transform and what to keep (pure integer arithmetic); :mod:`.decision` is
the one decision whether FFT is used (the mode, the dtype's error rule, the
memory and the cost model), which every backend with an FFT path takes and
:func:`polyconv.explain` shows; :mod:`.accuracy` checks, per call in
``auto`` mode, that the operands' range lets the transform meet the direct
sum's tolerance at every output; :mod:`.transforms` computes it with any array
namespace that has the array API's ``fft`` extension, on canonical views;
:mod:`.whole` runs a whole spec that way (the torch and CuPy backends; the
NumPy backend takes the decision per canonical problem).  The mode
(``auto``, ``always``, ``never``) is :func:`polyconv.use_fft`'s.

This package is not a backend: it registers no entry point.
"""

from __future__ import annotations

from .accuracy import finite, fits
from .decision import Decision, decide, depthwise_class, eligible
from .geometry import SpectralPlan, spectral_plan
from .transforms import convolve
from .whole import Prepared, decision, prepare, run

__all__ = ["SpectralPlan", "spectral_plan", "Decision", "decide", "depthwise_class", "eligible", "fits", "finite",
           "convolve", "Prepared", "prepare", "decision", "run"]
