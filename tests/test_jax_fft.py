"""The JAX backend's FFT path (backends/jax/fft_lowering.py): values, the error rule under jit, autodiff.

JAX's default is 32-bit (no ``jax_enable_x64``), where the path computes its
float64 transforms inside ``jax.enable_x64``: this module runs with x64 off,
as users have it.  Values are checked against the reference with the
conformance suite's tolerance (``tolerances.check_close``), which a
transform's rounding breaks on wide-range operands: the error rule must send
those to the direct path, under ``jit`` as well as eagerly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from polyconv.conformance import tolerances

import polyconv
from polyconv.spec import conv_spec

jax = pytest.importorskip("jax", reason="JAX is not installed: pip install jax -c constraints.txt")
import jax.numpy as jnp  # noqa: E402

if not hasattr(jax, "enable_x64"):
    pytest.skip(f"JAX {jax.__version__} has no jax.enable_x64: without x64 the JAX backend keeps the direct path "
                "(fft_lowering.available)", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def _x32() -> Any:
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    yield
    jax.config.update("jax_enable_x64", before)


def _rand(shape: tuple[int, ...], seed: int, dtype: str = "float32") -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    if dtype.startswith("complex"):
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def _n(a: Any) -> np.ndarray:
    return np.asarray(a)


#: Specs that the FFT path computes in every form it has: strides, negative pads, kernel and
#: lhs dilation, feature and batch groups, channels-last layouts, 1-d and 3-d.
_CASES = {
    "same-2d": ((2, 3, 33, 31), (4, 3, 9, 7), {"window_strides": (1, 1), "padding": "SAME"}),
    "strided-dilated-groups": ((2, 3, 40, 30), (6, 1, 11, 9), {"window_strides": (2, 1), "padding": [(5, -2), (3, 4)],
                                                                "rhs_dilation": (2, 1), "feature_group_count": 3}),
    "lhs-dilated-batch-groups": ((4, 4, 50), (6, 4, 13), {"window_strides": (1,), "padding": [(6, 6)],
                                                           "lhs_dilation": (2,), "batch_group_count": 2}),
    "channels-last": ((2, 30, 30, 2), (9, 9, 2, 3), {"window_strides": (1, 1), "padding": "SAME",
                                                      "dimension_numbers": ("NHWC", "HWIO", "NHWC")}),
    "3-d": ((1, 2, 12, 11, 10), (2, 2, 5, 4, 3), {"window_strides": (1, 2, 1), "padding": "SAME"}),
}


def _spec(xs: tuple[int, ...], ws: tuple[int, ...], dtype: str, kw: dict[str, Any]) -> Any:
    return conv_spec(xs, ws, dtype, dtype, **kw)


@pytest.mark.parametrize("name", sorted(_CASES))
@pytest.mark.parametrize("dtype", ["float32", "complex64", "float16"])
def test_fft_path_matches_the_reference_eager_and_jitted(name: str, dtype: str) -> None:
    xs, ws, kw = _CASES[name]
    x, w = _rand(xs, 1, dtype), _rand(ws, 2, dtype)
    with polyconv.use_fft("always"):
        assert polyconv.explain("conv_general_dilated", jnp.asarray(x), jnp.asarray(w), **kw).strategy == "fft"
        eager = polyconv.conv_general_dilated(jnp.asarray(x), jnp.asarray(w), **kw)
        jitted = jax.jit(lambda a, b: polyconv.conv_general_dilated(a, b, **kw))(jnp.asarray(x), jnp.asarray(w))
    spec = _spec(xs, ws, dtype, kw)
    assert eager.dtype == jnp.dtype(dtype)
    for out in (eager, jitted):
        assert tolerances.check_close(_n(out), x, w, spec) is None


def _large() -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A depthwise 31x31 convolution that the cost model sends to FFT."""
    return _rand((1, 8, 48, 48), 3), _rand((8, 1, 31, 31), 4), {
        "window_strides": (1, 1), "padding": "SAME", "feature_group_count": 8}


def test_auto_takes_fft_for_a_large_kernel_and_says_why() -> None:
    x, w, kw = _large()
    e = polyconv.explain("conv_general_dilated", jnp.asarray(x), jnp.asarray(w), **kw)
    assert e.strategy == "fft" and e.fft[0].use and "cost model" in e.why
    with polyconv.use_fft("never"):
        assert polyconv.explain("conv_general_dilated", jnp.asarray(x), jnp.asarray(w), **kw).strategy != "fft"
    f = jax.jit(lambda a, b: polyconv.conv_general_dilated(a, b, **kw))
    assert "fft" in f.lower(jnp.asarray(x), jnp.asarray(w)).as_text()
    out = f(jnp.asarray(x), jnp.asarray(w))
    assert tolerances.check_close(_n(out), x, w, _spec(x.shape, w.shape, "float32", kw)) is None


def test_specs_left_to_xla_are_costed_at_xla_cpus_rate_for_their_channels() -> None:
    """On the CPU, the direct path of a spec that no CPU lowering takes is XLA's convolution,
    which runs few channels at a few GFLOP/s: the FFT decision costs it at
    ``cpu_lowering.xla_flops`` (3 channels to 1: 3 GFLOP/s), where the backend's rates'
    class (dense) would say 150 and keep it direct.  Many channels keep the dense rate."""
    if jax.default_backend() != "cpu":
        pytest.skip(f"JAX's default platform is {jax.default_backend()!r}: XLA:CPU's rate is for the CPU")
    from polyconv.backends.fft import whole
    from polyconv.backends.jax import cpu_lowering

    x, w = _rand((4, 3, 128, 128), 11), _rand((1, 3, 9, 9), 12)
    kw = {"window_strides": (1, 1), "padding": "SAME"}
    spec = _spec(x.shape, w.shape, "float32", kw)
    assert cpu_lowering.lowering(spec, "cpu") is None and cpu_lowering.xla_flops(spec, "cpu", 150e9) == 3e9
    assert not whole.decision(spec, "float32", "auto", "jax").use  # the rates' class alone
    e = polyconv.explain("conv_general_dilated", jnp.asarray(x), jnp.asarray(w), **kw)
    assert e.strategy == "fft" and "its direct path at 3 GFLOP/s" in e.why, e.why
    out = jax.jit(lambda a, b: polyconv.conv_general_dilated(a, b, **kw))(jnp.asarray(x), jnp.asarray(w))
    assert tolerances.check_close(_n(out), x, w, spec) is None
    dense = _spec((4, 32, 32, 32), (32, 32, 9, 9), "float32", kw)
    assert cpu_lowering.xla_flops(dense, "cpu", 150e9) == 150e9 and cpu_lowering.xla_flops(dense, "gpu", 150e9) is None


def test_the_mode_is_read_when_traced() -> None:
    x, w, kw = _large()
    for mode, has_fft in (("never", False), ("auto", True), ("always", True)):
        with polyconv.use_fft(mode):
            text = jax.jit(lambda a, b: polyconv.conv_general_dilated(a, b, **kw)).lower(
                jnp.asarray(x), jnp.asarray(w)).as_text()
        assert ("stablehlo.fft" in text) == has_fft, mode


def _wide() -> np.ndarray:
    x, _, _ = _large()
    wide = x.copy()
    wide[:, :, :24] *= 1e10  # a region of 1e10 beside one of 1e-6
    wide[:, :, 24:] *= 1e-6
    return wide


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_the_error_rule_sends_wide_range_operands_to_the_direct_path(jit: bool) -> None:
    _, w, kw = _large()
    x = _wide()
    spec = _spec(x.shape, w.shape, "float32", kw)

    def conv(a: Any, b: Any) -> Any:
        return polyconv.conv_general_dilated(a, b, **kw)

    def always(a: Any, b: Any) -> Any:  # another function: JAX reuses the trace of the same one
        return polyconv.conv_general_dilated(a, b, **kw)

    f = jax.jit(conv) if jit else conv
    assert tolerances.check_close(_n(f(jnp.asarray(x), jnp.asarray(w))), x, w, spec) is None
    with polyconv.use_fft("always"):  # the transform alone misses the tolerance here: the rule matters
        g = jax.jit(always) if jit else always
        assert tolerances.check_close(_n(g(jnp.asarray(x), jnp.asarray(w))), x, w, spec) is not None


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_outputs_without_a_nonzero_product_are_exact_zeros(jit: bool) -> None:
    x, w, kw = _large()
    x = x.copy()
    x[:, :, :, :20] = 0.0  # a band of zeros: windows over its edge read few nonzero elements
    x[0, 1] = 0.0  # one whole channel of zeros: its outputs are all exact zeros
    w = w.copy()
    w[2] = 0.0  # one whole zero kernel

    def conv(a: Any, b: Any) -> Any:
        return polyconv.conv_general_dilated(a, b, **kw)

    f = jax.jit(conv) if jit else conv
    assert polyconv.explain("conv_general_dilated", jnp.asarray(x), jnp.asarray(w), **kw).strategy == "fft"
    out = _n(f(jnp.asarray(x), jnp.asarray(w)))
    assert np.all(out[0, 1] == 0.0) and np.all(out[0, 2] == 0.0)
    assert tolerances.check_close(out, x, w, _spec(x.shape, w.shape, "float32", kw)) is None


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_non_finite_operands_take_the_direct_path(jit: bool) -> None:
    x, w, kw = _large()
    x = x.copy()
    x[0, 3, 10, 10] = np.inf
    x[0, 5, 30, 7] = np.nan

    def conv(a: Any, b: Any) -> Any:
        return polyconv.conv_general_dilated(a, b, **kw)

    for mode in ("auto", "always"):
        with polyconv.use_fft(mode):  # read when traced: a fresh jit per mode
            out = _n((jax.jit(conv) if jit else conv)(jnp.asarray(x), jnp.asarray(w)))
        # the non-finite values stay in their channels' windows; the other channels are finite
        assert np.isfinite(out[0, [0, 1, 2, 4, 6, 7]]).all(), mode
        assert tolerances.check_close(out, x, w, _spec(x.shape, w.shape, "float32", kw)) is None, mode


def test_gradients_equal_the_reference_vjp(monkeypatch: pytest.MonkeyPatch) -> None:
    from polyconv.backends.jax import fft_lowering

    traced: list[tuple[int, ...]] = []
    by_fft = fft_lowering._by_fft

    def spy(spec: Any, *args: Any, **kwargs: Any) -> Any:
        traced.append(spec.rhs_shape)
        return by_fft(spec, *args, **kwargs)

    monkeypatch.setattr(fft_lowering, "_by_fft", spy)
    x, w, kw = _large()
    g = _rand((1, 8, 48, 48), 5)

    def loss(a: Any, b: Any) -> Any:
        return jnp.sum(polyconv.conv_general_dilated(a, b, **kw) * jnp.asarray(g))

    dx, dw = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(x), jnp.asarray(w))
    spec = _spec(x.shape, w.shape, "float32", kw)
    assert tolerances.check_vjp_close(_n(dx), _n(dw), x, w, g, spec) is None
    # the forward convolution and both backward ones (the kernel's cotangent has the output as its
    # window) are traced by FFT, each in the rule's two FFT branches
    assert len(traced) == 6 and set(traced) == {(8, 1, 31, 31), (1, 8, 48, 48), (1, 8, 31, 31)}, traced


def test_second_order_and_vmap() -> None:
    x, w, kw = _large()
    xj, wj = jnp.asarray(x), jnp.asarray(w)

    def loss(a: Any, b: Any) -> Any:
        return jnp.sum(jnp.sin(polyconv.conv_general_dilated(a, b, **kw)))

    def hvp(a: Any, b: Any) -> Any:  # d/dw of <grad_x loss, v>
        return jax.grad(lambda bb: jnp.vdot(jax.grad(loss)(a, bb), jnp.ones_like(a)))(b)

    mine = jax.jit(hvp)(xj, wj)
    with polyconv.use_fft("never"):
        direct = jax.jit(hvp)(xj, wj)
    np.testing.assert_allclose(_n(mine), _n(direct), rtol=2e-3, atol=2e-3 * float(jnp.max(jnp.abs(direct))))
    batch = jnp.stack([xj, 2 * xj])
    out = jax.vmap(lambda a: polyconv.conv_general_dilated(a, wj, **kw))(batch)
    spec = _spec(x.shape, w.shape, "float32", kw)
    assert tolerances.check_close(_n(out[1]), 2 * x, w, spec) is None


def test_x64_on_computes_the_same() -> None:
    x, w, kw = _large()
    before = _n(polyconv.conv_general_dilated(jnp.asarray(x), jnp.asarray(w), **kw))
    jax.config.update("jax_enable_x64", True)
    try:
        after = _n(polyconv.conv_general_dilated(jnp.asarray(x), jnp.asarray(w), **kw))
    finally:
        jax.config.update("jax_enable_x64", False)
    assert after.dtype == np.float32
    np.testing.assert_array_equal(before, after)


def test_a_spec_that_stays_direct_is_decided_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision is cached per spec and mode, a 'no' included: a repeated small call
    does not plan an FFT again (it cost about 100 us per eager call)."""
    from polyconv.backends.fft import whole

    decided: list[str] = []
    decision = whole.decision

    def spy(spec: Any, compute: str, mode: str, *args: Any) -> Any:
        decided.append(mode)
        return decision(spec, compute, mode, *args)

    monkeypatch.setattr(whole, "decision", spy)
    x, w = jnp.asarray(_rand((1, 1, 9), 7)), jnp.asarray(_rand((1, 1, 3), 8))
    polyconv.conv_general_dilated(x, w, (1,), "VALID")
    first = len(decided)
    for _ in range(5):
        polyconv.conv_general_dilated(x, w, (1,), "VALID")
    assert len(decided) == first
