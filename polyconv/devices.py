"""Where an array lives, for arrays whose framework has no array-API device.

The array API asks every array for ``.device`` and every creation function
for a ``device=`` keyword.  Some frameworks have neither: MLX arrays live in
unified memory and are placed by *stream* (``mlx.core.zeros(shape, dtype,
stream=...)``), with no ``device`` attribute and no ``device=`` keyword.
The core's array-API code (the layers' padding, the derived ops) asks here
instead of calling ``array_api_compat.device`` itself:

* :func:`device_of`: the array's device, or ``None`` where it has none;
* :func:`on`: the keyword arguments that place a new array there, empty for
  ``None`` (the framework's default placement, where such a framework puts
  every array).
"""

from __future__ import annotations

from typing import Any

import array_api_compat

__all__ = ["device_of", "on"]


def device_of(x: Any) -> Any:
    """``x``'s array-API device, or ``None`` when its framework has none.

    Examples
    --------
    >>> import numpy as np
    >>> device_of(np.zeros(2))
    'cpu'
    >>> class Deviceless:  # an array type with no ``device`` (as MLX's)
    ...     shape = (2,)
    >>> device_of(Deviceless()) is None
    True
    """
    try:
        return array_api_compat.device(x)
    except AttributeError:
        return None


def on(device: Any) -> dict[str, Any]:
    """Keyword arguments that create an array on ``device``: ``{'device':
    device}``, or nothing for ``None``, so that a namespace whose creation
    functions take no ``device=`` keyword can be called the same way.

    Examples
    --------
    >>> import numpy as np
    >>> np.zeros(2, **on(None)).tolist()
    [0.0, 0.0]
    >>> on('cpu')
    {'device': 'cpu'}
    """
    return {} if device is None else {"device": device}
