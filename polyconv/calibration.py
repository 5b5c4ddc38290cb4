"""The constants of the FFT-or-direct cost model, per backend: defaults, or measured here.

``python -m polyconv calibrate`` measures, for each backend with an FFT path,
five rates on this machine and stores them in a JSON file of the user's:

``direct_flops``
    floating-point operations per second (two per multiply-add) of the
    backend's direct convolution on a dense convolution;
``depthwise_flops``, ``depthwise_large_flops``
    the same for depthwise ones (one channel per group) with an 11x11 and a
    31x31 kernel: the direct strategies' rate on them falls as kernels grow
    (a framework's special cases for small kernels stop applying), and the
    cost model interpolates between the two in the logarithm of the taps;
``fft_points``
    the rate of its FFT path's transforms, in one-axis passes over one point
    per second (a transform of ``n`` points along ``d`` axes is ``n * d``
    passes, twice that for complex data), the copies and conversions around
    them included;
``product_flops``
    the rate of the complex matrix products in the frequency domain (eight
    operations per complex multiply-add).

The file is ``$POLYCONV_CALIBRATION`` if set, else
``$XDG_CONFIG_HOME/polyconv/calibration.json`` (``~/.config`` when
``XDG_CONFIG_HOME`` is unset).  It is read once, at the first decision that
needs it, and again after :func:`polyconv.caching.clear`.  Without it (or
for a backend it does not name) the defaults below apply: the NumPy
backend's rates measured on a 2-core x86 machine with AVX-512 (2026),
rounded so that FFT looks slower and the direct path faster than measured,
which makes FFT the choice only where it wins by a margin.

Examples
--------
>>> c = constants("numpy")
>>> c.direct_flops > 0 and c.fft_points > 0
True
"""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import asdict, dataclass, fields
from typing import Any

from . import caching

__all__ = ["Constants", "DEFAULTS", "constants", "path", "save"]


@dataclass(frozen=True)
class Constants:
    """The cost model's rates for one backend (see the module docstring), in operations per second."""

    direct_flops: float
    depthwise_flops: float
    depthwise_large_flops: float
    fft_points: float
    product_flops: float


#: Used where nothing was measured.
DEFAULTS = Constants(direct_flops=150e9, depthwise_flops=12e9, depthwise_large_flops=5e9, fft_points=2.5e8,
                     product_flops=25e9)


def path() -> pathlib.Path:
    """Where the calibration is read and written."""
    explicit = os.environ.get("POLYCONV_CALIBRATION")
    if explicit:
        return pathlib.Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return pathlib.Path(base) / "polyconv" / "calibration.json"


@caching.memoize(1)
def _stored() -> dict[str, Any]:
    try:
        data = json.loads(path().read_text())
    except (OSError, ValueError):
        return {}
    backends = data.get("backends") if isinstance(data, dict) else None
    return backends if isinstance(backends, dict) else {}


def constants(backend: str) -> Constants:
    """The measured constants of ``backend``, or :data:`DEFAULTS`."""
    entry = _stored().get(backend)
    names = [f.name for f in fields(Constants)]
    if isinstance(entry, dict) and all(isinstance(entry.get(n), (int, float)) and entry[n] > 0 for n in names):
        return Constants(**{n: float(entry[n]) for n in names})
    return DEFAULTS


def save(backend: str, measured: Constants, **facts: Any) -> pathlib.Path:
    """Store ``measured`` for ``backend`` (next to any other backend's), with
    ``facts`` (threads, the date), and forget every cached decision."""
    target = path()
    try:
        data = json.loads(target.read_text())
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict) or not isinstance(data.get("backends"), dict):
        data = {"backends": {}}
    data["backends"][backend] = {**asdict(measured), **facts}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    caching.clear()
    return target
