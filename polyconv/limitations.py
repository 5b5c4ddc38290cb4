"""Named limitations a backend's manifest can declare (``Manifest.lacks``).

Real frameworks lack parts of ``jax.lax``'s convolution: negative padding,
empty operands, windows larger than the input, layouts other than their own.
A backend declares what it lacks by name; a call that needs it raises
:class:`~polyconv.errors.UnsupportedFeatureError` before the backend runs, and
the conformance suite counts the case unsupported, not failed.  What no name
here says goes in the manifest's ``supports`` hook.

Each limitation is judged on the primitive's :class:`~polyconv.spec.ConvSpec`
of the call (for ``conv_transpose``, the convolution it is defined by), which
has padding already resolved: ``'SAME'``, ``'SAME_LOWER'`` and ``'VALID'``
reach a backend as explicit pairs, so a backend never needs to support the
strings themselves.

Examples
--------
>>> from polyconv.spec import conv_spec
>>> spec = conv_spec((1, 1, 4), (1, 1, 2), "float32", "float32", (1,), [(-1, 0)])
>>> needed(spec)
('negative_padding', 'asymmetric_padding')
>>> describe("negative_padding")
'negative padding'
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .spec import ConvSpec

__all__ = ["LIMITATIONS", "describe", "needed", "check_names"]


def _negative_padding(spec: ConvSpec) -> bool:
    return any(lo < 0 or hi < 0 for lo, hi in spec.padding)


def _asymmetric_padding(spec: ConvSpec) -> bool:
    return any(lo != hi for lo, hi in spec.padding)


def _zero_size(spec: ConvSpec) -> bool:
    return 0 in (math.prod(spec.lhs_shape), math.prod(spec.rhs_shape), math.prod(spec.out_shape))


def _window_larger_than_input(spec: ConvSpec) -> bool:
    """The dilated window spans more than the (lhs-dilated, unpadded) input on some axis."""
    return any(
        (w - 1) * rd + 1 > (i - 1) * ld + 1
        for w, rd, i, ld in zip(spec.window, spec.rhs_dilation, spec.lhs_spatial, spec.lhs_dilation)
    )


def _layouts(spec: ConvSpec) -> bool:
    """Any layout but the canonical ``NC...``, ``OI...``, ``NC...``."""
    canonical = tuple(range(spec.nspatial + 2))
    return any(tuple(s) != canonical for s in spec.dimension_numbers)


def _strides_larger_than_window(spec: ConvSpec) -> bool:
    return any(s > (w - 1) * rd + 1 for s, w, rd in zip(spec.window_strides, spec.window, spec.rhs_dilation))


def _rhs_dilation(spec: ConvSpec) -> bool:
    return any(d != 1 for d in spec.rhs_dilation)


def _no_spatial_dims(spec: ConvSpec) -> bool:
    return spec.nspatial == 0


#: name -> (the words after "does not support", whether a spec needs it).
LIMITATIONS: dict[str, tuple[str, Callable[[ConvSpec], bool]]] = {
    "negative_padding": ("negative padding", _negative_padding),
    "asymmetric_padding": ("asymmetric padding (a different low and high pad on an axis)", _asymmetric_padding),
    "zero_size": ("zero-size operands or results", _zero_size),
    "window_larger_than_input": ("a dilated window larger than the input", _window_larger_than_input),
    "layouts": ("layouts other than NC..., OI..., NC...", _layouts),
    "strides_larger_than_window": ("window strides larger than the dilated window", _strides_larger_than_window),
    "rhs_dilation": ("rhs_dilation (kernel dilation)", _rhs_dilation),
    "no_spatial_dims": ("convolutions with no spatial dimensions", _no_spatial_dims),
}


def check_names(names: frozenset[str]) -> None:
    """Raise ``ValueError`` naming any of ``names`` that is not a known limitation."""
    unknown = sorted(set(names) - set(LIMITATIONS))
    if unknown:
        raise ValueError(
            f"Manifest.lacks: unknown limitation(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(LIMITATIONS)} (anything else goes in Manifest.supports)"
        )


def describe(name: str) -> str:
    """The words for limitation ``name`` in the error ("does not support ...")."""
    return LIMITATIONS[name][0]


def needed(spec: ConvSpec, among: frozenset[str] | None = None) -> tuple[str, ...]:
    """The limitations (of ``among``, default all) that ``spec`` runs into, in table order."""
    return tuple(name for name, (_, needs) in LIMITATIONS.items()
                 if (among is None or name in among) and needs(spec))
