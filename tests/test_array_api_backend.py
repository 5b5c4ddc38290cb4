"""The generic array-API backend, on ``array_api_strict`` arrays.

What the conformance suite's grids do not show: dispatch sends
array-API arrays nobody owns here (and NumPy arrays still to NumPy); results
are arrays of the operands' namespace on the operands' device, on the
non-default devices of array-api-strict too; two devices are an error; dtypes
outside the standard are refused with polyconv's error; Python lists beside
an array become arrays of its namespace and device; devices without 64-bit
types still compute integers exactly; immutable arrays (JAX's) work, since
nothing is written in place.  Values are judged against the reference.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from polyconv.backends.array_api import STANDARD_DTYPES, ArrayApiBackend
from polyconv.backends.gemm import gathered as gemm_conv
from polyconv.conformance import reference, tolerances

import polyconv
from polyconv import ops
from polyconv.dispatch import resolve
from polyconv.errors import MixedArraysError, UnsupportedDtypeError
from polyconv.registry import registry
from polyconv.spec import conv_spec, dtype_kind, dtype_name

xps = pytest.importorskip("array_api_strict", reason="array-api-strict is not installed")

pytestmark = pytest.mark.usefixtures("clean_polyconv_env")


@pytest.fixture(scope="module")
def be() -> Any:
    backend = registry.load("array_api")
    assert isinstance(backend, ArrayApiBackend)
    return backend


def _operands(dtype: str = "float64", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if dtype_kind(dtype) in "iub":
        lhs = rng.integers(-100, 100, (2, 3, 9, 8)).astype(dtype)
        rhs = rng.integers(-100, 100, (4, 3, 3, 2)).astype(dtype)
    else:
        lhs = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
        rhs = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    return lhs, rhs


KW: dict[str, Any] = {"window_strides": (2, 1), "padding": [(1, 2), (0, 1)], "rhs_dilation": (1, 2)}


def _spec(lhs: np.ndarray, rhs: np.ndarray, **kw: Any) -> Any:
    return conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **kw)


# -- registration and dispatch --------------------------------------------------------------

def test_registered_as_a_fallback_that_owns_nothing(be: Any) -> None:
    assert "array_api" in polyconv.list_backends()
    assert be.name == "array_api" and be.manifest.fallback
    assert be.manifest.dtypes == STANDARD_DTYPES
    assert not ({"float16", "bfloat16"} & be.manifest.dtypes)
    assert not be.owns(xps.asarray([1.0]))
    assert be.accepts(xps.asarray([1.0]))
    assert not be.accepts([1.0]) and not be.accepts(object())

    class Duck:  # accepts() asks for __array_namespace__ alone: nothing is imported or called
        def __array_namespace__(self, api_version: str | None = None) -> Any:
            raise AssertionError("accepts() must not call it")

    assert be.accepts(Duck())


def test_dispatch_sends_strict_arrays_here_and_numpy_arrays_to_numpy(caplog: pytest.LogCaptureFixture) -> None:
    lhs, rhs = _operands()
    caplog.set_level(logging.DEBUG, logger="polyconv")
    ops.calls.clear()  # decisions are logged when made, not when reused
    assert resolve([xps.asarray(lhs), xps.asarray(rhs)]).name == "array_api"
    assert resolve([lhs, rhs]).name == "numpy"
    assert resolve([xps.asarray(lhs), rhs.tolist()]).name == "array_api"
    out = polyconv.conv_general_dilated(xps.asarray(lhs), xps.asarray(rhs), **KW)
    assert type(out) is type(xps.asarray(0.0))
    assert any("backend 'array_api' (array type)" in r.getMessage() for r in caplog.records)
    assert type(polyconv.conv_general_dilated(lhs, rhs, **KW)) is np.ndarray


def test_strict_and_numpy_arrays_in_one_call_are_an_error() -> None:
    lhs, rhs = _operands()
    with pytest.raises(MixedArraysError, match="array_api.*numpy|numpy.*array_api"):
        polyconv.conv_general_dilated(xps.asarray(lhs), rhs, **KW)


# -- values, namespace and device ---------------------------------------------------------------

@pytest.mark.parametrize("device", [None, "device1", "device2"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "int8", "uint16", "int64", "bool"])
def test_results_are_strict_arrays_on_the_operands_device(be: Any, device: str | None, dtype: str) -> None:
    lhs, rhs = _operands(dtype)
    dev = None if device is None else xps.Device(device)
    x, w = be.from_numpy(lhs, dev), be.from_numpy(rhs, dev)
    out = polyconv.conv_general_dilated(x, w, **KW)
    assert type(out) is type(x)
    assert out.device == x.device and out.dtype == x.dtype
    tolerances.assert_close(be.to_numpy(out), lhs, rhs, _spec(lhs, rhs, **KW))
    if dtype_kind(dtype) in "iub":  # exact, wrapped like the reference
        expected = reference.cast_result(reference.conv_general_dilated(lhs, rhs, **KW), dtype)
        np.testing.assert_array_equal(be.to_numpy(out), expected)


def test_every_op_stays_on_the_device(be: Any) -> None:
    dev = xps.Device("device1")
    lhs, rhs = _operands("float64", seed=3)
    x, w = be.from_numpy(lhs, dev), be.from_numpy(rhs, dev)

    tk = np.random.default_rng(4).standard_normal((3, 4, 3, 2))  # O, I swapped by transpose_kernel
    dn = ("NCHW", "OIHW", "NCHW")
    t = polyconv.conv_transpose(x, be.from_numpy(tk, dev), (2, 1), "SAME", dimension_numbers=dn, transpose_kernel=True)
    want = reference.conv_transpose(lhs, tk, (2, 1), "SAME", dimension_numbers=dn, transpose_kernel=True)
    assert t.device == dev
    np.testing.assert_allclose(be.to_numpy(t), want, rtol=1e-12, atol=1e-12)

    p = polyconv.conv_general_dilated_patches(x, (3, 2), (1, 1), "SAME")
    assert p.device == dev
    np.testing.assert_array_equal(be.to_numpy(p), reference.conv_general_dilated_patches(lhs, (3, 2), (1, 1), "SAME"))

    kernel = np.random.default_rng(4).standard_normal((5, 3 * 3 * 2, 9, 8))
    loc = polyconv.conv_general_dilated_local(x, be.from_numpy(kernel, dev), (1, 1), "SAME", (3, 2))
    assert loc.device == dev
    np.testing.assert_allclose(
        be.to_numpy(loc), reference.conv_general_dilated_local(lhs, kernel, (1, 1), "SAME", (3, 2)),
        rtol=1e-12, atol=1e-12,
    )

    spec = _spec(lhs, rhs, **KW)
    g = np.random.default_rng(5).standard_normal(spec.out_shape)
    dx, dw = polyconv.conv_general_dilated_vjp(x, w, be.from_numpy(g, dev), **KW)
    assert dx.device == dev and dw.device == dev
    want_dx, want_dw = reference.vjp_from_spec(lhs, rhs, g, spec)
    np.testing.assert_allclose(be.to_numpy(dx), want_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(be.to_numpy(dw), want_dw, rtol=1e-12, atol=1e-12)


def test_bool_local_counts_true_products(be: Any) -> None:
    """The standard's matmul takes numeric dtypes only; bool local convolution still works."""
    rng = np.random.default_rng(6)
    lhs = rng.integers(0, 2, (2, 3, 6)).astype(bool)
    rhs = rng.integers(0, 2, (4, 3 * 2, 5)).astype(bool)
    out = polyconv.conv_general_dilated_local(be.from_numpy(lhs), be.from_numpy(rhs), (1,), "VALID", (2,))
    assert out.dtype == xps.bool
    want = reference.cast_result(reference.conv_general_dilated_local(lhs, rhs, (1,), "VALID", (2,)), "bool")
    np.testing.assert_array_equal(be.to_numpy(out), want)


def test_two_devices_are_an_error(be: Any) -> None:
    lhs, rhs = _operands()
    x = be.from_numpy(lhs, xps.Device("device1"))
    w = be.from_numpy(rhs, xps.Device("device2"))
    with pytest.raises(MixedArraysError, match="device1.*device2"):
        polyconv.conv_general_dilated(x, w, **KW)


def test_python_lists_join_the_arrays_namespace_and_device(be: Any) -> None:
    dev = xps.Device("device1")
    lhs = np.arange(12.0).reshape(1, 2, 6)
    x = be.from_numpy(lhs, dev)
    out = polyconv.conv_general_dilated(x, [[[1.0, -1.0], [0.5, 2.0]]], (1,), "VALID")
    assert type(out) is type(x) and out.device == dev
    want = reference.conv_general_dilated(lhs, np.array([[[1.0, -1.0], [0.5, 2.0]]]), (1,), "VALID")
    np.testing.assert_allclose(be.to_numpy(out), want, rtol=1e-12)
    out = polyconv.conv_general_dilated([[[0.0, 1.0, 2.0]]], be.from_numpy(np.ones((1, 1, 2)), dev), (1,), "VALID")
    assert out.device == dev
    np.testing.assert_array_equal(be.to_numpy(out), [[[1.0, 3.0]]])


# -- dtypes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtypes_outside_the_standard_are_refused(be: Any, dtype: str) -> None:
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed: bfloat16 needs it (polyconv[bfloat16])")
    lhs, rhs = (a.astype(dtype) for a in _operands("float32"))
    with pytest.raises(UnsupportedDtypeError, match=f"from_numpy: a has a dtype the array API standard.*{dtype}"):
        be.from_numpy(lhs)
    # array-api-strict has no such dtype at all; NumPy arrays (array-API arrays from NumPy 2) asked onto
    # this backend are refused before computing
    if hasattr(lhs, "__array_namespace__"):
        with pytest.raises(UnsupportedDtypeError, match=f"'array_api' backend does not support.*got {dtype}"):
            polyconv.conv_general_dilated(lhs, rhs, (1, 1), "VALID", backend="array_api")
    x, w = (be.from_numpy(a) for a in _operands("int8"))
    with pytest.raises(UnsupportedDtypeError, match="preferred_element_type is a dtype the 'array_api' backend"):
        polyconv.conv_general_dilated(x, w, (1, 1), "VALID", preferred_element_type=dtype)


@pytest.mark.parametrize("device", ["no_float64", "no_x64"])
@pytest.mark.parametrize(
    ("dtype", "preferred"),
    [("int8", None), ("int16", "int32"), ("uint8", None), ("int32", None), ("uint32", None), ("bool", None),
     ("int8", "float32"), ("float32", None), ("complex64", None)],
)
def test_devices_without_64_bit_types_still_compute_exactly(
    be: Any, device: str, dtype: str, preferred: str | None
) -> None:
    """array-api-strict's devices without float64 (or without any 64-bit type):
    integers accumulate in int64 or int32, exact modulo their width."""
    dev = xps.Device(device)
    lhs, rhs = _operands(dtype, seed=7)
    kw = {**KW, "preferred_element_type": preferred}
    out = polyconv.conv_general_dilated(be.from_numpy(lhs, dev), be.from_numpy(rhs, dev), **kw)
    assert out.device == dev
    spec = _spec(lhs, rhs, **kw)
    assert dtype_name(out.dtype) == spec.out_dtype
    got = be.to_numpy(out)
    if dtype_kind(spec.out_dtype) in "iub":
        want = reference.cast_result(reference.conv_from_spec(lhs, rhs, spec), spec.out_dtype)
        np.testing.assert_array_equal(got, want)
    else:
        tolerances.assert_close(got, lhs, rhs, spec)


def test_a_result_dtype_the_device_lacks_is_refused(be: Any) -> None:
    dev = xps.Device("no_float64")
    lhs, rhs = _operands("int8")
    x, w = be.from_numpy(lhs, dev), be.from_numpy(rhs, dev)
    with pytest.raises(UnsupportedDtypeError, match="preferred_element_type is a dtype the device .*no_float64"):
        polyconv.conv_general_dilated(x, w, **KW, preferred_element_type="float64")


def test_manifest_and_conversions(be: Any) -> None:
    info = polyconv.backend_info()
    row = next(r for r in info if r["name"] == "array_api")
    assert row["status"] == "ok" and row["capabilities"]["fallback"] is True
    a = np.arange(6, dtype=np.int16).reshape(2, 3)
    for dev, name in ((None, "CPU_DEVICE"), ("device1", "device1"), ("array_api_strict.Device('device2')", "device2")):
        x = be.from_numpy(a, dev)
        assert x.device == xps.Device(name) and be.device(x) == str(xps.Device(name))
        back = be.to_numpy(x)
        assert back.dtype == np.int16 and np.array_equal(back, a)
    with pytest.raises(ValueError, match="from_numpy: device must name an array-api-strict device"):
        be.from_numpy(a, "gpu:7")
    src = np.ones(3)
    x = be.from_numpy(src)
    src[0] = 5.0  # a copy, not a view
    assert be.to_numpy(x)[0] == 1.0


# -- one algorithm for NumPy and the array API -----------------------------------------------------

def test_numpy_and_array_api_run_the_same_algorithm(be: Any) -> None:
    """The shared gather-GEMM gives the same bits on NumPy and on array-api-strict (which wraps NumPy).

    (The NumPy backend itself uses it for integer and bool arithmetic and has
    strategies of its own for floating types: the gather-GEMM is called here directly.)"""
    from polyconv.backends import gemm

    from polyconv.spec import conv_spec

    rng = np.random.default_rng(8)
    lhs = rng.standard_normal((3, 7, 6, 4))
    rhs = rng.standard_normal((3, 2, 2, 6))
    kw = {"window_strides": (1, 2), "padding": "SAME", "dimension_numbers": ("NHWC", "HWIO", "NHWC"),
          "feature_group_count": 2, "lhs_dilation": None}
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **kw)
    a = gemm.conv_general_dilated(np, lhs, rhs, spec)
    b = polyconv.conv_general_dilated(be.from_numpy(lhs), be.from_numpy(rhs), **kw)
    np.testing.assert_array_equal(be.to_numpy(b), a)
    np.testing.assert_allclose(polyconv.conv_general_dilated(lhs, rhs, **kw), a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("workspace", [1, 300, 4000])
def test_chunked_gathers_on_strict_arrays(workspace: int) -> None:
    """Small workspaces split rows and taps into many chunks on the strict namespace too."""
    rng = np.random.default_rng(9)
    lhs, rhs = rng.standard_normal((2, 3, 11, 7)), rng.standard_normal((4, 3, 5, 3))
    kw = {"window_strides": (2, 1), "padding": [(3, -1), (2, 2)], "lhs_dilation": (1, 2), "rhs_dilation": (2, 1)}
    spec = _spec(lhs, rhs, **kw)
    out = gemm_conv.conv_general_dilated(xps, xps.asarray(lhs), xps.asarray(rhs), spec, workspace_bytes=workspace)
    tolerances.assert_close(np.asarray(out), lhs, rhs, spec)


def test_immutable_arrays_work() -> None:
    """Nothing is written in place: JAX arrays, asked onto this backend, compute correctly."""
    jnp = pytest.importorskip("jax.numpy", reason="JAX is not installed")
    lhs, rhs = _operands("float32", seed=10)
    out = polyconv.conv_general_dilated(jnp.asarray(lhs), jnp.asarray(rhs), **KW, backend="array_api")
    assert type(out) is type(jnp.asarray(lhs))
    tolerances.assert_close(np.asarray(out), lhs, rhs, _spec(lhs, rhs, **KW))
    lhs, rhs = _operands("int8", seed=11)  # without jax_enable_x64 the device has no 64-bit types
    out = polyconv.conv_general_dilated(jnp.asarray(lhs), jnp.asarray(rhs), **KW, backend="array_api")
    want = reference.cast_result(reference.conv_general_dilated(lhs, rhs, **KW), "int8")
    np.testing.assert_array_equal(np.asarray(out), want)
