"""Repeated calls reuse the backend decision and the parsed spec, and nothing else.

``polyconv.ops`` keys each call on its operands' types, shapes and dtypes,
its arguments (encoded with their types), the ``backend=`` keyword, the
``use_backend`` context and the environment; a hit skips resolution and
parsing but still checks devices.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import polyconv
from polyconv import ops
from polyconv.errors import ConvTypeError, MixedArraysError
from polyconv.registry import registry

X = np.arange(8.0).reshape(1, 1, 8)
W = np.ones((1, 1, 3))


def test_a_repeated_call_hits_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    ops.calls.clear()
    first = polyconv.conv_general_dilated(X, W, (1,), "VALID")
    assert len(ops.calls) == 1

    def no_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cached call was parsed again")

    monkeypatch.setattr(polyconv.operations.Operation, "spec", no_parse)
    monkeypatch.setattr(polyconv.ops, "resolve", no_parse)
    np.testing.assert_array_equal(polyconv.conv_general_dilated(X + 1, W, (1,), "VALID"), first + 3)


@pytest.mark.parametrize("strides", [(1.0,), (True,), (np.int64(1),), [1.0], (np.float64(1.0),)])
def test_arguments_equal_to_a_cached_one_but_of_another_type_are_parsed(strides: Any) -> None:
    for _ in range(2):  # stored, then the latest hit: the next call is compared with it first
        polyconv.conv_general_dilated(X, W, (1,), "SAME")
    assert ops.calls.last[0] is not None
    if isinstance(strides[0], np.integer):  # NumPy integers are integers
        polyconv.conv_general_dilated(X, W, strides, "SAME")
        return
    with pytest.raises(ConvTypeError, match="window_strides"):
        polyconv.conv_general_dilated(X, W, strides, "SAME")


def test_the_dispatch_context_is_part_of_the_key(toy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLYCONV_BACKEND", raising=False)
    x, w = X.astype(np.float32), W.astype(np.float32)
    for _ in range(2):  # stored, then the latest hit
        assert isinstance(polyconv.conv_general_dilated(x, w, (1,), "SAME"), np.ndarray)
    with pytest.raises(MixedArraysError, match="'toy' backend"):
        with polyconv.use_backend("toy"):
            polyconv.conv_general_dilated(x, w, (1,), "SAME")
    with pytest.raises(MixedArraysError, match="'toy' backend"):
        polyconv.conv_general_dilated(x, w, (1,), "SAME", backend="toy")


def test_devices_are_checked_on_every_call() -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: meta tensors stand for a second device")
    x, w = torch.ones(1, 1, 8), torch.ones(1, 1, 3)
    polyconv.conv_general_dilated(x, w, (1,), "SAME")
    with pytest.raises(MixedArraysError, match="on device 'cpu' but rhs is on device 'meta'"):
        polyconv.conv_general_dilated(x, w.to("meta"), (1,), "SAME")


def test_a_runner_that_checks_devices_raises_what_a_first_call_raises() -> None:
    """torch's planned runner tests both operands' devices itself (the call cache then reads no
    other device property): a mixed pair on a repeated call, either way round, raises the error
    that resolving the call afresh raises."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: meta tensors stand for a second device")
    x, w = torch.ones(1, 1, 8), torch.ones(1, 1, 3)
    mixed = [(x, w.to("meta")), (x.to("meta"), w)]
    fresh = []
    for lhs, rhs in mixed:
        ops.calls.clear()
        with pytest.raises(MixedArraysError) as first:
            polyconv.conv_general_dilated(lhs, rhs, (1,), "SAME")
        fresh.append(str(first.value))
    ops.calls.clear()
    for _ in range(2):
        polyconv.conv_general_dilated(x, w, (1,), "SAME")
    (_, (_, _, runner, same_device)), = ops.calls.items()
    assert runner.checks_devices and same_device is None
    for (lhs, rhs), message in zip(mixed, fresh):
        with pytest.raises(MixedArraysError) as repeated:
            polyconv.conv_general_dilated(lhs, rhs, (1,), "SAME")
        assert str(repeated.value) == message
    assert len(ops.calls) == 1  # the mixed calls were hits of the stored decision


def test_equal_arguments_are_one_key_however_they_were_made() -> None:
    """The arguments' bytes in the key do not depend on object identity: a padding string built at
    run time (not interned) and a tuple repeated as one object give the key of their literals."""
    ops.calls.clear()
    polyconv.conv_general_dilated(X, W, (1,), "SAME", rhs_dilation=(1,), lhs_dilation=(1,))
    ones = (1,)
    polyconv.conv_general_dilated(X, W, ones, "".join(["SA", "ME"]), rhs_dilation=ones, lhs_dilation=ones)
    assert len(ops.calls) == 1


def test_clearing_the_cache_forgets_the_latest_hit() -> None:
    ops.calls.clear()
    for _ in range(2):
        polyconv.conv_general_dilated(X, W, (1,), "SAME")
    key, hit = ops.calls.last
    assert key is not None and ops.calls.get(key) is hit
    registry.refresh()
    assert ops.calls.last == (None, None)


def test_operands_of_python_types_are_converted_at_every_call_even_with_a_shape() -> None:
    """The key of an operand of a Python type with ``shape`` and ``dtype`` (a NumPy scalar is a
    ``float``) is looked up but never stored: each call converts it again."""

    class Listish(list):  # a nested list that carries array-like attributes
        shape, dtype = (1, 1, 8), np.dtype(np.float64)

    ops.calls.clear()
    x = Listish(X.tolist())
    first = polyconv.conv_general_dilated(x, W, (1,), "VALID")
    assert len(ops.calls) == 0
    np.testing.assert_array_equal(polyconv.conv_general_dilated(x, W, (1,), "VALID"), first)
    np.testing.assert_array_equal(first, polyconv.conv_general_dilated(X, W, (1,), "VALID"))


def test_devices_are_checked_on_every_call_of_any_operand_count() -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: meta tensors stand for a second device")
    x, w, ct = torch.ones(1, 1, 8), torch.ones(1, 1, 3), torch.ones(1, 1, 8)
    polyconv.conv_general_dilated_vjp(x, w, ct, (1,), "SAME")
    with pytest.raises(MixedArraysError, match="'meta'"):
        polyconv.conv_general_dilated_vjp(x, w, ct.to("meta"), (1,), "SAME")
    both = polyconv.conv_general_dilated(x.to("meta"), w.to("meta"), (1,), "SAME")  # one device, not the CPU
    assert both.device.type == "meta" and both.shape == (1, 1, 8)


def test_refresh_forgets_the_decisions() -> None:
    polyconv.conv_general_dilated(X, W, (1,), "SAME")
    assert ops.calls
    registry.refresh()
    assert not ops.calls


def test_parameters_marshal_writes_as_bytes_are_never_cached() -> None:
    """A NumPy scalar is written by marshal as its bytes: such a call runs but is not cached, so a
    later call whose scalar has the same bytes (np.float64 of the bits of int64 1) is parsed anew."""
    ops.calls.clear()
    polyconv.conv_general_dilated(X, W, (np.int64(1),), "SAME")
    assert len(ops.calls) == 0
    tiny = np.frombuffer(np.int64(1).tobytes(), np.float64)[0]
    with pytest.raises(ConvTypeError, match="window_strides"):
        polyconv.conv_general_dilated(X, W, (tiny,), "SAME")


def test_the_environment_is_read_at_each_call_with_or_without_os_environs_dict(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from polyconv import caching

    monkeypatch.delenv("POLYCONV_BACKEND", raising=False)
    before = caching.environment()
    monkeypatch.setenv("POLYCONV_BACKEND", "toy")
    assert caching.environment() != before and caching.environment()[1] == before[1]

    class Plain(dict):  # an os.environ without CPython's private dict
        encodekey = None

    monkeypatch.setattr(caching.os, "environ", Plain(POLYCONV_BLOCK="x"))
    get, keys = caching._environ_reader()
    assert [get(key) for key in keys] == [None, "x"]
    caching.os.environ["POLYCONV_BACKEND"] = "numpy"
    assert [get(key) for key in keys] == ["numpy", "x"]


def test_memoize_keeps_none_results_and_forgets_them_on_clear() -> None:
    """A None answer ("no FFT for this spec") is an answer: computed once, like any other."""
    from polyconv import caching

    calls: list[int] = []

    @caching.memoize(4, name="tests.none_or_zero")
    def none_or_zero(x: int) -> int | None:
        calls.append(x)
        return None if x else 0

    assert [none_or_zero(1), none_or_zero(1), none_or_zero(0), none_or_zero(0)] == [None, None, 0, 0]
    assert calls == [1, 0]
    caching.clear()
    assert none_or_zero(1) is None and calls == [1, 0, 1]
