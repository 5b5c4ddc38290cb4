"""Hypothesis properties: every op, on cases drawn from :mod:`.strategies`.

:func:`check_property` runs one property on a backend: each drawn case
goes through the same check as the grids (:mod:`.checks`), and a failing
case is shrunk by Hypothesis to a minimal one, whose reproducer the outcome
carries.  By default the run is derandomized with a bounded number of
examples (so CI is reproducible); ``thorough`` draws ten times more,
randomly.

Examples
--------
>>> from polyconv.registry import registry
>>> check_property(registry.load("numpy"), "patches", max_examples=3).status
'pass'
"""

from __future__ import annotations

from typing import Any

from polyconv.backend import Backend

from . import cases, checks, strategies
from .harness import harness_for

__all__ = ["check_property", "PROPERTIES", "EXAMPLES"]

#: Examples per property: derandomized by default, ten times more when thorough, a
#: third for backends whose every eager call compiles (JAX).
EXAMPLES = 30

# op -> (strategy factory, check builder, dtypes it draws from, or None for every declared one)
PROPERTIES: dict[str, tuple[Any, Any, tuple[str, ...] | None]] = {
    "conv": (strategies.conv_cases, checks.conv_check, None),
    "transpose": (strategies.transpose_cases, checks.transpose_check, None),
    "patches": (strategies.patches_cases, checks.patches_check, None),
    "local": (strategies.local_cases, checks.local_check, None),
    "vjp": (strategies.conv_cases, checks.vjp_check, None),
    "autodiff": (strategies.conv_cases, checks.autodiff_check, ("float32", "float64")),
}


def _dtypes(be: Backend, op: str, fixed: tuple[str, ...] | None) -> list[str]:
    names = [d for d in (fixed or cases.DTYPES) if d in be.manifest.dtypes]
    if not cases.has_ml_dtypes():
        names = [d for d in names if d != "bfloat16"]
    if op == "vjp":
        names = [d for d in names if d != "bool"]
    return names or ["float64"]


def check_property(be: Backend, op: str, thorough: bool = False, device: str | None = None,
                   max_examples: int | None = None) -> checks.Outcome:
    """Run the Hypothesis property of ``op`` on ``be``: ``pass``, or ``fail``
    with the shrunk case's detail and reproducer."""
    try:
        from hypothesis import HealthCheck, given, settings
    except ImportError:
        return checks.Outcome("fail", "hypothesis is not installed: pip install 'polyconv[conformance]'")
    strategy, build, fixed = PROPERTIES[op]
    examples = max_examples or EXAMPLES
    if harness_for(be).jit_batches and max_examples is None:  # every example compiles
        examples = examples // 3
    examples *= 10 if thorough else 1
    last: list[checks.Outcome] = []

    @settings(max_examples=examples, derandomize=not thorough, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(strategy(dtypes=_dtypes(be, op, fixed)))
    def prop(case: Any) -> None:
        outcome = checks.run(be, build(be, case), device)
        if not outcome:
            last[:] = [outcome]
            raise AssertionError(outcome.detail)

    try:
        prop()
    except Exception as exc:  # the shrunk example's failure (Hypothesis replays it last)
        if last:
            return checks.Outcome("fail", f"Hypothesis, shrunk: {last[0].detail}", last[0].snippet)
        return checks.Outcome("fail", f"the property raised {type(exc).__name__}: {exc}")
    return checks.Outcome("pass")
