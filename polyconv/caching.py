"""Every cache polyconv keeps, under one policy and one invalidation point.

polyconv remembers decisions that depend only on their keys: parsed specs
(:mod:`polyconv.spec`), the backend owning each array type and whole-call
decisions (:mod:`polyconv.dispatch`, :mod:`polyconv.ops`), and the strategies
and plans of the backends.  All of them are made here:

* :class:`BoundedCache` -- a mapping of at most ``maxsize`` entries that
  forgets its oldest entry when full;
* :func:`memoize` -- a function cached on its positional arguments (with a
  key function of its own where equal-but-different values must not share an
  entry);
* :class:`IdentityCache` -- ``build(obj)`` remembered per object identity, for
  keys that are costly to hash and are handed over as the very same object;
* :func:`lru_cache` -- ``functools.lru_cache`` itself, for the hottest
  functions of hashable arguments (a call costs what ``functools`` costs).

Each is registered under a name, and :func:`clear` empties every one: the
registry calls it whenever the set of backends changes (a plugin installed,
registered or removed), and tests call it to start afresh.  Nothing here reads
interpreter internals; the environment variables that decisions depend on are
read by :func:`environment`, the one place that names them.

Examples
--------
>>> from polyconv import caching
>>> squares = caching.BoundedCache("doc.squares", maxsize=2)
>>> squares.put(2, 4); squares.put(3, 9); squares.put(4, 16)
>>> len(squares), squares.get(2), squares.get(4)
(2, None, 16)
>>> caching.clear(); len(squares)
0
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, cast

__all__ = ["BoundedCache", "IdentityCache", "memoize", "lru_cache", "typed_key", "clear", "environment"]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

_caches: weakref.WeakSet[_Clearable] = weakref.WeakSet()
_lock = threading.Lock()


class _Clearable:
    """A registered cache whose entries live in ``_entries`` (a dict, or a
    :class:`BoundedCache` for the function caches)."""

    name: str
    _entries: Any

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()


def _register(cache: _Clearable) -> None:
    with _lock:
        _caches.add(cache)


class BoundedCache(_Clearable, Generic[K, V]):
    """A mapping of at most ``maxsize`` entries; when full, the oldest goes.

    Reads take no lock (a dict lookup is atomic); writes do.  ``None`` is not
    a storable value: :attr:`get` returns it for a missing key.
    """

    #: The value stored for a key, or None: the entries' own ``dict.get``, so a
    #: read is one dictionary look-up (the entries' dict is never replaced, so
    #: ``cache.get`` may be bound once, on a hot path).
    get: Callable[[K], V | None]

    #: A slot for the caller's latest hit, ``(key, value)``, or ``(None, None)``:
    #: where keys are long tuples, comparing the next key with the latest one
    #: (``==``, which takes identical items as equal without comparing them) costs
    #: less than hashing it for :attr:`get`, and a loop repeats one call.  The
    #: cache never sets it; :meth:`clear` empties it with the entries.
    last: tuple[K, V] | tuple[None, None]

    def __init__(self, name: str, maxsize: int = 4096, *, register: bool = True) -> None:
        self.name = name
        self.maxsize = maxsize
        self._entries: dict[K, V] = {}
        self.get = self._entries.get
        self.last = (None, None)
        self._lock = threading.Lock()
        if register:
            _register(self)

    def put(self, key: K, value: V) -> None:
        """Store ``value`` for ``key``, forgetting the oldest entry when full."""
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.maxsize:
                self._entries.pop(next(iter(self._entries)), None)
            self._entries[key] = value

    def items(self) -> list[tuple[K, V]]:
        """The entries stored now, oldest first."""
        return list(self._entries.items())

    def clear(self) -> None:
        """Forget every entry (and :attr:`last`)."""
        with self._lock:
            self._entries.clear()
            self.last = (None, None)


class IdentityCache(_Clearable, Generic[T]):
    """``build(obj)``, remembered per object identity.

    For keys that are costly to hash but handed over as the very same object
    (specs come from polyconv's parse cache, so equal calls share one).  The
    entry keeps the object alive, so its identity cannot be reused; an equal
    object that is a different one is simply built again.  ``builds`` counts
    the builds.
    """

    def __init__(self, name: str, build: Callable[[Any], T], maxsize: int = 4096) -> None:
        self.name = name
        self._build = build
        self._entries: BoundedCache[int, tuple[Any, T]] = BoundedCache(name, maxsize, register=False)
        self.builds = 0
        _register(self)

    def __call__(self, obj: Any) -> T:
        hit = self._entries.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = self._build(obj)
        self.builds += 1
        self._entries.put(id(obj), (obj, value))
        return value


#: What :func:`memoize` stores for a None result (None is a :class:`BoundedCache`'s miss).
_NONE: Any = object()


class _Memoized(_Clearable, Generic[T]):
    def __init__(self, fn: Callable[..., T], name: str, maxsize: int, key: Callable[..., Hashable] | None) -> None:
        self.name = name
        self._fn = fn
        self._key = key
        self._entries: BoundedCache[Hashable, Any] = BoundedCache(name, maxsize, register=False)
        functools.update_wrapper(self, fn)
        _register(self)

    def __call__(self, *args: Any) -> T:
        try:
            key = self._key(*args) if self._key is not None else args
            hit = self._entries.get(key)
        except TypeError:  # an unhashable argument: compute without caching
            return self._fn(*args)
        if hit is None:
            value = self._fn(*args)
            self._entries.put(key, _NONE if value is None else value)
            return value
        return cast(T, None) if hit is _NONE else hit


def memoize(
    maxsize: int = 256, *, key: Callable[..., Hashable] | None = None, name: str | None = None
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Cache a function of positional arguments on ``key(*args)`` (the
    arguments themselves by default), keeping at most ``maxsize`` results.

    Arguments that cannot be hashed are computed without caching; None
    results are kept like any other.  The cache is registered under
    ``name`` (default: the function's module and name) and emptied by
    :func:`clear`.

    Examples
    --------
    >>> from polyconv import caching
    >>> @caching.memoize(maxsize=8, name="doc.double")
    ... def double(x):
    ...     return 2 * x
    >>> double(21), len(double)
    (42, 1)
    """

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        return _Memoized(fn, name or f"{fn.__module__}.{fn.__qualname__}", maxsize, key)

    return wrap


class _Lru(_Clearable):
    """The registration of a :func:`lru_cache` function (kept alive by it)."""

    def __init__(self, fn: Any, name: str) -> None:
        self.name = name
        self._fn = fn
        _register(self)

    def __len__(self) -> int:
        return int(self._fn.cache_info().currsize)

    def clear(self) -> None:
        self._fn.cache_clear()


def lru_cache(
    maxsize: int | None = 128, *, name: str | None = None
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """``functools.lru_cache(maxsize)``, registered under ``name`` (default:
    the function's module and name) so that :func:`clear` empties it.

    For the hottest functions of hashable arguments (a call costs what
    ``functools.lru_cache`` costs, a third of :func:`memoize`'s): unlike
    :func:`memoize`, it raises ``TypeError`` for an unhashable argument;
    ``maxsize=None`` keeps every result (for a function
    of no or few arguments).

    Examples
    --------
    >>> from polyconv import caching
    >>> @caching.lru_cache(None, name="doc.modules")
    ... def modules():
    ...     import math
    ...     return math
    >>> modules() is modules(), modules.cache_info().currsize
    (True, 1)
    >>> caching.clear(); modules.cache_info().currsize
    0
    """

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        cached = functools.lru_cache(maxsize)(fn)
        cached.registration = _Lru(cached, name or f"{fn.__module__}.{fn.__qualname__}")  # type: ignore[attr-defined]
        return cached

    return wrap


def typed_key(*args: Any) -> Hashable:
    """A key of ``args`` that tells ``1``, ``1.0`` and ``True`` apart.

    They compare and hash equal, but only the first is a valid stride: a key
    of plain values would let the others through once the first had been
    parsed.  Lists and tuples are equally valid everywhere, so they share
    keys.  A key with an unhashable argument raises ``TypeError`` when hashed
    (:func:`memoize` then computes without caching).

    Examples
    --------
    >>> typed_key(1) == typed_key(1.0), typed_key([1, 2]) == typed_key((1, 2))
    (False, True)
    """
    key: Hashable = _typed(args)
    return key


def _typed(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return (tuple, tuple(_typed(v) for v in value))
    return (type(value), value)


def clear() -> None:
    """Empty every polyconv cache: the one invalidation point.

    Called by the registry when backends are scanned again, registered or
    removed, so that no decision made with the old set survives.
    """
    with _lock:
        caches = list(_caches)
    for cache in caches:
        cache.clear()


_NAMES = ("POLYCONV_BACKEND", "POLYCONV_BLOCK")


def _environ_reader() -> tuple[Callable[[Any], object], tuple[Any, ...]]:
    """``(get, keys)``: ``get(key)`` for each of ``keys`` reads one of :data:`_NAMES`
    as ``os.environ`` holds it now.

    CPython keeps ``os.environ``'s contents in the dict ``os.environ._data``
    (keys and values encoded by ``os.environ.encodekey`` and ``encodevalue``),
    which every change through ``os.environ`` (``os.environ[...] = ...``,
    ``del``, pytest's ``monkeypatch.setenv``) updates: reading it takes one
    dict look-up per variable, against about 0.5 us for ``os.environ.get`` of
    a variable that is unset (a ``KeyError`` raised and caught).  Where that
    dict is missing (another implementation), the public ``os.environ.get``
    and the names themselves.  Either way the values are read at each call:
    changing a variable takes effect at the next polyconv call."""
    data = getattr(os.environ, "_data", None)
    encodekey = getattr(os.environ, "encodekey", None)
    if isinstance(data, dict) and callable(encodekey):
        return data.get, tuple(encodekey(name) for name in _NAMES)
    return os.environ.get, _NAMES


#: ``os.environ``'s reader and the keys of ``POLYCONV_BACKEND`` and ``POLYCONV_BLOCK``
#: (see :func:`_environ_reader`): the call cache's hot path reads them inline.
environ_get, ENVIRON_KEYS = _environ_reader()


def environment() -> tuple[object, ...]:
    """``POLYCONV_BACKEND`` and ``POLYCONV_BLOCK`` now (as ``os.environ`` holds them:
    encoded values on CPython), part of the key of every cached dispatch decision,
    so that changing them takes effect at the next call (see :func:`_environ_reader`).

    >>> len(environment())  # one value (None where unset) per variable
    2
    """
    return tuple(environ_get(key) for key in ENVIRON_KEYS)
