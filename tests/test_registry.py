"""The entry-point registry: listing, lazy loading, broken and duplicate
plugins, ``POLYCONV_BLOCK``, ``backend_info()`` and ``python -m polyconv info``.

Plugins other than the installed ``polyconv-toy`` are real distributions
written into a temporary directory (a ``*.dist-info`` with ``METADATA`` and
``entry_points.txt`` next to the module) and found by ``importlib.metadata``
once that directory is on ``sys.path``.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import polyconv
from polyconv import dispatch, ops
from polyconv.registry import GROUP, MODULES_GROUP, PolyconvPluginWarning, blocked_names, registry

pytestmark = pytest.mark.usefixtures("clean_polyconv_env")



def _clean_subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POLYCONV_BLOCK", "POLYCONV_BACKEND")}
    env["PYTHONWARNINGS"] = "default"
    return env


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, *(["-c", code] if code else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_clean_subprocess_env())


def _row(name: str, status: str | None = None) -> dict[str, Any]:
    rows = [r for r in polyconv.backend_info() if r["name"] == name and (status is None or r["status"] == status)]
    assert len(rows) == 1, rows
    return rows[0]


def _conv1d(x: Any, w: Any, **kw: Any) -> Any:
    return polyconv.conv_general_dilated(x, w, (1,), "VALID", **kw)


X = np.arange(6.0).reshape(1, 1, 6)
W = np.array([1.0, -1.0]).reshape(1, 1, 2)
EXPECTED = -np.ones((1, 1, 5))


# -- fake distributions --------------------------------------------------------

FakeDist = Callable[..., None]


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``fake_dist(dist_name, {ep_name: target}, {module: source})`` installs a
    distribution into a directory on ``sys.path`` and rescans the registry."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def add(
        dist: str, entry_points: dict[str, str], files: dict[str, str] | None = None,
        array_modules: dict[str, str] | None = None,
    ) -> None:
        info = site / f"{dist.replace('-', '_')}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
        eps = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        mods = "".join(f"{name} = {module}\n" for name, module in (array_modules or {}).items())
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n{eps}" + (f"[{MODULES_GROUP}]\n{mods}" if mods else ""))
        for module, source in (files or {}).items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            modules.append(module)
        registry.refresh()

    yield add
    for module in modules:
        sys.modules.pop(module, None)
    registry.refresh()  # rescanned lazily, after monkeypatch has restored sys.path


BROKEN_SOURCE = """
    raise ImportError("the broken framework is not installed here")
"""

NEVER_IMPORT_SOURCE = """
    raise RuntimeError("a duplicate registration must never be imported")
"""

SLEEPY_SOURCE = """
    from polyconv import Backend, Manifest


    class SleepyArray:
        shape = (1, 1, 1)
        dtype = "float32"


    class Sleepy(Backend):
        name = "sleepy"
        manifest = Manifest(dtypes=frozenset({"float32"}), devices=("npu",))

        def owns(self, x):
            return isinstance(x, SleepyArray)

        def version(self):
            return "9.9"

        def unavailable_reason(self):
            return "no sleepy device on this machine"
"""


# -- listing and lazy loading ----------------------------------------------------


def test_numpy_is_registered_by_polyconv_itself() -> None:
    assert "numpy" in polyconv.list_backends()
    rec = registry.records()["numpy"]
    assert rec.distribution == "polyconv"
    assert rec.target == "polyconv.backends.numpy:backend"


def test_list_backends_is_sorted_and_a_fresh_list() -> None:
    names = polyconv.list_backends()
    assert names == sorted(names)
    names.append("spam")
    assert "spam" not in polyconv.list_backends()


def test_toy_listed_without_being_imported_then_loaded_on_first_use(toy: Any) -> None:
    code = textwrap.dedent(
        """
        import json, sys
        import polyconv
        from polyconv.registry import registry
        out = {"names": polyconv.list_backends()}
        out["imported_after_listing"] = "polyconv_toy" in sys.modules
        rec = registry.records()["toy"]
        out["status_after_listing"] = rec.status
        y = polyconv.conv_general_dilated([[[0.0, 1.0, 2.0, 3.0]]], [[[1.0, -1.0]]], (1,), "VALID",
                                          backend="toy")
        out["imported_after_use"] = "polyconv_toy" in sys.modules
        out["status_after_use"] = rec.status
        out["result"] = [type(y).__name__, y.device, y.numpy().tolist()]
        print(json.dumps(out))
        """
    )
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "toy" in out["names"] and "numpy" in out["names"]
    assert out["imported_after_listing"] is False
    assert out["status_after_listing"] == "registered"
    assert out["imported_after_use"] is True
    assert out["status_after_use"] == "ok"
    assert out["result"] == ["ToyArray", "toy:0", [[[-1.0, -1.0, -1.0]]]]


def test_refresh_forgets_loaded_backends_and_loads_again_lazily(toy: Any) -> None:
    polyconv.conv_general_dilated(toy.ToyArray(np.ones((1, 1, 3))), toy.ToyArray(np.ones((1, 1, 2))), (1,), "VALID")
    assert len(dispatch.owners) and len(ops.calls)
    registry.refresh()
    assert len(dispatch.owners) == 0 and len(ops.calls) == 0
    rec = registry.records()["toy"]
    assert rec.status == "registered" and rec.backend is None
    assert registry.load("toy") is toy.backend
    assert rec.status == "ok" and rec.backend is toy.backend


# -- backend_info() -------------------------------------------------------------


def test_backend_info_numpy_row() -> None:
    row = _row("numpy")
    assert set(row) == {"name", "status", "reason", "version", "distribution", "target", "capabilities", "details"}
    assert row["details"] is None
    assert row["status"] == "ok"
    assert row["reason"] == ""
    assert row["version"] == np.__version__
    assert row["distribution"] == "polyconv"
    assert row["target"] == "polyconv.backends.numpy:backend"
    caps = row["capabilities"]
    assert caps["devices"] == ["cpu"]
    assert {"float32", "float64", "int8", "complex128"} <= set(caps["dtypes"])
    assert caps["ops"] == ["conv_general_dilated", "conv_transpose"]
    assert caps["fallback"] is False
    json.dumps(row)  # plain data


def test_a_backends_version_is_that_of_its_distribution_by_default() -> None:
    import importlib.metadata

    from polyconv.backend import Backend

    class Named(Backend):
        distribution = "numpy"

    class Missing(Backend):
        distribution = "no-such-distribution-for-polyconv"

    assert Named().version() == importlib.metadata.version("numpy")
    assert Missing().version() is None and Backend().version() is None


def test_backend_info_toy_row(toy: Any) -> None:
    row = _row("toy")
    assert row["status"] == "ok"
    assert row["reason"] == ""
    assert row["version"] == "0.1.0"
    assert row["distribution"] == "polyconv-toy"
    assert row["target"] == "polyconv_toy:backend"
    assert row["capabilities"] == toy.ToyBackend.manifest.as_dict()
    assert row["capabilities"]["dtypes"] == ["float32", "float64"]
    assert row["capabilities"]["devices"] == ["toy"]
    assert row["capabilities"]["features"] == []


def test_backend_info_lists_each_name_once_without_plugins_of_its_own() -> None:
    names = [r["name"] for r in polyconv.backend_info() if r["status"] != "duplicate"]
    assert names == sorted(set(names))
    assert set(names) == set(registry.records())


# -- broken, unavailable and duplicate plugins ----------------------------------


def test_broken_plugin_is_reported_and_does_not_break_the_others(fake_dist: FakeDist) -> None:
    fake_dist("polyconv-broken", {"broken": "polyconv_broken_plugin:backend"},
              {"polyconv_broken_plugin": BROKEN_SOURCE})
    # Listing imports nothing, so it cannot fail (and does not warn).
    assert "broken" in polyconv.list_backends()
    assert registry.records()["broken"].status == "registered"

    with pytest.warns(PolyconvPluginWarning, match=r"backend 'broken' .*failed to load and is skipped") as rec:
        info = polyconv.backend_info()
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "polyconv_broken_plugin:backend" in msg and "'polyconv-broken'" in msg
    assert "ImportError: the broken framework is not installed here" in msg

    row = next(r for r in info if r["name"] == "broken")
    assert row["status"] == "broken"
    assert row["reason"] == "ImportError: the broken framework is not installed here"
    assert row["distribution"] == "polyconv-broken"
    assert row["version"] is None and row["capabilities"] is None
    assert next(r for r in info if r["name"] == "numpy")["status"] == "ok"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once, not at every call
        polyconv.backend_info()
        np.testing.assert_array_equal(_conv1d(X, W), EXPECTED)
        np.testing.assert_array_equal(_conv1d(X.tolist(), W.tolist()), EXPECTED)

    with pytest.raises(polyconv.BackendUnavailableError, match=r"backend 'broken' failed to load: ImportError") as ei:
        _conv1d(X.tolist(), W.tolist(), backend="broken")
    assert isinstance(ei.value, ImportError)


def test_broken_plugin_warns_on_first_dispatch_too(fake_dist: FakeDist) -> None:
    fake_dist("polyconv-broken", {"broken": "polyconv_broken_plugin:backend"},
              {"polyconv_broken_plugin": BROKEN_SOURCE})
    # NumPy arrays are the numpy backend's: a plugin declaring no array module is not asked...
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(_conv1d(X, W), EXPECTED)
    assert registry.records()["broken"].status == "registered"
    # ...until an array comes that no declared backend owns: then it loads, and is reported.
    with pytest.warns(PolyconvPluginWarning, match="'broken'"), pytest.raises(polyconv.ConvTypeError):
        _conv1d(object(), W)
    np.testing.assert_array_equal(_conv1d(X, W), EXPECTED)


def test_a_backend_loads_only_once_its_array_module_is_imported(fake_dist: FakeDist) -> None:
    """A plugin declaring its array module is never loaded while that module is not imported."""
    fake_dist(
        "polyconv-lazy", {"lazy": "polyconv_lazy_backend:backend"},
        {"polyconv_lazy_backend": NEVER_IMPORT_SOURCE, "polyconv_lazy_arrays": "VALUE = 1\n"},
        array_modules={"lazy": "polyconv_lazy_arrays"},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(_conv1d(X, W), EXPECTED)
        with pytest.raises(polyconv.ConvTypeError):
            _conv1d(object(), W)
    assert registry.records()["lazy"].module == "polyconv_lazy_arrays"
    assert registry.records()["lazy"].status == "registered"
    assert "polyconv_lazy_backend" not in sys.modules
    importlib.import_module("polyconv_lazy_arrays")
    registry.refresh()  # forget the cached owners: the next dispatch asks again
    with pytest.warns(PolyconvPluginWarning, match="'lazy'.*must never be imported"):
        np.testing.assert_array_equal(_conv1d(X, W), EXPECTED)


@pytest.mark.parametrize(
    ("ep_name", "target", "source", "reason"),
    [
        ("wrongname", "polyconv.backends.numpy:backend", None,
         "TypeError: polyconv.backends.numpy:backend calls itself 'numpy', but is registered as 'wrongname'"),
        ("notabackend", "polyconv_not_a_backend:backend", "backend = object()\n",
         "TypeError: polyconv_not_a_backend:backend is not a polyconv backend: it lacks "
         "name, manifest, owns, conv_general_dilated"),
        ("missingattr", "polyconv_not_a_backend:nothing_here", "backend = object()\n",
         "AttributeError"),
    ],
    ids=["name-mismatch", "not-a-backend", "missing-attribute"],
)
def test_invalid_plugin_objects_are_broken(
    fake_dist: FakeDist, ep_name: str, target: str, source: str | None, reason: str
) -> None:
    files = {"polyconv_not_a_backend": source} if source else {}
    fake_dist("polyconv-invalid", {ep_name: target}, files)
    with pytest.warns(PolyconvPluginWarning, match=f"backend '{ep_name}'"):
        row = _row(ep_name)
    assert row["status"] == "broken"
    assert row["reason"].startswith(reason)
    assert _row("numpy")["status"] == "ok"


def test_unavailable_plugin_is_loaded_but_not_used(fake_dist: FakeDist) -> None:
    # The entry point names the class: the registry instantiates it.
    fake_dist("polyconv-sleepy", {"sleepy": "polyconv_sleepy:Sleepy"}, {"polyconv_sleepy": SLEEPY_SOURCE})
    row = _row("sleepy")
    assert row["status"] == "unavailable"
    assert row["reason"] == "no sleepy device on this machine"
    assert row["version"] == "9.9"
    assert row["capabilities"]["devices"] == ["npu"]
    with pytest.raises(polyconv.BackendUnavailableError, match="backend 'sleepy' cannot run here: no sleepy device"):
        _conv1d(X.tolist(), W.tolist(), backend="sleepy")
    assert registry.try_load("sleepy") is None
    np.testing.assert_array_equal(_conv1d(X, W), EXPECTED)


def test_duplicate_numpy_keeps_polyconvs_own(fake_dist: FakeDist) -> None:
    # 'aaa-...' sorts before 'polyconv' and is first on sys.path: polyconv's own still wins.
    fake_dist("aaa-numpy-clone", {"numpy": "polyconv_numpy_clone:backend"},
              {"polyconv_numpy_clone": NEVER_IMPORT_SOURCE})
    with pytest.warns(PolyconvPluginWarning, match=r"backend 'numpy' is registered twice") as rec:
        names = polyconv.list_backends()
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "'polyconv'" in msg and "'aaa-numpy-clone'" in msg and msg.endswith("using 'polyconv'")
    assert names.count("numpy") == 1

    kept = registry.records()["numpy"]
    assert kept.distribution == "polyconv"
    (dup,) = registry.duplicates()
    assert (dup.name, dup.distribution, dup.status) == ("numpy", "aaa-numpy-clone", "duplicate")

    rows = [r for r in polyconv.backend_info() if r["name"] == "numpy"]
    assert [(r["status"], r["distribution"]) for r in rows] == [("ok", "polyconv"), ("duplicate", "aaa-numpy-clone")]
    assert rows[1]["reason"] == (
        "backend name 'numpy' is also registered by 'polyconv' (polyconv.backends.numpy:backend); "
        "this registration is ignored"
    )
    assert rows[1]["capabilities"] is None and rows[1]["version"] is None

    np.testing.assert_array_equal(_conv1d(X, W), EXPECTED)
    np.testing.assert_array_equal(_conv1d(X, W, backend="numpy"), EXPECTED)
    assert "polyconv_numpy_clone" not in sys.modules


def test_duplicate_toy_keeps_the_first_distribution_by_name(fake_dist: FakeDist, toy: Any) -> None:
    fake_dist("zzz-toy-clone", {"toy": "polyconv_toy_clone:backend"}, {"polyconv_toy_clone": NEVER_IMPORT_SOURCE})
    with pytest.warns(PolyconvPluginWarning, match=r"backend 'toy' is registered twice.*using 'polyconv-toy'"):
        registry.records()
    dup_row = _row("toy", "duplicate")
    assert dup_row["distribution"] == "zzz-toy-clone"
    assert "also registered by 'polyconv-toy'" in dup_row["reason"]
    assert _row("toy", "ok")["distribution"] == "polyconv-toy"
    y = _conv1d(toy.ToyArray(X), toy.ToyArray(W))
    assert isinstance(y, toy.ToyArray)
    np.testing.assert_array_equal(y.numpy(), EXPECTED)
    assert "polyconv_toy_clone" not in sys.modules


def test_duplicate_row_is_not_blocked_by_its_name(fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.warns(PolyconvPluginWarning):
        fake_dist("aaa-numpy-clone", {"numpy": "polyconv_numpy_clone:backend"},
                  {"polyconv_numpy_clone": NEVER_IMPORT_SOURCE})
        registry.records()
    monkeypatch.setenv("POLYCONV_BLOCK", "numpy")
    assert _row("numpy", "blocked")["distribution"] == "polyconv"
    assert _row("numpy", "duplicate")["distribution"] == "aaa-numpy-clone"


# -- POLYCONV_BLOCK --------------------------------------------------------------


def test_block_hides_toy_at_use_time(toy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "toy" in polyconv.list_backends()
    registry.load("toy")  # loaded before the block: blocking still applies
    monkeypatch.setenv("POLYCONV_BLOCK", "toy")
    assert "toy" not in polyconv.list_backends()
    assert "numpy" in polyconv.list_backends()

    row = _row("toy")
    assert row["status"] == "blocked"
    assert row["reason"] == "listed in POLYCONV_BLOCK"
    assert row["distribution"] == "polyconv-toy"
    assert row["capabilities"] is None and row["version"] is None

    with pytest.raises(polyconv.BackendNotFoundError) as ei:
        _conv1d(X.tolist(), W.tolist(), backend="toy")
    assert isinstance(ei.value, LookupError)
    assert str(ei.value) == "backend 'toy' is blocked by POLYCONV_BLOCK='toy'"
    with pytest.raises(polyconv.BackendNotFoundError, match="POLYCONV_BLOCK"):
        with polyconv.use_backend("toy"):
            pass  # pragma: no cover
    assert registry.try_load("toy") is None

    monkeypatch.delenv("POLYCONV_BLOCK")
    assert "toy" in polyconv.list_backends()
    assert _row("toy")["status"] == "ok"
    assert isinstance(_conv1d(X.tolist(), W.tolist(), backend="toy"), toy.ToyArray)


def test_block_list_is_comma_separated_with_spaces(toy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYCONV_BLOCK", " toy , nosuchbackend,, ")
    assert "toy" not in polyconv.list_backends()
    assert "numpy" in polyconv.list_backends()
    assert blocked_names() == frozenset({"toy", "nosuchbackend"})


def test_blocked_numpy_is_not_used_for_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYCONV_BLOCK", "numpy")
    assert "numpy" not in polyconv.list_backends()
    with pytest.raises(polyconv.BackendNotFoundError, match=r"'numpy' is blocked by POLYCONV_BLOCK='numpy'"):
        _conv1d(X.tolist(), W.tolist())


# -- unknown names -------------------------------------------------------------


def test_unknown_backend_name() -> None:
    with pytest.raises(polyconv.BackendNotFoundError) as ei:
        _conv1d(X, W, backend="nosuchbackend")
    assert isinstance(ei.value, LookupError)
    msg = str(ei.value)
    assert msg.startswith("backend: no backend named 'nosuchbackend' is registered (registered: ")
    assert "numpy" in msg
    with pytest.raises(polyconv.BackendNotFoundError, match="'nosuchbackend'"):
        registry.load("nosuchbackend")
    assert registry.try_load("nosuchbackend") is None


# -- python -m polyconv info ---------------------------------------------------


def test_cli_info_table() -> None:
    proc = _run_python("", "-m", "polyconv", "info", "--wide")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"polyconv {polyconv.__version__}: ")
    assert lines[1].split() == ["backend", "status", "version", "devices", "dtypes", "from", "note"]
    numpy_rows = [ln.split() for ln in lines if ln.startswith("numpy ")]
    assert len(numpy_rows) == 1
    cells = numpy_rows[0]
    assert cells[:4] == ["numpy", "ok", np.__version__, "cpu"]
    assert "float32" in cells and cells[-1] == "polyconv"
    if any(r["name"] == "toy" for r in polyconv.backend_info()):
        toy_rows = [ln.split() for ln in lines if ln.startswith("toy ")]
        assert toy_rows == [["toy", "ok", "0.1.0", "toy", "float32", "float64", "polyconv-toy"]]


def test_cli_info_json() -> None:
    proc = _run_python("", "-m", "polyconv", "info", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert isinstance(rows, list)
    numpy_row = next(r for r in rows if r["name"] == "numpy")
    assert numpy_row == _row("numpy")


def test_cli_info_honours_block(toy: Any) -> None:
    env = _clean_subprocess_env()
    env["POLYCONV_BLOCK"] = "toy"
    proc = subprocess.run([sys.executable, "-m", "polyconv", "info", "--json"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    toy_row = next(r for r in json.loads(proc.stdout) if r["name"] == "toy")
    assert toy_row["status"] == "blocked"


def test_importing_polyconv_imports_no_framework() -> None:
    code = (
        "import sys, polyconv; polyconv.backend_info(); polyconv.list_backends(); "
        "print([m for m in ('torch', 'jax', 'cupy', 'tensorflow') if m in sys.modules])"
    )
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# -- plugins that load but cannot run, or misbehave --------------------------------


def test_arrays_of_an_unavailable_backend_get_its_reason(fake_dist: FakeDist) -> None:
    fake_dist("polyconv-sleepy", {"sleepy": "polyconv_sleepy:Sleepy"}, {"polyconv_sleepy": SLEEPY_SOURCE})
    import polyconv_sleepy

    arr = polyconv_sleepy.SleepyArray()
    with pytest.raises(polyconv.BackendUnavailableError, match="backend 'sleepy' cannot run here: no sleepy device"):
        polyconv.conv_general_dilated(arr, arr, (1,), "VALID")


def test_use_backend_on_an_unavailable_backend_fails_at_entry(fake_dist: FakeDist) -> None:
    fake_dist("polyconv-sleepy", {"sleepy": "polyconv_sleepy:Sleepy"}, {"polyconv_sleepy": SLEEPY_SOURCE})
    with pytest.raises(polyconv.BackendUnavailableError, match="no sleepy device on this machine"):
        with polyconv.use_backend("sleepy"):
            raise AssertionError("the block must not run")


def test_polyconv_backend_naming_an_unavailable_backend_is_passed_over(
    fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dist("polyconv-sleepy", {"sleepy": "polyconv_sleepy:Sleepy"}, {"polyconv_sleepy": SLEEPY_SOURCE})
    monkeypatch.setenv("POLYCONV_BACKEND", "sleepy")
    np.testing.assert_array_equal(_conv1d(X, W), EXPECTED)


FAULTY_OWNS_SOURCE = """
    from polyconv import Backend, Manifest


    class Faulty(Backend):
        name = "faulty"
        manifest = Manifest(dtypes=frozenset({"float64"}))

        def owns(self, x):
            raise RuntimeError("owns() is broken")
"""


def test_a_plugin_whose_owns_raises_does_not_break_the_others(fake_dist: FakeDist) -> None:
    fake_dist("polyconv-faulty", {"faulty": "polyconv_faulty:Faulty"}, {"polyconv_faulty": FAULTY_OWNS_SOURCE},
              array_modules={"faulty": "numpy"})  # so that it is asked about NumPy arrays
    message = r"backend 'faulty'.owns\(\) raised RuntimeError: owns\(\) is broken"
    with pytest.warns(PolyconvPluginWarning, match=message):
        y = _conv1d(X, W)
    np.testing.assert_array_equal(y, EXPECTED)


# -- registering from inside the process -----------------------------------------

class _ByName(polyconv.Backend):
    """A backend on NumPy arrays, usable only by name (it owns no array type)."""

    name = "in-process"
    manifest = polyconv.Manifest(dtypes=frozenset({"float64"}))

    def owns(self, x: Any) -> bool:
        return False

    def accepts(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: Any) -> Any:
        from polyconv.conformance import reference

        return reference.conv_from_spec(lhs, rhs, spec)


def test_register_and_unregister_a_backend_object() -> None:
    be = _ByName()
    registry.register(be)
    try:
        assert "in-process" in registry.names()
        assert registry.load("in-process") is be
        np.testing.assert_array_equal(_conv1d(X, W, backend="in-process"), EXPECTED)
        assert _row("in-process")["status"] == "ok"
        assert _row("in-process")["target"].endswith(":_ByName")
        registry.refresh()  # a rescan of the entry points keeps it
        assert registry.load("in-process") is be
    finally:
        registry.unregister("in-process")
    assert "in-process" not in registry.names()
    with pytest.raises(polyconv.BackendNotFoundError, match="no backend named 'in-process'"):
        _conv1d(X, W, backend="in-process")


def test_register_refuses_taken_names_and_non_backends() -> None:
    taken = _ByName()
    taken.name = "numpy"
    with pytest.raises(ValueError, match="backend name 'numpy' is already registered"):
        registry.register(taken)
    with pytest.raises(TypeError, match="is not a polyconv backend: it lacks"):
        registry.register(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no backend named 'numpy' was registered with register"):
        registry.unregister("numpy")  # entry points are not removed this way
    assert registry.load("numpy").name == "numpy"


def test_a_registered_backend_that_cannot_run_here_is_unavailable() -> None:
    be = _ByName()
    be.unavailable_reason = lambda: "no such device"  # type: ignore[method-assign]
    registry.register(be)
    try:
        with pytest.raises(polyconv.BackendUnavailableError, match="cannot run here: no such device"):
            registry.load("in-process")
    finally:
        registry.unregister("in-process")
