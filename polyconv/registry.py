"""The backend registry: entry points of the group ``polyconv.backends``.

Entry points are listed without importing anything; a backend is loaded the
first time it is needed.  A second, optional group, ``polyconv.array_modules``,
names for each backend the top-level module that must be imported before any
of its arrays can exist (``torch = "torch"``): dispatch loads such a backend
only once that module is in ``sys.modules``, so a NumPy call never loads the
JAX or CuPy backend.  A backend object can also be registered from
inside the process, without an entry point (:meth:`Registry.register`, for
tests and backends made at run time), and removed again
(:meth:`Registry.unregister`).  A plugin that fails to load, or that registers a
name already taken, is reported (a warning and a status entry with the
reason) and never stops the others from working.  ``POLYCONV_BLOCK``
(comma-separated names) is read each time it matters.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from . import caching
from .backend import Backend
from .errors import BackendNotFoundError, BackendUnavailableError

__all__ = ["GROUP", "BackendRecord", "Registry", "registry", "blocked_names", "PolyconvPluginWarning"]

GROUP = "polyconv.backends"
#: backend name -> top-level module whose import must come before any of its arrays exist
MODULES_GROUP = "polyconv.array_modules"
_BUILTIN_DIST = "polyconv"
logger = logging.getLogger("polyconv")


class PolyconvPluginWarning(UserWarning):
    """A backend plugin could not be loaded or was registered twice."""


def blocked_names() -> frozenset[str]:
    """Names listed in ``POLYCONV_BLOCK``, read now."""
    raw = os.environ.get("POLYCONV_BLOCK", "")
    return frozenset(n.strip() for n in raw.split(",") if n.strip())


@dataclass
class BackendRecord:
    """One registered backend and what is known about it.

    ``status`` is one of ``'registered'`` (not loaded yet), ``'ok'``,
    ``'unavailable'`` (loaded, but cannot run here), ``'broken'`` (failed to
    load), ``'duplicate'`` (a second registration of a taken name, ignored)
    or ``'blocked'`` (listed in ``POLYCONV_BLOCK``).
    """

    name: str
    target: str
    distribution: str | None
    status: str = "registered"
    reason: str = ""
    backend: Backend | None = None
    entry_point: Any = field(default=None, repr=False)
    #: the module of :data:`MODULES_GROUP` (None: not declared)
    module: str | None = None


class Registry:
    """Backends registered through entry points, loaded lazily."""

    def __init__(self, group: str = GROUP, modules_group: str = MODULES_GROUP) -> None:
        self.group = group
        self.modules_group = modules_group
        self._lock = threading.RLock()
        self._records: dict[str, BackendRecord] | None = None
        self._duplicates: list[BackendRecord] = []
        self._in_process: dict[str, BackendRecord] = {}  # Registry.register, by name

    # -- listing -------------------------------------------------------------
    def _scan(self) -> dict[str, BackendRecord]:
        records: dict[str, BackendRecord] = {}
        duplicates: list[BackendRecord] = []
        seen: set[tuple[str, str, str | None]] = set()
        modules = {ep.name: ep.value for ep in _entry_points(self.modules_group)}
        for ep in _entry_points(self.group):
            dist = _dist_name(ep)
            key = (ep.name, ep.value, dist)
            if key in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(key)
            rec = BackendRecord(ep.name, ep.value, dist, entry_point=ep, module=modules.get(ep.name))
            if ep.name in records:
                kept, dropped = _prefer(records[ep.name], rec)
                records[ep.name] = kept
                dropped.status = "duplicate"
                dropped.reason = (
                    f"backend name {ep.name!r} is also registered by {kept.distribution!r} "
                    f"({kept.target}); this registration is ignored"
                )
                duplicates.append(dropped)
                warnings.warn(
                    f"polyconv: backend {ep.name!r} is registered twice, by {kept.distribution!r} "
                    f"({kept.target}) and {dropped.distribution!r} ({dropped.target}); "
                    f"using {kept.distribution!r}",
                    PolyconvPluginWarning,
                    stacklevel=3,
                )
            else:
                records[ep.name] = rec
        records.update(self._in_process)  # taken names are refused by register()
        self._duplicates = duplicates
        return records

    def records(self) -> dict[str, BackendRecord]:
        """All registrations by name (duplicates excluded), scanning once."""
        recs = self._records
        if recs is None:
            with self._lock:
                if self._records is None:
                    self._records = self._scan()
                recs = self._records
        return recs

    def duplicates(self) -> list[BackendRecord]:
        """Registrations ignored because their name was taken."""
        self.records()
        return list(self._duplicates)

    def names(self) -> list[str]:
        """Registered names that are not blocked, without loading anything."""
        blocked = blocked_names()
        return sorted(n for n in self.records() if n not in blocked)

    def refresh(self) -> None:
        """Forget everything and scan the entry points again (after installing a
        plugin).  Backends registered with :meth:`register` stay registered."""
        with self._lock:
            self._records = None
            self._duplicates = []
            caching.clear()

    # -- registering from inside the process ----------------------------------
    def register(self, backend: Backend) -> None:
        """Register the backend object ``backend`` under its ``name``, without an
        entry point, until :meth:`unregister` (for tests, and for backends made
        at run time).  It is loaded at once: its status is ``'ok'``, or
        ``'unavailable'`` when ``unavailable_reason()`` gives a reason.

        Raises ``ValueError`` when the name is empty or already registered (by
        an entry point or by this method) and ``TypeError`` for an object that
        is not a backend.

        Examples
        --------
        >>> import numpy as np, polyconv
        >>> from polyconv.backends.numpy import NumpyBackend
        >>> class Mine(NumpyBackend):
        ...     name = "mine"
        ...     def owns(self, x): return False  # only by name
        ...     def accepts(self, x): return isinstance(x, np.ndarray)
        >>> registry.register(Mine())
        >>> polyconv.conv_general_dilated(np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1,), 'VALID', backend="mine")
        array([[[2., 2.]]])
        >>> registry.unregister("mine")
        """
        missing = [a for a in ("name", "manifest", "owns", "conv_general_dilated") if not hasattr(backend, a)]
        if missing:
            raise TypeError(f"{backend!r} is not a polyconv backend: it lacks {', '.join(missing)}")
        name = backend.name
        if not isinstance(name, str) or not name:
            raise ValueError(f"a backend needs a non-empty name to be registered; got {name!r}")
        target = f"{type(backend).__module__}:{type(backend).__qualname__}"
        with self._lock:
            recs = self.records()
            if name in recs:
                raise ValueError(f"backend name {name!r} is already registered ({recs[name].target})")
            try:
                reason = backend.unavailable_reason() if hasattr(backend, "unavailable_reason") else None
            except Exception as exc:  # the same rule as for entry points
                reason = f"unavailable_reason() raised {type(exc).__name__}: {exc}"
            rec = BackendRecord(name, target, None, status="unavailable" if reason else "ok",
                                reason=str(reason or ""), backend=backend)
            self._in_process[name] = rec
            recs[name] = rec
            caching.clear()

    def unregister(self, name: str) -> None:
        """Remove the backend :meth:`register` registered as ``name``.

        Raises ``ValueError`` for a name that is not registered that way
        (entry points are removed by uninstalling, or hidden with
        ``POLYCONV_BLOCK``)."""
        with self._lock:
            if name not in self._in_process:
                raise ValueError(f"no backend named {name!r} was registered with register()")
            del self._in_process[name]
            if self._records is not None:
                self._records.pop(name, None)
            caching.clear()

    # -- loading -------------------------------------------------------------
    def record(self, name: str) -> BackendRecord:
        """The record of ``name``, raising if it is unknown or blocked."""
        recs = self.records()
        if name in blocked_names():
            raise BackendNotFoundError(
                f"backend {name!r} is blocked by POLYCONV_BLOCK={os.environ.get('POLYCONV_BLOCK', '')!r}"
            )
        if name not in recs:
            known = ", ".join(sorted(recs)) or "none"
            import difflib  # only on this error path

            close = difflib.get_close_matches(name, list(recs), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise BackendNotFoundError(
                f"backend: no backend named {name!r} is registered{hint} (registered: {known})"
            )
        return recs[name]

    def load(self, name: str) -> Backend:
        """The backend object of ``name``, loading it on first use.

        Raises :class:`BackendNotFoundError` for an unknown or blocked name and
        :class:`BackendUnavailableError` for one that failed to load or cannot
        run here.
        """
        rec = self.record(name)
        if rec.status == "registered":
            with self._lock:
                if rec.status == "registered":
                    self._load(rec)
        if rec.status == "broken":
            raise BackendUnavailableError(f"backend {name!r} failed to load: {rec.reason}")
        if rec.status == "unavailable":
            raise BackendUnavailableError(f"backend {name!r} cannot run here: {rec.reason}")
        assert rec.backend is not None
        return rec.backend

    def try_load(self, name: str) -> Backend | None:
        """Like :meth:`load`, but None for a backend that cannot be used."""
        try:
            return self.load(name)
        except (BackendNotFoundError, BackendUnavailableError):
            return None

    def _load(self, rec: BackendRecord) -> None:
        try:
            obj = rec.entry_point.load()
            if isinstance(obj, type):
                obj = obj()
            missing = [a for a in ("name", "manifest", "owns", "conv_general_dilated") if not hasattr(obj, a)]
            if missing:
                raise TypeError(f"{rec.target} is not a polyconv backend: it lacks {', '.join(missing)}")
            if obj.name != rec.name:
                raise TypeError(f"{rec.target} calls itself {obj.name!r}, but is registered as {rec.name!r}")
        except Exception as exc:  # a broken plugin never breaks the others
            rec.status, rec.reason = "broken", f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"polyconv: backend {rec.name!r} ({rec.target}, from {rec.distribution!r}) "
                f"failed to load and is skipped: {rec.reason}",
                PolyconvPluginWarning,
                stacklevel=4,
            )
            logger.debug("backend %r failed to load: %s", rec.name, rec.reason)
            return
        try:
            reason = obj.unavailable_reason() if hasattr(obj, "unavailable_reason") else None
        except Exception as exc:  # asking is part of loading: the same rule holds
            reason = f"unavailable_reason() raised {type(exc).__name__}: {exc}"
        rec.backend = obj
        # the status is written last: other threads read it without the lock
        if reason:
            rec.reason, rec.status = str(reason), "unavailable"
        else:
            rec.status = "ok"
        logger.debug("backend %r loaded from %s: %s", rec.name, rec.target, rec.status)

    def candidates(self, declared: bool) -> Iterator[Backend]:
        """The unblocked backends that may own an array, loading them: those
        whose array module is imported, and those registered in-process
        (``declared=True``); or those that declare no array module
        (``declared=False``), which dispatch asks only when no declared
        backend owns the array.  A backend whose module is not imported is
        never loaded here: none of its arrays can exist.  Backends that loaded
        but cannot run here take part (an unavailable backend still says which
        arrays it owns, so a call with them can say why it cannot run)."""
        recs = self.records()
        modules = sys.modules
        for name in self.names():
            rec = recs[name]
            in_process = name in self._in_process
            if declared != (in_process or rec.module is not None):
                continue
            if rec.module is not None and rec.module not in modules:
                continue
            if rec.status == "registered":
                self.try_load(name)
            if rec.backend is not None:
                yield rec.backend

    # -- information ---------------------------------------------------------
    def info(self) -> list[dict[str, Any]]:
        """One dict per registration: name, version, status, reason,
        distribution, target, the manifest's capabilities and the backend's
        ``details()`` (how it computes here; None when it has nothing to add)."""
        blocked = blocked_names()
        rows = []
        for name in sorted(self.records()):
            rec = self.records()[name]
            if name not in blocked:
                self.try_load(name)
            rows.append(_info_row(rec, blocked))
        rows.extend(_info_row(rec, blocked) for rec in self._duplicates)
        return rows


def _info_row(rec: BackendRecord, blocked: frozenset[str]) -> dict[str, Any]:
    is_blocked = rec.name in blocked and rec.status != "duplicate"
    be = rec.backend
    version: str | None = None
    details: str | None = None
    if be is not None and not is_blocked:
        try:
            version = be.version()
        except Exception as exc:  # a version lookup is information only
            version = f"? ({type(exc).__name__})"
    if be is not None and not is_blocked and rec.status == "ok":
        try:  # information only, like the version; plugins need not have it
            details = be.details() if hasattr(be, "details") else None
        except Exception as exc:
            details = f"? ({type(exc).__name__})"
    return {
        "name": rec.name,
        "status": "blocked" if is_blocked else rec.status,
        "reason": "listed in POLYCONV_BLOCK" if is_blocked else rec.reason,
        "version": version,
        "distribution": rec.distribution,
        "target": rec.target,
        "capabilities": be.manifest.as_dict() if be is not None and not is_blocked else None,
        "details": details,
    }


def _entry_points(group: str) -> list[Any]:
    return list(metadata.entry_points(group=group))


def _dist_name(ep: Any) -> str | None:
    dist = getattr(ep, "dist", None)
    return None if dist is None else dist.metadata["Name"]


def _prefer(a: BackendRecord, b: BackendRecord) -> tuple[BackendRecord, BackendRecord]:
    """Which of two registrations of one name wins: polyconv's own, else the first
    by distribution name, so the choice does not depend on sys.path order."""
    if (b.distribution == _BUILTIN_DIST) != (a.distribution == _BUILTIN_DIST):
        return (b, a) if b.distribution == _BUILTIN_DIST else (a, b)
    return (a, b) if (a.distribution or "") <= (b.distribution or "") else (b, a)


#: The process-wide registry.
registry = Registry()
