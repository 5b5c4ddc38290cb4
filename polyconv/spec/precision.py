"""``precision``: None, a name, a ``jax.lax.Precision``, or a pair of them.

``jax.lax.Precision`` values are recognised by their class and member name,
so JAX never needs importing.  The canonical form is None or a pair of names
from ``'default'``, ``'high'``, ``'highest'`` (lhs, rhs).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConvArgumentError, ConvTypeError

__all__ = ["parse_precision"]

# JAX's aliases: 'bfloat16' is DEFAULT, 'tensorfloat32' and 'bfloat16_3x' are HIGH, 'float32' is HIGHEST.
_ALIASES = {
    "default": "default",
    "fastest": "default",
    "bfloat16": "default",
    "high": "high",
    "tensorfloat32": "high",
    "bfloat16_3x": "high",
    "highest": "highest",
    "float32": "highest",
}

_EXPECTED = (
    "must be None, one of 'default', 'high', 'highest', a jax.lax.Precision, or a pair of them"
)


def _one(value: Any, op: str, whole: Any) -> str:
    if isinstance(value, str):
        name = _ALIASES.get(value.lower())
    elif type(value).__name__ == "Precision" and hasattr(value, "name"):
        name = _ALIASES.get(str(value.name).lower())
    else:
        raise ConvTypeError(op, "precision", _EXPECTED, whole)
    if name is None:
        raise ConvArgumentError(op, "precision", _EXPECTED, whole)
    return name


def parse_precision(precision: Any, op: str = "conv_general_dilated") -> tuple[str, str] | None:
    """Canonical ``(lhs, rhs)`` precision names, or None.

    Examples
    --------
    >>> parse_precision('highest')
    ('highest', 'highest')
    >>> parse_precision(('default', 'high'))
    ('default', 'high')
    >>> parse_precision(None) is None
    True
    """
    if precision is None:
        return None
    if isinstance(precision, (tuple, list)):
        if len(precision) != 2:
            raise ConvArgumentError(op, "precision", _EXPECTED, precision)
        if precision[0] is None and precision[1] is None:
            return None
        lhs = "default" if precision[0] is None else _one(precision[0], op, precision)
        rhs = "default" if precision[1] is None else _one(precision[1], op, precision)
        return (lhs, rhs)
    name = _one(precision, op, precision)
    return (name, name)
