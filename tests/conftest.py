"""Shared test fixtures.

``--polyconv-thorough`` (from polyconv's pytest plugin,
:mod:`polyconv.conformance.plugin`) multiplies the random-case counts by 10
for long runs; by default every random test draws a fixed, seeded set of
cases, so CI is reproducible and bounded, and ``--polyconv-sample K`` (5 in
this repository's pytest configuration) keeps about one case in K.

The tests read no calibration of the machine's user: ``POLYCONV_CALIBRATION``
points at an empty file, so the FFT cost model has its defaults.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ["POLYCONV_CALIBRATION"] = os.devnull

TOY_MISSING = "the test plugin polyconv-toy is not installed: run `pip install ./tests/plugins/polyconv_toy`"


@pytest.fixture(scope="session")
def conformance_sample(request: pytest.FixtureRequest) -> int:
    """``K`` of ``--polyconv-sample K`` (polyconv's pytest plugin; this repository's
    pytest configuration sets 5): 1 when ``--polyconv-thorough``."""
    from polyconv.conformance.plugin import sample

    return sample(request.config)


@pytest.fixture(scope="session")
def random_case_count(request: pytest.FixtureRequest, conformance_sample: int) -> int:
    """How many random cases a random test draws: 500 divided by ``--polyconv-sample``,
    or 5000 with ``--polyconv-thorough`` (options of polyconv's pytest plugin)."""
    from polyconv.conformance.plugin import thorough

    return 5000 if thorough(request.config) else 500 // conformance_sample


@pytest.fixture(scope="module")
def jax_x64():
    """``(jax, jax.lax)`` with 64-bit types enabled for the module; skips without JAX."""
    jax = pytest.importorskip("jax", reason="JAX is not installed: this check compares with jax.lax")
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield jax, jax.lax
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def toy() -> Any:
    """The installed toy plugin's module (skips when it is not installed as a distribution)."""
    from polyconv.registry import registry

    mod = pytest.importorskip("polyconv_toy", reason=TOY_MISSING)
    if "toy" not in registry.records():
        pytest.skip(reason=TOY_MISSING + " (the module imports, but no 'toy' entry point is registered)")
    return mod


@pytest.fixture
def clean_polyconv_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No POLYCONV_BLOCK or POLYCONV_BACKEND from the caller's environment."""
    monkeypatch.delenv("POLYCONV_BLOCK", raising=False)
    monkeypatch.delenv("POLYCONV_BACKEND", raising=False)
