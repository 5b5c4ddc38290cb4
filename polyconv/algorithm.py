"""Whether convolutions may be computed by FFT: ``auto``, ``always`` or ``never``.

The backends that have an FFT path (NumPy, PyTorch, CuPy) choose between it
and their direct strategies per spec, by a cost model
(:mod:`polyconv.calibration` holds its constants).  :func:`use_fft` overrides
the choice for the calls made inside a ``with`` block:

``"auto"`` (the default)
    FFT where the error rule allows it and the cost model finds it cheaper:
    operands accumulated in float32 or complex64 (float16, bfloat16,
    float32, complex64; the transforms run in float64 or complex128, more
    accurate than float32 accumulation at every precision, ``'highest'``
    included), all of them finite.
``"always"``
    FFT for every call the error rule allows, whatever the cost model says:
    the same dtypes, finite operands (an infinity or NaN would spread over
    the whole result through the transform, so such calls still run
    directly), and transforms of one image that fit the backend's workspace.
``"never"``
    The direct strategies only.

64-bit floating and complex, integer and boolean convolutions are never
computed by FFT (``docs/fft.md`` gives the rule).  The mode lives
in a ``contextvars.ContextVar`` (thread- and task-safe, nesting) and is part
of the key of every cached dispatch decision.

Examples
--------
>>> import numpy as np, polyconv
>>> x, w = np.ones((1, 1, 64), np.float32), np.ones((1, 1, 33), np.float32)
>>> with polyconv.use_fft("always"):
...     y = polyconv.conv_general_dilated(x, w, (1,), "VALID")
>>> np.allclose(y, 33.0), polyconv.fft_mode()
(True, 'auto')
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from .errors import ConvArgumentError, ConvTypeError

__all__ = ["FFT_MODES", "use_fft", "fft_mode"]

FFT_MODES = ("auto", "always", "never")

_mode: contextvars.ContextVar[str] = contextvars.ContextVar("polyconv_fft", default="auto")


@contextlib.contextmanager
def use_fft(mode: str) -> Iterator[None]:
    """Compute the convolutions inside the ``with`` block by FFT ``"always"``,
    ``"never"``, or as the cost model decides (``"auto"``).

    Parameters
    ----------
    mode
        One of :data:`FFT_MODES`.

    Examples
    --------
    >>> import numpy as np, polyconv
    >>> with polyconv.use_fft("never"):
    ...     polyconv.fft_mode()
    'never'
    """
    if not isinstance(mode, str):
        raise ConvTypeError("use_fft", "mode", "must be one of 'auto', 'always', 'never'", mode)
    if mode not in FFT_MODES:
        raise ConvArgumentError("use_fft", "mode", "must be one of 'auto', 'always', 'never'", mode)
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


def fft_mode() -> str:
    """The mode set by the innermost :func:`use_fft` (``"auto"`` outside any)."""
    return _mode.get()
