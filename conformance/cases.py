"""Convolution cases: a curated grid of edge cases and a random generator.

A :class:`ConvCase` is plain data (shapes, arguments, dtype) that makes its
own operands from a seed, with signed values.  :func:`grid` covers every
parameter of ``conv_general_dilated`` and their combinations over 0 to 3
spatial dimensions and every layout family; :func:`dtype_grid` runs a few
demanding geometries in every dtype; :func:`random_case` draws from the
whole parameter space.

The other operations have their own plain-data cases, made the same way:
:class:`TransposeCase` (:func:`transpose_grid`, :func:`random_transpose_case`),
:class:`PatchesCase` (:func:`random_patches_case`) and :class:`LocalCase`
(:func:`random_local_case`).  The gradients use the forward cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from polyconv.spec import conv_spec, patches_spec
from polyconv.spec.dimension_numbers import channels_last
from polyconv.spec.dtypes import numpy_dtype

if TYPE_CHECKING:
    from dataclasses import Field

__all__ = [
    "ConvCase",
    "has_ml_dtypes",
    "grid",
    "dtype_grid",
    "random_case",
    "random_cases",
    "make_operand",
    "VALUES",
    "DTYPES",
    "nonfinite_grid",
    "nonfinite_transpose_grid",
    "transpose_dtype_grid",
    "extremes_grid",
    "nonfinite_zeros_grid",
    "large_grid",
    "large_transpose_grid",
    "precision_grid",
    "with_zeros",
    "WRAP_COUNTS",
    "PRECISIONS",
    "LAX_PRECISION",
    "TransposeCase",
    "PatchesCase",
    "LocalCase",
    "transpose_grid",
    "random_transpose_case",
    "random_transpose_cases",
    "random_patches_case",
    "random_patches_cases",
    "random_local_case",
    "random_local_cases",
    "patches_case_of",
    "local_case_of",
]

#: Every dtype the cases use, narrowest first within a kind.
DTYPES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
)

_SPATIAL = "DHW"


class _SeededCase:
    """What every case class shares: operands drawn from the case's seed, in
    the order of ``_operands`` (signed values, see :func:`make_operand`), the
    op's other arguments as keywords, and the case's name as its string."""

    _operands: ClassVar[tuple[str, ...]] = ("lhs_shape", "rhs_shape")
    name: str
    seed: int
    dtype: str
    if TYPE_CHECKING:  # every case class is a dataclass (what fields() needs)
        __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def operands(self) -> tuple[np.ndarray, ...]:
        """NumPy operands of the case's dtype, drawn from its seed (and its
        ``values`` pattern, where it has one: see :func:`make_operand`)."""
        rng = np.random.default_rng(self.seed)
        values = getattr(self, "values", "random")
        patterns = [values] * len(self._operands)
        if values == "nonfinite-kernel":  # the lhs finite, the kernel not
            patterns = ["random", "nonfinite"]
        if values == "nonfinite-zeros":  # the lhs non-finite, the kernel finite with exact zeros
            patterns = ["nonfinite", "random"]
        made = tuple(make_operand(rng, getattr(self, shape), self.dtype, v)
                     for shape, v in zip(self._operands, patterns))
        if values == "nonfinite-zeros":
            made = (made[0], with_zeros(rng, made[1], self._kernel_axes()), *made[2:])
        return made

    def _kernel_axes(self) -> tuple[int, ...]:
        """The kernel's axes as (out features, in features, *spatial) (the rhs spec)."""
        raise ValueError(f"{type(self).__name__} has no 'nonfinite-zeros' values pattern")

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the case's op other than the operands: every
        field but the operands' shapes, the name, the seed, the dtype, the
        values pattern and the tags."""
        skip = {*self._operands, "name", "seed", "dtype", "values", "tags"}
        kw = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        precision = kw.get("precision")
        if isinstance(precision, str) and precision.startswith(LAX_PRECISION):  # a jax.lax.Precision: needs JAX
            from jax import lax

            kw["precision"] = getattr(lax.Precision, precision.removeprefix(LAX_PRECISION))
        return kw

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class ConvCase(_SeededCase):
    """One call of ``conv_general_dilated``, without arrays."""

    name: str
    lhs_shape: tuple[int, ...]
    rhs_shape: tuple[int, ...]
    window_strides: tuple[int, ...]
    padding: Any
    lhs_dilation: tuple[int, ...] | None = None
    rhs_dilation: tuple[int, ...] | None = None
    dimension_numbers: Any = None
    feature_group_count: int = 1
    batch_group_count: int = 1
    precision: Any = None
    preferred_element_type: str | None = None
    dtype: str = "float64"
    seed: int = 0
    values: str = "random"
    tags: frozenset[str] = field(default=frozenset(), compare=False)

    def _kernel_axes(self) -> tuple[int, ...]:
        spec = conv_spec(self.lhs_shape, self.rhs_shape, self.dtype, self.dtype, **self.kwargs())
        return tuple(spec.dimension_numbers.rhs_spec)

    def with_dtype(self, dtype: str, preferred: str | None = None) -> ConvCase:
        """The same geometry in another dtype."""
        suffix = f"{dtype}->{preferred}" if preferred else dtype
        return replace(self, dtype=dtype, preferred_element_type=preferred, name=f"{self.name}[{suffix}]")


#: The value patterns of :func:`make_operand` (a case's ``values`` may also be
#: ``'nonfinite-kernel'``: a random lhs and a ``'nonfinite'`` kernel; or
#: ``'nonfinite-zeros'``: a ``'nonfinite'`` lhs and a random kernel with exact
#: zeros, :func:`with_zeros`).
VALUES = ("random", "nonfinite", "min", "max", "alternating", "ones", "broadcast", "range")

#: A case's ``precision`` written ``LAX_PRECISION + name`` is ``jax.lax.Precision.<name>``
#: in its :meth:`ConvCase.kwargs` (cases stay plain data; the value needs JAX).
LAX_PRECISION = "jax.lax.Precision."


def with_zeros(rng: np.random.Generator, kernel: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``kernel`` (axes ``(out, in, *spatial)`` in ``axes``) with exact zeros: one
    whole tap (every feature pair), one feature pair (every tap) and one row (an
    index of the first spatial axis); without spatial axes, the feature pair only.
    Where such a zero meets an Inf or NaN of the input the product is NaN, and a
    backend that skips zero taps, pairs or rows never forms it."""
    w = np.array(kernel, copy=True)
    if w.size == 0:
        return w
    o_axis, i_axis, *spatial = axes

    def zero(at: dict[int, int]) -> None:
        w[tuple(at.get(axis, slice(None)) for axis in range(w.ndim))] = 0

    if spatial:
        zero({axis: int(rng.integers(w.shape[axis])) for axis in spatial})
        zero({spatial[0]: int(rng.integers(w.shape[spatial[0]]))})
    zero({o_axis: int(rng.integers(w.shape[o_axis])), i_axis: int(rng.integers(w.shape[i_axis]))})
    return w


def make_operand(rng: np.random.Generator, shape: tuple[int, ...], dtype: str, values: str = "random") -> np.ndarray:
    """Operand values of ``dtype`` following the pattern ``values``:

    ``'random'``
        signed random values: integers over their whole range (so integer
        results wrap), floats and complex numbers from a normal
        distribution, exactly representable in the dtype;
    ``'nonfinite'``
        random floats with about one element in six replaced by ``inf``,
        ``-inf`` or NaN (floating dtypes only);
    ``'min'``, ``'max'``, ``'alternating'``
        every element the dtype's smallest or largest value (False or True
        for bool), or the two alternating in C order (integer and bool
        dtypes only);
    ``'ones'``
        every element one (for long reductions);
    ``'broadcast'``
        random, but constant along the first axis longer than 1 (operands
        that can be stride-0 broadcasts);
    ``'range'``
        floating and complex dtypes only: random signs, magnitudes
        ``2**e`` with ``e`` uniform over the dtype's own exponent range halved
        (``minexp / 2`` to ``maxexp / 2 - 4``), so products span the
        whole range (bfloat16 goes far past float16's 65504 and below its
        ``2**-24``).
    """
    if values in ("min", "max", "alternating", "ones"):
        if dtype.startswith(("float", "bfloat", "complex")) and values != "ones":
            raise ValueError(f"the {values!r} pattern is for integer and bool dtypes, not {dtype}")
        if values == "ones":
            return np.ones(shape, numpy_dtype(dtype))
        lo, hi = (False, True) if dtype == "bool" else (np.iinfo(dtype).min, np.iinfo(dtype).max)
        if values != "alternating":
            return np.full(shape, lo if values == "min" else hi, dtype=dtype)
        # indexing a pair of the dtype itself: np.where would promote int64/uint64 extremes through float64
        flat = np.array([lo, hi], dtype=dtype)[np.arange(int(np.prod(shape))) % 2]
        return flat.reshape(shape)
    if values == "broadcast":  # random, constant along the first axis longer than 1
        axis = next((i for i, n in enumerate(shape) if n > 1), None)
        if axis is None:
            return make_operand(rng, shape, dtype)
        first = make_operand(rng, (*shape[:axis], 1, *shape[axis + 1:]), dtype)
        constant: np.ndarray = np.broadcast_to(first, shape).copy()
        return constant
    if values == "range":
        if not dtype.startswith(("float", "bfloat", "complex")):
            raise ValueError(f"the 'range' pattern is for floating and complex dtypes, not {dtype}")
        part = {"complex64": "float32", "complex128": "float64"}.get(dtype, dtype)
        # bfloat16 has float32's exponents (and older NumPy with ml_dtypes 0.3 has no finfo of it)
        info = np.finfo(np.float32 if part == "bfloat16" else numpy_dtype(part))

        def spread() -> np.ndarray:
            exponent = rng.uniform(info.minexp / 2, info.maxexp / 2 - 4, shape)
            sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
            return (sign * np.exp2(exponent)).astype(numpy_dtype(part))

        if part != dtype:
            return (spread().astype(dtype) + 1j * spread()).astype(dtype)
        return spread()
    if values not in ("random", "nonfinite"):
        raise ValueError(f"values must be one of {VALUES}; got {values!r}")
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(np.bool_)
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    if dtype.startswith("complex"):
        part = "float32" if dtype == "complex64" else "float64"
        re = rng.standard_normal(shape).astype(part)
        im = rng.standard_normal(shape).astype(part)
        out = (re + 1j * im).astype(dtype)
    else:
        out = rng.standard_normal(shape).astype(numpy_dtype(dtype))  # bfloat16 through ml_dtypes
    if values == "nonfinite":
        special = np.array([np.inf, -np.inf, np.nan])[rng.integers(0, 3, shape)]
        out = np.where(rng.random(shape) < 1 / 6, special.astype(out.dtype), out)
    return out


# -- the curated grid --------------------------------------------------------

def _layouts(nd: int) -> list[tuple[str, Any]]:
    """Layout families for ``nd`` spatial dims: (family name, dimension_numbers)."""
    sp = _SPATIAL[3 - nd :]
    fams: list[tuple[str, Any]] = [
        ("default", None),
        ("NC-OI", (f"NC{sp}", f"OI{sp}", f"NC{sp}")),
        ("NHWC-HWIO", channels_last(sp)),
        ("mixed", (f"N{sp}C", f"OI{sp}", f"NC{sp}")),
        ("odd", (f"C{sp[::-1]}N", f"I{sp}O", f"{sp}NC")),
    ]
    if nd >= 2:  # the rhs spatial order differs from the lhs one: strides follow the rhs
        fams.append(("rhs-order", (f"N{sp}C", f"O{sp[::-1]}I", f"N{sp[::-1]}C")))
    return fams


def _place(spec: str | None, sizes: dict[str, int], sp: str, pair: str) -> tuple[int, ...]:
    if spec is None:
        spec = pair + sp
    return tuple(sizes[c] for c in spec)


def _build(
    name: str,
    nd: int,
    layout: tuple[str, Any],
    *,
    batch: int = 2,
    cin: int = 4,
    cout: int = 6,
    size: tuple[int, ...] = (7, 6, 5),
    window: tuple[int, ...] = (3, 2, 3),
    strides: int | tuple[int, ...] = 1,
    padding: Any = "VALID",
    lhs_dilation: int | None = None,
    rhs_dilation: int | None = None,
    fgc: int = 1,
    bgc: int = 1,
    tags: tuple[str, ...] = (),
    seed: int = 0,
) -> ConvCase:
    fam, dn = layout
    sp = _SPATIAL[3 - nd :]
    rhs_sp = dn[1].replace("O", "").replace("I", "") if isinstance(dn, tuple) else sp
    # sizes per spatial letter, given in the rhs spatial order
    lhs_sizes = {"N": batch, "C": cin, **{c: s for c, s in zip(rhs_sp, size[:nd])}}
    rhs_sizes = {"O": cout, "I": cin // fgc, **{c: k for c, k in zip(rhs_sp, window[:nd])}}
    lhs_spec = dn[0] if isinstance(dn, tuple) else None
    rhs_spec = dn[1] if isinstance(dn, tuple) else None
    lhs_shape = _place(lhs_spec, lhs_sizes, sp, "NC")
    rhs_shape = _place(rhs_spec, rhs_sizes, sp, "OI")
    st = (strides,) * nd if isinstance(strides, int) else tuple(strides[:nd])
    pad = padding if isinstance(padding, str) else tuple(tuple(p) for p in padding[:nd])
    return ConvCase(
        name=f"{nd}d-{fam}-{name}",
        lhs_shape=lhs_shape,
        rhs_shape=rhs_shape,
        window_strides=st,
        padding=pad,
        lhs_dilation=None if lhs_dilation is None else (lhs_dilation,) * nd,
        rhs_dilation=None if rhs_dilation is None else (rhs_dilation,) * nd,
        dimension_numbers=dn,
        feature_group_count=fgc,
        batch_group_count=bgc,
        seed=seed,
        tags=frozenset(tags),
    )


# name -> overrides of _build; the geometry is (7, 6, 5) inputs, (3, 2, 3) kernels.
_VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "stride2": {"strides": 2},
    "stride-gt-kernel": {"strides": (4, 3, 5)},
    "same": {"padding": "SAME", "strides": 2},
    "same-lower": {"padding": "SAME_LOWER", "strides": 2},
    "pad": {"padding": [(1, 2), (2, 0), (0, 1)]},
    "pad-negative": {"padding": [(-1, 1), (1, -2), (-2, 0)], "tags": ("negative-padding",)},
    "pad-larger-than-input": {"padding": [(8, 9), (7, 6), (6, 8)], "strides": 3},
    "crop-past-edge": {"padding": [(-8, 9), (5, -7), (-6, 7)], "tags": ("negative-padding",)},
    "lhs-dilation": {"lhs_dilation": 2, "padding": [(1, 1), (2, 1), (0, 2)]},
    "lhs-dilation-stride": {"lhs_dilation": 3, "strides": 2, "padding": [(2, 0), (1, 1), (0, 0)]},
    "rhs-dilation": {"rhs_dilation": 2, "padding": "SAME"},
    "both-dilations": {"lhs_dilation": 2, "rhs_dilation": 3, "padding": [(3, 3), (2, 4), (4, 2)]},
    "groups": {"fgc": 2},
    "depthwise": {"fgc": 4, "cout": 8, "padding": "SAME"},
    "batch-groups": {"bgc": 2, "batch": 4},
    "batch-groups-stride-pad": {"bgc": 3, "batch": 3, "strides": 2, "padding": [(1, -1), (0, 2), (2, 1)]},
    "kernel-larger-than-input": {"window": (9, 8, 6)},
    "kernel-larger-than-input-padded": {"window": (9, 8, 6), "padding": "SAME"},
    "zero-batch": {"batch": 0},
    "zero-batch-groups": {"batch": 0, "bgc": 2},
    "zero-channels": {"cin": 0},
    "zero-out-features": {"cout": 0},
    "zero-spatial": {"size": (0, 6, 0), "padding": [(2, 1), (0, 0), (2, 1)]},
    "everything": {
        "strides": (2, 1, 3), "lhs_dilation": 2, "rhs_dilation": 2, "fgc": 2,
        "padding": [(2, -1), (-1, 3), (4, 0)],
    },
    "everything-batch-groups": {
        "strides": (1, 3, 2), "lhs_dilation": 3, "rhs_dilation": 2, "bgc": 2, "batch": 4,
        "padding": [(-2, 3), (3, 1), (0, -1)],
    },
}

# variants that mean something without spatial dims
_VARIANTS_0D = ("base", "groups", "batch-groups", "zero-batch", "zero-channels", "zero-out-features")

# For the default and channels-last layouts only: odd padding totals (1 on every axis) with stride 2,
# where SAME and SAME_LOWER put the extra zero apart; and (3-d) a cubic kernel on a cubic input, where
# mixing up two spatial axes changes no shape, only values.
_VARIANTS_ODD = {
    "same-odd": {"padding": "SAME", "strides": 2, "size": (8, 6, 10), "window": (3, 3, 3)},
    "same-lower-odd": {"padding": "SAME_LOWER", "strides": 2, "size": (8, 6, 10), "window": (3, 3, 3)},
}
_VARIANTS_3D = {"cube": {"size": (5, 5, 5), "window": (3, 3, 3), "padding": [(1, 0), (0, 1), (2, 2)], "strides": 2}}


def grid() -> list[ConvCase]:
    """The curated grid of float64 cases over 0-3 spatial dims and every layout family."""
    cases = []
    for nd in range(4):
        for layout in _layouts(nd):
            extra: dict[str, dict[str, Any]] = {}
            if layout[0] in ("default", "NHWC-HWIO"):
                extra = {**_VARIANTS_ODD, **(_VARIANTS_3D if nd == 3 else {})}
            for i, (name, kw) in enumerate({**_VARIANTS, **extra}.items()):
                if nd == 0:
                    if name not in _VARIANTS_0D:
                        continue
                    kw = {**kw, "padding": ()}
                cases.append(_build(name, nd, layout, seed=i, **kw))
    cases.append(_build("zero-d-same", 0, ("default", None), padding="SAME"))
    return cases


_PREFERRED = (
    ("float16", "float32"),
    ("bfloat16", "float32"),
    ("float32", "float64"),
    ("complex64", "complex128"),
    ("int8", "int32"),
    ("int8", "float32"),
    ("uint8", "uint16"),
    ("uint8", "int16"),
    ("bool", "int32"),
    ("bool", "float32"),
    ("int16", "int64"),
    ("int32", "float64"),
    ("uint16", "float32"),
)


def dtype_grid(dtypes: tuple[str, ...] = DTYPES) -> list[ConvCase]:
    """Demanding geometries in every dtype, and the ``preferred_element_type`` pairs."""
    geometries = [
        _build("strided-padded", 2, _layouts(2)[2], strides=2, padding=[(1, 2), (2, -1)], seed=1),
        _build("groups-lhs-dilation", 2, _layouts(2)[1], fgc=2, lhs_dilation=2,
               padding=[(1, 1), (0, 2)], rhs_dilation=2, seed=2),
        _build("batch-groups", 1, _layouts(1)[3], bgc=2, batch=4, strides=2, padding="SAME", seed=3),
        _build("3d", 3, _layouts(3)[0], padding="SAME", cin=2, cout=3, seed=4),
    ]
    cases = [g.with_dtype(d) for d in dtypes for g in geometries]
    cases += [g.with_dtype(a, b) for a, b in _PREFERRED if a in dtypes for g in geometries[:2]]
    return cases


#: Geometries of the non-finite grid: padding of every kind, both dilations, groups.
_NONFINITE = ("pad", "pad-larger-than-input", "same", "pad-negative", "lhs-dilation", "lhs-dilation-stride",
              "rhs-dilation", "both-dilations", "groups", "depthwise", "everything")


def nonfinite_grid() -> list[ConvCase]:
    """Inf, -Inf and NaN in both operands (:func:`make_operand`'s ``'nonfinite'``),
    in and around padding, with lhs and rhs dilation and feature groups:
    2-d channels-last and 1-d mixed layouts, float32 and float64.

    With feature groups only the kernel is non-finite: XLA's CPU compiler
    turns a grouped convolution into a dense one with a block-diagonal
    kernel, so ``jax.lax`` itself makes NaN where an infinite input element
    of one group meets the zeros of another group's kernel
    (``tests/test_jax_backend.py`` keeps watch on it).  Batch groups have no
    non-finite case: ``jax.lax`` on the CPU also makes NaN of a non-finite
    kernel on some batch-grouped geometries (seen on the grid's
    ``batch-groups-stride-pad``), not yet narrowed down.
    """
    cases = []
    for nd, layout in ((2, _layouts(2)[2]), (1, _layouts(1)[3])):
        for i, name in enumerate(_NONFINITE):
            base = _build(name, nd, layout, seed=500 + 20 * nd + i, **_VARIANTS[name])
            grouped = base.feature_group_count > 1 or base.batch_group_count > 1
            values = "nonfinite-kernel" if grouped else "nonfinite"
            for dtype in ("float32", "float64"):
                cases.append(replace(base, dtype=dtype, values=values, name=f"{base.name}-{values}[{dtype}]"))
    return cases


def transpose_dtype_grid() -> list[TransposeCase]:
    """Every 48th case of :func:`transpose_grid` with each of a few
    ``preferred_element_type`` pairs (floating, integer and bool operands)."""
    pairs = (("float16", "float32"), ("float32", "float64"), ("int8", "int32"), ("uint8", "int16"),
             ("bool", "int32"), ("complex64", "complex128"))
    return [replace(c, dtype=a, preferred_element_type=b, name=f"{c.name}[{a}->{b}]")
            for i, (a, b) in enumerate(pairs) for c in transpose_grid()[i::48]]


def nonfinite_transpose_grid() -> list[TransposeCase]:
    """The strided cases of :func:`transpose_grid` (every padding, both kernel
    orientations and conventions) with non-finite operands, float64."""
    strided = [c for c in transpose_grid() if c.strides[0] > 1 and c.rhs_shape[0] == 3]
    return [replace(c, values="nonfinite", name=f"{c.name}-nonfinite", seed=c.seed + 1000) for c in strided[::4]]


#: Integer (and bool) dtypes, alone and with each wider ``preferred_element_type``.
_INTEGER_PAIRS = (
    *((d, None) for d in DTYPES if d == "bool" or d.startswith(("int", "uint"))),
    *((a, b) for a, b in _PREFERRED if a == "bool" or a.startswith(("int", "uint"))),
)


def extremes_grid() -> list[ConvCase]:
    """Extreme integer operands (all smallest, all largest, the two alternating)
    in every integer and bool dtype and ``preferred_element_type`` pair, on a
    padded, strided geometry, and all largest on a reduction of 2049 products
    (enough for sums of the largest int8 products to leave float32's exact
    integers); sums of exactly :data:`WRAP_COUNTS` products of ones (true),
    on and past the wrap points of 8- and 16-bit accumulators, for bool (alone
    and into int32) and 8-bit integers into 16- and 32-bit types; every
    floating dtype with operands over its own range (``'range'`` values); and
    two reductions of ``2**24 + 1`` products of ones (channels, a 1x1
    window: a float32 accumulator cannot hold the sum)."""
    geometries = [
        _build("strided-padded", 2, _layouts(2)[2], strides=2, padding=[(1, 2), (2, -1)], seed=1),
        ConvCase("reduction-2049", (1, 683, 3), (2, 683, 3), (1,), "VALID", seed=2),
    ]
    cases = []
    for dtype, preferred in _INTEGER_PAIRS:
        for geometry, patterns in zip(geometries, (("min", "max", "alternating"), ("max",))):
            for values in patterns:
                if values == "min" and dtype.startswith("uint"):
                    continue  # all zeros
                case = geometry.with_dtype(dtype, preferred)
                cases.append(replace(case, values=values, name=f"{case.name}-{values}"))
    # bool and narrow accumulators at their wrap points: exactly n products of ones (true), over
    # channels and a window of 8 taps where n is a multiple of 8, over channels alone otherwise
    for n in WRAP_COUNTS:
        taps = 8 if n % 8 == 0 else 1
        count = ConvCase(f"count-{n}", (1, n // taps, taps), (1, n // taps, taps), (1,), "VALID", seed=4)
        cases += [replace(count.with_dtype(d, p), values="ones", name=f"{count.with_dtype(d, p).name}-ones")
                  for d, p in _COUNT_PAIRS]
    # every floating dtype over its own range (bfloat16 far past float16's)
    ranged = [geometries[0].with_dtype(d, p) for d, p in _RANGE_PAIRS]
    cases += [replace(case, values="range", name=f"{case.name}-range") for case in ranged]
    long = ConvCase("reduction-2**24", (1, 2**24 + 1, 1), (1, 2**24 + 1, 1), (1,), "VALID", seed=3)  # 1x1 window
    cases += [replace(long.with_dtype(d, p), values="ones", name=f"{long.with_dtype(d, p).name}-ones")
              for d, p in (("int8", "int32"), ("uint8", "int32"))]
    return cases


#: The counts of true (one) products the extremes grid sums: on and past the wrap points of
#: 8- and 16-bit accumulators (a bool accumulated in uint8 is False at 256).
WRAP_COUNTS = (128, 129, 256, 257, 2**15, 2**15 + 1, 2**16, 2**16 + 1)
_COUNT_PAIRS = (("bool", None), ("bool", "int32"), ("int8", "int32"), ("uint8", "int16"), ("uint8", "uint16"))
_RANGE_PAIRS = (("float16", None), ("bfloat16", None), ("float32", None), ("float64", None), ("complex64", None),
                ("complex128", None), ("float16", "float32"), ("bfloat16", "float32"), ("float32", "float64"))


def nonfinite_zeros_grid() -> list[ConvCase]:
    """Non-finite inputs meeting exact zeros of a finite kernel (:func:`with_zeros`: a
    zero tap, a zero feature pair, a zero row): the ungrouped geometries of
    :func:`nonfinite_grid` (grouped ones are left out for ``jax.lax``'s sake, as
    there), float32 and float64.  The reference forms every product, ``inf * 0``
    included, so those outputs are NaN; a backend that skips zero taps does not."""
    out = []
    for case in nonfinite_grid():
        if case.feature_group_count == 1 and case.batch_group_count == 1:
            name = case.name.replace("-nonfinite[", "-nonfinite-zeros[")
            out.append(replace(case, values="nonfinite-zeros", name=name, seed=case.seed + 100))
    return out


def large_grid() -> list[ConvCase]:
    """Sizes past common tiles and chunks (64, 128, 256, 512 and not multiples of
    them) on one axis at a time, the others small: a batch of 130, a 1-d extent of
    300 and of 1030 with stride 2 (515 outputs), a 70x65 image, 257 input and 129
    output features, 130 depthwise groups, 40 input features under a stride and a
    dilation; and float32 pads that cross (negative low, positive high) or reach
    past the window, which the float64 grid does not catch (here because every
    op checks this group, unsampled).  A backend that drops or misplaces its
    last partial tile fails."""
    return [
        ConvCase("large-batch-130", (130, 2, 7), (3, 2, 3), (1,), "SAME", seed=11),
        ConvCase("large-width-300", (1, 2, 300), (2, 2, 5), (1,), [(2, 1)], seed=12),
        ConvCase("large-width-1030-stride2", (1, 1, 1030), (1, 1, 4), (2,), "VALID", seed=13),
        ConvCase("large-image-70x65", (1, 70, 65, 1), (3, 3, 1, 2), (1, 1), "SAME",
                 dimension_numbers=channels_last("HW"), seed=14),
        ConvCase("large-features-257-129", (1, 257, 3), (129, 257, 2), (1,), "VALID", seed=15),
        ConvCase("large-depthwise-130", (1, 130, 5), (130, 1, 3), (1,), "SAME", feature_group_count=130, seed=16),
        # 40 channels times 3 taps: products long enough that a backend may loop over the first axis' taps
        # alone; with stride 2 and dilation 3 there, the second tap's first window starts at input row 3,
        # past a stride: a loop that assumes each tap starts within the first stride drops or misplaces it
        ConvCase("large-features-40-strided-dilated", (2, 40, 11, 9), (4, 40, 2, 3), (2, 1), [(1, 2), (0, 1)],
                 rhs_dilation=(3, 1), seed=17),
        # float32 pads that XLA:CPU computes wrongly (JAX 0.10; float64 is right): a negative low pad
        # with a positive high one (the values, and the kernel's cotangent), and a low pad past the
        # window's reach (the input's cotangent, whose transposed convolution gets the negative pad)
        ConvCase("pad-crossing-1d-float32", (2, 4, 9), (6, 4, 4), (1,), [(-1, 1)], dtype="float32", seed=18),
        ConvCase("pad-crossing-2d-float32", (2, 4, 7, 6), (6, 4, 3, 2), (1, 1), [(-1, 1), (-1, 1)],
                 dtype="float32", seed=19),
        ConvCase("pad-past-window-1d-float32", (2, 4, 7), (6, 4, 3), (1,), [(5, 0)], dtype="float32", seed=20),
        ConvCase("pad-past-window-2d-float32", (2, 4, 7, 6), (6, 4, 3, 2), (1, 1), [(5, 0), (5, 0)],
                 dtype="float32", seed=21),
    ]


def large_transpose_grid() -> list[TransposeCase]:
    """:func:`large_grid` for ``conv_transpose``: a batch of 130, a long 1-d input with
    stride 3, many features."""
    nwc = ("NWC", "WIO", "NWC")
    return [
        TransposeCase("transpose-large-batch-130", (130, 9, 2), (3, 2, 3), (2,), "SAME", dimension_numbers=nwc,
                      seed=21),
        TransposeCase("transpose-large-width-300", (1, 300, 1), (4, 1, 2), (3,), "VALID", dimension_numbers=nwc,
                      seed=22),
        TransposeCase("transpose-large-features-257-129", (1, 3, 257), (2, 257, 129), (1,), "SAME",
                      dimension_numbers=nwc, seed=23),
    ]


#: The accepted forms of ``precision`` the precision grid passes (besides None).
PRECISIONS = ("default", "high", "highest", "fastest", "float32", "tensorfloat32", "bfloat16", "bfloat16_3x",
              "HIGHEST", ("highest", "highest"), ("high", "default"), ("default", "highest"), (None, "highest"),
              ["highest", "high"])
_LAX_PRECISIONS = ("DEFAULT", "HIGH", "HIGHEST")


def precision_grid(jax_forms: bool | None = None) -> list[ConvCase]:
    """Two float32 geometries and a complex64 one with every accepted form of
    ``precision`` (names, aliases, pairs; ``jax.lax.Precision`` members when
    ``jax_forms``, by default when JAX is installed).  Only a backend that declares
    ``reduced_precision`` may round float32 inputs on an accelerator, and only as
    far as the precision allows: ``'highest'`` allows nothing (:mod:`.tolerances`)."""
    if jax_forms is None:
        import importlib.util

        jax_forms = importlib.util.find_spec("jax") is not None
    forms: list[Any] = list(PRECISIONS)
    if jax_forms:
        forms += [LAX_PRECISION + name for name in _LAX_PRECISIONS]
    geometries = [
        _build("precision-same", 2, _layouts(2)[2], padding="SAME", strides=2, seed=31).with_dtype("float32"),
        _build("precision-groups", 1, _layouts(1)[0], fgc=2, rhs_dilation=2, padding="SAME", seed=32
               ).with_dtype("float32"),
        _build("precision-complex", 1, _layouts(1)[1], seed=33).with_dtype("complex64"),
    ]
    return [replace(g, precision=form, name=f"{g.name}-precision={_form_name(form)}")
            for g in geometries for form in forms]


def _form_name(form: Any) -> str:
    if isinstance(form, (tuple, list)):
        return ",".join(str(f) for f in form)
    return str(form).removeprefix("jax.lax.")


# -- random cases -------------------------------------------------------------

def random_case(rng: np.random.Generator, dtype: str = "float64", max_spatial: int = 3, index: int = 0) -> ConvCase:
    """A random valid case over the whole parameter space of ``conv_general_dilated``
    (``preferred_element_type`` too, for one case in five whose dtype has a wider one).

    Operands stay small (a few thousand elements) so thousands of cases run
    in seconds.
    """
    nd = int(rng.choice(np.arange(max_spatial + 1), p=_nd_weights(max_spatial)))
    group_kind = rng.choice(["none", "none", "feature", "batch"])
    groups = int(rng.integers(2, 4)) if group_kind != "none" else 1
    fgc = groups if group_kind == "feature" else 1
    bgc = groups if group_kind == "batch" else 1
    batch = bgc * int(rng.integers(0, 3) if rng.random() < 0.05 else rng.integers(1, 3))
    cin = fgc * int(rng.integers(0, 3) if rng.random() < 0.05 else rng.integers(1, 4))
    cout = groups * int(rng.integers(1, 4))
    sizes, window, strides, lhs_dil, rhs_dil, padding = _random_window(rng, nd)

    letters = "".join(rng.permutation(list("abcdefgh"))[:nd]) if rng.random() < 0.5 or nd > 3 else _SPATIAL[3 - nd :]
    dn: Any
    style = rng.integers(0, 3)
    if style == 0:
        dn = None
        lhs_spec, rhs_spec = "NC" + letters, "OI" + letters
    else:
        lhs_spec = "".join(rng.permutation(list("NC" + letters)))
        rhs_spec = "".join(rng.permutation(list("OI" + letters)))
        out_spec = "".join(rng.permutation(list("NC" + letters)))
        dn = (lhs_spec, rhs_spec, out_spec)
    rhs_letters = [c for c in rhs_spec if c not in "OI"]
    lhs_sizes = {"N": batch, "C": cin, **dict(zip(rhs_letters, sizes))}
    rhs_sizes = {"O": cout, "I": cin // fgc, **dict(zip(rhs_letters, window))}
    if style == 2:
        from polyconv.spec import conv_dimension_numbers

        lhs_shape = tuple(lhs_sizes[c] for c in lhs_spec)
        rhs_shape = tuple(rhs_sizes[c] for c in rhs_spec)
        dn = conv_dimension_numbers(lhs_shape, rhs_shape, dn)
    preferred = [b for a, b in _PREFERRED if a == dtype]
    pref = str(rng.choice(preferred)) if preferred and rng.random() < 0.2 else None
    return ConvCase(
        name=f"random-{index}",
        lhs_shape=tuple(lhs_sizes[c] for c in lhs_spec),
        rhs_shape=tuple(rhs_sizes[c] for c in rhs_spec),
        window_strides=strides,
        padding=padding,
        lhs_dilation=lhs_dil if rng.random() < 0.8 else (None if all(d == 1 for d in lhs_dil) else lhs_dil),
        rhs_dilation=rhs_dil,
        dimension_numbers=dn,
        feature_group_count=fgc,
        batch_group_count=bgc,
        preferred_element_type=pref,
        dtype=dtype,
        seed=int(rng.integers(0, 2**31)),
    )


def _nd_weights(max_spatial: int) -> list[float]:
    w = [0.1, 0.35, 0.4, 0.15, 0.1, 0.05][: max_spatial + 1]
    return [v / sum(w) for v in w]


def random_cases(count: int, seed: int = 0, dtype: str = "float64", max_spatial: int = 3) -> list[ConvCase]:
    """``count`` random cases from one seed (reproducible)."""
    rng = np.random.default_rng(seed)
    return [random_case(rng, dtype, max_spatial, i) for i in range(count)]


# -- the other operations -------------------------------------------------------

@dataclass(frozen=True)
class TransposeCase(_SeededCase):
    """One call of ``conv_transpose``, without arrays."""

    name: str
    lhs_shape: tuple[int, ...]
    rhs_shape: tuple[int, ...]
    strides: tuple[int, ...]
    padding: Any
    rhs_dilation: tuple[int, ...] | None = None
    dimension_numbers: Any = None
    transpose_kernel: bool = False
    use_consistent_padding: bool = False
    precision: Any = None
    preferred_element_type: str | None = None
    dtype: str = "float64"
    seed: int = 0
    values: str = "random"
    tags: frozenset[str] = field(default=frozenset(), compare=False)



@dataclass(frozen=True)
class PatchesCase(_SeededCase):
    """One call of ``conv_general_dilated_patches``, without arrays."""

    _operands: ClassVar[tuple[str, ...]] = ("lhs_shape",)
    name: str
    lhs_shape: tuple[int, ...]
    filter_shape: tuple[int, ...]
    window_strides: tuple[int, ...]
    padding: Any
    lhs_dilation: tuple[int, ...] | None = None
    rhs_dilation: tuple[int, ...] | None = None
    dimension_numbers: Any = None
    precision: Any = None
    preferred_element_type: str | None = None
    dtype: str = "float64"
    seed: int = 0
    values: str = "random"
    tags: frozenset[str] = field(default=frozenset(), compare=False)



@dataclass(frozen=True)
class LocalCase(_SeededCase):
    """One call of ``conv_general_dilated_local``, without arrays."""

    name: str
    lhs_shape: tuple[int, ...]
    rhs_shape: tuple[int, ...]
    window_strides: tuple[int, ...]
    padding: Any
    filter_shape: tuple[int, ...]
    lhs_dilation: tuple[int, ...] | None = None
    rhs_dilation: tuple[int, ...] | None = None
    dimension_numbers: Any = None
    precision: Any = None
    dtype: str = "float64"
    seed: int = 0
    values: str = "random"
    tags: frozenset[str] = field(default=frozenset(), compare=False)



def _random_layout(
    rng: np.random.Generator, nd: int, kernel: str, default: tuple[str, str, str]
) -> tuple[Any, str, str]:
    """``(dimension_numbers, lhs_spec, rhs_spec)``: the op's default (None), three
    random strings, or the :class:`ConvDimensionNumbers` of three random strings.
    ``kernel`` is ``"OI"``; ``default`` the op's default layout strings."""
    style = int(rng.integers(0, 3))
    if style == 0:
        return None, default[0], default[1]
    letters = "".join(rng.permutation(list("abcdefgh"))[:nd]) if rng.random() < 0.5 or nd > 3 else _SPATIAL[3 - nd :]
    lhs_spec = "".join(rng.permutation(list("NC" + letters)))
    rhs_spec = "".join(rng.permutation(list(kernel + letters)))
    out_spec = "".join(rng.permutation(list("NC" + letters)))
    dn: Any = (lhs_spec, rhs_spec, out_spec)
    if style == 2:
        from polyconv.spec import conv_dimension_numbers

        dn = conv_dimension_numbers((1,) * (nd + 2), (1,) * (nd + 2), dn)
    return dn, lhs_spec, rhs_spec


def _small(rng: np.random.Generator, low: int, high: int, zero_chance: float = 0.05) -> int:
    """An integer in ``[low, high)``, or now and then in ``[0, low)`` (empty axes)."""
    if low > 0 and rng.random() < zero_chance:
        return int(rng.integers(0, low))
    return int(rng.integers(low, high))


def _draw_valid(draw: Any, check: Any, fallback: Any) -> Any:
    """``draw()`` until ``check(value)`` parses without a polyconv error (at most 20 tries)."""
    from polyconv.errors import PolyconvError

    for _ in range(20):
        value = draw()
        try:
            check(value)
        except PolyconvError:
            continue
        return value
    return fallback


def random_transpose_case(
    rng: np.random.Generator, dtype: str = "float64", index: int = 0, max_spatial: int = 3
) -> TransposeCase:
    """A random valid ``conv_transpose`` call: 0 to ``max_spatial`` spatial dims,
    random layouts (or the TensorFlow default), strides 1-3, odd and even
    kernels, kernel dilation, ``'SAME'``/``'VALID'``, explicit and negative
    pads under both ``use_consistent_padding`` conventions (and, with strides
    of 1, the other padding names, which keep their forward meaning),
    ``transpose_kernel`` on and off."""
    from polyconv.spec import conv_transpose_spec, default_transpose_dimension_numbers

    nd = int(rng.choice(np.arange(max_spatial + 1), p=_nd_weights(max_spatial)))
    batch, cin, cout = _small(rng, 1, 3), _small(rng, 1, 4), int(rng.integers(1, 4))
    sizes = [_small(rng, 1, 7) for _ in range(nd)]
    window = [int(rng.integers(1, 5)) for _ in range(nd)]
    strides = tuple(int(rng.integers(1, 4)) for _ in range(nd))
    rhs_dil = tuple(int(rng.integers(1, 4)) if rng.random() < 0.3 else 1 for _ in range(nd))
    transpose_kernel = bool(rng.random() < 0.5)
    consistent = bool(rng.random() < 0.5)
    dn, lhs_spec, rhs_spec = _random_layout(rng, nd, "OI", default_transpose_dimension_numbers(nd + 2))
    rhs_letters = [c for c in rhs_spec if c not in "OI"]
    lhs_sizes = {"N": batch, "C": cin, **dict(zip(rhs_letters, sizes))}
    # with transpose_kernel the kernel's O axis holds the input features
    rhs_sizes = {"O": cin if transpose_kernel else cout, "I": cout if transpose_kernel else cin,
                 **dict(zip(rhs_letters, window))}
    lhs_shape = tuple(lhs_sizes[c] for c in lhs_spec)
    rhs_shape = tuple(rhs_sizes[c] for c in rhs_spec)
    eff = [(k - 1) * d + 1 for k, d in zip(window, rhs_dil)]

    def draw() -> Any:
        r = rng.random()
        if r < 0.35:
            return str(rng.choice(["SAME", "VALID"]))
        if r < 0.6 and not consistent and all(s == 1 for s in strides):
            return str(rng.choice(["SAME_LOWER", "same", "valid"]))
        if consistent:  # the forward convolution's pads
            return tuple((int(rng.integers(-1, k + 1)), int(rng.integers(-1, k + 1))) for k in eff)
        return tuple((int(rng.integers(-2, k + 2)), int(rng.integers(-2, k + 2))) for k in eff)

    def check(padding: Any) -> None:
        conv_transpose_spec(lhs_shape, rhs_shape, dtype, dtype, strides, padding, rhs_dil, dn,
                            transpose_kernel, None, None, consistent)

    padding = _draw_valid(draw, check, "VALID")
    return TransposeCase(
        name=f"transpose-random-{index}",
        lhs_shape=lhs_shape,
        rhs_shape=rhs_shape,
        strides=strides,
        padding=padding,
        rhs_dilation=rhs_dil if rng.random() < 0.8 else (None if all(d == 1 for d in rhs_dil) else rhs_dil),
        dimension_numbers=dn,
        transpose_kernel=transpose_kernel,
        use_consistent_padding=consistent,
        dtype=dtype,
        seed=int(rng.integers(0, 2**31)),
    )


def random_transpose_cases(
    count: int, seed: int = 0, dtype: str = "float64", max_spatial: int = 3
) -> list[TransposeCase]:
    """``count`` random ``conv_transpose`` cases from one seed (reproducible)."""
    rng = np.random.default_rng(seed)
    return [random_transpose_case(rng, dtype, i, max_spatial) for i in range(count)]


def transpose_grid() -> list[TransposeCase]:
    """Every combination of both padding conventions, ``transpose_kernel`` on and
    off, strides 1-3, kernel sizes 2 and 3, 1 and 2 spatial dims and kernel
    dilations 1 and 2, each with ``'SAME'``, ``'VALID'`` and explicit pads
    (one pair negative), in the TensorFlow default layout."""
    cases = []
    seed = 0
    for nd in (1, 2):
        sp = "HW"[:nd]
        for consistent in (False, True):
            for transpose_kernel in (False, True):
                for stride in (1, 2, 3):
                    for k in (2, 3):
                        for rd in (1, 2):
                            explicit = ((1, 2), (-1, 0))[:nd] if not consistent else ((0, 1), (2, -1))[:nd]
                            for padding in ("SAME", "VALID", explicit):
                                size = {"H": 5, "W": 4}
                                cin, cout = 3, 2
                                rhs_sizes = {"O": cin if transpose_kernel else cout,
                                             "I": cout if transpose_kernel else cin}
                                pname = padding if isinstance(padding, str) else "explicit"
                                cases.append(TransposeCase(
                                    name=(f"transpose-{nd}d-{'consistent' if consistent else 'jax'}-"
                                          f"{'tk' if transpose_kernel else 'notk'}-s{stride}-k{k}-rd{rd}-{pname}"),
                                    lhs_shape=(2, *(size[c] for c in sp), cin),
                                    rhs_shape=(*(k for _ in sp), rhs_sizes["I"], rhs_sizes["O"]),
                                    strides=(stride,) * nd,
                                    padding=padding,
                                    rhs_dilation=(rd,) * nd,
                                    transpose_kernel=transpose_kernel,
                                    use_consistent_padding=consistent,
                                    seed=seed,
                                ))
                                seed += 1
    return cases


def _random_window(rng: np.random.Generator, nd: int) -> tuple[list[int], list[int], tuple[int, ...], tuple[int, ...],
                                                               tuple[int, ...], Any]:
    """Input sizes, window, strides, lhs and rhs dilations and padding of a random
    windowed operation (patches, local)."""
    sizes = [_small(rng, 1, 9) for _ in range(nd)]
    window = [int(rng.integers(1, 5)) for _ in range(nd)]
    strides = tuple(int(rng.integers(1, 4)) for _ in range(nd))
    lhs_dil = tuple(int(rng.integers(1, 4)) if rng.random() < 0.3 else 1 for _ in range(nd))
    rhs_dil = tuple(int(rng.integers(1, 4)) if rng.random() < 0.3 else 1 for _ in range(nd))
    padding: Any
    if all(d == 1 for d in lhs_dil) and rng.random() < 0.4:
        padding = str(rng.choice(["VALID", "SAME", "SAME_LOWER"]))
    else:
        pads = []
        for s, d in zip(sizes, lhs_dil):
            dilated = 0 if s == 0 else (s - 1) * d + 1
            while True:
                lo, hi = (int(v) for v in rng.integers(-3, 5, 2))
                if dilated + lo + hi >= 0:
                    break
            pads.append((lo, hi))
        padding = tuple(pads)
    return sizes, window, strides, lhs_dil, rhs_dil, padding


def random_patches_case(
    rng: np.random.Generator, dtype: str = "float64", index: int = 0, max_spatial: int = 3
) -> PatchesCase:
    """A random valid ``conv_general_dilated_patches`` call: 0 to ``max_spatial``
    spatial dims, random layouts, strides, both dilations, named, explicit and
    negative padding."""
    nd = int(rng.choice(np.arange(max_spatial + 1), p=_nd_weights(max_spatial)))
    batch, cin = _small(rng, 1, 3), int(rng.integers(1, 4))
    sizes, window, strides, lhs_dil, rhs_dil, padding = _random_window(rng, nd)
    sp = _SPATIAL[3 - nd :]
    dn, lhs_spec, rhs_spec = _random_layout(rng, nd, "OI", (f"NC{sp}", f"OI{sp}", f"NC{sp}"))
    rhs_letters = [c for c in rhs_spec if c not in "OI"]
    lhs_sizes = {"N": batch, "C": cin, **dict(zip(rhs_letters, sizes))}
    return PatchesCase(
        name=f"patches-random-{index}",
        lhs_shape=tuple(lhs_sizes[c] for c in lhs_spec),
        filter_shape=tuple(window),
        window_strides=strides,
        padding=padding,
        lhs_dilation=lhs_dil,
        rhs_dilation=rhs_dil if rng.random() < 0.8 else (None if all(d == 1 for d in rhs_dil) else rhs_dil),
        dimension_numbers=dn,
        dtype=dtype,
        seed=int(rng.integers(0, 2**31)),
    )


def random_patches_cases(count: int, seed: int = 0, dtype: str = "float64", max_spatial: int = 3) -> list[PatchesCase]:
    """``count`` random ``conv_general_dilated_patches`` cases from one seed (reproducible)."""
    rng = np.random.default_rng(seed)
    return [random_patches_case(rng, dtype, i, max_spatial) for i in range(count)]


def random_local_case(
    rng: np.random.Generator, dtype: str = "float64", index: int = 0, max_spatial: int = 3
) -> LocalCase:
    """A random valid ``conv_general_dilated_local`` call (same geometry as
    :func:`random_patches_case`, plus output features); the kernel's shape
    follows from the output positions."""
    from polyconv.spec import patches_spec

    pc = random_patches_case(rng, dtype, index, max_spatial)
    cout = int(rng.integers(1, 4))
    pspec = patches_spec(pc.lhs_shape, dtype, pc.filter_shape, pc.window_strides, pc.padding, pc.lhs_dilation,
                         pc.rhs_dilation, pc.dimension_numbers)
    dn = pspec.conv.dimension_numbers
    canonical = (cout, pspec.conv.out_features, *pspec.conv.out_spatial)
    rhs_shape = [0] * len(canonical)
    for size, axis in zip(canonical, dn.rhs_spec):
        rhs_shape[axis] = size
    return LocalCase(
        name=f"local-random-{index}",
        lhs_shape=pc.lhs_shape,
        rhs_shape=tuple(rhs_shape),
        window_strides=pc.window_strides,
        padding=pc.padding,
        filter_shape=pc.filter_shape,
        lhs_dilation=pc.lhs_dilation,
        rhs_dilation=pc.rhs_dilation,
        dimension_numbers=pc.dimension_numbers,
        dtype=dtype,
        seed=pc.seed,
    )


def random_local_cases(count: int, seed: int = 0, dtype: str = "float64", max_spatial: int = 3) -> list[LocalCase]:
    """``count`` random ``conv_general_dilated_local`` cases from one seed (reproducible)."""
    rng = np.random.default_rng(seed)
    return [random_local_case(rng, dtype, i, max_spatial) for i in range(count)]


# -- the forward grid, reused for patches and local ----------------------------------

def patches_case_of(case: ConvCase) -> PatchesCase:
    """The patches of a forward case's geometry (its kernel's window as ``filter_shape``)."""
    lhs, rhs = case.lhs_shape, case.rhs_shape
    window = conv_spec(lhs, rhs, "float64", "float64",
                       **{**case.kwargs(), "precision": None, "preferred_element_type": None}).window
    return PatchesCase(
        name=f"patches-{case.name}", lhs_shape=lhs, filter_shape=window, window_strides=case.window_strides,
        padding=case.padding, lhs_dilation=case.lhs_dilation, rhs_dilation=case.rhs_dilation,
        dimension_numbers=case.dimension_numbers, preferred_element_type=case.preferred_element_type,
        dtype=case.dtype, seed=case.seed,
    )


def local_case_of(case: ConvCase) -> LocalCase:
    """The local convolution of a forward case's geometry: one kernel per output
    position, with the case's output features."""
    p = patches_case_of(case)
    conv = patches_spec(p.lhs_shape, "float64", **{k: v for k, v in p.kwargs().items() if k != "precision"}).conv
    dn = conv.dimension_numbers
    rhs = [0] * len(case.rhs_shape)
    for axis, size in zip(dn.rhs_spec, (case.rhs_shape[dn.rhs_spec[0]], conv.out_features, *conv.out_spatial)):
        rhs[axis] = size
    return LocalCase(
        name=f"local-{case.name}", lhs_shape=p.lhs_shape, rhs_shape=tuple(rhs), window_strides=p.window_strides,
        padding=p.padding, filter_shape=p.filter_shape, lhs_dilation=p.lhs_dilation, rhs_dilation=p.rhs_dilation,
        dimension_numbers=p.dimension_numbers, dtype=case.dtype, seed=case.seed, values=case.values,
    )


def has_ml_dtypes() -> bool:
    """Whether bfloat16 operands can be made (with ml_dtypes)."""
    import importlib.util

    return importlib.util.find_spec("ml_dtypes") is not None
