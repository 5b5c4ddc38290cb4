"""The table of ops (polyconv.operations): every op is declared once, and everything follows from it."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
from polyconv.conformance import reference

import polyconv
from polyconv import ops
from polyconv.operations import NAMES, OPERATIONS


def test_every_declared_op_is_public_with_the_same_parameters_as_its_reference() -> None:
    assert list(ops.__all__) == list(NAMES)
    assert set(NAMES) <= set(polyconv.__all__)
    for name, operation in OPERATIONS.items():
        public = inspect.signature(getattr(polyconv, name)).parameters
        assert list(public)[:len(operation.operands)] == list(operation.operands), name
        assert list(public)[-1] == "backend"
        assert list(public)[:-1] == list(inspect.signature(getattr(reference, name)).parameters), name


def test_a_backend_without_the_op_gets_the_derivation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one path: runner, else native method, else derivation (the NumPy backend's runners and
    native methods switched off here, so every op but the primitive is derived)."""
    be = polyconv.registry.registry.load("numpy")
    monkeypatch.setattr(be, "runner", lambda op, spec: None)
    monkeypatch.setattr(be, "manifest", dataclasses.replace(be.manifest, ops=frozenset({"conv_general_dilated"})))
    ops.calls.clear()
    x = np.arange(12.0).reshape(1, 2, 6)
    w = np.arange(6.0).reshape(3, 2, 1)
    derived = polyconv.conv_transpose(x, w, (2,), "SAME", dimension_numbers=("NCH", "OIH", "NCH"))
    np.testing.assert_allclose(derived, reference.conv_transpose(x, w, (2,), "SAME",
                                                                 dimension_numbers=("NCH", "OIH", "NCH")))
    ops.calls.clear()
