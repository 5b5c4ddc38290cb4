"""The JAX backend: native ``jax.lax`` lowering, transformations, devices, errors.

Values on every grid are checked by the conformance suite (conformance/, run by pytest); this file
checks what is particular to JAX: that each op lowers to exactly the HLO of
the direct ``jax.lax`` call, that ``jit``, ``grad``, ``vmap`` and
``checkpoint`` see through polyconv (against the reference), that parsing is
not repeated when a function is traced again, sharded and multi-device
arrays, Python lists beside JAX arrays, and that errors are polyconv's.

64-bit types are enabled for the module (the ``jax_x64`` fixture), so values
are compared with the float64 reference at float64 tolerances.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from polyconv.backends.jax import cpu_lowering
from polyconv.conformance import cases, reference, tolerances

import polyconv
from polyconv.errors import MixedArraysError, PolyconvError, UnsupportedDtypeError
from polyconv.spec import ConvDimensionNumbers, conv_spec, conv_transpose_spec
from polyconv.spec.canonical import problem

jax = pytest.importorskip("jax", reason="JAX is not installed: pip install jax -c constraints.txt")
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402
from jax_batches import prefetch, result  # noqa: E402
from polyconv.backends.jax import AnyDevice  # noqa: E402
from polyconv.backends.jax import backend as jax_backend  # noqa: E402

NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.fixture(scope="module", autouse=True)
def _x64(jax_x64: Any) -> None:
    """Every test of the module runs with 64-bit types."""


def _j(a: np.ndarray) -> Any:
    return jax_backend.from_numpy(np.asarray(a))


def _n(x: Any) -> np.ndarray:
    return jax_backend.to_numpy(x)


def _rand(shape: tuple[int, ...], seed: int = 0, dtype: str = "float64") -> np.ndarray:
    return cases.make_operand(np.random.default_rng(seed), shape, dtype)


def _conv_problem(out: Any, x: np.ndarray, w: np.ndarray, kw: dict[str, Any]) -> str | None:
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
    return tolerances.check_close(_n(out), x, w, spec)


# -- the backend object ---------------------------------------------------------------

def test_importing_the_backend_does_not_import_jax() -> None:
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import polyconv
        from polyconv.backends.jax import backend
        assert backend.unavailable_reason() is None
        assert not backend.owns(np.ones(2)) and backend.version()
        polyconv.conv_general_dilated(np.ones((1, 1, 4)), np.ones((1, 1, 2)), (1,), 'VALID')
        info = [b for b in polyconv.backend_info() if b['name'] == 'jax'][0]
        assert info['status'] == 'ok', info
        assert 'jax' not in sys.modules, 'the jax backend imported jax'
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_registered_through_the_entry_point() -> None:
    info = {b["name"]: b for b in polyconv.backend_info()}["jax"]
    assert info["status"] == "ok" and info["distribution"] == "polyconv"
    assert info["target"] == "polyconv.backends.jax:backend"
    caps = info["capabilities"]
    assert set(caps["ops"]) == {
        "conv_general_dilated", "conv_transpose", "conv_general_dilated_patches",
        "conv_general_dilated_local", "conv_general_dilated_vjp",
    }
    assert {"autodiff", "jit", "lhs_dilation", "batch_group_count"} <= set(caps["features"])


@pytest.mark.parametrize("dtype", [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
])
def test_every_declared_dtype_round_trips_and_computes(dtype: str) -> None:
    assert dtype in jax_backend.manifest.dtypes
    x, w = _rand((2, 3, 6), 1, dtype), _rand((4, 3, 2), 2, dtype)
    jx = _j(x)
    assert str(jx.dtype) == dtype and _n(jx).dtype == x.dtype
    np.testing.assert_array_equal(_n(jx), x)
    out = polyconv.conv_general_dilated(jx, _j(w), (1,), "VALID")
    assert isinstance(out, jax.Array) and str(out.dtype) == dtype
    assert _conv_problem(out, x, w, {"window_strides": (1,), "padding": "VALID"}) is None


def test_64_bit_types_need_x64() -> None:
    with jax.enable_x64(False):
        with pytest.raises(UnsupportedDtypeError, match="jax_enable_x64"):
            jax_backend.from_numpy(np.ones(3))
        x = jnp.ones((1, 2, 5), jnp.float32)
        w = jnp.ones((3, 2, 2), jnp.float32)
        with pytest.raises(UnsupportedDtypeError, match="preferred_element_type is 64-bit"):
            polyconv.conv_general_dilated(x, w, (1,), "VALID", preferred_element_type="float64")
        assert polyconv.conv_general_dilated(x, w, (1,), "VALID").dtype == jnp.float32


# -- dispatch, devices, lists ---------------------------------------------------------------

def test_jax_arrays_dispatch_to_jax() -> None:
    x, w = _rand((1, 2, 6)), _rand((3, 2, 2), 1)
    assert polyconv.dispatch.resolve((_j(x), _j(w))) is jax_backend
    out = polyconv.conv_general_dilated(_j(x), _j(w), (1,), "VALID")
    assert isinstance(out, jax.Array)
    assert isinstance(polyconv.conv_general_dilated(x, w, (1,), "VALID"), np.ndarray)
    with pytest.raises(MixedArraysError, match="never converts between frameworks"):
        polyconv.conv_general_dilated(_j(x), w, (1,), "VALID")


@pytest.mark.parametrize("list_side", ["lhs", "rhs"])
def test_python_lists_join_the_jax_array(list_side: str) -> None:
    x, w = _rand((1, 2, 6)), _rand((3, 2, 2), 1)
    lhs = x.tolist() if list_side == "lhs" else _j(x)
    rhs = w.tolist() if list_side == "rhs" else _j(w)
    out = polyconv.conv_general_dilated(lhs, rhs, (1,), "VALID")
    assert isinstance(out, jax.Array) and out.dtype == jnp.float64
    assert _conv_problem(out, x, w, {"window_strides": (1,), "padding": "VALID"}) is None
    # a list beside a committed array lands on that array's device
    dev = jax.devices()[0]
    committed = jax.device_put(_j(w), dev)
    out = polyconv.conv_general_dilated(x.tolist(), committed, (1,), "VALID")
    assert out.devices() == {dev} and out.committed


def test_device_names() -> None:
    dev = jax.devices()[0]
    name = f"{dev.platform}:{dev.id}"
    x = jnp.ones(3)
    assert jax_backend.device(jax.device_put(x, dev)) == name
    assert type(jax_backend.device(jax.device_put(x, dev))) is str
    # uncommitted arrays and tracers go where JAX puts them: their name matches any device
    loose = jax_backend.device(x)
    assert isinstance(loose, AnyDevice) and str.__eq__(loose, name) and loose == "gpu:7"
    seen = []
    jax.jit(lambda t: seen.append(jax_backend.device(t)) or t)(x)
    assert isinstance(seen[0], AnyDevice) and str(seen[0]) == "traced"
    assert jax_backend.from_numpy(np.ones(2), device=name).committed


def test_dispatch_compares_committed_devices_only() -> None:
    """``_check_devices`` passes for a tracer beside a concrete (closed-over) kernel."""
    x, w = _rand((2, 3, 7)), _rand((4, 3, 3), 1)
    jw = jax.device_put(_j(w), jax.devices()[0])
    out = jax.jit(lambda a: polyconv.conv_general_dilated(a, jw, (1,), "SAME"))(_j(x))
    assert _conv_problem(out, x, w, {"window_strides": (1,), "padding": "SAME"}) is None


# -- errors are polyconv's ------------------------------------------------------------------

_X, _W = _rand((2, 4, 7)), _rand((6, 4, 3), 1)
_XT, _WT = _rand((2, 7, 4)), _rand((3, 4, 6), 1)

_BAD_CALLS = {
    "dtypes differ": lambda j: polyconv.conv_general_dilated(j(_X), j(_W.astype(np.float32)), (1,), "VALID"),
    "stride count": lambda j: polyconv.conv_general_dilated(j(_X), j(_W), (1, 1), "VALID"),
    "padding name": lambda j: polyconv.conv_general_dilated(j(_X), j(_W), (1,), "FULL"),
    "groups": lambda j: polyconv.conv_general_dilated(j(_X), j(_W), (1,), "VALID", feature_group_count=3),
    "string padding with lhs dilation": lambda j: polyconv.conv_general_dilated(
        j(_X), j(_W), (1,), "SAME", lhs_dilation=(2,)),
    "dimension numbers": lambda j: polyconv.conv_general_dilated(
        j(_X), j(_W), (1,), "VALID", dimension_numbers=("NCW", "OIH", "NCW")),
    "precision": lambda j: polyconv.conv_general_dilated(j(_X), j(_W), (1,), "VALID", precision="fast"),
    "preferred narrower": lambda j: polyconv.conv_general_dilated(
        j(_X), j(_W), (1,), "VALID", preferred_element_type="float32"),
    "transpose channels": lambda j: polyconv.conv_transpose(j(_XT), j(_WT[:, :3]), (2,), "SAME"),
    "transpose strides with other names": lambda j: polyconv.conv_transpose(j(_XT), j(_WT), (2,), "SAME_LOWER"),
    "patches filter": lambda j: polyconv.conv_general_dilated_patches(j(_X), (0,), (1,), "VALID"),
    "local kernel shape": lambda j: polyconv.conv_general_dilated_local(j(_X), j(_W), (1,), "VALID", (3,)),
    "vjp cotangent": lambda j: polyconv.conv_general_dilated_vjp(j(_X), j(_W), j(np.ones((2, 6, 4))), (1,), "VALID"),
}


@pytest.mark.parametrize("name", sorted(_BAD_CALLS))
def test_errors_are_polyconvs_and_equal_to_numpys(name: str) -> None:
    call = _BAD_CALLS[name]
    with pytest.raises(PolyconvError) as on_numpy:
        call(np.asarray)
    with pytest.raises(PolyconvError) as on_jax:
        call(_j)
    assert type(on_jax.value) is type(on_numpy.value)
    assert str(on_jax.value) == str(on_numpy.value)


def test_errors_are_raised_while_tracing_too() -> None:
    with pytest.raises(PolyconvError) as traced:
        jax.jit(lambda a, b: polyconv.conv_general_dilated(a, b, (1, 1), "VALID"))(_j(_X), _j(_W))
    with pytest.raises(PolyconvError) as eager:
        polyconv.conv_general_dilated(_X, _W, (1, 1), "VALID")
    assert str(traced.value) == str(eager.value)


# -- the lowered HLO is the direct jax.lax call's -----------------------------------------------

def _hlo(fn: Any, *args: Any) -> str:
    """The jitted function's StableHLO, its module name and locations removed."""
    text = jax.jit(fn).lower(*args).as_text()
    text = re.sub(r"^module @\S+", "module", text, flags=re.M)
    text = re.sub(r"\s*loc\(#loc\d*\)", "", text)
    return "\n".join(line for line in text.splitlines() if not line.startswith("#loc"))


# (name, polyconv function, lax function, operand shapes, dtype, keyword arguments)
_STANDARD: list[tuple[str, Any, Any, tuple[tuple[int, ...], ...], str, dict[str, Any]]] = [
    ("conv-nchw-same", polyconv.conv_general_dilated, lax.conv_general_dilated,
     ((2, 4, 9, 9), (6, 4, 3, 3)), "float32", {"window_strides": (1, 1), "padding": "SAME"}),
    ("conv-nhwc-strided", polyconv.conv_general_dilated, lax.conv_general_dilated,
     ((2, 9, 9, 4), (3, 3, 4, 6)), "float32",
     {"window_strides": (2, 2), "padding": "SAME", "dimension_numbers": NHWC}),
    ("conv-odd-layout", polyconv.conv_general_dilated, lax.conv_general_dilated,
     ((9, 4, 8, 2), (4, 3, 6, 3)), "float32",
     {"window_strides": (1, 2), "padding": ((1, -1), (2, 0)), "dimension_numbers": ("WCHN", "IHOW", "HWNC")}),
    ("conv-groups", polyconv.conv_general_dilated, lax.conv_general_dilated,
     ((2, 4, 9, 9), (6, 2, 3, 3)), "float32",
     {"window_strides": (1, 1), "padding": "VALID", "feature_group_count": 2}),
    ("conv-depthwise-nhwc", polyconv.conv_general_dilated, lax.conv_general_dilated,
     ((2, 9, 9, 4), (3, 3, 1, 8)), "float32",
     {"window_strides": (1, 1), "padding": "SAME", "dimension_numbers": NHWC, "feature_group_count": 4}),
    ("conv-batch-groups", polyconv.conv_general_dilated, lax.conv_general_dilated,
     ((4, 3, 9), (6, 3, 3)), "float32", {"window_strides": (2,), "padding": ((1, 0),), "batch_group_count": 2}),
    ("conv-lhs-dilation", polyconv.conv_general_dilated, lax.conv_general_dilated,
     ((2, 4, 5, 5), (6, 4, 3, 3)), "float32",
     {"window_strides": (1, 1), "padding": ((2, 2), (1, 2)), "lhs_dilation": (2, 2), "rhs_dilation": (1, 2)}),
    ("conv-3d-highest", polyconv.conv_general_dilated, lax.conv_general_dilated,
     ((1, 2, 5, 6, 4), (3, 2, 2, 3, 2)), "float32",
     {"window_strides": (1, 1, 1), "padding": "SAME", "precision": "highest"}),
    ("conv-bf16-to-f32", polyconv.conv_general_dilated, lax.conv_general_dilated,
     ((2, 9, 9, 4), (3, 3, 4, 6)), "bfloat16",
     {"window_strides": (1, 1), "padding": "SAME", "dimension_numbers": NHWC,
      "preferred_element_type": jnp.float32, "precision": ("high", "default")}),
    ("conv-int8-to-int32", polyconv.conv_general_dilated, lax.conv_general_dilated,
     ((2, 4, 9), (6, 4, 3)), "int8", {"window_strides": (1,), "padding": "SAME", "preferred_element_type": "int32"}),
    ("transpose-same", polyconv.conv_transpose, lax.conv_transpose,
     ((2, 5, 5, 4), (3, 3, 4, 6)), "float32", {"strides": (2, 2), "padding": "SAME"}),
    ("transpose-valid-kernel", polyconv.conv_transpose, lax.conv_transpose,
     ((2, 5, 5, 4), (3, 3, 6, 4)), "float32", {"strides": (2, 1), "padding": "VALID", "transpose_kernel": True}),
    ("transpose-explicit", polyconv.conv_transpose, lax.conv_transpose,
     ((2, 5, 4), (3, 4, 6)), "float32", {"strides": (3,), "padding": ((1, 2),), "rhs_dilation": (2,)}),
    ("transpose-consistent", polyconv.conv_transpose, lax.conv_transpose,
     ((2, 4, 5, 5), (4, 6, 3, 3)), "float32",
     {"strides": (2, 2), "padding": ((1, 1), (0, 1)), "dimension_numbers": ("NCHW", "OIHW", "NCHW"),
      "transpose_kernel": True, "use_consistent_padding": True}),
]

#: Patches and local convolutions: copies of the input (polyconv.gather), not XLA's identity-kernel convolution.
_GATHERED = [
    ("patches-nchw", polyconv.conv_general_dilated_patches, lax.conv_general_dilated_patches,
     ((2, 3, 8, 8),), "float32", {"filter_shape": (3, 2), "window_strides": (1, 2), "padding": "SAME"}),
    ("patches-nhwc-dilated", polyconv.conv_general_dilated_patches, lax.conv_general_dilated_patches,
     ((2, 8, 8, 3),), "float32",
     {"filter_shape": (2, 2), "window_strides": (1, 1), "padding": ((1, 0), (0, 1)), "lhs_dilation": (2, 1),
      "rhs_dilation": (1, 2), "dimension_numbers": NHWC, "precision": lax.Precision.HIGHEST}),
    ("local-nchw", polyconv.conv_general_dilated_local, lax.conv_general_dilated_local,
     ((2, 3, 6, 6), (5, 27, 4, 4)), "float32",
     {"window_strides": (1, 1), "padding": "VALID", "filter_shape": (3, 3)}),
    ("local-nhwc", polyconv.conv_general_dilated_local, lax.conv_general_dilated_local,
     ((2, 6, 6, 3), (3, 3, 12, 5)), "float32",
     {"window_strides": (2, 2), "padding": "SAME", "filter_shape": (2, 2), "dimension_numbers": NHWC,
      "precision": ("highest", "high")}),
]


@pytest.mark.parametrize("name, ours, theirs, shapes, dtype, kw", _STANDARD, ids=[s[0] for s in _STANDARD])
def test_lowers_to_the_direct_lax_call(name: str, ours: Any, theirs: Any, shapes: tuple, dtype: str, kw: dict) -> None:
    """Every spec is jax.lax's own call, with the same HLO, except those that the CPU lowerings of
    backends/jax/cpu_lowering.py take on the CPU (checked against the reference instead)."""
    args = [_j(_rand(s, i, dtype)) for i, s in enumerate(shapes)]
    mine = _hlo(lambda *a: ours(*a, **kw), *args)
    if ours is polyconv.conv_general_dilated and cpu_lowering.lowering(
            conv_spec(*shapes, dtype, dtype, **kw), jax.default_backend()) is not None:
        assert "stablehlo.convolution" not in mine
        x, w = (_rand(s, i, dtype) for i, s in enumerate(shapes))
        assert _conv_problem(ours(*args, **kw), x, w, kw) is None
        return
    direct = _hlo(lambda *a: theirs(*a, **kw), *args)
    assert mine == direct
    assert mine.count("stablehlo.convolution") == 1
    # and the value, eagerly, is the reference's
    out = ours(*args, **kw)
    np.testing.assert_array_equal(_n(out), _n(theirs(*args, **kw)))


@pytest.mark.parametrize("name, ours, theirs, shapes, dtype, kw", _GATHERED, ids=[s[0] for s in _GATHERED])
def test_patches_are_copies_and_local_one_product(name: str, ours: Any, theirs: Any, shapes: tuple, dtype: str,
                                                   kw: dict) -> None:
    """No convolution in the HLO (the patches are slices, the local product one dot_general), and on finite
    values the same results as jax.lax's own functions."""
    args = [_j(_rand(s, i, dtype)) for i, s in enumerate(shapes)]
    mine = _hlo(lambda *a: ours(*a, **kw), *args)
    assert "stablehlo.convolution" not in mine
    assert mine.count("stablehlo.dot_general") == (1 if name.startswith("local") else 0)
    got, want = _n(ours(*args, **kw)), _n(theirs(*args, **kw))
    if name.startswith("patches"):
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_transpose_padding_conventions_are_equivalent() -> None:
    """The explicit transposed pads the backend passes reproduce both of JAX's conventions."""
    x, w = _rand((2, 5, 4)), _rand((3, 4, 6), 1)
    for padding in ("SAME", "VALID", ((1, 2),), ((-1, 0),)):
        for consistent in (False, True):
            kw = {"strides": (2,), "padding": padding, "use_consistent_padding": consistent}
            out = polyconv.conv_transpose(_j(x), _j(w), **kw)
            tspec = conv_transpose_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
            assert tolerances.check_transpose_close(_n(out), x, w, tspec) is None
            np.testing.assert_array_equal(_n(out), _n(lax.conv_transpose(_j(x), _j(w), **kw)))


def test_patches_and_local_without_channels() -> None:
    """JAX's own patches would ask XLA for zero feature groups; polyconv gives the empty result."""
    x = np.zeros((2, 0, 5))
    out = polyconv.conv_general_dilated_patches(_j(x), (2,), (1,), "VALID")
    assert isinstance(out, jax.Array) and out.shape == (2, 0, 4)
    out = polyconv.conv_general_dilated_local(_j(x), _j(np.ones((3, 0, 4))), (1,), "VALID", (2,))
    assert isinstance(out, jax.Array) and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(_n(out), 0)


# -- jit ------------------------------------------------------------------------------------

def _four_ops() -> list[tuple[str, Any, Any, tuple[np.ndarray, ...], Any]]:
    """(name, polyconv function of the operands, the direct jax.lax one, operands, reference result)."""
    x, w = _rand((2, 4, 7, 6)), _rand((6, 2, 3, 2), 1)
    conv_kw = {"window_strides": (2, 1), "padding": ((1, -1), (2, 0)), "lhs_dilation": (1, 2),
               "rhs_dilation": (2, 1), "feature_group_count": 2}
    xt, wt = _rand((2, 5, 4, 3), 2), _rand((3, 2, 4, 3), 3)
    t_kw = {"strides": (2, 3), "padding": "SAME", "transpose_kernel": True}
    xl, wl = _rand((2, 3, 6, 5), 4), _rand((4, 12, 3, 4), 5)
    l_kw = {"window_strides": (2, 1), "padding": "VALID", "filter_shape": (2, 2)}
    p_kw = {"filter_shape": (2, 3), "window_strides": (1, 2), "padding": ((1, 0), (1, 1)), "lhs_dilation": (2, 1)}
    g = _rand(conv_spec(x.shape, w.shape, x.dtype, w.dtype, **conv_kw).out_shape, 6)

    def lax_vjp(a: Any, b: Any, c: Any) -> Any:
        return jax.vjp(lambda a, b: lax.conv_general_dilated(a, b, **conv_kw), a, b)[1](c)

    return [
        ("conv", lambda a, b: polyconv.conv_general_dilated(a, b, **conv_kw),
         lambda a, b: lax.conv_general_dilated(a, b, **conv_kw), (x, w),
         reference.conv_general_dilated(x, w, **conv_kw)),
        ("transpose", lambda a, b: polyconv.conv_transpose(a, b, **t_kw),
         lambda a, b: lax.conv_transpose(a, b, **t_kw), (xt, wt), reference.conv_transpose(xt, wt, **t_kw)),
        ("patches", lambda a: polyconv.conv_general_dilated_patches(a, **p_kw),
         lambda a: lax.conv_general_dilated_patches(a, **p_kw), (x,),
         reference.conv_general_dilated_patches(x, **p_kw)),
        ("local", lambda a, b: polyconv.conv_general_dilated_local(a, b, **l_kw),
         lambda a, b: lax.conv_general_dilated_local(a, b, **l_kw), (xl, wl),
         reference.conv_general_dilated_local(xl, wl, **l_kw)),
        ("vjp", lambda a, b, c: polyconv.conv_general_dilated_vjp(a, b, c, **conv_kw), lax_vjp, (x, w, g),
         reference.conv_general_dilated_vjp(x, w, g, **conv_kw)),
    ]


_OPS = ["conv", "transpose", "patches", "local", "vjp"]


@pytest.mark.parametrize("index", range(5), ids=_OPS)
def test_jit_equals_eager_direct_lax_and_reference(index: int) -> None:
    _, fn, direct, operands, expected = _four_ops()[index]
    args = [_j(a) for a in operands]
    results = (jax.jit(fn)(*args), fn(*args), direct(*args), expected)
    for got, eager, lax_result, want in zip(*(r if isinstance(r, tuple) else (r,) for r in results)):
        assert isinstance(got, jax.Array) and isinstance(eager, jax.Array)
        np.testing.assert_allclose(_n(got), want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(_n(got), _n(eager), rtol=1e-13, atol=1e-13)
        np.testing.assert_array_equal(_n(eager), _n(lax_result))


def test_tracing_again_parses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second trace reuses polyconv's parsed spec and the backend's lax
    arguments built from it: no parsing, no building."""
    from polyconv.spec import conv as conv_module

    parses = []
    real_dn = conv_module.conv_dimension_numbers  # runs on every parse-cache miss

    def counting(*args: Any, **kwargs: Any) -> Any:
        parses.append(args)
        return real_dn(*args, **kwargs)

    monkeypatch.setattr(conv_module, "conv_dimension_numbers", counting)
    x, w = _rand((3, 11, 7, 5)), _rand((2, 3, 5, 4), 1)  # shapes no other test uses
    kw = {"window_strides": (1, 2), "padding": "SAME", "dimension_numbers": NHWC}
    traces = []

    def f(a: Any, b: Any) -> Any:
        traces.append(1)
        return polyconv.conv_general_dilated(a, b, **kw)

    jax.jit(lambda a, b: f(a, b))(_j(x), _j(w))  # a new function each time: traced again
    parses_first, builds_first = len(parses), jax_backend._conv.builds
    assert parses_first >= 1
    out = jax.jit(lambda a, b: f(a, b))(_j(x), _j(w))
    jax.jit(lambda a, b: f(a, b)).lower(_j(x), _j(w))
    assert len(traces) == 3
    assert len(parses) == parses_first, "tracing again parsed the arguments again"
    assert jax_backend._conv.builds == builds_first, "tracing again rebuilt the lax arguments"
    assert _conv_problem(out, x, w, kw) is None


# -- grad, vjp -------------------------------------------------------------------------------

def _grad_cases() -> list[cases.ConvCase]:
    """Groups, batch groups, both dilations, negative padding and cropping, in
    the default and two unusual layouts (1-d and 2-d)."""
    wanted = ("pad-negative", "crop-past-edge", "lhs-dilation-stride", "both-dilations", "groups",
              "depthwise", "batch-groups-stride-pad", "everything", "everything-batch-groups")
    families = ("1d-mixed-", "2d-odd-", "2d-rhs-order-", "2d-default-")
    return [c for c in cases.grid() for f in families for v in wanted if c.name == f + v]


def _grad_and_vjp(case: cases.ConvCase) -> tuple:
    """``jax.grad`` of a loss through ``polyconv.conv_general_dilated``, and
    ``polyconv.conv_general_dilated_vjp`` on JAX arrays, as a function of the
    case's operands and cotangent (see jax_batches.results)."""
    x, w = case.operands()
    kw = case.kwargs()
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)

    def both(a: Any, b: Any, ct: Any) -> Any:
        def loss(a: Any, b: Any) -> Any:
            return jnp.sum(polyconv.conv_general_dilated(a, b, **kw) * ct)

        return jax.grad(loss, argnums=(0, 1))(a, b), polyconv.conv_general_dilated_vjp(a, b, ct, **kw)

    return both, (x, w, _rand(spec.out_shape, case.seed + 1))


@pytest.fixture(scope="module")
def grad_results(request: pytest.FixtureRequest) -> dict:
    return prefetch(request, "test_grad_equals_the_reference_vjp", _grad_and_vjp)


@pytest.mark.xdist_group("jax-grad")  # the results are computed together, on one worker
@pytest.mark.parametrize("case", _grad_cases(), ids=str)
def test_grad_equals_the_reference_vjp(case: cases.ConvCase, grad_results: dict) -> None:
    x, w = case.operands()
    kw = case.kwargs()
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
    g = _rand(spec.out_shape, case.seed + 1)
    (dx, dw), native = result(grad_results[case.name])
    assert tolerances.check_vjp_close(dx, dw, x, w, g, spec) is None
    # the vjp op on JAX arrays (jax.vjp natively) and on NumPy arrays (the derived rules) agree
    derived = polyconv.conv_general_dilated_vjp(x, w, g, **kw)
    for got, on_numpy, by_grad in zip(native, derived, (dx, dw)):
        np.testing.assert_allclose(got, by_grad, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got, on_numpy, rtol=1e-10, atol=1e-10)


def test_the_vjp_compiles_its_two_convolutions_and_no_forward() -> None:
    """Called eagerly, ``jax.vjp`` would compute the forward convolution and drop
    it; the backend's vjp is one jitted function of the two transposed
    convolutions."""
    x, w = _rand((2, 5, 6, 3)), _rand((3, 3, 3, 4), 1)
    kw = {"window_strides": (1, 1), "padding": "SAME", "dimension_numbers": NHWC}
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
    g = _rand(spec.out_shape, 2)
    run = jax_backend.runner("conv_general_dilated_vjp", spec)
    hlo = run.lower(_j(x), _j(w), _j(g)).compile().as_text()
    assert len(re.findall(r"= f64\[[^]]*\]\S* convolution\(", hlo)) == 2, hlo
    dx, dw = polyconv.conv_general_dilated_vjp(_j(x), _j(w), _j(g), **kw)
    assert tolerances.check_vjp_close(_n(dx), _n(dw), x, w, g, spec) is None


@pytest.mark.parametrize("index", range(4), ids=_OPS[:4])
def test_grad_through_each_op_is_jaxs(index: int) -> None:
    name, fn, direct, operands, _ = _four_ops()[index]
    args = [_j(a) for a in operands]
    weights = _j(_rand(np.shape(fn(*args)), 9))
    argnums = tuple(range(len(args)))
    ours = jax.grad(lambda *a: jnp.sum(fn(*a) * weights), argnums)(*args)
    theirs = jax.grad(lambda *a: jnp.sum(direct(*a) * weights), argnums)(*args)
    for a, b in zip(ours, theirs):
        if "patches" in name:  # copies' cotangents add up in another order than lax's transposed convolution's
            np.testing.assert_allclose(_n(a), _n(b), rtol=1e-13, atol=1e-13, err_msg=name)
        else:
            np.testing.assert_array_equal(_n(a), _n(b), err_msg=name)


@pytest.mark.parametrize("dtype, preferred", [("int8", None), ("int16", "int32"), ("int8", "float32"),
                                              ("bool", "float32"), ("uint8", "int16")])
def test_integer_vjp_follows_the_documented_dtypes(dtype: str, preferred: str | None) -> None:
    """jax.vjp refuses integer operands; the backend's two lax convolutions give
    what the NumPy backend gives (the cotangent's dtype for a floating one)."""
    x, w = _rand((4, 4, 7), 1, dtype), _rand((6, 2, 3), 2, dtype)
    kw = {"window_strides": (2,), "padding": ((1, 0),), "feature_group_count": 2,
          "preferred_element_type": preferred}
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
    g = _rand(spec.out_shape, 3, spec.out_dtype)
    dx, dw = polyconv.conv_general_dilated_vjp(_j(x), _j(w), _j(g), **kw)
    ex, ew = polyconv.conv_general_dilated_vjp(x, w, g, **kw)
    for got, want in ((dx, ex), (dw, ew)):
        assert _n(got).dtype == want.dtype
    dtype = str(ex.dtype)
    assert tolerances.check_vjp_close(_n(dx), _n(dw), x, w, g, spec, out_dtype=dtype) is None
    if dtype == spec.dtype:  # integer cotangents: exact, as on NumPy
        np.testing.assert_array_equal(_n(dx), ex)
        np.testing.assert_array_equal(_n(dw), ew)


def test_checkpoint() -> None:
    _, fn, _, (x, w), _ = _four_ops()[0]
    loss = lambda a, b: jnp.sum(jnp.sin(fn(a, b)))  # noqa: E731
    plain = jax.grad(loss, (0, 1))(_j(x), _j(w))
    remat = jax.jit(jax.grad(jax.checkpoint(loss), (0, 1)))(_j(x), _j(w))
    for a, b in zip(plain, remat):
        np.testing.assert_allclose(_n(a), _n(b), rtol=1e-12, atol=1e-12)
    # and the checkpointed gradient is the reference's, through the chain rule
    out = reference.conv_general_dilated(x, w, (2, 1), ((1, -1), (2, 0)), (1, 2), (2, 1), feature_group_count=2)
    dx, dw = reference.conv_general_dilated_vjp(x, w, np.cos(out), (2, 1), ((1, -1), (2, 0)), (1, 2), (2, 1),
                                                feature_group_count=2)
    np.testing.assert_allclose(_n(remat[0]), dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(_n(remat[1]), dw, rtol=1e-10, atol=1e-10)


# -- vmap ----------------------------------------------------------------------------------

def test_vmap_over_kernels_equals_a_loop() -> None:
    x = _rand((2, 7, 6, 4))
    ws = _rand((5, 3, 2, 2, 6), 1)  # five HWIO kernels, feature groups of 2
    kw = {"window_strides": (2, 1), "padding": ((1, 0), (-1, 2)), "rhs_dilation": (1, 2),
          "dimension_numbers": NHWC, "feature_group_count": 2}
    jx = _j(x)
    mapped = jax.vmap(lambda k: polyconv.conv_general_dilated(jx, k, **kw))(_j(ws))
    jitted = jax.jit(jax.vmap(lambda k: polyconv.conv_general_dilated(jx, k, **kw)))(_j(ws))
    loop = np.stack([_n(polyconv.conv_general_dilated(jx, _j(k), **kw)) for k in ws])
    np.testing.assert_allclose(_n(mapped), loop, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(_n(jitted), loop, rtol=1e-13, atol=1e-13)
    for k, got in zip(ws, _n(mapped)):
        assert _conv_problem(got, x, k, kw) is None


def test_vmap_over_inputs_and_both() -> None:
    xs, ws = _rand((3, 2, 4, 9)), _rand((3, 6, 4, 3), 1)
    kw = {"window_strides": (2,), "padding": "SAME", "lhs_dilation": None}
    both = jax.vmap(lambda a, b: polyconv.conv_general_dilated(a, b, **kw))(_j(xs), _j(ws))
    inputs = jax.vmap(lambda a: polyconv.conv_general_dilated(a, _j(ws[0]), **kw))(_j(xs))
    for i in range(3):
        assert _conv_problem(both[i], xs[i], ws[i], kw) is None
        assert _conv_problem(inputs[i], xs[i], ws[0], kw) is None
    # the other ops batch over their input too
    for name, fn, _, (first, *rest), _ in _four_ops()[1:4]:
        others = [_j(b) for b in rest]
        mapped = jax.vmap(lambda a, fn=fn, others=others: fn(a, *others))(_j(np.stack([first, -2 * first])))
        for i, scale in enumerate((1, -2)):
            single = fn(_j(first * scale), *others)
            np.testing.assert_allclose(_n(mapped[i]), _n(single), rtol=1e-13, atol=1e-13, err_msg=name)


# -- sharding and devices ------------------------------------------------------------------------

def test_single_device_named_sharding() -> None:
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()[:1]), ("batch",))
    x, w = _rand((4, 9, 9, 3)), _rand((3, 3, 3, 5), 1)
    kw = {"window_strides": (1, 1), "padding": "SAME", "dimension_numbers": NHWC}
    xs = jax.device_put(_j(x), NamedSharding(mesh, PartitionSpec("batch")))
    ws = jax.device_put(_j(w), NamedSharding(mesh, PartitionSpec()))
    out = polyconv.conv_general_dilated(xs, ws, **kw)
    direct = lax.conv_general_dilated(xs, ws, **kw)
    assert out.sharding == direct.sharding
    assert _conv_problem(out, x, w, kw) is None
    jitted = jax.jit(lambda a, b: polyconv.conv_general_dilated(a, b, **kw))(xs, ws)
    np.testing.assert_array_equal(_n(jitted), _n(direct))


_MULTI_DEVICE = r"""
import numpy as np, jax, jax.numpy as jnp, polyconv, pytest
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from polyconv.conformance import reference
assert len(jax.devices()) == 4, jax.devices()
mesh = Mesh(np.array(jax.devices()), ("batch",))
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 9, 9, 3)).astype(np.float32)
w = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
kw = dict(window_strides=(1, 1), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
want = reference.conv_general_dilated(x, w, **kw)
xs = jax.device_put(x, NamedSharding(mesh, P("batch")))
replicated = jax.device_put(w, NamedSharding(mesh, P()))
for kernel in (replicated, jnp.asarray(w)):        # a replicated kernel, an uncommitted one
    for fn in (polyconv.conv_general_dilated, jax.jit(polyconv.conv_general_dilated, static_argnums=range(2, 7))):
        out = fn(xs, kernel, (1, 1), "SAME", None, None, ("NHWC", "HWIO", "NHWC"))
        assert out.sharding.is_equivalent_to(lax.conv_general_dilated(xs, kernel, **kw).sharding, 4), out.sharding
        np.testing.assert_allclose(np.asarray(out), want, rtol=1e-5, atol=1e-5)
# (3 to 5 channels: the CPU's shifted sum, sharded as jax.lax's result above); a spec XLA
# computes itself is passed through unchanged, its sharding annotations included
x16 = jax.device_put(rng.standard_normal((8, 9, 9, 16)).astype(np.float32), NamedSharding(mesh, P("batch")))
w16 = jax.device_put(rng.standard_normal((3, 3, 16, 32)).astype(np.float32), NamedSharding(mesh, P()))
hlo = [jax.jit(lambda a, b: fn(a, b, **kw)).lower(x16, w16).as_text()
       for fn in (polyconv.conv_general_dilated, lax.conv_general_dilated)]
assert hlo[0] == hlo[1] and "sharding" in hlo[0], hlo
# committed arrays on two devices: polyconv's error naming both, before JAX runs anything
a = jax.device_put(x, jax.devices()[0])
b = jax.device_put(w, jax.devices()[1])
with pytest.raises(polyconv.MixedArraysError, match="'cpu:0' but rhs is on device 'cpu:1'"):
    polyconv.conv_general_dilated(a, b, **kw)
with pytest.raises(polyconv.MixedArraysError, match="cpu:0,cpu:1,cpu:2,cpu:3"):
    polyconv.conv_general_dilated(xs, b, **kw)
# an uncommitted operand goes where the committed one is, as in JAX
out = polyconv.conv_general_dilated(jnp.asarray(x), b, **kw)
assert out.devices() == {jax.devices()[1]}
np.testing.assert_allclose(np.asarray(out), want, rtol=1e-5, atol=1e-5)
# lists join a committed array's device
out = polyconv.conv_general_dilated(x.tolist(), b, **kw)
assert out.devices() == {jax.devices()[1]}
print("ok")
"""


@pytest.mark.slow
def test_sharded_over_four_cpu_devices() -> None:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", _MULTI_DEVICE], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


# -- a known XLA:CPU bug ---------------------------------------------------------------------------

# XLA:CPU's algebraic simplifier (JAX 0.10.2) aborts the process, "Check failed: ...
# Window dimensions do not match RHS shape", when it swaps the operands of a
# convolution whose kernel is larger than the input in one spatial dimension while
# another dimension has lhs dilation; the direct jax.lax call aborts the same way,
# eagerly and under jit.  polyconv passes JAX's own call through unchanged, so these
# cases run in subprocesses: with the pass disabled they must match the reference;
# with it, they must either match (JAX fixed) or die of exactly this bug.
_ALGSIMP_CASES = [
    ("conv", (1, 1, 2, 6), (1, 1, 4, 2), {"window_strides": (1, 1), "padding": ((1, 2), (0, 0)),
                                          "lhs_dilation": (1, 2)}),
    ("transpose", (6, 1, 2, 1), (4, 2, 1, 2), {
        "strides": (3, 2), "padding": ((2, 1), (1, 1)),
        "dimension_numbers": ConvDimensionNumbers((3, 1, 2, 0), (2, 1, 0, 3), (0, 3, 2, 1)),
        "transpose_kernel": True, "use_consistent_padding": True}),
    ("vjp", (1, 4, 4, 4), (2, 4, 1, 3), {
        "window_strides": (2, 2), "padding": ((1, 1), (-3, 0)), "lhs_dilation": (1, 2),
        "dimension_numbers": ("CHNW", "WOIH", "HNCW"), "batch_group_count": 2}),
    # the VJP of a spec whose crossing pad the backend rewrites (backends/jax/_lowering.py, tight)
    ("vjp", (2, 3, 8, 8), (2, 3, 4, 2), {
        "window_strides": (3, 2), "padding": ((-2, 5), (1, 2)), "lhs_dilation": (2, 1), "rhs_dilation": (2, 1)}),
]

_ALGSIMP_SCRIPT = r"""
import sys, numpy as np, jax
jax.config.update("jax_enable_x64", True)
import polyconv
from polyconv.conformance import cases, tolerances
from polyconv.spec import ConvDimensionNumbers, conv_spec, conv_transpose_spec
for op, lhs_shape, rhs_shape, kw in eval(sys.argv[1]):
    x, w = (cases.make_operand(np.random.default_rng(i), s, "float64") for i, s in enumerate((lhs_shape, rhs_shape)))
    if op == "transpose":
        out = polyconv.conv_transpose(jax.numpy.asarray(x), jax.numpy.asarray(w), **kw)
        problem = tolerances.check_transpose_close(np.asarray(out), x, w, conv_transpose_spec(
            x.shape, w.shape, x.dtype, w.dtype, **kw))
    else:
        spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kw)
        if op == "conv":
            out = polyconv.conv_general_dilated(jax.numpy.asarray(x), jax.numpy.asarray(w), **kw)
            problem = tolerances.check_close(np.asarray(out), x, w, spec)
        else:
            g = cases.make_operand(np.random.default_rng(2), spec.out_shape, "float64")
            dx, dw = polyconv.conv_general_dilated_vjp(*map(jax.numpy.asarray, (x, w, g)), **kw)
            problem = tolerances.check_vjp_close(np.asarray(dx), np.asarray(dw), x, w, g, spec)
    assert problem is None, (op, problem)
    print("ok", op)
"""


def _algsimp_run(case_list: list[tuple], flags: str) -> subprocess.CompletedProcess[str]:
    """The cases, one after the other, in a fresh process with ``XLA_FLAGS=flags``."""
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-c", _ALGSIMP_SCRIPT, repr(case_list)], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_cases_that_crash_xla_algsimp_pass_without_it() -> None:
    """With the simplifier off (as every test and the conformance suite run JAX), each case compiles and
    agrees with the reference: all of them in one process."""
    proc = _algsimp_run(_ALGSIMP_CASES, "--xla_disable_hlo_passes=algsimp")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [w for c in _ALGSIMP_CASES for w in ("ok", c[0])]


@pytest.mark.slow
@pytest.mark.parametrize("case", _ALGSIMP_CASES, ids=[c[0] for c in _ALGSIMP_CASES])
def test_cases_that_crash_xla_algsimp(case: tuple) -> None:
    """With it on, each case passes or aborts the process on the known bug, and fails in no other way
    (a process of its own: the abort ends it)."""
    proc = _algsimp_run([case], "")
    if proc.returncode == 0:
        assert proc.stdout.split() == ["ok", case[0]]
    else:  # the known bug, and no other failure
        assert "Window dimensions do not match RHS shape" in proc.stderr, proc.stderr[-3000:]


def test_xla_cpu_grouped_convolutions_still_make_nan_of_another_groups_inf() -> None:
    """A known deviation of ``jax.lax`` on the CPU, which the non-finite grid of
    the conformance suite works around (grouped cases there have finite
    inputs): XLA expands a grouped convolution into a dense one with a
    block-diagonal kernel, so an infinite element of channel 1 times the zero
    block of group 0 makes group 0's output NaN.  When this test fails, XLA has
    stopped doing it: give the grouped cases of ``cases.nonfinite_grid`` their
    non-finite inputs back."""
    x = np.array([1.0, 2.0, np.inf, 3.0]).reshape(1, 2, 2)  # N=1, C=2, W=2
    w = np.ones((2, 1, 1))
    expected = reference.conv_general_dilated(x, w, (1,), "VALID", feature_group_count=2)
    np.testing.assert_array_equal(expected[0], [[1.0, 2.0], [np.inf, 3.0]])
    got = np.asarray(lax.conv_general_dilated(x, w, (1,), "VALID", feature_group_count=2))
    assert np.isnan(got[0, 0, 0]) and np.array_equal(got[0, 1], expected[0, 1])
    # polyconv's JAX backend computes what jax.lax computes
    assert np.array_equal(_n(polyconv.conv_general_dilated(_j(x), _j(w), (1,), "VALID", feature_group_count=2)),
                          got, equal_nan=True)


def test_xla_cpu_still_miscomputes_crossing_pads() -> None:
    """A known bug of ``jax.lax`` on the CPU in float32, which the backend works
    around (:func:`polyconv.backends.jax._lowering.tight`): a negative low pad
    with a positive high one on an axis gives wrong values.  When this test
    fails, XLA has fixed it: the rewrite may be kept for older releases."""
    x = np.arange(1, 13, dtype=np.float32).reshape(1, 6, 2, 1)
    w = np.ones((4, 2, 1, 1), np.float32)
    kw: dict[str, Any] = dict(window_strides=(1, 1), padding=[(0, 0), (-1, 1)],
                              dimension_numbers=("NHWC", "HWIO", "NHWC"))
    expected = reference.conv_general_dilated(x, w, **kw)
    np.testing.assert_array_equal(expected.ravel(), [20, 28, 36])
    assert not np.allclose(np.asarray(lax.conv_general_dilated(_j(x), _j(w), **kw)), expected)
    np.testing.assert_array_equal(_n(polyconv.conv_general_dilated(_j(x), _j(w), **kw)), expected)


# (lhs shape, rhs shape, padding): pads XLA:CPU computes wrongly in float32 (values, or a cotangent)
_PAD_CASES = [
    ((1, 6, 2, 1), (4, 2, 1, 1), [(0, 0), (-1, 1)], ("NHWC", "HWIO", "NHWC")),
    ((2, 4, 9), (6, 4, 4), [(-1, 1)], None),
    ((2, 4, 7, 6), (6, 4, 3, 2), [(-1, 1), (-1, 1)], None),
    ((2, 4, 7), (6, 4, 3), [(5, 0)], None),
    ((2, 4, 7, 6), (6, 4, 3, 2), [(5, 0), (5, 0)], None),
    ((2, 4, 7, 6), (6, 4, 3, 2), [(-3, 4), (6, -1)], None),
    ((2, 3, 9), (4, 3, 3), [(-4, 6)], None),  # crops into the lhs dilation's holes (below)
    ((1, 2, 5), (2, 2, 2), [(30, 1)], None),  # every output reads padding alone
]


@pytest.mark.parametrize("lhs_dilation", [1, 2])
@pytest.mark.parametrize("index", range(len(_PAD_CASES)))
def test_crossing_and_far_pads_give_the_reference_values_and_cotangents(index: int, lhs_dilation: int) -> None:
    """Those pads, through the backend (eager and jitted), first and second
    order: the rewrite of :func:`polyconv.backends.jax._lowering.tight` keeps
    XLA off them, in the forward convolution and in the ones JAX's rules make."""
    shape, kshape, padding, dn = _PAD_CASES[index]
    rng = np.random.default_rng(index)
    x, w = rng.standard_normal(shape), rng.standard_normal(kshape)
    nd = len(shape) - 2
    kw: dict[str, Any] = dict(window_strides=(1,) * nd, padding=padding, lhs_dilation=(lhs_dilation,) * nd,
                              dimension_numbers=dn)
    expected = reference.conv_general_dilated(x, w, **kw)
    conv = lambda a, b: polyconv.conv_general_dilated(a, b, **kw)  # noqa: E731
    xj, wj = _j(x.astype(np.float32)), _j(w.astype(np.float32))
    scale = 1e-5 * (1 + np.abs(expected).max())
    np.testing.assert_allclose(_n(conv(xj, wj)), expected, atol=scale, rtol=0)
    np.testing.assert_allclose(_n(jax.jit(conv)(xj, wj)), expected, atol=scale, rtol=0)
    ct = rng.standard_normal(expected.shape)
    _, vjp = jax.vjp(conv, xj, wj)
    gx, gw = vjp(_j(ct.astype(np.float32)))
    rx, rw = reference.conv_general_dilated_vjp(x, w, ct, **kw)
    np.testing.assert_allclose(_n(gx), rx, atol=1e-5 * (1 + np.abs(rx).max()), rtol=0)
    np.testing.assert_allclose(_n(gw), rw, atol=1e-5 * (1 + np.abs(rw).max()), rtol=0)
    # second order: <dW(x, ct), v> = <ct, conv(x, v)>, so its gradient in x is the input's cotangent with kernel v
    v = rng.standard_normal(kshape)
    ctj, vj = _j(ct.astype(np.float32)), _j(v.astype(np.float32))
    second = jax.grad(lambda a: jnp.sum(jax.vjp(lambda b: conv(a, b), wj)[1](ctj)[0] * vj))(xj)
    r2 = reference.conv_general_dilated_vjp(x, v, ct, **kw)[0]
    np.testing.assert_allclose(_n(second), r2, atol=1e-5 * (1 + np.abs(r2).max()), rtol=0)


@pytest.mark.parametrize("index", [1, 2, 3, 4, 5])
def test_crossing_and_far_pads_in_transposed_patches_and_local(index: int) -> None:
    """The same pads in the other ops that hand XLA a padding: ``conv_transpose``
    (its padding is the forward convolution's: the rewrite), patches and local
    convolutions (``jax.lax``'s own, which computes these right)."""
    shape, kshape, padding, _ = _PAD_CASES[index]
    rng = np.random.default_rng(index)
    nd = len(shape) - 2
    sp = "HW"[2 - nd :]
    dn = ("NC" + sp, sp + "IO", "NC" + sp)
    x = rng.standard_normal(shape).astype(np.float32)
    filter_shape = tuple(kshape[2:])
    kw_p: dict[str, Any] = dict(filter_shape=filter_shape, window_strides=(1,) * nd, padding=padding)
    patches = reference.conv_general_dilated_patches(x, **kw_p)  # (N, C * taps, *out)
    np.testing.assert_allclose(_n(polyconv.conv_general_dilated_patches(_j(x), **kw_p)), patches, atol=1e-6)
    local_kernel = rng.standard_normal((*patches.shape[2:], patches.shape[1], 3)).astype(np.float32)
    kw_l: dict[str, Any] = dict(window_strides=(1,) * nd, padding=padding, filter_shape=filter_shape,
                                dimension_numbers=dn)
    local = reference.conv_general_dilated_local(x, local_kernel, **kw_l)
    np.testing.assert_allclose(_n(polyconv.conv_general_dilated_local(_j(x), _j(local_kernel), **kw_l)), local,
                               atol=1e-5 * (1 + np.abs(local).max()), rtol=0)
    kernel = rng.standard_normal((*filter_shape, shape[1], 5)).astype(np.float32)  # (*K, I, O)
    for transpose_kernel in (False, True):
        k = np.swapaxes(kernel, -1, -2).copy() if transpose_kernel else kernel
        kw_t: dict[str, Any] = dict(strides=(2,) * nd, padding=padding, dimension_numbers=dn,
                                    transpose_kernel=transpose_kernel)
        transposed = reference.conv_transpose(x, k, **kw_t)
        np.testing.assert_allclose(_n(polyconv.conv_transpose(_j(x), _j(k), **kw_t)), transposed,
                                   atol=1e-5 * (1 + np.abs(transposed).max()), rtol=0)


@pytest.mark.parametrize("limit", [0.0, float("inf")], ids=["optimised", "unoptimised"])
def test_the_suites_jit_gives_jax_jits_values_at_either_level(monkeypatch: pytest.MonkeyPatch, limit: float) -> None:
    """The conformance harness's ``jit`` compiles at XLA level 0 or 1 by the function's
    cost; both give the values of ``jax.jit`` (and of the reference)."""
    from polyconv.backends.jax import conformance_harness as jax_harness

    monkeypatch.setattr(jax_harness, "UNOPTIMISED_FLOPS", limit)
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 9, 9, 3)), rng.standard_normal((3, 3, 3, 4))

    def fn(a: Any, b: Any) -> Any:
        return polyconv.conv_general_dilated(a, b, (2, 1), "SAME", dimension_numbers=NHWC)

    ours = jax_harness.harness.jit(fn)(jnp.asarray(x), jnp.asarray(w))
    theirs = jax.jit(fn)(jnp.asarray(x), jnp.asarray(w))  # LLVM's optimisations may reorder sums: ulps apart
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-13, atol=1e-13)
    expected = reference.conv_general_dilated(x, w, (2, 1), "SAME", dimension_numbers=NHWC)
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-12, atol=1e-12)


def test_the_suites_jit_optimises_integer_operands() -> None:
    """Unoptimised (XLA level 0), the loops XLA:CPU emits for integer operands sum
    in another order: 2049 int8 products summed in float32 come out about 1000 off.
    The harness's ``jit`` compiles such functions optimised: jax.jit's own values."""
    from polyconv.backends.jax.conformance_harness import harness

    x, w = np.full((1, 3, 683), 127, np.int8), np.full((2, 3, 683), 127, np.int8)
    x[0, 0, 0] = -128

    def fn(a: Any, b: Any) -> Any:
        return polyconv.conv_general_dilated(a, b, (1,), "VALID", preferred_element_type=np.float32)

    ours, theirs = harness.jit(fn)(jnp.asarray(x), jnp.asarray(w)), jax.jit(fn)(jnp.asarray(x), jnp.asarray(w))
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    exact = float((x.astype(np.float64)[None] * w.astype(np.float64)[:, None]).sum((2, 3))[0, 0])
    assert abs(float(np.asarray(ours)[0, 0, 0]) - exact) < 100


# -- the CPU lowerings (backends/jax/cpu_lowering.py) -------------------------------------------------

_CPU_CASES = [
    ("depthwise-strided-dilated", (2, 6, 11, 10), (12, 1, 3, 2), "float32",
     {"window_strides": (2, 1), "padding": ((1, 2), (-1, 1)), "rhs_dilation": (1, 2), "feature_group_count": 6}),
    ("depthwise-1d-nwc", (3, 17, 5), (4, 1, 5), "float32",
     {"window_strides": (3,), "padding": "SAME", "feature_group_count": 5,
      "dimension_numbers": ("NWC", "WIO", "NWC")}),
    ("depthwise-3d-bf16", (1, 4, 5, 6, 7), (4, 1, 3, 3, 3), "bfloat16",
     {"window_strides": (1, 1, 1), "padding": "SAME", "feature_group_count": 4}),
    ("depthwise-f16-to-f32", (2, 3, 9, 9), (3, 1, 3, 3), "float16",
     {"window_strides": (1, 1), "padding": "VALID", "feature_group_count": 3, "preferred_element_type": "float32"}),
    ("pointwise-strided-padded", (2, 8, 9, 7), (5, 8, 1, 1), "float32",
     {"window_strides": (2, 3), "padding": ((1, 0), (2, -1))}),
    ("pointwise-grouped-nhwc", (2, 6, 6, 8), (1, 1, 4, 6), "float32",
     {"window_strides": (1, 1), "padding": "VALID", "feature_group_count": 2, "dimension_numbers": NHWC,
      "precision": "highest"}),
    ("pointwise-size-1-axis", (2, 4, 7, 1), (3, 4, 1, 1), "float32", {"window_strides": (1, 1), "padding": "SAME"}),
    ("shifted-grouped-strided-dilated", (2, 6, 11, 10), (9, 2, 3, 2), "float32",
     {"window_strides": (2, 3), "padding": ((1, 2), (-1, 1)), "rhs_dilation": (2, 1), "feature_group_count": 3}),
    ("shifted-grouped-nhwc", (2, 7, 8, 8), (3, 3, 2, 8), "float32",
     {"window_strides": (1, 1), "padding": "SAME", "feature_group_count": 4, "dimension_numbers": NHWC,
      "precision": "highest"}),
    ("shifted-grouped-3d-bf16", (1, 4, 5, 4, 6), (4, 2, 3, 2, 3), "bfloat16",
     {"window_strides": (1, 2, 1), "padding": "SAME", "feature_group_count": 2}),
    ("shifted-depthwise-multiplier-8", (2, 2, 7, 6), (16, 1, 3, 3), "float32",
     {"window_strides": (1, 1), "padding": "SAME", "feature_group_count": 2}),
    ("shifted-depthwise-9x9", (1, 3, 12, 11), (3, 1, 9, 9), "float32",
     {"window_strides": (1, 1), "padding": "SAME", "feature_group_count": 3}),
    ("shifted-ungrouped-strided-dilated", (2, 3, 13, 10), (4, 3, 3, 2), "float32",
     {"window_strides": (2, 3), "padding": ((1, 2), (-1, 1)), "rhs_dilation": (2, 1)}),
    ("shifted-ungrouped-1d-nwc", (3, 23, 2), (5, 2, 4), "float32",
     {"window_strides": (2,), "padding": "SAME", "dimension_numbers": ("NWC", "WIO", "NWC")}),
    ("shifted-ungrouped-3d", (1, 1, 5, 6, 7), (2, 1, 3, 3, 3), "float32",
     {"window_strides": (1, 1, 2), "padding": "SAME"}),
    ("shifted-single-channel-15x15", (1, 1, 17, 16), (1, 1, 15, 15), "float32",
     {"window_strides": (1, 1), "padding": "SAME", "precision": "highest"}),
    ("shifted-ungrouped-f16-to-f32", (2, 1, 9, 9), (3, 1, 3, 3), "float16",
     {"window_strides": (1, 1), "padding": "VALID", "preferred_element_type": "float32"}),
    ("stacked-grouped-strided-dilated", (2, 16, 11, 10), (32, 8, 3, 2), "float32",
     {"window_strides": (2, 3), "padding": ((1, 2), (-1, 1)), "rhs_dilation": (2, 1), "feature_group_count": 2}),
    ("stacked-grouped-nhwc", (2, 7, 8, 18), (3, 3, 9, 16), "float32",
     {"window_strides": (1, 1), "padding": "SAME", "feature_group_count": 2, "dimension_numbers": NHWC,
      "precision": "highest"}),
    ("stacked-depthwise-13x13", (1, 3, 14, 13), (3, 1, 13, 13), "float32",
     {"window_strides": (1, 1), "padding": "SAME", "feature_group_count": 3}),
    ("folded-3d", (2, 3, 6, 5, 7), (24, 3, 3, 2, 3), "float32",
     {"window_strides": (1, 2, 1), "padding": ((1, 1), (0, 1), (2, -1)), "rhs_dilation": (2, 1, 1)}),
    ("folded-3d-ndhwc", (1, 5, 6, 4, 3), (2, 2, 2, 3, 24), "float32",
     {"window_strides": (1, 1, 1), "padding": "VALID", "dimension_numbers": ("NDHWC", "DHWIO", "NDHWC")}),
    ("folded-3d-strided-first-axis", (2, 4, 9, 5, 7), (12, 4, 3, 2, 3), "float32",
     {"window_strides": (2, 1, 2), "padding": ((-1, 2), (1, 1), (0, 2)), "rhs_dilation": (2, 1, 1)}),
    ("folded-3d-temporal-1x1", (2, 16, 6, 5, 5), (3, 1, 1, 16, 16), "float32",
     {"window_strides": (1, 1, 1), "padding": "SAME", "dimension_numbers": ("NCDHW", "DHWIO", "NDHWC")}),
    ("folded-2d-strided-first-axis", (2, 11, 9, 8), (3, 2, 8, 16), "float32",
     {"window_strides": (2, 1), "padding": ((1, -1), (1, 1)), "rhs_dilation": (1, 2),
      "dimension_numbers": ("NHWC", "HWIO", "NHWC")}),
    ("folded-4d", (1, 3, 4, 5, 4, 6), (12, 3, 2, 2, 3, 2), "float32",
     {"window_strides": (1, 1, 1, 2), "padding": "SAME"}),
    ("folded-3d-bf16", (1, 4, 5, 5, 5), (12, 4, 3, 3, 3), "bfloat16",
     {"window_strides": (1, 1, 1), "padding": "SAME"}),
    ("stacked-grouped-bf16", (2, 16, 6, 6), (32, 8, 3, 3), "bfloat16",
     {"window_strides": (1, 1), "padding": "SAME", "feature_group_count": 2}),
    ("folded-3d-f16-to-f32", (1, 2, 5, 5, 5), (12, 2, 3, 3, 3), "float16",
     {"window_strides": (1, 1, 1), "padding": "SAME", "preferred_element_type": "float32"}),
]


def _convolution_ranks(hlo: str) -> set[int]:
    """The numbers of spatial axes of the convolutions in a StableHLO text."""
    operands = re.findall(r"stablehlo\.convolution.*?dim_numbers = \[([^]]*)\]", hlo)
    return {len(re.findall(r"\d+", lhs)) for lhs in operands}


def test_cpu_lowerings_are_one_jitted_function_for_eager_calls() -> None:
    """An eager call of a CPU lowering runs one compiled computation (op by op, the 3-d stacked
    lowering took 235 ms against 61 ms jitted here, and jaxlib 0.5.1 failed to compile the
    negative pads of its eager second derivatives)."""
    from polyconv.backends.jax._lowering import lax_conv_args

    if jax.default_backend() != "cpu":
        pytest.skip("the CPU lowerings apply on the CPU platform only")
    for _, lhs, rhs, dtype, kw in _CPU_CASES:
        fn, args, _ = lax_conv_args(conv_spec(lhs, rhs, dtype, dtype, **kw))
        assert args == () and callable(getattr(fn, "lower", None))  # a jax.jit function


@pytest.mark.parametrize("blocked", [False, True], ids=["whole", "blocked"])
@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_stacked_lowering_at_every_level_matches_the_reference(monkeypatch: pytest.MonkeyPatch, level: int,
                                                               blocked: bool) -> None:
    """cpu_lowering.stacked with the taps of the first ``level`` axes as the product's rows
    and the others stacked into the contraction (the lowering takes level 1): every split
    gives the convolution, strides, dilations, negative pads and groups included; so do
    blocks of the outputs of axis ``level`` (forced small here), with their gradients."""
    if blocked:
        monkeypatch.setattr(cpu_lowering, "STACKED_BLOCK_BYTES", 1200)
    kw = {"window_strides": (1, 2, 1), "padding": ((1, 1), (0, 1), (2, -1)), "rhs_dilation": (2, 1, 1),
          "feature_group_count": 2}
    lhs, rhs = (2, 4, 6, 5, 7), (6, 2, 3, 2, 3)
    spec = conv_spec(lhs, rhs, "float32", "float32", **kw)
    p = problem(spec)
    count, size = cpu_lowering._blocks(p, level)
    if blocked and level < 3 and cpu_lowering._maps_transpose():  # blocks of 1 to 3 outputs, the last one cut
        assert count > 1 and (count - 1) * size < p.out[level] <= count * size
    else:
        assert count == 1
    x, w = _rand(lhs, 1, "float32"), _rand(rhs, 2, "float32")
    out = jax.jit(lambda a, b: cpu_lowering.stacked(a, b, spec, level=level))(_j(x), _j(w))
    assert _conv_problem(out, x, w, kw) is None
    g = _rand(spec.out_shape, 3, "float32")
    lhs_ct, rhs_ct = jax.jit(jax.grad(lambda a, b: (cpu_lowering.stacked(a, b, spec, level=level) * _j(g)).sum(),
                                      argnums=(0, 1)))(_j(x), _j(w))
    assert tolerances.check_vjp_close(_n(lhs_ct), _n(rhs_ct), x, w, g, spec) is None
    # forward mode, the linear transpose and vmap see through the blocks' lax.map (jitted, as the
    # backend runs it: jaxlib 0.5's eager transpose of a pad is a negative pad it cannot compile)
    (transposed,) = jax.jit(jax.linear_transpose(lambda a: cpu_lowering.stacked(a, _j(w), spec, level=level),
                                                 _j(x)))(_j(g))
    np.testing.assert_allclose(_n(transposed), _n(lhs_ct), rtol=1e-5, atol=1e-5)
    _, tangent = jax.jvp(lambda b: cpu_lowering.stacked(_j(x), b, spec, level=level), (_j(w),), (_j(2 * w),))
    np.testing.assert_allclose(_n(tangent), 2 * _n(out), rtol=1e-5, atol=1e-5)
    mapped = jax.vmap(lambda a: cpu_lowering.stacked(a, _j(w), spec, level=level))(_j(np.stack([x, -x])))
    np.testing.assert_allclose(_n(mapped), np.stack([_n(out), -_n(out)]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, lhs, rhs, dtype, kw", _CPU_CASES, ids=[c[0] for c in _CPU_CASES])
def test_cpu_lowerings_match_the_reference_in_value_gradient_and_batching(
        name: str, lhs: tuple, rhs: tuple, dtype: str, kw: dict) -> None:
    from polyconv.conformance import reference

    spec = conv_spec(lhs, rhs, dtype, dtype, **kw)
    kind = cpu_lowering.lowering(spec, "cpu")
    assert kind == name.split("-")[0] and cpu_lowering.lowering(spec, "gpu") is None
    x, w = _rand(lhs, 1, dtype), _rand(rhs, 2, dtype)
    if jax.default_backend() != "cpu":
        pytest.skip("the CPU lowerings apply on the CPU platform only")
    assert polyconv.explain("conv_general_dilated", _j(x), _j(w), **kw).strategy == kind
    f = jax.jit(lambda a, b: polyconv.conv_general_dilated(a, b, **kw))
    # no XLA convolution, or (folded) only ones of fewer spatial axes (none where those are 1x1)
    ranks = _convolution_ranks(_hlo(lambda a, b: polyconv.conv_general_dilated(a, b, **kw), _j(x), _j(w)))
    if kind == "folded" and not name.endswith("1x1"):
        assert ranks and max(ranks) < spec.nspatial
    else:
        assert not ranks
    assert _conv_problem(f(_j(x), _j(w)), x, w, kw) is None
    if dtype != "float32":
        return
    # the gradient (jitted) is the reference VJP's, the second order runs, vmap maps over a batch of kernels
    g = _rand(spec.out_shape, 3, dtype)
    lhs_ct, rhs_ct = jax.jit(jax.grad(lambda a, b: (polyconv.conv_general_dilated(a, b, **kw) * _j(g)).sum(),
                                      argnums=(0, 1)))(_j(x), _j(w))
    assert tolerances.check_vjp_close(_n(lhs_ct), _n(rhs_ct), x, w, g, spec) is None
    hessian_diag = jax.grad(lambda a: jax.grad(lambda b: (polyconv.conv_general_dilated(a, b, **kw) ** 2).sum())(
        _j(w)).sum())(_j(x))
    assert np.isfinite(_n(hessian_diag)).all()
    ws = np.stack([w, 2 * w])
    mapped = jax.vmap(lambda b: polyconv.conv_general_dilated(_j(x), b, **kw))(_j(ws))
    np.testing.assert_allclose(_n(mapped)[1], 2 * _n(mapped)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_n(mapped)[0], reference.cast_result(reference.conv_from_spec(x, w, spec), dtype),
                               rtol=1e-4, atol=1e-4)
    # forward mode, and the transpose of the linear map lhs -> conv(lhs, rhs): JAX's rules of the operations
    dx = _rand(lhs, 4, dtype)
    _, tangent = jax.jvp(lambda a: polyconv.conv_general_dilated(a, _j(w), **kw), (_j(x),), (_j(dx),))
    np.testing.assert_allclose(_n(tangent), _n(f(_j(dx), _j(w))), rtol=1e-5, atol=1e-5)
    (transposed,) = jax.linear_transpose(lambda a: polyconv.conv_general_dilated(a, _j(w), **kw), _j(x))(_j(g))
    np.testing.assert_allclose(_n(transposed), _n(lhs_ct), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lhs, rhs, kw, expected", [
    ((2, 16, 32, 32, 32), (32, 16, 3, 3, 3), {"window_strides": (1, 1, 1), "padding": "SAME"}, "folded"),
    ((2, 16, 32, 32, 32), (32, 16, 3, 3, 3), {"window_strides": (2, 2, 2), "padding": "SAME"}, "folded"),
    ((2, 16, 8, 8, 8), (32, 8, 3, 3, 3), {"window_strides": (1, 1, 1), "padding": "SAME", "feature_group_count": 2},
     "stacked"),
    ((2, 16, 8, 8, 8), (32, 16, 3, 3, 3),
     {"window_strides": (1, 1, 1), "padding": [(1, 1)] * 3, "lhs_dilation": (2, 1, 1)}, None),
    ((8, 64, 56, 56), (64, 64, 3, 3), {"window_strides": (1, 1), "padding": "SAME"}, None),
    ((8, 64, 56, 56), (128, 64, 3, 3), {"window_strides": (2, 2), "padding": "SAME"}, "folded"),
    ((8, 64, 56, 56), (64, 64, 3, 3), {"window_strides": (1, 2), "padding": "SAME"}, None),
    ((1, 3, 224, 224), (16, 3, 7, 7), {"window_strides": (2, 2), "padding": "SAME"}, None),
    ((1, 3, 224, 224), (64, 3, 7, 7), {"window_strides": (2, 2), "padding": "SAME"}, "folded"),
], ids=["3d", "3d-strided", "3d-grouped", "3d-lhs-dilated", "2d", "2d-strided", "2d-strided-second-axis",
        "2d-strided-48-channel-pairs", "2d-strided-192-channel-pairs"])
def test_which_ungrouped_convolutions_are_folded(lhs: tuple, rhs: tuple, kw: dict, expected: str | None) -> None:
    """Ungrouped convolutions of three or more spatial axes are folded, whatever their strides;
    those of two where the first axis has a stride and channel pairs are 96 or more (without
    that stride, folding was slower on five of fifteen 2-d shapes measured); grouped ones stay stacked."""
    spec = conv_spec(lhs, rhs, "float32", "float32", **kw)
    assert cpu_lowering.lowering(spec, "cpu") == expected
    assert cpu_lowering.lowering(spec, "gpu") is None


@pytest.mark.parametrize("lhs, rhs, kw, derivative", [
    ((2, 8, 9, 9), (8, 2, 3, 3), {"window_strides": (1, 1), "padding": "SAME", "feature_group_count": 4}, "stacked"),
    ((2, 3, 9, 9), (4, 3, 3, 3), {"window_strides": (2, 1), "padding": "SAME"}, "lax"),
    ((2, 2, 33), (3, 2, 5), {"window_strides": (1,), "padding": "VALID"}, "lax"),
    ((1, 1, 5, 6, 7), (2, 1, 3, 3, 3), {"window_strides": (1, 1, 2), "padding": "SAME"}, "folded"),
], ids=["grouped", "ungrouped-2d", "ungrouped-1d", "ungrouped-3d"])
def test_shifted_is_differentiated_as_the_lowering_it_replaces(lhs: tuple, rhs: tuple, kw: dict,
                                                              derivative: str) -> None:
    """The shifted lowering's gradient is the one the spec would have without it: stacked's
    products for grouped convolutions (no XLA convolution in the gradient), the folded
    lowering's for ungrouped 3-d ones (XLA's convolutions of two spatial axes only), XLA's own
    convolutions for the other ungrouped ones (whose gradient XLA computes faster than
    stacked's); the forward pass is the sum either way."""
    if jax.default_backend() != "cpu":
        pytest.skip("the CPU lowerings apply on the CPU platform only")
    spec = conv_spec(lhs, rhs, "float32", "float32", **kw)
    assert cpu_lowering.lowering(spec, "cpu") == "shifted"
    assert cpu_lowering.shifted_derivative(spec) == derivative
    x, w = _j(_rand(lhs, 0, "float32")), _j(_rand(rhs, 1, "float32"))
    forward = _hlo(lambda a, b: polyconv.conv_general_dilated(a, b, **kw), x, w)
    gradient = _hlo(jax.grad(lambda a, b: jnp.tanh(polyconv.conv_general_dilated(a, b, **kw)).sum(),
                             argnums=(0, 1)), x, w)
    assert "stablehlo.convolution" not in forward
    assert _convolution_ranks(gradient) == {"stacked": set(), "folded": {2}, "lax": {len(lhs) - 2}}[derivative]
    assert ("stablehlo.dot_general" in gradient) is (derivative == "stacked")


@pytest.mark.parametrize("version, widened", [("0.5.1", True), ("0.7.1", True), ("0.7.2", False), ("0.10.2", False)])
def test_float16_is_widened_on_the_cpu_where_old_xla_sums_it_in_float16(monkeypatch: pytest.MonkeyPatch,
                                                                         version: str, widened: bool) -> None:
    """XLA:CPU in JAX before 0.7.2 sums float16 convolutions in float16 on processors with AVX512-FP16
    (measured on an Intel Xeon VM of the Sapphire Rapids generation or later: 0.5.1, 0.6.2, 0.7.0 and
    0.7.1 do, 0.7.2 and 0.8.3 do not); there the backend converts the operands to float32 and rounds the
    result once: the rule, for each release (the version pretended)."""
    from polyconv.backends.jax import _lowering

    monkeypatch.setattr(jax, "__version__", version)
    _lowering._widenings.cache_clear()
    try:
        assert (_lowering._widenings().get(("float16", "float16")) == "float32") is (
            widened and jax.default_backend() == "cpu")
        if widened:  # the widened path's values, on any release (unwidened: the test below, as installed)
            _check_float16_sums_in_float32()
    finally:
        _lowering._widenings.cache_clear()


def test_float16_sums_in_float32_on_the_installed_jax() -> None:
    """Whatever the installed JAX (widened by the backend, or by XLA itself from 0.7.2 on), a float16
    convolution is summed in float32 and rounded once, as ``jax.lax`` with a float32
    ``preferred_element_type``."""
    from polyconv.backends.jax import _lowering

    _lowering._widenings.cache_clear()
    _check_float16_sums_in_float32()


def _check_float16_sums_in_float32() -> None:
    from polyconv.backends.jax import _lowering

    x, w = _rand((2, 16, 9, 9), 0, "float16"), _rand((8, 16, 3, 3), 1, "float16")
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, (1, 1), "SAME")
    run = _lowering.make_runner(_lowering.lax_conv_args(spec), None, "conv_general_dilated")
    assert run is not None
    got = run(_j(x), _j(w))
    assert got.dtype == jnp.float16
    once = lax.conv_general_dilated(_j(x), _j(w), (1, 1), "SAME", preferred_element_type=jnp.float32)
    np.testing.assert_array_equal(_n(got), _n(once.astype(jnp.float16)))
