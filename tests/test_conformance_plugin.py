"""The conformance suite as a product: its pytest plugin, its CLI, its reports.

Each test runs the suite in a fresh process, as a backend author would, on
the installed toy plugin (tests/plugins/polyconv_toy) and the NumPy backend,
restricted to a few features so the whole file takes seconds.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from polyconv.conformance import report, suite
from polyconv.conformance.bad_calls import BAD_CALLS

from polyconv.registry import registry

#: The bad calls of the suite's errors column, one test each.
BAD = len(BAD_CALLS)


def _run(args: list[str], env: dict[str, str] | None = None, cwd: Any = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("POLYCONV_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=300)


def _pytest(*args: str, env: dict[str, str] | None = None, cwd: Any) -> subprocess.CompletedProcess[str]:
    return _run(["-m", "pytest", "--pyargs", "polyconv.conformance", "-q", "-p", "no:cacheprovider", *args],
                env, cwd)


@pytest.mark.slow
def test_pyargs_runs_the_suite_on_one_backend_and_prints_the_matrix(toy: Any, tmp_path: Path) -> None:
    """Outside the repository (no conftest, no copy of polyconv's tests): the plugin alone."""
    done = _pytest("--polyconv-backend=toy", "-k", "errors or hypothesis", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    n = len([i for i in suite.items(registry.load("toy")) if i.feature in ("errors", "hypothesis")])
    assert f"{n} passed" in done.stdout
    assert "polyconv conformance" in done.stdout
    assert f"toy      {BAD} pass" in done.stdout and "numpy" not in done.stdout


@pytest.mark.slow
def test_backend_from_the_environment_variable(toy: Any, tmp_path: Path) -> None:
    done = _pytest("-k", "errors", env={"POLYCONV_CONFORMANCE_BACKEND": "toy"}, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{BAD} passed" in done.stdout


@pytest.mark.slow
def test_unsupported_cases_are_reported_not_skipped(toy: Any, tmp_path: Path) -> None:
    """The toy declares no lhs dilation or groups and no derived ops: those cases
    pass as unsupported (the promised error was raised) and the matrix counts them."""
    done = _pytest("--polyconv-backend=toy", "-k", "conv_transpose and grid", "-rs", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped" not in done.stdout
    assert "288 unsupported" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_the_plugin_writes_every_item_as_json(toy: Any, tmp_path: Path, workers: int) -> None:
    """``--polyconv-json``: passed and unsupported items too, each with its case's fields, written
    once by the session that has every outcome (xdist's controller, not its workers)."""
    path = tmp_path / "report.json"
    done = _pytest("--polyconv-backend=toy", "-k", "conv_transpose and grid", f"--polyconv-json={path}",
                   "-n", str(workers), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(path.read_text())
    grid = [i for i in suite.items(registry.load("toy")) if i.id.startswith("conv_transpose/grid/")]
    assert sorted(item["item"] for item in data["items"]) == sorted(i.id for i in grid)
    statuses = collections.Counter(item["status"] for item in data["items"])
    assert statuses["unsupported"] == 288 and statuses["pass"] == len(grid) - 288, statuses
    assert data["totals"] == {"pass": statuses["pass"], "fail": 0, "unsupported": 288}
    refused = next(item for item in data["items"] if item["status"] == "unsupported")
    assert refused["detail"].startswith("conv_transpose: the 'toy' backend implements only")
    first = next(item for item in data["items"] if item["item"] == grid[0].id)
    assert first["case"] == report.case_fields(grid[0].case) and first["case"]["kind"] == "TransposeCase"


@pytest.mark.slow
def test_a_test_runs_a_run_of_a_grid_and_k_selects_it_by_a_case_id(toy: Any, tmp_path: Path) -> None:
    """A curated grid's cases go eight to a test (fewer tests, less of pytest's
    per-test cost); ``-k`` with one case's id still finds the test that runs it."""
    grid = [i for i in suite.items(registry.load("toy")) if i.id.startswith("conv_general_dilated/grid/")]
    sizes = [sum(i.unit == unit for i in grid) for unit in dict.fromkeys(i.unit for i in grid)]
    assert sizes == [8] * (len(grid) // 8) + ([len(grid) % 8] if len(grid) % 8 else [])
    target = grid[11]
    assert target.unit == "conv_general_dilated/grid/8-15"
    done = _pytest("--polyconv-backend=toy", "-k", target.id, "-rA", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED test_conformance.py::test_conformance[toy/conv_general_dilated/grid/8-15]" in done.stdout
    assert "1 passed" in done.stdout
    matrix = next(line for line in done.stdout.splitlines() if line.startswith("toy "))
    assert sum(int(n) for n in re.findall(r"(\d+) (?:pass|unsupported)", matrix)) == 8, matrix


@pytest.mark.slow
def test_an_unavailable_backend_named_explicitly_fails(tmp_path: Path) -> None:
    done = _pytest("--polyconv-backend=no_such_backend", cwd=tmp_path)
    assert done.returncode == 1
    assert "backend 'no_such_backend' is not available" in done.stdout


def test_thorough_draws_ten_times_more() -> None:
    normal, thorough = suite.case_counts(), suite.case_counts(thorough=True)
    assert all(thorough[k] == 10 * normal[k] for k in normal)
    batched, long = suite.case_counts(batched=True), suite.case_counts(thorough=True, batched=True)
    assert all(batched[k] < normal[k] for k in normal if k != "hypothesis")
    assert max(batched[k] for k in normal if k != "hypothesis") == 64  # one compiled batch per random set
    assert all(long[k] == 10 * max(normal[k] // 4, 15) for k in normal if k != "hypothesis")


def test_a_sample_keeps_about_one_case_in_k_the_same_cases_every_run() -> None:
    be = registry.load("numpy")
    whole = suite.items(be)
    third, again = suite.items(be, sample=3), suite.items(be, sample=3)
    assert [i.id for i in third] == [i.id for i in again]
    assert {i.id for i in third} <= {i.id for i in whole}

    def groups(items: list[suite.Item]) -> collections.Counter[str]:
        return collections.Counter("/".join(i.id.split("/")[:2]) if i.feature not in ("errors", "hypothesis")
                                   else i.feature for i in items)

    full, kept = groups(whole), groups(third)
    for group, n in full.items():
        if (any(part in group for part in ("nonfinite", "extremes", "zeros", "large", "precision"))
                or group in ("errors", "hypothesis")):
            assert kept[group] == n, group  # the targeted groups stay whole
        else:
            assert 0 < kept[group] <= -(-n // 3) + 1, (group, kept[group], n)
    assert 0.3 < len(third) / len(whole) < 0.4
    # not every third case: a grid's families (whose periods 3 may divide) are all sampled
    grid = [i.case.name for i in third if i.id.startswith("conv_general_dilated/grid/")]
    assert {name.split("-")[0] for name in grid} == {i.case.name.split("-")[0] for i in whole
                                                    if i.id.startswith("conv_general_dilated/grid/")}
    with pytest.raises(ValueError, match="sample must be a positive integer; got 0"):
        suite.items(be, sample=0)


def test_the_sample_option_and_its_bad_values(tmp_path: Path) -> None:
    done = _pytest("--polyconv-backend=numpy", "--polyconv-sample=none", cwd=tmp_path)
    assert done.returncode == 4  # a usage error, before anything is collected
    assert "--polyconv-sample (or POLYCONV_CONFORMANCE_SAMPLE) must be a positive integer; got 'none'" in done.stderr
    done = _pytest("-k", "errors", env={"POLYCONV_CONFORMANCE_SAMPLE": "0"}, cwd=tmp_path)
    assert done.returncode == 4 and "got '0'" in done.stderr


@pytest.mark.slow
def test_cli_matrix_json_and_markdown(toy: Any, tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "c.json", tmp_path / "c.md"
    done = _run(["-m", "polyconv", "conformance", "--backend", "toy,numpy", "--features", "errors,conv_transpose",
                 "--json", str(out_json), "--markdown", str(out_md)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backend  conv_transpose" in done.stdout
    data = json.loads(out_json.read_text())
    from polyconv.registry import registry

    transposes = sum(i.feature == "conv_transpose" for i in suite.items(registry.load("toy")))
    assert data["matrix"]["toy"]["conv_transpose"] == {"unsupported": transposes}
    assert data["matrix"]["numpy"]["errors"] == {"pass": BAD}
    assert data["totals"]["fail"] == 0
    # every item is listed, passed and unsupported too, with its case as plain fields
    listed = {(i["backend"], i["feature"], i["status"]) for i in data["items"]}
    assert listed == {("toy", "conv_transpose", "unsupported"), ("toy", "errors", "pass"),
                      ("numpy", "conv_transpose", "pass"), ("numpy", "errors", "pass")}
    assert len(data["items"]) == 2 * (transposes + BAD)
    first = next(i for i in data["items"] if i["backend"] == "toy" and i["feature"] == "conv_transpose")
    assert first["case"]["kind"] == "TransposeCase" and isinstance(first["case"]["lhs_shape"], list)
    assert "implements only conv_general_dilated" in first["detail"]  # the promised error, for unsupported items
    md = out_md.read_text()
    assert f"| toy | {transposes} unsupported | {BAD} pass |" in md
    assert "python -m polyconv conformance --backend toy,numpy" in md
    assert "| float32 -> float32 | highest |" in md


def test_cli_fails_on_an_unknown_feature() -> None:
    done = _run(["-m", "polyconv", "conformance", "--features", "speed"])
    assert done.returncode == 2 and "unknown feature(s) speed" in done.stderr


def test_tally_renders_failures() -> None:
    t = report.Tally()
    t.add("mutant", "conv_general_dilated", "fail", "conv_general_dilated/grid/x", "1 of 4 elements out of tolerance")
    t.add("mutant", "conv_general_dilated", "pass")
    assert "1 pass, 1 fail" in report.terminal(t)
    md = report.markdown(t)
    assert "## Failures" in md and "`conv_general_dilated/grid/x`" in md
    assert report.as_json(t)["totals"] == {"pass": 1, "fail": 1, "unsupported": 0}


@pytest.mark.parametrize("kind", ["conv", "transpose", "patches", "local", "vjp"])
def test_reproducer_snippets_run_and_print_both_values(kind: str) -> None:
    """The snippet of a (passing) case of every kind runs as it is and prints the
    received and the expected values."""
    from polyconv.conformance import cases, reproduce

    grid = cases.grid()[5]
    case = {"conv": grid, "vjp": grid, "patches": cases.patches_case_of(grid), "local": cases.local_case_of(grid),
            "transpose": cases.transpose_grid()[7]}[kind]
    source = reproduce.snippet(kind, "numpy", case)
    done = _run(["-c", source])
    assert done.returncode == 0, source + "\n" + done.stderr
    assert done.stdout.count("received:") == (2 if kind == "vjp" else 1)
    assert "expected (the reference, in " in done.stdout
    assert "verdict: within tolerance" in done.stdout
