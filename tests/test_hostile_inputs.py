"""Inputs that break naive code: a thread count changed while pooled NumPy
convolutions run, ``numpy.matrix`` and masked-array operands, and trivial
shapes whose result could be a view of an operand.

* The NumPy backend's thread pool is replaced when ``POLYCONV_NUMPY_THREADS``
  changes; calls running on other threads meanwhile still finish, with the
  reference's values.
* A masked array is a ``ConvTypeError`` naming the parameter, for every op and
  the layers, whichever backend is asked; a ``numpy.matrix`` is one too,
  except as an operand of a convolution with no spatial dimensions, where it
  is taken as its plain ``ndarray``.
* No result shares memory with an operand, on NumPy and PyTorch, however
  trivial the call (1x1 windows, zero sizes, no spatial dims).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from polyconv.backends.numpy import depthwise, parallel, strategy
from polyconv.conformance import reference, tolerances

import polyconv
from polyconv import ConvTypeError
from polyconv.layers import Conv, ConvLocal, ConvTranspose
from polyconv.spec import conv_spec
from polyconv.spec.canonical import problem as from_spec

TORCH_MISSING = "PyTorch is not installed: pip install torch -c constraints.txt"


# -- the NumPy backend's thread pool under a changing thread count ---------------------------


class _CountingPool(ThreadPoolExecutor):
    """A pool that counts what it is given, and gives other threads time to
    run between being handed out and receiving its work (the window in which
    a pool replaced by another thread must not have been shut down)."""

    lock = threading.Lock()
    pools = 0
    submissions = 0
    workers: set[str] = set()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        with _CountingPool.lock:
            _CountingPool.pools += 1

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.001)

        def counted(*a: Any, **k: Any) -> Any:
            with _CountingPool.lock:
                _CountingPool.workers.add(threading.current_thread().name)
            return fn(*a, **k)

        future = super().submit(counted, *args, **kwargs)
        with _CountingPool.lock:
            _CountingPool.submissions += 1
        return future


def test_numpy_threads_change_while_pooled_convolutions_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flipping POLYCONV_NUMPY_THREADS while three threads run depthwise
    convolutions (each spread over the pool) neither raises nor changes a
    result: every one equals the reference."""
    rng = np.random.default_rng(11)
    groups = 640
    lhs = rng.standard_normal((1, groups, 64, 64)).astype(np.float32)
    rhs = rng.standard_normal((groups, 1, 3, 3)).astype(np.float32)
    kw: dict[str, Any] = dict(window_strides=(1, 1), padding="SAME", feature_group_count=groups)
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **kw)
    assert strategy.choose(spec).name == "depthwise"
    counts = ("2", "3", "4")
    # enough chunks for every thread count to run pooled (parallel.run_chunks' min_chunks rule)
    assert len(depthwise.plan(from_spec(spec), 4).chunks) >= 2 * max(map(int, counts))

    monkeypatch.setenv("POLYCONV_NUMPY_THREADS", "1")
    expected = polyconv.conv_general_dilated(lhs, rhs, **kw)  # on the calling thread alone
    tolerances.assert_close(expected, lhs, rhs, spec)

    monkeypatch.setattr(parallel, "ThreadPoolExecutor", _CountingPool)
    monkeypatch.setattr(parallel, "_pool", None)
    monkeypatch.setattr(parallel, "_pool_key", (0, 0))
    monkeypatch.setattr(_CountingPool, "pools", 0)
    monkeypatch.setattr(_CountingPool, "submissions", 0)
    monkeypatch.setattr(_CountingPool, "workers", set())
    monkeypatch.setenv("POLYCONV_NUMPY_THREADS", counts[0])

    results: list[np.ndarray] = []
    errors: list[BaseException] = []
    deadline = time.monotonic() + 1.0

    def worker() -> None:
        try:
            while time.monotonic() < deadline and not errors:
                results.append(polyconv.conv_general_dilated(lhs, rhs, **kw))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, name=f"hostile-{i}") for i in range(3)]
    try:
        for t in threads:
            t.start()
        flips = 0
        while any(t.is_alive() for t in threads):
            os.environ["POLYCONV_NUMPY_THREADS"] = counts[flips % len(counts)]
            flips += 1
            time.sleep(0.002)
        for t in threads:
            t.join()
    finally:
        pool = parallel._pool
        if pool is not None:
            pool.shutdown(wait=True)

    assert not errors, f"{len(errors)} of the calls raised, the first: {errors[0]!r}"
    assert len(results) >= len(threads)
    for result in results:
        np.testing.assert_array_equal(result, expected)
    # the calls ran pooled, on pools of several sizes
    assert _CountingPool.submissions >= len(results)
    assert _CountingPool.pools >= 2
    assert any(name.startswith("polyconv-numpy") for name in _CountingPool.workers)


# -- np.matrix and masked-array operands ------------------------------------------------------


def _a(*shape: int) -> np.ndarray:
    return np.arange(float(np.prod(shape))).reshape(shape) % 7 - 3


# op, operand names, operands, the other arguments: one valid 1-d call of each op
_CALLS: list[tuple[str, tuple[str, ...], tuple[np.ndarray, ...], tuple[Any, ...]]] = [
    ("conv_general_dilated", ("lhs", "rhs"), (_a(2, 3, 6), _a(4, 3, 2)), ((1,), "SAME")),
    ("conv_transpose", ("lhs", "rhs"), (_a(2, 6, 3), _a(2, 3, 4)), ((2,), "SAME")),
    ("conv_general_dilated_patches", ("lhs",), (_a(2, 3, 6),), ((2,), (1,), "VALID")),
    ("conv_general_dilated_local", ("lhs", "rhs"), (_a(2, 3, 6), _a(4, 6, 5)), ((1,), "VALID", (2,))),
    ("conv_general_dilated_vjp", ("lhs", "rhs", "cotangent"), (_a(2, 3, 6), _a(4, 3, 2), _a(2, 4, 5)),
     ((1,), "VALID")),
]
_BACKENDS = [None, "numpy", "array_api"]


def _masked(x: np.ndarray) -> np.ndarray:
    mask = np.zeros(x.shape, bool)
    mask.flat[1] = True
    return np.ma.masked_array(x, mask=mask)


def _matrix(x: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.asmatrix(x.reshape(x.shape[0], -1))


def _messages(op: str, arrays: list[Any], args: tuple[Any, ...], param: str) -> set[str]:
    """The error of the call on every backend of _BACKENDS (one message, if the rule holds everywhere)."""
    before = [np.array(a, copy=True) for a in arrays]
    messages = set()
    for backend in _BACKENDS:
        with pytest.raises(ConvTypeError) as info:
            getattr(polyconv, op)(*arrays, *args, backend=backend)
        assert info.value.op == op and info.value.param == param
        messages.add(str(info.value))
    for b, a in zip(before, arrays):
        np.testing.assert_array_equal(np.asarray(a), b)  # inputs are never modified
    return messages


def _one_message_per_operand(op: str, names: Any, operands: Any, args: Any, wrap: Any) -> list[tuple[str, str]]:
    """For each operand in turn made ``wrap(operand)``: its parameter, and the one
    message every backend raises (:func:`_messages`)."""
    found = []
    for i, param in enumerate(names):
        arrays: list[Any] = list(operands)
        arrays[i] = wrap(operands[i])
        messages = _messages(op, arrays, args, param)
        assert len(messages) == 1, messages
        found.append((param, messages.pop()))
    return found


@pytest.mark.parametrize("op, names, operands, args", _CALLS, ids=[c[0] for c in _CALLS])
def test_masked_operands_are_a_type_error_on_every_backend(op, names, operands, args) -> None:
    for param, message in _one_message_per_operand(op, names, operands, args, _masked):
        assert message.startswith(f"{op}: {param} must not be a masked array")
        assert f"np.ma.filled({param}, 0)" in message and f"{param}.data" in message
        assert "numpy.ma.MaskedArray" in message


@pytest.mark.parametrize("op, names, operands, args", _CALLS, ids=[c[0] for c in _CALLS])
def test_matrix_operands_with_spatial_dims_are_a_type_error_on_every_backend(op, names, operands, args) -> None:
    for param, message in _one_message_per_operand(op, names, operands, args, _matrix):
        assert message.startswith(f"{op}: {param} must not be a numpy.matrix")
        assert "rank 3 (1 spatial dimension)" in message and f"np.asarray({param}) reshaped to rank 3" in message


def test_all_matrix_operands_with_spatial_strides_are_a_type_error() -> None:
    """Two matrices agree with each other; the strides say the call has spatial dims."""
    messages = _messages("conv_general_dilated", [_matrix(_a(2, 3)), _matrix(_a(4, 3))], ((1, 1), "VALID"), "lhs")
    assert messages == {
        "conv_general_dilated: lhs must not be a numpy.matrix: a matrix is always 2-d (an operand only of a "
        "convolution with no spatial dimensions), and this call's operands have rank 4 (2 spatial dimensions); "
        "pass np.asarray(lhs) reshaped to rank 4; got a numpy.matrix of shape (2, 3)"
    }


@pytest.mark.parametrize("backend", _BACKENDS)
def test_matrix_operands_of_a_convolution_without_spatial_dims_are_plain_arrays(backend: str | None) -> None:
    """Rank 2 is a matrix's own rank: the convolution with no spatial dims
    (a matrix product) takes matrices as their ndarray views and returns an
    ndarray, equal to the reference."""
    x, w, ct = _a(3, 4), _a(5, 4) + 0.5, _a(3, 5)
    xm, wm, ctm = _matrix(x), _matrix(w), _matrix(ct)
    y = polyconv.conv_general_dilated(xm, wm, (), "VALID", backend=backend)
    assert type(y) is np.ndarray
    np.testing.assert_allclose(y, reference.conv_general_dilated(x, w, (), "VALID"), rtol=1e-12)
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-12)
    p = polyconv.conv_general_dilated_patches(xm, (), (), "VALID", backend=backend)
    assert type(p) is np.ndarray
    np.testing.assert_array_equal(p, reference.conv_general_dilated_patches(x, (), (), "VALID"))
    dx, dw = polyconv.conv_general_dilated_vjp(xm, wm, ctm, (), "VALID", backend=backend)
    rdx, rdw = reference.conv_general_dilated_vjp(x, w, ct, (), "VALID")
    assert type(dx) is np.ndarray and type(dw) is np.ndarray
    np.testing.assert_allclose(dx, rdx, rtol=1e-12)
    np.testing.assert_allclose(dw, rdw, rtol=1e-12)
    for m, a in ((xm, x), (wm, w), (ctm, ct)):
        np.testing.assert_array_equal(np.asarray(m), a)  # unchanged
        assert not np.shares_memory(y, m) and not np.shares_memory(p, m)
    y2 = polyconv.conv_general_dilated(xm, wm, (), "VALID", backend=backend)  # a repeated call, as the first
    np.testing.assert_array_equal(y2, y)


@pytest.mark.parametrize("layer", [Conv(2, (3,)), ConvLocal(2, (3,)), ConvTranspose(2, (3,))],
                         ids=["Conv", "ConvLocal", "ConvTranspose"])
def test_layers_refuse_masked_and_matrix_inputs(layer: Any) -> None:
    x = _a(1, 6, 3)
    params = layer.init(0, x)
    op = type(layer).__name__
    for hostile, problem in ((_masked(x), "must not be a masked array"), (_matrix(x[0]), "must not be a numpy.matrix")):
        for call in (lambda h=hostile: layer.init(0, h), lambda h=hostile: layer.apply(params, h)):
            with pytest.raises(ConvTypeError, match=f"^{op}: inputs {problem}") as info:
                call()
            assert info.value.param == "inputs"
    kernel = _masked(np.asarray(params["kernel"]))
    with pytest.raises(ConvTypeError, match=rf"^{op}: params\['kernel'\] must not be a masked array"):
        layer.apply({**params, "kernel": kernel}, x)


# -- no result shares memory with an operand ---------------------------------------------------


def _trivial_calls() -> list[Any]:
    """(op, operands, arguments, dtype): calls where the result could be a view of an operand."""
    return [
        pytest.param(*p.values, dtype, id=f"{p.id}-{dtype}")
        for p in _trivial_shapes() for dtype in ("float64", "int32")
        if not (p.values[0] == "conv_general_dilated_vjp" and dtype == "int32")  # integer VJPs: another dtype rule
    ]


def _trivial_shapes() -> list[Any]:
    eye = np.eye(3).reshape(3, 3, 1)
    return [
        pytest.param("conv_general_dilated", (_a(1, 3, 4), eye), ((1,), "VALID"), {}, id="conv-1x1-identity"),
        pytest.param("conv_general_dilated", (_a(2, 3), np.eye(3)), ((), "VALID"), {}, id="conv-no-spatial"),
        pytest.param("conv_general_dilated", (_a(0, 3, 4), eye), ((1,), "VALID"), {}, id="conv-zero-batch"),
        pytest.param("conv_general_dilated", (_a(1, 0, 4), _a(2, 0, 1)), ((1,), "VALID"), {}, id="conv-no-channels"),
        pytest.param("conv_general_dilated_patches", (_a(1, 3, 4),), ((1,), (1,), "VALID"), {}, id="patches-1x1"),
        pytest.param("conv_general_dilated_patches", (_a(1, 3, 5),), ((1,), (2,), "VALID"), {},
                     id="patches-1x1-strided"),
        pytest.param("conv_general_dilated_patches", (_a(1, 3, 4),), ((1,), (1,), ((-1, 0),)), {},
                     id="patches-1x1-cropped"),
        pytest.param("conv_general_dilated_patches", (_a(2, 4, 3),), ((1,), (1,), "VALID"),
                     dict(dimension_numbers=("NWC", "WIO", "NWC")), id="patches-1x1-channels-last"),
        pytest.param("conv_general_dilated_patches", (_a(1, 2, 3, 3),), ((1, 1), (1, 1), "VALID"), {},
                     id="patches-1x1-2d"),
        pytest.param("conv_general_dilated_patches", (_a(1, 1, 5),), ((2,), (1,), "VALID"), {},
                     id="patches-one-channel"),
        pytest.param("conv_general_dilated_patches", (_a(1, 2, 3, 3),), ((3, 3), (1, 1), "VALID"), {},
                     id="patches-whole-input"),
        pytest.param("conv_general_dilated_patches", (_a(2, 3),), ((), (), "VALID"), {}, id="patches-no-spatial"),
        pytest.param("conv_general_dilated_patches", (_a(0, 3, 4),), ((1,), (1,), "VALID"), {},
                     id="patches-zero-batch"),
        pytest.param("conv_general_dilated_local", (_a(1, 3, 4), np.ones((3, 3, 4))), ((1,), "VALID", (1,)), {},
                     id="local-1x1"),
        pytest.param("conv_general_dilated_local", (_a(2, 3), np.eye(3)), ((), "VALID", ()), {},
                     id="local-no-spatial"),
        pytest.param("conv_transpose", (_a(1, 4, 3), np.eye(3).reshape(1, 3, 3)), ((1,), "VALID"), {},
                     id="transpose-1x1"),
        pytest.param("conv_transpose", (_a(1, 4, 3), np.eye(3).reshape(1, 3, 3)), ((1,), "VALID"),
                     dict(transpose_kernel=True), id="transpose-1x1-kernel-transposed"),
        pytest.param("conv_general_dilated_vjp", (_a(1, 3, 4), eye, _a(1, 3, 4)), ((1,), "VALID"), {},
                     id="vjp-1x1"),
        pytest.param("conv_general_dilated_vjp", (_a(2, 3), np.eye(3), _a(2, 3)), ((), "VALID"), {},
                     id="vjp-no-spatial"),
    ]


def _torch_overlaps(a: Any, b: Any) -> bool:
    sa, sb = a.untyped_storage(), b.untyped_storage()
    pa, pb = sa.data_ptr(), sb.data_ptr()
    return sa.nbytes() > 0 and sb.nbytes() > 0 and pa < pb + sb.nbytes() and pb < pa + sa.nbytes()


@pytest.mark.parametrize("op, operands, args, kwargs, dtype", _trivial_calls())
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_results_never_share_memory_with_operands(backend, op, operands, args, kwargs, dtype) -> None:
    """The result equals the reference, shares no memory with an operand, and
    writing into it leaves the operands as they were."""
    arrays = [np.ascontiguousarray(a, dtype=dtype) for a in operands]
    expected = getattr(reference, op)(*arrays, *args, **kwargs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    if backend == "torch":
        torch = pytest.importorskip("torch", reason=TORCH_MISSING)
        inputs = [torch.from_numpy(a.copy()) for a in arrays]
    else:
        inputs = [a.copy() for a in arrays]
    result = getattr(polyconv, op)(*inputs, *args, **kwargs)
    results = result if isinstance(result, tuple) else (result,)
    assert len(results) == len(expected)
    for y, want in zip(results, expected):
        got = y.numpy() if backend == "torch" else y
        np.testing.assert_array_equal(got, want.astype(got.dtype))
        for x in inputs:
            if backend == "torch":
                assert not _torch_overlaps(y, x), f"{op}: the result shares memory with an operand"
            else:
                assert not np.shares_memory(y, x), f"{op}: the result shares memory with an operand"
        if backend == "torch":
            y.fill_(99)
        else:
            y[...] = 99
    for x, a in zip(inputs, arrays):
        np.testing.assert_array_equal(x.numpy() if backend == "torch" else x, a)  # writing changed no operand
