"""polyconv.imports.when_imported: callbacks after a module's import, never before."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from polyconv.imports import when_imported


@pytest.fixture
def fresh_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A module name nobody has imported, on sys.path, whose body records that it ran."""
    name = f"polyconv_watch_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text("import sys\nsys.modules[__name__].ran = True\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_callback_runs_once_right_after_the_import(fresh_module: str) -> None:
    seen = []

    def callback() -> None:
        module = sys.modules[fresh_module]
        seen.append((module.ran, module.VALUE))

    when_imported(fresh_module, callback)
    assert seen == []
    module = importlib.import_module(fresh_module)
    assert seen == [(True, 42)] and module.VALUE == 42
    importlib.reload(module)
    assert seen == [(True, 42)]


def test_an_imported_module_calls_back_at_once() -> None:
    seen = []
    when_imported("json", lambda: seen.append(1))
    assert seen == [1]


def test_a_failing_callback_warns_and_the_import_succeeds(fresh_module: str) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    when_imported(fresh_module, broken)
    with pytest.warns(UserWarning, match=f"preparing for {fresh_module} failed.*boom"):
        module = importlib.import_module(fresh_module)
    assert module.VALUE == 42


def test_polyconv_prepares_the_torch_backend_when_torch_is_imported() -> None:
    """In a fresh process, importing torch after polyconv loads the torch backend."""
    pytest.importorskip("torch", reason="PyTorch is not installed")
    import subprocess

    code = (
        "import polyconv, sys\n"
        "from polyconv.registry import registry\n"
        "assert registry.records()['torch'].status == 'registered'\n"
        "import torch\n"
        "print(registry.records()['torch'].status)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
