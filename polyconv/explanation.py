"""How a call would be computed, without computing it: :func:`explain`.

In the spirit of SciPy's ``choose_conv_method``: given the same arguments
as one of polyconv's ops, :func:`explain` resolves the backend, parses and
checks the arguments exactly as the call would (the same polyconv errors),
and reports which path the call takes (the backend's runner for the spec,
its own method, or the derivation from ``conv_general_dilated``), which
strategy the backend picks and why, and the FFT decision with the cost
model's estimates of both paths, where the backend took one.  The
``polyconv`` logger names the same strategy at DEBUG level when a call's
decision is made.

A backend reports its strategy through :meth:`polyconv.Backend.explain`
(the NumPy, PyTorch and JAX backends do); for the others the path is named.
The FFT decision is the one every backend with an FFT path takes; per call,
operands holding an infinity or NaN (and, in ``auto`` mode, operands whose
range breaks the FFT error rule) still run the direct strategy instead, as
``docs/fft.md`` explains.

Examples
--------
>>> import numpy as np, polyconv
>>> x = np.ones((8, 32, 256, 256), np.float32)
>>> w = np.ones((32, 1, 31, 31), np.float32)
>>> e = polyconv.explain("conv_general_dilated", x, w, (1, 1), "SAME", feature_group_count=32)
>>> e.backend, e.path, e.strategy
('numpy', 'runner', 'fft')
>>> e.fft[0].use, e.fft[0].fft_seconds < e.fft[0].direct_seconds
(True, True)
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .algorithm import use_fft
from .errors import ConvArgumentError, ConvTypeError
from .operations import OPERATIONS, native_method

__all__ = ["Explanation", "Strategy", "explain"]


@dataclass(frozen=True)
class Strategy:
    """What a backend reports from :meth:`polyconv.Backend.explain`: the strategy's
    name, why it applies, and the FFT decisions it took (``Decision`` objects
    of the backend's FFT path: ``use``, ``why``, ``fft_seconds``,
    ``direct_seconds``)."""

    name: str
    why: str
    fft: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Explanation:
    """How one call is computed.

    Attributes
    ----------
    op, backend
        The op and the backend that runs it.
    path
        ``'runner'`` (the backend's function for this spec), ``'native'``
        (its method for the op) or ``'derived'`` (from
        ``conv_general_dilated``, :mod:`polyconv.derive`).
    strategy, why
        The backend's strategy and its reason, where the backend reports one
        (else ``strategy`` is the path and ``why`` says so).
    fft
        The FFT decisions taken for this call's convolutions.
    parts
        For a derived op: the explanation of each convolution it runs.
    """

    op: str
    backend: str
    path: str
    strategy: str
    why: str
    fft: tuple[Any, ...] = ()
    parts: tuple[Explanation, ...] = field(default=())

    def __str__(self) -> str:
        lines = [f"{self.op} on the {self.backend!r} backend ({self.path}): {self.strategy}", f"  why: {self.why}"]
        for d in self.fft:
            estimate = "" if d.fft_seconds is None else \
                f" (estimates: FFT {d.fft_seconds * 1e3:.3g} ms, direct {d.direct_seconds * 1e3:.3g} ms)"
            lines.append(f"  FFT: {'yes' if d.use else 'no'}, {d.why}{estimate}")
        for part in self.parts:
            lines += ["  " + line for line in str(part).splitlines()]
        return "\n".join(lines)


def explain(op: str | Callable[..., Any], *args: Any, **kwargs: Any) -> Explanation:
    """How ``op(*args, **kwargs)`` would be computed, without computing it.

    Parameters
    ----------
    op
        One of polyconv's ops, by name (``'conv_general_dilated'``...) or as
        the function itself.
    *args, **kwargs
        The call's arguments, as the op takes them (``backend=`` included).

    Returns
    -------
    Explanation
        The backend, the path, the strategy and why, the FFT decisions; its
        ``str`` is a readable summary.

    Raises
    ------
    polyconv.errors.PolyconvError
        Whatever the call itself would raise for these arguments.

    Examples
    --------
    >>> import numpy as np, polyconv
    >>> x, w = np.ones((1, 1, 8)), np.ones((1, 1, 3))
    >>> print(polyconv.explain(polyconv.conv_general_dilated, x, w, (1,), "SAME"))
    ... # doctest: +ELLIPSIS
    conv_general_dilated on the 'numpy' backend (runner): small
      why: small: ... gathered elements, at most ...
    """
    from . import ops  # the public functions, their signatures and their setup

    name = getattr(op, "__name__", op)
    if not isinstance(name, str):
        raise ConvTypeError("explain", "op", "must be the name of a polyconv op or the op itself", op)
    if name not in OPERATIONS:
        raise ConvArgumentError("explain", "op", f"must be one of {', '.join(OPERATIONS)}", name)
    operation = OPERATIONS[name]
    try:
        bound = inspect.signature(getattr(ops, name)).bind(*args, **kwargs)
    except TypeError as exc:
        raise ConvTypeError("explain", "args", f"do not fit {name}'s parameters ({exc})") from None
    bound.apply_defaults()
    values = dict(bound.arguments)
    arrays = tuple(values.pop(n) for n in operation.operands)
    backend = values.pop("backend")
    be, _, spec, runner = ops._setup(operation, arrays, backend, tuple(values.values()))
    return _explain(be, operation.name, spec, runner is not None)


def _explain(be: Any, name: str, spec: Any, has_runner: bool) -> Explanation:
    operation = OPERATIONS[name]
    if has_runner:
        path = "runner"
    elif operation.derive is None or native_method(be, name) is not None:
        path = "native"
    else:
        path = "derived"
    reported = getattr(be, "explain", None)
    strategy = reported(name, spec) if reported is not None and path != "derived" else None
    if strategy is not None:
        return Explanation(name, be.name, path, strategy.name, strategy.why, tuple(strategy.fft))
    if path != "derived":
        return Explanation(name, be.name, path, path, f"the {be.name!r} backend's own {name} (it reports no strategy)")
    # the derivations call the backend's conv_general_dilated method; patches (and the patches of a
    # local convolution) never by FFT, their elements being exact copies of input elements
    never = name in ("conv_general_dilated_patches", "conv_general_dilated_local")
    with use_fft("never") if never else contextlib.nullcontext():
        parts = tuple(_explain(be, "conv_general_dilated", conv, False) for conv in derived_convolutions(name, spec))
    return Explanation(name, be.name, path, "derived", "derived from conv_general_dilated (polyconv.derive)",
                       parts=parts)


def derived_convolutions(name: str, spec: Any) -> tuple[Any, ...]:
    """The ``conv_general_dilated`` specs a derivation of op ``name`` runs (see :mod:`polyconv.derive`)."""
    if name == "conv_general_dilated_vjp":
        from .spec import vjp_lhs_plan, vjp_rhs_plan

        return tuple(p.conv for p in (vjp_lhs_plan(spec), vjp_rhs_plan(spec)) if p.conv is not None)
    return (OPERATIONS[name].primitive(spec),)
