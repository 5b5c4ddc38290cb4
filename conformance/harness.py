"""The conformance harness: what the suite needs from a backend beyond running it.

A backend's runtime contract (:class:`polyconv.Backend`) is what dispatch
needs: which arrays it owns, how to make and read them, and the convolution
primitive.  Checking a backend against the reference needs a little more,
which only the suite uses, so it lives here, in an object of its own:

* :attr:`Harness.jit_batches` -- whether every eager call compiles (JAX): the
  suite then runs its grids under :meth:`Harness.jit` in batches of cases;
* :meth:`Harness.jit` -- the framework's compiler, for backends declaring the
  ``'jit'`` feature;
* :meth:`Harness.vjp` -- the framework's own autodiff, for backends declaring
  ``'autodiff'``;
* :meth:`Harness.session` -- what the backend switches on while the suite
  runs (JAX: 64-bit types).

A backend package registers its harness under the backend's name in the
entry-point group ``polyconv.harnesses`` (``torch =
"polyconv.backends.torch.harness:harness"``); a backend without one gets the
default :class:`Harness`, which is all a backend without ``'jit'`` or
``'autodiff'`` needs.  The suite loads harnesses; dispatch never does.

Examples
--------
>>> from polyconv.conformance.harness import Harness, harness_for
>>> from polyconv.registry import registry
>>> h = harness_for(registry.load("numpy"))
>>> type(h) is Harness, h.jit_batches
(True, False)
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from polyconv import caching
from polyconv.backend import Backend

__all__ = ["GROUP", "Harness", "harness_for"]

GROUP = "polyconv.harnesses"


class Harness:
    """The default harness: no compiler, no autodiff, nothing to switch on.

    Subclass it for a backend declaring ``'jit'`` or ``'autodiff'``, and
    register an instance (or the class) in the entry-point group
    :data:`GROUP` under the backend's name.
    """

    #: True when every eager call compiles (JAX): the suite then runs its grids
    #: under :meth:`jit` in batches of cases, one compilation per batch, plus an
    #: eager sample.  False: case by case, eagerly, and a sample under :meth:`jit`.
    jit_batches: bool = False

    def jit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` compiled by the framework's compiler (``jax.jit``,
        ``torch.compile``), taking and returning the backend's arrays.  The
        suite checks that polyconv's functions give the same values under it."""
        raise NotImplementedError("this backend's conformance harness has no compiler ('jit')")

    def vjp(self, fn: Callable[..., Any], primals: Sequence[Any], cotangent: Any) -> tuple[Any, ...]:
        """The cotangents of ``primals`` for ``fn(*primals)`` and the output
        cotangent ``cotangent``, by the framework's own autodiff (``jax.vjp``,
        torch autograd).  The suite checks them against the spec-level VJP."""
        raise NotImplementedError("this backend's conformance harness has no autodiff ('autodiff')")

    def session(self) -> contextlib.AbstractContextManager[Any]:
        """What the backend switches on while the suite runs, so that it holds
        every dtype its manifest declares.  Default: nothing."""
        return contextlib.nullcontext()


_found: caching.BoundedCache[str, Harness] = caching.BoundedCache("polyconv.conformance.harnesses", 64)


def harness_for(backend: Backend) -> Harness:
    """The harness registered for ``backend``'s name, or the default one.

    A registration that fails to load is reported as a warning, and the
    default harness is used (the suite then fails any ``'jit'`` or
    ``'autodiff'`` items the backend declares, saying why)."""
    hit = _found.get(backend.name)
    if hit is not None:
        return hit
    harness: Harness = Harness()
    for ep in metadata.entry_points(group=GROUP):
        if ep.name != backend.name:
            continue
        try:
            obj = ep.load()
            harness = obj() if isinstance(obj, type) else obj
        except Exception as exc:
            warnings.warn(
                f"polyconv: the conformance harness of {backend.name!r} ({ep.value}) failed to load: "
                f"{type(exc).__name__}: {exc}",
                stacklevel=2,
            )
        break
    _found.put(backend.name, harness)
    return harness
