"""The MLX backend: values against the reference, autodiff, ``mx.compile``, errors, layers, FFT.

Values on every grid are checked by the conformance suite (``pytest --pyargs
polyconv.conformance --polyconv-backend=mlx``); this file checks what is
particular to MLX: that importing the backend imports nothing, every
declared dtype (float64 and integers included, which MLX's own convolution
refuses or rounds), the paths of :mod:`polyconv.backends.mlx.lower`,
``mx.grad``/``mx.vjp``/``mx.value_and_grad`` against the reference VJP,
``mx.compile``, that errors are NumPy's, the layers on MLX arrays, and the
FFT path (``use_fft('always')``) against the direct one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from polyconv.conformance import cases, reference, tolerances

import polyconv
from polyconv.errors import PolyconvError, UnsupportedDtypeError
from polyconv.spec import conv_spec, conv_transpose_spec, local_spec, patches_spec

mx = pytest.importorskip("mlx.core", reason="MLX is not installed: pip install 'polyconv[mlx]' -c constraints.txt")
from polyconv.backends.mlx import backend as mlx_backend  # noqa: E402
from polyconv.backends.mlx.conformance_harness import harness  # noqa: E402
from polyconv.backends.mlx.lower import conv_plan  # noqa: E402


def _m(a: np.ndarray) -> Any:
    return mlx_backend.from_numpy(np.asarray(a))


def _n(x: Any) -> np.ndarray:
    return np.asarray(mlx_backend.to_numpy(x))


def _rand(shape: tuple[int, ...], seed: int = 0, dtype: str = "float32") -> np.ndarray:
    return cases.make_operand(np.random.default_rng(seed), shape, dtype)


def _close(out: Any, x: np.ndarray, w: np.ndarray, kw: dict[str, Any]) -> None:
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
    assert isinstance(out, mx.array)
    problem = tolerances.check_close(_n(out), x, w, spec)
    assert problem is None, problem


# -- the backend object ---------------------------------------------------------------------

def test_importing_the_backend_does_not_import_mlx() -> None:
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import polyconv
        from polyconv.backends.mlx import backend
        assert backend.unavailable_reason() is None
        assert not backend.owns(np.ones(2)) and backend.version()
        polyconv.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2)), (1,), 'VALID')
        info = [b for b in polyconv.backend_info() if b['name'] == 'mlx'][0]
        assert info['status'] == 'ok', info
        assert not any(m == 'mlx' or m.startswith('mlx.') for m in sys.modules), 'the mlx backend imported mlx'
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_registered_through_the_entry_points() -> None:
    assert "mlx" in polyconv.list_backends()
    info = [b for b in polyconv.backend_info() if b["name"] == "mlx"][0]
    assert info["status"] == "ok" and info["target"] == "polyconv.backends.mlx:backend"
    assert "autodiff" in info["capabilities"]["features"] and "jit" in info["capabilities"]["features"]
    out = subprocess.run([sys.executable, "-m", "polyconv", "info"], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    assert any(line.startswith("mlx ") and " ok " in line for line in out.splitlines()), out


def test_mlx_arrays_dispatch_to_mlx() -> None:
    x, w = _rand((1, 2, 6)), _rand((3, 2, 3), 1)
    e = polyconv.explain("conv_general_dilated", _m(x), _m(w), (1,), "SAME")
    assert (e.backend, e.path, e.strategy) == ("mlx", "runner", "native")
    _close(polyconv.conv_general_dilated(_m(x), _m(w), (1,), "SAME"), x, w, {"window_strides": (1,),
                                                                           "padding": "SAME"})


def test_python_lists_join_the_mlx_array() -> None:
    x = _rand((1, 1, 5))
    out = polyconv.conv_general_dilated(_m(x), [[[1.0, 2.0]]], (1,), "VALID")
    assert isinstance(out, mx.array)
    np.testing.assert_allclose(_n(out), reference.conv_general_dilated(x, np.array([[[1.0, 2.0]]], np.float32),
                                                                        (1,), "VALID"), rtol=1e-6)


_DTYPES = sorted(mlx_backend.manifest.dtypes)


@pytest.mark.parametrize("dtype", _DTYPES)
def test_every_declared_dtype_round_trips_and_computes(dtype: str) -> None:
    x, w = _rand((2, 3, 7, 6), 1, dtype), _rand((4, 3, 3, 2), 2, dtype)
    np.testing.assert_array_equal(_n(_m(x)), x)  # float64 stays float64, bfloat16 exactly
    kw = {"window_strides": (2, 1), "padding": [(1, -1), (2, 0)], "lhs_dilation": (1, 2), "rhs_dilation": (2, 1)}
    out = polyconv.conv_general_dilated(_m(x), _m(w), **kw)
    assert out.dtype == mlx_backend.from_numpy(x).dtype
    _close(out, x, w, kw)


def test_complex128_is_refused_as_the_manifest_says() -> None:
    with pytest.raises(UnsupportedDtypeError):
        mlx_backend.from_numpy(np.ones(2, np.complex128))
    x = np.ones((1, 1, 4), np.complex64)
    with pytest.raises(UnsupportedDtypeError, match="preferred_element_type"):
        polyconv.conv_general_dilated(_m(x), _m(x[..., :2]), (1,), "VALID", preferred_element_type=np.complex128)


def test_devices() -> None:
    x = _m(np.ones(3, np.float32))
    assert mlx_backend.device(x) == mx.default_device().type.name
    assert isinstance(mlx_backend.from_numpy(np.ones(2), "cpu"), mx.array)
    with pytest.raises(PolyconvError, match="MLX device"):
        mlx_backend.from_numpy(np.ones(2), "tpu:3")


# -- values on each path, against the reference ------------------------------------------------

_GEOMETRIES = {
    "nchw-same": ((2, 3, 9, 8), (4, 3, 3, 2), {"window_strides": (1, 1), "padding": "SAME"}),
    "channels-last": ((2, 9, 8, 3), (4, 3, 2, 3), {"window_strides": (2, 1), "padding": "VALID",
                                                     "dimension_numbers": ("NHWC", "OHWI", "NHWC")}),
    "mixed-layouts": ((3, 2, 9, 8), (3, 2, 4, 3), {"window_strides": (1, 1), "padding": "SAME_LOWER",
                                                     "dimension_numbers": ("CNHW", "HWOI", "NWHC")}),
    "negative-padding": ((2, 3, 9, 8), (4, 3, 3, 2), {"window_strides": (2, 1), "padding": [(-2, 3), (1, -3)]}),
    "crop-past-the-edge": ((1, 2, 5), (2, 2, 1), {"window_strides": (1,), "padding": [(-6, 3)]}),
    "lhs-dilation-crop": ((1, 2, 7), (3, 2, 3), {"window_strides": (2,), "padding": [(-3, 1)],
                                                  "lhs_dilation": (3,), "rhs_dilation": (2,)}),
    "feature-groups": ((2, 6, 7, 7), (6, 2, 3, 3), {"window_strides": (1, 1), "padding": "SAME",
                                                     "feature_group_count": 3}),
    "batch-groups": ((4, 3, 7, 7), (6, 3, 3, 3), {"window_strides": (1, 1), "padding": "SAME",
                                                   "batch_group_count": 2}),
    "grouped-3d": ((1, 4, 5, 4, 6), (4, 2, 2, 3, 2), {"window_strides": (1, 1, 2), "padding": "SAME",
                                                       "feature_group_count": 2}),
    "no-spatial-dims": ((5, 6), (4, 3), {"window_strides": (), "padding": (), "feature_group_count": 2}),
    "four-spatial-dims": ((1, 2, 4, 3, 3, 4), (3, 2, 2, 2, 1, 3), {
        "window_strides": (1, 2, 1, 1), "padding": [(1, 0), (0, 1), (2, -1), (1, 1)], "lhs_dilation": (1, 1, 2, 1)}),
    "absurd-padding": ((1, 2, 6), (3, 2, 3), {"window_strides": (2**20,), "padding": [(2**20, 2**20)]}),
    "window-past-the-input": ((1, 2, 3), (2, 2, 5), {"window_strides": (1,), "padding": [(1, 1)]}),
    "padding-only-windows": ((1, 1, 4), (1, 1, 2), {"window_strides": (1,), "padding": [(5, -4)]}),
}

_PATHS = {"no-spatial-dims": "taps", "four-spatial-dims": "taps", "absurd-padding": "taps",
          "padding-only-windows": "zeros", "crop-past-the-edge": "zeros"}


@pytest.mark.parametrize("name", sorted(_GEOMETRIES))
@pytest.mark.parametrize("dtype", ["float32", "float64", "int16", "complex64"])
def test_geometries_against_the_reference(name: str, dtype: str) -> None:
    xs, ws, kw = _GEOMETRIES[name]
    x, w = _rand(xs, 3, dtype), _rand(ws, 4, dtype)
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
    path = conv_plan(spec).path
    assert path == _PATHS.get(name, "native" if dtype in ("float32", "complex64") else "taps")
    _close(polyconv.conv_general_dilated(_m(x), _m(w), **kw), x, w, kw)


@pytest.mark.parametrize(("dtype", "preferred"), [
    ("int8", "int32"), ("uint8", "uint16"), ("int32", None), ("int64", None), ("uint32", None), ("uint64", None),
    ("bool", None), ("bool", "int8"), ("bool", "float32"), ("int16", "float32"), ("float16", "float32"),
    ("bfloat16", "float32"), ("float32", "float64"),
])
def test_integer_and_mixed_dtypes_are_exact_or_within_tolerance(dtype: str, preferred: str | None) -> None:
    kw = {"window_strides": (1,), "padding": "SAME", "preferred_element_type": preferred}
    extremes = ("max", "min", "alternating") if dtype in ("bool", "int8", "uint8", "int16", "int32", "int64",
                                                            "uint32", "uint64") else ()
    for values in ("random", *extremes):
        x, w = (cases.make_operand(np.random.default_rng(s), shape, dtype, values)
                for s, shape in ((5, (2, 4, 9)), (6, (3, 4, 3))))
        _close(polyconv.conv_general_dilated(_m(x), _m(w), **kw), x, w, kw)


def test_bool_counts_past_the_8_and_16_bit_wrap_points() -> None:
    for products in (256, 2**16 + 1):
        x, w = np.ones((1, products, 1), bool), np.ones((1, products, 1), bool)
        for preferred, expected in ((None, True), ("int32", products)):
            out = polyconv.conv_general_dilated(_m(x), _m(w), (1,), "VALID", preferred_element_type=preferred)
            assert _n(out).item() == expected


def test_zero_size_and_channel_free_operands_give_zeros() -> None:
    # mlx.core.conv_general stops the process (SIGFPE) on zero channels: never handed one
    for xs, ws in (((2, 0, 5), (3, 0, 2)), ((0, 2, 5), (3, 2, 2)), ((2, 2, 5), (0, 2, 2)), ((2, 2, 0), (3, 2, 1))):
        x, w = np.ones(xs, np.float32), np.ones(ws, np.float32)
        out = polyconv.conv_general_dilated(_m(x), _m(w), (1,), [(1, 1)])
        np.testing.assert_array_equal(_n(out), reference.conv_general_dilated(x, w, (1,), [(1, 1)]))


@pytest.mark.parametrize("transpose_kernel", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_conv_transpose(transpose_kernel: bool, dtype: str) -> None:
    x, w = _rand((2, 3, 5, 6), 7, dtype), _rand((4, 3, 3, 2) if not transpose_kernel else (3, 4, 3, 2), 8, dtype)
    kw = {"strides": (2, 3), "padding": "SAME", "rhs_dilation": (1, 2), "dimension_numbers": ("NCHW", "OIHW", "NCHW"),
          "transpose_kernel": transpose_kernel}
    out = polyconv.conv_transpose(_m(x), _m(w), **kw)
    tspec = conv_transpose_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
    problem = tolerances.check_transpose_close(_n(out), x, w, tspec)
    assert problem is None, problem


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8", "bool", "complex64"])
def test_patches_and_local(dtype: str) -> None:
    x = _rand((2, 3, 6, 5), 9, dtype)
    kw = {"window_strides": (1, 2), "padding": [(1, 2), (-1, 1)], "lhs_dilation": (2, 1), "rhs_dilation": (1, 2)}
    out = polyconv.conv_general_dilated_patches(_m(x), (2, 3), **kw)
    pspec = patches_spec(x.shape, x.dtype, (2, 3), **kw)
    assert tolerances.check_patches_close(_n(out), x, pspec) is None
    w = _rand((4, 18, *pspec.out_shape[2:]), 10, dtype)
    lkw = {**kw, "filter_shape": (2, 3)}
    out = polyconv.conv_general_dilated_local(_m(x), _m(w), **lkw)
    lspec = local_spec(x.shape, w.shape, x.dtype, w.dtype, **lkw)
    problem = tolerances.check_local_close(_n(out), x, w, lspec)
    assert problem is None, problem


def test_results_never_share_memory_with_operands() -> None:
    x = _m(_rand((2, 4)))
    out = polyconv.conv_general_dilated_patches(x, (), (), ())  # one tap, no spatial dims: the input itself
    mx.eval(out)
    assert not harness.shares_memory(out, x)
    np.testing.assert_array_equal(_n(out), _n(x))


def test_vjp_op_against_the_reference() -> None:
    for dtype in ("float32", "float64", "int8"):
        x, w = _rand((4, 6, 7, 5), 11, dtype), _rand((6, 3, 3, 2), 12, dtype)
        kw = {"window_strides": (2, 1), "padding": [(1, 2), (0, 1)], "lhs_dilation": (1, 2),
              "feature_group_count": 2}
        spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
        g = _rand(spec.out_shape, 13, dtype)
        dx, dw = polyconv.conv_general_dilated_vjp(_m(x), _m(w), _m(g), **kw)
        problem = tolerances.check_vjp_close(_n(dx), _n(dw), x, w, g, spec)
        assert problem is None, problem


# -- errors --------------------------------------------------------------------------------------

_X, _W = np.ones((2, 4, 5), np.float32), np.ones((6, 4, 3), np.float32)
_BAD_CALLS = {
    "rank": lambda a: polyconv.conv_general_dilated(a(_X), a(_W[..., 0]), (1,), "VALID"),
    "features": lambda a: polyconv.conv_general_dilated(a(_X), a(_W[:, :3]), (1,), "VALID"),
    "dtypes": lambda a: polyconv.conv_general_dilated(a(_X), a(_W.astype(np.float16)), (1,), "VALID"),
    "padding": lambda a: polyconv.conv_general_dilated(a(_X), a(_W), (1,), "FULL"),
    "strides": lambda a: polyconv.conv_general_dilated(a(_X), a(_W), (0,), "VALID"),
    "groups": lambda a: polyconv.conv_general_dilated(a(_X), a(_W), (1,), "VALID", feature_group_count=3),
    "preferred narrower": lambda a: polyconv.conv_general_dilated(
        a(_X), a(_W), (1,), "VALID", preferred_element_type="float16"),
    "transpose channels": lambda a: polyconv.conv_transpose(a(_X), a(_W[:, :3]), (2,), "SAME",
                                                             dimension_numbers=("NCH", "OIH", "NCH")),
    "patches filter": lambda a: polyconv.conv_general_dilated_patches(a(_X), (0,), (1,), "VALID"),
    "local kernel shape": lambda a: polyconv.conv_general_dilated_local(a(_X), a(_W), (1,), "VALID", (3,)),
    "vjp cotangent": lambda a: polyconv.conv_general_dilated_vjp(a(_X), a(_W), a(np.ones((2, 6, 4), np.float32)),
                                                                 (1,), "VALID"),
    "crops everything": lambda a: polyconv.conv_general_dilated(a(_X), a(_W), (1,), [(-4, -4)]),
}


@pytest.mark.parametrize("name", sorted(_BAD_CALLS))
def test_errors_are_polyconvs_and_equal_to_numpys(name: str) -> None:
    call = _BAD_CALLS[name]
    with pytest.raises(PolyconvError) as on_numpy:
        call(np.asarray)
    with pytest.raises(PolyconvError) as on_mlx:
        call(_m)
    assert type(on_mlx.value) is type(on_numpy.value)
    assert str(on_mlx.value) == str(on_numpy.value)


def test_errors_are_raised_while_compiling_too() -> None:
    with pytest.raises(PolyconvError) as traced:
        mx.compile(lambda a, b: polyconv.conv_general_dilated(a, b, (1,), "FULL"))(_m(_X), _m(_W))
    with pytest.raises(PolyconvError) as eager:
        polyconv.conv_general_dilated(_X, _W, (1,), "FULL")
    assert str(traced.value) == str(eager.value)


# -- autodiff and compilation ----------------------------------------------------------------------

_GRADS = {name: _GEOMETRIES[name] for name in (
    "nchw-same", "mixed-layouts", "negative-padding", "lhs-dilation-crop", "feature-groups", "batch-groups",
    "grouped-3d", "no-spatial-dims", "four-spatial-dims", "absurd-padding",
)}


@pytest.mark.parametrize("name", sorted(_GRADS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_grad_vjp_and_value_and_grad_equal_the_reference_vjp(name: str, dtype: str) -> None:
    xs, ws, kw = _GRADS[name]
    x, w = _rand(xs, 14, dtype), _rand(ws, 15, dtype)
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
    g = _rand(spec.out_shape, 16, dtype)

    def f(a: Any, b: Any) -> Any:
        return polyconv.conv_general_dilated(a, b, **kw)

    def loss(a: Any, b: Any) -> Any:
        return mx.sum(f(a, b) * _m(g))

    out, (dx, dw) = mx.vjp(f, [_m(x), _m(w)], [_m(g)])
    _close(out[0], x, w, kw)
    assert tolerances.check_vjp_close(_n(dx), _n(dw), x, w, g, spec) is None
    gx, gw = mx.grad(loss, argnums=(0, 1))(_m(x), _m(w))
    value, (vx, vw) = mx.value_and_grad(loss, argnums=(0, 1))(_m(x), _m(w))
    for a, b in ((gx, dx), (gw, dw), (vx, dx), (vw, dw)):
        np.testing.assert_array_equal(_n(a), _n(b))
    np.testing.assert_array_equal(_n(value), _n(loss(_m(x), _m(w))))


@pytest.mark.parametrize("op", ["conv_transpose", "patches", "local"])
def test_grad_through_the_other_ops(op: str) -> None:
    x = _rand((2, 3, 6, 5), 17, "float64")
    if op == "conv_transpose":
        w = _rand((3, 4, 3, 2), 18, "float64")

        def f(a: Any, b: Any) -> Any:
            return polyconv.conv_transpose(a, b, (2, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                           transpose_kernel=True)
    elif op == "patches":
        w = _rand((1,), 18, "float64")

        def f(a: Any, b: Any) -> Any:
            return polyconv.conv_general_dilated_patches(a, (2, 3), (1, 1), "SAME") * b
    else:
        w = _rand((4, 18, 6, 5), 18, "float64")

        def f(a: Any, b: Any) -> Any:
            return polyconv.conv_general_dilated_local(a, b, (1, 1), "SAME", (2, 3))

    out = f(_m(x), _m(w))
    g = _rand(tuple(out.shape), 19, "float64")
    _, grads = mx.vjp(f, [_m(x), _m(w)], [_m(g)])
    # against central differences of the linear map (exact for a bilinear function, up to rounding)
    for i, (primal, grad) in enumerate(zip((x, w), grads)):
        direction = _rand(primal.shape, 20 + i, "float64")
        args_plus = [x, w]
        args_plus[i] = primal + direction
        args_minus = [x, w]
        args_minus[i] = primal - direction
        diff = (np.sum(_n(f(*map(_m, args_plus))) * g) - np.sum(_n(f(*map(_m, args_minus))) * g)) / 2
        np.testing.assert_allclose(np.sum(_n(grad) * direction), diff, rtol=1e-9)


def test_second_order_gradients() -> None:
    x, w = _rand((1, 2, 7), 21, "float64"), _rand((3, 2, 3), 22, "float64")

    def loss(a: Any, b: Any) -> Any:
        return mx.sum(polyconv.conv_general_dilated(a, b, (1,), "SAME") ** 2)

    hvp = mx.grad(lambda b: mx.sum(mx.grad(loss)(_m(x), b) * _m(x)))(_m(w))
    # d/dw <d loss/dx, x> = d/dw 2 <y, y> = 4 * dy/dw^T y, with y = conv(x, w)
    y = polyconv.conv_general_dilated(_m(x), _m(w), (1,), "SAME")
    _, dw = polyconv.conv_general_dilated_vjp(_m(x), _m(w), y, (1,), "SAME")
    np.testing.assert_allclose(_n(hvp), 4 * _n(dw), rtol=1e-10)


def test_integer_operands_are_not_differentiated() -> None:
    x, w = _m(np.ones((1, 1, 4), np.int32)), _m(np.ones((1, 1, 2), np.int32))
    out, grads = mx.vjp(lambda a, b: polyconv.conv_general_dilated(a, b, (1,), "VALID"), [x, w],
                        [_m(np.ones((1, 1, 3), np.int32))])
    np.testing.assert_array_equal(_n(out[0]), [[[2, 2, 2]]])


@pytest.mark.parametrize("name", ["nchw-same", "negative-padding", "batch-groups", "grouped-3d", "no-spatial-dims",
                                  "four-spatial-dims"])
def test_compile_equals_eager_and_the_reference(name: str) -> None:
    xs, ws, kw = _GEOMETRIES[name]
    x, w = _rand(xs, 23), _rand(ws, 24)
    compiled = mx.compile(lambda a, b: polyconv.conv_general_dilated(a, b, **kw))
    out = compiled(_m(x), _m(w))
    _close(out, x, w, kw)
    np.testing.assert_array_equal(_n(out), _n(polyconv.conv_general_dilated(_m(x), _m(w), **kw)))
    np.testing.assert_array_equal(_n(compiled(_m(x), _m(w))), _n(out))  # the traced graph, again


def test_compile_of_grad() -> None:
    x, w = _rand((2, 3, 8, 8), 25), _rand((4, 3, 3, 3), 26)
    kw = {"window_strides": (1, 1), "padding": "SAME"}

    def loss(a: Any, b: Any) -> Any:
        return mx.sum(polyconv.conv_general_dilated(a, b, **kw) ** 2)

    eager = mx.grad(loss, argnums=(0, 1))(_m(x), _m(w))
    compiled = mx.compile(mx.grad(loss, argnums=(0, 1)))(_m(x), _m(w))
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(_n(a), _n(b), rtol=1e-5, atol=1e-5)


def test_the_harness() -> None:
    x, w = _m(_rand((1, 2, 6))), _m(_rand((3, 2, 3), 1))

    def f(a: Any, b: Any) -> Any:
        return polyconv.conv_general_dilated(a, b, (1,), "SAME")

    np.testing.assert_array_equal(_n(harness.jit(f)(x, w)), _n(f(x, w)))
    dx, dw = harness.vjp(f, (x, w), mx.ones((1, 3, 6)))
    assert dx.shape == (1, 2, 6) and dw.shape == (3, 2, 3)


# -- layers ---------------------------------------------------------------------------------------------

_LAYERS = {
    "conv-same": lambda L: L.Conv(4, (3, 3)),
    "conv-grouped-strided": lambda L: L.Conv(6, (3, 3), feature_group_count=3, strides=2, padding="VALID"),
    "conv-masked-half": lambda L: L.Conv(4, (3, 3), mask=np.ones((3, 3, 3, 4), np.float32), dtype=np.float16),
    "conv-float64-params": lambda L: L.Conv(4, (2, 2), param_dtype=np.float64),
    "local": lambda L: L.ConvLocal(4, (3, 3)),
    "transpose": lambda L: L.ConvTranspose(4, (3, 3), strides=(2, 2)),
    "batch-axes": lambda L: L.Conv(4, (3,)),
}


@pytest.mark.parametrize("name", sorted(_LAYERS))
def test_layers_on_mlx_arrays_equal_numpys(name: str) -> None:
    from polyconv import layers

    layer = _LAYERS[name](layers)
    x = _rand((2, 9, 8, 3), 27)
    params = layer.init(0, _m(x))
    assert all(isinstance(p, mx.array) for p in params.values())
    out = layer.apply(params, _m(x))
    assert isinstance(out, mx.array)
    expected = layer.apply({k: _n(v) for k, v in params.items()}, x)
    assert _n(out).dtype == expected.dtype
    np.testing.assert_allclose(_n(out).astype(np.float64), expected.astype(np.float64), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("padding", ["CIRCULAR", "REFLECT"])
def test_layers_periodic_padding_on_mlx_arrays(padding: str) -> None:
    from polyconv import layers

    layer = layers.Conv(4, (3, 3), padding=padding)
    x = _rand((2, 9, 8, 3), 28)
    params = layer.init(0, _m(x))
    out = layer.apply(params, _m(x))
    # float32 sums of 27 taps in two summation orders (MLX, NumPy): roundoff, not the padding, differs
    np.testing.assert_allclose(_n(out), layer.apply({k: _n(v) for k, v in params.items()}, x), rtol=1e-4, atol=1e-5)


# -- FFT ------------------------------------------------------------------------------------------------

_FFT = {
    "same-2d": ((2, 3, 33, 31), (4, 3, 9, 7), {"window_strides": (1, 1), "padding": "SAME"}),
    "strided-dilated-groups": ((2, 3, 40, 30), (6, 1, 11, 9), {"window_strides": (2, 1), "padding": [(5, -2), (3, 4)],
                                                                "rhs_dilation": (2, 1), "feature_group_count": 3}),
    "lhs-dilated-batch-groups": ((4, 4, 50), (6, 4, 13), {"window_strides": (1,), "padding": [(6, 6)],
                                                           "lhs_dilation": (2,), "batch_group_count": 2}),
    "channels-last": ((2, 30, 30, 2), (3, 9, 9, 2), {"window_strides": (1, 1), "padding": "SAME",
                                                      "dimension_numbers": ("NHWC", "OHWI", "NHWC")}),
}


@pytest.mark.parametrize("name", sorted(_FFT))
@pytest.mark.parametrize("dtype", ["float32", "complex64", "float16"])
def test_fft_path_equals_the_direct_path_within_tolerance(name: str, dtype: str) -> None:
    xs, ws, kw = _FFT[name]
    x, w = _rand(xs, 29, dtype), _rand(ws, 30, dtype)
    with polyconv.use_fft("always"):
        assert polyconv.explain("conv_general_dilated", _m(x), _m(w), **kw).strategy == "fft"
        out = polyconv.conv_general_dilated(_m(x), _m(w), **kw)
    direct = polyconv.conv_general_dilated(_m(x), _m(w), **kw)
    _close(out, x, w, kw)
    _close(direct, x, w, kw)
    scale = np.abs(_n(direct).astype(np.complex128)).max()
    np.testing.assert_allclose(_n(out).astype(np.complex128), _n(direct).astype(np.complex128),
                               atol=1e-4 * scale if dtype != "float16" else 4e-3 * scale)


def test_auto_mode_keeps_the_direct_path_and_says_why() -> None:
    x, w = _rand((1, 1, 256, 256), 31), _rand((1, 1, 31, 31), 32)
    e = polyconv.explain("conv_general_dilated", _m(x), _m(w), (1, 1), "SAME")
    assert e.strategy == "native" and "single precision" in e.why
    assert e.fft and not e.fft[0].use and e.fft[0].fft_seconds < e.fft[0].direct_seconds


def test_fft_path_runs_direct_for_non_finite_operands_and_under_compile() -> None:
    x, w = _rand((1, 2, 30, 30), 33), _rand((3, 2, 9, 9), 34)
    x[0, 0, 3, 3] = np.inf
    kw = {"window_strides": (1, 1), "padding": "SAME"}
    with polyconv.use_fft("always"):
        _close(polyconv.conv_general_dilated(_m(x), _m(w), **kw), x, w, kw)  # inf stays local, NaN nowhere else
        x[0, 0, 3, 3] = 1.0
        compiled = mx.compile(lambda a, b: polyconv.conv_general_dilated(a, b, **kw))(_m(x), _m(w))
    direct = polyconv.conv_general_dilated(_m(x), _m(w), **kw)
    np.testing.assert_array_equal(_n(compiled), _n(direct))  # traced: the direct path


def test_fft_gradients_are_the_direct_paths() -> None:
    x, w = _rand((1, 2, 30, 30), 35), _rand((3, 2, 9, 9), 36)
    kw = {"window_strides": (1, 1), "padding": "SAME"}

    def loss(a: Any, b: Any) -> Any:
        return mx.sum(polyconv.conv_general_dilated(a, b, **kw) * mx.arange(3 * 30 * 30).reshape(1, 3, 30, 30))

    with polyconv.use_fft("always"):
        by_fft = mx.grad(loss, argnums=(0, 1))(_m(x), _m(w))
    direct = mx.grad(loss, argnums=(0, 1))(_m(x), _m(w))
    for a, b in zip(by_fft, direct):
        np.testing.assert_array_equal(_n(a), _n(b))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["large depthwise 31x31 64ch 64x64", "large 1-d 1023 taps 16ch 16384"])
def test_the_benchmarks_large_kernels_by_fft_against_the_reference(name: str) -> None:
    from polyconv.bench.shapes import SUITE

    shape = {s.name: s for s in SUITE}[name]
    x, w = _rand(shape.lhs, 37), _rand(shape.rhs, 38)
    n = shape.nspatial
    kw = {"window_strides": (shape.stride,) * n, "padding": [(shape.padding, shape.padding)] * n,
          "feature_group_count": shape.groups}
    with polyconv.use_fft("always"):
        assert polyconv.explain("conv_general_dilated", _m(x), _m(w), **kw).strategy == "fft"
        _close(polyconv.conv_general_dilated(_m(x), _m(w), **kw), x, w, kw)
