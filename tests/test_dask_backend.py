"""The dask backend: block planning, dispatch, laziness, and a real dask.distributed cluster.

The conformance suite checks its values on randomly chunked operands; here
are the properties the suite cannot see: the plan's index arithmetic against
brute force, that nothing computes before ``.compute()``, that the graph
grows linearly with the blocks, and runs on a ``LocalCluster`` of worker
processes on the loopback interface (started and closed by the tests),
including an input larger than the workers' memory limits.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from polyconv.backends.dask.blocks import chunk_bounds, feature_segments, pieces, plan_axis

import polyconv
from polyconv.errors import MixedArraysError

da = pytest.importorskip("dask.array", reason="the dask backend needs dask (pip install 'polyconv[dask]')")


# -- the plan, against brute force ------------------------------------------------------------

def _window_elements(o: int, size: int, window: int, stride: int, low: int, ld: int, rd: int) -> list[int]:
    """The input elements under output position ``o``'s window (brute force)."""
    out = []
    for t in range(window):
        q = o * stride + t * rd - low  # dilated-input coordinate
        if q % ld == 0 and 0 <= q // ld < size:
            out.append(q // ld)
    return out


@pytest.mark.parametrize("size", [0, 1, 2, 5, 9])
def test_plan_axis_matches_brute_force(size: int) -> None:
    """Every output position is in exactly one block, and the block's input range
    and local padding put the same input elements under each window as the global
    convolution does, for strides, both dilations and any padding."""
    chunkings = {(size,)} | {tuple(c) for c in ([1] * size, [2, size - 2], [size - 1, 1]) if all(x > 0 for x in c)}
    checked = 0
    for chunks, window, stride, ld, rd, low, high in itertools.product(
        sorted(chunkings), (1, 2, 3), (1, 2, 3), (1, 2), (1, 3), (-2, 0, 1, 3), (-1, 0, 2),
    ):
        blocks = plan_axis(size, chunks, window, stride, (low, high), ld, rd)
        dilated = (size - 1) * ld + 1 if size else 0
        reach = (window - 1) * rd + 1
        padded = low + dilated + high
        out_size = (padded - reach) // stride + 1 if padded >= reach else 0
        covered = [o for b in blocks for o in range(b.out_start, b.out_stop)]
        assert covered == list(range(out_size))
        for b in blocks:
            assert b.padding[0] >= 0 and b.padding[1] >= 0
            local_size = b.in_stop - b.in_start
            local_padded = b.padding[0] + ((local_size - 1) * ld + 1 if local_size else 0) + b.padding[1]
            assert (local_padded - reach) // stride + 1 == b.out_stop - b.out_start
            for o in range(b.out_start, b.out_stop):
                local = _window_elements(o - b.out_start, local_size, window, stride, b.padding[0], ld, rd)
                assert [b.in_start + i for i in local] == _window_elements(o, size, window, stride, low, ld, rd)
            checked += 1
    assert checked > 0 or size == 0


def test_pieces_and_segments() -> None:
    assert pieces(chunk_bounds((2, 1, 3)), 1, 5) == ((0, 1, 2), (1, 0, 1), (2, 0, 2))
    # depthwise, channel chunks of 3: every chunk is whole groups, nothing is summed
    segs = feature_segments((3, 3), groups=6, out_features=12)
    assert [(s.groups, s.out_start, s.out_stop) for s in segs] == [(3, 0, 6), (3, 6, 12)]
    # one group cut by every chunk boundary: pieces of it, all adding into the same outputs
    segs = feature_segments((1, 2, 1), groups=1, out_features=5)
    assert {(s.groups, s.out_start, s.out_stop) for s in segs} == {(0, 0, 5)}
    assert [s.kernel_in for s in segs] == [(0, 1), (1, 3), (3, 4)]


# -- dispatch and laziness ----------------------------------------------------------------------

def _operands(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 3, 17, 13)), rng.standard_normal((5, 3, 3, 2))


def test_numpy_kernel_next_to_a_dask_input() -> None:
    x, w = _operands()
    xd = da.from_array(x, chunks=(2, 2, 5, 6))
    expected = polyconv.conv_general_dilated(x, w, (2, 1), "SAME", rhs_dilation=(1, 2))
    for lhs, rhs in ((xd, w), (xd, da.from_array(w, chunks=1)), (x, da.from_array(w, chunks=2))):
        y = polyconv.conv_general_dilated(lhs, rhs, (2, 1), "SAME", rhs_dilation=(1, 2))
        assert isinstance(y, da.Array)
        np.testing.assert_allclose(y.compute(), expected, rtol=1e-12, atol=1e-12)
    assert polyconv.conv_general_dilated(xd, w, (1, 1), "VALID", backend="dask").shape == (4, 5, 15, 12)


def test_other_frameworks_are_still_refused() -> None:
    x, w = _operands()
    strict = pytest.importorskip("array_api_strict", reason="needs array-api-strict")
    with pytest.raises(MixedArraysError, match="lhs is a dask.array"):
        polyconv.conv_general_dilated(da.from_array(x), strict.asarray(w), (1, 1), "VALID")
    with pytest.raises(MixedArraysError, match="cannot take lhs"):
        polyconv.conv_general_dilated(x, w, (1, 1), "VALID", backend="dask")


def test_nothing_computes_before_compute() -> None:
    """The call builds a graph; the chunks are made only when the result is computed."""
    made = []

    def chunk(block: np.ndarray) -> np.ndarray:
        made.append(block.shape)
        return block

    x, w = _operands()
    xd = da.from_array(x, chunks=(2, 3, 6, 13)).map_blocks(chunk, meta=np.empty((0,) * 4, x.dtype))
    x_before, w_before = x.copy(), w.copy()
    ys = [
        polyconv.conv_general_dilated(xd, w, (1, 1), ((2, -1), (0, 3)), (2, 1)),
        polyconv.conv_transpose(xd, w.transpose(2, 3, 1, 0), (2, 2), "SAME",
                                dimension_numbers=("NCHW", "HWIO", "NCHW")),
        polyconv.conv_general_dilated_patches(xd, (3, 2), (1, 1), "VALID"),
        *polyconv.conv_general_dilated_vjp(xd, w, np.ones((4, 5, 15, 12)), (1, 1), "VALID"),
    ]
    assert made == [] and all(isinstance(y, da.Array) for y in ys)
    ys[0].compute()
    assert made
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(w, w_before)


def test_kernel_is_read_at_call_time() -> None:
    """A NumPy kernel changed after the call does not change the lazy result."""
    x, w = _operands()
    y = polyconv.conv_general_dilated(da.from_array(x, chunks=5), w, (1, 1), "VALID")
    expected = polyconv.conv_general_dilated(x, w, (1, 1), "VALID")
    w[...] = 0
    np.testing.assert_allclose(y.compute(), expected, rtol=1e-12)


def test_chunks_follow_the_input() -> None:
    """Batch chunks stay batch chunks (no communication); spatial blocks follow the
    input's chunks; depthwise channel chunks stay channel chunks (no sums)."""
    x = da.zeros((6, 8, 40, 40), chunks=(2, 4, 20, 10))
    w = np.ones((8, 1, 3, 3))
    y = polyconv.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=8)
    assert y.chunks == ((2, 2, 2), (4, 4), (20, 20), (10, 10, 10, 10))
    # every task of the convolution reads only its own batch chunk
    graph = dict(y.__dask_graph__())
    assert not any(name.startswith("conv-sum") for name, *_ in (k for k in graph if isinstance(k, tuple)))


def _conv_tasks(nblocks: int) -> int:
    x = da.zeros((1, 4, 16 * nblocks, 16), chunks=(1, 2, 16, 16))
    y = polyconv.conv_general_dilated(x, np.ones((3, 4, 3, 3)), (1, 1), "SAME")
    return len(y.__dask_graph__()) - len(x.__dask_graph__())


def test_task_count_grows_linearly_with_the_blocks() -> None:
    """Blocks of two feature chunks along one chunked axis: per block, two block
    tasks, their sum, the output's key, and four halo slices per boundary between
    blocks (a strip from each side for each feature chunk); the kernel's few
    tasks once."""
    counts = [_conv_tasks(n) for n in (1, 2, 4, 8, 16)]
    per_block = counts[1] - counts[0]
    assert per_block == 4 + 4
    assert counts == [counts[0] + per_block * (n - 1) for n in (1, 2, 4, 8, 16)], counts


# -- a real cluster -------------------------------------------------------------------------------

distributed = pytest.importorskip("distributed", reason="the cluster tests need dask.distributed")


@pytest.fixture(scope="module")
def cluster_client():
    """Two worker processes on 127.0.0.1, one thread each, no dashboard; closed after the tests.

    Each worker's memory limit is 400 MiB (spilling to disk from 60% of it)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", memory_limit="400MiB") as cluster, Client(cluster) as client:
        client.run(lambda: __import__("polyconv.backends.dask"))  # import once per worker
        yield client


@pytest.mark.xdist_group("dask-cluster")
def test_cluster_results_equal_numpy(cluster_client) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 30, 21)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 4)).astype(np.float32)
    xd = da.from_array(x, chunks=(1, 3, 7, 10))
    kw = dict(window_strides=(2, 1), padding=((1, 2), (-1, 3)), lhs_dilation=(1, 2), rhs_dilation=(2, 1),
              feature_group_count=2)
    expected = polyconv.conv_general_dilated(x, w, **kw)
    got = polyconv.conv_general_dilated(xd, w, **kw).compute()
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
    cot = rng.standard_normal(expected.shape).astype(np.float32)
    dx, dw = polyconv.conv_general_dilated_vjp(x, w, cot, **kw)
    gx, gw = cluster_client.compute(polyconv.conv_general_dilated_vjp(xd, w, cot, **kw), sync=True)
    np.testing.assert_allclose(gx, dx, rtol=2e-5, atol=2e-4)
    np.testing.assert_allclose(gw, dw, rtol=2e-5, atol=2e-3)


def _spilled(dask_worker) -> int:
    """How many of the worker's results are on its disk now."""
    return len(dask_worker.data.slow)


@pytest.mark.slow
@pytest.mark.xdist_group("dask-cluster")
def test_cluster_input_larger_than_worker_memory(cluster_client) -> None:
    """A 1 GiB input made and persisted on the workers (their limits add up to
    800 MiB, so much of it is spilled to disk), convolved with stride 4:
    completes, reading spilled chunks back block by block, and the result
    equals the NumPy backend's on the same input."""
    from distributed import wait

    limit = sum(w["memory_limit"] for w in cluster_client.scheduler_info()["workers"].values())
    shape, chunks = (2, 4, 8192, 4096), (1, 4, 1024, 1024)  # float32: 1 GiB, chunks of 16 MiB
    x = da.random.default_rng(7).standard_normal(shape, chunks=chunks, dtype=np.float32)
    assert x.nbytes > limit
    x = cluster_client.persist(x)
    wait(x)
    assert sum(cluster_client.run(_spilled).values()) > 0, "nothing was spilled: the test would not test spilling"
    w = np.random.default_rng(8).standard_normal((2, 4, 5, 5)).astype(np.float32)
    y = polyconv.conv_general_dilated(x, w, (4, 4), "SAME")
    total, corner = cluster_client.compute([y.sum(dtype=np.float64), y[1, :, -40:, -40:]], sync=True)
    assert np.isfinite(total)
    part = x[1:2, :, -163:, -163:].compute()  # the input under the last 40 x 40 outputs, and more
    # the global SAME padding is (0, 1) per axis: output 2008 (the first of the last 40) starts at input
    # 8032, 3 into `part`; the last window reaches one element past the input (the extra high padding
    # of 2 is unused)
    ref = polyconv.conv_general_dilated(part, w, (4, 4), ((-3, 2), (-3, 2)))
    np.testing.assert_allclose(corner, ref[0], rtol=1e-4, atol=1e-4)
    del x


@pytest.mark.xdist_group("dask-cluster")
def test_info_names_the_cluster(cluster_client) -> None:
    """``python -m polyconv info``'s line for dask names the scheduler ``.compute()`` uses now."""
    from polyconv.registry import registry

    line = registry.load("dask").details()
    assert f"dask.distributed at {cluster_client.scheduler.address} (2 workers)" in line


def test_info_names_the_default_scheduler() -> None:
    import dask
    from polyconv.backends.dask import scheduler

    with dask.config.set(scheduler="synchronous"):
        assert scheduler() == "the 'synchronous' scheduler (dask.config)"


def test_the_harness_sees_a_result_that_passes_a_chunk_through() -> None:
    """The suite computes a call's operands and results together (one graph), so a
    result that is the operand's own graph (a backend returning its input) shares
    its memory, and one made of a new array does not."""
    from polyconv.conformance.harness import harness_for

    from polyconv.registry import registry

    harness = harness_for(registry.load("dask"))
    x = da.from_array(np.arange(12.0).reshape(3, 4), chunks=-1)
    through, fresh = x, x + 0
    op, same, new = harness.materialize([x, through, fresh])
    assert harness.shares_memory(same, op)
    assert not harness.shares_memory(new, op)
    np.testing.assert_array_equal(np.asarray(new), np.arange(12.0).reshape(3, 4))


# -- graph names: two results that differ in anything never share a key ------------------------

_RNG = np.random.default_rng(29)
_X = _RNG.standard_normal((2, 4, 17, 13)).astype(np.float32)
_W = _RNG.standard_normal((4, 2, 3, 3)).astype(np.float32)
_BASE = dict(window_strides=(1, 1), padding=((1, 1), (1, 1)), feature_group_count=2)


def _variants() -> list[tuple[str, np.ndarray, np.ndarray, dict[str, object], str]]:
    """The base call and calls differing from it in one operand (the VJP's cotangent
    included) or parameter (or the FFT mode)."""
    x2 = _X.copy()
    x2[0, 0, 0, 0] += 1
    w2 = _W.copy()
    w2[0, 0, 1, 1] -= 1
    nhwc = ("NHWC", "HWIO", "NHWC")
    return [
        ("base", _X, _W, {}, "auto"),
        ("lhs", x2, _W, {}, "auto"),
        ("rhs", _X, w2, {}, "auto"),
        ("strides", _X, _W, dict(window_strides=(2, 1)), "auto"),
        ("padding", _X, _W, dict(padding=((0, 2), (1, 1))), "auto"),
        ("lhs_dilation", _X, _W, dict(lhs_dilation=(2, 1)), "auto"),
        ("rhs_dilation", _X, _W, dict(rhs_dilation=(1, 2)), "auto"),
        ("groups", _X, np.concatenate([_W, _W], axis=1), dict(feature_group_count=1), "auto"),
        ("layout", np.ascontiguousarray(_X.transpose(0, 2, 3, 1)), np.ascontiguousarray(_W.transpose(2, 3, 1, 0)),
         dict(dimension_numbers=nhwc), "auto"),
        ("preferred", _X, _W, dict(preferred_element_type=np.float64), "auto"),
        ("fft-mode", _X, _W, {}, "never"),
        ("cotangent", _X, _W, {}, "auto"),  # the VJP's third operand: 2 * g + 1 for the base's g
    ]


def _lazy(variant: tuple[str, np.ndarray, np.ndarray, dict[str, object], str], cot: np.ndarray | None = None) -> Any:
    """The forward result and both cotangents of one variant, lazily; and what NumPy computes for them."""
    _, x, w, extra, mode = variant
    kw = {**_BASE, **extra}
    chunks = (1, 9, 13, 4) if x.shape[-1] == 4 else (1, 4, 9, 13)  # four blocks, in either layout
    xd = da.from_array(x, chunks=chunks)
    with polyconv.use_fft(mode):
        y = polyconv.conv_general_dilated(xd, w, **kw)
        expected = polyconv.conv_general_dilated(x, w, **kw)
        g = np.full(expected.shape, 0.5, expected.dtype) if cot is None else cot.astype(expected.dtype)
        if variant[0] == "cotangent":
            g = 2 * g + 1
        dx, dw = polyconv.conv_general_dilated_vjp(xd, w, g, **kw)
        ex, ew = polyconv.conv_general_dilated_vjp(x, w, g, **kw)
    return (y, dx, dw), (expected, ex, ew)


def test_graphs_of_different_calls_share_no_name_and_compute_together() -> None:
    import dask

    variants = [_lazy(v) for v in _variants()]
    results = [(r.name, e) for lazy, eager in variants for r, e in zip(lazy, eager)]
    first: dict[str, np.ndarray] = {}
    # a name is shared only by equal values: the lhs cotangents of 'base' and 'lhs' (it reads no
    # lhs), and the forward results of 'base' and 'cotangent' (they read no cotangent)
    for name, expected in results:
        if name in first:
            assert first[name].shape == expected.shape and np.array_equal(first[name], expected), name
        first.setdefault(name, expected)
    assert len(first) >= len(results) - 2
    computed = dask.compute(*[r for lazy, _ in variants for r in lazy])  # one graph: any clash shows
    for got, expected in zip(computed, [e for _, eager in variants for e in eager]):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-4)


def test_kernel_cotangents_of_two_cotangents_differ() -> None:
    """The reported bug: the kernel's cotangent ignored the cotangent in its graph name."""
    import dask

    base = _variants()[0]
    g1 = _RNG.standard_normal((2, 4, 17, 13)).astype(np.float32)
    (_, dx1, dw1), (_, ex1, ew1) = _lazy(base, g1)
    (_, dx2, dw2), (_, ex2, ew2) = _lazy(base, g1 * 2 + 1)
    assert dw1.name != dw2.name and dx1.name != dx2.name
    got = dask.compute(dw1, dw2, dx1, dx2)
    for value, expected in zip(got, (ew1, ew2, ex1, ex2)):
        np.testing.assert_allclose(value, expected, rtol=2e-5, atol=2e-4)


@pytest.mark.xdist_group("dask-cluster")
def test_a_persisted_result_never_answers_for_another(cluster_client) -> None:
    """With every variant's results persisted on the cluster, the variants' graphs, built
    again and computed together, give each its own values (a key shared by two variants
    would be answered from the other's persisted data)."""
    from distributed import wait

    g = _RNG.standard_normal((2, 4, 17, 13)).astype(np.float32)

    def all_lazy() -> tuple[list[Any], list[np.ndarray]]:
        made = [_lazy(v, g if v[0] in ("base", "lhs", "rhs", "fft-mode", "cotangent") else None) for v in _variants()]
        return [r for lazy, _ in made for r in lazy], [e for _, eager in made for e in eager]

    persisted, _ = all_lazy()
    held = cluster_client.persist(persisted)
    wait(held)
    lazy, eager = all_lazy()
    assert [r.name for r in lazy] == [r.name for r in persisted]  # the same keys: answered from the cluster
    got = cluster_client.compute(lazy, sync=True)
    for value, expected in zip(got, eager):
        np.testing.assert_allclose(value, expected, rtol=2e-5, atol=2e-4)
    del held
