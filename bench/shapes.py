"""The benchmark's convolutions: :class:`Shape` and the suite :data:`SUITE`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Shape", "SUITE"]


@dataclass(frozen=True)
class Shape:
    """One benchmark convolution, in PyTorch's terms (``NC<spatial>``, ``OI<spatial>``)."""

    name: str
    lhs: tuple[int, ...]
    rhs: tuple[int, ...]
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    transpose: bool = False  # rhs is then (C_in, C_out / groups, *k), as conv_transpose*d takes it
    output_padding: int = 0

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Shape:
        """The shape whose ``dataclasses.asdict`` went through JSON as ``fields`` (lists back to tuples).

        >>> Shape.from_fields({"name": "s", "lhs": [1, 1, 8], "rhs": [1, 1, 3]}).lhs
        (1, 1, 8)
        """
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        return cls(**kwargs)

    @property
    def nspatial(self) -> int:
        return len(self.lhs) - 2

    def out_spatial(self) -> tuple[int, ...]:
        k = self.rhs[2:]
        if self.transpose:
            return tuple((s - 1) * self.stride - 2 * self.padding + self.dilation * (kk - 1) + self.output_padding + 1
                         for s, kk in zip(self.lhs[2:], k))
        return tuple((s + 2 * self.padding - self.dilation * (kk - 1) - 1) // self.stride + 1
                     for s, kk in zip(self.lhs[2:], k))

    def flops(self) -> float:
        """Multiply-adds times two, counting only products with input elements (not inserted zeros)."""
        n, c = self.lhs[0], self.lhs[1]
        taps = math.prod(self.rhs[2:])
        if self.transpose:
            out_c = self.rhs[1] * self.groups
            return 2.0 * n * math.prod(self.lhs[2:]) * c * (out_c // self.groups) * taps
        return 2.0 * n * self.rhs[0] * math.prod(self.out_spatial()) * (c // self.groups) * taps


SUITE: tuple[Shape, ...] = (
    Shape("resnet 3x3 64->64 56x56 b8", (8, 64, 56, 56), (64, 64, 3, 3), padding=1),
    Shape("stem 7x7/2 3->64 224x224", (1, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3),
    Shape("pointwise 1x1 256->64 56x56", (8, 256, 56, 56), (64, 256, 1, 1)),
    Shape("depthwise 3x3 128ch 56x56", (8, 128, 56, 56), (128, 1, 3, 3), padding=1, groups=128),
    Shape("grouped 3x3 32 groups 256ch 28x28", (8, 256, 28, 28), (256, 8, 3, 3), padding=1, groups=32),
    Shape("dilated 3x3 rate 2 64ch 56x56", (8, 64, 56, 56), (64, 64, 3, 3), padding=2, dilation=2),
    Shape("1-d k=5 128ch 2048", (8, 128, 2048), (128, 128, 5), padding=2),
    Shape("3-d 3x3x3 16->32 32^3", (2, 16, 32, 32, 32), (32, 16, 3, 3, 3), padding=1),
    Shape("transposed 2x upsample 64->32 28x28", (8, 64, 28, 28), (64, 32, 4, 4), stride=2, padding=1,
          transpose=True),
    Shape("tiny 1ch 8x8 3x3", (1, 1, 8, 8), (1, 1, 3, 3), padding=1),
    # large kernels, where the FFT path competes
    Shape("large depthwise 31x31 64ch 64x64", (4, 64, 64, 64), (64, 1, 31, 31), padding=15, groups=64),
    Shape("large 15x15 image 1024x1024", (1, 1, 1024, 1024), (1, 1, 15, 15), padding=7),
    Shape("large 1-d 1023 taps 16ch 16384", (8, 16, 16384), (16, 1, 1023), padding=511, groups=16),
)
