"""Convolution by FFT, shared by the backends that have transforms (NumPy, PyTorch, CuPy).

:mod:`.geometry` works out, from the spec alone, what to transform and what
to keep (pure integer arithmetic); :mod:`.cost` decides, by a cost model and
the dtypes, whether FFT should be used for a spec; :mod:`.accuracy` checks,
per call in ``auto`` mode, that the operands' range lets the transform meet
the direct sum's tolerance at every output; :mod:`.conv` computes it with any
array namespace that has the array API's ``fft`` extension, on canonical
views; :mod:`.spec` runs a whole spec that way (the torch and CuPy
backends; the NumPy backend plans its canonical problems itself).  The mode
(``auto``, ``always``, ``never``) is :func:`polyconv.use_fft`'s.

This package is not a backend: it registers no entry point.
"""

from __future__ import annotations

from .accuracy import finite, fits
from .conv import convolve
from .cost import decide, eligible
from .geometry import SpectralPlan, plan
from .spec import Prepared, prepare, run

__all__ = ["SpectralPlan", "plan", "decide", "eligible", "fits", "finite", "convolve", "Prepared", "prepare", "run"]
