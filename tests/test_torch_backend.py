"""The torch backend: native lowering, autograd, devices, precision, torch.compile.

Values on every grid are checked by the conformance suite (conformance/, run by pytest); this file
checks what is particular to PyTorch.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from polyconv.conformance import cases, reference, tolerances

import polyconv
from polyconv.errors import MixedArraysError, UnsupportedDtypeError
from polyconv.spec import conv_spec

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch -c constraints.txt")
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

NHWC = ("NHWC", "HWIO", "NHWC")


def _t(a: np.ndarray, grad: bool = False) -> Any:
    return torch.from_numpy(np.array(a)).requires_grad_(grad)


# -- which PyTorch ops run --------------------------------------------------------------

class _Ops(TorchDispatchMode):
    """Records the ATen ops a call dispatches."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


# ops of im2col, zero insertion or matrix-product lowerings: none may run where a native kernel exists
_NOT_NATIVE = {
    "aten.im2col", "aten.col2im", "aten.unfold", "aten.mm", "aten.bmm", "aten.addmm", "aten.matmul",
    "aten.zeros", "aten.new_zeros", "aten.zeros_like", "aten.full", "aten.fill_", "aten.cat", "aten.stack",
    "aten.index", "aten.index_put_", "aten.scatter", "aten.slice_scatter", "aten.mul", "aten.add", "aten.sum",
}

# (name, lhs shape, rhs shape, kwargs, transposed): the standard cases and how PyTorch runs them
_STANDARD = [
    ("nchw-same", (2, 4, 9, 9), (6, 4, 3, 3), {"padding": "SAME"}, False),
    ("nhwc-same", (2, 9, 9, 4), (3, 3, 4, 6), {"padding": "SAME", "dimension_numbers": NHWC}, False),
    ("asymmetric", (2, 9, 9, 4), (3, 3, 4, 6), {"padding": ((1, 2), (0, 1)), "dimension_numbers": NHWC}, False),
    ("negative", (2, 4, 9, 9), (6, 4, 3, 3), {"padding": ((-1, 2), (0, -2))}, False),
    ("strided", (2, 4, 9, 9), (6, 4, 3, 3), {"padding": "SAME", "window_strides": (2, 2)}, False),
    ("atrous", (2, 4, 9, 9), (6, 4, 3, 3), {"padding": "VALID", "rhs_dilation": (2, 1)}, False),
    ("groups", (2, 4, 9, 9), (6, 2, 3, 3), {"padding": "SAME", "feature_group_count": 2}, False),
    ("depthwise", (2, 4, 9, 9), (4, 1, 3, 3), {"padding": "SAME", "feature_group_count": 4}, False),
    ("batch-groups", (4, 4, 9, 9), (6, 4, 3, 3), {"padding": "VALID", "batch_group_count": 2}, False),
    ("lhs-dilation", (2, 4, 5, 5), (6, 4, 3, 3), {"padding": ((2, 2), (2, 2)), "lhs_dilation": (2, 2)}, True),
    ("lhs-dilation-asym", (2, 4, 5, 5), (6, 4, 3, 3), {"padding": ((0, 3), (1, 1)), "lhs_dilation": (2, 3)}, True),
    ("lhs-dilation-groups", (2, 4, 5, 5), (6, 2, 3, 3),
     {"padding": ((1, 1), (2, 1)), "lhs_dilation": (2, 2), "feature_group_count": 2}, True),
    ("1d", (2, 3, 17), (5, 3, 4), {"padding": ((2, 1),)}, False),
    ("3d", (1, 2, 6, 7, 5), (3, 2, 2, 3, 2), {"padding": "SAME"}, False),
    ("0d", (5, 3), (4, 3), {"padding": ()}, False),
]


@pytest.mark.parametrize("name, lhs, rhs, kw, transposed", _STANDARD, ids=[c[0] for c in _STANDARD])
def test_standard_cases_run_one_native_convolution(
    name: str, lhs: tuple, rhs: tuple, kw: dict, transposed: bool
) -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(lhs), rng.standard_normal(rhs)
    n = len(lhs) - 2
    kw = {"window_strides": (1,) * n, **kw}
    with _Ops() as rec:
        out = polyconv.conv_general_dilated(_t(x), _t(w), **kw)
    assert rec.ops.count("aten.convolution") == 1, rec.ops
    assert not _NOT_NATIVE & set(rec.ops), rec.ops
    assert rec.ops.count("aten.constant_pad_nd") <= 1, rec.ops
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
    tolerances.assert_close(out.numpy(), x, w, spec)
    # the convolution PyTorch ran was a transposed one exactly for lhs dilation
    with _Transposed() as flags:
        polyconv.conv_general_dilated(_t(x), _t(w), **kw)
    assert flags.transposed == [transposed]


class _Transposed(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.transposed: list[bool] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if str(func.overloadpacket) == "aten.convolution":
            self.transposed.append(bool(args[6]))
        return func(*args, **(kwargs or {}))


def test_transpose_and_patches_are_native() -> None:
    rng = np.random.default_rng(1)
    x = _t(rng.standard_normal((2, 5, 5, 4)))
    w = _t(rng.standard_normal((3, 3, 4, 6)))
    with _Transposed() as flags:
        polyconv.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=NHWC)
    assert flags.transposed == [True]
    with _Ops() as rec:
        polyconv.conv_general_dilated_patches(x, (3, 3), (1, 1), "SAME", dimension_numbers=NHWC)
    assert "aten.convolution" not in rec.ops and "aten.unfold" in rec.ops  # strided windows, no arithmetic


def test_channels_last_input_stays_channels_last() -> None:
    """NHWC data reaches the convolution as a channels_last NCHW view, so the
    result comes back NHWC-contiguous without a layout copy."""
    x = torch.randn(2, 9, 9, 8)
    w = torch.randn(3, 3, 8, 16)
    out = polyconv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC)
    assert out.is_contiguous()
    nchw = torch.randn(2, 8, 9, 9).to(memory_format=torch.channels_last)
    out = polyconv.conv_general_dilated(nchw, torch.randn(16, 8, 3, 3), (1, 1), "SAME")
    assert out.is_contiguous(memory_format=torch.channels_last)


# -- autograd ---------------------------------------------------------------------------

_GRAD_CASES = [
    ("groups", (2, 4, 5, 4), (6, 2, 3, 2), {"padding": "SAME", "feature_group_count": 2}),
    ("batch-groups", (4, 2, 5, 4), (6, 2, 2, 3), {"padding": "VALID", "batch_group_count": 2}),
    ("dilations", (1, 2, 6, 5), (3, 2, 2, 2),
     {"padding": ((1, 2), (0, 1)), "lhs_dilation": (2, 1), "rhs_dilation": (1, 2)}),
    ("negative-padding", (2, 2, 7, 6), (3, 2, 3, 2), {"padding": ((-1, 2), (1, -2)), "window_strides": (2, 1)}),
    ("crop-past-edge", (1, 2, 5), (2, 2, 2), {"padding": ((-6, 7),)}),
    ("nhwc", (2, 5, 4, 2), (2, 3, 2, 3), {"padding": "SAME", "dimension_numbers": NHWC, "window_strides": (2, 1)}),
    ("lhs-dilation-strided", (1, 2, 4, 4), (2, 2, 2, 2),
     {"padding": ((1, 1), (0, 2)), "lhs_dilation": (2, 2), "window_strides": (2, 1)}),
    ("0d", (3, 4), (2, 4), {"padding": ()}),
    ("4d", (1, 2, 3, 2, 2, 3), (2, 2, 2, 2, 1, 2),
     {"padding": ((1, 0), (0, 1), (0, 0), (1, 1)), "lhs_dilation": (2, 1, 1, 1)}),
]


def _kwargs(lhs: tuple, kw: dict) -> dict:
    return {"window_strides": (1,) * (len(lhs) - 2), **kw}


@pytest.mark.parametrize("name, lhs, rhs, kw", _GRAD_CASES, ids=[c[0] for c in _GRAD_CASES])
def test_gradcheck_conv(name: str, lhs: tuple, rhs: tuple, kw: dict) -> None:
    rng = np.random.default_rng(2)
    x, w = _t(rng.standard_normal(lhs), True), _t(rng.standard_normal(rhs), True)
    kw = _kwargs(lhs, kw)

    def f(a: Any, b: Any) -> Any:
        return polyconv.conv_general_dilated(a, b, **kw)

    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))


@pytest.mark.parametrize("name, lhs, rhs, kw", _GRAD_CASES, ids=[c[0] for c in _GRAD_CASES])
def test_autograd_equals_spec_vjp(name: str, lhs: tuple, rhs: tuple, kw: dict) -> None:
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(lhs), rng.standard_normal(rhs)
    kw = _kwargs(lhs, kw)
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
    g = rng.standard_normal(spec.out_shape)
    tx, tw = _t(x, True), _t(w, True)
    out = polyconv.conv_general_dilated(tx, tw, **kw)
    dx, dw = torch.autograd.grad(out, (tx, tw), _t(g))
    assert tolerances.check_vjp_close(dx.numpy(), dw.numpy(), x, w, g, spec) is None


def test_gradcheck_other_ops() -> None:
    rng = np.random.default_rng(4)
    x = _t(rng.standard_normal((1, 5, 4, 2)), True)
    w = _t(rng.standard_normal((3, 2, 2, 2)), True)
    for transpose_kernel in (False, True):
        for padding in ("SAME", "VALID", ((2, 0), (1, 1))):
            assert torch.autograd.gradcheck(
                lambda a, b, p=padding, t=transpose_kernel: polyconv.conv_transpose(
                    a, b, (2, 1), p, dimension_numbers=NHWC, transpose_kernel=t),
                (x, w),
            )
    assert torch.autograd.gradcheck(
        lambda a: polyconv.conv_general_dilated_patches(a, (2, 3), (1, 2), ((1, 0), (-1, 2)), rhs_dilation=(2, 1),
                                                        dimension_numbers=NHWC), (x,))
    assert torch.autograd.gradcheck(
        lambda a: polyconv.conv_general_dilated_patches(a, (2, 2), (1, 1), ((1, 1), (0, 1)), lhs_dilation=(2, 1),
                                                        dimension_numbers=NHWC), (x,))
    lx = _t(rng.standard_normal((2, 3, 5, 4)), True)  # NCHW, filter (2, 2), VALID: 4 x 3 positions, I = 3 * 4
    lw = _t(rng.standard_normal((2, 12, 4, 3)), True)
    assert torch.autograd.gradcheck(
        lambda a, b: polyconv.conv_general_dilated_local(a, b, (1, 1), "VALID", (2, 2)), (lx, lw))


def test_vjp_op_on_tensors_equals_autograd() -> None:
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((6, 2, 3, 2))
    kw = {"window_strides": (2, 1), "padding": ((1, -1), (2, 0)), "rhs_dilation": (1, 2), "feature_group_count": 2}
    tx, tw = _t(x, True), _t(w, True)
    out = polyconv.conv_general_dilated(tx, tw, **kw)
    g = torch.randn(out.shape, dtype=out.dtype)
    dx, dw = torch.autograd.grad(out, (tx, tw), g)
    vx, vw = polyconv.conv_general_dilated_vjp(tx.detach(), tw.detach(), g, **kw)
    torch.testing.assert_close(vx, dx)
    torch.testing.assert_close(vw, dw)


# -- dtypes -----------------------------------------------------------------------------

def test_integer_results_are_exact_and_wrap() -> None:
    rng = np.random.default_rng(6)
    info = np.iinfo(np.int64)
    x = rng.integers(info.min, info.max, (2, 3, 9), dtype=np.int64)
    w = rng.integers(info.min, info.max, (2, 3, 3), dtype=np.int64)
    out = polyconv.conv_general_dilated(_t(x), _t(w), (1,), ((1, 2),), lhs_dilation=(2,))
    np.testing.assert_array_equal(out.numpy(), reference.conv_general_dilated(x, w, (1,), ((1, 2),), lhs_dilation=(2,)))


@pytest.mark.parametrize("dtype, out_dtype", [("int8", None), ("int16", "int32"), ("int32", None), ("int32", "int64"),
                                              ("int64", None), ("uint8", "int16")])
def test_limb_convolution_is_exact(dtype: str, out_dtype: str | None) -> None:
    """The integer path for devices without integer convolution (CUDA), run on
    the CPU: float64 convolutions of 16-bit limbs, recombined modulo 2**bits."""
    from polyconv.backends.torch import exact, lower

    rng = np.random.default_rng(7)
    x = cases.make_operand(rng, (2, 4, 7, 6), dtype)
    w = cases.make_operand(rng, (3, 4, 3, 2), dtype)
    kw = {"window_strides": (1, 2), "padding": ((1, 1), (0, 1)), "rhs_dilation": (2, 1)}
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw, preferred_element_type=out_dtype)

    def conv(a: Any, b: Any) -> Any:
        return lower.conv_canonical(a, b, spec.window_strides, spec.padding, spec.lhs_dilation, spec.rhs_dilation, 1, 1)

    bits_in, bits_out = np.dtype(dtype).itemsize * 8, np.dtype(spec.out_dtype).itemsize * 8
    for contraction in (4 * 3 * 2, exact.MAX_LIMB_CONTRACTION - 1):  # the float64 shortcut, then the limbs
        out = exact.integer_conv(conv, _t(x.astype(np.int64)), _t(w.astype(np.int64)), bits_in, bits_out,
                                 contraction, "test")
        want = reference.cast_result(reference.conv_from_spec(x, w, spec), spec.out_dtype)
        np.testing.assert_array_equal(out.numpy().astype(spec.out_dtype), want)


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64"])
def test_unsigned_wide_integers_are_unsupported(dtype: str) -> None:
    x = torch.zeros((1, 1, 4), dtype=getattr(torch, dtype))
    with pytest.raises(UnsupportedDtypeError, match=f"lhs has a dtype the 'torch' backend does not .*got {dtype}"):
        polyconv.conv_general_dilated(x, x, (1,), "VALID")


def test_half_precision_accumulates_in_float32_on_cpu() -> None:
    x = torch.full((1, 1, 4097), 1.0, dtype=torch.float16)
    w = torch.full((1, 1, 4097), 1.0, dtype=torch.float16)
    w[0, 0, 0] = 2.0 ** -11  # lost if the sum of 4096 ones were kept in float16 along the way
    out = polyconv.conv_general_dilated(x, w, (1,), "VALID", preferred_element_type="float32")
    assert out.dtype == torch.float32 and out.item() == 4096 + 2.0 ** -11


# -- devices and precision --------------------------------------------------------------

def test_operands_on_two_devices_are_an_error_naming_both() -> None:
    x = torch.zeros((1, 1, 4))
    w = torch.zeros((1, 1, 2), device="meta")
    with pytest.raises(MixedArraysError, match="lhs is on device 'cpu' but rhs is on device 'meta'"):
        polyconv.conv_general_dilated(x, w, (1,), "VALID")


def test_results_stay_on_the_operands_device() -> None:
    """The meta device stands in for an accelerator here: nothing is copied to the CPU."""
    x = torch.zeros((2, 3, 8, 8), device="meta")
    w = torch.zeros((4, 3, 3, 3), device="meta")
    out = polyconv.conv_general_dilated(x, w, (1, 1), ((1, 2), (0, 1)))
    assert out.device.type == "meta" and tuple(out.shape) == (2, 4, 9, 7)
    out = polyconv.conv_transpose(x, [[[[1.0]]] * 3], (2, 2), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
    assert out.device.type == "meta"


def test_python_lists_join_the_tensor() -> None:
    x = torch.arange(6.0).reshape(1, 1, 6)  # float32, as torch.as_tensor reads Python floats
    out = polyconv.conv_general_dilated(x, [[[1.0, -1.0]]], (1,), "VALID")
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, torch.full((1, 1, 5), -1.0))


def test_highest_precision_disables_tf32_for_the_call_only() -> None:
    from polyconv.backends.torch.run import _ieee_float32

    conv_flags = torch.backends.cudnn.conv
    before = (conv_flags.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    with _ieee_float32(torch):
        assert conv_flags.fp32_precision == "ieee" and torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert (conv_flags.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before
    with pytest.raises(RuntimeError), _ieee_float32(torch):
        raise RuntimeError("restored on errors too")
    assert (conv_flags.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before
    polyconv.conv_general_dilated(torch.ones(1, 1, 3), torch.ones(1, 1, 2), (1,), "VALID", precision="highest")
    assert (conv_flags.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before


def test_inputs_are_not_modified_and_keep_requires_grad() -> None:
    x = torch.randn(1, 2, 5, requires_grad=True)
    w = torch.randn(3, 2, 2)
    x0, w0 = x.detach().clone(), w.clone()
    polyconv.conv_general_dilated(x, w, (1,), ((-1, 2),))
    assert torch.equal(x.detach(), x0) and torch.equal(w, w0) and x.requires_grad and not w.requires_grad


# -- torch.compile ----------------------------------------------------------------------

_COMPILED = [
    ("conv1d", lambda x, w: polyconv.conv_general_dilated(x, w, (1,), "SAME"), (2, 3, 16), (4, 3, 3)),
    ("conv2d-nhwc", lambda x, w: polyconv.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=NHWC),
     (2, 8, 8, 3), (3, 3, 3, 4)),
    ("conv2d-groups-pad", lambda x, w: polyconv.conv_general_dilated(x, w, (1, 1), ((1, 2), (0, 1)),
                                                                    feature_group_count=2), (2, 4, 8, 8), (6, 2, 3, 3)),
    ("conv3d", lambda x, w: polyconv.conv_general_dilated(x, w, (1, 1, 1), "VALID"), (1, 2, 5, 5, 5), (3, 2, 2, 2, 2)),
    ("transpose", lambda x, w: polyconv.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=NHWC),
     (2, 4, 4, 3), (3, 3, 3, 4)),
    ("patches", lambda x, w: polyconv.conv_general_dilated_patches(x, (3, 3), (1, 1), "SAME") * w.sum(),
     (2, 3, 6, 6), (1,)),
]


@pytest.mark.parametrize("name, f, lhs, rhs", _COMPILED, ids=[c[0] for c in _COMPILED])
def test_compiles_without_graph_breaks(name: str, f: Any, lhs: tuple, rhs: tuple) -> None:
    torch._dynamo.reset()
    x, w = torch.randn(lhs, requires_grad=True), torch.randn(rhs, requires_grad=True)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    out = compiled(x, w)
    torch.testing.assert_close(out, f(x, w))
    out.sum().backward()  # gradients flow through the compiled graph
    assert x.grad is not None and w.grad is not None
    explanation = torch._dynamo.explain(f)(x, w)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


@pytest.mark.slow
def test_compiled_first_call_in_a_fresh_process() -> None:
    """polyconv imported before torch, and the first call traced by Inductor:
    polyconv's import hook has the torch backend ready for the trace."""
    code = textwrap.dedent("""
        import sys
        import polyconv
        assert "torch" not in sys.modules
        import torch
        f = lambda x, w: polyconv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x, w = torch.randn(2, 6, 6, 3), torch.randn(3, 3, 3, 4)
        out = torch.compile(f, fullgraph=True)(x, w)
        torch.testing.assert_close(out, f(x, w))
        print("compiled")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "compiled" in run.stdout, run.stderr[-3000:]


def test_conv_transpose_takes_pytorchs_weight_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """``conv_transpose(..., transpose_kernel=True)`` with a ``(C_in, C_out, *K)`` kernel is
    PyTorch's transposed convolution: the torch backend gives that weight to
    ``conv_transpose2d`` without flipping it (twice), and the values are PyTorch's
    and the reference's."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 7, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 2, generator=gen, dtype=torch.float64)  # PyTorch's weight: (C_in, C_out, kH, kW)
    pads = ((1, 2), (0, 1))  # PyTorch: padding (1, 1), output_padding (1, 1)
    kw: dict[str, Any] = dict(dimension_numbers=("NCHW", "OIHW", "NCHW"), transpose_kernel=True)
    flips: list[tuple[int, ...]] = []
    flip = torch.Tensor.flip
    monkeypatch.setattr(torch.Tensor, "flip", lambda self, *dims: flips.append(dims) or flip(self, *dims))
    y = polyconv.conv_transpose(x, w, (2, 2), pads, **kw)
    assert flips == []
    monkeypatch.undo()
    expected = torch.nn.functional.conv_transpose2d(x, w, stride=2, padding=(1, 1), output_padding=(1, 1))
    torch.testing.assert_close(y, expected)
    np.testing.assert_allclose(y.numpy(), reference.conv_transpose(x.numpy(), w.numpy(), (2, 2), pads, **kw),
                               rtol=1e-12, atol=1e-12)
    # without lhs dilation (strides 1) there is no transposed lowering: the forward kernel is made
    y1 = polyconv.conv_transpose(x, w, (1, 1), "SAME", **kw)
    np.testing.assert_allclose(y1.numpy(), reference.conv_transpose(x.numpy(), w.numpy(), (1, 1), "SAME", **kw),
                               rtol=1e-12, atol=1e-12)
