"""A backend's native path replaces the generic derivation exactly when its
manifest lists the op; otherwise every op is derived from the primitive."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from polyconv.backends.numpy import backend as numpy_backend

import polyconv
from polyconv import ops

X = np.arange(2 * 3 * 6, dtype=np.float64).reshape(2, 3, 6)
W = np.linspace(-1, 1, 4 * 3 * 2).reshape(4, 3, 2)

CALLS = {
    "conv_transpose": lambda: polyconv.conv_transpose(
        X, W, (2,), "SAME", dimension_numbers=("NCW", "OIW", "NCW")
    ),
    "conv_general_dilated_patches": lambda: polyconv.conv_general_dilated_patches(X, (2,), (1,), "VALID"),
    "conv_general_dilated_local": lambda: polyconv.conv_general_dilated_local(
        X, np.ones((4, 6, 5)), (1,), "VALID", (2,)
    ),
    "conv_general_dilated_vjp": lambda: polyconv.conv_general_dilated_vjp(X, W, np.ones((2, 4, 5)), (1,), "VALID"),
}


@pytest.fixture(autouse=True)
def primitive_only(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The NumPy backend as a backend with the primitive alone: no other native
    op declared, no runner (its own conv_transpose and runners are set aside)."""

    manifest = dataclasses.replace(numpy_backend.manifest, ops=frozenset({"conv_general_dilated"}))
    monkeypatch.setattr(numpy_backend, "manifest", manifest)
    monkeypatch.setattr(numpy_backend, "runner", lambda op, spec: None)
    ops.calls.clear()
    yield
    ops.calls.clear()


@pytest.mark.parametrize("op", sorted(CALLS))
def test_native_path_is_used_when_declared(op: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def native(*args: Any) -> str:
        seen.append(args[-1])  # the validated spec comes last
        return "native result"

    manifest = dataclasses.replace(numpy_backend.manifest, ops=numpy_backend.manifest.ops | {op})
    monkeypatch.setattr(numpy_backend, "manifest", manifest)
    monkeypatch.setattr(numpy_backend, op, native, raising=False)
    assert CALLS[op]() == "native result"
    assert len(seen) == 1


@pytest.mark.parametrize("op", sorted(CALLS))
def test_undeclared_native_method_is_ignored(op: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A method alone is not a claim: without the manifest entry the op is derived."""
    monkeypatch.setattr(numpy_backend, op, lambda *a: pytest.fail("undeclared native path ran"), raising=False)
    result = CALLS[op]()
    assert not isinstance(result, str)


@pytest.mark.parametrize("op", sorted(CALLS))
def test_derived_ops_use_only_the_primitive(op: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    primitive = numpy_backend.conv_general_dilated

    def counting(lhs: Any, rhs: Any, spec: Any) -> Any:
        calls.append(spec)
        return primitive(lhs, rhs, spec)

    monkeypatch.setattr(numpy_backend, "conv_general_dilated", counting)
    CALLS[op]()
    # patches are copies (polyconv.gather), and a local convolution their product with the kernel: no convolution
    expected = {"conv_general_dilated_vjp": 2, "conv_general_dilated_patches": 0, "conv_general_dilated_local": 0}
    assert len(calls) == expected.get(op, 1)
