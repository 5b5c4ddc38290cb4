"""Gradients of conv_general_dilated on the NumPy backend (derived from the primitive).

The adjoint identities hold on the whole case grid in float64:

    <conv(x, w), g> == <x, vjp_lhs(g)> == <w, vjp_rhs(g)>

and the cotangents equal ``jax.vjp`` of ``jax.lax.conv_general_dilated``
where JAX is installed.
"""

from __future__ import annotations

import numpy as np
import pytest
from polyconv.conformance import cases

import polyconv
from polyconv.spec import conv_spec


def _cotangent(case: cases.ConvCase, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(case.seed + 1).standard_normal(shape)


@pytest.mark.parametrize("case", cases.grid(), ids=str)
def test_adjoint_identities(case: cases.ConvCase) -> None:
    x, w = case.operands()
    kw = case.kwargs()
    y = polyconv.conv_general_dilated(x, w, **kw)
    g = _cotangent(case, y.shape)
    dx, dw = polyconv.conv_general_dilated_vjp(x, w, g, **kw)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    assert dw.shape == w.shape and dw.dtype == w.dtype
    lhs_side = float(np.sum(y * g))
    scale = float(np.sum(np.abs(y) * np.abs(g))) + float(np.sum(np.abs(x) * np.abs(dx))) + 1e-300
    assert abs(lhs_side - float(np.sum(x * dx))) <= 1e-12 * scale + 1e-300, "lhs adjoint identity"
    scale_w = scale + float(np.sum(np.abs(w) * np.abs(dw)))
    assert abs(lhs_side - float(np.sum(w * dw))) <= 1e-12 * scale_w + 1e-300, "rhs adjoint identity"


def test_adjoint_identity_can_fail() -> None:
    """The check above is not vacuous: a wrong cotangent breaks it."""
    case = next(c for c in cases.grid() if c.name == "2d-default-everything")
    x, w = case.operands()
    y = polyconv.conv_general_dilated(x, w, **case.kwargs())
    g = _cotangent(case, y.shape)
    dx, _ = polyconv.conv_general_dilated_vjp(x, w, g, **case.kwargs())
    dx_wrong = np.flip(dx, axis=-1)
    assert abs(np.sum(y * g) - np.sum(x * dx_wrong)) > 1e-6


def test_integer_cotangents_are_exact() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-5, 6, (2, 4, 7), dtype=np.int32)
    w = rng.integers(-5, 6, (6, 2, 3), dtype=np.int32)
    g = rng.integers(-5, 6, (2, 6, 3), dtype=np.int32)
    kw = dict(window_strides=(2,), padding=[(1, 0)], feature_group_count=2)
    dx, dw = polyconv.conv_general_dilated_vjp(x, w, g, **kw)
    dxf, dwf = polyconv.conv_general_dilated_vjp(x.astype(float), w.astype(float), g.astype(float), **kw)
    np.testing.assert_array_equal(dx, dxf.astype(np.int32))
    np.testing.assert_array_equal(dw, dwf.astype(np.int32))
    assert dx.dtype == np.int32 and dw.dtype == np.int32


def test_preferred_element_type_cotangent() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 6)).astype(np.float16)
    w = rng.standard_normal((3, 2, 2)).astype(np.float16)
    g = rng.standard_normal((1, 3, 5)).astype(np.float32)  # the output dtype
    dx, dw = polyconv.conv_general_dilated_vjp(x, w, g, (1,), "VALID", preferred_element_type=np.float32)
    assert dx.dtype == np.float16 and dw.dtype == np.float16
    ref_dx, ref_dw = polyconv.conv_general_dilated_vjp(
        x.astype(np.float64), w.astype(np.float64), g.astype(np.float64), (1,), "VALID"
    )
    np.testing.assert_allclose(dx, ref_dx, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(dw, ref_dw, rtol=2e-3, atol=2e-3)


def test_empty_output_gives_zero_kernel_cotangent() -> None:
    x = np.ones((2, 3, 2))
    w = np.ones((4, 3, 5))  # window larger than the input: no output positions
    g = np.zeros((2, 4, 0))
    dx, dw = polyconv.conv_general_dilated_vjp(x, w, g, (1,), "VALID")
    np.testing.assert_array_equal(dx, np.zeros_like(x))
    np.testing.assert_array_equal(dw, np.zeros_like(w))


def _jax_vjp_cases(thorough: bool) -> list[cases.ConvCase]:
    """Every 20th grid case and 15 random ones (every case and 300 random with
    --polyconv-thorough).
    The whole grid is compared with the reference VJP below, and the
    reference VJP with JAX in test_reference_ops_vs_jax.py."""
    grid = cases.grid()
    if thorough:
        return grid + cases.random_cases(300, seed=77)
    return grid[::20] + cases.random_cases(15, seed=77)


def test_matches_jax_vjp(jax_x64, request: pytest.FixtureRequest) -> None:
    jax, lax = jax_x64
    from jax_batches import lax_kwargs, results  # JAX's results compiled a chunk of cases at a time

    def jax_vjp(case: cases.ConvCase) -> tuple:
        x, w = case.operands()
        kw = lax_kwargs(case.kwargs())
        g = _cotangent(case, conv_spec(x.shape, w.shape, x.dtype, w.dtype, **case.kwargs()).out_shape)
        return (lambda a, b, g: jax.vjp(lambda a, b: lax.conv_general_dilated(a, b, **kw), a, b)[1](g)), (x, w, g)

    case_list = _jax_vjp_cases(request.config.getoption("--polyconv-thorough"))
    for case, got in zip(case_list, results(jax_vjp, case_list)):
        assert not isinstance(got, Exception), f"{case!r}: jax.vjp raised {got!r}"
        x, w = case.operands()
        kw = case.kwargs()
        g = _cotangent(case, conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw).out_shape)
        dx, dw = polyconv.conv_general_dilated_vjp(x, w, g, **kw)
        for mine, theirs, name in ((dx, got[0], "lhs"), (dw, got[1], "rhs")):
            err = np.abs(mine - theirs).max(initial=0)
            assert err <= 1e-10 * (1 + np.abs(theirs).max(initial=0)), f"{case!r}: {name} cotangent off by {err}"
