"""The NumPy backend's strategies: each is chosen for the shapes it is meant
for, equals the reference on many random cases of its own family, and keeps
its temporary memory bounded.  No timing is asserted."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from polyconv.backends.numpy import depthwise, offsets, small, strategy
from polyconv.backends.numpy.views import input_view, kernel_view, output_view
from polyconv.bench import calls as bench_calls
from polyconv.conformance import cases, reference, tolerances

import polyconv
from polyconv import bench, ops
from polyconv.spec import conv_spec
from polyconv.spec.canonical import problem as canonical_problem

_SPATIAL = "DHW"
_FLOAT_DTYPES = ["float32", "float64", "float16", "complex64", "complex128"] + (
    ["bfloat16"] if importlib.util.find_spec("ml_dtypes") else []
)
# (integer operands with a floating result take the fast paths too; unsigned ones here because the
# conformance tolerance takes np.abs of the operands, which wraps at a signed type's minimum)
_PREFERRED = [("float16", "float32"), ("float32", "float64"), ("uint8", "float32"), ("bool", "float64"),
              ("uint16", "float64"), ("complex64", "complex128")]


def _layout(rng: np.random.Generator, nd: int) -> tuple[str, str, str]:
    sp = _SPATIAL[3 - nd :]
    choices = [
        (f"NC{sp}", f"OI{sp}", f"NC{sp}"),
        (f"N{sp}C", f"{sp}IO", f"N{sp}C"),
        (f"C{sp[::-1]}N", f"I{sp}O", f"{sp}NC"),
        (f"N{sp}C", f"OI{sp}", f"NC{sp}"),
    ]
    return choices[int(rng.integers(len(choices)))]


@dataclasses.dataclass
class Case:
    """A convolution call: operands' shapes, dtypes and the keyword arguments."""

    lhs_shape: tuple[int, ...]
    rhs_shape: tuple[int, ...]
    dtype: str
    kwargs: dict[str, Any]

    def operands(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        return cases.make_operand(rng, self.lhs_shape, self.dtype), cases.make_operand(rng, self.rhs_shape, self.dtype)

    def spec(self) -> Any:
        lhs, rhs = self.operands(0)
        return conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **self.kwargs)


def _case(rng: np.random.Generator, *, nd: int, batch: int, groups: int, cg: int, og: int, sizes: list[int],
          window: list[int], strides: list[int], dilation: list[int], padding: list[tuple[int, int]],
          lhs_dilation: list[int] | None = None, batch_groups: bool = False) -> Case:
    lhs_spec, rhs_spec, out_spec = _layout(rng, nd)
    sp = _SPATIAL[3 - nd :]
    n = batch * groups if batch_groups else batch
    c = cg if batch_groups else groups * cg
    lhs_sizes = {"N": n, "C": c, **dict(zip(sp, sizes))}
    rhs_sizes = {"O": groups * og, "I": cg, **dict(zip(sp, window))}
    if rng.random() < 0.25:
        dtype, preferred = _PREFERRED[int(rng.integers(len(_PREFERRED)))]
    else:
        dtype, preferred = _FLOAT_DTYPES[int(rng.integers(len(_FLOAT_DTYPES)))], None
    kwargs: dict[str, Any] = dict(
        window_strides=tuple(strides), padding=tuple(padding), rhs_dilation=tuple(dilation),
        dimension_numbers=(lhs_spec, rhs_spec, out_spec),
        feature_group_count=1 if batch_groups else groups, batch_group_count=groups if batch_groups else 1,
        preferred_element_type=preferred,
    )
    if lhs_dilation is not None:
        kwargs["lhs_dilation"] = tuple(lhs_dilation)
    return Case(tuple(lhs_sizes[a] for a in lhs_spec), tuple(rhs_sizes[a] for a in rhs_spec), dtype, kwargs)


def _valid(case: Case) -> bool:
    try:
        spec = case.spec()
    except Exception:  # a padding that leaves a negative output size
        return False
    return 0 not in spec.out_shape


def _family(rng: np.random.Generator, family: str) -> Case:
    """A random case meant for ``family``'s strategy."""
    while True:
        nd = int(rng.integers(1, 4))
        kw: dict[str, Any] = dict(
            nd=nd, batch=int(rng.integers(1, 4)), groups=int(rng.integers(1, 4)),
            sizes=[int(rng.integers(3, 10 if nd < 3 else 7)) for _ in range(nd)],
            strides=[int(rng.integers(1, 4)) for _ in range(nd)],
            dilation=[int(rng.integers(1, 4)) for _ in range(nd)],
            padding=[(int(rng.integers(-2, 4)), int(rng.integers(-2, 4))) for _ in range(nd)],
            batch_groups=bool(rng.random() < 0.15),
        )
        if family in ("offsets", "polyphase"):
            kw["cg"], kw["og"] = int(rng.integers(2, 6)), int(rng.integers(1, 7))
            if rng.random() < 0.2:  # one input channel, too many outputs for the depthwise strategy
                kw["cg"], kw["og"] = 1, int(rng.integers(depthwise.MAX_MULTIPLIER + 1, 9))
            kw["window"] = [int(rng.integers(1, 5)) for _ in range(nd)]
            if all(k == 1 for k in kw["window"]):
                kw["window"][0] = 2
        elif family == "depthwise":
            kw["cg"], kw["og"] = 1, int(rng.integers(1, depthwise.MAX_MULTIPLIER + 1))
            kw["groups"] = int(rng.integers(1, 7))
            kw["window"] = [int(rng.integers(1, 5)) for _ in range(nd)]
            if all(k == 1 for k in kw["window"]):
                kw["window"][0] = 3
        elif family == "pointwise":
            kw["cg"], kw["og"] = int(rng.integers(1, 6)), int(rng.integers(1, 7))
            kw["window"] = [1] * nd
            kw["dilation"] = [1] * nd
            kw["padding"] = [(int(rng.integers(-2, 1)), int(rng.integers(-2, 1))) for _ in range(nd)]
        if family == "polyphase":
            kw["lhs_dilation"] = [int(rng.integers(1, 4)) for _ in range(nd)]
            kw["lhs_dilation"][int(rng.integers(nd))] = int(rng.integers(2, 4))
        case = _case(rng, **kw)
        if _valid(case):
            return case


@pytest.fixture
def no_small(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every convolution takes a strategy other than ``small``."""
    monkeypatch.setattr(small, "MAX_ELEMENTS", 0)
    strategy.choose.clear()
    yield
    strategy.choose.clear()


@pytest.fixture(params=["default", "tiny"])
def workspace(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, no_small: None) -> Iterator[str]:
    """Default chunk budgets, or tiny ones (many chunks: row ranges, group ranges)."""
    if request.param == "tiny":
        monkeypatch.setattr(offsets, "WORKSPACE_BYTES", 1500)
        monkeypatch.setattr(depthwise, "WORKSPACE_BYTES", 300)
    offsets.plan.clear()
    depthwise.plan.clear()
    strategy.choose.clear()
    yield request.param
    offsets.plan.clear()
    depthwise.plan.clear()
    strategy.choose.clear()


def _check(case: Case, seed: int) -> strategy.Choice:
    lhs, rhs = case.operands(seed)
    lhs0, rhs0 = lhs.copy(), rhs.copy()
    spec = case.spec()
    out = polyconv.conv_general_dilated(lhs, rhs, **case.kwargs)
    assert type(out) is np.ndarray and out.shape == spec.out_shape and out.flags.c_contiguous
    assert str(out.dtype) == spec.out_dtype
    tolerances.assert_close(out, lhs, rhs, spec)
    np.testing.assert_array_equal(lhs, lhs0)
    np.testing.assert_array_equal(rhs, rhs0)
    return strategy.choose(spec)


@pytest.mark.parametrize("family", ["offsets", "depthwise", "pointwise"])
def test_each_strategy_matches_the_reference_on_its_family(family: str, workspace: str) -> None:
    rng = np.random.default_rng(["offsets", "depthwise", "pointwise"].index(family))
    for i in range(120):
        case = _family(rng, family)
        choice = _check(case, i)
        assert choice.name == family, (case, choice.name)


def test_every_level_of_the_shifted_window_plan_matches_the_reference(workspace: str) -> None:
    """:func:`offsets.plan` at each level, not only the one its rule picks (which,
    on these small channel counts, is nearly always the deepest): strided, dilated
    axes whose phases start past shift 0 among the slid ones included."""
    rng = np.random.default_rng(21)
    budget = 1500 if workspace == "tiny" else None
    slid_start = 0
    for i in range(60):
        case = _family(rng, "offsets")
        spec = case.spec()
        operands = case.operands(i)
        wide = np.dtype(np.complex128 if any(np.iscomplexobj(a) for a in operands) else np.float64)
        lhs, rhs = (a.astype(wide) for a in operands)
        kwargs = {k: v for k, v in case.kwargs.items() if k != "preferred_element_type"}
        want = reference.conv_general_dilated(lhs, rhs, **kwargs)
        p = canonical_problem(spec)
        if p.empty:
            continue
        for level in range(p.nspatial + 1):
            plan = offsets.plan(p, wide.itemsize, level, budget)
            slid_start += any(ph.q0 > 0 for plane in plan.geo.planes for ph in plane[:level])
            out = np.full(spec.out_shape, np.nan, wide)
            offsets.run(plan, input_view(lhs, spec), kernel_view(rhs, spec), output_view(out, spec), wide)
            np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-10 * max(1.0, float(np.abs(want).max())),
                                       err_msg=f"level {level} of {case}")
    assert slid_start >= 3  # the case of a slid phase starting past shift 0 was drawn


def test_the_level_is_the_one_the_cost_model_prices_lowest() -> None:
    """The level trades the additions of the products it saves against the copies it makes:
    many outputs over few channels concatenate taps, few outputs over many channels do not."""
    from polyconv.backends.numpy.geometry import geometry

    from polyconv.spec.canonical import Problem

    def level(cg: int, og: int, size: tuple[int, ...], window: tuple[int, ...], stride: int = 1) -> int:
        n = len(size)
        out = tuple(-(-s // stride) for s in size)
        p = Problem(4, 1, cg, og, size, window, out, (stride,) * n, (1,) * n, tuple(k // 2 for k in window))
        chosen = offsets.plan(p, 4).level
        priced = [offsets.level_seconds(p, geometry(p), j) for j in range(n + 1)]
        assert priced[chosen] <= min(priced) * (1 + offsets.LEVEL_TOLERANCE)  # the cheapest, within the tolerance
        assert all(t > min(priced) * (1 + offsets.LEVEL_TOLERANCE) for t in priced[chosen + 1:])  # the deepest such
        return chosen

    assert level(64, 64, (56, 56), (3, 3)) == 1  # the three taps of a row, K = 192
    assert level(128, 32, (28, 28), (3, 3)) == 2  # one product per tap, K = 128
    assert level(16, 32, (32, 32, 32), (3, 3, 3)) == 1  # nine taps, K = 144
    assert level(3, 64, (224, 224), (7, 7), stride=2) == 0  # every tap of every phase
    assert level(128, 128, (2048,), (5,)) == 1  # priced within 2% of level 0: the deeper one


def test_polyphase_matches_the_reference(workspace: str) -> None:
    rng = np.random.default_rng(11)
    seen = set()
    for i in range(150):
        case = _family(rng, "polyphase")
        choice = _check(case, i)
        assert choice.name == "polyphase"
        seen.update(choice.parts)
    assert {"offsets", "zeros"} <= seen


def test_small_matches_the_reference() -> None:
    rng = np.random.default_rng(5)
    count = 0
    for i in range(300):
        case = _family(rng, str(rng.choice(["offsets", "depthwise", "pointwise", "polyphase"])))
        if strategy.choose(case.spec()).name != "small":
            continue
        _check(case, i)
        count += 1
    assert count > 100


def test_chunk_budget_is_honoured() -> None:
    """Whole images, row ranges and group ranges each stay within their budget."""
    from polyconv.backends.numpy.geometry import geometry

    from polyconv.spec.canonical import Problem

    p = Problem(batch=3, groups=4, cg=2, og=3, sizes=(40, 30), window=(3, 3), out=(40, 30), strides=(1, 1),
                dilation=(1, 1), low=(1, 1))
    geo = geometry(p)
    for budget in (10**9, 200_000, 20_000, 3_000):
        chunks = geo.chunks(10, budget)
        covered = {(n, g, y) for c in chunks for n in range(c.n0, c.n1) for g in range(c.g0, c.g1)
                   for y in range(c.a, c.b)}
        assert len(covered) == 3 * 4 * 40 == sum(c.images * c.groups * (c.b - c.a) for c in chunks)
        for c in chunks:
            if c.groups > 1 or c.b - c.a > 1:
                assert c.groups * 10 * geo.slab_columns(c) <= max(budget, 10 * 8 * (8 + 2) * geo.flat[0])


def _fake_sysfs(root: Any, caches: list[tuple[str, str, str]]) -> str:
    """A directory laid out as Linux's ``cpu0/cache``: one ``indexN`` per (level, type, size)."""
    for i, (level, kind, size) in enumerate(caches):
        entry = root / f"index{i}"
        entry.mkdir(parents=True)
        for name, text in (("level", level), ("type", kind), ("size", size)):
            (entry / name).write_text(text + "\n")
    return str(root)


def test_depthwise_chunks_are_sized_to_the_l2_cache(tmp_path: Any) -> None:
    """The L2 cache is found among the others as sysfs lists them; an unreadable tree gives None;
    the depthwise budget is the L2 within its bounds, and the module's budget is that of this machine."""
    from polyconv.backends.numpy import caches

    intel = _fake_sysfs(tmp_path / "intel", [("1", "Data", "48K"), ("1", "Instruction", "32K"),
                                             ("2", "Unified", "2048K"), ("3", "Unified", "307200K")])
    assert caches.l2_bytes(intel) == 2 << 20
    zen = _fake_sysfs(tmp_path / "zen", [("1", "Data", "32K"), ("2", "Unified", "1024K")])
    assert caches.l2_bytes(zen) == 1 << 20
    assert caches.l2_bytes(_fake_sysfs(tmp_path / "l1only", [("1", "Data", "32K")])) is None
    assert caches.l2_bytes(_fake_sysfs(tmp_path / "garbled", [("2", "Unified", "lots")])) is None
    assert caches.l2_bytes(str(tmp_path / "absent")) is None
    assert [caches.parse_size(t) for t in ("2048K", "1M", "1MiB", "512", "", "K")] == \
        [2 << 20, 1 << 20, 1 << 20, 512, None, None]
    assert depthwise._workspace_bytes(None) == depthwise.MAX_WORKSPACE_BYTES
    assert depthwise._workspace_bytes(256 << 10) == depthwise.MIN_WORKSPACE_BYTES
    assert depthwise._workspace_bytes(3 << 20) == 3 << 20
    assert depthwise._workspace_bytes(64 << 20) == depthwise.MAX_WORKSPACE_BYTES
    assert depthwise.WORKSPACE_BYTES == depthwise._workspace_bytes(caches.l2_bytes())


_EXPECTED = {
    "resnet": "offsets", "stem": "offsets", "pointwise": "pointwise", "depthwise": "depthwise",
    "grouped": "offsets", "dilated": "offsets", "1-d": "offsets", "3-d": "offsets", "transposed": "polyphase",
    "tiny": "small", "large": "fft",  # the cost model's defaults: tests read no user calibration
}


def _bench_spec(shape: bench.Shape) -> Any:
    """The spec that the bench's polyconv call makes for ``shape``."""
    captured = {}

    class Spy:
        def conv_general_dilated(self, lhs: Any, rhs: Any, *args: Any, **kwargs: Any) -> Any:
            captured["spec"] = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, *args, **kwargs)

        def conv_transpose(self, lhs: Any, rhs: Any, strides: Any, padding: Any, **kwargs: Any) -> Any:
            from polyconv.spec import conv_transpose_spec

            captured["spec"] = conv_transpose_spec(
                lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, strides, padding, kwargs["rhs_dilation"],
                kwargs["dimension_numbers"], kwargs["transpose_kernel"], None, None, False).conv

    x = np.empty(shape.lhs, np.float32)
    w = np.empty(shape.rhs, np.float32)
    bench_calls.lax_style_call(Spy(), shape, x, w)()
    return captured["spec"]


@pytest.mark.parametrize("shape", bench.SUITE, ids=lambda s: s.name)
def test_bench_shapes_take_their_strategy(shape: bench.Shape) -> None:
    expected = next(v for k, v in _EXPECTED.items() if shape.name.startswith(k))
    choice = strategy.choose(_bench_spec(shape))
    assert choice.name == expected
    if expected == "polyphase":  # four output phases, each a 2x2 convolution
        assert choice.parts == ("offsets",) * 4


def test_integer_and_bool_take_the_exact_gather_gemm() -> None:
    for dtype in ("int8", "int32", "uint64", "bool"):
        spec = conv_spec((2, 3, 9, 9), (4, 3, 3, 3), dtype, dtype, (1, 1), "SAME")
        assert strategy.choose(spec).name == "gemm"
    spec = conv_spec((2, 3, 9, 9), (4, 3, 3, 3), "int8", "int8", (1, 1), "SAME", preferred_element_type="float32")
    assert strategy.choose(spec).name != "gemm"  # floating accumulation: a fast path


def test_empty_convolutions_are_zeros() -> None:
    spec = conv_spec((2, 0, 5), (3, 0, 2), "float32", "float32", (1,), "VALID")
    assert strategy.choose(spec).name == "zeros"
    out = polyconv.conv_general_dilated(np.ones((2, 0, 5), np.float32), np.ones((3, 0, 2), np.float32), (1,), "VALID")
    assert out.shape == (2, 3, 4) and not out.any()


def test_the_runner_is_cached_with_the_call() -> None:

    lhs = np.ones((1, 1, 8, 8), np.float32)
    rhs = np.ones((1, 1, 3, 3), np.float32)
    ops.calls.clear()  # only this call's decision (other tests cache ops without runners)
    polyconv.conv_general_dilated(lhs, rhs, (1, 1), "SAME")
    runners = [hit[2] for _, hit in ops.calls.items() if hit[0].name == "numpy"]
    assert runners and all(callable(r) for r in runners)
    out = polyconv.conv_general_dilated(lhs, rhs, (1, 1), "SAME")
    assert out[0, 0, 0, 0] == 4 and out[0, 0, 3, 3] == 9


# -- memory ---------------------------------------------------------------------

def _peak_extra(fn: Any) -> tuple[Any, int]:
    """``fn()`` and the peak bytes it allocated beyond its result (the bench's measure)."""
    from polyconv.bench import peak_extra_bytes

    results: list[Any] = []
    extra = peak_extra_bytes(lambda: results.append(fn()) or results[-1])
    return results[-1], extra


def _spot_check(out: np.ndarray, lhs: np.ndarray, rhs: np.ndarray, spec: Any) -> None:
    """The top-left corner of ``out`` (NCHW, 2-d) against the reference on a crop of the first image."""
    side = 24
    crop = lhs[:1, :, :side, :side]
    pads = tuple((lo, 0) for lo, _ in spec.padding)
    sub = conv_spec(crop.shape, rhs.shape, crop.dtype, rhs.dtype, spec.window_strides, pads, spec.lhs_dilation,
                    spec.rhs_dilation, feature_group_count=spec.feature_group_count)
    # outputs whose windows end inside the crop's (dilated) extent are the same as the full convolution's
    m = min(((side - 1) * ld + lo - (k - 1) * d) // s + 1
            for ld, (lo, _), k, d, s in zip(spec.lhs_dilation, spec.padding, spec.window, spec.rhs_dilation,
                                            spec.window_strides))
    assert m >= 4
    want = reference.conv_from_spec(crop, rhs, sub)[:, :, :m, :m]
    tol = 4e-3 if out.dtype == np.float16 else 1e-4
    got = out[:1, :, :m, :m].astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * float(np.abs(want).max()))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["offsets", "depthwise", "polyphase", "strided", "pointwise"])
def test_extra_memory_is_bounded_whatever_the_size(kind: str) -> None:
    """The memory a call allocates beyond its result stays under a fixed bound
    (chunks: buffers, not copies of the input) at two sizes, one four times the
    other; values are spot-checked against the reference."""
    rng = np.random.default_rng(0)
    bound = 48 << 20
    peaks = []
    for side in (256, 512):
        if kind == "depthwise":
            lhs = rng.standard_normal((2, 64, side, side), dtype=np.float32)
            rhs = rng.standard_normal((64, 1, 3, 3), dtype=np.float32)
            kw: dict[str, Any] = dict(window_strides=(1, 1), padding="SAME", feature_group_count=64)
        elif kind == "polyphase":
            lhs = rng.standard_normal((2, 32, side // 2, side // 2), dtype=np.float32)
            rhs = rng.standard_normal((16, 32, 4, 4), dtype=np.float32)
            kw = dict(window_strides=(1, 1), padding=((2, 2), (2, 2)), lhs_dilation=(2, 2))
        elif kind == "pointwise":  # float16 operands: a float32 copy of the input would exceed the bound
            lhs = rng.standard_normal((1, 16, 2 * side, 4 * side)).astype(np.float16)
            rhs = rng.standard_normal((16, 16, 1, 1)).astype(np.float16)
            kw = dict(window_strides=(1, 1), padding="VALID")
        elif kind == "strided":
            lhs = rng.standard_normal((2, 3, 2 * side, 2 * side), dtype=np.float32)
            rhs = rng.standard_normal((32, 3, 7, 7), dtype=np.float32)
            kw = dict(window_strides=(2, 2), padding=((3, 3), (3, 3)))
        else:
            lhs = rng.standard_normal((2, 32, side, side), dtype=np.float32)
            rhs = rng.standard_normal((32, 32, 3, 3), dtype=np.float32)
            kw = dict(window_strides=(1, 1), padding="SAME")
        spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **kw)
        assert strategy.choose(spec).name == kind.replace("strided", "offsets")
        out, extra = _peak_extra(lambda: polyconv.conv_general_dilated(lhs, rhs, **kw))  # noqa: B023
        peaks.append(extra)
        assert extra < bound, f"{kind} at {side}: peak extra {extra / 2**20:.1f} MiB (input {lhs.nbytes >> 20} MiB)"
        _spot_check(out, lhs, rhs, spec)
    assert peaks[1] < bound and peaks[0] < bound


# -- threads, scratch buffers, runners ---------------------------------------------

@pytest.mark.parametrize("groups, cg, og", [(24, 1, 1), (16, 4, 4)], ids=["depthwise", "grouped"])
def test_threads_change_nothing(monkeypatch: pytest.MonkeyPatch, groups: int, cg: int, og: int) -> None:
    """Chunks spread over threads give the same bits as on one thread."""
    rng = np.random.default_rng(3)
    lhs = rng.standard_normal((3, groups * cg, 40, 30)).astype(np.float32)
    rhs = rng.standard_normal((groups * og, cg, 3, 3)).astype(np.float32)
    kw: dict[str, Any] = dict(window_strides=(1, 2), padding=((1, 2), (0, 1)), feature_group_count=groups)
    monkeypatch.setattr(depthwise, "WORKSPACE_BYTES", 20_000)
    monkeypatch.setattr(offsets, "WORKSPACE_BYTES", 60_000)
    depthwise.plan.clear()
    offsets.plan.clear()
    strategy.choose.clear()
    try:
        spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **kw)
        choice = strategy.choose(spec)
        assert choice.name == ("depthwise" if cg == 1 else "offsets")
        results = []
        for threads in ("1", "3"):
            monkeypatch.setenv("POLYCONV_NUMPY_THREADS", threads)
            results.append(choice.run(lhs, rhs))
        np.testing.assert_array_equal(results[0], results[1])
        tolerances.assert_close(results[1], lhs, rhs, spec)
    finally:
        depthwise.plan.clear()
        offsets.plan.clear()
        strategy.choose.clear()


def test_scratch_buffers_are_reused_and_released() -> None:
    from polyconv.backends.numpy import workspace

    a = workspace.buffer("test-role", 1000, np.dtype(np.float32))
    b = workspace.buffer("test-role", 500, np.dtype(np.float64))
    assert np.shares_memory(a, b)
    workspace.release()
    c = workspace.buffer("test-role", 1000, np.dtype(np.float32))
    assert not np.shares_memory(a, c)
    big = workspace.buffer("test-role", workspace.MAX_POOLED_BYTES, np.dtype(np.float32))  # not kept
    assert not np.shares_memory(big, workspace.buffer("test-role", 10, np.dtype(np.float32)))


@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_conv_transpose_runs_through_the_backend_runner(transpose_kernel: bool) -> None:
    from polyconv.spec import conv_transpose_spec

    rng = np.random.default_rng(4)
    lhs = rng.standard_normal((2, 9, 7, 5)).astype(np.float32)  # NHWC
    rhs = rng.standard_normal((4, 3, 5, 6) if not transpose_kernel else (4, 3, 6, 5)).astype(np.float32)
    args = ((2, 3), "SAME")
    out = polyconv.conv_transpose(lhs, rhs, *args, transpose_kernel=transpose_kernel)
    tspec = conv_transpose_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, *args, None, None, transpose_kernel,
                                None, None, False)
    problem = tolerances.check_transpose_close(out, lhs, rhs, tspec)
    assert problem is None, problem
    hits = [hit for key, hit in ops.calls.items() if key[0] == "conv_transpose" and hit[0].name == "numpy"]
    assert hits and all(hit[2] is not None for hit in hits)


@pytest.mark.parametrize("strategy_name", ["small", "polyphase", "offsets", "depthwise", "fft"])
def test_non_finite_kernels_follow_the_definition_on_every_strategy(strategy_name: str, monkeypatch: Any) -> None:
    """Padding and the holes of the lhs dilation form no products (jax.lax's values): a NaN or
    infinite tap over them leaves the output what the reference says, on every strategy, hence
    whatever the problem's size; no NaN where the reference has none."""
    from polyconv import caching
    from polyconv.spec import conv_spec

    if strategy_name != "small":
        monkeypatch.setattr(small, "MAX_ELEMENTS", 0)
    caching.clear()
    rng = np.random.default_rng(3)
    seen = 0
    mode = "always" if strategy_name == "fft" else "auto"
    for _ in range(60):
        groups = 3 if strategy_name == "depthwise" else 1
        x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32 if strategy_name == "fft" else np.float64)
        w = rng.standard_normal((3 * (1 if groups > 1 else 2), 3 // groups, 3, 2)).astype(x.dtype)
        flat = w.reshape(-1)
        flat[rng.choice(flat.size, 3, replace=False)] = [np.inf, -np.inf, np.nan]
        kw = dict(window_strides=(int(rng.integers(1, 3)), 1), padding=[(2, 1), (1, 2)], feature_group_count=groups,
                  lhs_dilation=(1, 1) if strategy_name in ("offsets", "depthwise", "fft") else
                  (2, int(rng.integers(1, 4))), rhs_dilation=(int(rng.integers(1, 3)), 1))
        spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
        chosen = strategy.choose(spec, mode)
        if strategy_name != chosen.name and strategy_name not in chosen.parts:
            continue
        seen += 1
        with polyconv.use_fft(mode):
            got = polyconv.conv_general_dilated(x, w, **kw, backend="numpy")
        expected = reference.conv_from_spec(x.astype(np.float64), w.astype(np.float64), spec)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
        finite = np.isfinite(expected)
        np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-5, atol=1e-5)
        assert tolerances.check_close(got, x, w, spec) is None
    assert seen >= 20, f"only {seen} problems took the {strategy_name} strategy"
    caching.clear()


def test_the_reports_case_gives_jax_laxs_values() -> None:
    """x = ones((1, 1, 3)), w = [nan, 1], lhs_dilation 3, no padding: jax.lax and the torch backend
    give [nan, 0, 1, nan, 0, 1]; the NumPy backend did all NaN (the holes multiplied the NaN)."""
    x = np.ones((1, 1, 3))
    w = np.array([np.nan, 1.0]).reshape(1, 1, 2)
    got = polyconv.conv_general_dilated(x, w, (1,), ((0, 0),), lhs_dilation=(3,))
    np.testing.assert_array_equal(got[0, 0], [np.nan, 0.0, 1.0, np.nan, 0.0, 1.0])
    padded = polyconv.conv_general_dilated(np.ones((1, 1, 2)), np.array([np.inf, 1.0]).reshape(1, 1, 2), (1,),
                                           ((1, 0),))
    np.testing.assert_array_equal(padded[0, 0], [1.0, np.inf])  # the padding forms no inf * 0


def test_nan_kernel_with_lhs_dilation_gives_the_same_pattern_small_and_large() -> None:
    """NaN in the kernel with lhs dilation, on 8 x 3000 (polyphase) and 8 x 30 (small): the reference's pattern."""
    from polyconv.spec import conv_spec

    w = np.array([1.0, np.nan, 2.0]).reshape(1, 1, 3)
    for width in (30, 3000):
        x = np.random.default_rng(0).standard_normal((8, 1, width))
        kw = dict(window_strides=(1,), padding=[(1, 1)], lhs_dilation=(2,))
        spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
        got = polyconv.conv_general_dilated(x, w, **kw)
        expected = reference.conv_from_spec(x, w, spec)
        assert np.isnan(got).any() and not np.isnan(got).all()  # the NaN tap meets input elements and holes
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
