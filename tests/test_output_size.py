"""An output too large to exist is refused before any backend allocates, with one
error (class and message) on every backend (polyconv/output_size.py)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

import polyconv
from polyconv import output_size
from polyconv.errors import OutputTooLargeError, PolyconvError

pytestmark = pytest.mark.usefixtures("clean_polyconv_env")

X = np.ones((1, 1, 3), np.float32)
W = np.ones((1, 1, 2), np.float32)

# the calls of the report: each valid, each with an output no machine here can hold
CALLS = {
    "padding-2**62": dict(window_strides=(1,), padding=((2**62, 2**62),)),
    "lhs-dilation-2**40": dict(window_strides=(1,), padding=((0, 0),), lhs_dilation=(2**40,)),
    "padding-past-int64": dict(window_strides=(1,), padding=((2**70, 0),)),
}


def _operands(backend: str) -> tuple[Any, Any]:
    if backend == "numpy":
        return X, W
    if backend == "torch":
        torch = pytest.importorskip("torch", reason="PyTorch is not installed")
        return torch.from_numpy(X), torch.from_numpy(W)
    if backend == "jax":
        jnp = pytest.importorskip("jax.numpy", reason="JAX is not installed")
        return jnp.asarray(X), jnp.asarray(W)
    if backend == "array_api":
        xp = pytest.importorskip("array_api_strict", reason="array-api-strict is not installed")
        return xp.asarray(X), xp.asarray(W)
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    return da.from_array(X), W


def _message(**kwargs: Any) -> str:
    with pytest.raises(OutputTooLargeError) as info:
        polyconv.conv_general_dilated(X, W, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "array_api"])
def test_one_error_on_every_backend(backend: str, call: str) -> None:
    expected = _message(**CALLS[call])
    lhs, rhs = _operands(backend)
    with pytest.raises(PolyconvError) as info:
        polyconv.conv_general_dilated(lhs, rhs, **CALLS[call])
    assert type(info.value) is OutputTooLargeError
    assert isinstance(info.value, MemoryError)
    assert str(info.value) == expected


def test_the_message_names_the_shape_and_the_bytes() -> None:
    message = _message(**CALLS["padding-2**62"])
    assert message == (
        "conv_general_dilated: the output, of shape (1, 1, 9223372036854775810) and dtype float32, would take "
        "36893488147419103240 bytes (32 EiB), more than any array can address "
        f"({sys.maxsize} bytes); nothing was allocated"
    )
    dilated = _message(**CALLS["lhs-dilation-2**40"])
    assert "of shape (1, 1, 2199023255552) and dtype float32, would take 8796093022208 bytes (8 TiB)" in dilated
    assert "more than this machine's memory (" in dilated


def test_no_backend_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is part of parsing: the runner is never made, nothing is allocated."""
    be = polyconv.backends.numpy.backend

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the backend ran")

    monkeypatch.setattr(be, "runner", boom)
    monkeypatch.setattr(be, "conv_general_dilated", boom)
    polyconv.ops.calls.clear()
    for kwargs in CALLS.values():
        with pytest.raises(OutputTooLargeError):
            polyconv.conv_general_dilated(X, W, **kwargs)
    polyconv.ops.calls.clear()


def test_every_op_with_an_output_checks_it() -> None:
    with pytest.raises(OutputTooLargeError, match="^conv_transpose: the output, of shape"):
        polyconv.conv_transpose(np.ones((1, 3, 1), np.float32), np.ones((2, 1, 1), np.float32), (2**62,), "SAME")
    with pytest.raises(OutputTooLargeError, match="^conv_general_dilated_patches: the output"):
        polyconv.conv_general_dilated_patches(X, (2,), (1,), ((2**62, 2**62),))
    # conv_general_dilated_local's kernel holds one window per output position, so its output is never
    # larger than an operand that exists; the check runs all the same (the spec's output shape)


def test_the_memory_limit_applies_to_results_computed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small 'machine': 1 MiB.  An output of 4 MiB is refused by NumPy, made lazily by dask;
    one that fits is computed as before."""
    monkeypatch.setattr(output_size, "machine_memory", lambda: 1 << 20)
    polyconv.ops.calls.clear()
    x = np.ones((1, 1, 1 << 20), np.float32)
    w = np.ones((1, 1, 1), np.float32)
    with pytest.raises(OutputTooLargeError, match=r"would take 4194304 bytes \(4 MiB\), more than this machine's "
                                                  r"memory \(1048576 bytes, 1 MiB\); nothing was allocated"):
        polyconv.conv_general_dilated(x, w, (1,), "VALID")
    small = polyconv.conv_general_dilated(x[..., :1000], w, (1,), "VALID")
    np.testing.assert_array_equal(small, x[..., :1000])
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    lazy = polyconv.conv_general_dilated(da.from_array(x, chunks=(1, 1, 1 << 16)), w, (1,), "VALID")
    assert lazy.nbytes == 4 << 20
    np.testing.assert_array_equal(lazy[..., :10].compute(), x[..., :10])
    polyconv.ops.calls.clear()


def test_dask_refuses_only_what_no_array_can_address() -> None:
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    lhs, rhs = da.from_array(X), W
    with pytest.raises(OutputTooLargeError) as info:
        polyconv.conv_general_dilated(lhs, rhs, **CALLS["padding-2**62"])
    assert str(info.value) == _message(**CALLS["padding-2**62"])
    assert polyconv.conv_general_dilated(lhs, rhs, **CALLS["lhs-dilation-2**40"]).shape == (1, 1, 2199023255552)


def test_shape_functions_allocate_nothing_and_do_not_refuse() -> None:
    assert polyconv.conv_general_shape((1, 1, 3), (1, 1, 2), (1,), ((2**62, 2**62),)) == (1, 1, 2**63 + 2)
