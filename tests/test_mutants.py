"""The mutation proof of the conformance suite.

Every deliberately wrong backend of :mod:`mutants` goes through the suite
(:class:`polyconv.conformance.suite.Suite`), registered for the test's
duration with :meth:`polyconv.registry.Registry.register`.  The suite must
fail each one, in the right feature and for the right reason, with a
reproducer that shows the wrong value; the bug-free :class:`mutants.Control`
must pass every item a mutant ran, so the failures are the bug's.

To stay fast, each mutant runs only the item groups of its ``probe`` (the
ones that can see its bug, and cheap ones that must still pass), each group
in the suite's order and stopped after :data:`FAILS_PER_GROUP` failures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import re
from collections.abc import Iterator
from typing import Any

import mutants
import numpy as np
import pytest
from mutants import MUTANTS, Control, Mutant
from polyconv.conformance import checks, properties
from polyconv.conformance import suite as suite_module
from polyconv.conformance.harness import harness_for
from polyconv.conformance.suite import Item, Suite

import polyconv
from polyconv.registry import registry

FAILS_PER_GROUP = 2

Ran = list[tuple[Item, checks.Outcome]]


@pytest.fixture(scope="module", autouse=True)
def _items_made_once() -> Iterator[None]:
    """Every suite of this module shares one list of items (making it takes a
    second; it depends only on the manifest's 'jit'/'autodiff' and ``jit_batches``)."""
    made: dict[tuple[Any, ...], list[Item]] = {}
    original = suite_module.items

    def items(be: Any, thorough: bool = False, sample: int = 1) -> list[Item]:
        key = (harness_for(be).jit_batches, "jit" in be.manifest.features, "autodiff" in be.manifest.features,
               thorough, sample)
        if key not in made:
            made[key] = original(be, thorough, sample)
        return made[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(suite_module, "items", items)
        yield


@contextlib.contextmanager
def registered(cls: type[Control]) -> Iterator[Control]:
    """An instance of ``cls``, registered under its name inside the block."""
    be = cls()
    registry.register(be)
    try:
        yield be
    finally:
        registry.unregister(be.name)


@pytest.fixture(scope="module")
def control() -> Iterator[Suite]:
    """The suite of the bug-free wrapper (its outcomes are cached across tests)."""
    with registered(Control) as be:
        yield Suite(be)


def _group(item: Item) -> tuple[str, str]:
    return (item.feature, item.feature if item.feature == "errors" else item.id.split("/")[1])


def run_probe(suite: Suite, probe: tuple[tuple[str, str], ...]) -> Ran:
    """The outcomes of the probed groups' items, in the suite's order, each group
    stopped after :data:`FAILS_PER_GROUP` failures."""
    ran: Ran = []
    for group in probe:
        fails = 0
        for item in suite.items:
            if _group(item) != group:
                continue
            outcome = suite.outcome(item)
            ran.append((item, outcome))
            fails += outcome.status == "fail"
            if fails >= FAILS_PER_GROUP:
                break
    assert ran, f"the probe {probe} selects no items"
    return ran


def first_failure(suite: Suite, probe: tuple[tuple[str, str], ...]) -> tuple[Item, checks.Outcome]:
    """The first failing item of the probed groups, in the suite's order (running no further)."""
    for group in probe:
        for item in suite.items:
            if _group(item) == group and (outcome := suite.outcome(item)).status == "fail":
                return item, outcome
    raise AssertionError(f"no item of {probe} fails")


def _failures(ran: Ran) -> Ran:
    return [(item, outcome) for item, outcome in ran if outcome.status == "fail"]


def _check_caught(mutant: type[Mutant], control: Suite) -> None:
    with registered(mutant) as be:
        ran = run_probe(Suite(be), mutant.probe)
    failures = _failures(ran)
    # (1) caught at all
    assert failures, f"the suite let {mutant.__name__} through ({len(ran)} items): {mutant.bug()}"
    # (2) in the right feature: the broken op, or ops derived from it
    features = {item.feature for item, _ in failures}
    assert mutant.caught_by in features, f"{mutant.__name__} failed only in {sorted(features)}"
    assert features <= {mutant.caught_by} | mutant.also, f"{mutant.__name__} failed in {sorted(features)}"
    for item, outcome in failures:
        # (3) for the right reason, with a reproducer on this backend
        assert re.search(mutant.reason, outcome.detail), f"{item.id}: {outcome.detail}"
        assert f"registry.load({be.name!r})" in outcome.snippet, f"{item.id} has no reproducer"
    # the failures are the bug's: the same wrapper without it passes every item the mutant ran
    wrong = [f"{item.id}: {control.outcome(item).detail}" for item, _ in ran if control.outcome(item).status != "pass"]
    assert wrong == []


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name.removeprefix("mutant-"))
def test_the_suite_fails_the_mutant_for_the_right_reason(mutant: type[Mutant], control: Suite) -> None:
    _check_caught(mutant, control)


def test_there_are_enough_distinct_mutants() -> None:
    assert len(MUTANTS) >= 12
    everything: tuple[type[Control], ...] = (*MUTANTS, Control)
    assert len({m.name for m in everything}) == len(everything)
    for m in MUTANTS:
        assert m.bug() and "\n" not in m.bug(), f"{m.__name__} needs a one-line description of its bug"
        assert m.caught_by in suite_module.FEATURES


def _rerun(snippet: str) -> tuple[str, dict[str, Any]]:
    """Run a reproducer in a fresh namespace: what it printed, and its variables."""
    namespace: dict[str, Any] = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(snippet, namespace)
    return printed.getvalue(), namespace


def _differs(namespace: dict[str, Any]) -> bool:
    """Whether the received results of a rerun snippet differ from the reference's (cast to
    the result's dtype; by more than a few roundings of it)."""
    from polyconv.conformance import reference

    be = namespace["be"]
    for got, want in zip(namespace["results"], namespace["expected"]):
        got = be.to_numpy(got)
        want = reference.cast_result(np.asarray(want), str(got.dtype))
        if got.shape != want.shape:
            return True
        eps = float(np.finfo(got.dtype).eps) if got.dtype.kind in "fcV" else 0.0
        rtol = max(1e-6, 8 * eps)
        if not np.allclose(got.astype(np.complex128), want.astype(np.complex128), rtol=rtol, atol=1e-6,
                           equal_nan=True):
            return True
    return False


@pytest.mark.parametrize(
    "mutant",
    [mutants.PaddingSwapped, mutants.BatchGroupsInterleaved, mutants.TransposeKernelFlipIgnored,
     mutants.LocalWindowOrder, mutants.OutputLayoutMisread, mutants.ResultBufferReused,
     mutants.NegativeStridesInMemoryOrder, mutants.BoolCountsInUint8, mutants.HighestIgnored,
     mutants.LastPartialTileDropped, mutants.ZeroTapsSkipped, mutants.Bfloat16ThroughFloat16],
    ids=lambda m: m.name.removeprefix("mutant-"),
)
def test_the_reproducer_shows_the_wrong_value(mutant: type[Mutant], control: Suite) -> None:
    with registered(mutant) as be:
        item, outcome = first_failure(Suite(be), mutant.probe)
        printed, namespace = _rerun(outcome.snippet)
    assert "received:" in printed and "expected (the reference, in " in printed
    assert _differs(namespace), f"the reproducer of {item.id} does not reproduce:\n{printed}"
    if importlib.util.find_spec("jax") is not None:  # and the same call on jax.lax, for comparison
        assert "jax.lax:" in printed and "lax_result" in namespace, printed[-2000:]
    assert "verdict:" in printed and "verdict: within tolerance" not in printed, printed
    # the same snippet on the control agrees with the reference
    printed, namespace = _rerun(outcome.snippet.replace(repr(be.name), repr(control.be.name)))
    assert not _differs(namespace)
    assert "verdict: within tolerance" in printed


def test_the_reproducer_of_a_race_runs_the_threads(control: Suite) -> None:
    """The concurrency check's reproducer runs the case on several threads at once; a race
    shows in some runs only (the thread that writes the shared scratch last gets its own
    values), so it is run until it shows, at most 12 times (about 1 in 500,000 never shows)."""
    mutant = mutants.SharedScratch
    with registered(mutant) as be:
        item, outcome = first_failure(Suite(be), mutant.probe)
        assert "threading.Barrier(3)" in outcome.snippet
        shown = 0
        for _ in range(12):
            printed, namespace = _rerun(outcome.snippet)
            if _differs(namespace):
                shown += 1
                break
        assert "verdict:" in printed
    assert shown, f"the reproducer of {item.id} never showed the race in 12 runs"
    printed, namespace = _rerun(outcome.snippet.replace(repr(be.name), repr(control.be.name)))
    assert not _differs(namespace) and "verdict: within tolerance" in printed


def test_the_reproducer_raises_the_backends_error() -> None:
    mutant = mutants.NegativePaddingValueError
    with registered(mutant) as be:
        _, outcome = first_failure(Suite(be), mutant.probe)
        with pytest.raises(ValueError, match="negative padding is not supported"):
            _rerun(outcome.snippet)


def test_hypothesis_shrinks_a_mutant_to_a_reproducer() -> None:
    pytest.importorskip("hypothesis", reason="Hypothesis is not installed (pip install 'polyconv[conformance]')")
    mutant = mutants.LhsMutated  # the quickest to shrink: every drawn case fails
    with registered(mutant) as be:
        outcome = properties.check_property(be, "conv", max_examples=5)
        assert outcome.status == "fail"
        assert outcome.detail.startswith("Hypothesis, shrunk: ")
        assert re.search(mutant.reason, outcome.detail)
        _, namespace = _rerun(outcome.snippet)
    (lhs, *_), (arg, *_) = namespace["operands"], namespace["args"]
    assert not np.array_equal(be.to_numpy(arg), lhs), "the reproducer's call left its lhs alone"


class _NoNegativePadding(Control):
    """No bug: a backend whose manifest hook refuses negative padding, as many frameworks do."""

    name = "mutant-control-no-negative-padding"

    def __init__(self) -> None:
        super().__init__()

        def supports(spec: Any, op: str) -> str | None:
            return "negative padding" if any(lo < 0 or hi < 0 for lo, hi in spec.padding) else None

        self.manifest = dataclasses.replace(self.manifest, supports=supports)


def test_a_manifest_hook_makes_what_it_refuses_unsupported() -> None:
    """Manifest.supports: the call raises the polyconv error before the backend runs, the
    suite counts those cases unsupported (not failed), and everything else still runs."""
    from polyconv.errors import UnsupportedFeatureError

    with registered(_NoNegativePadding) as be:
        suite = Suite(be)
        padded = [i for i in suite.items if i.feature in ("conv_general_dilated", "vjp") and "/grid/1d-" in i.id
                  and "pad" in i.id]
        ran = [(item, suite.outcome(item)) for item in padded]
        assert all(outcome.status in ("pass", "unsupported") for _, outcome in ran)
        refused = [(item.id, outcome.detail) for item, outcome in ran if outcome.status == "unsupported"]
        assert refused and all("backend does not support negative padding" in why for _, why in refused), refused
        assert any("pad-negative" in id for id, _ in refused)
        assert {(item.feature, outcome.status) for item, outcome in ran} >= {
            ("conv_general_dilated", "pass"), ("conv_general_dilated", "unsupported"), ("vjp", "pass")}
        x, w = np.ones((1, 1, 5)), np.ones((1, 1, 2))
        with pytest.raises(UnsupportedFeatureError, match="backend does not support negative padding"):
            polyconv.conv_general_dilated(x, w, (1,), [(-1, 0)], backend=be.name)
        assert polyconv.conv_general_dilated(x, w, (1,), [(1, 0)], backend=be.name).shape == (1, 1, 5)


def test_half_accumulation_declares_half_sums_on_the_cpu() -> None:
    """A CPU backend that sums float16 and bfloat16 in their own type fails the float32-accumulator
    bound (the HalfSumsInHalf mutant); declaring ``half_accumulation`` makes the suite judge those sums
    with the 16-bit roundoff, and the same backend passes; its float32 sums are still held to float32."""
    from polyconv.conformance import tolerances

    with registered(mutants.HalfSumsDeclared) as be:
        assert checks.leeway(be, "cpu") == tolerances.Leeway(rounded_inputs=False, half_sums=True)
        ran = run_probe(Suite(be), (mutants.CONV_DTYPES, ("vjp", "dtypes")))
    halves = [item.id for item, _ in ran if "float16]" in item.id]
    assert len(halves) >= 10, halves
    assert _failures(ran) == []
    assert tolerances.tolerance_for(27, "float32", "float32", None, tolerances.Leeway(half_sums=True)) == \
        tolerances.tolerance_for(27, "float32", "float32")
    assert tolerances.tolerance_for(27, "float16", "float16", None, tolerances.Leeway(half_sums=True)) > \
        4 * tolerances.tolerance_for(27, "float16", "float16")


class _Lacking(Control):
    """No bug: a backend declaring, by name, limitations many frameworks have."""

    name = "mutant-control-lacking"
    LACKS = frozenset({"negative_padding", "zero_size", "window_larger_than_input", "layouts"})

    def __init__(self) -> None:
        super().__init__()
        self.manifest = dataclasses.replace(self.manifest, lacks=self.LACKS)


def test_manifest_lacks_names_limitations_the_suite_counts_unsupported() -> None:
    """Manifest.lacks: each named limitation is refused with the promised error before the backend
    runs, the suite counts those cases unsupported, and every other case still passes."""
    from polyconv.errors import UnsupportedFeatureError
    from polyconv.limitations import describe

    with registered(_Lacking) as be:
        ran = run_probe(Suite(be), (mutants.CONV_GRID, ("vjp", "grid"), ("conv_transpose", "grid")))
        assert _failures(ran) == []
        refused = [outcome.detail for _, outcome in ran if outcome.status == "unsupported"]
        for name in _Lacking.LACKS:
            assert any(f"does not support {describe(name)}" in why for why in refused), name
        assert all(any(f"does not support {describe(name)}" in why for name in _Lacking.LACKS) for why in refused)
        assert sum(outcome.status == "pass" for _, outcome in ran) > 50
        x, w = np.ones((1, 1, 5)), np.ones((1, 1, 2))
        with pytest.raises(UnsupportedFeatureError, match="'mutant-control-lacking' backend does not support "
                                                          "negative padding"):
            polyconv.conv_general_dilated(x, w, (1,), [(-1, 0)], backend=be.name)
        with pytest.raises(UnsupportedFeatureError, match="does not support layouts other than"):
            polyconv.conv_general_dilated(np.ones((1, 5, 1)), w, (1,), "VALID", dimension_numbers=("NWC", "OIW", "NWC"),
                                          backend=be.name)
        assert polyconv.conv_general_dilated(x, w, (1,), "SAME_LOWER", backend=be.name).shape == (1, 1, 5)
    with pytest.raises(ValueError, match="unknown limitation.*'same_lower'.*Manifest.supports"):
        dataclasses.replace(Control().manifest, lacks=frozenset({"same_lower"}))
