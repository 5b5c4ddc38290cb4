"""What a backend is: the :class:`Backend` base class and its :class:`Manifest`.

A backend is the object an entry point of the group ``polyconv.backends``
names.  It must be cheap to import (its module may not import its framework
at import time), say which arrays it owns without importing the framework,
and provide the one primitive ``conv_general_dilated(lhs, rhs, spec)``.
Everything it supports is declared in its manifest, which drives dispatch,
the documentation table and the conformance suite's expectations.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import limitations
from .errors import UnsupportedDtypeError, UnsupportedFeatureError
from .spec import ConvSpec

__all__ = ["Backend", "Manifest", "NEUTRAL_TYPES", "is_neutral"]

#: Python objects no framework owns; the chosen backend turns them into arrays.
NEUTRAL_TYPES = (list, tuple, int, float, complex, bool)


def is_neutral(x: Any) -> bool:
    """Whether ``x`` is a Python scalar or nested sequence rather than an array."""
    return isinstance(x, NEUTRAL_TYPES)


@dataclass(frozen=True)
class Manifest:
    """What a backend supports.

    Attributes
    ----------
    dtypes
        Canonical dtype names the backend computes.
    devices
        Device kinds it runs on (``'cpu'``, ``'cuda'``...).
    ops
        Ops it implements natively; the others are derived from
        ``conv_general_dilated``.
    features
        Other capabilities: ``'autodiff'``, ``'jit'``, ``'lhs_dilation'``,
        ``'batch_group_count'``, ``'feature_group_count'``,
        ``'preferred_element_type'``; and how it rounds, for the conformance
        suite's tolerances: ``'reduced_precision'`` (off the CPU, float32
        inputs rounded as the precision allows and half summed in half),
        ``'half_accumulation'`` (float16 and bfloat16 summed in their own
        type on every device).
    max_spatial_dims
        Largest number of spatial dimensions, or None for any.
    derived
        True (the default) when the ops missing from ``ops`` may be derived
        from ``conv_general_dilated`` (:mod:`polyconv.derive` manipulates the
        backend's arrays through their array-API namespace).  False for
        arrays without one: only the ops in ``ops`` are supported.
    fallback
        True for a generic backend used for arrays nobody else owns.
    priority
        Breaks ties when two backends own the same array type (higher wins).
    lacks
        Named limitations of :mod:`polyconv.limitations` (``'negative_padding'``,
        ``'asymmetric_padding'``, ``'zero_size'``, ``'window_larger_than_input'``,
        ``'layouts'``, ``'strides_larger_than_window'``, ``'rhs_dilation'``,
        ``'no_spatial_dims'``): a call that needs one raises
        :class:`~polyconv.errors.UnsupportedFeatureError` before the backend
        runs, and the conformance suite counts the case unsupported.
    supports
        None, or a function ``supports(spec, op)`` for what the fields cannot
        say (negative padding, a layout, zero-size operands, a window larger
        than the input, one op but not another): it returns None when the
        backend runs ``spec`` (the primitive's :class:`~polyconv.spec.ConvSpec`)
        for ``op`` (the public op's name), else what it lacks, in words that
        follow "does not support" (``'negative padding'``).  A call it refuses
        raises :class:`~polyconv.errors.UnsupportedFeatureError` before the
        backend runs, and the conformance suite counts the case unsupported.
    thread_safe
        True (the default) when calls may run from several threads at once,
        on different operands, each giving its own correct result (the
        conformance suite's ``threads`` items check it).  A backend that keeps
        shared scratch state declares False, and callers must serialise.
    """

    dtypes: frozenset[str]
    devices: tuple[str, ...] = ("cpu",)
    ops: frozenset[str] = frozenset({"conv_general_dilated"})
    features: frozenset[str] = frozenset()
    max_spatial_dims: int | None = None
    fallback: bool = False
    priority: int = 0
    notes: tuple[str, ...] = field(default=())
    derived: bool = True
    thread_safe: bool = True
    supports: Callable[[ConvSpec, str], str | None] | None = None
    lacks: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        limitations.check_names(self.lacks)

    def check(self, spec: ConvSpec, backend: str, op: str) -> None:
        """Raise a polyconv error if this backend cannot run ``spec``."""
        if not self.derived and op not in self.ops:
            raise UnsupportedFeatureError(
                f"{op}: the {backend!r} backend implements only {', '.join(sorted(self.ops))}, and its arrays "
                "have no array-API namespace to derive the other ops with"
            )
        if spec.dtype not in self.dtypes:
            raise UnsupportedDtypeError(
                op, "lhs", f"has a dtype the {backend!r} backend does not support "
                f"(supported: {', '.join(sorted(self.dtypes))})", got=spec.dtype,
            )
        if spec.preferred_element_type is not None and spec.preferred_element_type not in self.dtypes:
            raise UnsupportedDtypeError(
                op, "preferred_element_type", f"is a dtype the {backend!r} backend does not support "
                f"(supported: {', '.join(sorted(self.dtypes))})", got=spec.preferred_element_type,
            )
        if self.max_spatial_dims is not None and spec.nspatial > self.max_spatial_dims:
            raise UnsupportedFeatureError(
                f"{op}: the {backend!r} backend supports at most {self.max_spatial_dims} spatial "
                f"dimensions; got {spec.nspatial}"
            )
        for feature, used in (
            ("lhs_dilation", any(d != 1 for d in spec.lhs_dilation)),
            ("feature_group_count", spec.feature_group_count > 1),
            ("batch_group_count", spec.batch_group_count > 1),
            ("preferred_element_type", spec.preferred_element_type is not None),
        ):
            if used and feature not in self.features:
                raise UnsupportedFeatureError(f"{op}: the {backend!r} backend does not support {feature}")
        if self.lacks:
            needed = limitations.needed(spec, self.lacks)
            if needed:
                raise UnsupportedFeatureError(
                    f"{op}: the {backend!r} backend does not support {limitations.describe(needed[0])}")
        lacks = self.supports(spec, op) if self.supports is not None else None
        if lacks:
            raise UnsupportedFeatureError(f"{op}: the {backend!r} backend does not support {lacks}")

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form, for ``backend_info()`` and reports."""
        return {
            "dtypes": sorted(self.dtypes),
            "devices": list(self.devices),
            "ops": sorted(self.ops),
            "features": sorted(self.features),
            "max_spatial_dims": self.max_spatial_dims,
            "derived": self.derived,
            "fallback": self.fallback,
            "thread_safe": self.thread_safe,
            "lacks": sorted(self.lacks),
            "supports_hook": self.supports is not None,
            "notes": list(self.notes),
        }


class Backend:
    """Base class of backends: the runtime contract, what dispatch needs.

    Subclasses set ``name`` and ``manifest`` and implement :meth:`owns`,
    :meth:`asarray` and :meth:`conv_general_dilated`; :meth:`from_numpy` and
    :meth:`to_numpy` for the layers and the conformance suite; the rest is
    optional.  What only the conformance suite needs (the framework's compiler
    and autodiff) is a separate object, :class:`polyconv.conformance.harness.Harness`.
    """

    name: str = ""
    manifest: Manifest
    #: True when all of the backend's arrays live on one device (NumPy's, in host
    #: memory): a repeated call then skips the device check.
    single_device: bool = False
    #: The distribution (the name ``pip`` installs) whose version :meth:`version`
    #: reports by default; None: no version unless the subclass says one.
    distribution: str | None = None

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this backend's framework.

        Must not import the framework: check ``sys.modules`` first.
        """
        raise NotImplementedError

    def accepts(self, x: Any) -> bool:
        """Whether this backend can take ``x`` when asked for by name."""
        return self.owns(x)

    def takes_alongside(self, x: Any) -> bool:
        """Whether this backend takes ``x``, an array of another framework, as an
        operand next to arrays it owns.  Default: never (operands of two
        frameworks are an error).  The dask backend takes the NumPy and CuPy
        arrays its chunks are made of (a kernel held in memory, say)."""
        return False

    def asarray(self, x: Any, like: Any = None) -> Any:
        """Turn a Python scalar or nested list into this framework's array,
        on the device of ``like`` (the other operand) when one is given."""
        raise NotImplementedError

    def from_numpy(self, a: Any, device: str | None = None) -> Any:
        """A copy of the NumPy array ``a`` as this framework's array, on
        ``device`` (the framework's default when None).  Used by the layers
        (parameters made with NumPy, then placed in the input's framework) and
        by the conformance suite (the same operands for every backend)."""
        raise NotImplementedError

    def to_numpy(self, x: Any) -> Any:
        """A NumPy copy of this framework's array ``x`` (bfloat16 as
        ``ml_dtypes.bfloat16``), fetched from any device."""
        raise NotImplementedError

    def device(self, x: Any) -> str:
        """The device ``x`` lives on, as a string (``'cpu'``, ``'cuda:0'``)."""
        return "cpu"

    def same_device(self, x: Any, y: Any) -> bool:
        """Whether ``x`` and ``y`` live on one device: the check of every repeated
        call, so a backend may answer faster than by comparing :meth:`device`."""
        return self.device(x) == self.device(y)

    def version(self) -> str | None:
        """Version of the framework, when it is installed: by default that of
        :attr:`distribution`, from its metadata (nothing is imported)."""
        if self.distribution is None:
            return None
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def unavailable_reason(self) -> str | None:
        """Why the backend cannot run here (no framework, no GPU), or None."""
        return None

    def explain(self, op: str, spec: Any) -> Any:
        """Optional: how this backend computes ``op`` for ``spec`` (parsed and
        checked) in the current FFT mode, as a :class:`polyconv.explanation.Strategy`
        (its name, why, the FFT decisions taken), for :func:`polyconv.explain`
        and the ``polyconv`` DEBUG log; None when it has nothing to add.  Must
        compute nothing (cached plans may be made)."""
        return None

    def details(self) -> str | None:
        """Optional: one line on how the backend computes here (a library or
        path it chose, say), for ``backend_info()`` and ``python -m polyconv
        info``.  Must be cheap and import no framework.  None: nothing to add."""
        return None

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        """The primitive: run the validated ``spec`` on two arrays it owns."""
        raise NotImplementedError

    def runner(self, op: str, spec: Any) -> Callable[..., Any] | None:
        """Optional: a function of the op's array arguments alone (``lhs, rhs``;
        ``lhs`` for patches; ``lhs, rhs, cotangent`` for the VJP) that runs
        ``op`` for ``spec``, with everything that depends only on the spec
        worked out in advance.  polyconv caches it with the call's other
        decisions and calls it instead of the op's method or derivation.
        None (the default): use the method, or derive the op.

        A repeated call checks that the operands share a device
        (:meth:`same_device`) before it calls the runner, unless the runner
        has an attribute ``checks_devices`` that is true: such a runner
        tests the devices itself, on the way to its work, and calls
        :func:`polyconv.dispatch.check_devices` (which raises polyconv's
        error) where they may differ."""
        return None
