"""The reference's other operations agree with ``jax.lax``.

``conv_transpose``, ``conv_general_dilated_patches``, ``conv_general_dilated_local``
and the gradients of ``conv_general_dilated`` are each written in the reference
from their own definition (a scatter, a gather, an unshared sum, a gather and a
scatter back through the padding).  Here they are checked against JAX: the
transpose on an explicit grid of its padding conventions and on seeded random
cases, patches and local on seeded random cases, and the gradients against
``jax.vjp`` on the curated forward grid (the half the JAX backend's
conformance run does not take, see ``test_vjp_grid``) and on seeded random forward
cases (100 random cases per operation by default, 33 in this repository's
sampled run, 1000 with ``--polyconv-thorough``).  Every JAX result is also compared directly with
polyconv's NumPy backend on the same arguments.  The gradients are also checked against the forward
reference through the adjoint identities, without JAX.

Every check runs in float64: XLA:CPU accumulates complex64 in complex64 even
when asked for complex128 (see test_reference_vs_jax.py).

JAX's results are compiled a chunk of cases at a time, without LLVM's
optimisations and without XLA's algebraic simplifier, which aborts the process
on a few of these cases in JAX 0.10 (see jax_batches.py).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from polyconv.conformance import cases, reference, tolerances

import polyconv
from polyconv.errors import ConvArgumentError, ConvShapeError
from polyconv.spec import conv_spec, conv_transpose_spec, local_spec, patches_spec

jax = pytest.importorskip("jax", reason="JAX is not installed: the reference is checked against jax.lax")
from jax import lax  # noqa: E402
from jax_batches import lax_kwargs, prefetch, result, results  # noqa: E402

# The module's fixtures compute JAX's results for all the selected cases of a test at once
# (jax_batches.prefetch); under pytest-xdist every worker would do it for the whole list, so the
# module's tests run on one worker.
pytestmark = pytest.mark.xdist_group("reference-ops-vs-jax")


@pytest.fixture(scope="module", autouse=True)
def _x64():
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def _random_count(random_case_count: int) -> int:
    """100 random cases per operation (20 in the sampled run), 1000 when thorough (the conformance suite's
    JAX run, a pass-through to jax.lax, compares several hundred more with the reference)."""
    return random_case_count // 5


def _run_all(call, judge, case_list) -> None:
    """Judge JAX's result of every case, then fail listing the first few problems."""
    problems = []
    for case, got in zip(case_list, results(call, case_list)):
        problem = f"jax.lax raised {got!r}" if isinstance(got, Exception) else judge(case, got)
        if problem is not None:
            problems.append(f"{case!r}: {problem}")
    assert not problems, f"{len(problems)} of {len(case_list)} cases disagree:\n" + "\n".join(problems[:5])


def _lax_call(fun):
    """The ``call`` of a ``jax.lax`` function: its case's parameters, the case's operands."""
    return lambda case: (functools.partial(fun, **lax_kwargs(case.kwargs())), case.operands())


def _and_numpy(judge, run_numpy):
    """``judge`` (the reference's verdict on JAX's result), then polyconv's NumPy
    backend against JAX's result directly: each op equals ``jax.lax``'s."""

    def both(case, got):
        problem = judge(case, got)
        if problem is not None:
            return problem
        mine = run_numpy(case)
        pairs = zip(mine, got) if isinstance(mine, tuple) else [(mine, got)]
        for a, b in pairs:
            a, b = np.asarray(a), np.asarray(b)
            if a.shape != b.shape or a.dtype != b.dtype:
                return f"NumPy backend gives {a.dtype} {a.shape}, jax.lax {b.dtype} {b.shape}"
            err = np.abs(a - b).max(initial=0)
            if not err <= 1e-10 * (1 + np.abs(b).max(initial=0)):  # float64 throughout
                return f"NumPy backend differs from jax.lax by {err:.3g}"
        return None

    return both


def _numpy_vjp(case: cases.ConvCase) -> tuple[np.ndarray, np.ndarray]:
    lhs, rhs = case.operands()
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **case.kwargs())
    g = _cotangent(case, spec.out_shape, spec.out_dtype)
    return polyconv.conv_general_dilated_vjp(lhs, rhs, g, **case.kwargs())


# -- conv_transpose -------------------------------------------------------------

_jax_transpose = _lax_call(lax.conv_transpose)


def _judge_transpose(case: cases.TransposeCase, got: np.ndarray) -> str | None:
    lhs, rhs = case.operands()
    tspec = conv_transpose_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **case.kwargs())
    if got.dtype.name != tspec.conv.out_dtype:
        return f"jax dtype {got.dtype}, spec {tspec.conv.out_dtype}"
    return tolerances.check_transpose_close(got, lhs, rhs, tspec)


@pytest.fixture(scope="module")
def transpose_grid_results(_x64, request: pytest.FixtureRequest) -> dict:
    return prefetch(request, "test_transpose_grid", _jax_transpose)


@pytest.mark.parametrize("case", cases.transpose_grid(), ids=str)
def test_transpose_grid(case: cases.TransposeCase, transpose_grid_results: dict) -> None:
    judge = _and_numpy(_judge_transpose, lambda c: polyconv.conv_transpose(*c.operands(), **c.kwargs()))
    problem = judge(case, result(transpose_grid_results[case.name]))
    assert problem is None, f"{case!r}: reference and jax.lax.conv_transpose disagree: {problem}"


def test_transpose_random(random_case_count: int) -> None:
    case_list = cases.random_transpose_cases(_random_count(random_case_count), seed=11)
    judge = _and_numpy(_judge_transpose, lambda c: polyconv.conv_transpose(*c.operands(), **c.kwargs()))
    _run_all(_jax_transpose, judge, case_list)


@pytest.mark.parametrize("padding", ["SAME_LOWER", "same", "valid", "Same"])
def test_transpose_other_padding_names_keep_forward_meaning(padding: str) -> None:
    # only the exact strings 'SAME' and 'VALID' get the transpose padding; other
    # names are the forward convolution's padding, allowed with strides of 1 only
    rng = np.random.default_rng(5)
    lhs, rhs = rng.standard_normal((2, 5, 4, 3)), rng.standard_normal((4, 3, 3, 2))
    case = cases.TransposeCase("names", lhs.shape, rhs.shape, (1, 1), padding, (1, 2))
    tspec = conv_transpose_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **case.kwargs())
    got = np.asarray(lax.conv_transpose(lhs, rhs, **case.kwargs()))
    assert tolerances.check_transpose_close(got, lhs, rhs, tspec) is None
    with pytest.raises(ConvArgumentError):
        reference.conv_transpose(lhs, rhs, (2, 1), padding)
    with pytest.raises(Exception):  # noqa: B017 - JAX raises its own error
        lax.conv_transpose(lhs, rhs, (2, 1), padding)


def test_transpose_is_a_scatter() -> None:
    # each input element lays a copy of the kernel down at i * s + low - k * rd
    x = np.zeros((1, 4, 1))
    x[0, 2, 0] = 1.0
    w = np.arange(1.0, 4.0).reshape(3, 1, 1)  # HIO
    out = reference.conv_transpose(x, w, (2,), "VALID")  # i = 2, low = 2: out[6 - k] = w[k]; 9 outputs
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 0, 0, 3, 2, 1, 0, 0])
    out = reference.conv_transpose(x, w, (2,), "VALID", transpose_kernel=True)
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 0, 0, 1, 2, 3, 0, 0])


# -- patches and local ------------------------------------------------------------

def _judge_patches(case: cases.PatchesCase, got: np.ndarray) -> str | None:
    (lhs,) = case.operands()
    pspec = patches_spec(lhs.shape, lhs.dtype, **case.kwargs())
    return tolerances.check_patches_close(got, lhs, pspec)


def test_patches_random(random_case_count: int) -> None:
    _run_all(
        _lax_call(lax.conv_general_dilated_patches),
        _and_numpy(_judge_patches, lambda c: polyconv.conv_general_dilated_patches(*c.operands(), **c.kwargs())),
        cases.random_patches_cases(_random_count(random_case_count), seed=12),
    )


def _judge_local(case: cases.LocalCase, got: np.ndarray) -> str | None:
    lhs, rhs = case.operands()
    lspec = local_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **case.kwargs())
    return tolerances.check_local_close(got, lhs, rhs, lspec)


def test_local_random(random_case_count: int) -> None:
    _run_all(
        _lax_call(lax.conv_general_dilated_local),
        _and_numpy(_judge_local, lambda c: polyconv.conv_general_dilated_local(*c.operands(), **c.kwargs())),
        cases.random_local_cases(_random_count(random_case_count), seed=13),
    )


def test_patches_order_is_channel_major() -> None:
    x = np.arange(2 * 3.0).reshape(1, 2, 3)  # NCW: channels 0..2 and 3..5
    got = reference.conv_general_dilated_patches(x, (2,), (1,), "VALID")
    np.testing.assert_array_equal(got[0], [[0, 1], [1, 2], [3, 4], [4, 5]])


# -- the gradients of conv_general_dilated -----------------------------------------

def _cotangent(case: cases.ConvCase, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return cases.make_operand(np.random.default_rng(case.seed + 1), shape, dtype)


def _jax_vjp(case: cases.ConvCase) -> tuple:
    """The ``call`` of ``jax.vjp`` of ``jax.lax.conv_general_dilated`` (see :func:`_results`)."""
    lhs, rhs = case.operands()
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **case.kwargs())
    kw = lax_kwargs(case.kwargs())

    def grads(x, w, g):
        return jax.vjp(lambda x, w: lax.conv_general_dilated(x, w, **kw), x, w)[1](g)

    return grads, (lhs, rhs, _cotangent(case, spec.out_shape, spec.out_dtype))


def _judge_vjp(case: cases.ConvCase, got: tuple[np.ndarray, np.ndarray]) -> str | None:
    lhs, rhs = case.operands()
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **case.kwargs())
    g = _cotangent(case, spec.out_shape, spec.out_dtype)
    return tolerances.check_vjp_close(*got, lhs, rhs, g, spec)


@pytest.fixture(scope="module")
def vjp_grid_results(_x64, request: pytest.FixtureRequest) -> dict:
    return prefetch(request, "test_vjp_grid", _jax_vjp)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``test_vjp_grid`` takes the odd-numbered cases of the curated grid: the JAX
    backend's whole conformance run (CI's) checks the even-numbered ones (its ``vjp`` grid,
    every other case, is ``jax.vjp`` through polyconv) against the same
    reference, so together they cover the whole grid; every case with
    ``--polyconv-thorough``."""
    if metafunc.function.__name__ == "test_vjp_grid":
        from polyconv.conformance.plugin import thorough

        grid = cases.grid()
        metafunc.parametrize("case", grid if thorough(metafunc.config) else grid[1::2], ids=str)


def test_vjp_grid(case: cases.ConvCase, vjp_grid_results: dict) -> None:
    problem = _and_numpy(_judge_vjp, _numpy_vjp)(case, result(vjp_grid_results[case.name]))
    assert problem is None, f"{case!r}: reference and jax.vjp disagree: {problem}"


def test_vjp_random(random_case_count: int) -> None:
    case_list = cases.random_cases(_random_count(random_case_count), seed=2025)
    _run_all(_jax_vjp, _and_numpy(_judge_vjp, _numpy_vjp), case_list)


@pytest.mark.parametrize("case", cases.grid(), ids=str)
def test_vjp_adjoint_identities(case: cases.ConvCase) -> None:
    # <conv(x, w), y> == <x, lhs_ct(y)> == <w, rhs_ct(y)>, on the reference alone
    x, w = case.operands()
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **case.kwargs())
    y = _cotangent(case, spec.out_shape, spec.out_dtype)
    out = reference.conv_from_spec(x, w, spec)
    lhs_ct, rhs_ct = reference.vjp_from_spec(x, w, y, spec)
    assert lhs_ct.shape == x.shape and rhs_ct.shape == w.shape
    forward = np.sum(out * y)
    scale = np.sum(reference.conv_from_spec(np.abs(x), np.abs(w), spec) * np.abs(y))  # sum of |products|
    for name, value in (("lhs", np.sum(x * lhs_ct)), ("rhs", np.sum(w * rhs_ct))):
        assert abs(value - forward) <= 1e-10 * scale + 1e-300, (name, value, forward, scale)


def test_vjp_checks_the_cotangent_shape() -> None:
    x, w = np.ones((1, 2, 5)), np.ones((3, 2, 2))
    with pytest.raises(ConvShapeError, match="cotangent"):
        reference.conv_general_dilated_vjp(x, w, np.ones((1, 3, 5)), (1,), "VALID")


def test_new_reference_results_are_wide() -> None:
    x = np.ones((1, 5, 2), np.float32)
    w = np.ones((2, 2, 3), np.float32)
    assert reference.conv_transpose(x, w, (2,), "SAME").dtype == np.float64
    xi = x.astype(np.int8).transpose(0, 2, 1)
    assert reference.conv_general_dilated_patches(xi, (2,), (1,), "VALID").dtype == np.int64
    wl = np.ones((3, 4, 4), np.complex64)
    xc = x.astype(np.complex64).transpose(0, 2, 1)
    assert reference.conv_general_dilated_local(xc, wl, (1,), "VALID", (2,)).dtype == np.complex128
    lhs_ct, rhs_ct = reference.conv_general_dilated_vjp(
        xi, np.ones((3, 2, 2), np.int8), np.ones((1, 3, 4), np.int8), (1,), "VALID"
    )
    assert lhs_ct.dtype == rhs_ct.dtype == np.int64
    assert math.prod(lhs_ct.shape) == 10
