"""Padding arithmetic and output sizes, in canonical (rhs-spatial) order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConvArgumentError, ConvShapeError, ConvTypeError
from .integers import as_int

__all__ = ["PADDING_NAMES", "padtype_to_pads", "dilate_dim", "conv_output_size", "parse_padding", "explicit_pairs"]

PADDING_NAMES = ("SAME", "SAME_LOWER", "VALID")


def dilate_dim(size: int, dilation: int) -> int:
    """Size of an axis of ``size`` elements with ``dilation - 1`` zeros between them."""
    return 0 if size == 0 else 1 + dilation * (size - 1)


def padtype_to_pads(
    in_shape: Sequence[int], window_shape: Sequence[int], window_strides: Sequence[int], padding: str
) -> list[tuple[int, int]]:
    """Explicit ``(low, high)`` pads for a padding name, as ``jax.lax`` computes them.

    ``'SAME'`` pads so the output has ``ceil(in / stride)`` elements, with the
    odd element at the end; ``'SAME_LOWER'`` puts it at the start;
    ``'VALID'`` pads nothing.

    Examples
    --------
    >>> padtype_to_pads((5, 6), (3, 2), (1, 2), 'SAME')
    [(1, 1), (0, 0)]
    >>> padtype_to_pads((4,), (4,), (1,), 'SAME_LOWER')
    [(2, 1)]
    """
    name = padding.upper() if isinstance(padding, str) else padding
    if name == "VALID":
        return [(0, 0)] * len(in_shape)
    if name in ("SAME", "SAME_LOWER"):
        pads = []
        for size, window, stride in zip(in_shape, window_shape, window_strides):
            out = -(-size // stride)
            total = max((out - 1) * stride + window - size, 0)
            small, large = total // 2, total - total // 2
            pads.append((small, large) if name == "SAME" else (large, small))
        return pads
    raise ConvArgumentError(
        "padtype_to_pads", "padding", f"must be one of {', '.join(map(repr, PADDING_NAMES))}", padding
    )


def conv_output_size(padded: int, window: int, stride: int) -> int:
    """Number of windows of ``window`` elements, ``stride`` apart, in ``padded`` elements."""
    if padded < window:
        return 0
    return (padded - window) // stride + 1


def parse_padding(
    padding: Any,
    nspatial: int,
    lhs_spatial: Sequence[int],
    window: Sequence[int],
    strides: Sequence[int],
    lhs_dilation: Sequence[int],
    op: str,
) -> tuple[tuple[int, int], ...]:
    """Resolve ``padding`` (a name or ``n`` pairs) into explicit pairs.

    ``lhs_spatial`` and ``window`` are the lhs spatial sizes and the dilated
    kernel sizes in canonical order.  Negative pads crop; a crop larger than
    the (dilated, padded) axis is an error, as in XLA.
    """
    if isinstance(padding, str):
        if padding.upper() not in PADDING_NAMES:
            raise ConvArgumentError(
                op, "padding",
                f"must be one of {', '.join(map(repr, PADDING_NAMES))} or {nspatial} (low, high) "
                f"pair{'' if nspatial == 1 else 's'}",
                padding,
            )
        if any(d != 1 for d in lhs_dilation):
            raise ConvArgumentError(
                op,
                "padding",
                f"must be explicit (low, high) pairs when lhs_dilation is not 1 "
                f"(lhs_dilation={tuple(lhs_dilation)}); use conv_transpose for string padding",
                padding,
            )
        pads = tuple(padtype_to_pads(lhs_spatial, window, strides, padding))
    else:
        pads = _explicit_pairs(padding, nspatial, op)
    for axis, ((lo, hi), size, ld) in enumerate(zip(pads, lhs_spatial, lhs_dilation)):
        if dilate_dim(size, ld) + lo + hi < 0:
            raise ConvShapeError(
                op,
                "padding",
                f"crops more than spatial axis {axis} holds (size {dilate_dim(size, ld)} after lhs dilation)",
                pads,
            )
    return pads


def _pairs_hint(padding: Any, nspatial: int) -> str | None:
    """For a single integer padding, the pairs that pad that much on both sides of every axis."""
    try:
        p = as_int(padding, bool_message="bool is not a pad")
    except TypeError:
        return None
    return f"To pad {p} on both sides of every spatial axis, write {((p, p),) * nspatial}"


def explicit_pairs(
    padding: Any, nspatial: int, op: str, expected: str, *, ints: bool = False
) -> tuple[tuple[int, int], ...]:
    """Explicit padding as ``nspatial`` ``(low, high)`` pairs of ints: the one
    parser of explicit padding, for the ops and the layers.

    A pair is any two-element iterable of integers (``__index__``, never a
    bool).  With ``ints`` (Flax's forms, for the layers), a single int pads
    both sides of every axis by it, an entry that is an int pads both sides
    of its axis, and a pair's values are checked to be integers before their
    number.  Errors say ``expected`` about ``padding``: a
    :class:`ConvTypeError` for something that is not a sequence (without
    ``ints``, a single int gets a hint to write it as pairs), an entry that is
    not a pair, or a value that is not an integer; a
    :class:`ConvArgumentError` for the wrong number of entries or of values
    in a pair.

    Examples
    --------
    >>> explicit_pairs([(1, 2)], 1, 'op', 'must be pairs')
    ((1, 2),)
    >>> explicit_pairs([2, (0, 1)], 2, 'op', 'must be ints or pairs', ints=True)
    ((2, 2), (0, 1))
    """
    if ints:
        try:
            both = as_int(padding)
        except TypeError:
            pass
        else:
            return ((both, both),) * nspatial
    try:
        items = list(padding)
    except TypeError:
        hint = None if ints else _pairs_hint(padding, nspatial)
        raise ConvTypeError(op, "padding", expected, padding, hint=hint) from None
    if len(items) != nspatial:
        raise ConvArgumentError(op, "padding", expected, padding)
    pads = []
    for item in items:
        if ints:
            try:
                both = as_int(item)
            except TypeError:
                pass
            else:
                pads.append((both, both))
                continue
        try:
            pair = tuple(item)
            if ints:  # the layers' order: the values' type before their number
                pair = tuple(as_int(v) for v in pair)
        except TypeError:
            raise ConvTypeError(op, "padding", expected, padding) from None
        if len(pair) != 2:
            raise ConvArgumentError(op, "padding", expected, padding)
        try:
            lo, hi = (as_int(v, bool_message="bool is not a pad") for v in pair)
        except TypeError:
            raise ConvTypeError(op, "padding", expected, padding) from None
        pads.append((lo, hi))
    return tuple(pads)


def _explicit_pairs(padding: Any, nspatial: int, op: str) -> tuple[tuple[int, int], ...]:
    pairs = "pair" if nspatial == 1 else "pairs"
    expected = f"must be a padding name or a sequence of {nspatial} (low, high) integer {pairs}"
    return explicit_pairs(padding, nspatial, op, expected)
