"""The error classes of polyconv.

Every class subclasses :class:`PolyconvError` and the builtin a user would
catch, so ``except ValueError`` keeps working for code written against NumPy
or JAX.  Argument errors carry the operation, the parameter and the value as
attributes, and format them the same way on every backend:

    conv_general_dilated: window_strides must be a sequence of 2 positive
    integers; got (1, 0)

Where the fix can be told, the message ends with it (the default layout,
the cast, the pairs form of a padding).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PolyconvError",
    "ConvArgumentError",
    "ConvTypeError",
    "ConvShapeError",
    "DtypeMismatchError",
    "UnsupportedDtypeError",
    "UnsupportedFeatureError",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "MixedArraysError",
    "OutputTooLargeError",
]


class PolyconvError(Exception):
    """Base class of every error polyconv raises."""


class _ArgumentErrorMixin:
    """Formats ``op: param <problem>; got value`` and keeps the parts."""

    op: str
    param: str
    value: Any

    def __init__(
        self, op: str, param: str, problem: str, value: Any = ..., got: str | None = None, hint: str | None = None
    ) -> None:
        self.op, self.param, self.value = op, param, value
        if got is None:
            got = "" if value is ... else f"; got {value!r}"
        else:
            got = f"; got {got}"
        # what to do about it, where the message can tell
        advice = f". {hint}" if hint else ""
        super().__init__(f"{op}: {param} {problem}{got}{advice}")  # type: ignore[call-arg]


class ConvArgumentError(_ArgumentErrorMixin, PolyconvError, ValueError):
    """An argument has the right type but an invalid value."""


class ConvTypeError(_ArgumentErrorMixin, PolyconvError, TypeError):
    """An argument has the wrong type (a float stride, a padding that is not
    a string or pairs, operands of two dtypes)."""


class DtypeMismatchError(ConvTypeError):
    """Operands whose dtypes must agree and do not: lhs and rhs, or a
    cotangent and the convolution's output.  The message says which cast
    makes them agree (and, for an operand given as a Python list or scalar,
    which dtype the backend made of it)."""


class ConvShapeError(_ArgumentErrorMixin, PolyconvError, ValueError, TypeError):
    """Operand shapes that do not fit together (rank, channels, groups).

    It is both a ``ValueError`` (as NumPy raises for shape mismatches) and a
    ``TypeError`` (as ``jax.lax`` raises for rank mismatches), so code written
    against either framework catches it.
    """


class UnsupportedDtypeError(_ArgumentErrorMixin, PolyconvError, TypeError):
    """The chosen backend does not support the operands' dtype."""


class UnsupportedFeatureError(PolyconvError, NotImplementedError):
    """The chosen backend declares that it does not support a feature the call
    needs (for example more spatial dimensions than its kernels take)."""


class BackendNotFoundError(PolyconvError, LookupError):
    """No backend of that name is registered, or it is blocked."""


class BackendUnavailableError(PolyconvError, ImportError):
    """A registered backend could not be loaded or cannot run here."""


class MixedArraysError(PolyconvError, TypeError):
    """Operands of two frameworks or two devices in one call, or arrays that
    the requested backend cannot take.  polyconv never copies between
    frameworks or devices behind the caller's back."""


class OutputTooLargeError(PolyconvError, MemoryError):
    """A valid call whose output cannot exist: more bytes than any array can
    address, or (for results computed at once) than this machine's memory
    (:mod:`polyconv.output_size`).  Raised before any backend allocates."""
