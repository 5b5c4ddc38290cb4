"""Every op on every installed backend against the reference, case by case.

The curated grids of :mod:`polyconv.conformance.cases` (the forward grid:
every layout family, 0-3 spatial dims, every padding kind, dilations, groups,
batch groups, zero sizes; the transposed-convolution grid; the dtype grid)
and seeded random cases run through :mod:`polyconv.conformance.checks` on
each backend: operands made by the backend, the public function called with
``backend=``, the result's type, device, shape, dtype and values judged
against the reference, the operands checked unchanged.  A case the backend's
manifest excludes must raise the promised polyconv error; that counts as
checked, not skipped.  Backends that are not installed skip with the reason.

JAX compiles every new shape (about 70 ms each on the CPU, whatever the
size), so its grids run under ``jax.jit`` in batches of cases, one
compilation per batch (:func:`polyconv.conformance.checks.run_batched`), plus
an eager sample of every grid; JAX runs with 64-bit types enabled, so its
float64, int64 and complex128 cases compute in those types.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from polyconv.conformance import cases, checks

from polyconv.registry import registry

BACKENDS = ("numpy", "torch", "array_api")  # case by case, eagerly; JAX below

_GRID = cases.grid()
_DTYPE_GRID = cases.dtype_grid()
_PLAIN_DTYPE_GRID = [c for c in _DTYPE_GRID if c.preferred_element_type is None]  # patches and local have none
_RANDOM_DTYPES = [d for d in cases.DTYPES if d != "bfloat16"]


def _random_convs(count: int, seed: int, dtypes: list[str] = _RANDOM_DTYPES) -> list[cases.ConvCase]:
    rng = np.random.default_rng(seed)
    return [cases.random_case(rng, dtype=str(rng.choice(dtypes)), index=i) for i in range(count)]


def _random_transposes(count: int) -> list[cases.TransposeCase]:
    rng = np.random.default_rng(31)
    return [cases.random_transpose_case(rng, str(rng.choice(_RANDOM_DTYPES)), i) for i in range(count)]


def _random_vjps(count: int) -> list[cases.ConvCase]:
    return _random_convs(count, 47, [d for d in _RANDOM_DTYPES if d != "bool"])


def _random_patches_and_locals(count: int) -> list[tuple[Any, Any]]:
    """``(check builder, case)``: ``count`` random patches cases, then as many local ones."""
    return ([(checks.patches_check, c) for c in cases.random_patches_cases(count, seed=41)]
            + [(checks.local_check, c) for c in cases.random_local_cases(count, seed=43)])


def _load(name: str) -> Any:
    backend = registry.try_load(name)
    if backend is None:
        rec = registry.records().get(name)
        why = rec.reason if rec is not None else "not registered (its entry point is not installed)"
        pytest.skip(reason=f"backend {name!r} is not available: {why}")
    return backend


@pytest.fixture(scope="module", params=BACKENDS)
def be(request: pytest.FixtureRequest) -> Any:
    return _load(request.param)


def _needs(case: Any) -> None:
    if "bfloat16" in (case.dtype, getattr(case, "preferred_element_type", None)):
        pytest.importorskip("ml_dtypes", reason="bfloat16 operands are made with ml_dtypes")


def _assert(outcome: checks.Outcome, case: Any) -> None:
    assert outcome, f"{case!r}: {outcome.detail}"


# -- conv_general_dilated ------------------------------------------------------------

@pytest.mark.parametrize("case", _GRID, ids=str)
def test_conv_grid(be: Any, case: cases.ConvCase) -> None:
    _assert(checks.check_conv(be, case), case)


@pytest.mark.parametrize("case", _DTYPE_GRID, ids=str)
def test_conv_every_dtype(be: Any, case: cases.ConvCase) -> None:
    _needs(case)
    _assert(checks.check_conv(be, case), case)


def test_conv_random_in_every_dtype(be: Any, random_case_count: int) -> None:
    for case in _random_convs(random_case_count, 1234):
        _assert(checks.check_conv(be, case), case)


def test_conv_beyond_three_spatial_dims(be: Any) -> None:
    """4 and 5 spatial dims (JAX's own limit is 3, XLA's is not; PyTorch sums 3-d convolutions)."""
    rng = np.random.default_rng(99)
    for i in range(60):
        case = cases.random_case(rng, dtype="float64", max_spatial=5, index=i)
        _assert(checks.check_conv(be, case), case)


# -- conv_transpose -------------------------------------------------------------------

@pytest.mark.parametrize("case", cases.transpose_grid(), ids=str)
def test_transpose_grid(be: Any, case: cases.TransposeCase) -> None:
    _assert(checks.check_transpose(be, case), case)


def test_transpose_random_in_every_dtype(be: Any, random_case_count: int) -> None:
    for case in _random_transposes(random_case_count):
        _assert(checks.check_transpose(be, case), case)


@pytest.mark.parametrize("nd", [4, 5])
def test_transpose_beyond_three_spatial_dims(be: Any, nd: int) -> None:
    """JAX has no default layout here; polyconv's is channels-last."""
    case = cases.TransposeCase(
        name=f"transpose-{nd}d", lhs_shape=(1, *([3] * nd), 2), rhs_shape=(*([2] * nd), 3, 2),
        strides=(2,) * nd, padding="SAME", transpose_kernel=True, seed=nd,
    )
    _assert(checks.check_transpose(be, case), case)


# -- patches and local ------------------------------------------------------------------

@pytest.mark.parametrize("case", _GRID, ids=str)
def test_patches_grid(be: Any, case: cases.ConvCase) -> None:
    patches = cases.patches_case_of(case)
    _assert(checks.check_patches(be, patches), patches)


@pytest.mark.parametrize("case", _GRID, ids=str)
def test_local_grid(be: Any, case: cases.ConvCase) -> None:
    local = cases.local_case_of(case)
    _assert(checks.check_local(be, local), local)


@pytest.mark.parametrize("case", _PLAIN_DTYPE_GRID, ids=str)
def test_patches_and_local_every_dtype(be: Any, case: cases.ConvCase) -> None:
    _needs(case)
    for derived, check in ((cases.patches_case_of(case), checks.check_patches),
                           (cases.local_case_of(case), checks.check_local)):
        _assert(check(be, derived), derived)


def test_patches_and_local_random(be: Any, random_case_count: int) -> None:
    for build, case in _random_patches_and_locals(max(300, random_case_count // 2)):
        _assert(checks.run(be, build(be, case)), case)


# -- gradients --------------------------------------------------------------------------

@pytest.mark.parametrize("case", _GRID, ids=str)
def test_vjp_grid(be: Any, case: cases.ConvCase) -> None:
    _assert(checks.check_vjp(be, case), case)


@pytest.mark.parametrize("case", _DTYPE_GRID, ids=str)
def test_vjp_every_dtype(be: Any, case: cases.ConvCase) -> None:
    _needs(case)
    _assert(checks.check_vjp(be, case), case)


def test_vjp_random(be: Any, random_case_count: int) -> None:
    for case in _random_vjps(random_case_count):
        _assert(checks.check_vjp(be, case), case)


# -- JAX: every grid under jax.jit, in batches, and an eager sample -----------------------

@pytest.fixture(scope="module")
def jax_be() -> Iterator[Any]:
    backend = _load("jax")
    import jax

    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield backend
    jax.config.update("jax_enable_x64", previous)


def _jax_grid(name: str, count: int) -> list[tuple[Any, Any]]:
    """``(check builder, case)`` pairs of one grid (random sets of ``count`` cases)."""
    grids: dict[str, Any] = {
        "conv": lambda: [(checks.conv_check, c) for c in _GRID + _DTYPE_GRID],
        "conv-random": lambda: [(checks.conv_check, c) for c in _random_convs(count, 1234)],
        "transpose": lambda: [(checks.transpose_check, c) for c in cases.transpose_grid()],
        "transpose-random": lambda: [(checks.transpose_check, c) for c in _random_transposes(count)],
        "patches": lambda: [(checks.patches_check, cases.patches_case_of(c)) for c in _GRID + _PLAIN_DTYPE_GRID],
        "local": lambda: [(checks.local_check, cases.local_case_of(c)) for c in _GRID + _PLAIN_DTYPE_GRID],
        "patches-local-random": lambda: _random_patches_and_locals(count // 2),
        "vjp": lambda: [(checks.vjp_check, c) for c in _GRID + _DTYPE_GRID],
        "vjp-random": lambda: [(checks.vjp_check, c) for c in _random_vjps(count)],
    }
    return grids[name]()


_JAX_GRIDS = ("conv", "conv-random", "transpose", "transpose-random", "patches", "local",
              "patches-local-random", "vjp", "vjp-random")


def _jit(options: dict[str, Any]) -> Any:
    """``jax.jit``, compiled with XLA ``options`` for the arguments of the first call."""
    import jax

    def transform(f: Any) -> Any:
        jitted = jax.jit(f)
        return lambda *args: jitted.lower(*args).compile(options)(*args)

    return transform


@pytest.mark.parametrize("grid", _JAX_GRIDS)
def test_jax_grid_under_jit(jax_be: Any, grid: str, random_case_count: int) -> None:
    # a quarter of the other backends' random cases: each costs a compilation here (x10 when thorough)
    pairs = _jax_grid(grid, random_case_count // 4)
    # Compiling is most of the time; LLVM optimisation level 0 compiles about 3x faster, but the
    # patches' identity-kernel convolutions (many feature groups) then run 10x slower than they compile.
    transform = _jit({} if "patches" in grid or "local" in grid else {"xla_backend_optimization_level": 0})
    batch = 64
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        outcomes = checks.run_batched(jax_be, [build(jax_be, case) for build, case in chunk], transform)
        for outcome, (_, case) in zip(outcomes, chunk):
            _assert(outcome, case)


@pytest.mark.parametrize("grid", [g for g in _JAX_GRIDS if "random" not in g])
def test_jax_grid_eager_sample(jax_be: Any, grid: str) -> None:
    """Every 16th case of each curated grid, op by op as a user calls it."""
    for build, case in _jax_grid(grid, 0)[::16]:
        _assert(checks.run(jax_be, build(jax_be, case)), case)


# -- the checks themselves can fail -----------------------------------------------------

def test_checks_catch_a_wrong_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend that adds one to every result, mutates its input, or answers
    on the wrong dtype fails the check, each for its reason."""
    numpy_backend = registry.load("numpy")
    case = _GRID[0]
    real = type(numpy_backend).conv_general_dilated

    def off_by_one(self: Any, lhs: Any, rhs: Any, spec: Any) -> Any:
        return real(self, lhs, rhs, spec) + 1

    def mutating(self: Any, lhs: Any, rhs: Any, spec: Any) -> Any:
        out = real(self, lhs, rhs, spec)
        lhs[...] = 0
        return out

    def upcast(self: Any, lhs: Any, rhs: Any, spec: Any) -> Any:
        return real(self, lhs, rhs, spec).astype(np.complex128)

    for wrong, reason in ((off_by_one, "worst"), (mutating, "modified its lhs"), (upcast, "dtype complex128")):
        monkeypatch.setattr(type(numpy_backend), "conv_general_dilated", wrong)
        outcome = checks.check_conv(numpy_backend, case)
        assert outcome.status == "fail" and reason in outcome.detail, (wrong.__name__, outcome)
