"""The CuPy backend.

Everywhere: its registration and manifest, its availability report (CuPy
missing, no driver, hidden devices, no device), ``python -m polyconv info``,
the translation of specs into cuDNN graphs (:mod:`polyconv.backends.cupy.cudnn_plan`),
and the whole cuDNN path (plans, the array work around cuDNN, the choice of
path and the fallbacks of :class:`~polyconv.backends.cupy.paths.Paths`) run
on NumPy arrays, with cuDNN replaced by a NumPy implementation of cuDNN's
documented ``conv_fprop`` / ``conv_dgrad`` semantics that reads and writes
memory through the plans' NCHW dims and strides, checked against the
reference over the conformance grids.

On a machine with a CUDA GPU and CuPy: the conformance grids of every op on
CuPy arrays, cuDNN against the gather-GEMM, the current stream respected,
the operands' device kept, ``precision='highest'`` free of TF32.  Without one
these skip, saying why.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from polyconv.backends.cupy import CupyBackend, _device_id, probe
from polyconv.backends.cupy import backend as cupy_backend
from polyconv.backends.cupy.cudnn_plan import CUDNN_DATA_TYPES, CudnnPlan, cudnn_plans, why_not
from polyconv.backends.cupy.paths import Paths
from polyconv.conformance import cases, checks, tolerances
from polyconv.conformance.suite import sampled

import polyconv
from polyconv.backend import Backend, Manifest
from polyconv.registry import registry
from polyconv.spec import conv_spec

CUPY_INSTALLED = importlib.util.find_spec("cupy") is not None


def _spec(lhs: tuple[int, ...], rhs: tuple[int, ...], dtype: str = "float32", strides: Any = None,
          padding: Any = "VALID", **kw: Any) -> Any:
    strides = (1,) * (len(lhs) - 2) if strides is None else strides
    return conv_spec(lhs, rhs, dtype, dtype, strides, padding, **kw)


# -- registration, manifest, availability ------------------------------------------------

def test_registered_by_polyconv_itself() -> None:
    rec = registry.records()["cupy"]
    assert rec.distribution == "polyconv" and rec.target == "polyconv.backends.cupy:backend"


def test_manifest() -> None:
    m = cupy_backend.manifest
    assert m.devices == ("cuda",) and m.ops == frozenset({"conv_general_dilated"})
    assert {"float16", "float32", "float64", "complex64", "int8", "uint64", "bool"} <= m.dtypes
    assert {"lhs_dilation", "feature_group_count", "batch_group_count", "preferred_element_type",
            "reduced_precision"} <= m.features
    assert m.max_spatial_dims is None and not m.fallback
    assert any("cuDNN" in note for note in m.notes) and any("stream" in note for note in m.notes)


@pytest.mark.skipif(CUPY_INSTALLED, reason="CuPy is installed here: this checks the report without it")
def test_info_says_cupy_is_not_installed() -> None:
    row = next(r for r in polyconv.backend_info() if r["name"] == "cupy")
    assert row["status"] == "unavailable"
    assert row["reason"] == "CuPy is not installed (pip install 'polyconv[cupy]')"
    assert row["capabilities"]["devices"] == ["cuda"] and row["details"] is None
    proc = subprocess.run([sys.executable, "-m", "polyconv", "info", "--wide"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("cupy "))
    assert line.split()[:2] == ["cupy", "unavailable"]
    assert line.rstrip().endswith("CuPy is not installed (pip install 'polyconv[cupy]')")
    narrow = subprocess.run([sys.executable, "-m", "polyconv", "info"], capture_output=True, text=True, timeout=120)
    assert "cupy: CuPy is not installed (pip install 'polyconv[cupy]')" in narrow.stdout.splitlines()


@pytest.mark.skipif(CUPY_INSTALLED, reason="CuPy is installed here: this checks the error without it")
def test_a_call_naming_cupy_says_why_it_cannot_run() -> None:
    with pytest.raises(polyconv.BackendUnavailableError, match="backend 'cupy' cannot run here: CuPy is not installed"):
        polyconv.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2)), (1,), "VALID", backend="cupy")


class _FakeRuntime:
    def __init__(self, count: int | Exception) -> None:
        self.count = count

    def getDeviceCount(self) -> int:  # noqa: N802 (CuPy's name)
        if isinstance(self.count, Exception):
            raise self.count
        return self.count


class _FakeCupy:
    def __init__(self, count: int | Exception) -> None:
        self.cuda = type("cuda", (), {"runtime": _FakeRuntime(count)})()


def _no_driver() -> None:
    raise OSError("libcuda.so.1: cannot open shared object file")


@pytest.mark.parametrize(("installed", "modules", "environ", "driver", "expected"), [
    (False, {}, {}, None, "CuPy is not installed (pip install 'polyconv[cupy]')"),
    (True, {}, {}, _no_driver, "no CUDA device: the NVIDIA driver library cannot be loaded (libcuda.so.1: cannot "
                               "open shared object file)"),
    (True, {}, {"CUDA_VISIBLE_DEVICES": "-1"}, None, "no CUDA device: CUDA_VISIBLE_DEVICES='-1' hides every GPU"),
    (True, {}, {"CUDA_VISIBLE_DEVICES": " "}, None, "no CUDA device: CUDA_VISIBLE_DEVICES=' ' hides every GPU"),
    (True, {}, {"CUDA_VISIBLE_DEVICES": "1"}, lambda: None, None),
    (True, {"cupy": _FakeCupy(RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected"))}, {}, None,
     "no CUDA device: RuntimeError: cudaErrorNoDevice: no CUDA-capable device is detected"),
    (True, {"cupy": _FakeCupy(0)}, {}, None, "no CUDA device: CuPy sees none"),
    (True, {"cupy": _FakeCupy(2)}, {"CUDA_VISIBLE_DEVICES": ""}, _no_driver, None),  # CuPy's word wins
])
def test_availability_report(installed: bool, modules: dict[str, Any], environ: dict[str, str], driver: Any,
                             expected: str | None) -> None:
    def refuse() -> None:
        raise AssertionError("the driver is not consulted in this case")

    reason = probe.cupy_unavailable(
        find_spec=lambda name: object() if installed else None, modules=modules, environ=environ,
        load_driver=driver or refuse,
    )
    assert reason == expected


def test_importing_the_backend_imports_neither_cupy_nor_cudnn() -> None:
    code = ("import sys, polyconv, polyconv.backends.cupy as c; polyconv.backend_info(); c.backend.details(); "
            "c.backend.unavailable_reason(); print(json.dumps([m for m in ('cupy', 'cudnn') if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_owns_only_cupy_arrays_and_names_devices() -> None:
    assert not cupy_backend.owns(np.ones(3)) and not cupy_backend.owns([1.0])
    assert [_device_id(d) for d in (0, 3, "cuda:1", "1", "gpu:2", type("D", (), {"id": 5})())] == [0, 3, 1, 1, 2, 5]
    with pytest.raises(ValueError, match="from_numpy: device must be a CUDA device number"):
        _device_id("tpu:0")


def test_details_say_which_path(monkeypatch: pytest.MonkeyPatch) -> None:
    be = CupyBackend()
    monkeypatch.setattr(probe, "frontend_version", lambda: None)
    assert be.details() == "the gather-GEMM on cuBLAS (for cuDNN: pip install 'polyconv[cudnn]')"
    monkeypatch.setattr(probe, "frontend_version", lambda: "1.32.0")
    assert be.details() == "cuDNN via nvidia-cudnn-frontend 1.32.0 where it can, else the gather-GEMM on cuBLAS"
    loaded = Paths(lambda: type("E", (), {"version": "nvidia-cudnn-frontend 1.32.0, cuDNN 9.27.0"})())
    loaded.engine()
    be.paths = loaded
    assert be.details() == ("cuDNN (nvidia-cudnn-frontend 1.32.0, cuDNN 9.27.0) where it can, "
                            "else the gather-GEMM on cuBLAS")
    be.paths = Paths(_raise(OSError("libcudnn.so.9: cannot open shared object file")))
    be.paths.engine()
    assert be.details() == ("the gather-GEMM on cuBLAS (cuDNN unusable: OSError: libcudnn.so.9: "
                            "cannot open shared object file)")


def _raise(exc: Exception) -> Any:
    def load() -> Any:
        raise exc

    return load


# -- the translation: which specs cuDNN takes, as which graph -----------------------------

@pytest.mark.parametrize(("spec", "reason"), [
    (_spec((1, 1, 4), (1, 1, 2), "int32"), "int32 convolutions: cuDNN has no exact integer convolution"),
    (_spec((1, 1, 4), (1, 1, 2), "bool"), "bool convolutions: cuDNN has no exact integer convolution"),
    (_spec((1, 1, 4), (1, 1, 2), "int8", preferred_element_type="float32"),
     "int8 convolutions: cuDNN has no exact integer convolution"),
    (_spec((1, 1, 4), (1, 1, 2), "complex64"), "complex64 convolutions: cuDNN has no complex convolution"),
    (_spec((1, 1, 2, 2, 2, 2), (1, 1, 1, 1, 1, 1)), "4 spatial dims: cuDNN convolves at most 3"),
    (_spec((4, 2, 5), (6, 2, 3), batch_group_count=2), "batch_group_count > 1: cuDNN has no batch groups"),
    (_spec((0, 2, 5), (6, 2, 3)), "empty operands or result: the result is zeros"),
    (_spec((1, 0, 5), (6, 0, 3)), "empty operands or result: the result is zeros"),
    (_spec((1, 2, 2), (6, 2, 3)), "empty operands or result: the result is zeros"),
    (_spec((1, 2, 5), (3, 2, 3), strides=(2,), padding=((1, 1),), lhs_dilation=(2,)),
     "lhs dilation with a window stride: no single cuDNN node does both"),
    (_spec((1, 2, 5), (3, 2, 3), padding=((3, 0),), lhs_dilation=(2,)),
     "lhs dilation with padding outside [0, dilated window - 1]: not a cuDNN data gradient"),
    (_spec((1, 2, 5), (3, 2, 3), padding=((-1, 0),), lhs_dilation=(2,)),
     "lhs dilation with padding outside [0, dilated window - 1]: not a cuDNN data gradient"),
    (_spec((1, 2, 5), (3, 2, 1), padding=((-6, 3),)), "negative padding that crops past the input's edge"),
])
def test_what_goes_to_the_gather_gemm(spec: Any, reason: str) -> None:
    assert why_not(spec) == reason
    assert cudnn_plans(spec) == ()


def test_fprop_plan_channels_last_with_unit_axes_for_1d() -> None:
    spec = _spec((2, 4, 9), (6, 2, 3), strides=(2,), padding=((1, 1),), rhs_dilation=(2,), feature_group_count=2)
    (plan,) = cudnn_plans(spec)
    assert (plan.op, plan.io_dtype, plan.compute_dtype, plan.groups) == ("fprop", "float32", "float32", 2)
    assert plan.lhs_perm == (0, 2, 1) and plan.rhs_perm == (0, 2, 1)  # (N, W, C) and (O, K, I)
    assert plan.x_shape == (2, 9, 1, 4) and plan.w_shape == (6, 3, 1, 2) and plan.y_shape == (2, 4, 1, 6)
    assert plan.x_dims == (2, 4, 9, 1) and plan.x_strides == (36, 1, 4, 4)
    assert plan.w_dims == (6, 2, 3, 1) and plan.y_dims == (2, 6, 4, 1)
    assert (plan.pre_padding, plan.post_padding, plan.stride, plan.dilation) == ((1, 0), (1, 0), (2, 1), (2, 1))
    assert plan.out_perm == (0, 2, 1) and not plan.asymmetric and plan.extra_axes == 1


def test_fprop_plan_of_a_channels_last_layout_needs_no_permutation() -> None:
    spec = _spec((1, 5, 6, 3), (3, 3, 3, 8), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    (plan,) = cudnn_plans(spec)
    assert plan.lhs_perm == (0, 1, 2, 3) and plan.out_perm is None
    assert plan.rhs_perm == (3, 0, 1, 2)  # (O, H, W, I) from HWIO
    assert plan.pre_padding == plan.post_padding == (1, 1)


def test_asymmetric_padding_has_a_symmetric_second_candidate() -> None:
    spec = _spec((1, 1, 8, 8), (1, 1, 3, 3), strides=(2, 2), padding="SAME")  # pads (0, 1)
    native, symmetric = cudnn_plans(spec)
    assert native.asymmetric and (native.pre_padding, native.post_padding) == ((0, 0), (1, 1))
    assert native.in_pad == ((0, 0), (0, 0)) and native.x_shape == (1, 8, 8, 1)
    assert not symmetric.asymmetric and symmetric.pre_padding == symmetric.post_padding == (0, 0)
    assert symmetric.in_pad == ((0, 1), (0, 1)) and symmetric.x_shape == (1, 9, 9, 1)
    assert native.y_shape == symmetric.y_shape == (1, 4, 4, 1)


def test_negative_padding_crops_the_input() -> None:
    spec = _spec((1, 1, 10), (1, 1, 3), padding=((-2, 1),))
    native, symmetric = cudnn_plans(spec)
    assert native.in_crop == ((2, 0),) and (native.pre_padding, native.post_padding) == ((0, 0), (1, 0))
    assert native.x_shape == (1, 8, 1, 1) and native.y_shape == (1, 7, 1, 1)
    assert symmetric.in_crop == ((2, 0),) and symmetric.in_pad == ((0, 1),) and symmetric.x_shape == (1, 9, 1, 1)


def test_lhs_dilation_is_a_data_gradient() -> None:
    # a transposed convolution: input dilated by 2, padding (2, 1), a 4-tap kernel, 3 groups
    spec = _spec((2, 6, 5), (9, 2, 4), "float16", padding=((2, 1),), lhs_dilation=(2,), feature_group_count=3)
    dgrad, symmetric = cudnn_plans(spec)
    assert (dgrad.op, dgrad.groups, dgrad.io_dtype, dgrad.compute_dtype) == ("dgrad", 3, "float16", "float32")
    assert dgrad.stride == (2, 1) and dgrad.dilation == (1, 1)
    assert (dgrad.pre_padding, dgrad.post_padding) == ((1, 0), (2, 0))  # (k - 1) * r - (lo, hi)
    assert dgrad.rhs_perm == (0, 1, 2)  # (O, I, K), regrouped and flipped by the operands step
    assert dgrad.x_shape == (2, 5, 1, 6) and dgrad.w_shape == (6, 4, 1, 3) and dgrad.y_shape == (2, 9, 1, 9)
    assert spec.out_spatial == (9,)
    assert symmetric.pre_padding == symmetric.post_padding == (1, 0)
    assert symmetric.out_crop == ((0, 1),) and symmetric.y_shape == (2, 10, 1, 9)


def test_dtypes_and_precision() -> None:
    def plan_of(dtype: str, **kw: Any) -> CudnnPlan:
        return cudnn_plans(_spec((1, 2, 6, 6), (3, 2, 3, 3), dtype, **kw))[0]

    assert {d: (p.io_dtype, p.compute_dtype) for d in CUDNN_DATA_TYPES for p in [plan_of(d)]} == {
        "float16": ("float16", "float32"), "bfloat16": ("bfloat16", "float32"),
        "float32": ("float32", "float32"), "float64": ("float64", "float64"),
    }
    widened = plan_of("float16", preferred_element_type="float32")
    assert (widened.io_dtype, widened.out_dtype) == ("float32", "float32")
    sideways = plan_of("bfloat16", preferred_element_type="float16")
    assert (sideways.io_dtype, sideways.out_dtype) == ("float32", "float16")
    assert plan_of("float32").avoid_notes == () and plan_of("float32", precision="high").avoid_notes == ()
    assert plan_of("float32", precision="highest").avoid_notes == (
        "TENSOR_CORE", "DOWN_CONVERT_INPUTS", "REDUCED_PRECISION_REDUCTION")
    assert plan_of("float32", precision=("highest", "default")).avoid_notes[0] == "TENSOR_CORE"
    assert plan_of("float16", precision="highest").avoid_notes == ("DOWN_CONVERT_INPUTS", "REDUCED_PRECISION_REDUCTION")


def test_zero_spatial_dims_get_two_unit_axes_and_plans_are_cached() -> None:
    spec = _spec((3, 4), (5, 4))
    (plan,) = cudnn_plans(spec)
    assert plan.x_shape == (3, 1, 1, 4) and plan.w_shape == (5, 1, 1, 4) and plan.y_shape == (3, 1, 1, 5)
    assert plan.stride == plan.dilation == (1, 1) and plan.extra_axes == 2
    assert cudnn_plans(spec) is cudnn_plans(spec)


# -- cuDNN's semantics in NumPy: the engine of the CPU tests ------------------------------

def _logical(buf: np.ndarray, dims: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    """``buf`` read as cuDNN reads it: a descriptor's dims and element strides over its memory."""
    assert buf.flags.c_contiguous, "cuDNN is given a non-contiguous buffer"
    flat = buf.reshape(-1)
    assert math.prod(dims) == flat.size and sum((d - 1) * s for d, s in zip(dims, strides)) < flat.size
    return np.lib.stride_tricks.as_strided(flat, shape=dims, strides=tuple(s * flat.itemsize for s in strides))


def _fprop_sizes(sizes: Any, window: Any, pre: Any, post: Any, stride: Any, dilation: Any) -> list[int]:
    return [(s + a + b - (k - 1) * d - 1) // st + 1
            for s, k, a, b, st, d in zip(sizes, window, pre, post, stride, dilation)]


def cudnn_fprop(x: np.ndarray, w: np.ndarray, pre: Any, post: Any, stride: Any, dilation: Any) -> np.ndarray:
    """cuDNN's forward convolution (cross-correlation): ``y[n, k, p] = sum over c of its
    group and r of x[n, c, p * stride + r * dilation - pre] * w[k, c, r]``, zero outside
    ``x``; groups are ``x.C / w.C``."""
    n, c, *sizes = x.shape
    k_out, cg, *window = w.shape
    g = c // cg
    assert c == g * cg and k_out % g == 0 and min(pre) >= 0 and min(post) >= 0
    kg = k_out // g
    padded = np.pad(x, [(0, 0), (0, 0), *zip(pre, post)])
    out = _fprop_sizes(sizes, window, pre, post, stride, dilation)
    assert min(out) >= 1
    y = np.zeros((n, k_out, *out))
    for taps in np.ndindex(*window):
        sl = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(taps, dilation, out, stride))
        patch = padded[(slice(None), slice(None), *sl)]
        for j in range(g):
            y[:, j * kg:(j + 1) * kg] += np.einsum(
                "nc...,kc->nk...", patch[:, j * cg:(j + 1) * cg], w[(slice(j * kg, (j + 1) * kg), slice(None), *taps)])
    return y


def cudnn_dgrad(dy: np.ndarray, w: np.ndarray, dx_dims: tuple[int, ...], pre: Any, post: Any, stride: Any,
                dilation: Any) -> np.ndarray:
    """cuDNN's data gradient: the adjoint of :func:`cudnn_fprop` in ``x`` for the
    descriptor ``dx_dims``, whose forward output must have ``dy``'s dims."""
    n, k_out, *ysize = dy.shape
    kw, cg, *window = w.shape
    c = dx_dims[1]
    g = c // cg
    assert kw == k_out and c == g * cg and k_out % g == 0 and min(pre) >= 0 and min(post) >= 0
    assert ysize == _fprop_sizes(dx_dims[2:], window, pre, post, stride, dilation), "inconsistent dgrad dims"
    kg = k_out // g
    big = np.zeros((n, c, *(s + a + b for s, a, b in zip(dx_dims[2:], pre, post))))
    for taps in np.ndindex(*window):
        sl = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(taps, dilation, ysize, stride))
        for j in range(g):
            big[(slice(None), slice(j * cg, (j + 1) * cg), *sl)] += np.einsum(
                "nk...,kc->nc...", dy[:, j * kg:(j + 1) * kg], w[(slice(j * kg, (j + 1) * kg), slice(None), *taps)])
    return big[(slice(None), slice(None), *(slice(a, a + s) for a, s in zip(pre, dx_dims[2:])))]


class EmulatedCudnn:
    """An engine for :class:`Paths` with cuDNN's semantics, in float64 on NumPy arrays.

    ``decline(plan)`` returning a message makes :meth:`build` refuse that plan, as
    cuDNN refuses graphs it has no engine for."""

    def __init__(self, decline: Any = None, fail_execute: bool = False) -> None:
        self.decline = decline or (lambda plan: None)
        self.fail_execute = fail_execute
        self.builds: list[CudnnPlan] = []
        self.version = "emulated"

    def build(self, plan: CudnnPlan, device: Any) -> CudnnPlan:
        self.builds.append(plan)
        why = self.decline(plan)
        if why:
            raise RuntimeError(why)
        assert len(plan.x_dims) in (4, 5) and plan.io_dtype in CUDNN_DATA_TYPES
        return plan

    def execute(self, plan: CudnnPlan, x: np.ndarray, w: np.ndarray, y: np.ndarray) -> None:
        if self.fail_execute:
            raise RuntimeError("CUDNN_STATUS_EXECUTION_FAILED")
        assert x.dtype == w.dtype == y.dtype == np.dtype(_np_dtype(plan.io_dtype))
        xs = _logical(x, plan.x_dims, plan.x_strides).astype(np.float64)
        ws = _logical(w, plan.w_dims, plan.w_strides).astype(np.float64)
        if plan.op == "fprop":
            out = cudnn_fprop(xs, ws, plan.pre_padding, plan.post_padding, plan.stride, plan.dilation)
            assert out.shape == plan.y_dims, "the output descriptor disagrees with cuDNN's shape inference"
        else:
            out = cudnn_dgrad(xs, ws, plan.y_dims, plan.pre_padding, plan.post_padding, plan.stride, plan.dilation)
        _logical(y, plan.y_dims, plan.y_strides)[...] = out.astype(y.dtype)


def _np_dtype(name: str) -> Any:
    if name == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return name


class EmulatedCupyBackend(Backend):
    """The CuPy backend's logic (:class:`Paths`: the cuDNN plans, the array work
    around cuDNN, the gather-GEMM for the rest) on NumPy arrays, with
    :class:`EmulatedCudnn` in place of cuDNN."""

    name = "cupy-emulated"

    def __init__(self, engine: EmulatedCudnn) -> None:
        m = cupy_backend.manifest
        self.manifest = Manifest(dtypes=m.dtypes | {"bfloat16"}, devices=("cpu",), ops=m.ops, features=m.features)
        self.engine = engine
        self.paths = Paths(lambda: engine)

    def owns(self, x: Any) -> bool:
        return False

    def accepts(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def asarray(self, x: Any, like: Any = None) -> Any:
        return np.asarray(x)

    def from_numpy(self, a: Any, device: Any = None) -> Any:
        return np.array(a, copy=True)

    def to_numpy(self, x: Any) -> Any:
        return np.array(x, copy=True)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: Any) -> Any:
        return self.paths.conv(np, lhs, rhs, spec, "cpu")


def _refuse_asymmetric(plan: CudnnPlan) -> str | None:
    return "CUDNN_STATUS_NOT_SUPPORTED: asymmetric padding" if plan.asymmetric else None


@pytest.fixture(params=["asymmetric", "symmetric"])
def emulated(request: pytest.FixtureRequest) -> Iterator[EmulatedCupyBackend]:
    """The emulated backend, registered for the duration of the test under its name;
    its cuDNN takes asymmetric padding, or (the second run) refuses it, so that the
    symmetric variants of the plans run."""
    pytest.importorskip("ml_dtypes", reason="bfloat16 operands are made with ml_dtypes")
    be = EmulatedCupyBackend(EmulatedCudnn(decline=None if request.param == "asymmetric" else _refuse_asymmetric))
    registry.register(be)
    try:
        yield be
    finally:
        registry.unregister(be.name)


def _run_all(be: Any, pairs: list[tuple[Any, Any]]) -> list[str]:
    failures = []
    for check, case in pairs:
        outcome = check(be, case)
        if not outcome:
            failures.append(f"{case}: {outcome.detail}")
    return failures


_FLOATS = ("float16", "bfloat16", "float32", "float64")


def test_emulated_cudnn_path_conv_grids(emulated: EmulatedCupyBackend) -> None:
    grid = cases.grid() + cases.dtype_grid()
    assert _run_all(emulated, [(checks.check_conv, c) for c in grid]) == []
    taken = [c for c in grid if emulated.paths.path(_case_spec(c), "cpu").name == "cudnn"]
    floats = [c for c in grid if c.dtype in _FLOATS and why_not(_case_spec(c)) is None]
    assert len(taken) == len(floats) > 200  # every float case cuDNN can express ran on the emulated cuDNN
    assert {(p.op, p.asymmetric) for p in emulated.engine.builds} == {
        ("fprop", False), ("fprop", True), ("dgrad", False), ("dgrad", True)}


def test_emulated_cudnn_path_random_cases(emulated: EmulatedCupyBackend) -> None:
    rng = np.random.default_rng(2024)
    randoms = [cases.random_case(rng, dtype=str(rng.choice(_FLOATS)), index=i) for i in range(300)]
    assert _run_all(emulated, [(checks.check_conv, c) for c in randoms]) == []
    assert sum(emulated.paths.path(_case_spec(c), "cpu").name == "cudnn" for c in randoms) > 100


def _case_spec(case: Any) -> Any:
    lhs, rhs = case.lhs_shape, case.rhs_shape
    return conv_spec(lhs, rhs, case.dtype, case.dtype, **case.kwargs())


def test_emulated_cudnn_path_transpose_grid(emulated: EmulatedCupyBackend) -> None:
    assert _run_all(emulated, [(checks.check_transpose, c) for c in cases.transpose_grid()]) == []
    assert sum(p.op == "dgrad" for p in emulated.engine.builds) >= 30  # distinct specs: each is built once


def test_emulated_cudnn_path_vjp_patches_and_local(emulated: EmulatedCupyBackend, conformance_sample: int) -> None:
    # a third of the grid, sampled further as the conformance suite is (--polyconv-sample)
    grid = sampled("cupy-emulated/vjp", cases.grid()[::3], conformance_sample)
    pairs = [(checks.check_vjp, c) for c in grid]
    pairs += [(checks.check_patches, cases.patches_case_of(c)) for c in grid]
    pairs += [(checks.check_local, cases.local_case_of(c)) for c in grid]
    assert _run_all(emulated, pairs) == []


def test_emulated_cudnn_symmetric_fallback_and_declines() -> None:
    """An engine that refuses asymmetric padding gets the symmetric variant; one that
    refuses everything leaves the spec to the gather-GEMM; each decision is made once."""
    spec = _spec((2, 3, 8, 8), (4, 3, 3, 3), "float64", strides=(2, 2), padding="SAME")  # pads (0, 1)
    lhs, rhs = (cases.make_operand(np.random.default_rng(s), shape, "float64")
                for s, shape in ((1, spec.lhs_shape), (2, spec.rhs_shape)))
    want = polyconv.conv_general_dilated(lhs, rhs, (2, 2), "SAME")

    picky = EmulatedCudnn(decline=lambda plan: "asymmetric padding" if plan.asymmetric else None)
    paths = Paths(lambda: picky)
    for _ in range(3):
        np.testing.assert_allclose(paths.conv(np, lhs, rhs, spec, 0), want, rtol=1e-12, atol=1e-12)
    chosen = paths.path(spec, 0)
    assert chosen.name == "cudnn" and chosen.plan is not None and not chosen.plan.asymmetric
    assert [p.asymmetric for p in picky.builds] == [True, False]  # built once, not per call

    stubborn = EmulatedCudnn(decline=lambda plan: "CUDNN_STATUS_NOT_SUPPORTED")
    paths = Paths(lambda: stubborn)
    np.testing.assert_allclose(paths.conv(np, lhs, rhs, spec, 0), want, rtol=1e-12, atol=1e-12)
    chosen = paths.path(spec, 0)
    assert chosen.name == "gemm" and chosen.reason == (
        "cuDNN declined it: fprop (asymmetric padding): RuntimeError: CUDNN_STATUS_NOT_SUPPORTED; "
        "fprop: RuntimeError: CUDNN_STATUS_NOT_SUPPORTED")


def test_a_failed_execution_moves_the_spec_to_the_gather_gemm(caplog: pytest.LogCaptureFixture) -> None:
    spec = _spec((1, 2, 7), (3, 2, 3), "float64")
    lhs, rhs = np.linspace(-1, 1, 14).reshape(1, 2, 7), np.linspace(1, 2, 18).reshape(3, 2, 3)
    want = polyconv.conv_general_dilated(lhs, rhs, (1,), "VALID")
    engine = EmulatedCudnn(fail_execute=True)
    paths = Paths(lambda: engine)
    with caplog.at_level(logging.WARNING, logger="polyconv"):
        np.testing.assert_allclose(paths.conv(np, lhs, rhs, spec, 0), want, rtol=1e-12)
    assert "cuDNN failed to run it (RuntimeError: CUDNN_STATUS_EXECUTION_FAILED)" in caplog.text
    assert paths.path(spec, 0).name == "gemm"
    np.testing.assert_allclose(paths.conv(np, lhs, rhs, spec, 0), want, rtol=1e-12)
    assert len(engine.builds) == 1


def test_without_a_usable_engine_everything_takes_the_gather_gemm() -> None:
    paths = Paths(_raise(ImportError("No module named 'cudnn'")))
    spec = _spec((1, 2, 7), (3, 2, 3), "float64")
    lhs, rhs = np.ones((1, 2, 7)), np.ones((3, 2, 3))
    np.testing.assert_array_equal(paths.conv(np, lhs, rhs, spec, 0), np.full((1, 3, 5), 6.0))
    assert paths.path(spec, 0).reason == "cuDNN unusable: ImportError: No module named 'cudnn'"
    assert paths.engine_loaded is False and paths.engine() is None


# -- on a GPU: CuPy itself ------------------------------------------------------------------

@pytest.fixture(scope="module")
def cp() -> Any:
    """CuPy, when it is installed and sees a CUDA device; else the test skips saying why."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed: the CuPy backend needs CuPy and a CUDA GPU")
    why = probe.cupy_unavailable()
    if why is not None:
        pytest.skip(reason=f"the CuPy backend cannot run here: {why}")
    return cupy


@pytest.fixture(scope="module")
def be(cp: Any) -> Any:
    backend = registry.try_load("cupy")
    if backend is None:
        pytest.skip(reason=f"backend 'cupy' is not available: {registry.records()['cupy'].reason}")
    return backend


def _cudnn_or_skip(be: Any) -> None:
    if be.paths.engine() is None:
        pytest.skip(reason=f"no usable cuDNN frontend here ({be.paths.engine_error})")


def test_gpu_info_says_which_path(be: Any) -> None:
    row = next(r for r in polyconv.backend_info() if r["name"] == "cupy")
    assert row["status"] == "ok" and row["reason"] == ""
    assert "gather-GEMM on cuBLAS" in row["details"]


def test_gpu_conv_grids(be: Any) -> None:
    assert _run_all(be, [(checks.check_conv, c) for c in cases.grid() + cases.dtype_grid()]) == []


def test_gpu_transpose_grid(be: Any) -> None:
    assert _run_all(be, [(checks.check_transpose, c) for c in cases.transpose_grid()]) == []


def test_gpu_patches_and_local_grids(be: Any) -> None:
    grid = cases.grid()
    pairs = [(checks.check_patches, cases.patches_case_of(c)) for c in grid]
    assert _run_all(be, pairs + [(checks.check_local, cases.local_case_of(c)) for c in grid]) == []


def test_gpu_vjp_grids(be: Any) -> None:
    assert _run_all(be, [(checks.check_vjp, c) for c in cases.grid() + cases.dtype_grid()]) == []


def test_gpu_random_cases(be: Any) -> None:
    rng = np.random.default_rng(1234)
    dtypes = [d for d in cases.DTYPES if d in be.manifest.dtypes]
    pairs = [(checks.check_conv, cases.random_case(rng, dtype=str(rng.choice(dtypes)), index=i)) for i in range(300)]
    assert _run_all(be, pairs) == []


def test_gpu_cudnn_is_taken_and_agrees_with_the_gather_gemm(be: Any, cp: Any) -> None:
    import array_api_compat.cupy as xp
    from polyconv.backends import gemm

    _cudnn_or_skip(be)
    floats = [c.with_dtype("float32") for c in cases.grid()] + [
        c for c in cases.dtype_grid() if c.dtype in _FLOATS and c.dtype in be.manifest.dtypes]
    eligible = [c for c in floats if why_not(_case_spec(c)) is None]
    declined = []
    for case in eligible:
        spec = _case_spec(case)
        lhs, rhs = (be.from_numpy(a) for a in case.operands())
        path = be.path(spec)
        if path.name != "cudnn":
            declined.append(f"{case}: {path.reason}")
            continue
        got = be.to_numpy(polyconv.conv_general_dilated(lhs, rhs, **case.kwargs()))
        want = be.to_numpy(gemm.conv_general_dilated(xp, lhs, rhs, spec))
        x, w = case.operands()
        for name, result in (("cuDNN", got), ("gather-GEMM", want)):
            problem = tolerances.check_close(result, x, w, spec, True)
            assert problem is None, f"{case} on {name}: {problem}"
    assert len(declined) < len(eligible) // 2, "cuDNN declined most of the cases it should take:\n" + "\n".join(
        declined[:20])
    plain = _spec((8, 16, 32, 32), (32, 16, 3, 3), padding="SAME")
    assert be.path(plain).name == "cudnn", be.path(plain).reason


_SPIN = r"""
extern "C" __global__ void spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) { }
}
"""


@pytest.mark.parametrize("dtype", ["float32", "int32"])  # cuDNN (where installed), and the gather-GEMM
def test_gpu_current_stream_is_respected(be: Any, cp: Any, dtype: str) -> None:
    """On a non-blocking stream, the convolution reads an input written by the kernel
    before it on that stream, which first spins for about a second: run anywhere
    else, it would read the zeros that were there before."""
    x = cp.asarray(np.arange(2 * 3 * 40 * 40).reshape(2, 3, 40, 40) % 7 - 3, dtype=dtype)
    w = cp.asarray(np.arange(4 * 3 * 3 * 3).reshape(4, 3, 3, 3) % 5 - 2, dtype=dtype)
    want = be.to_numpy(polyconv.conv_general_dilated(x, w, (1, 1), "SAME"))
    polyconv.conv_general_dilated(cp.zeros_like(x), w, (1, 1), "SAME")  # decide and build outside the timing
    late = cp.zeros_like(x)
    cp.cuda.Device().synchronize()
    spin = cp.RawKernel(_SPIN, "spin")
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        spin((1,), (1,), (np.int64(2_000_000_000),))
        late += x
        y = polyconv.conv_general_dilated(late, w, (1, 1), "SAME")
        assert cp.cuda.get_current_stream().ptr == stream.ptr
    stream.synchronize()
    np.testing.assert_array_equal(be.to_numpy(y), want)


def test_gpu_operands_device_is_kept(be: Any, cp: Any) -> None:
    if cp.cuda.runtime.getDeviceCount() < 2:
        pytest.skip(reason="one CUDA device here: keeping arrays on device 1 needs two")
    x_host = np.linspace(-1, 1, 2 * 3 * 9 * 9, dtype=np.float32).reshape(2, 3, 9, 9)
    w_host = np.linspace(1, -1, 4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3)
    for dtype in ("float32", "int64"):
        x, w = be.from_numpy((x_host * 10).astype(dtype), "cuda:1"), be.from_numpy((w_host * 10).astype(dtype), 1)
        with cp.cuda.Device(0):
            y = polyconv.conv_general_dilated(x, w, (2, 2), "SAME")
            assert y.device.id == 1 and be.device(y) == "cuda:1"
            want = polyconv.conv_general_dilated(be.to_numpy(x), be.to_numpy(w), (2, 2), "SAME")
            np.testing.assert_allclose(be.to_numpy(y), want, rtol=1e-5, atol=1e-3)
            with pytest.raises(polyconv.MixedArraysError, match="cuda:1.*cuda:0|cuda:0.*cuda:1"):
                polyconv.conv_general_dilated(x, cp.asarray(be.to_numpy(w)), (2, 2), "SAME")


def test_gpu_precision_highest_is_full_float32(be: Any, cp: Any) -> None:
    """A long contraction in float32: 'highest' must meet float32's bound without TF32's
    input rounding (2**-11), which the default precision may use on cuDNN."""
    rng = np.random.default_rng(7)
    lhs = rng.standard_normal((4, 64, 24, 24)).astype(np.float32)
    rhs = rng.standard_normal((32, 64, 5, 5)).astype(np.float32)
    spec = conv_spec(lhs.shape, rhs.shape, "float32", "float32", (1, 1), "SAME", precision="highest")
    y = polyconv.conv_general_dilated(be.from_numpy(lhs), be.from_numpy(rhs), (1, 1), "SAME", precision="highest")
    assert tolerances.check_close(be.to_numpy(y), lhs, rhs, spec, False) is None
