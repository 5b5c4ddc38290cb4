"""The README quick start and the command line stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from polyconv.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_quick_start_has_two_commands() -> None:
    install, tests = _quick_start_commands()
    assert "python -m polyconv" in install
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, tests = _quick_start_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines


def test_demo_prints_the_worked_convolution(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "matches the reference semantics: yes" in out
    assert "numpy.ndarray float32 (1, 5, 5, 1)" in out
    assert "[ 24.   8.   8.   8. -32.]" in out


def test_demo_on_a_named_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--backend", "numpy"]) == 0
    assert "on backend numpy (named with --backend):" in capsys.readouterr().out


def test_module_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "polyconv", "demo"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert "matches the reference semantics: yes" in proc.stdout


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_the_readme_usage_examples_run() -> None:
    """The README's python blocks, in order, as .ci/artefact runs them against the installed wheel."""
    proc = subprocess.run([sys.executable, str(ROOT / ".ci" / "readme_examples.py"), str(ROOT / "README.md")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{ROOT / 'README.md'}: 2 examples ran"


def test_ci_runs_the_artefact_the_ranges_and_the_docs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    for step in (".ci/artefact", ".ci/ranges oldest", ".ci/ranges newest", ".ci/docs"):
        assert f"\n{step}\n" in ci, step
