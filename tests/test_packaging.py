"""What users install is what the tree holds: a wheel built from the sources
has every module of polyconv/, backends/, conformance/ and bench/ (under
their installed names), the typing marker, the licence, the entry points
and the metadata, and nothing else of polyconv's."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import polyconv

ROOT = Path(__file__).resolve().parent.parent

#: Each folder of the repository and the package it installs as (the layout docs/architecture.md describes).
FOLDERS = {"polyconv": "polyconv", "backends": "polyconv/backends", "conformance": "polyconv/conformance",
           "bench": "polyconv/bench"}

_SOURCES = ("setup.py", "pyproject.toml", "README.md", "LICENSE", *FOLDERS)


def _tree_files() -> set[str]:
    """Every file a wheel must hold, by its path inside the wheel."""
    files = set()
    for folder, installed in FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".typed"):
                files.add(f"{installed}/{path.relative_to(ROOT / folder).as_posix()}")
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built by pip from a copy of the sources (the build leaves nothing in the tree)."""
    if not (ROOT / "setup.py").exists():
        pytest.skip("not a source tree: polyconv is installed from a wheel here")
    src = tmp_path_factory.mktemp("src")
    for name in _SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, src / name)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("polyconv-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_every_module_of_the_tree_and_nothing_else(wheel: zipfile.ZipFile) -> None:
    held = {n for n in wheel.namelist() if not n.startswith(f"polyconv-{polyconv.__version__}.dist-info/")}
    tree = _tree_files()
    assert "polyconv/backends/fft/transforms.py" in tree and "polyconv/py.typed" in tree
    assert sorted(tree - held) == [], "in the tree, not in the wheel"
    assert sorted(held - tree) == [], "in the wheel, not in the tree"


def test_every_folder_with_modules_is_a_package() -> None:
    """A folder without __init__.py would be a namespace package, which find_packages leaves out."""
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            assert (path.parent / "__init__.py").exists(), f"{path.parent} has modules but no __init__.py"


def test_the_wheel_metadata(wheel: zipfile.ZipFile) -> None:
    info = f"polyconv-{polyconv.__version__}.dist-info"
    names = set(wheel.namelist())
    assert f"{info}/licenses/LICENSE" in names
    assert "Apache License" in wheel.read(f"{info}/licenses/LICENSE").decode()
    meta = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
    assert meta["Name"] == "polyconv" and meta["Version"] == polyconv.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().startswith("# polyconv")
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert set(urls) >= {"Homepage", "Documentation", "Source", "Changelog"}
    extras = set(meta.get_all("Provides-Extra"))
    assert {"all", "torch", "jax", "dask", "bfloat16", "conformance"} <= extras
    requires = meta.get_all("Requires-Dist")
    assert "numpy>=1.24" in requires and "array-api-compat>=1.9" in requires
    entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    for line in ("numpy = polyconv.backends.numpy:backend", "polyconv = polyconv.conformance.plugin"):
        assert line in entry_points


def test_one_version_source() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'version = { attr = "polyconv.__version__" }' in pyproject
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {polyconv.__version__}" in changelog
