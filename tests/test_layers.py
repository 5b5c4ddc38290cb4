"""polyconv.layers against flax.linen: values on every backend, initialisers, rng kinds, dtypes, errors.

Every layer and padding mode is run by ``flax.linen`` (the reference) and by
polyconv's layer with the same parameters on each installed backend (NumPy,
PyTorch, JAX, array-api-strict), with batched, multi-batch and unbatched
inputs.  Frameworks that are missing are skipped with the reason.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import polyconv
from polyconv import layers as L
from polyconv.layers import initializers as inits
from polyconv.layers import promotion as layer_dtypes
from polyconv.layers.arrays import to_numpy
from polyconv.layers.padding import periodic_indices

BACKENDS = ["numpy", "torch", "jax", "array_api"]
_MODULES = {"torch": "torch", "jax": "jax", "array_api": "array_api_strict"}


def _framework(name: str) -> Any:
    if name == "numpy":
        return np
    return pytest.importorskip(_MODULES[name], reason=f"{_MODULES[name]} is not installed")


def to_backend(name: str, a: np.ndarray) -> Any:
    """A copy of ``a`` as an array of backend ``name``."""
    mod = _framework(name)
    if name == "numpy":
        return a.copy()
    if name == "torch":
        return mod.from_numpy(a.copy())
    if name == "jax":
        return mod.numpy.asarray(a)
    return mod.asarray(a)


def flax_modules() -> tuple[Any, Any, Any]:
    nn = pytest.importorskip("flax.linen", reason="flax is not installed: the layers are checked against flax.linen")
    jax = pytest.importorskip("jax", reason="JAX is not installed (pip install 'polyconv[jax]')")
    return nn, jax, jax.numpy


# (layer, fields, input shape): every padding mode, batch forms, groups, dilations, masks
_TRIL = "tril"  # a lower-triangular 0/1 mask of the kernel's shape, made per case
CASES: list[tuple[str, dict[str, Any], tuple[int, ...]]] = [
    ("Conv", dict(features=4, kernel_size=(3, 3)), (2, 7, 7, 3)),
    ("Conv", dict(features=4, kernel_size=(3, 3), strides=2, padding="VALID"), (7, 8, 3)),
    ("Conv", dict(features=4, kernel_size=(3, 3), strides=2, padding="CIRCULAR"), (2, 3, 7, 8, 3)),
    ("Conv", dict(features=4, kernel_size=(4, 3), padding="REFLECT", kernel_dilation=(2, 1)), (2, 7, 8, 3)),
    ("Conv", dict(features=3, kernel_size=3, padding="CAUSAL", kernel_dilation=2), (2, 3, 9, 2)),
    ("Conv", dict(features=6, kernel_size=(3, 3), padding=[(1, 2), 0], input_dilation=(2, 1),
                  kernel_dilation=(1, 2), feature_group_count=3), (2, 5, 5, 6)),
    ("Conv", dict(features=4, kernel_size=(2, 3), padding=1, use_bias=False), (1, 5, 5, 2)),
    ("Conv", dict(features=4, kernel_size=(3, 2), strides=(1, 2), padding=[1, (0, 2)]), (6, 7, 2)),
    ("Conv", dict(features=4, kernel_size=(2, 2, 3), padding="SAME_LOWER", feature_group_count=2), (1, 4, 5, 5, 4)),
    ("Conv", dict(features=4, kernel_size=(3, 3), mask=_TRIL), (2, 6, 6, 3)),
    ("Conv", dict(features=2, kernel_size=(5,), strides=3, padding="same"), (11, 3)),
    ("ConvLocal", dict(features=4, kernel_size=(3, 3), padding="VALID"), (2, 6, 7, 3)),
    ("ConvLocal", dict(features=3, kernel_size=(3,), strides=2, padding="CIRCULAR"), (9, 2)),
    ("ConvLocal", dict(features=3, kernel_size=(2, 3), padding="REFLECT", mask=_TRIL), (2, 2, 5, 6, 2)),
    ("ConvLocal", dict(features=3, kernel_size=3, padding="CAUSAL"), (2, 8, 2)),
    ("ConvLocal", dict(features=3, kernel_size=(3, 2), padding=[(1, 0), (2, 1)], input_dilation=2,
                       kernel_dilation=(2, 1)), (1, 4, 4, 2)),
    ("ConvTranspose", dict(features=4, kernel_size=(3, 3), strides=2), (2, 5, 5, 3)),
    ("ConvTranspose", dict(features=4, kernel_size=(3, 3), strides=2, padding="VALID", transpose_kernel=True),
     (2, 5, 4, 3)),
    ("ConvTranspose", dict(features=4, kernel_size=(6, 6), strides=(2, 2), padding="CIRCULAR",
                           transpose_kernel=True), (2, 5, 5, 3)),
    ("ConvTranspose", dict(features=4, kernel_size=(3, 4), strides=(2, 3), padding="CIRCULAR"), (5, 4, 3)),
    ("ConvTranspose", dict(features=3, kernel_size=5, padding="CIRCULAR"), (2, 4, 2)),
    ("ConvTranspose", dict(features=3, kernel_size=(3,), strides=2, padding=[(1, 2)], kernel_dilation=2,
                           transpose_kernel=True), (2, 2, 7, 3)),
    ("ConvTranspose", dict(features=3, kernel_size=(2, 3), strides=(1, 2), padding=1, use_bias=False), (1, 4, 4, 2)),
    ("ConvTranspose", dict(features=3, kernel_size=(3, 3), strides=2, mask=_TRIL, transpose_kernel=True),
     (2, 4, 4, 2)),
    ("ConvTranspose", dict(features=2, kernel_size=(2, 2, 2), strides=2, padding="SAME"), (1, 3, 3, 3, 2)),
    ("ConvTranspose", dict(features=3, kernel_size=(3, 2), strides=(3, 1), padding="VALID", kernel_dilation=(1, 2)),
     (2, 3, 4, 2)),
]


def _case_id(case: tuple[str, dict[str, Any], tuple[int, ...]]) -> str:
    name, fields, shape = case
    text = ",".join(f"{k}={v}" for k, v in fields.items() if k not in ("features",))
    return f"{name}({text})-{'x'.join(map(str, shape))}".replace(" ", "")


def _mask_for(layer: Any, shape: tuple[int, ...]) -> np.ndarray:
    kshape = layer.param_shapes(shape)["kernel"]
    rows = math.prod(kshape[:-1])
    return np.tril(np.ones((rows, kshape[-1]), np.float32), k=-1).reshape(kshape)


_REFERENCE: dict[int, tuple[Any, dict[str, np.ndarray], np.ndarray, np.ndarray]] = {}


def reference(index: int) -> tuple[Any, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(polyconv layer, params, x, flax output) of case ``index``, computed once.

    The parameters are polyconv's (with a non-zero bias, so that its shape
    and broadcasting are checked too); Flax's shapes and dtypes are checked
    against them (``jax.eval_shape`` of Flax's init) and Flax's ``apply``,
    jitted (one compilation per case), gives the expected output.
    """
    if index in _REFERENCE:
        return _REFERENCE[index]
    nn, jax, jnp = flax_modules()
    name, fields, shape = CASES[index]
    fields = dict(fields)
    mask = None
    if fields.get("mask") is _TRIL:
        mask = _mask_for(getattr(L, name)(**{**fields, "mask": None}), shape)
        fields["mask"] = mask
    ours = getattr(L, name)(**fields)
    theirs = getattr(nn, name)(**{**fields, "mask": None if mask is None else jnp.asarray(mask)})
    x = np.random.default_rng(index).standard_normal(shape).astype(np.float32)
    params = getattr(L, name)(**{**fields, "bias_init": L.initializers.normal(1.0)}).init(index, x)
    abstract = jax.eval_shape(theirs.init, jax.random.key(0), jax.ShapeDtypeStruct(shape, jnp.float32))["params"]
    assert {k: (v.shape, v.dtype) for k, v in abstract.items()} == {k: (v.shape, v.dtype) for k, v in params.items()}
    expected = np.asarray(jax.jit(theirs.apply)({"params": params}, x))
    _REFERENCE[index] = (ours, params, x, expected)
    return _REFERENCE[index]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("index", range(len(CASES)), ids=[_case_id(c) for c in CASES])
def test_layer_matches_flax(index: int, backend: str) -> None:
    layer, params, x, expected = reference(index)
    assert layer.param_shapes(x.shape) == {k: v.shape for k, v in params.items()}
    assert layer.output_shape(x.shape) == expected.shape
    xb = to_backend(backend, x)
    out = layer.apply({k: to_backend(backend, v) for k, v in params.items()}, xb)
    assert type(out) is type(xb)
    got = to_numpy(out, "test", "out")
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_init_makes_params_in_the_inputs_framework(backend: str) -> None:
    x = to_backend(backend, np.zeros((2, 6, 6, 3), np.float32))
    for layer in (L.Conv(4, (3, 3)), L.ConvLocal(4, (3, 3)), L.ConvTranspose(4, (3, 3), transpose_kernel=True)):
        params = layer.init(0, x)
        assert set(params) == {"kernel", "bias"}
        for name, value in params.items():
            assert type(value) is type(x), name
            assert polyconv.spec.dtype_name(value.dtype) == "float32"
            assert tuple(value.shape) == layer.param_shapes(x.shape)[name]
        np.testing.assert_array_equal(to_numpy(params["bias"], "test", "bias"), 0)
        # the same seed gives the same parameters on every framework
        kernel = to_numpy(params["kernel"], "test", "kernel")
        np.testing.assert_array_equal(kernel, layer.init(0, np.zeros(x.shape))["kernel"])


def test_param_shapes_and_dtypes_equal_flax() -> None:
    nn, jax, jnp = flax_modules()
    x = np.zeros((2, 9, 8, 4), np.float32)
    for name, fields in [
        ("Conv", dict(features=6, kernel_size=(3, 2), feature_group_count=2, param_dtype=jnp.bfloat16)),
        ("ConvLocal", dict(features=3, kernel_size=(3, 3), strides=2, padding="CIRCULAR")),
        ("ConvTranspose", dict(features=5, kernel_size=(3, 3), strides=2, transpose_kernel=True,
                               param_dtype=jnp.float16)),
        ("ConvTranspose", dict(features=5, kernel_size=(2, 3), use_bias=False)),
    ]:
        theirs = jax.eval_shape(getattr(nn, name)(**fields).init, jax.random.key(0), x)["params"]
        ours = getattr(L, name)(**fields).init(0, x)
        assert {k: (v.shape, v.dtype) for k, v in ours.items()} == {k: (v.shape, v.dtype) for k, v in theirs.items()}


# -- initialisers ------------------------------------------------------------------------------

def _truncated_moments(limit: float = 2.0) -> tuple[float, float]:
    """Variance and fourth moment of a standard normal truncated to (-limit, limit)."""
    z = np.linspace(-limit, limit, 400_001)
    pdf = np.exp(-z * z / 2)
    pdf /= np.trapezoid(pdf, z)
    return float(np.trapezoid(z**2 * pdf, z)), float(np.trapezoid(z**4 * pdf, z))


def _check_variance(samples: np.ndarray, variance: float, kurtosis: float, z: float = 5.0) -> None:
    """The sample variance is within ``z`` standard errors of ``variance``.

    For n independent draws of a zero-mean distribution of kurtosis k, the
    sample second moment has mean variance and standard error
    ``variance * sqrt((k - 1) / n)``; five standard errors leave a false
    failure probability below 1e-6 (and the seeds are fixed).
    """
    s = samples.astype(np.float64).ravel()
    n = s.size
    second = float(np.mean(s * s))
    bound = z * variance * math.sqrt((kurtosis - 1) / n)
    assert abs(second - variance) <= bound, (second, variance, bound)
    assert abs(float(s.mean())) <= z * math.sqrt(variance / n)


def test_truncated_normal_constant_is_the_truncated_std() -> None:
    var, _ = _truncated_moments()
    assert math.sqrt(var) == pytest.approx(inits.TRUNCATED_NORMAL_STD, rel=1e-9)


@pytest.mark.parametrize(
    "layer, in_shape, fan_in",
    [
        (L.Conv(64, (3, 3)), (1, 8, 8, 32), 3 * 3 * 32),
        (L.Conv(64, (3, 3), feature_group_count=4), (1, 8, 8, 32), 3 * 3 * 8),
        (L.ConvTranspose(48, (3, 3), transpose_kernel=True), (1, 8, 8, 32), 3 * 3 * 48),
        (L.ConvTranspose(48, (3, 3)), (1, 8, 8, 32), 3 * 3 * 32),
        # ConvLocal: as in Flax, the output positions count as receptive field: fan_in = 6 * 6 * 9 * 16
        (L.ConvLocal(32, (3, 3), padding="VALID"), (1, 8, 8, 16), 6 * 6 * 9 * 16),
    ],
    ids=["conv", "conv-groups", "transpose-kernel", "transpose", "local"],
)
def test_default_kernel_init_is_lecun_normal(layer: Any, in_shape: tuple[int, ...], fan_in: int) -> None:
    kernel = layer.init(7, np.zeros(in_shape, np.float32))["kernel"]
    assert kernel.dtype == np.float32
    var, fourth = _truncated_moments()
    variance = 1.0 / fan_in
    _check_variance(kernel, variance, fourth / var**2)
    std = math.sqrt(variance) / inits.TRUNCATED_NORMAL_STD
    assert float(np.abs(kernel).max()) < 2 * std * (1 + 1e-6)  # truncated at two (pre-scaling) standard deviations
    # the share within one pre-scaling standard deviation: P(|z| < 1 | |z| < 2), binomial standard error
    p = math.erf(1 / math.sqrt(2)) / math.erf(2 / math.sqrt(2))
    share = float(np.mean(np.abs(kernel) < std))
    assert abs(share - p) <= 5 * math.sqrt(p * (1 - p) / kernel.size)


def test_lecun_normal_matches_flax_statistics() -> None:
    nn, jax, jnp = flax_modules()
    shape = (3, 3, 32, 64)
    theirs = np.asarray(jax.jit(nn.initializers.lecun_normal(), static_argnums=(1, 2))(jax.random.key(0), shape,
                                                                                          jnp.float32))
    ours = inits.lecun_normal()(0, shape, np.float32)
    var, fourth = _truncated_moments()
    for w in (theirs, ours):
        assert w.shape == shape and w.dtype == np.float32
        _check_variance(w, 1 / (3 * 3 * 32), fourth / var**2)


@pytest.mark.parametrize(
    "mode, distribution, kurtosis",
    [("fan_out", "normal", 3.0), ("fan_avg", "uniform", 1.8), ("fan_geo_avg", "truncated_normal", None)],
)
def test_variance_scaling_modes(mode: str, distribution: str, kurtosis: float | None) -> None:
    shape = (5, 4, 24, 40)
    fan_in, fan_out = 20 * 24, 20 * 40
    fan = {"fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2, "fan_geo_avg": math.sqrt(fan_in * fan_out)}[mode]
    w = inits.variance_scaling(2.0, mode, distribution)(np.random.default_rng(3), shape)
    if kurtosis is None:
        var, fourth = _truncated_moments()
        kurtosis = fourth / var**2
    _check_variance(w, 2.0 / fan, kurtosis)
    if distribution == "uniform":
        assert float(np.abs(w).max()) <= math.sqrt(3 * 2.0 / fan)


def test_complex_variance_scaling() -> None:
    w = inits.lecun_normal()(0, (4, 4, 16, 32), "complex64")
    assert w.dtype == np.complex64
    variance = 1 / (4 * 4 * 16)
    modulus2 = np.abs(w.astype(np.complex128)) ** 2
    # |z|^2 of the truncated complex normal: E = variance; bound with its empirical spread
    assert abs(float(modulus2.mean()) - variance) <= 5 * float(modulus2.std()) / math.sqrt(w.size)
    assert float(np.abs(w).max()) <= 2 * math.sqrt(variance) / inits.COMPLEX_TRUNCATED_NORMAL_STD * (1 + 1e-6)


def test_initializer_errors() -> None:
    with pytest.raises(polyconv.ConvArgumentError, match="mode"):
        inits.variance_scaling(1.0, "fan_sideways", "normal")
    with pytest.raises(polyconv.ConvTypeError, match="dtype"):
        inits.lecun_normal()(0, (3, 3), "int32")
    with pytest.raises(polyconv.ConvShapeError, match="2 dimensions"):
        inits.lecun_normal()(0, (3,))


# -- rng kinds -------------------------------------------------------------------------------

def _kernel(rng: Any, x: Any = None) -> np.ndarray:
    x = np.zeros((1, 5, 5, 2), np.float32) if x is None else x
    return to_numpy(L.Conv(3, (3, 3)).init(rng, x)["kernel"], "test", "kernel")


def test_rng_kinds_numpy() -> None:
    np.testing.assert_array_equal(_kernel(3), _kernel(3))
    assert not np.array_equal(_kernel(3), _kernel(4))
    np.testing.assert_array_equal(_kernel(np.random.SeedSequence(9)), _kernel(np.random.SeedSequence(9)))
    gen = np.random.default_rng(0)
    first, second = _kernel(gen), _kernel(gen)  # a generator advances
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, _kernel(np.random.default_rng(0)))


def test_rng_kinds_torch() -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'polyconv[torch]')")
    a = _kernel(torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(a, _kernel(torch.Generator().manual_seed(1)))
    assert not np.array_equal(a, _kernel(torch.Generator().manual_seed(2)))


def test_rng_kinds_jax() -> None:
    jax = pytest.importorskip("jax", reason="JAX is not installed (pip install 'polyconv[jax]')")
    typed, raw = jax.random.key(5), jax.random.PRNGKey(5)
    np.testing.assert_array_equal(_kernel(typed), _kernel(typed))
    np.testing.assert_array_equal(_kernel(typed), _kernel(raw))  # the same key data
    assert not np.array_equal(_kernel(typed), _kernel(jax.random.key(6)))
    with pytest.raises(polyconv.ConvTypeError, match="concrete JAX key"):
        jax.jit(lambda k: L.Conv(3, (3, 3)).init(k, np.zeros((1, 5, 5, 2)))["kernel"])(typed)


def test_user_initializers_get_a_key_per_parameter() -> None:
    seen: list[Any] = []

    def init(key: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        seen.append((key, shape, dtype))
        return np.full(shape, 0.5, np.float32)

    x = np.zeros((1, 5, 5, 2), np.float32)
    params = L.Conv(3, (3, 3), kernel_init=init, bias_init=init, param_dtype="float16").init(0, x)
    assert [(type(k), s, d) for k, s, d in seen] == [
        (np.random.Generator, (3, 3, 2, 3), "float16"), (np.random.Generator, (3,), "float16"),
    ]
    assert seen[0][0] is not seen[1][0]
    assert params["kernel"].dtype == np.float32  # what the initialiser returned, as in Flax


def test_jax_key_and_flax_initializers_give_flax_params() -> None:
    nn, jax, jnp = flax_modules()
    x = jnp.zeros((2, 6, 6, 3))
    # cheap initialisers (Flax's own LeCun normal compiles an erfinv): what is checked is the keys
    fields = dict(features=4, kernel_size=(3, 3), kernel_init=nn.initializers.normal(1.0),
                  bias_init=nn.initializers.uniform(1.0))
    theirs = jax.jit(nn.Conv(**fields).init)(jax.random.key(11), x)["params"]
    for key in (jax.random.key(11), jax.random.PRNGKey(11)):  # the same key data: the same parameters
        ours = L.Conv(**fields).init(key, x)
        for name in ("kernel", "bias"):
            np.testing.assert_array_equal(np.asarray(ours[name]), np.asarray(theirs[name]))


# -- dtypes ----------------------------------------------------------------------------------

_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "bfloat16", "float16", "float32", "float64", "complex64", "complex128"]


def test_promote_types_is_jax_lattice(jax_x64: Any) -> None:
    jnp = jax_x64[0].numpy  # with 64-bit types: without them JAX narrows int64 results to int32
    for a in _DTYPES:
        for b in _DTYPES:
            assert layer_dtypes.promote_types(a, b) == jnp.promote_types(a, b).name, (a, b)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize(
    "x_dtype, fields, out_dtype",
    [
        ("float16", dict(), "float32"),                                  # float16 inputs, float32 params
        ("float16", dict(param_dtype="float16"), "float16"),
        ("float32", dict(dtype="bfloat16"), "bfloat16"),
        ("float16", dict(param_dtype="bfloat16"), "float32"),            # JAX: bfloat16 + float16 = float32
    ],
)
def test_dtype_promotion_matches_flax(backend: str, x_dtype: str, fields: dict[str, Any], out_dtype: str) -> None:
    nn, jax, jnp = flax_modules()
    x = np.random.default_rng(0).standard_normal((1, 5, 5, 2)).astype(layer_dtypes.numpy_dtype(x_dtype))
    flax_out = jax.eval_shape(nn.Conv(3, (3, 3), **fields).init_with_output, jax.random.key(0), x)[0]
    assert flax_out.dtype.name == out_dtype
    layer = L.Conv(3, (3, 3), **fields)
    xb = to_backend(backend, x)
    assert polyconv.spec.dtype_name(layer.apply(layer.init(0, xb), xb).dtype) == out_dtype


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_transpose_preferred_element_type(backend: str) -> None:
    layer = L.ConvTranspose(3, (3,), strides=2, param_dtype="float16", preferred_element_type="float32")
    xb = to_backend(backend, np.ones((1, 4, 2), np.float16))
    assert polyconv.spec.dtype_name(layer.apply(layer.init(0, xb), xb).dtype) == "float32"


def test_bool_mask_keeps_the_kernel_dtype() -> None:
    mask = np.zeros((3, 3, 2, 4), bool)
    mask[1, 1] = True
    layer = L.Conv(4, (3, 3), mask=mask, use_bias=False)
    x = np.random.default_rng(0).standard_normal((1, 5, 5, 2)).astype(np.float32)
    params = layer.init(0, x)
    y = layer.apply(params, x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, np.einsum("nhwc,cf->nhwf", x, params["kernel"][1, 1]), rtol=1e-6, atol=1e-6)


# -- padding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["wrap", "reflect"])
@pytest.mark.parametrize("size, low, high", [(1, 2, 3), (3, 7, 5), (4, 0, 9), (5, 2, 0)])
def test_periodic_indices_match_numpy_pad(mode: str, size: int, low: int, high: int) -> None:
    a = np.arange(size)
    assert periodic_indices(size, low, high, mode) == np.pad(a, (low, high), mode=mode).tolist()


def test_canonicalize_padding_matches_flax() -> None:
    nn = pytest.importorskip("flax.linen", reason="flax is not installed")
    from flax.linen.linear import canonicalize_padding as flax_canonical

    for padding, rank in [(2, 3), ([1, (2, 3)], 2), ("CIRCULAR", 1), ((0, (1, 0), 3), 3)]:
        expected = flax_canonical(padding, rank)
        got = L.canonicalize_padding(padding, rank)
        assert got == (expected if isinstance(expected, str) else tuple(expected))
    del nn


_LAYER_PAD = ("Conv: padding must be a string, an int, or a sequence of {} entries, each an int or a (low, high) "
              "pair of ints")


@pytest.mark.parametrize(
    "padding, rank, cls",
    [
        (1.5, 2, polyconv.ConvTypeError),
        (True, 1, polyconv.ConvTypeError),
        (None, 1, polyconv.ConvTypeError),
        ([1, 2, 3], 2, polyconv.ConvArgumentError),
        ([(1, 2, 3)], 1, polyconv.ConvArgumentError),
        ([(1,)], 1, polyconv.ConvArgumentError),
        ([1.5], 1, polyconv.ConvTypeError),
        ([(1, True)], 1, polyconv.ConvTypeError),
        ([(1, "a")], 1, polyconv.ConvTypeError),
        # the values' type is checked before their number (a string entry is not an int)
        ([1, "a", 3], 3, polyconv.ConvTypeError),
        ([(1, "a", 3)], 1, polyconv.ConvTypeError),
    ],
)
def test_canonicalize_padding_errors(padding: Any, rank: int, cls: type) -> None:
    with pytest.raises(cls) as info:
        L.canonicalize_padding(padding, rank, "Conv")
    assert type(info.value) is cls
    assert str(info.value) == f"{_LAYER_PAD.format(rank)}; got {padding!r}"


def test_canonicalize_padding_is_the_ops_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """The layers parse explicit padding with polyconv.spec's parser (Flax's int forms
    switched on), not with one of their own."""
    from polyconv.layers import padding as layer_padding
    from polyconv.spec import padding as spec_padding

    seen: list[tuple[Any, int, bool]] = []

    def spy(padding: Any, n: int, op: str, expected: str, *, ints: bool = False) -> Any:
        seen.append((padding, n, ints))
        return spec_padding.explicit_pairs(padding, n, op, expected, ints=ints)

    monkeypatch.setattr(layer_padding, "explicit_pairs", spy)
    assert L.canonicalize_padding([2, (0, 1)], 2) == ((2, 2), (0, 1))
    assert L.canonicalize_padding(3, 1) == ((3, 3),)
    assert L.canonicalize_padding("CIRCULAR", 2) == "CIRCULAR"  # names are the layers' own (config.py)
    assert seen == [([2, (0, 1)], 2, True), (3, 1, True)]
    assert L.Conv(4, (3, 3), padding=[1, (0, 2)]).output_shape((1, 5, 5, 2)) == (1, 5, 5, 4)
    assert len(seen) == 3


# -- the Flax hook ---------------------------------------------------------------------------

def test_flax_conv_with_polyconv_hook() -> None:
    """``flax.linen.Conv(..., conv_general_dilated=polyconv.conv_general_dilated)``: Flax's own
    arguments (index-tuple dimension numbers, padding lists, a ``jax.lax.Precision``) are accepted,
    under ``jit`` and ``grad``; ConvLocal uses the hook to work out its kernel's shape."""
    nn, jax, jnp = flax_modules()
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 6)).astype(np.float32)
    for cls, fields in [
        (nn.Conv, dict(features=6, kernel_size=(3, 3), padding=[(1, 2), 0], input_dilation=2, kernel_dilation=(1, 2),
                       feature_group_count=3, precision=jax.lax.Precision.HIGHEST)),
        (nn.ConvLocal, dict(features=4, kernel_size=(3, 3), strides=2, padding="CIRCULAR")),
    ]:
        plain = cls(**fields)
        hooked = cls(**fields, conv_general_dilated=polyconv.conv_general_dilated)
        params = getattr(L, cls.__name__)(**fields).init(0, x)
        assert jax.tree.map(jnp.shape, jax.eval_shape(hooked.init, jax.random.key(0), x))["params"] == {
            k: v.shape for k, v in params.items()
        }

        def loss(module: Any) -> Any:
            return jax.jit(jax.value_and_grad(lambda p: (module.apply({"params": p}, x) ** 2).sum()))

        expected, ref_grads = loss(plain)(params)
        value, grads = loss(hooked)(params)
        np.testing.assert_allclose(value, expected, rtol=1e-5)
        np.testing.assert_allclose(grads["kernel"], ref_grads["kernel"], rtol=1e-4, atol=1e-4)
    eager = nn.Conv(4, (3, 3), padding="CIRCULAR", conv_general_dilated=polyconv.conv_general_dilated)
    params = L.Conv(4, (3, 3), padding="CIRCULAR").init(0, x)
    expected = L.Conv(4, (3, 3), padding="CIRCULAR").apply(params, x)
    np.testing.assert_allclose(eager.apply({"params": params}, x), expected, rtol=1e-5, atol=1e-5)


# -- JAX transformations ---------------------------------------------------------------------

def test_layers_under_jit_grad_and_vmap() -> None:
    nn, jax, jnp = flax_modules()
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 6, 6, 3)).astype(np.float32))
    mask = np.tril(np.ones((27, 4), np.float32)).reshape(3, 3, 3, 4)
    for fields in [dict(features=4, kernel_size=(3, 3), padding="REFLECT", mask=mask)]:
        ours, theirs = L.Conv(**fields), nn.Conv(**fields)
        params = ours.init(jax.random.key(1), x)

        def ours_loss(p: Any) -> Any:
            return (ours.apply(p, x) ** 2).sum()  # noqa: B023

        def flax_loss(p: Any) -> Any:
            return (theirs.apply({"params": p}, x) ** 2).sum()  # noqa: B023

        value, grads = jax.jit(jax.value_and_grad(ours_loss))(params)
        ref_value, ref_grads = jax.jit(jax.value_and_grad(flax_loss))(params)
        np.testing.assert_allclose(value, ref_value, rtol=1e-5)
        for name in params:
            np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-4, atol=1e-4)
        batched = jax.jit(jax.vmap(ours.apply, in_axes=(None, 0)))(params, x)  # each example unbatched
        np.testing.assert_allclose(batched, ours.apply(params, x), rtol=1e-5, atol=1e-5)


def test_conv_hooks_take_jax_lax() -> None:
    """Our ``Conv`` hands a ``conv_general_dilated`` hook what Flax hands it: jax.lax's own function works."""
    jax = pytest.importorskip("jax", reason="JAX is not installed (pip install 'polyconv[jax]')")
    x = jax.numpy.asarray(np.random.default_rng(0).standard_normal((2, 6, 6, 4)).astype(np.float32))
    fields = dict(features=4, kernel_size=(3, 2), padding=[(1, 0), 2], input_dilation=(1, 2), feature_group_count=2)
    params = L.Conv(**fields).init(0, x)
    expected = L.Conv(**fields).apply(params, x)
    for hook in (dict(conv_general_dilated=jax.lax.conv_general_dilated),
                 dict(conv_general_dilated_cls=lambda: jax.lax.conv_general_dilated)):
        np.testing.assert_allclose(L.Conv(**fields, **hook).apply(params, x), expected, rtol=1e-5, atol=1e-5)


def test_layers_pickle() -> None:
    import pickle

    layer = L.ConvTranspose(4, (3, 3), strides=2, mask=np.ones((3, 3, 2, 4)), bias_init=L.initializers.normal(1.0))
    copy = pickle.loads(pickle.dumps(layer))
    assert repr(copy) == repr(layer)
    x = np.ones((1, 4, 4, 2), np.float32)
    np.testing.assert_array_equal(copy.init(0, x)["bias"], layer.init(0, x)["bias"])


def test_apply_takes_flax_variables() -> None:
    layer = L.Conv(2, (3,))
    x = np.ones((1, 4, 1), np.float32)
    params = layer.init(0, x)
    np.testing.assert_array_equal(layer.apply({"params": params}, x), layer.apply(params, x))


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "make, cls, field, value",
    [
        (lambda: L.Conv(4, (3, 3), padding="CAUSAL"), polyconv.ConvArgumentError, "padding", "'CAUSAL'"),
        (lambda: L.Conv(4, (3,), padding="circular"), polyconv.ConvArgumentError, "padding", "'circular'"),
        (lambda: L.Conv(4, (3, 3), padding="WRAP"), polyconv.ConvArgumentError, "padding", "'WRAP'"),
        (lambda: L.Conv(4, (3, 3), padding=[1, 2, 3]), polyconv.ConvArgumentError, "padding", "[1, 2, 3]"),
        (lambda: L.Conv(4, (3, 3), padding=1.5), polyconv.ConvTypeError, "padding", "1.5"),
        (lambda: L.Conv(4, (3, 3), feature_group_count=3), polyconv.ConvArgumentError, "features", "4"),
        (lambda: L.Conv(4, (3, 3), feature_group_count=0), polyconv.ConvArgumentError, "feature_group_count", "0"),
        (lambda: L.Conv(4, (3, 3), strides=(1, 2, 1)), polyconv.ConvArgumentError, "strides", "(1, 2, 1)"),
        (lambda: L.Conv(4, (3, 3), kernel_dilation=(1, 0)), polyconv.ConvArgumentError, "kernel_dilation", "(1, 0)"),
        (lambda: L.Conv(4, (3, 0)), polyconv.ConvArgumentError, "kernel_size", "(3, 0)"),
        (lambda: L.Conv(4, "3"), polyconv.ConvTypeError, "kernel_size", "'3'"),
        (lambda: L.Conv(0, 3), polyconv.ConvArgumentError, "features", "0"),
        (lambda: L.Conv(4, (3, 3), input_dilation=2), polyconv.ConvArgumentError, "padding", "'SAME'"),
        (lambda: L.Conv(4, (3, 3), mask=np.ones((3, 3, 4))), polyconv.ConvShapeError, "mask", "(3, 3, 4)"),
        (lambda: L.Conv(4, (3, 3), mask=np.ones((3, 2, 1, 4))), polyconv.ConvShapeError, "mask", "(3, 2, 1, 4)"),
        (lambda: L.ConvLocal(4, (3, 3), feature_group_count=2), polyconv.UnsupportedFeatureError,
         "feature_group_count", "2"),
        (lambda: L.ConvTranspose(4, (3, 3), padding="REFLECT"), polyconv.ConvArgumentError, "padding", "'REFLECT'"),
        (lambda: L.ConvTranspose(4, (3, 3), strides=2, padding="same"), polyconv.ConvArgumentError, "padding",
         "'same'"),
        (lambda: L.Conv(4, (3, 3), dtype="int32"), polyconv.ConvTypeError, "dtype", "'int32'"),
        (lambda: L.Conv(4, (3, 3), param_dtype="float33"), polyconv.ConvTypeError, "param_dtype", "'float33'"),
        (lambda: L.Conv(4, (3, 3), precision="fastest-ever"), polyconv.ConvArgumentError, "precision",
         "'fastest-ever'"),
        (lambda: L.Conv(4, (3, 3), kernel_init=None), polyconv.ConvTypeError, "kernel_init", "None"),
        (lambda: L.Conv(4, (3, 3), use_bias="yes"), polyconv.ConvTypeError, "use_bias", "'yes'"),
        (lambda: L.ConvTranspose(4, (3, 3), transpose_kernel=None), polyconv.ConvTypeError, "transpose_kernel",
         "None"),
    ],
)
def test_bad_configurations(make: Any, cls: type, field: str, value: str) -> None:
    with pytest.raises(cls) as info:
        make()
    text = str(info.value)
    assert text.startswith(("Conv", "ConvLocal", "ConvTranspose")) and f" {field} " in f" {text} " and value in text


@pytest.fixture
def no_backend_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any polyconv op called from here on fails the test: errors must come first."""
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a backend ran")

    for name in ("conv_general_dilated", "conv_general_dilated_local", "conv_transpose"):
        monkeypatch.setattr(polyconv.ops, name, fail)


@pytest.mark.parametrize(
    "run, cls, field",
    [
        (lambda: L.Conv(4, (3, 3)).init(0, np.ones((6, 6))), polyconv.ConvShapeError, "inputs"),
        (lambda: L.Conv(4, (3, 3), feature_group_count=2).init(0, np.ones((1, 6, 6, 3))), polyconv.ConvShapeError,
         "inputs"),
        (lambda: L.Conv(4, (3, 3), mask=np.ones((3, 3, 4, 4))).init(0, np.ones((1, 5, 5, 2))),
         polyconv.ConvShapeError, "mask"),
        (lambda: L.ConvLocal(4, (3, 3), mask=np.ones((3, 3, 18, 4))).apply({}, np.ones((1, 5, 5, 2))),
         polyconv.ConvShapeError, "mask"),
        (lambda: L.Conv(4, (3, 3)).init(-1, np.ones((1, 5, 5, 2))), polyconv.ConvArgumentError, "rng"),
        (lambda: L.Conv(4, (3, 3)).init("seed", np.ones((1, 5, 5, 2))), polyconv.ConvTypeError, "rng"),
        (lambda: L.Conv(4, (3, 3)).apply({"kernel": np.ones((3, 3, 2, 4))}, np.ones((1, 5, 5, 2))),
         polyconv.ConvArgumentError, "params"),
        (lambda: L.Conv(4, (3, 3)).apply({"kernel": np.ones((3, 3, 2, 5)), "bias": np.ones(4)}, np.ones((1, 5, 5, 2))),
         polyconv.ConvShapeError, "params['kernel']"),
        (lambda: L.Conv(4, (3, 3), padding="CIRCULAR").apply({}, np.ones((1, 0, 5, 2))), polyconv.ConvShapeError,
         "inputs"),
        (lambda: L.Conv(4, (3, 3), kernel_init=lambda k, s, d: np.ones(3)).init(0, np.ones((1, 5, 5, 2))),
         polyconv.ConvShapeError, "kernel_init"),
    ],
)
def test_errors_before_any_backend_runs(no_backend_runs: None, run: Any, cls: type, field: str) -> None:
    with pytest.raises(cls) as info:
        run()
    assert f" {field} " in str(info.value)


def test_mixed_frameworks_are_refused() -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'polyconv[torch]')")
    layer = L.Conv(4, (3, 3))
    params = layer.init(0, np.ones((1, 5, 5, 2), np.float32))
    with pytest.raises(polyconv.MixedArraysError, match=r"params\['kernel'\]"):
        layer.apply(params, torch.ones(1, 5, 5, 2))


def test_repr_shows_changed_fields() -> None:
    assert repr(L.Conv(8, (3, 3), padding="CIRCULAR")) == "Conv(features=8, kernel_size=(3, 3), padding='CIRCULAR')"
