"""No side effects where nobody expects them.

* importing :mod:`polyconv.ops` or :mod:`polyconv.layers` loads no backend
  and imports no framework;
* the torch backend's ``owns()`` is a type check: it imports nothing and
  registers nothing with ``torch.compile`` (registration happens at the
  points that :mod:`polyconv.backends.autoload` lists);
* ``dir(polyconv)`` is the public API, without the module's helpers;
* the caches of dtype names and of the JAX lowering are polyconv's caches:
  :func:`polyconv.caching.clear` empties them.

Each import check runs in a fresh process; those that import torch are slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

import polyconv
from polyconv import caching


def _fresh(*code: str, **env: str) -> Any:
    """Run the pieces of ``code`` (each dedented) in a fresh process; its last line of output, as JSON."""
    run = subprocess.run(
        [sys.executable, "-c", "".join(textwrap.dedent(c) for c in code)], capture_output=True, text=True, timeout=300,
        env={**os.environ, **env},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


_REPORT = """
    from polyconv.registry import registry
    print(json.dumps({
        "backends": sorted(m for m in sys.modules if m.startswith("polyconv.backends")),
        "loaded": sorted(n for n, r in registry.records().items() if r.status != "registered"),
        "frameworks": sorted(m for m in ("torch", "jax", "flax", "cupy", "dask", "array_api_strict")
                             if m in sys.modules),
    }))
"""


# -- importing the API loads no backend ------------------------------------------------------

def test_importing_ops_loads_no_backend() -> None:
    """NumPy is imported (the core needs it), yet not even the NumPy backend loads."""
    out = _fresh("""
        import json, sys
        import polyconv.ops
        assert "numpy" in sys.modules
    """, _REPORT)
    assert out == {"backends": [], "loaded": [], "frameworks": []}


@pytest.mark.slow
def test_importing_ops_after_torch_registers_with_torch_compile_and_loads_no_backend() -> None:
    pytest.importorskip("torch", reason="PyTorch is not installed")
    out = _fresh("""
        import json, sys
        import torch
        import polyconv.ops as ops
        from polyconv.backends import autoload
        assert autoload._registered == tuple(getattr(ops, n) for n in ops.__all__), autoload._registered
    """, _REPORT)
    # the hook module (which torch itself imports) alone, no backend
    hook = ["polyconv.backends", "polyconv.backends.autoload"]
    assert out == {"backends": hook, "loaded": [], "frameworks": ["torch"]}


def test_importing_layers_imports_no_backend_and_no_framework() -> None:
    out = _fresh("""
        import json, sys
        import polyconv.layers
        assert "polyconv.backends.torch.module" not in sys.modules
    """, _REPORT)
    assert out == {"backends": [], "loaded": [], "frameworks": []}


# -- the torch backend: owns() is a type check -----------------------------------------------

@pytest.mark.slow
def test_torch_owns_imports_and_registers_nothing_and_the_run_path_registers() -> None:
    """With PyTorch's entry points off (so that torch's import registers nothing),
    ``owns()`` on tensors and on other values leaves polyconv's functions
    unregistered and ``torch._dynamo`` unimported; the backend's first run
    registers them.  Without torch imported, ``owns()`` imports neither torch
    nor polyconv's API."""
    pytest.importorskip("torch", reason="PyTorch is not installed")
    out = _fresh("""
        import json, sys
        from polyconv.backends.torch import TorchBackend
        be = TorchBackend()
        owned_before = be.owns(1)
        assert "torch" not in sys.modules and "polyconv.ops" not in sys.modules
        import polyconv.ops as ops
        import torch
        from polyconv.backends import autoload
        owned = [be.owns(torch.ones(1)), be.owns(1), be.owns(None), be.owns(torch.float32)]
        before = {"registered": len(autoload._registered), "dynamo": "torch._dynamo" in sys.modules}
        be.asarray(1.0)  # the run path
        print(json.dumps({
            "owned": [owned_before, *owned],
            "before": before,
            "after": autoload._registered == tuple(getattr(ops, n) for n in ops.__all__),
        }))
    """, TORCH_DEVICE_BACKEND_AUTOLOAD="0")
    assert out == {"owned": [False, True, False, False, False], "before": {"registered": 0, "dynamo": False},
                   "after": True}


@pytest.mark.slow
def test_torch_owns_does_not_import_the_api() -> None:
    """torch imported, the backend loaded by the registry, polyconv's API not
    imported: dispatching a tensor's type imports no ``polyconv.ops``."""
    pytest.importorskip("torch", reason="PyTorch is not installed")
    out = _fresh("""
        import json, sys
        import numpy as np
        import torch
        from polyconv.registry import registry
        be = registry.load("torch")
        owned = [be.owns(torch.ones(1)), be.owns(np.ones(1))]
        print(json.dumps({"owned": owned, "api": "polyconv.ops" in sys.modules}))
    """)
    assert out == {"owned": [True, False], "api": False}


# -- dir(polyconv) ---------------------------------------------------------------------------

_HELPERS = {"Any", "TYPE_CHECKING", "annotations", "importlib", "typing", "_importlib", "_typing", "_LAZY",
            "_SUBMODULES"}


def test_dir_lists_the_public_api_alone() -> None:
    names = dir(polyconv)
    assert not _HELPERS & set(names)
    assert set(names) == {*polyconv.__all__, "backend", "spec", "__version__"}
    assert names == sorted(names)
    for helper in ("Any", "TYPE_CHECKING", "annotations", "importlib"):
        assert not hasattr(polyconv, helper), helper


def test_every_public_name_resolves() -> None:
    for name in [*polyconv.__all__, *dir(polyconv)]:
        assert getattr(polyconv, name) is not None, name
    assert polyconv.spec.ConvSpec is polyconv.ConvSpec and polyconv.backend.Backend is polyconv.Backend


# -- caches are polyconv's caches ------------------------------------------------------------

def test_dtype_names_are_cleared_with_polyconvs_caches() -> None:
    from polyconv.spec import dtypes

    assert dtypes.dtype_name(np.dtype("float32")) == "float32"
    assert len(dtypes._names) >= 1
    caching.clear()
    assert len(dtypes._names) == 0
    # the bound look-up reads the same entries after a clear
    assert dtypes.dtype_name(np.float16) == "float16" and len(dtypes._names) == 1
    assert dtypes._cached_name((type(np.float16), np.float16)) == "float16"


def test_unhashable_and_bad_dtypes_are_not_cached() -> None:
    from polyconv.spec import dtypes

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]
        dtype = np.dtype("int8")

    caching.clear()
    assert dtypes.dtype_name(Unhashable()) == "int8"
    with pytest.raises(TypeError, match="not a dtype"):
        dtypes.dtype_name(object())
    assert len(dtypes._names) == 0


def test_the_jax_lowerings_caches_are_cleared_with_polyconvs_caches() -> None:
    pytest.importorskip("jax", reason="JAX is not installed")
    from polyconv.backends.jax import _lowering

    jax = _lowering.jax_modules()[0]
    _lowering._widenings()
    assert _lowering.jax_modules()[0] is jax
    assert _lowering.jax_modules.cache_info().currsize == _lowering._widenings.cache_info().currsize == 1
    caching.clear()
    assert _lowering.jax_modules.cache_info().currsize == _lowering._widenings.cache_info().currsize == 0
    assert _lowering.jax_modules()[0] is jax


def test_lru_cache_is_registered_and_keeps_functools_semantics() -> None:
    calls: list[int] = []

    @caching.lru_cache(2, name="test.lru")
    def f(x: int) -> int | None:
        calls.append(x)
        return None if x == 0 else x

    assert (f(0), f(0), f(1), f(1)) == (None, None, 1, 1) and calls == [0, 1]  # None results kept
    assert f.registration.name == "test.lru" and len(f.registration) == 2  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        f([1])  # type: ignore[arg-type]
    caching.clear()
    assert f.cache_info().currsize == 0  # type: ignore[attr-defined]


def test_bounded_cache_get_is_its_entries_lookup_across_clears() -> None:
    cache: caching.BoundedCache[str, int] = caching.BoundedCache("test.bounded", maxsize=2)
    get = cache.get
    cache.put("a", 1)
    caching.clear()
    assert get("a") is None
    cache.put("b", 2)
    cache.put("c", 3)
    cache.put("d", 4)  # "b" goes
    assert (get("b"), get("c"), get("d")) == (None, 3, 4)
