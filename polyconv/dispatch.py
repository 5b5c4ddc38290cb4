"""Which backend runs a call.

The order:

1. ``backend="name"`` on the call: that backend and no other;
2. ``with use_backend("name"):`` (a ``ContextVar``, so thread- and task-safe);
3. ``POLYCONV_BACKEND``: a preference, used when that backend accepts the
   arrays, passed over (and logged) when it does not;
4. the arrays' own type: the backend that owns them;
5. an array-API array nobody owns: a fallback backend (``array_api``);
6. Python scalars and lists only: NumPy.

Before any of that, :func:`check_operands` applies the rules on NumPy's
subclasses that hold whichever backend runs: a masked array is an error (its
mask would be dropped), and a ``numpy.matrix`` is taken as its plain
``ndarray`` view only where a 2-d operand belongs (a convolution with no
spatial dimensions), an error anywhere else.

Operands of two frameworks, or on two devices, are an error naming both,
except where the backend owning one of them takes the others alongside its
own (:meth:`Backend.takes_alongside`: the dask backend takes the NumPy or
CuPy kernel of a dask array's convolution).
Resolution by type is cached per (type, registry state, POLYCONV_BLOCK), so
dispatch costs microseconds.  Every decision is logged at DEBUG on the
``polyconv`` logger.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from . import caching
from .backend import Backend, is_neutral
from .errors import BackendNotFoundError, ConvTypeError, MixedArraysError
from .registry import PolyconvPluginWarning, Registry, blocked_names, registry

__all__ = [
    "use_backend", "current_backend", "resolve", "owner_of", "check_devices", "check_operands", "DEFAULT_BACKEND",
]

logger = logging.getLogger("polyconv")

DEFAULT_BACKEND = "numpy"

_context: contextvars.ContextVar[str | None] = contextvars.ContextVar("polyconv_backend", default=None)

#: (array type, POLYCONV_BLOCK names, registry) -> the name of the backend owning that type, or ""
#: for a type nobody owns (see owner_of)
owners: caching.BoundedCache[tuple[type, frozenset[str], Registry], str] = caching.BoundedCache(
    "polyconv.dispatch.owners", 1024
)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the calls inside the ``with`` block on backend ``name``.

    The choice lives in a ``contextvars.ContextVar``: it applies to this
    thread or asyncio task only, and nests.

    Examples
    --------
    >>> import numpy as np, polyconv
    >>> with polyconv.use_backend('numpy'):
    ...     y = polyconv.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2)), (1,), 'VALID')
    >>> y.tolist()
    [[[2.0, 2.0, 2.0]]]
    """
    if not isinstance(name, str):
        raise ConvTypeError("use_backend", "name", "must be a backend name (a string)", name)
    registry.load(name)  # unknown, blocked, broken or unavailable: fail here, not at the first call
    token = _context.set(name)
    try:
        yield
    finally:
        _context.reset(token)


def current_backend() -> str | None:
    """The name set by the innermost :func:`use_backend`, or None."""
    return _context.get()


def owner_of(x: Any, reg: Registry = registry) -> str | None:
    """Name of the backend that owns arrays of ``type(x)``, or None.

    Backends that own the type come first; for an array-API array nobody
    owns, a fallback backend that accepts it.  Among several owners the
    highest manifest priority wins, then polyconv's own backends, then the
    first name.  Only backends that may own ``x`` are loaded: those whose
    array module is imported (and those registered in-process); backends
    declaring no array module are asked only when none of those owns ``x``.
    Backends that loaded but cannot run here take part, so that their arrays
    get their reason rather than "nobody owns this".
    """
    key = (type(x), blocked_names(), reg)
    cached = owners.get(key)
    if cached is not None:
        return cached or None
    declared = list(reg.candidates(declared=True))
    found = [be for be in declared if not be.manifest.fallback and _asks(be, "owns", x)]
    undeclared: list[Backend] = []
    if not found:
        undeclared = list(reg.candidates(declared=False))
        found = [be for be in undeclared if not be.manifest.fallback and _asks(be, "owns", x)]
    if not found and hasattr(x, "__array_namespace__"):  # step 5: an array-API array nobody owns
        found = [be for be in declared + undeclared if be.manifest.fallback and _asks(be, "accepts", x)]
    found.sort(key=lambda be: (-be.manifest.priority, _dist_rank(reg, be.name), be.name))
    name = found[0].name if found else None
    if len(found) > 1:
        logger.debug("arrays of type %s are owned by %s; chose %r", _type_name(x), [be.name for be in found], name)
    owners.put(key, name or "")
    return name


def _asks(be: Backend, method: str, x: Any) -> bool:
    try:
        return bool(getattr(be, method)(x))
    except Exception as exc:  # one faulty plugin must not break dispatch for the others
        warnings.warn(
            f"polyconv: backend {be.name!r}.{method}() raised {type(exc).__name__}: {exc}; "
            "it is treated as not owning this array type",
            PolyconvPluginWarning,
            stacklevel=4,
        )
        return False


def _dist_rank(reg: Registry, name: str) -> int:
    return 0 if reg.records()[name].distribution == "polyconv" else 1


def _type_name(x: Any) -> str:
    t = type(x)
    return f"{t.__module__}.{t.__qualname__}"


def check_operands(
    op: str, arrays: Sequence[Any], params: Sequence[str], rank: int | None = None
) -> tuple[Any, ...]:
    """The operands, after the rules on NumPy's subclasses that hold on every backend.

    Parameters
    ----------
    op, params
        The operation and the operands' parameter names, for the errors.
    arrays
        The operands (arrays, Python scalars or lists).
    rank
        The rank the call's operands have (2 for a convolution with no
        spatial dimensions), or None when the caller reshapes its operands
        (the layers).

    Returns
    -------
    tuple
        ``arrays``, with each ``numpy.matrix`` replaced by its plain
        ``ndarray`` view (no copy) when ``rank`` is 2.

    Raises
    ------
    ConvTypeError
        For a ``numpy.ma.MaskedArray`` (polyconv would drop its mask), and for
        a ``numpy.matrix`` where ``rank`` is not 2 (a matrix is always 2-d).

    Notes
    -----
    A type check per operand; NumPy is looked up in ``sys.modules``, as
    array-api-compat does, so nothing is imported.
    """
    np = sys.modules.get("numpy")
    if np is None:  # no NumPy array can exist
        return tuple(arrays)
    ndarray = np.ndarray
    out: list[Any] | None = None
    for i, (param, a) in enumerate(zip(params, arrays)):
        t = type(a)
        if t is ndarray or not issubclass(t, ndarray):
            continue
        ma = sys.modules.get("numpy.ma")
        if ma is not None and issubclass(t, ma.MaskedArray):
            raise ConvTypeError(
                op, param, "must not be a masked array: polyconv would silently drop its mask; pass "
                f"np.ma.filled({param}, 0) to convolve the masked elements as zeros, or {param}.data to use "
                "the values under the mask", got=f"a {_type_name(a)} of shape {a.shape}",
            )
        if issubclass(t, np.matrix):
            if rank != 2:
                if rank is None:
                    why, fix = "a matrix stays 2-d through every reshape, and the layers reshape their inputs", ""
                else:
                    spatial = f"{rank - 2} spatial dimension{'' if rank == 3 else 's'}"
                    why = (
                        f"a matrix is always 2-d (an operand only of a convolution with no spatial "
                        f"dimensions), and this call's operands have rank {rank} ({spatial})"
                    )
                    fix = f" reshaped to rank {rank}"
                raise ConvTypeError(
                    op, param, f"must not be a numpy.matrix: {why}; pass np.asarray({param}){fix}",
                    got=f"a {_type_name(a)} of shape {a.shape}",
                )
            if out is None:
                out = list(arrays)
            out[i] = np.asarray(a)  # the plain ndarray view: the result is an ndarray
    return tuple(arrays) if out is None else tuple(out)


def resolve(
    arrays: Sequence[Any],
    backend: str | None = None,
    op: str = "conv",
    reg: Registry = registry,
    params: Sequence[str] = ("lhs", "rhs"),
) -> Backend:
    """The backend that runs ``op`` on ``arrays`` (named ``params`` in errors),
    by the order of this module."""
    if backend is not None and not isinstance(backend, str):
        raise ConvTypeError(op, "backend", "must be None or a backend name (a string)", backend)
    check_operands(op, arrays, params)  # masked arrays and matrices (ops pass matrices on as plain views)
    debug = logger.isEnabledFor(logging.DEBUG)
    forced, why = backend, "backend= keyword"
    if forced is None:
        forced, why = _context.get(), "use_backend()"
    if forced is not None:
        be = reg.load(forced)
        _require_accepts(be, arrays, params, op, why)
        check_devices(be, arrays, params, op)
        if debug:
            logger.debug("%s: backend %r (%s)", op, be.name, why)
        return be

    preferred = os.environ.get("POLYCONV_BACKEND")
    if preferred:
        pref = _preferred_backend(preferred, reg)
        if pref is not None and all(is_neutral(a) or pref.accepts(a) for a in arrays):
            check_devices(pref, arrays, params, op)
            if debug:
                logger.debug("%s: backend %r (POLYCONV_BACKEND)", op, pref.name)
            return pref
        if debug:
            logger.debug(
                "%s: POLYCONV_BACKEND=%r %s; resolving by type", op, preferred,
                "cannot run here" if pref is None else "does not accept these arrays",
            )

    owners: list[tuple[str, str, Any]] = []  # (param, backend name, operand)
    for param, a in zip(params, arrays):
        if is_neutral(a):
            continue
        name = owner_of(a, reg)
        if name is None:
            raise ConvTypeError(
                op, param, "must be an array of a framework with a polyconv backend, an array-API array, "
                "or a Python scalar or list", got=f"a {_type_name(a)}",
            )
        owners.append((param, name, a))
    if not owners:
        be, why = reg.load(DEFAULT_BACKEND), "Python scalars and lists"
    elif all(name == owners[0][1] for _, name, _ in owners):
        be, why = reg.load(owners[0][1]), "array type"
    else:
        be, why = _taker(owners, reg, op), "array type, with arrays of another framework it takes"
    check_devices(be, arrays, params, op)
    if debug:
        logger.debug("%s: backend %r (%s)", op, be.name, why)
    return be


def _takes(be: Backend, x: Any) -> bool:
    takes = getattr(be, "takes_alongside", None)  # duck-typed backends may lack it
    return takes is not None and _asks(be, "takes_alongside", x)


def _taker(owners: list[tuple[str, str, Any]], reg: Registry, op: str) -> Backend:
    """For operands of several frameworks: the one owner backend that takes all
    the other operands alongside its own (:meth:`Backend.takes_alongside`: the
    dask backend takes a NumPy kernel), else a :class:`MixedArraysError`."""
    names = list(dict.fromkeys(name for _, name, _ in owners))
    for name in names:
        be = reg.load(name)
        if all(n == name or _takes(be, a) for _, n, a in owners):
            return be
    (p0, n0, a0), (p1, n1, a1) = owners[0], next(o for o in owners if o[1] != owners[0][1])
    raise MixedArraysError(
        f"{op}: {p0} is a {_type_name(a0)} (backend {n0!r}) but {p1} is a {_type_name(a1)} (backend {n1!r}); "
        "polyconv never converts between frameworks: convert one of them explicitly"
    )


def _preferred_backend(name: str, reg: Registry) -> Backend | None:
    """The backend POLYCONV_BACKEND names, None if it cannot run here; a name
    that is not registered at all is an error (a typo should not go unseen)."""
    try:
        reg.record(name)
    except BackendNotFoundError as exc:
        raise BackendNotFoundError(f"POLYCONV_BACKEND={name!r}: {exc}") from None
    return reg.try_load(name)


def _require_accepts(be: Backend, arrays: Sequence[Any], params: Sequence[str], op: str, why: str) -> None:
    taken = [a for a in arrays if not is_neutral(a) and be.accepts(a)]
    for param, a in zip(params, arrays):
        if not is_neutral(a) and not be.accepts(a) and not (taken and _takes(be, a)):
            raise MixedArraysError(
                f"{op}: the {be.name!r} backend (chosen by {why}) cannot take {param}, a "
                f"{_type_name(a)}; polyconv never converts between frameworks: convert it explicitly"
            )


def check_devices(be: Backend, arrays: Sequence[Any], params: Sequence[str], op: str) -> None:
    first: tuple[str, str] | None = None
    for param, a in zip(params, arrays):
        if is_neutral(a):
            continue
        dev = be.device(a)
        if first is None:
            first = (param, dev)
        elif dev != first[1]:
            raise MixedArraysError(
                f"{op}: {first[0]} is on device {first[1]!r} but {param} is on device {dev!r}; "
                "polyconv never copies between devices: move one of them explicitly"
            )
