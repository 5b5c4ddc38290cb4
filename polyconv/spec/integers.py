"""Integer arguments: what the spec layer and the layers accept as an int."""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["as_int"]


def as_int(value: Any, *, bool_message: str = "bool") -> int:
    """``value`` as an ``int``, as ``operator.index`` gives it, but never from a bool.

    Parameters
    ----------
    value
        An ``int``, a NumPy integer, or anything with ``__index__``.
    bool_message
        The message of the ``TypeError`` raised for a bool (callers catch it
        and raise their own error).

    Raises
    ------
    TypeError
        For a bool (``True`` is not taken for 1) or a value without ``__index__``.

    Examples
    --------
    >>> import numpy as np
    >>> as_int(3), as_int(np.int64(4))
    (3, 4)
    >>> as_int(True)
    Traceback (most recent call last):
    ...
    TypeError: bool
    """
    if isinstance(value, bool):
        raise TypeError(bool_message)
    return operator.index(value)
