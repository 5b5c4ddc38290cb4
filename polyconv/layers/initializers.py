"""Parameter initialisers, written once with NumPy, for every framework.

Each initialiser is a Flax-style function ``init(key, shape, dtype=None)``
returning a NumPy array of ``shape`` and ``dtype`` (float32 by default); the
layer puts the array into the inputs' framework, on their device.  ``key``
is any rng kind :func:`polyconv.layers.rng.generator` takes (an int seed, a
NumPy generator or seed sequence, a JAX key, a ``torch.Generator``): a layer
hands each initialiser the key of its parameter (see
:mod:`polyconv.layers.rng`).

The variance-scaling family follows ``jax.nn.initializers.variance_scaling``
(which ``flax.linen.initializers`` re-exports) exactly: the same fan-in and
fan-out (axes ``in_axis``, ``out_axis``, ``batch_axis``; every other axis is
the receptive field), the same modes, and the same distributions, including
the normal truncated to two standard deviations and rescaled by
``0.87962566103423978`` (its standard deviation) so that the variance is
``scale / fan``, and the complex variants.  The draws come from NumPy, so
the values differ from JAX's for the same key; the distribution does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConvArgumentError, ConvShapeError, ConvTypeError
from ..spec import dtype_kind, dtype_name
from .promotion import numpy_dtype
from .rng import generator

__all__ = [
    "Initializer",
    "VarianceScaling",
    "variance_scaling",
    "lecun_normal",
    "lecun_uniform",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "xavier_normal",
    "xavier_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "uniform",
    "constant",
    "zeros",
    "ones",
    "zeros_init",
    "ones_init",
    "compute_fans",
]

#: ``init(key, shape, dtype) -> array``, as in Flax and JAX.
Initializer = Callable[..., Any]

#: standard deviation of a standard normal truncated to (-2, 2)
TRUNCATED_NORMAL_STD = 0.87962566103423978
#: standard deviation of a complex standard normal whose modulus is truncated to 2
COMPLEX_TRUNCATED_NORMAL_STD = 0.95311164380491208

_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")
_DEFAULT_DTYPE = "float32"


def compute_fans(
    shape: Sequence[int],
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
) -> tuple[float, float]:
    """``(fan_in, fan_out)`` of a weight shape, as JAX computes them.

    Axes not in ``in_axis``, ``out_axis`` or ``batch_axis`` form the
    receptive field.

    Examples
    --------
    >>> compute_fans((3, 3, 16, 32))        # a Conv kernel: (*kernel_size, in, out)
    (144.0, 288.0)
    """
    shape = tuple(shape)
    if isinstance(in_axis, int) and in_axis == -2 and len(shape) <= 1:
        raise ConvShapeError(
            "variance_scaling", "shape", "must have at least 2 dimensions with the default in_axis", shape
        )

    def size(axes: int | Sequence[int]) -> int:
        return shape[axes] if isinstance(axes, int) else math.prod(shape[a] for a in axes)

    in_size, out_size, batch_size = size(in_axis), size(out_axis), size(batch_axis)
    receptive = math.prod(shape) / in_size / out_size / batch_size
    return in_size * receptive, out_size * receptive


def _shape(shape: Any, op: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
    except TypeError:
        raise ConvTypeError(op, "shape", "must be a sequence of integers", shape) from None
    if any(d < 0 for d in dims):
        raise ConvArgumentError(op, "shape", "must be a sequence of non-negative integers", shape)
    return dims


def _dtype(dtype: Any, default: Any, op: str, inexact: bool = True) -> np.dtype[Any]:
    dtype = default if dtype is None else dtype
    try:
        name = dtype_name(_DEFAULT_DTYPE if dtype is None else dtype)
    except TypeError:
        raise ConvTypeError(op, "dtype", "must be a dtype", dtype) from None
    if inexact and dtype_kind(name) not in "fc":
        raise ConvTypeError(op, "dtype", "must be a floating or complex dtype", dtype)
    return numpy_dtype(name)


def _truncated_standard_normal(gen: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Standard normal draws truncated to (-2, 2), by rejection (95% accepted)."""
    out = gen.standard_normal(shape)
    flat = out.reshape(-1)
    bad = np.flatnonzero(np.abs(flat) >= 2.0)
    while bad.size:
        flat[bad] = gen.standard_normal(bad.size)
        bad = bad[np.abs(flat[bad]) >= 2.0]
    return out


def _complex_unit(gen: np.random.Generator, modulus: Any, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    theta = 2 * np.pi * gen.random(shape)
    return np.asarray(modulus * np.exp(1j * theta))


@dataclass(frozen=True)
class VarianceScaling:
    """The initialiser :func:`variance_scaling` returns (a picklable callable)."""

    scale: float
    mode: str
    distribution: str
    in_axis: int | Sequence[int] = -2
    out_axis: int | Sequence[int] = -1
    batch_axis: int | Sequence[int] = ()
    dtype: Any = None

    def __post_init__(self) -> None:
        op = "variance_scaling"
        if self.mode not in _MODES:
            raise ConvArgumentError(op, "mode", f"must be one of {', '.join(map(repr, _MODES))}", self.mode)
        if self.distribution not in _DISTRIBUTIONS:
            raise ConvArgumentError(
                op, "distribution", f"must be one of {', '.join(map(repr, _DISTRIBUTIONS))}", self.distribution
            )

    def __call__(self, key: Any, shape: Sequence[int], dtype: Any = None) -> np.ndarray[Any, Any]:
        op = "variance_scaling"
        dims = _shape(shape, op)
        out_dtype = _dtype(dtype, self.dtype, op)
        fan_in, fan_out = compute_fans(dims, self.in_axis, self.out_axis, self.batch_axis)
        denominator = {
            "fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
            "fan_geo_avg": (fan_in * fan_out) ** 0.5,
        }[self.mode]
        variance = self.scale / denominator if denominator else math.inf
        gen = generator(key, op)
        complex_ = out_dtype.kind == "c"
        if self.distribution == "truncated_normal":
            if complex_:  # modulus of a unit-variance complex normal, truncated to 2
                t = (1 - math.exp(-4.0)) * gen.random(dims)
                values = _complex_unit(gen, np.sqrt(-np.log1p(-t)), dims)
                values = values * (math.sqrt(variance) / COMPLEX_TRUNCATED_NORMAL_STD)
            else:
                values = _truncated_standard_normal(gen, dims) * (math.sqrt(variance) / TRUNCATED_NORMAL_STD)
        elif self.distribution == "normal":
            if complex_:  # real and imaginary parts of variance 1/2 each
                values = (gen.standard_normal(dims) + 1j * gen.standard_normal(dims)) * math.sqrt(variance / 2)
            else:
                values = gen.standard_normal(dims) * math.sqrt(variance)
        elif complex_:  # uniform on the disc of unit variance
            values = _complex_unit(gen, np.sqrt(2 * gen.random(dims)), dims) * math.sqrt(variance)
        else:
            values = gen.uniform(-1.0, 1.0, dims) * math.sqrt(3 * variance)
        return np.asarray(values).astype(out_dtype)


def variance_scaling(
    scale: float,
    mode: str,
    distribution: str,
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    dtype: Any = None,
) -> Initializer:
    """Samples of variance ``scale / n``, with ``n`` the fan given by ``mode``.

    As ``jax.nn.initializers.variance_scaling``: ``mode`` is ``'fan_in'``,
    ``'fan_out'``, ``'fan_avg'`` or ``'fan_geo_avg'``; ``distribution`` is
    ``'truncated_normal'`` (a normal truncated to two standard deviations,
    rescaled to the variance), ``'normal'`` or ``'uniform'``.  Complex dtypes
    draw JAX's complex variants (modulus truncated normal, disc uniform).

    Examples
    --------
    >>> init = variance_scaling(2.0, 'fan_in', 'uniform')
    >>> w = init(0, (3, 3, 16, 32))
    >>> w.shape, w.dtype.name, bool(abs(w).max() <= (3 * 2.0 / 144) ** 0.5)
    ((3, 3, 16, 32), 'float32', True)
    """
    return VarianceScaling(scale, mode, distribution, in_axis, out_axis, batch_axis, dtype)


def lecun_normal(
    in_axis: int | Sequence[int] = -2, out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (), dtype: Any = None,
) -> Initializer:
    """``variance_scaling(1.0, 'fan_in', 'truncated_normal')``: the layers' default kernel initialiser.

    Examples
    --------
    >>> w = lecun_normal()(0, (3, 16, 8))
    >>> bool(abs(w).max() < 2 * (1 / 48) ** 0.5 / 0.8796256610342398)
    True
    """
    return variance_scaling(1.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis, dtype)


def lecun_uniform(
    in_axis: int | Sequence[int] = -2, out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (), dtype: Any = None,
) -> Initializer:
    """``variance_scaling(1.0, 'fan_in', 'uniform')``.

    Examples
    --------
    >>> lecun_uniform()(0, (4, 2)).shape
    (4, 2)
    """
    return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def glorot_normal(
    in_axis: int | Sequence[int] = -2, out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (), dtype: Any = None,
) -> Initializer:
    """``variance_scaling(1.0, 'fan_avg', 'truncated_normal')`` (Xavier normal).

    Examples
    --------
    >>> glorot_normal()(0, (4, 2)).shape
    (4, 2)
    """
    return variance_scaling(1.0, "fan_avg", "truncated_normal", in_axis, out_axis, batch_axis, dtype)


def glorot_uniform(
    in_axis: int | Sequence[int] = -2, out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (), dtype: Any = None,
) -> Initializer:
    """``variance_scaling(1.0, 'fan_avg', 'uniform')`` (Xavier uniform).

    Examples
    --------
    >>> glorot_uniform()(0, (4, 2)).shape
    (4, 2)
    """
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis, dtype)


def he_normal(
    in_axis: int | Sequence[int] = -2, out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (), dtype: Any = None,
) -> Initializer:
    """``variance_scaling(2.0, 'fan_in', 'truncated_normal')`` (Kaiming normal).

    Examples
    --------
    >>> he_normal()(0, (4, 2)).shape
    (4, 2)
    """
    return variance_scaling(2.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis, dtype)


def he_uniform(
    in_axis: int | Sequence[int] = -2, out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (), dtype: Any = None,
) -> Initializer:
    """``variance_scaling(2.0, 'fan_in', 'uniform')`` (Kaiming uniform).

    Examples
    --------
    >>> he_uniform()(0, (4, 2)).shape
    (4, 2)
    """
    return variance_scaling(2.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


xavier_normal = glorot_normal
xavier_uniform = glorot_uniform
kaiming_normal = he_normal
kaiming_uniform = he_uniform


@dataclass(frozen=True)
class _Normal:
    stddev: float
    dtype: Any = None

    def __call__(self, key: Any, shape: Sequence[int], dtype: Any = None) -> np.ndarray[Any, Any]:
        dims, out_dtype, gen = _shape(shape, "normal"), _dtype(dtype, self.dtype, "normal"), generator(key, "normal")
        if out_dtype.kind == "c":
            values = (gen.standard_normal(dims) + 1j * gen.standard_normal(dims)) * (self.stddev / math.sqrt(2))
        else:
            values = gen.standard_normal(dims) * self.stddev
        return np.asarray(values).astype(out_dtype)


@dataclass(frozen=True)
class _Uniform:
    scale: float
    dtype: Any = None

    def __call__(self, key: Any, shape: Sequence[int], dtype: Any = None) -> np.ndarray[Any, Any]:
        dims, out_dtype = _shape(shape, "uniform"), _dtype(dtype, self.dtype, "uniform")
        gen = generator(key, "uniform")
        if out_dtype.kind == "c":
            values = (gen.random(dims) + 1j * gen.random(dims)) * self.scale
        else:
            values = gen.random(dims) * self.scale
        return np.asarray(values).astype(out_dtype)


@dataclass(frozen=True)
class _Constant:
    value: Any
    dtype: Any = None

    def __call__(self, key: Any, shape: Sequence[int], dtype: Any = None) -> np.ndarray[Any, Any]:
        out_dtype = _dtype(dtype, self.dtype, "constant", inexact=False)
        return np.full(_shape(shape, "constant"), self.value, dtype=out_dtype)


def normal(stddev: float = 1e-2, dtype: Any = None) -> Initializer:
    """Normal samples of standard deviation ``stddev`` (complex: ``stddev`` of the modulus).

    Examples
    --------
    >>> normal(1.0)(0, (2, 3)).shape
    (2, 3)
    """
    return _Normal(stddev, dtype)


def uniform(scale: float = 1e-2, dtype: Any = None) -> Initializer:
    """Uniform samples in ``[0, scale)`` (complex: real and imaginary parts each).

    Examples
    --------
    >>> w = uniform(2.0)(0, (100,))
    >>> bool(w.min() >= 0 and w.max() < 2)
    True
    """
    return _Uniform(scale, dtype)


def constant(value: Any, dtype: Any = None) -> Initializer:
    """Every element ``value``.

    Examples
    --------
    >>> constant(0.5)(None, (2,))
    array([0.5, 0.5], dtype=float32)
    """
    return _Constant(value, dtype)


def zeros(key: Any, shape: Sequence[int], dtype: Any = None) -> np.ndarray[Any, Any]:
    """Zeros (the layers' default bias initialiser); ``key`` is ignored.

    Examples
    --------
    >>> zeros(None, (3,))
    array([0., 0., 0.], dtype=float32)
    """
    return np.zeros(_shape(shape, "zeros"), dtype=_dtype(dtype, None, "zeros", inexact=False))


def ones(key: Any, shape: Sequence[int], dtype: Any = None) -> np.ndarray[Any, Any]:
    """Ones; ``key`` is ignored.

    Examples
    --------
    >>> ones(None, (2,), 'float64')
    array([1., 1.])
    """
    return np.ones(_shape(shape, "ones"), dtype=_dtype(dtype, None, "ones", inexact=False))


def zeros_init() -> Initializer:
    """:func:`zeros`, as ``flax.linen.initializers.zeros_init()`` returns it."""
    return zeros


def ones_init() -> Initializer:
    """:func:`ones`, as ``flax.linen.initializers.ones_init()`` returns it."""
    return ones
