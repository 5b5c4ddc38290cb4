"""torch.compile(fullgraph=True) sees polyconv's functions as graph nodes, in
every import order, with no import hook of polyconv's in the process.

polyconv's functions are registered with ``torch.compiler.allow_in_graph``
by whichever of torch and polyconv's API is imported second, without loading
any backend (polyconv/backends/autoload.py): :mod:`polyconv.ops` at the end
of its import when torch is there, or, with the API imported first, PyTorch's
``torch.backends`` entry point at the end of ``import torch``.  Each order
runs in a fresh process, compiling before any eager call.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch", reason="PyTorch is not installed")
pytestmark = pytest.mark.slow  # a fresh process per import order

CHECK = """
    x = torch.arange(24.0).reshape(1, 2, 12)
    w = torch.ones(3, 2, 2)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    got = compiled(x, w)  # the first call of anything polyconv: it traces
    want = torch.nn.functional.conv1d(x, w)
    assert torch.equal(got, want), (got, want)
    hooks = [type(f).__module__ for f in sys.meta_path if type(f).__module__.startswith("polyconv")]
    assert not hooks, hooks
    print("ok")
"""

ORDERS = {
    "api-then-torch": """
        import sys
        from polyconv import conv_general_dilated
        import torch
        def f(x, w):
            return conv_general_dilated(x, w, (1,), "VALID")
    """,
    "torch-then-api": """
        import sys
        import torch
        import polyconv
        def f(x, w):
            return polyconv.conv_general_dilated(x, w, (1,), "VALID")
    """,
    "lazy-polyconv-then-torch": """
        import sys
        import polyconv
        import torch
        def f(x, w):
            return polyconv.conv_general_dilated(x, w, (1,), "VALID")
    """,
}


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_compiling_first_gives_one_graph(order: str) -> None:
    code = textwrap.dedent(ORDERS[order]) + textwrap.dedent(CHECK)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]


def test_importing_torch_alone_loads_nothing_of_polyconv_but_its_hook() -> None:
    """For a process that never uses polyconv, torch's entry point costs polyconv's
    errors module and the hook's own, nothing more."""
    code = "import sys, torch; print(sorted(m for m in sys.modules if m.startswith('polyconv')))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "['polyconv', 'polyconv.backends', 'polyconv.backends.autoload', 'polyconv.errors']"
