"""The pytest plugin of the conformance suite (entry point ``pytest11: polyconv``).

Installed with polyconv, so any project can run the suite on a backend
without a copy of polyconv's tests::

    pytest --pyargs polyconv.conformance --polyconv-backend=NAME

Options (each also an environment variable, for CI):

``--polyconv-backend NAME[,NAME...]`` / ``POLYCONV_CONFORMANCE_BACKEND``
    The backends to check; all registered backends when none is named (an
    unavailable one is then skipped with its reason; one named explicitly
    that is unavailable fails).
``--polyconv-thorough`` / ``POLYCONV_CONFORMANCE_THOROUGH=1``
    Ten times more random cases and randomised Hypothesis runs.
``--polyconv-sample K`` / ``POLYCONV_CONFORMANCE_SAMPLE``
    Check about one case in ``K`` of the grids and random sets, the same
    cases in every run (small targeted groups stay whole; ignored with
    ``--polyconv-thorough``).  Default 1: the whole suite.  polyconv's own
    test run (``python -m pytest`` in its repository) uses 5; its CI runs
    the whole suite over the installed wheel.
``--polyconv-device DEVICE`` / ``POLYCONV_CONFORMANCE_DEVICE``
    Where operands are made (``cuda:1``...); the framework's default otherwise.
``--polyconv-json PATH`` / ``POLYCONV_CONFORMANCE_JSON``
    At the end of the session, write the report as JSON, as
    ``python -m polyconv conformance --json`` does: the matrix, the failures
    and every item with its outcome and its case's fields.

Each unit of :mod:`.suite`'s items is one test: a seeded random set
(``backend/feature/random``), a compiled batch, up to eight consecutive cases
of a curated grid (``backend/feature/group/8-15``), one bad call or one
Hypothesis property.  ``-k`` also matches the ids of a test's cases
(``-k 2d-NHWC-HWIO-groups`` runs the tests holding that case).
A failure prints its detail and a reproducer; a case the manifest excludes
passes as *unsupported* after raising the promised error, and the run ends
with the backend-by-feature matrix, unsupported counts included.

This module is imported by every pytest session where polyconv is
installed, so it imports nothing heavy until the suite is collected.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

__all__ = ["selected_backends", "thorough", "sample", "json_path", "disable_xla_algsimp"]

ENV_BACKEND = "POLYCONV_CONFORMANCE_BACKEND"
ENV_THOROUGH = "POLYCONV_CONFORMANCE_THOROUGH"
ENV_DEVICE = "POLYCONV_CONFORMANCE_DEVICE"
ENV_SAMPLE = "POLYCONV_CONFORMANCE_SAMPLE"
ENV_JSON = "POLYCONV_CONFORMANCE_JSON"


def disable_xla_algsimp() -> None:
    """Append ``--xla_disable_hlo_passes=algsimp`` to ``XLA_FLAGS``: XLA:CPU in
    JAX 0.10 aborts the process in its algebraic simplifier on some
    lhs-dilated convolutions with a kernel larger than the input in another
    dimension, which random cases find.  Effective before JAX's first
    computation."""
    flag = "--xla_disable_hlo_passes=algsimp"
    flags = os.environ.get("XLA_FLAGS", "")
    if flag not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("polyconv", "polyconv conformance suite")
    group.addoption("--polyconv-backend", default=None, metavar="NAME[,NAME...]",
                    help=f"backends to check (default: every registered one; env {ENV_BACKEND})")
    group.addoption("--polyconv-thorough", action="store_true", default=False,
                    help=f"10x more random cases, randomised Hypothesis (long runs, not CI; env {ENV_THOROUGH}=1)")
    group.addoption("--polyconv-sample", default=None, metavar="K",
                    help=f"check about one case in K of the grids and random sets (default 1: all; env {ENV_SAMPLE})")
    group.addoption("--polyconv-device", default=None, metavar="DEVICE",
                    help=f"device the operands are made on (env {ENV_DEVICE})")
    group.addoption("--polyconv-json", default=None, metavar="PATH",
                    help=f"write the report, every item with its case, as JSON (env {ENV_JSON})")


def json_path(config: pytest.Config) -> str | None:
    """Where ``--polyconv-json`` (or its environment variable) asks for the JSON report, or None."""
    return config.getoption("--polyconv-json") or os.environ.get(ENV_JSON) or None


def selected_backends(config: pytest.Config) -> tuple[list[str], bool]:
    """``(names, explicit)``: the backends asked for, or every registered one."""
    value = config.getoption("--polyconv-backend") or os.environ.get(ENV_BACKEND, "")
    names = [n.strip() for n in value.split(",") if n.strip()]
    if names:
        return names, True
    from polyconv.registry import registry

    return sorted(registry.records()), False


def thorough(config: pytest.Config) -> bool:
    """Whether ``--polyconv-thorough`` (or its environment variable) is on."""
    return bool(config.getoption("--polyconv-thorough")) or os.environ.get(ENV_THOROUGH, "") not in ("", "0")


def sample(config: pytest.Config) -> int:
    """``K`` of ``--polyconv-sample K`` (or its environment variable): 1 when
    unset or when ``--polyconv-thorough`` is on."""
    if thorough(config):
        return 1
    value = config.getoption("--polyconv-sample") or os.environ.get(ENV_SAMPLE, "") or "1"
    try:
        k = int(value)
    except ValueError:
        k = 0
    if k < 1:
        raise pytest.UsageError(f"--polyconv-sample (or {ENV_SAMPLE}) must be a positive integer; got {value!r}")
    return k


class _State:
    """The suites of the session (one per backend) and the tally of outcomes."""

    def __init__(self, config: pytest.Config) -> None:
        from .report import Tally

        self.config = config
        self.suites: dict[str, Any] = {}
        self.unavailable: dict[str, str] = {}
        self.tally = Tally()

    def suite(self, name: str) -> Any:
        if name not in self.suites and name not in self.unavailable:
            from .suite import Suite, load

            be, why = load(name)
            if be is None:
                self.unavailable[name] = why
            else:
                device = self.config.getoption("--polyconv-device") or os.environ.get(ENV_DEVICE) or None
                self.suites[name] = Suite(be, thorough(self.config), device, sample=sample(self.config))
        return self.suites.get(name)


_STATE = pytest.StashKey[_State]()


def pytest_configure(config: pytest.Config) -> None:
    disable_xla_algsimp()
    sample(config)  # a bad value is a usage error before anything runs
    config.stash[_STATE] = _SESSION_STATE["state"] = _State(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "polyconv_item" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash[_STATE]
    names, explicit = selected_backends(metafunc.config)
    params = []
    for name in names:
        suite = state.suite(name)
        if suite is None:
            params.append(pytest.param((name, None, explicit), id=f"{name}/unavailable"))
            continue
        units: dict[str, list[Any]] = {}
        for item in suite.items:
            units.setdefault(item.unit or item.id, []).append(item)
        for key, unit in units.items():
            # with pytest-xdist (--dist loadgroup), the items of one compiled batch run on one
            # worker, which compiles the batch once; everything else spreads freely
            batch = unit[0].batch
            marks = [pytest.mark.xdist_group(f"{name}/{batch}")] if batch is not None else []
            params.append(pytest.param((name, unit, explicit), id=f"{name}/{key}", marks=marks))
    metafunc.parametrize("polyconv_item", params)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Let ``-k`` select a test by the id of any case it runs."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "polyconv_item" in callspec.params:
        _, items, _ = callspec.params["polyconv_item"]
        if items is not None and len(items) > 1:
            item.extra_keyword_matches.update(i.id for i in items)


def run_item(config: pytest.Config, polyconv_item: tuple[str, Any, bool], node: pytest.Item) -> None:
    """The body of the suite's one test: run the items of one unit (a run of a grid, a random
    set), record the outcomes on the test (``node``'s user properties, which
    pytest-xdist carries from its workers to the session that prints the
    matrix), and fail with the first failure's report and the list of the
    others."""
    state = config.stash[_STATE]
    name, items, explicit = polyconv_item
    rows: list[tuple[str, str, str, str, str, dict[str, Any] | None]] = []
    listed = json_path(config) is not None
    if items is None:
        reason = state.unavailable.get(name, "")
        _record(node, rows, {name: f"unavailable: {reason}"}, 0.0)
        message = f"backend {name!r} is not available: {reason}"
        if explicit:
            pytest.fail(message, pytrace=False)
        pytest.skip(reason=message)
    suite = state.suites[name]
    failed = []
    before = suite.seconds
    if listed:
        from .report import case_fields
    for item in items:
        outcome = suite.outcome(item)
        rows.append((name, item.feature, outcome.status, item.id, outcome.detail if outcome.status != "pass" else "",
                     case_fields(item.case) if listed else None))
        if outcome.status == "fail":
            failed.append((item, outcome))
    _record(node, rows, {}, suite.seconds - before)
    if failed:
        item, outcome = failed[0]
        others = "".join(f"\n  {i.id}: {o.detail.splitlines()[0]}" for i, o in failed[1:])
        more = f"\n\n{len(failed) - 1} more of this set failed:{others}" if others else ""
        pytest.fail(f"{name}: {item.id}: {outcome.report()}{more}", pytrace=False)


_PROPERTY = "polyconv_conformance"


def _record(node: pytest.Item, rows: list[Any], notes: dict[str, str], seconds: float) -> None:
    """Put the outcomes on the test's report; :func:`pytest_runtest_logreport`
    adds them up, in this process or in xdist's controller."""
    node.user_properties.append((_PROPERTY, {"rows": rows, "notes": notes, "seconds": seconds}))


def _tally(state: _State, entry: dict[str, Any]) -> None:
    for backend, feature, status, item, detail, fields in entry["rows"]:
        state.tally.add(backend, feature, status, item, detail, fields=fields)
    for backend, note in entry["notes"].items():
        state.tally.notes[backend] = note
    if entry["rows"]:  # one test's rows are all of one backend
        backend = entry["rows"][0][0]
        state.tally.seconds[backend] = state.tally.seconds.get(backend, 0.0) + entry["seconds"]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":  # user properties are complete once the test has been torn down
        return
    state = _SESSION_STATE.get("state")
    if state is None:
        return
    for key, entry in report.user_properties:
        if key == _PROPERTY and isinstance(entry, dict):  # only run_item records under this key
            _tally(state, entry)


_SESSION_STATE: dict[str, _State] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the JSON report where ``--polyconv-json`` asks (in xdist's controller, which has
    every worker's outcomes by now, not in the workers)."""
    config = session.config
    state = config.stash.get(_STATE, None)
    path = json_path(config)
    if state is None or path is None or hasattr(config, "workerinput"):
        return
    if not (state.tally.counts or state.tally.notes):
        return  # the suite was not collected in this session
    import json

    from .report import as_json

    with open(path, "w") as fh:
        json.dump(as_json(state.tally), fh, indent=2)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not (state.tally.counts or state.tally.notes):
        return
    from polyconv.table import DEFAULT_WIDTH

    from .report import terminal

    terminalreporter.section("polyconv conformance")
    terminalreporter.write_line(terminal(state.tally, DEFAULT_WIDTH))
    k = sample(config)
    if k > 1:
        terminalreporter.write_line(
            f"sampled: about one case in {k} of the grids and random sets (--polyconv-sample {k}); "
            "the whole suite: --polyconv-sample 1")
