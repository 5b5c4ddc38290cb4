"""Which backend runs a call (docs/backends.md, "Which backend runs a call").

1. ``backend="name"``; 2. ``use_backend``; 3. ``POLYCONV_BACKEND`` (when that
backend accepts the arrays); 4. the arrays' type; 5. Python lists: NumPy.
Two frameworks or two devices in one call are a :class:`MixedArraysError`.

Most tests use the toy plugin (``pip install ./tests/plugins/polyconv_toy``),
whose ``ToyArray`` is a second "framework" with devices ``toy:0``, ``toy:1``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from typing import Any

import numpy as np
import pytest

import polyconv
from polyconv import caching, dispatch
from polyconv.dispatch import resolve
from polyconv.registry import Registry, registry

pytestmark = pytest.mark.usefixtures("clean_polyconv_env")

OP = "conv_general_dilated"


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="polyconv")
    return caplog


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "polyconv"]


X = np.arange(12.0).reshape(1, 2, 6)  # N C W
W = np.array([[[1.0, -1.0], [0.5, 2.0]]])  # O I W
EXPECTED = polyconv.conv_general_dilated(X, W, (1,), "VALID", backend="numpy")


def conv(x: Any, w: Any, **kw: Any) -> Any:
    return polyconv.conv_general_dilated(x, w, (1,), "VALID", **kw)


def which(x: Any, w: Any, **kw: Any) -> str:
    """Name of the backend a call runs on, judged by the type of its result."""
    y = conv(x, w, **kw)
    if isinstance(y, np.ndarray):
        np.testing.assert_allclose(y, EXPECTED)
        return "numpy"
    assert type(y).__name__ == "ToyArray", type(y)
    np.testing.assert_allclose(y.numpy(), EXPECTED)
    return "toy"


# -- the arrays' type ----------------------------------------------------------


def test_numpy_arrays_go_to_numpy(debug_log: pytest.LogCaptureFixture) -> None:
    assert which(X, W) == "numpy"
    assert f"{OP}: backend 'numpy' (array type)" in _messages(debug_log)
    assert resolve((X, W)).name == "numpy"


def test_lists_go_to_numpy(debug_log: pytest.LogCaptureFixture) -> None:
    y = conv(X.tolist(), W.tolist())
    assert isinstance(y, np.ndarray) and y.dtype == np.float64
    np.testing.assert_array_equal(y, EXPECTED)
    assert f"{OP}: backend 'numpy' (Python scalars and lists)" in _messages(debug_log)


def test_toy_arrays_go_to_toy(toy: Any, debug_log: pytest.LogCaptureFixture) -> None:
    y = conv(toy.ToyArray(X, "toy:1"), toy.ToyArray(W, "toy:1"))
    assert isinstance(y, toy.ToyArray)
    assert y.device == "toy:1"
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y.numpy(), EXPECTED)
    assert f"{OP}: backend 'toy' (array type)" in _messages(debug_log)


@pytest.mark.parametrize("list_side", ["lhs", "rhs"])
def test_list_with_a_toy_array_goes_to_toy(toy: Any, list_side: str) -> None:
    x = X.tolist() if list_side == "lhs" else toy.ToyArray(X)
    w = W.tolist() if list_side == "rhs" else toy.ToyArray(W)
    y = conv(x, w)
    assert isinstance(y, toy.ToyArray) and y.device == "toy:0"
    np.testing.assert_array_equal(y.numpy(), EXPECTED)


@pytest.mark.parametrize("list_side", ["lhs", "rhs"])
def test_a_list_joins_the_other_operands_device(toy: Any, list_side: str) -> None:
    x = X.tolist() if list_side == "lhs" else toy.ToyArray(X, device="toy:1")
    w = W.tolist() if list_side == "rhs" else toy.ToyArray(W, device="toy:1")
    y = conv(x, w)
    assert y.device == "toy:1"
    np.testing.assert_array_equal(y.numpy(), EXPECTED)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(window_strides=(1, 1), padding="VALID"),
        dict(window_strides=(2, 1), padding="SAME"),
        dict(window_strides=(1, 2), padding=((2, 1), (-1, 0)), rhs_dilation=(2, 1)),
        dict(window_strides=(1, 1), padding="SAME_LOWER", dimension_numbers=("NHWC", "HWIO", "NHWC")),
        dict(window_strides=(1, 1), padding="VALID", dimension_numbers=("NCHW", "OIHW", "NHWC"),
             precision="highest"),
    ],
    ids=["valid", "strided-same", "dilated-negative-pad", "nhwc", "nchw-to-nhwc"],
)
def test_toy_results_equal_numpy_results(toy: Any, dtype: str, kwargs: dict[str, Any]) -> None:
    kwargs = dict(kwargs)  # the parametrized dict is shared between dtypes
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    if kwargs.get("dimension_numbers", ("NCHW",))[0] == "NHWC":
        x, w = x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0)
    ws, pad = kwargs.pop("window_strides"), kwargs.pop("padding")
    expected = polyconv.conv_general_dilated(x, w, ws, pad, **kwargs)
    got = polyconv.conv_general_dilated(toy.ToyArray(x), toy.ToyArray(w), ws, pad, **kwargs)
    assert isinstance(expected, np.ndarray) and isinstance(got, toy.ToyArray)
    assert got.dtype == expected.dtype == np.dtype(dtype)
    assert got.shape == expected.shape
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got.numpy(), expected, rtol=tol, atol=tol)


def test_toy_manifest_is_enforced_before_it_runs(toy: Any) -> None:
    x16 = toy.ToyArray(X.astype(np.float16))
    w16 = toy.ToyArray(W.astype(np.float16))
    with pytest.raises(polyconv.UnsupportedDtypeError, match=r"'toy' backend does not support.*float16"):
        conv(x16, w16)
    with pytest.raises(polyconv.UnsupportedFeatureError, match="the 'toy' backend does not support lhs_dilation"):
        polyconv.conv_general_dilated(toy.ToyArray(X), toy.ToyArray(W), (1,), ((0, 0),), lhs_dilation=(2,))
    # The same call is fine on numpy, which declares the feature.
    assert polyconv.conv_general_dilated(X, W, (1,), ((0, 0),), lhs_dilation=(2,)).shape == (1, 1, 10)


# -- two frameworks, two devices, nobody's arrays ------------------------------


@pytest.mark.parametrize("toy_side", ["lhs", "rhs"])
def test_toy_and_numpy_arrays_are_mixed(toy: Any, toy_side: str) -> None:
    x = toy.ToyArray(X) if toy_side == "lhs" else X
    w = toy.ToyArray(W) if toy_side == "rhs" else W
    with pytest.raises(polyconv.MixedArraysError) as ei:
        conv(x, w)
    assert isinstance(ei.value, TypeError)
    lhs_desc, rhs_desc = ("polyconv_toy.ToyArray (backend 'toy')", "numpy.ndarray (backend 'numpy')")
    if toy_side == "rhs":
        lhs_desc, rhs_desc = rhs_desc, lhs_desc
    assert str(ei.value) == (
        f"{OP}: lhs is a {lhs_desc} but rhs is a {rhs_desc}; "
        "polyconv never converts between frameworks: convert one of them explicitly"
    )


def test_toy_arrays_on_two_devices(toy: Any) -> None:
    with pytest.raises(polyconv.MixedArraysError) as ei:
        conv(toy.ToyArray(X, "toy:0"), toy.ToyArray(W, "toy:1"))
    assert isinstance(ei.value, TypeError)
    assert str(ei.value) == (
        f"{OP}: lhs is on device 'toy:0' but rhs is on device 'toy:1'; "
        "polyconv never copies between devices: move one of them explicitly"
    )
    # Also when the backend is named.
    with pytest.raises(polyconv.MixedArraysError, match="'toy:1' but rhs is on device 'toy:0'"):
        conv(toy.ToyArray(X, "toy:1"), toy.ToyArray(W, "toy:0"), backend="toy")


def test_backend_keyword_with_arrays_it_cannot_take(toy: Any) -> None:
    with pytest.raises(polyconv.MixedArraysError) as ei:
        conv(X, W, backend="toy")
    assert str(ei.value) == (
        f"{OP}: the 'toy' backend (chosen by backend= keyword) cannot take lhs, a numpy.ndarray; "
        "polyconv never converts between frameworks: convert it explicitly"
    )
    chosen = r"'numpy' backend \(chosen by use_backend\(\)\) cannot take rhs"
    with pytest.raises(polyconv.MixedArraysError, match=chosen):
        with polyconv.use_backend("numpy"):
            conv(X.tolist(), toy.ToyArray(W))


@pytest.mark.parametrize(
    ("x", "w", "param", "type_name"),
    [
        (object(), W, "lhs", "builtins.object"),
        ({"a": 1}, W, "lhs", "builtins.dict"),
        (X, {"a": 1}, "rhs", "builtins.dict"),
        (X, "not an array", "rhs", "builtins.str"),
    ],
    ids=["object-lhs", "dict-lhs", "dict-rhs", "str-rhs"],
)
def test_objects_nobody_owns(x: Any, w: Any, param: str, type_name: str) -> None:
    with pytest.raises(polyconv.ConvTypeError) as ei:
        conv(x, w)
    err = ei.value
    assert isinstance(err, TypeError)
    assert (err.op, err.param) == (OP, param)
    assert str(err) == (
        f"{OP}: {param} must be an array of a framework with a polyconv backend, an array-API array, "
        f"or a Python scalar or list; got a {type_name}"
    )


def test_toy_arrays_nobody_owns_once_toy_is_blocked(toy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert which(toy.ToyArray(X), toy.ToyArray(W)) == "toy"
    monkeypatch.setenv("POLYCONV_BLOCK", "toy")
    with pytest.raises(polyconv.ConvTypeError, match="lhs must be an array of a framework.*polyconv_toy.ToyArray"):
        conv(toy.ToyArray(X), toy.ToyArray(W))
    monkeypatch.delenv("POLYCONV_BLOCK")
    assert which(toy.ToyArray(X), toy.ToyArray(W)) == "toy"


# -- the order of the rules ------------------------------------------------------


def test_backend_keyword_beats_use_backend(toy: Any, debug_log: pytest.LogCaptureFixture) -> None:
    with polyconv.use_backend("toy"):
        assert which(X.tolist(), W.tolist()) == "toy"
        assert which(X.tolist(), W.tolist(), backend="numpy") == "numpy"
        assert which(X, W, backend="numpy") == "numpy"
    with polyconv.use_backend("numpy"):
        assert which(toy.ToyArray(X), toy.ToyArray(W), backend="toy") == "toy"
    msgs = _messages(debug_log)
    assert f"{OP}: backend 'numpy' (backend= keyword)" in msgs
    assert f"{OP}: backend 'toy' (backend= keyword)" in msgs
    assert f"{OP}: backend 'toy' (use_backend())" in msgs


def test_use_backend_beats_polyconv_backend(
    toy: Any, monkeypatch: pytest.MonkeyPatch, debug_log: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("POLYCONV_BACKEND", "toy")
    assert which(X.tolist(), W.tolist()) == "toy"
    with polyconv.use_backend("numpy"):
        assert which(X.tolist(), W.tolist()) == "numpy"
    assert which(X.tolist(), W.tolist(), backend="numpy") == "numpy"
    msgs = _messages(debug_log)
    assert f"{OP}: backend 'toy' (POLYCONV_BACKEND)" in msgs
    assert f"{OP}: backend 'numpy' (use_backend())" in msgs
    assert f"{OP}: backend 'numpy' (backend= keyword)" in msgs


def test_polyconv_backend_beats_array_type(toy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Make the toy backend *accept* (not own) NumPy arrays, as a generic backend
    # would: then POLYCONV_BACKEND=toy takes NumPy arrays away from numpy.
    monkeypatch.setattr(toy.backend, "accepts", lambda x: isinstance(x, (toy.ToyArray, np.ndarray)))
    assert resolve((X, W)).name == "numpy"
    monkeypatch.setenv("POLYCONV_BACKEND", "toy")
    assert resolve((X, W)).name == "toy"
    assert resolve((X, W), backend="numpy").name == "numpy"
    with polyconv.use_backend("numpy"):
        assert resolve((X, W)).name == "numpy"
    monkeypatch.delenv("POLYCONV_BACKEND")
    assert resolve((X, W)).name == "numpy"


def test_polyconv_backend_is_read_at_call_time(toy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert which(X.tolist(), W.tolist()) == "numpy"
    monkeypatch.setenv("POLYCONV_BACKEND", "toy")
    assert which(X.tolist(), W.tolist()) == "toy"
    assert which(X.tolist(), toy.ToyArray(W)) == "toy"
    monkeypatch.setenv("POLYCONV_BACKEND", "numpy")
    assert which(X.tolist(), W.tolist()) == "numpy"
    monkeypatch.delenv("POLYCONV_BACKEND")
    assert which(X.tolist(), W.tolist()) == "numpy"


def test_polyconv_backend_is_passed_over_for_arrays_it_does_not_accept(
    toy: Any, monkeypatch: pytest.MonkeyPatch, debug_log: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("POLYCONV_BACKEND", "toy")
    assert which(X, W) == "numpy"
    assert which(X.tolist(), W) == "numpy"
    monkeypatch.setenv("POLYCONV_BACKEND", "numpy")
    assert which(toy.ToyArray(X), toy.ToyArray(W)) == "toy"
    msgs = _messages(debug_log)
    assert f"{OP}: POLYCONV_BACKEND='toy' does not accept these arrays; resolving by type" in msgs
    assert f"{OP}: POLYCONV_BACKEND='numpy' does not accept these arrays; resolving by type" in msgs
    assert f"{OP}: backend 'numpy' (array type)" in msgs
    assert f"{OP}: backend 'toy' (array type)" in msgs


def test_polyconv_backend_naming_no_backend_is_an_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYCONV_BACKEND", "nope")
    message = "POLYCONV_BACKEND='nope': backend: no backend named 'nope'"
    with pytest.raises(polyconv.BackendNotFoundError, match=message):
        conv(X, W)


def test_polyconv_backend_does_not_hide_mixed_arrays(toy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYCONV_BACKEND", "toy")
    with pytest.raises(polyconv.MixedArraysError, match="lhs is a polyconv_toy.ToyArray"):
        conv(toy.ToyArray(X), W)


# -- use_backend -----------------------------------------------------------------


def test_use_backend_nests_and_restores(toy: Any) -> None:
    assert polyconv.current_backend() is None
    with polyconv.use_backend("numpy"):
        assert polyconv.current_backend() == "numpy"
        with polyconv.use_backend("toy"):
            assert polyconv.current_backend() == "toy"
            assert which(X.tolist(), W.tolist()) == "toy"
        assert polyconv.current_backend() == "numpy"
        assert which(X.tolist(), W.tolist()) == "numpy"
        with pytest.raises(ZeroDivisionError):
            with polyconv.use_backend("toy"):
                1 / 0  # noqa: B018
        assert polyconv.current_backend() == "numpy"
    assert polyconv.current_backend() is None


def test_use_backend_unknown_name_raises_at_entry() -> None:
    entered = False
    with pytest.raises(polyconv.BackendNotFoundError, match="no backend named 'nope' is registered") as ei:
        with polyconv.use_backend("nope"):
            entered = True  # pragma: no cover
    assert isinstance(ei.value, LookupError)
    assert entered is False
    assert polyconv.current_backend() is None


def test_use_backend_needs_a_name() -> None:
    with pytest.raises(polyconv.ConvTypeError, match=r"use_backend: name must be a backend name \(a string\); got 3"):
        with polyconv.use_backend(3):  # type: ignore[arg-type]
            pass  # pragma: no cover


def test_use_backend_is_thread_local(toy: Any) -> None:
    barrier = threading.Barrier(2, timeout=10)
    seen: dict[str, Any] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            with polyconv.use_backend(name):
                barrier.wait()  # both threads are inside their own use_backend now
                seen[name] = (polyconv.current_backend(), which(X.tolist(), W.tolist()))
                barrier.wait()  # neither leaves before the other has looked
            seen[name + " after"] = polyconv.current_backend()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("numpy", "toy")]
    with polyconv.use_backend("numpy"):  # the main thread's choice is not inherited by new threads
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert polyconv.current_backend() == "numpy"
    assert not errors, errors
    assert seen == {
        "numpy": ("numpy", "numpy"),
        "toy": ("toy", "toy"),
        "numpy after": None,
        "toy after": None,
    }
    assert polyconv.current_backend() is None


# -- the owner cache ---------------------------------------------------------------


def test_owner_cache_is_filled_and_reused(toy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    caching.clear()  # else repeated calls skip resolution altogether
    assert which(toy.ToyArray(X), toy.ToyArray(W)) == "toy"
    assert which(X, W) == "numpy"
    assert dispatch.owners.get((toy.ToyArray, frozenset(), registry)) == "toy"
    assert dispatch.owners.get((np.ndarray, frozenset(), registry)) == "numpy"

    def no_scan(declared: bool) -> Any:
        raise AssertionError("the owner of a cached type was looked up again")

    monkeypatch.setattr(registry, "candidates", no_scan)
    assert which(toy.ToyArray(X), toy.ToyArray(W)) == "toy"
    assert which(X, W) == "numpy"
    assert len(dispatch.owners) == 2


def test_owner_cache_is_keyed_by_block_list_and_cleared_by_refresh(toy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    dispatch.owners.clear()
    assert dispatch.owner_of(toy.ToyArray(X)) == "toy"
    monkeypatch.setenv("POLYCONV_BLOCK", "toy")
    assert dispatch.owner_of(toy.ToyArray(X)) is None
    assert dict(dispatch.owners.items()) == {
        (toy.ToyArray, frozenset(), registry): "toy",
        (toy.ToyArray, frozenset({"toy"}), registry): "",
    }
    monkeypatch.delenv("POLYCONV_BLOCK")
    registry.refresh()
    assert len(dispatch.owners) == 0
    assert dispatch.owner_of(toy.ToyArray(X)) == "toy"


def test_owner_cache_belongs_to_its_registry() -> None:
    """A second registry (another entry-point group) has its own answers."""
    assert dispatch.owner_of(X) == "numpy"
    empty = Registry(group="polyconv.tests.no-such-group")
    assert dispatch.owner_of(X, empty) is None
    assert dispatch.owner_of(X) == "numpy"


def test_object_types_nobody_owns_are_cached_too() -> None:
    dispatch.owners.clear()
    for _ in range(2):
        with pytest.raises(polyconv.ConvTypeError):
            conv(object(), W)
    assert dispatch.owners.get((object, frozenset(), registry)) == ""


# -- no framework imports ----------------------------------------------------------


def test_importing_polyconv_imports_no_framework() -> None:
    code = (
        "import sys, polyconv; polyconv.backend_info(); "
        "print([m for m in ('torch', 'jax', 'cupy') if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_dispatching_numpy_arrays_imports_no_framework() -> None:
    code = (
        "import sys, numpy as np, polyconv\n"
        "polyconv.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2)), (1,), 'VALID')\n"
        "polyconv.conv_general_dilated([[[1.0, 2.0]]], [[[1.0]]], (1,), 'VALID')\n"
        "print([m for m in ('torch', 'jax', 'cupy') if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
