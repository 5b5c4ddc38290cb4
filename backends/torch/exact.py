"""Exact integer convolution from floating-point convolutions.

PyTorch convolves int64 tensors on the CPU, exactly (modulo 2**64), but CUDA
has no integer convolution.  There, a float64 convolution is exact while
every window sum stays below 2**53: for operands of at most 16 bits that is
any window of fewer than ``2**(53 - 2 * bits)`` products.  Wider integers are
split into 16-bit limbs, ``x = sum_i x_i * 2**(16 i)`` (the low limbs
unsigned, the top one signed), and ``x * w`` modulo 2**64 is the sum of the
limb products ``x_i * w_j * 2**(16 (i + j))`` with ``i + j < 4``: each a
float64 convolution of values below 2**16, exact for windows of fewer than
2**21 products, recombined in wrapping int64 arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from polyconv.errors import UnsupportedFeatureError

__all__ = ["integer_conv", "MAX_LIMB_CONTRACTION"]

#: Longest dot product the limb convolutions keep exact (16-bit by 16-bit products).
MAX_LIMB_CONTRACTION = 2**21


def _limbs(x: Any, count: int) -> list[Any]:
    parts = [(x >> (16 * i)) & 0xFFFF for i in range(count - 1)]
    return [*parts, x >> (16 * (count - 1))]  # arithmetic shift: the top limb keeps the sign


def integer_conv(
    conv: Callable[[Any, Any], Any], x: Any, w: Any, in_bits: int, out_bits: int, contraction: int, op: str
) -> Any:
    """``conv`` (a float64 convolution of two tensors) made exact for int64
    tensors ``x`` and ``w`` holding values of ``in_bits`` bits; returns int64,
    exact modulo ``2**out_bits``."""
    if in_bits <= 16 and contraction < 2 ** (53 - 2 * in_bits):
        return torch.round(conv(x.double(), w.double())).long()
    if contraction >= MAX_LIMB_CONTRACTION:
        raise UnsupportedFeatureError(
            f"{op}: exact integer convolution on {x.device.type} needs windows of fewer than "
            f"{MAX_LIMB_CONTRACTION} products; got {contraction}"
        )
    count = (min(out_bits, 64) + 15) // 16  # limb products past 2**out_bits vanish modulo it
    xs, ws = _limbs(x, count), _limbs(w, count)
    total = None
    for i in range(count):
        for j in range(count - i):
            part = torch.round(conv(xs[i].double(), ws[j].double())).long() * (1 << (16 * (i + j)))
            total = part if total is None else total + part
    assert total is not None
    return total
