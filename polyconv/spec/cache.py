"""A parse cache keyed on argument *types* as well as values.

``1``, ``1.0`` and ``True`` compare and hash equal, but only the first is a
valid stride: a plain ``lru_cache`` would let the others through once the
first had been parsed.  Lists and tuples are equally valid everywhere, so they
share keys.  Only successful parses are stored, so error messages always show
the argument exactly as given.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["typed_cache"]

T = TypeVar("T")
_SIZE = 4096


def _key(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return (tuple, tuple(_key(v) for v in value))
    return (type(value), value)


def typed_cache(fn: Callable[..., T]) -> Callable[..., T]:
    """Cache ``fn`` (positional arguments only) on typed keys; arguments that
    cannot be hashed are parsed without caching."""
    cache: dict[Any, T] = {}

    @functools.wraps(fn)
    def wrapper(*args: Any) -> T:
        try:
            key = _key(args)
            hit = cache.get(key)
        except TypeError:
            return fn(*args)
        if hit is None:
            hit = fn(*args)
            if len(cache) >= _SIZE:
                cache.pop(next(iter(cache)), None)
            cache[key] = hit
        return hit

    wrapper.cache = cache  # type: ignore[attr-defined]
    return wrapper
