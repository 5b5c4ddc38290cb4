"""The spec layer, pure Python: dimension numbers, padding arithmetic, output
shapes, ``ConvSpec``, caching, precision parsing and dtype names.

Where JAX is installed, the results are compared with ``jax.lax`` (the
reference semantics); those tests skip without JAX, the rest run anyway.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import random
import warnings

import numpy as np
import pytest

import polyconv
from polyconv.spec import (
    ConvDimensionNumbers,
    ConvSpec,
    conv_dimension_numbers,
    conv_general_permutations,
    conv_general_shape,
    conv_output_size,
    conv_spec,
    dtype_bits,
    dtype_kind,
    dtype_name,
    padtype_to_pads,
    parse_precision,
)

JAX_REASON = "JAX is not installed: the comparison with jax.lax needs it"


def _jax():
    return pytest.importorskip("jax", reason=JAX_REASON)


# --------------------------------------------------------------------------
# dimension numbers
# --------------------------------------------------------------------------

SPATIAL_LETTERS = "HWD"


def _string_triples() -> list[tuple[str, str, str]]:
    """Layouts of 0-3 spatial dims: the classic ones and odd letter orders."""
    triples = [
        ("NC", "OI", "NC"),
        ("NC", "IO", "CN"),
        ("CN", "OI", "CN"),
        ("NCW", "OIW", "NCW"),
        ("NWC", "WIO", "NWC"),
        ("WCN", "IWO", "NWC"),
        ("NCHW", "OIHW", "NCHW"),
        ("NHWC", "HWIO", "NHWC"),
        ("NWHC", "HWIO", "CWNH"),
        ("NHWC", "OIWH", "NCWH"),  # rhs order W, H: spatial axes follow the rhs string
        ("HCWN", "WHOI", "WNHC"),
        ("NCDHW", "OIDHW", "NCDHW"),
        ("NDHWC", "DHWIO", "NDHWC"),
        ("CDNWH", "HIDWO", "WHDCN"),
        ("N0C1", "10IO", "1N0C"),  # any distinct characters name spatial axes
        ("NxyC", "yxOI", "NCyx"),
    ]
    rng = random.Random(1234)
    for n in range(4):
        sp = SPATIAL_LETTERS[:n]
        for _ in range(6):
            triples.append(tuple("".join(rng.sample(base + sp, n + 2)) for base in ("NC", "OI", "NC")))
    return triples


STRING_TRIPLES = _string_triples()


@pytest.mark.parametrize("rank", [2, 3, 4, 5])
def test_dimension_numbers_none_is_default_layout(rank):
    shape = (1,) * rank
    dn = conv_dimension_numbers(shape, shape, None)
    assert isinstance(dn, ConvDimensionNumbers)
    assert dn == (tuple(range(rank)),) * 3


@pytest.mark.parametrize(
    "triple, expected",
    [
        (("NHWC", "HWIO", "NHWC"), ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))),
        (("NWHC", "HWIO", "CWNH"), ((0, 3, 2, 1), (3, 2, 0, 1), (2, 0, 3, 1))),
        (("NDHWC", "DHWIO", "NDHWC"), ((0, 4, 1, 2, 3), (4, 3, 0, 1, 2), (0, 4, 1, 2, 3))),
        (("WCN", "IWO", "NWC"), ((2, 1, 0), (2, 0, 1), (0, 2, 1))),
        (("CN", "OI", "CN"), ((1, 0), (0, 1), (1, 0))),
    ],
)
def test_dimension_numbers_strings_known_values(triple, expected):
    shape = (1,) * len(triple[0])
    dn = conv_dimension_numbers(shape, shape, triple)
    assert isinstance(dn, ConvDimensionNumbers)
    assert tuple(dn) == expected
    assert all(type(a) is int for spec in dn for a in spec)
    # a list of strings is the same as a tuple of them
    assert conv_dimension_numbers(shape, shape, list(triple)) == dn
    assert conv_general_permutations(triple) == expected


def test_dimension_numbers_index_forms_pass_through():
    dn = ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
    shape = (1, 2, 3, 4)
    assert conv_dimension_numbers(shape, shape, dn) == dn
    as_lists = [[0, 3, 1, 2], [3, 2, 0, 1], [0, 3, 1, 2]]
    got = conv_dimension_numbers(shape, shape, as_lists)
    assert isinstance(got, ConvDimensionNumbers)
    assert got == dn
    assert all(isinstance(spec, tuple) for spec in got)
    np_ints = tuple(tuple(np.int64(a) for a in spec) for spec in dn)
    assert conv_dimension_numbers(shape, shape, np_ints) == dn


@pytest.mark.parametrize("triple", STRING_TRIPLES, ids=lambda t: ",".join(t))
def test_dimension_numbers_strings_match_jax(triple):
    jax = _jax()
    rank = len(triple[0])
    lhs, rhs = tuple(range(2, rank + 2)), tuple(range(7, rank + 7))
    expected = jax.lax.conv_dimension_numbers(lhs, rhs, triple)
    got = conv_dimension_numbers(lhs, rhs, triple)
    assert tuple(got) == tuple(expected)
    assert conv_general_permutations(triple) == tuple(jax.lax.conv_general_permutations(triple))


@pytest.mark.parametrize("rank", [2, 3, 4, 5])
def test_dimension_numbers_none_and_index_match_jax(rank):
    jax = _jax()
    shape = (3,) * rank
    expected = tuple(jax.lax.conv_dimension_numbers(shape, shape, None))
    assert tuple(conv_dimension_numbers(shape, shape, None)) == expected
    perm = tuple(reversed(range(rank)))
    jdn = jax.lax.ConvDimensionNumbers(perm, tuple(range(rank)), perm)
    # JAX's own ConvDimensionNumbers is accepted too
    assert tuple(conv_dimension_numbers(shape, shape, jdn)) == tuple(jax.lax.conv_dimension_numbers(shape, shape, jdn))


# --------------------------------------------------------------------------
# padtype_to_pads
# --------------------------------------------------------------------------

PAD_GRID = [
    (size, window, stride)
    for size in range(0, 9)
    for window in range(1, 7)
    for stride in range(1, 5)
]


@pytest.mark.parametrize("padding", ["SAME", "SAME_LOWER", "VALID"])
def test_padtype_to_pads_matches_jax_1d(padding):
    jax = _jax()
    bad = []
    for size, window, stride in PAD_GRID:
        got = padtype_to_pads((size,), (window,), (stride,), padding)
        want = [tuple(int(v) for v in p) for p in jax.lax.padtype_to_pads((size,), (window,), (stride,), padding)]
        if [tuple(p) for p in got] != want:
            bad.append(((size, window, stride), got, want))
    assert not bad, f"{len(bad)} mismatches, first: {bad[:5]}"


@pytest.mark.parametrize("padding", ["SAME", "SAME_LOWER", "VALID", "same", "valid"])
def test_padtype_to_pads_matches_jax_nd(padding):
    jax = _jax()
    rng = random.Random(7)
    for nd in range(0, 4):
        for _ in range(15):
            shape = tuple(rng.randrange(0, 9) for _ in range(nd))
            window = tuple(rng.randrange(1, 7) for _ in range(nd))
            strides = tuple(rng.randrange(1, 4) for _ in range(nd))
            want = [tuple(int(v) for v in p) for p in jax.lax.padtype_to_pads(shape, window, strides, padding)]
            got = [tuple(p) for p in padtype_to_pads(shape, window, strides, padding)]
            assert got == want, (shape, window, strides, padding)


@pytest.mark.parametrize("size, window, stride", PAD_GRID)
def test_padtype_to_pads_properties(size, window, stride):
    lo, hi = padtype_to_pads((size,), (window,), (stride,), "SAME")[0]
    lo2, hi2 = padtype_to_pads((size,), (window,), (stride,), "SAME_LOWER")[0]
    assert padtype_to_pads((size,), (window,), (stride,), "VALID") == [(0, 0)]
    assert lo >= 0 and hi - lo in (0, 1)
    assert (lo2, hi2) == (hi, lo)
    # SAME keeps ceil(size / stride) outputs
    assert conv_output_size(size + lo + hi, window, stride) == -(-size // stride)


def test_padtype_to_pads_examples():
    assert padtype_to_pads((5, 6), (3, 2), (1, 2), "SAME") == [(1, 1), (0, 0)]
    assert padtype_to_pads((4,), (4,), (1,), "SAME_LOWER") == [(2, 1)]
    assert padtype_to_pads((4,), (4,), (1,), "SAME") == [(1, 2)]
    assert padtype_to_pads((2,), (5,), (1,), "SAME") == [(2, 2)]  # window > size
    assert padtype_to_pads((0,), (3,), (2,), "SAME") == [(0, 1)]  # empty axis
    assert padtype_to_pads((), (), (), "SAME") == []


def test_padtype_to_pads_unknown_name():
    with pytest.raises(polyconv.ConvArgumentError) as info:
        padtype_to_pads((5,), (3,), (1,), "FULL")
    assert str(info.value) == "padtype_to_pads: padding must be one of 'SAME', 'SAME_LOWER', 'VALID'; got 'FULL'"
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------
# conv_general_shape against jax.lax.conv_general_dilated
# --------------------------------------------------------------------------


def _random_case(rng: random.Random, n: int, layout: str):
    """A random convolution of n spatial dims in canonical form plus a layout."""
    sp = SPATIAL_LETTERS[:n]
    if layout == "default":
        triple = None
    elif layout == "channels_last":
        triple = ("N" + sp + "C", sp + "IO", "N" + sp + "C")
    else:
        triple = tuple("".join(rng.sample(base + sp, n + 2)) for base in ("NC", "OI", "NC"))
    groups = rng.choice(["none", "none", "feature", "batch"])
    fgc = rng.choice([2, 3]) if groups == "feature" else 1
    bgc = rng.choice([2, 3]) if groups == "batch" else 1
    batch = bgc * rng.choice([0, 1, 2])
    c_in = fgc * rng.randrange(1, 4)
    c_out = fgc * bgc * rng.randrange(1, 3)
    lhs_sp = [rng.randrange(0, 8) for _ in range(n)]
    win = [rng.randrange(1, 5) for _ in range(n)]
    strides = tuple(rng.randrange(1, 4) for _ in range(n))
    lhs_dil = tuple(rng.choice([1, 1, 2, 3]) for _ in range(n))
    rhs_dil = tuple(rng.choice([1, 1, 2, 3]) for _ in range(n))
    if rng.random() < 0.35:
        padding = rng.choice(["SAME", "SAME_LOWER", "VALID"])
        if rng.random() < 0.8:
            lhs_dil = (1,) * n  # otherwise: an error in both
    else:
        padding = tuple((rng.randrange(-4, 4), rng.randrange(-4, 4)) for _ in range(n))
    return triple, (batch, c_in, *lhs_sp), (c_out, c_in // fgc, *win), dict(
        window_strides=strides,
        padding=padding,
        lhs_dilation=lhs_dil if rng.random() < 0.8 else None,
        rhs_dilation=rhs_dil if rng.random() < 0.8 else None,
        feature_group_count=fgc,
        batch_group_count=bgc,
    )


def _place(canonical, spec):
    shape = [0] * len(canonical)
    for size, axis in zip(canonical, spec):
        shape[axis] = size
    return tuple(shape)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
@pytest.mark.parametrize("layout", ["default", "channels_last", "random"])
def test_conv_general_shape_matches_jax(n, layout):
    jax = _jax()
    rng = random.Random(1000 * n + len(layout))
    mismatches = []
    count = 40 if n else 10
    for _ in range(count):
        triple, lhs_c, rhs_c, kw = _random_case(rng, n, layout)
        rank = n + 2
        jdn = jax.lax.conv_dimension_numbers((1,) * rank, (1,) * rank, triple)
        lhs_shape, rhs_shape = _place(lhs_c, jdn.lhs_spec), _place(rhs_c, jdn.rhs_spec)
        dn = triple
        if layout == "random" and rng.random() < 0.5:  # the index form of the same layout
            dn = ConvDimensionNumbers(*jdn)
        try:
            want = jax.eval_shape(
                lambda a, b, kw=kw, triple=triple: jax.lax.conv_general_dilated(a, b, dimension_numbers=triple, **kw),
                jax.ShapeDtypeStruct(lhs_shape, np.float32),
                jax.ShapeDtypeStruct(rhs_shape, np.float32),
            ).shape
        except Exception as exc:  # JAX refuses: polyconv must refuse too
            want = f"error {type(exc).__name__}"
        try:
            got = conv_general_shape(lhs_shape, rhs_shape, dimension_numbers=dn, **kw)
        except polyconv.PolyconvError as exc:
            got = f"error {type(exc).__name__}"
        if isinstance(want, str) != isinstance(got, str) or (not isinstance(want, str) and tuple(want) != got):
            mismatches.append(dict(lhs=lhs_shape, rhs=rhs_shape, dn=triple, **kw, jax=want, polyconv=got))
    assert not mismatches, f"{len(mismatches)} of {count} differ from JAX; first: {mismatches[:3]}"


@pytest.mark.parametrize(
    "lhs, rhs, args, kwargs, expected",
    [
        # documented example
        ((8, 3, 224, 224), (64, 3, 7, 7), ((2, 2), [(3, 3), (3, 3)]), {}, (8, 64, 112, 112)),
        # 0 spatial dims: a matrix product
        ((3, 2), (5, 2), ((), "VALID"), {}, (3, 5)),
        ((3, 2), (5, 2), ((), []), {}, (3, 5)),
        # kernel larger than input: empty output, not an error
        ((1, 1, 3), (1, 1, 5), ((1,), "VALID"), {}, (1, 1, 0)),
        ((1, 1, 3), (1, 1, 5), ((2,), "SAME"), {}, (1, 1, 2)),
        # negative padding crops; cropping everything is allowed
        ((1, 1, 4), (1, 1, 2), ((1,), [(-2, -2)]), {}, (1, 1, 0)),
        ((1, 1, 4), (1, 1, 2), ((1,), [(-1, 2)]), {}, (1, 1, 4)),
        # lhs dilation counts before padding
        ((1, 1, 4), (1, 1, 2), ((1,), [(-2, -2)]), dict(lhs_dilation=(2,)), (1, 1, 2)),
        # rhs dilation widens the window
        ((1, 1, 7), (1, 1, 3), ((1,), "VALID"), dict(rhs_dilation=(3,)), (1, 1, 1)),
        # strides follow the rhs spatial letters: H stride 1, W stride 2
        ((2, 7, 5, 3), (3, 3, 3, 4), ((1, 2), "VALID"), dict(dimension_numbers=("NWHC", "HWIO", "CWNH")),
         (4, 3, 2, 3)),
        # groups
        ((2, 6, 5), (9, 2, 3), ((1,), "VALID"), dict(feature_group_count=3), (2, 9, 3)),
        ((6, 2, 5), (9, 2, 3), ((1,), "VALID"), dict(batch_group_count=3), (2, 9, 3)),
        # zero-size batch and channels
        ((0, 3, 5), (4, 3, 2), ((1,), "VALID"), {}, (0, 4, 4)),
        ((2, 0, 5), (4, 0, 2), ((1,), "VALID"), {}, (2, 4, 4)),
    ],
)
def test_conv_general_shape_known(lhs, rhs, args, kwargs, expected):
    assert conv_general_shape(lhs, rhs, *args, **kwargs) == expected
    assert conv_general_shape(list(lhs), list(rhs), *args, **kwargs) == expected


# --------------------------------------------------------------------------
# ConvSpec: frozen, hashable, equal
# --------------------------------------------------------------------------


def _spec(**overrides):
    args = dict(
        lhs_shape=(2, 7, 5, 3),
        rhs_shape=(3, 3, 3, 4),
        lhs_dtype="float32",
        rhs_dtype="float32",
        window_strides=(1, 2),
        padding="SAME",
        dimension_numbers=("NWHC", "HWIO", "CWNH"),
    )
    args.update(overrides)
    return conv_spec(**args)


def test_conv_spec_is_frozen():
    spec = _spec()
    assert isinstance(spec, ConvSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.window_strides = (2, 2)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.padding = ((0, 0), (0, 0))  # type: ignore[misc]


def test_conv_spec_fields_are_canonical():
    spec = _spec()
    assert spec.nspatial == 2
    assert spec.batch == 2 and spec.in_features == 3 and spec.out_features == 4
    assert spec.lhs_spatial == (5, 7)  # H, W: the rhs spec's order
    assert spec.window == (3, 3)
    assert spec.window_strides == (1, 2)
    assert spec.padding == ((1, 1), (1, 1))
    assert spec.lhs_dilation == (1, 1) and spec.rhs_dilation == (1, 1)
    assert spec.out_spatial == (5, 4)
    assert spec.out_shape == (4, 4, 2, 5)  # C W N H
    assert spec.dtype == "float32" and spec.out_dtype == "float32" and spec.preferred_element_type is None
    assert spec.precision is None
    for name in ("lhs_shape", "rhs_shape", "window_strides", "padding", "lhs_dilation", "rhs_dilation", "out_shape"):
        assert isinstance(getattr(spec, name), tuple), name
    assert all(isinstance(p, tuple) for p in spec.padding)
    assert type(spec.dimension_numbers) is ConvDimensionNumbers


def test_conv_spec_hashable_and_equal():
    a = _spec()
    # the same convolution spelled differently
    variants = [
        _spec(lhs_dtype=np.float32, rhs_dtype=np.dtype("float32")),
        _spec(window_strides=np.array([1, 2]), padding=[(1, 1), (1, 1)]),
        _spec(lhs_shape=[2, 7, 5, 3], rhs_shape=np.array([3, 3, 3, 4]), lhs_dilation=[1, 1], rhs_dilation=(1, 1)),
        _spec(dimension_numbers=ConvDimensionNumbers((0, 3, 2, 1), (3, 2, 0, 1), (2, 0, 3, 1))),
        _spec(precision=None, preferred_element_type=None),
    ]
    for b in variants:
        assert b == a
        assert hash(b) == hash(a)
    assert len({a, *variants}) == 1
    assert {a: "x"}[variants[0]] == "x"

    different = [
        _spec(window_strides=(2, 1)),
        _spec(padding="VALID"),
        _spec(precision="highest"),
        _spec(lhs_dtype="float64", rhs_dtype="float64"),
        _spec(preferred_element_type="float64"),
        _spec(dimension_numbers=("NHWC", "HWIO", "NHWC"), lhs_shape=(2, 5, 7, 3)),
    ]
    for b in different:
        assert b != a
    assert len({a, *different}) == len(different) + 1


def test_conv_spec_none_layout_equals_explicit_default():
    a = conv_spec((1, 2, 6), (3, 2, 2), "float64", "float64", (1,), "VALID")
    b = conv_spec((1, 2, 6), (3, 2, 2), "float64", "float64", (1,), [(0, 0)], None, None, ("NCW", "OIW", "NCW"))
    assert a == b and hash(a) == hash(b)


# --------------------------------------------------------------------------
# conv_spec caching
# --------------------------------------------------------------------------


def test_conv_spec_cache_lists_and_tuples_give_the_identical_object():
    as_tuples = conv_spec(
        (1, 3, 9, 8), (4, 3, 3, 2), "float32", "float32", (2, 1), ((1, 1), (0, 1)), (1, 1), (2, 1),
        ("NCHW", "OIHW", "NCHW"), 1, 1, ("high", "highest"), "float64",
    )
    as_lists = conv_spec(
        [1, 3, 9, 8], [4, 3, 3, 2], "float32", "float32", [2, 1], [[1, 1], [0, 1]], [1, 1], [2, 1],
        ["NCHW", "OIHW", "NCHW"], 1, 1, ["high", "highest"], "float64",
    )
    assert as_lists is as_tuples
    again = conv_spec(
        (1, 3, 9, 8), (4, 3, 3, 2), "float32", "float32", (2, 1), ((1, 1), (0, 1)), (1, 1), (2, 1),
        ("NCHW", "OIHW", "NCHW"), 1, 1, ("high", "highest"), "float64",
    )
    assert again is as_tuples


def test_conv_spec_unhashable_arguments_still_work():
    cached = conv_spec((1, 3, 9), (4, 3, 3), "float32", "float32", (2,), "SAME")
    uncached = conv_spec((1, 3, 9), (4, 3, 3), "float32", "float32", np.array([2]), "SAME")
    assert uncached == cached


@pytest.mark.parametrize(
    "param, good, bad",
    [
        ("window_strides", (1, 1), (1.0, 1)),
        ("window_strides", (1, 1), (True, 1)),
        ("lhs_dilation", (1, 1), (1.0, 1)),
        ("rhs_dilation", (1, 1), (True, True)),
        ("padding", ((0, 0), (0, 0)), ((0.0, 0), (0, 0))),
        ("padding", ((1, 1), (0, 0)), ((True, 1), (0, 0))),
        ("feature_group_count", 1, 1.0),
        ("feature_group_count", 1, True),
        ("batch_group_count", 1, True),
    ],
)
def test_conv_spec_cache_does_not_conflate_equal_values_of_other_types(param, good, bad):
    """1 == 1.0 == True in Python: a cache keyed on values alone would accept a
    float or bool argument once the int version has been parsed."""
    base = dict(
        lhs_shape=(1, 2, 6, 6), rhs_shape=(2, 2, 3, 3), lhs_dtype="float64", rhs_dtype="float64",
        window_strides=(1, 1), padding=((0, 0), (0, 0)), op="cache_probe",
    )
    conv_spec(**{**base, param: good})  # now cached
    with pytest.raises(polyconv.ConvTypeError):
        conv_spec(**{**base, param: bad})


# --------------------------------------------------------------------------
# precision
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("default", ("default", "default")),
        ("high", ("high", "high")),
        ("highest", ("highest", "highest")),
        ("HIGHEST", ("highest", "highest")),
        ("fastest", ("default", "default")),
        ("bfloat16", ("default", "default")),
        ("tensorfloat32", ("high", "high")),
        ("bfloat16_3x", ("high", "high")),
        ("float32", ("highest", "highest")),
        (("default", "high"), ("default", "high")),
        (["highest", "bfloat16"], ("highest", "default")),
        (("tensorfloat32", "float32"), ("high", "highest")),
        ((None, None), None),
        ((None, "high"), ("default", "high")),
    ],
)
def test_parse_precision(value, expected):
    assert parse_precision(value) == expected


class Precision(enum.Enum):
    """Stands in for jax.lax.Precision: recognised by class and member name."""

    DEFAULT = 0
    HIGH = 1
    HIGHEST = 2


def test_parse_precision_recognises_precision_enums_without_jax():
    assert parse_precision(Precision.HIGHEST) == ("highest", "highest")
    assert parse_precision((Precision.HIGH, Precision.DEFAULT)) == ("high", "default")
    assert parse_precision((Precision.HIGH, "highest")) == ("high", "highest")


def test_parse_precision_jax_enum():
    jax = _jax()
    P = jax.lax.Precision
    assert parse_precision(P.HIGHEST) == ("highest", "highest")
    assert parse_precision(P.DEFAULT) == ("default", "default")
    assert parse_precision((P.HIGH, P.HIGHEST)) == ("high", "highest")
    assert parse_precision([P.DEFAULT, P.HIGH]) == ("default", "high")


@pytest.mark.parametrize(
    "name", ["default", "high", "highest", "fastest", "bfloat16", "bfloat16_3x", "tensorfloat32", "float32"]
)
def test_parse_precision_names_match_jax(name):
    jax = _jax()
    expected = jax.lax.Precision(name).name.lower()
    assert parse_precision(name) == (expected, expected)
    assert parse_precision(jax.lax.Precision(name)) == (expected, expected)


@pytest.mark.parametrize(
    "value, cls",
    [
        ("ultra", polyconv.ConvArgumentError),
        (3, polyconv.ConvTypeError),
        (("high",), polyconv.ConvArgumentError),
        (("high", "high", "high"), polyconv.ConvArgumentError),
        (("high", "ultra"), polyconv.ConvArgumentError),
        (("high", 1.5), polyconv.ConvTypeError),
    ],
)
def test_parse_precision_rejects(value, cls):
    with pytest.raises(cls) as info:
        parse_precision(value, op="someop")
    assert str(info.value).startswith("someop: precision must be None, one of 'default', 'high', 'highest'")
    assert str(info.value).endswith(f"; got {value!r}")


# --------------------------------------------------------------------------
# dtype names
# --------------------------------------------------------------------------

NUMPY_NAMES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]


@pytest.mark.parametrize("name", NUMPY_NAMES)
def test_dtype_name_numpy(name):
    dt = np.dtype(name)
    assert dtype_name(dt) == name
    assert dtype_name(dt.type) == name
    assert dtype_name(name) == name
    assert dtype_name(dt.str) == name  # '<f4', '|b1'...
    assert dtype_name(dt.char) == name


@pytest.mark.parametrize(
    "value, expected",
    [
        ("f4", "float32"),
        ("f8", "float64"),
        ("c8", "complex64"),
        ("i2", "int16"),
        ("u1", "uint8"),
        (">f4", "float32"),
        (np.dtype(">i8"), "int64"),
        ("bfloat16", "bfloat16"),
        (np.bool_, "bool"),
        (np.double, "float64"),
        (np.intc, "int32"),
    ],
)
def test_dtype_name_spellings(value, expected):
    assert dtype_name(value) == expected


@pytest.mark.parametrize(
    "value, expected", [(float, "float64"), (int, "int64"), (complex, "complex128"), (bool, "bool")]
)
def test_dtype_name_python_types_mean_what_numpy_makes_of_them(value, expected):
    # np.dtype(float) is float64; torch and JAX accept Python types as dtypes too
    assert dtype_name(value) == expected


@pytest.mark.parametrize("value", ["nope", 3, None, object(), np.ones(3), "float128x", [np.float32]])
def test_dtype_name_rejects_non_dtypes(value):
    with pytest.raises(TypeError):
        dtype_name(value)


def test_dtype_name_torch():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    pairs = {
        torch.bool: "bool", torch.int8: "int8", torch.int16: "int16", torch.int32: "int32", torch.int64: "int64",
        torch.uint8: "uint8", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32",
        torch.float64: "float64", torch.complex64: "complex64", torch.complex128: "complex128",
        torch.half: "float16", torch.float: "float32", torch.double: "float64", torch.long: "int64",
        torch.cfloat: "complex64",
    }
    for u in ("uint16", "uint32", "uint64"):
        if hasattr(torch, u):
            pairs[getattr(torch, u)] = u
    for dt, name in pairs.items():
        assert dtype_name(dt) == name, dt
    assert dtype_name(torch.ones(2, dtype=torch.bfloat16).dtype) == "bfloat16"


def test_dtype_name_jax():
    _jax()
    import jax.numpy as jnp

    for t, name in [(jnp.float32, "float32"), (jnp.bfloat16, "bfloat16"), (jnp.int8, "int8"),
                    (jnp.complex64, "complex64"), (jnp.bool_, "bool"), (jnp.uint32, "uint32")]:
        assert dtype_name(t) == name
        assert dtype_name(jnp.dtype(t)) == name
    assert dtype_name(jnp.ones(2, jnp.bfloat16).dtype) == "bfloat16"


def test_dtype_name_ml_dtypes_bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed")
    assert dtype_name(ml_dtypes.bfloat16) == "bfloat16"
    assert dtype_name(np.dtype(ml_dtypes.bfloat16)) == "bfloat16"
    assert dtype_name(np.zeros(1, ml_dtypes.bfloat16).dtype) == "bfloat16"
    assert dtype_kind("bfloat16") == "f" and dtype_bits("bfloat16") == 16


def test_dtype_name_array_api_strict():
    xp = pytest.importorskip("array_api_strict", reason="array_api_strict is not installed")
    names = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
             "float32", "float64", "complex64", "complex128"]
    for name in names:
        dtype_name(np.dtype(name))  # NumPy's dtype first, as a mixed program would
    with warnings.catch_warnings():
        # array_api_strict warns when its dtypes are compared with NumPy's; naming one must not
        warnings.simplefilter("error")
        for name in names:
            assert dtype_name(getattr(xp, name)) == name
        assert dtype_name(xp.ones(2, dtype=xp.float32).dtype) == "float32"


@pytest.mark.parametrize("name", NUMPY_NAMES + ["bfloat16"])
def test_dtype_kind_and_bits(name):
    if name == "bfloat16":
        assert (dtype_kind(name), dtype_bits(name)) == ("f", 16)
    else:
        dt = np.dtype(name)
        assert (dtype_kind(name), dtype_bits(name)) == (dt.kind, dt.itemsize * 8)


def test_spec_layer_imports_no_framework():
    import subprocess
    import sys

    code = (
        "import sys, polyconv, polyconv.spec;"
        "polyconv.conv_general_shape((1, 2, 5), (3, 2, 2), (1,), 'SAME');"
        "bad = [m for m in ('torch', 'jax', 'cupy', 'tensorflow') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_output_size_helper():
    for padded, window, stride in itertools.product(range(0, 9), range(1, 5), range(1, 4)):
        expected = max(0, math.floor((padded - window) / stride) + 1)
        assert conv_output_size(padded, window, stride) == expected
