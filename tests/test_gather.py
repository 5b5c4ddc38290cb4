"""Patches by copying (polyconv.gather): both ways of assembling them against
the reference, with non-finite inputs (which an identity-kernel convolution
would spread to their neighbours), and the torch and JAX backends' patches
(jitted, differentiated, complex128 from complex64).  The per-axis reads they
are built from are tested in tests/test_canonical.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from polyconv.conformance import cases, reference

import polyconv
from polyconv import gather
from polyconv.spec import patches_spec


def _random_nonfinite_cases(count: int) -> list[cases.PatchesCase]:
    rng = np.random.default_rng(3)
    return [replace(cases.random_patches_case(rng, "float64", i), values="nonfinite") for i in range(count)]


@pytest.mark.parametrize("assignment", [True, False], ids=["assignment", "stacking"])
def test_both_assemblies_copy_like_the_reference(monkeypatch: pytest.MonkeyPatch, assignment: bool) -> None:
    monkeypatch.setattr(gather, "_assignable", lambda x: assignment)
    for case in _random_nonfinite_cases(150):
        (x,) = case.operands()
        kw = case.kwargs()
        spec = patches_spec(x.shape, x.dtype.name, case.filter_shape, case.window_strides, case.padding,
                            case.lhs_dilation, case.rhs_dilation, case.dimension_numbers)
        got = gather.patches(x, spec)
        np.testing.assert_array_equal(got, reference.conv_general_dilated_patches(x, **kw), err_msg=case.name)
        assert not np.shares_memory(got, x)


def test_an_infinite_input_stays_in_its_own_patch_entries() -> None:
    x = np.ones((1, 1, 6), np.float32)
    x[0, 0, 2] = np.inf
    for kw in ({}, {"lhs_dilation": (2,)}):  # the torch backend's identity-kernel fallback was lhs dilation
        pads = ((1, 1),) if not kw else ((2, 2),)
        want = reference.conv_general_dilated_patches(x, (3,), (1,), pads, **kw)
        got = polyconv.conv_general_dilated_patches(x, (3,), (1,), pads, **kw)
        assert not np.isnan(want).any()
        np.testing.assert_array_equal(got, want)


def test_the_torch_backend_copies_with_lhs_dilation_too() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    for case in _random_nonfinite_cases(60):
        (x,) = case.operands()
        got = polyconv.conv_general_dilated_patches(torch.from_numpy(x), **case.kwargs())
        np.testing.assert_array_equal(got.numpy(), reference.conv_general_dilated_patches(x, **case.kwargs()),
                                      err_msg=case.name)


def test_the_jax_backend_copies_under_jit_and_differentiates() -> None:
    jax = pytest.importorskip("jax", reason="jax is not installed")
    import jax.numpy as jnp

    for case in _random_nonfinite_cases(40)[::2]:
        (x,) = case.operands()
        x = x.astype(np.float32)
        kw = case.kwargs()
        want = reference.conv_general_dilated_patches(x, **kw)
        eager = polyconv.conv_general_dilated_patches(jnp.asarray(x), **kw)
        jitted = jax.jit(lambda a, kw=kw: polyconv.conv_general_dilated_patches(a, **kw))(jnp.asarray(x))
        np.testing.assert_array_equal(np.asarray(eager), want.astype(np.float32), err_msg=case.name)
        np.testing.assert_array_equal(np.asarray(jitted), want.astype(np.float32), err_msg=case.name)
    # the cotangent of patches is the sum of each element's copies: jax.lax's own patches agree on finite data
    rng = np.random.default_rng(1)
    x, ct = jnp.asarray(rng.standard_normal((2, 3, 7, 6))), None
    kw: dict[str, Any] = dict(filter_shape=(3, 2), window_strides=(2, 1), padding=((1, 2), (0, 1)),
                              lhs_dilation=(2, 1), rhs_dilation=(1, 2))
    ours, pull = jax.vjp(lambda a: polyconv.conv_general_dilated_patches(a, **kw), x)
    theirs, lax_pull = jax.vjp(lambda a: jax.lax.conv_general_dilated_patches(a, **kw), x)
    ct = jnp.asarray(rng.standard_normal(ours.shape).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    np.testing.assert_allclose(np.asarray(pull(ct)[0]), np.asarray(lax_pull(ct)[0]), rtol=1e-6, atol=1e-6)
    (transposed,) = jax.linear_transpose(lambda a: polyconv.conv_general_dilated_patches(a, **kw), x)(ct)
    np.testing.assert_allclose(np.asarray(transposed), np.asarray(lax_pull(ct)[0]), rtol=1e-6, atol=1e-6)
    # vmap: each example's patches, as the reference copies them
    batch = rng.standard_normal((3, 2, 3, 7, 6)).astype(np.float32)
    mapped = jax.vmap(lambda a: polyconv.conv_general_dilated_patches(a, **kw))(jnp.asarray(batch))
    for example, got in zip(batch, np.asarray(mapped)):
        np.testing.assert_array_equal(got, reference.conv_general_dilated_patches(example, **kw).astype(np.float32))


def test_the_jax_backends_complex128_patches_of_complex64_are_exact(jax_x64: Any) -> None:
    # jax.lax's identity-kernel convolution computes these in complex64 arithmetic, off by its roundings
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, 2, 5, 5)) + 1j * rng.standard_normal((1, 2, 5, 5))).astype(np.complex64)
    got = polyconv.conv_general_dilated_patches(jnp.asarray(x), (2, 2), (1, 1), "VALID",
                                                preferred_element_type=np.complex128)
    assert got.dtype == np.complex128
    np.testing.assert_array_equal(np.asarray(got), reference.conv_general_dilated_patches(x, (2, 2), (1, 1), "VALID"))
