"""Absurd but valid parameters: pads of 2**62, dilations of 2**40, values past int64, tiny outputs.

A padding of ``2**62`` cropped back, an lhs dilation of ``2**40`` with a
small input, an rhs dilation of ``2**40`` into a padding of ``2**40``, a
stride of ``2**62`` over a padding of ``30 * 2**62``: the output is a few
elements, and every backend computes it exactly, in memory bounded by the
output and the operands, in a fraction of a second (the NumPy backend's
strategies leave out what no window reaches; the torch and JAX backends
compute such calls tap by tap, :func:`polyconv.spec.canonical.beyond_native`).

Expected values come from the definition, one (output, tap) pair at a time in
Python integers (:func:`_tables`), never from a padded array.  Every call
runs under :func:`_bounded`: the address space capped a little above what the
process holds and an alarm, so a regression (an allocation sized by the
padding, a loop over the phases of a dilation) fails at once instead of
swapping or hanging.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import signal
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import polyconv
from polyconv.spec import conv_spec

E62, E40 = 2**62, 2**40

#: name: (input size, window, stride, (low, high), lhs dilation, rhs dilation) of the absurd axis.
CASES: dict[str, tuple[int, int, int, tuple[int, int], int, int]] = {
    "pad 2**62 cropped back, stride 1": (5, 3, 1, (E62, -E62), 1, 1),  # all zeros
    "crop 2**62 padded back, stride 1": (5, 3, 1, (-E62, E62), 1, 1),  # all zeros
    "pad 2**62, stride 2**62": (5, 3, E62, (E62, E62), 1, 1),  # [0, x[0:3] . w, 0]
    "crop 2**62, stride 2**61": (5, 3, 2**61, (-E62, E62), 1, 1),
    "lhs dilation 2**40, cropped to one window": (3, 3, 1, (1 - E40, 1 - E40), E40, 1),
    "lhs dilation 2**40, stride 2**40": (3, 3, E40, (1, 1), E40, 1),
    "lhs dilation 2**40, 300 outputs": (200, 3, 1, (0, 301 - 199 * E40), E40, 1),
    "lhs dilation 2**62, cropped to one window": (3, 3, 1, (1 - E62, 1 - E62), E62, 1),
    "lhs dilation 2, rhs dilation 2**40 into padding 2**40": (5, 2, 1, (E40, 0), 2, E40),
    "rhs dilation 2**40 into padding 2**40": (5, 2, 1, (E40, 0), 1, E40),
    "rhs dilation 2**40, padding 2**40 both sides": (60, 3, 1, (E40, E40), 1, E40),
    "lhs and rhs dilation 2**62": (2, 2, 1, (0, 0), E62, E62),
    "rhs dilation 2**62, stride 2**62, padding 2**63": (5, 3, E62, (0, 2**63), 1, E62),
    "stride 2**62, padding 30 * 2**62": (5, 3, E62, (30 * E62, 30 * E62), 1, 1),
    "rhs dilation and padding 2**65": (7, 3, 1, (2**65, 2**65), 1, 2**65),
}
#: The ordinary second spatial axis of the larger variants.
NORMAL = (40, 3, 1, (1, 1), 1, 1)
#: The cases whose lhs dilation makes them transposed convolutions (stride 1).
TRANSPOSED = [name for name, c in CASES.items() if c[4] != 1 and c[2] == 1]


# -- expected values, from the definition -------------------------------------------------------------------------


def _out_size(size: int, k: int, s: int, pads: tuple[int, int], ld: int, rd: int) -> int:
    padded = (size - 1) * ld + 1 + pads[0] + pads[1]
    reach = (k - 1) * rd + 1
    return 0 if padded < reach else (padded - reach) // s + 1


def _tables(x_shape: tuple[int, ...], window: tuple[int, ...], p: dict[str, Any]) -> list[np.ndarray]:
    """Per axis ``T[y, k]``: the input element output ``y`` reads through tap ``k``, or
    ``S`` (a zero): ``q = y * s + k * rd - lo`` is element ``q / ld`` when that is one."""
    tables = []
    for size, k, s, pads, ld, rd in zip(x_shape[2:], window, p["window_strides"], p["padding"], p["lhs_dilation"],
                                        p["rhs_dilation"]):
        out = _out_size(size, k, s, pads, ld, rd)
        table = np.full((out, k), size, dtype=np.int64)
        for y in range(out):
            for t in range(k):
                q = y * s + t * rd - pads[0]
                if q >= 0 and q % ld == 0 and q // ld < size:
                    table[y, t] = q // ld
        tables.append(table)
    return tables


def _gathered(x: np.ndarray, tables: list[np.ndarray], tap: tuple[int, ...]) -> tuple[np.ndarray, tuple[Any, ...]]:
    """``x`` with a zero appended on every spatial axis, and the index of what tap ``tap`` reads."""
    padded = np.pad(x, [(0, 0), (0, 0)] + [(0, 1)] * (x.ndim - 2))
    return padded, (slice(None), slice(None), *np.ix_(*(t[:, k] for t, k in zip(tables, tap))))


def _expected_conv(x: np.ndarray, w: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    tables = _tables(x.shape, w.shape[2:], p)
    groups = p.get("feature_group_count", 1)
    n, c, o = x.shape[0], x.shape[1], w.shape[0]
    out = np.zeros((n, o, *(t.shape[0] for t in tables)), np.result_type(x, w))
    for tap in itertools.product(*(range(k) for k in w.shape[2:])):
        padded, index = _gathered(x, tables, tap)
        xs = padded[index].reshape(n, groups, c // groups, *out.shape[2:])
        ws = w[(slice(None), slice(None), *tap)].reshape(groups, o // groups, c // groups)
        out += np.einsum("ngc...,goc->ngo...", xs, ws).reshape(out.shape)
    return out


def _expected_vjp(x: np.ndarray, w: np.ndarray, g: np.ndarray, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    tables = _tables(x.shape, w.shape[2:], p)
    dx = np.zeros((*x.shape[:2], *(s + 1 for s in x.shape[2:])), x.dtype)  # with the zero slots
    dw = np.zeros_like(w)
    for tap in itertools.product(*(range(k) for k in w.shape[2:])):
        padded, index = _gathered(x, tables, tap)
        np.add.at(dx, index, np.einsum("no...,oc->nc...", g, w[(slice(None), slice(None), *tap)]))
        read = padded[index]
        dw[(slice(None), slice(None), *tap)] = np.einsum("nom,ncm->oc", g.reshape(*g.shape[:2], -1),
                                                         read.reshape(*read.shape[:2], -1))
    return dx[(slice(None), slice(None), *(slice(0, s) for s in x.shape[2:]))], dw


def _expected_patches(x: np.ndarray, window: tuple[int, ...], p: dict[str, Any]) -> np.ndarray:
    tables = _tables(x.shape, window, p)
    taps = math.prod(window)
    out = np.zeros((x.shape[0], x.shape[1] * taps, *(t.shape[0] for t in tables)), x.dtype)
    for i, tap in enumerate(itertools.product(*(range(k) for k in window))):
        padded, index = _gathered(x, tables, tap)
        out[:, i::taps] = padded[index]
    return out


# -- the cases ------------------------------------------------------------------------------------------------------


def _params(axes: list[tuple[int, int, int, tuple[int, int], int, int]], groups: int = 1) -> dict[str, Any]:
    return {
        "window_strides": tuple(a[2] for a in axes), "padding": tuple(a[3] for a in axes),
        "lhs_dilation": tuple(a[4] for a in axes), "rhs_dilation": tuple(a[5] for a in axes),
        "feature_group_count": groups,
    }


def _case(name: str, variant: str = "tiny", dtype: str = "float64") -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(x, w, params)``: ``tiny`` is one channel on the absurd axis alone; ``medium``
    adds an ordinary axis and 8 -> 4 channels, ``depthwise`` 8 groups of one channel
    (both large enough for the NumPy backend's chunked strategies)."""
    axes = [CASES[name]] + ([] if variant == "tiny" else [NORMAL])
    n, c, o, groups = {"tiny": (1, 1, 1, 1), "medium": (2, 8, 4, 1), "depthwise": (2, 8, 8, 8)}[variant]
    rng = np.random.default_rng(zlib.crc32(f"{name}/{variant}".encode()))
    x = rng.integers(-3, 4, (n, c, *(a[0] for a in axes)))
    w = rng.integers(-3, 4, (o, c // groups, *(a[1] for a in axes)))
    return x.astype(dtype), w.astype(dtype), _params(axes, groups)


def _dn(x: Any) -> tuple[str, str, str]:
    sp = "HWD"[: x.ndim - 2]
    return "NC" + sp, "OI" + sp, "NC" + sp


@contextlib.contextmanager
def _bounded(seconds: float = 10.0, extra: int = 3 << 30) -> Iterator[None]:
    """Run the block with the address space capped ``extra`` bytes above what the
    process maps now (where ``RLIMIT_AS`` exists) and a ``seconds`` alarm (on the
    main thread): a regression that allocates by the padding raises at once, and
    one that loops over it fails with a ``TimeoutError``."""
    cap = None
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = used + extra
        if (hard == resource.RLIM_INFINITY or limit < hard) and (soft == resource.RLIM_INFINITY or limit < soft):
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
            cap = (soft, hard)
    except (ImportError, OSError, ValueError):
        pass
    alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if alarm:
        def stop(signum: int, frame: Any) -> None:
            raise TimeoutError(f"an absurd-parameter call took more than {seconds} s")

        previous = signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        if cap is not None:
            resource.setrlimit(resource.RLIMIT_AS, cap)


def _conv(x: Any, w: Any, p: dict[str, Any]) -> Any:
    with _bounded():
        return polyconv.conv_general_dilated(x, w, dimension_numbers=_dn(x), **p)


# -- NumPy ----------------------------------------------------------------------------------------------------------


def test_hand_derived_values() -> None:
    """Some of the cases, by hand: the middle output of the 2**62 stride reads
    the input's first window (also over a padding past int64); the 2**40 rhs
    dilation leaves one tap on the input; the 2**62 dilations pair input
    element i with tap i; a padding cropped back leaves zeros."""
    x, w = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]]), np.array([[[1.0, 10.0, 100.0]]])
    y = _conv(x, w, _params([CASES["pad 2**62, stride 2**62"]]))
    np.testing.assert_array_equal(y, [[[0.0, 321.0, 0.0]]])
    y = _conv(x, w[..., :2], _params([CASES["rhs dilation 2**40 into padding 2**40"]]))
    np.testing.assert_array_equal(y, 10 * x)
    y = _conv(x[..., :2], w[..., :2], _params([CASES["lhs and rhs dilation 2**62"]]))
    np.testing.assert_array_equal(y, [[[21.0]]])
    y = _conv(x, w, _params([CASES["pad 2**62 cropped back, stride 1"]]))
    assert y.shape == (1, 1, 3) and not y.any()
    y = _conv(x, w, _params([CASES["stride 2**62, padding 30 * 2**62"]]))  # past int64
    assert y.shape == (1, 1, 61) and y[0, 0, 30] == 321 and np.count_nonzero(y) == 1


@pytest.mark.parametrize("variant", ["tiny", "medium", "depthwise", "int32"])
@pytest.mark.parametrize("name", CASES)
def test_numpy_conv(name: str, variant: str) -> None:
    """Exact results from every NumPy strategy: ``small`` (tiny), ``offsets``,
    ``depthwise`` and ``polyphase`` (medium, depthwise), ``gemm`` (int32)."""
    x, w, p = _case(name, "medium" if variant == "int32" else variant, "int32" if variant == "int32" else "float64")
    y = _conv(x, w, p)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, _expected_conv(x, w, p))


@pytest.mark.parametrize("variant", ["tiny", "medium"])
@pytest.mark.parametrize("name", CASES)
def test_numpy_vjp(name: str, variant: str) -> None:
    """The gradients are convolutions with the strides as lhs dilation and the
    dilations as strides: just as absurd, and exact."""
    x, w, p = _case(name, variant)
    g = np.random.default_rng(1).integers(-3, 4, _expected_conv(x, w, p).shape).astype(x.dtype)
    with _bounded():
        dx, dw = polyconv.conv_general_dilated_vjp(x, w, g, dimension_numbers=_dn(x), **p)
    ex, ew = _expected_vjp(x, w, g, p)
    np.testing.assert_array_equal(dx, ex)
    np.testing.assert_array_equal(dw, ew)


@pytest.mark.parametrize("name", CASES)
def test_numpy_patches_and_local(name: str) -> None:
    x, w, p = _case(name)
    p.pop("feature_group_count")
    window = w.shape[2:]
    with _bounded():
        patches = polyconv.conv_general_dilated_patches(x, window, dimension_numbers=_dn(x), **p)
    expected = _expected_patches(x, window, p)
    np.testing.assert_array_equal(patches, expected)
    rhs = np.random.default_rng(2).integers(-3, 4, (2, expected.shape[1], *expected.shape[2:])).astype(x.dtype)
    with _bounded():
        y = polyconv.conv_general_dilated_local(x, rhs, p["window_strides"], p["padding"], window, p["lhs_dilation"],
                                                p["rhs_dilation"], _dn(x))
    np.testing.assert_array_equal(y, np.einsum("ni...,oi...->no...", expected, rhs))


@pytest.mark.parametrize("transpose_kernel", [False, True])
@pytest.mark.parametrize("variant", ["tiny", "medium"])
@pytest.mark.parametrize("name", TRANSPOSED)
def test_numpy_conv_transpose(name: str, variant: str, transpose_kernel: bool) -> None:
    """``conv_transpose`` with a stride of 2**40 or 2**62: the lhs dilation of the forward convolution."""
    x, w, p = _case(name, variant)
    # transpose_kernel flips the kernel and swaps its I and O axes: give it the kernel that makes w
    rhs = np.flip(w, tuple(range(2, w.ndim))).swapaxes(0, 1) if transpose_kernel else w
    with _bounded():
        y = polyconv.conv_transpose(x, rhs, p["lhs_dilation"], p["padding"], p["rhs_dilation"], _dn(x),
                                    transpose_kernel=transpose_kernel)
    np.testing.assert_array_equal(y, _expected_conv(x, w, p))  # the cases have stride 1


def test_numpy_conv_transpose_with_a_million_phases() -> None:
    """A stride of 2**40 over 1000 x 1000 outputs: a million output phases, of
    which nine read the input, in a fraction of a second."""
    axis = (2, 3, 1, (2, 999 - E40), E40, 1)  # element 0 at padded position 2, element 1 past the outputs
    p = _params([axis, axis])
    x, w = np.array([[[[2.0, 3.0], [5.0, 7.0]]]]), np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    with _bounded(seconds=2):  # a part per phase takes seconds to list alone
        y = polyconv.conv_transpose(x, w, p["lhs_dilation"], p["padding"], p["rhs_dilation"], _dn(x))
    expected = np.zeros((1, 1, 1000, 1000))
    expected[0, 0, :3, :3] = 2 * w[0, 0, ::-1, ::-1]
    np.testing.assert_array_equal(y, expected)


def test_polyphase_parts_are_bounded_by_the_kernel() -> None:
    """An lhs dilation of 2**40 makes every one of 300 x 300 outputs a phase of its
    own; the phases that taps read are found in one step per tap, so the parts are
    the few that read input elements and one that zeroes the rest."""
    from polyconv.backends.numpy import strategy

    name = "lhs dilation 2**40, 300 outputs"
    p = _params([CASES[name]] * 2)
    spec = conv_spec((1, 2, 200, 200), (2, 2, 3, 3), "float64", "float64", p["window_strides"], p["padding"],
                     p["lhs_dilation"], p["rhs_dilation"])
    assert spec.out_shape == (1, 2, 300, 300)
    start = time.perf_counter()
    with _bounded():
        choice = strategy.choose(spec)
    assert choice.name == "polyphase" and len(choice.parts) <= 1 + 9
    assert time.perf_counter() - start < 2


def test_geometry_is_bounded_by_the_output_and_the_input() -> None:
    """An rhs dilation of 2**40 and a padding of 2**62 leave the shifted-window
    planes no larger than the input and the output (here a stride of 2**62 too)."""
    from polyconv.backends.numpy.geometry import geometry

    from polyconv.spec.canonical import Problem

    for sizes, window, out, strides, dilation, low in [
        ((300, 40), (3, 3), (300, 40), (1, 1), (E40, 1), (E40, 1)),
        ((5, 40), (3, 3), (3, 40), (E62, 1), (1, 1), (E62, 1)),
        ((7, 40), (3, 3), (7, 40), (1, 1), (2**65, 1), (2**65, 1)),
    ]:
        geo = geometry(Problem(2, 1, 8, 4, sizes, window, out, strides, dilation, low))
        assert all(e <= 2 * y + s for e, y, s in zip(geo.extents, out, sizes)), geo.extents


def test_non_finite_taps_over_padding_form_no_product() -> None:
    """The taps and outputs left out read padding alone: by the definition they form no
    product, so an infinite tap there changes nothing (no 0 * inf)."""
    x = np.ones((2, 8, 6, 40))
    w = np.ones((4, 8, 2, 3))
    w[1, 2, 0, 1] = np.inf  # tap 0 of the dilated axis reads padding alone
    p = {"window_strides": (1, 1), "padding": ((E40, 0), (1, 1)), "lhs_dilation": (1, 1), "rhs_dilation": (E40, 1)}
    y = _conv(x, w, p)
    finite = w.copy()
    finite[1, 2, 0, 1] = 0.0
    assert np.isfinite(y).all()
    np.testing.assert_array_equal(y, _conv(x, finite, p))


#: Large but ordinary parameters: the frameworks' own convolutions take them as they are.
LARGE = [((2000, 2000), 1, 1), ((2000, -1500), 1, 1), ((5, 5), 1, 1500), ((1, 1), 2000, 1)]


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_large_ordinary_parameters(backend: str, request: pytest.FixtureRequest) -> None:
    """Pads, dilations and strides in the thousands over an input of thousands:
    no tap-by-tap computation (the padded input is the size of the input), and
    the values of the reference."""
    from polyconv.conformance import reference

    from polyconv.spec.canonical import beyond_native

    if backend == "torch":
        to: Any = _torch().from_numpy
    elif backend == "jax":
        to = request.getfixturevalue("jax_modules").numpy.asarray
    else:
        to = np.asarray
    x, w = np.random.default_rng(3).standard_normal((1, 2, 3000)), np.random.default_rng(4).standard_normal((3, 2, 3))
    for pads, stride, dilation in LARGE:
        p = {"window_strides": (stride,), "padding": (pads,), "rhs_dilation": (dilation,)}
        out = conv_spec(x.shape, w.shape, "float64", "float64", **p).out_spatial
        assert not beyond_native((3000,), (3,), out, (stride,), (pads,), (1,), (dilation,))
        y = _conv(to(x), to(w), {**p, "lhs_dilation": (1,)})
        np.testing.assert_allclose(np.asarray(y), reference.conv_general_dilated(x, w, **p), rtol=1e-12, atol=1e-12)


# -- the array-API backend ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_array_api(name: str) -> None:
    xp = pytest.importorskip("array_api_strict", reason="array-api-strict is not installed")
    x, w, p = _case(name, "medium")
    y = _conv(xp.asarray(x), xp.asarray(w), p)
    np.testing.assert_array_equal(np.asarray(y), _expected_conv(x, w, p))


# -- PyTorch --------------------------------------------------------------------------------------------------------


def _torch() -> Any:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch -c constraints.txt")
    torch.nn.functional.conv1d(torch.ones(1, 1, 3), torch.ones(1, 1, 2))  # loads the kernels outside _bounded
    return torch


@pytest.mark.parametrize("variant", ["tiny", "medium", "depthwise"])
@pytest.mark.parametrize("name", CASES)
def test_torch_conv(name: str, variant: str) -> None:
    """Computed tap by tap where PyTorch cannot take the parameters (it refuses
    pads from 2**62, overflows 32-bit strides, and pads or dilates in memory)."""
    torch = _torch()
    x, w, p = _case(name, variant)
    y = _conv(torch.from_numpy(x), torch.from_numpy(w), p)
    np.testing.assert_array_equal(y.numpy(), _expected_conv(x, w, p))


@pytest.mark.parametrize("name", CASES)
def test_torch_vjp_and_autograd(name: str) -> None:
    torch = _torch()
    x, w, p = _case(name, "medium")
    g = np.random.default_rng(1).integers(-3, 4, _expected_conv(x, w, p).shape).astype(x.dtype)
    ex, ew = _expected_vjp(x, w, g, p)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    with _bounded():
        dx, dw = polyconv.conv_general_dilated_vjp(xt.detach(), wt.detach(), torch.from_numpy(g),
                                                   dimension_numbers=_dn(x), **p)
        (_conv(xt, wt, p) * torch.from_numpy(g)).sum().backward()
    for got in (dx, xt.grad):
        np.testing.assert_array_equal(got.detach().numpy(), ex)
    for got in (dw, wt.grad):
        np.testing.assert_array_equal(got.detach().numpy(), ew)


@pytest.mark.parametrize("name", TRANSPOSED)
def test_torch_conv_transpose(name: str) -> None:
    torch = _torch()
    x, w, p = _case(name, "medium")
    with _bounded():
        y = polyconv.conv_transpose(torch.from_numpy(x), torch.from_numpy(w), p["lhs_dilation"], p["padding"],
                                    p["rhs_dilation"], _dn(x))
    np.testing.assert_array_equal(y.numpy(), _expected_conv(x, w, p))


def test_torch_layouts_and_groups() -> None:
    """Channels-last operands and feature groups, tap by tap."""
    torch = _torch()
    x, w, p = _case("rhs dilation 2**40 into padding 2**40", "medium")
    p["feature_group_count"] = 2
    w = w[:, :4]
    xl, wl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    with _bounded():
        y = polyconv.conv_general_dilated(torch.from_numpy(xl), torch.from_numpy(wl),
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"), **p)
    np.testing.assert_array_equal(y.numpy(), _expected_conv(x, w, p).transpose(0, 2, 3, 1))


@pytest.mark.parametrize("name", ["pad 2**62, stride 2**62", "rhs dilation 2**40 into padding 2**40"])
def test_torch_patches(name: str) -> None:
    torch = _torch()
    x, w, p = _case(name)
    p.pop("feature_group_count")
    with _bounded():
        y = polyconv.conv_general_dilated_patches(torch.from_numpy(x), w.shape[2:], dimension_numbers=_dn(x), **p)
    np.testing.assert_array_equal(y.numpy(), _expected_patches(x, w.shape[2:], p))


# -- JAX ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def jax_modules(jax_x64: Any) -> Any:
    jax, lax = jax_x64
    lax.conv_general_dilated(jax.numpy.ones((1, 1, 3)), jax.numpy.ones((1, 1, 2)), (1,), "VALID")  # outside _bounded
    return jax


@pytest.mark.parametrize("name", CASES)
def test_jax_conv(name: str, jax_modules: Any) -> None:
    """Computed tap by tap where the parameters overflow JAX's int64 shape
    arithmetic or would pad far past the input (jax.lax operations still)."""
    jax = jax_modules
    x, w, p = _case(name, "medium")
    with _bounded(30):  # one compilation of the whole call, not one per operation
        y = jax.jit(lambda a, b: polyconv.conv_general_dilated(a, b, dimension_numbers=_dn(x), **p))(x, w)
    np.testing.assert_array_equal(np.asarray(y), _expected_conv(x, w, p))


@pytest.mark.parametrize("name", ["stride 2**62, padding 30 * 2**62", "lhs dilation 2**40, stride 2**40"])
def test_jax_jit_grad_and_other_ops(name: str, jax_modules: Any) -> None:
    jax, jnp = jax_modules, jax_modules.numpy
    x, w, p = _case(name)
    g = np.random.default_rng(1).integers(-3, 4, _expected_conv(x, w, p).shape).astype(x.dtype)
    ex, ew = _expected_vjp(x, w, g, p)
    with _bounded(30):
        y = jax.jit(lambda a, b: polyconv.conv_general_dilated(a, b, dimension_numbers=_dn(x), **p))(x, w)
        grads = jax.grad(lambda a, b: jnp.sum(polyconv.conv_general_dilated(a, b, dimension_numbers=_dn(x), **p) * g),
                         argnums=(0, 1))(jnp.asarray(x), jnp.asarray(w))
        vjp = polyconv.conv_general_dilated_vjp(jnp.asarray(x), jnp.asarray(w), jnp.asarray(g),
                                                dimension_numbers=_dn(x), **p)
        q = {k: v for k, v in p.items() if k != "feature_group_count"}
        patches = polyconv.conv_general_dilated_patches(jnp.asarray(x), w.shape[2:], dimension_numbers=_dn(x), **q)
    np.testing.assert_array_equal(np.asarray(y), _expected_conv(x, w, p))
    for got in (grads, vjp):
        np.testing.assert_array_equal(np.asarray(got[0]), ex)
        np.testing.assert_array_equal(np.asarray(got[1]), ew)
    np.testing.assert_array_equal(np.asarray(patches), _expected_patches(x, w.shape[2:], q))


@pytest.mark.parametrize("name", TRANSPOSED)
def test_jax_conv_transpose_and_local(name: str, jax_modules: Any) -> None:
    jnp = jax_modules.numpy
    x, w, p = _case(name)
    q = {k: v for k, v in p.items() if k != "feature_group_count"}
    expected = _expected_patches(x, w.shape[2:], q)
    rhs = np.random.default_rng(2).integers(-3, 4, (2, expected.shape[1], *expected.shape[2:])).astype(x.dtype)
    with _bounded(30):
        y = polyconv.conv_transpose(jnp.asarray(x), jnp.asarray(w), p["lhs_dilation"], p["padding"],
                                    p["rhs_dilation"], _dn(x), transpose_kernel=True)
        local = polyconv.conv_general_dilated_local(jnp.asarray(x), jnp.asarray(rhs), q["window_strides"],
                                                    q["padding"], w.shape[2:], q["lhs_dilation"], q["rhs_dilation"],
                                                    _dn(x))
    wt = np.flip(w, 2).swapaxes(0, 1)
    np.testing.assert_array_equal(np.asarray(y), _expected_conv(x, wt, p))
    np.testing.assert_array_equal(np.asarray(local), np.einsum("ni...,oi...->no...", expected, rhs))
