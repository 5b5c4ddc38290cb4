"""The comparator's rule for non-finite values (:mod:`polyconv.conformance.tolerances`)."""

from __future__ import annotations

import numpy as np
from polyconv.conformance import reference, tolerances

from polyconv.spec import conv_spec


def _spec(x: np.ndarray, w: np.ndarray, **kw: object) -> object:
    return conv_spec(x.shape, w.shape, x.dtype, w.dtype, **{"window_strides": (1,), "padding": "VALID", **kw})


def test_a_correct_infinite_result_passes_and_every_wrong_non_finite_fails() -> None:
    x = np.array([1.0, np.inf]).reshape(1, 1, 2)
    w = np.array([2.0]).reshape(1, 1, 1)
    spec = _spec(x, w)
    assert tolerances.check_close(np.array([2.0, np.inf]).reshape(1, 1, 2), x, w, spec) is None
    for wrong in ([2.0, -np.inf], [2.0, np.nan], [np.nan, np.inf], [2.0, 1e308], [np.inf, np.inf]):
        assert tolerances.check_close(np.array(wrong).reshape(1, 1, 2), x, w, spec) is not None, wrong


def test_structural_zeros_times_an_infinite_tap_may_be_nan_and_nothing_else() -> None:
    """Padding forms no product (XLA): [1, 4] here; a backend padding with real
    zeros gives NaN at the first output, which is allowed; NaN at the second is not."""
    x = np.array([1.0, 2.0]).reshape(1, 1, 2)
    w = np.array([np.inf, 1.0]).reshape(1, 1, 2)
    spec = _spec(x, w, padding=[(1, 0)])
    exact = reference.conv_from_spec(x, w, spec)
    np.testing.assert_array_equal(exact.ravel(), [1.0, np.inf])
    check = tolerances.check_close
    assert check(np.array([1.0, np.inf]).reshape(1, 1, 2), x, w, spec) is None
    assert check(np.array([np.nan, np.inf]).reshape(1, 1, 2), x, w, spec) is None
    assert check(np.array([1.0, np.nan]).reshape(1, 1, 2), x, w, spec) is not None
    # rhs dilation inserts no elements: a zero-stuffed kernel's 0 * inf is never allowed
    x = np.array([1.0, np.inf, 2.0]).reshape(1, 1, 3)
    w = np.array([1.0, 1.0]).reshape(1, 1, 2)
    spec = _spec(x, w, rhs_dilation=(2,))
    assert check(np.array([3.0]).reshape(1, 1, 1), x, w, spec) is None
    assert check(np.array([np.nan]).reshape(1, 1, 1), x, w, spec) is not None


def test_a_float16_sum_that_overflows_must_be_infinite() -> None:
    x = np.full((1, 2, 1), 60000.0, np.float16)
    w = np.ones((1, 2, 1), np.float16)
    spec = _spec(x, w)
    assert tolerances.check_close(np.array([np.inf], np.float16).reshape(1, 1, 1), x, w, spec) is None
    assert tolerances.check_close(np.array([-np.inf], np.float16).reshape(1, 1, 1), x, w, spec) is not None


def test_an_integer_mismatch_shows_the_wrapped_expected_value() -> None:
    x = np.full((1, 2, 1), 127, np.int8)
    w = np.full((1, 2, 1), 127, np.int8)
    spec = _spec(x, w)
    problem = tolerances.check_close(np.array([127], np.int8).reshape(1, 1, 1), x, w, spec)  # saturated
    assert problem is not None and "expected np.int8(2)" in problem and "32258 wrapped to int8" in problem


def test_a_plain_running_float32_sum_passes_and_a_half_precision_one_fails() -> None:
    """2049 equal products summed one after the other in float32 (as XLA:CPU in JAX 0.12 does)
    are off by about K/4 ulp in one direction: within the running-sum term; summed in float16,
    not.  With random signs the same running sum stays within the first term alone."""
    k = 2049
    x = np.full((1, k, 1), 127, np.int8)
    w = np.full((1, k, 1), 127, np.int8)
    spec = _spec(x, w, preferred_element_type="float32")
    total = np.float32(0)
    for _ in range(k):
        total = np.float32(total + np.float32(127 * 127))
    assert float(total) != 127 * 127 * k  # the running sum is off
    assert tolerances.check_close(np.array([total]).reshape(1, 1, 1), x, w, spec) is None
    half = np.float16(0)
    for _ in range(k):
        half = np.float16(half + np.float16(1.0))
    xs, ws = np.ones((1, k, 1), np.float32), np.ones((1, k, 1), np.float32)
    ones = _spec(xs, ws)
    assert tolerances.check_close(np.array([half], np.float32).reshape(1, 1, 1), xs, ws, ones) is not None
    rng = np.random.default_rng(0)
    xr = rng.standard_normal((1, k, 1)).astype(np.float32)
    wr = rng.standard_normal((1, k, 1)).astype(np.float32)
    running = np.float32(0)
    for a, b in zip(xr.ravel(), wr.ravel()):
        running = np.float32(running + a * b)
    assert tolerances.check_close(np.array([running]).reshape(1, 1, 1), xr, wr, _spec(xr, wr)) is None
    assert tolerances.drift(spec) == (k - 1) * 2.0**-24
