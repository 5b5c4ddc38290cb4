"""What importing polyconv and a first NumPy call load, in a fresh process.

``import polyconv`` loads its errors alone; a NumPy call loads the core and
the NumPy backend, and no other backend (their frameworks are not imported,
so none of their arrays can exist), no layer, no conformance code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def _fresh(code: str) -> dict[str, list[str]]:
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, list[str]] = json.loads(run.stdout)
    return result


def test_import_polyconv_loads_only_its_errors() -> None:
    out = _fresh("""
        import json, sys
        import polyconv
        print(json.dumps({"loaded": sorted(m for m in sys.modules if m.startswith("polyconv"))}))
    """)
    assert out["loaded"] == ["polyconv", "polyconv.errors"]


def test_a_numpy_call_loads_the_numpy_backend_alone() -> None:
    out = _fresh("""
        import json, sys
        import numpy as np
        import polyconv
        y = polyconv.conv_general_dilated(np.ones((1, 1, 5)), np.ones((1, 1, 2)), (1,), "VALID")
        assert y.tolist() == [[[2.0, 2.0, 2.0, 2.0]]]
        from polyconv.registry import registry
        print(json.dumps({
            "loaded": sorted(m for m in sys.modules if m.startswith("polyconv")),
            "statuses": sorted(f"{n}={r.status}" for n, r in registry.records().items()),
            "frameworks": sorted(m for m in ("torch", "jax", "cupy", "array_api_strict") if m in sys.modules),
        }))
    """)
    loaded = out["loaded"]
    for other in ("torch", "jax", "cupy", "array_api"):
        assert f"polyconv.backends.{other}" not in loaded, loaded
    assert not [m for m in loaded if m.startswith(("polyconv.layers", "polyconv.conformance", "polyconv.bench"))]
    assert "polyconv.backends.numpy" in loaded
    assert [s for s in out["statuses"] if not s.endswith("=registered")] == ["numpy=ok"]
    assert out["frameworks"] == []


def test_attributes_load_on_first_use() -> None:
    out = _fresh("""
        import json, sys
        import polyconv
        names = [polyconv.conv_general_shape.__name__, polyconv.layers.Conv.__name__, polyconv.Backend.__name__]
        print(json.dumps({"names": names, "dir": [n for n in polyconv.__all__ if n not in dir(polyconv)]}))
    """)
    assert out["names"] == ["conv_general_shape", "Conv", "Backend"]
    assert out["dir"] == []
