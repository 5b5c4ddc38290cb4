"""The reference semantics agree with ``jax.lax.conv_general_dilated``.

The reference is the oracle every backend is checked against, so it is
itself checked against JAX on the curated grid, the dtype grid (their
odd-numbered halves: the JAX backend's whole conformance run, CI's over the
wheel, checks the others;
all of both with ``--polyconv-thorough``), and seeded random cases over
the whole parameter space (150 by default, a fifth of that in this repository's
sampled run, 1500 with ``--polyconv-thorough``).
Runs where JAX is installed (it is in CI).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
from polyconv.conformance import cases, reference, tolerances

from polyconv.spec import conv_spec

jax = pytest.importorskip("jax", reason="JAX is not installed: the reference is checked against jax.lax")
from jax import lax  # noqa: E402
from jax_batches import lax_kwargs, prefetch, result, results  # noqa: E402

# The grids' results are computed together (jax_batches.prefetch), on one worker.
pytestmark = pytest.mark.xdist_group("reference-vs-jax")


@pytest.fixture(scope="module", autouse=True)
def _x64():
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


# XLA's CPU convolution multiplies complex64 operands in complex64 even when asked to
# accumulate in complex128 (errors of 5e-7 where float64 gives 1e-16).  The reference
# follows the documented semantics (accumulate in preferred_element_type); jax.lax is
# judged with complex64's accumulation bound for these pairs only.
_XLA_CPU_NARROW_ACCUMULATION = {("complex64", "complex128")}


def _jax_conv(case: cases.ConvCase) -> tuple:
    """The ``call`` of ``jax.lax.conv_general_dilated`` (see jax_batches.results)."""
    return functools.partial(lax.conv_general_dilated, **lax_kwargs(case.kwargs())), case.operands()


def _judge(case: cases.ConvCase, expected: np.ndarray) -> str | None:
    """The reference's verdict on ``jax.lax``'s result (the tolerance table)."""
    lhs, rhs = case.operands()
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **case.kwargs())
    if expected.shape != spec.out_shape or expected.dtype.name != spec.out_dtype:
        return f"jax.lax gives {expected.dtype} {expected.shape}, the spec {spec.out_dtype} {spec.out_shape}"
    if (case.dtype, case.preferred_element_type) in _XLA_CPU_NARROW_ACCUMULATION:
        spec = dataclasses.replace(spec, preferred_element_type=None)
    return tolerances.check_close(expected, lhs, rhs, spec)


@pytest.fixture(scope="module")
def grid_results(_x64, request: pytest.FixtureRequest) -> dict:
    return {**prefetch(request, "test_grid", _jax_conv), **prefetch(request, "test_dtypes", _jax_conv)}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``test_grid`` and ``test_dtypes`` take the odd-numbered cases of the curated
    grid and of the dtype grid: the JAX backend's whole conformance run (CI's) checks the
    even-numbered ones (every other case of each grid, through polyconv's
    pass-through to ``jax.lax``) against the same reference, so together they
    cover both grids; every case with ``--polyconv-thorough``."""
    grids = {"test_grid": cases.grid, "test_dtypes": cases.dtype_grid}
    if metafunc.function.__name__ in grids:
        from polyconv.conformance.plugin import thorough

        grid = grids[metafunc.function.__name__]()
        metafunc.parametrize("case", grid if thorough(metafunc.config) else grid[1::2], ids=str)


def test_grid(case: cases.ConvCase, grid_results: dict) -> None:
    problem = _judge(case, result(grid_results[case.name]))
    assert problem is None, f"{case!r}: reference and jax.lax disagree: {problem}"


def test_dtypes(case: cases.ConvCase, grid_results: dict) -> None:
    problem = _judge(case, result(grid_results[case.name]))
    assert problem is None, f"{case!r}: reference and jax.lax disagree: {problem}"


def test_random_cases(random_case_count: int) -> None:
    """150 random cases (50 sampled), 1500 when thorough (the conformance suite's JAX run, a
    pass-through to jax.lax, compares several hundred more with the reference)."""
    case_list = cases.random_cases(random_case_count * 3 // 10, seed=2024)
    problems = [f"{case!r}: {problem}" for case, got in zip(case_list, results(_jax_conv, case_list))
                if (problem := f"jax.lax raised {got!r}" if isinstance(got, Exception) else _judge(case, got))]
    assert not problems, f"{len(problems)} of {len(case_list)} cases disagree:\n" + "\n".join(problems[:5])


def test_reference_result_dtypes_are_wide() -> None:
    x = np.ones((1, 2, 5), np.float32)
    w = np.ones((3, 2, 2), np.float32)
    assert reference.conv_general_dilated(x, w, (1,), "VALID").dtype == np.float64
    assert reference.conv_general_dilated(x.astype(np.int8), w.astype(np.int8), (1,), "VALID").dtype == np.int64
    xc, wc = x.astype(np.complex64), w.astype(np.complex64)
    assert reference.conv_general_dilated(xc, wc, (1,), "VALID").dtype == np.complex128
