"""The conformance harness: what the suite needs from a backend beyond running it.

A backend's runtime contract (:class:`polyconv.Backend`) is what dispatch
needs: which arrays it owns, how to make and read them, and the convolution
primitive.  Checking a backend against the reference needs a little more,
which only the suite uses, so it lives here, in an object of its own:

* :attr:`Harness.jit_batches` -- whether every eager call compiles (JAX): the
  suite then runs its grids under :meth:`Harness.jit` in batches of cases;
* :meth:`Harness.jit` -- the framework's compiler, for backends declaring the
  ``'jit'`` feature (``thorough=True`` in the suite's long tier);
* :meth:`Harness.vjp` -- the framework's own autodiff, for backends declaring
  ``'autodiff'``;
* :meth:`Harness.session` -- what the backend switches on while the suite
  runs (JAX: 64-bit types);
* :meth:`Harness.materialize` -- the operands and results of a call, computed
  together once (lazy frameworks: dask), for the suite to read;
* :meth:`Harness.shares_memory` -- whether two of the backend's arrays share
  memory (no result may share memory with an operand);
* :meth:`Harness.overwrite` -- change an operand in place, to check that a
  backend caches nothing per array object.

A backend package registers its harness under the backend's name in the
entry-point group ``polyconv.harnesses`` (``torch =
"polyconv.backends.torch.conformance_harness:harness"``); a backend without one gets the
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

import numpy as np

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

    def jit(self, fn: Callable[..., Any], thorough: bool = False) -> Callable[..., Any]:
        """``fn`` compiled by the framework's compiler (``jax.jit``,
        ``torch.compile``), taking and returning the backend's arrays.  The
        suite checks that polyconv's functions give the same values under it.
        ``thorough``: the suite's long tier is running; a harness may compile
        with a cheaper pipeline otherwise (torch: no Inductor code generation)."""
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

    def overwrite(self, x: Any, values: Any) -> bool:
        """Write ``values`` (an array of the backend, of ``x``'s shape and dtype)
        into ``x`` in place and return True, or return False for a framework
        whose arrays are immutable (JAX).  Default: ``x[...] = values``."""
        try:
            x[...] = values
        except TypeError:  # immutable arrays: nothing can change under the backend's feet
            return False
        return True

    def materialize(self, arrays: Sequence[Any]) -> list[Any]:
        """``arrays`` (a call's operands and results) computed, all together and
        once: what the suite reads values (:meth:`polyconv.Backend.to_numpy`)
        and memory (:meth:`shares_memory`) from.  A lazy framework computes them
        in one go (dask: one graph, so a chunk a result passes through unchanged
        is the very object of the operand's).  Default: as they are."""
        return list(arrays)

    def shares_memory(self, a: Any, b: Any) -> bool:
        """Whether arrays ``a`` and ``b`` of the backend may share memory (their
        address ranges overlap).  Default: NumPy arrays directly, host arrays
        through DLPack (``np.from_dlpack``, no copy), device arrays through
        ``__cuda_array_interface__``; False for arrays none of these reach."""
        first, second = _address_range(a), _address_range(b)
        if first is None or second is None:
            return False
        return first[0] < second[1] and second[0] < first[1]


def _address_range(x: Any) -> tuple[int, int] | None:
    """``[first byte, last byte + 1)`` of the memory an array's elements span, or None
    when it cannot be told (or the array is empty)."""
    try:
        iface = getattr(x, "__cuda_array_interface__", None)
    except Exception:  # JAX before 0.4.2x raises its own error on CPU arrays instead of AttributeError
        iface = None
    if iface is None:
        try:
            host = x if isinstance(x, np.ndarray) else np.from_dlpack(x)
        except Exception:  # not a host array, or not exportable: nothing to compare
            return None
        iface = host.__array_interface__
        itemsize = host.itemsize
    else:
        itemsize = np.dtype(iface["typestr"]).itemsize
    shape = iface["shape"]
    if 0 in shape:
        return None
    strides = iface.get("strides")
    if strides is None:  # C-contiguous
        strides = tuple(itemsize * int(np.prod(shape[i + 1:])) for i in range(len(shape)))
    start = int(iface["data"][0])
    low = start + sum(s * (n - 1) for s, n in zip(strides, shape) if s < 0)
    high = start + sum(s * (n - 1) for s, n in zip(strides, shape) if s > 0) + itemsize
    return low, high


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
