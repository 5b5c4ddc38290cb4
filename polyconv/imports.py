"""Run a callback once a module has been imported, now or later.

Some backends must do a little work as soon as their framework exists, not
on their first call: the torch backend registers polyconv's functions with
``torch.compile``, whose first trace may come before any eager call.  polyconv
never imports a framework itself, so it waits for the user to: a finder on
``sys.meta_path`` notices the import of the named module, lets the normal
machinery load it, and calls the callback right after.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["when_imported"]

_pending: dict[str, list[Callable[[], None]]] = {}
_lock = threading.Lock()


def when_imported(module: str, callback: Callable[[], None]) -> None:
    """Call ``callback()`` once the top-level ``module`` is imported: at once
    if it already is, else right after its import finishes.  A callback that
    raises is reported as a warning; the import itself always succeeds."""
    if module in sys.modules:
        _call(module, callback)
        return
    with _lock:
        _pending.setdefault(module, []).append(callback)
        if not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())


def _call(module: str, callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception as exc:
        warnings.warn(f"polyconv: preparing for {module} failed ({type(exc).__name__}: {exc})", stacklevel=3)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loader of a watched module."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: Any, name: str) -> None:
        self._inner = inner
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._inner.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        with _lock:
            callbacks = _pending.pop(self._name, [])
        for callback in callbacks:
            _call(self._name, callback)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package...
        return getattr(self._inner, name)
