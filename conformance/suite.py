"""The conformance suite of one backend: its items, and running them.

:func:`items` lists everything the suite checks on a backend, as
:class:`Item` s, each in one *feature* (a column of the report's matrix):

``conv_general_dilated``, ``conv_transpose``, ``patches``, ``local``
    The curated grids of :mod:`.cases` (every layout family, 0-3 spatial
    dims, every padding kind, dilations, groups, batch groups, zero sizes;
    the transposed-convolution grid), the dtype grid (every dtype, with and
    without ``preferred_element_type``), seeded random cases over the whole
    parameter space, and 4-5 spatial dims; a quarter of the forward grid
    again on strided (non-contiguous) operands, an eighth on read-only
    operands and an eighth on stride-0 broadcasts; non-finite operands
    (:func:`.cases.nonfinite_grid`, judged by the rule of :mod:`.tolerances`)
    for every op (patches are copies: an infinite or NaN input must not
    spread to its neighbours, as ``jax.lax``'s identity-kernel convolution
    makes it, ``inf * 0``); extreme
    integer operands and long reductions (:func:`.cases.extremes_grid`);
    state across calls on a sample of each curated grid (two calls on the
    same arrays are bit-identical; after the operands change in place, the
    result follows: :func:`.checks.run_repeated`); result lifetime (three
    same-shape calls, their results judged after the last:
    :func:`.checks.run_kept`) and concurrency (three threads at once:
    :func:`.checks.run_threads`) on samples of each curated grid; an eighth
    of the forward grid on flipped views (negative strides); non-finite
    inputs meeting exact kernel zeros (:func:`.cases.nonfinite_zeros_grid`);
    sizes past common tiles (:func:`.cases.large_grid`) and every accepted
    form of ``precision`` (:func:`.cases.precision_grid`) for every op.
``vjp``
    ``conv_general_dilated_vjp`` on the forward grids, random cases, and
    the large and precision grids.
``autodiff``
    For backends declaring it: the framework's own autodiff
    (:meth:`~.harness.Harness.vjp`) of ``conv_general_dilated`` against the
    reference VJP, on the real floating cases of the grids.
``jit``
    For backends declaring it: a sample of every grid under the backend's
    compiler (:meth:`~.harness.Harness.jit`), batched.
``errors``
    Every bad call of :mod:`.bad_calls` raises the NumPy backend's error.
``hypothesis``
    One Hypothesis property per op (and autodiff), over the strategies of
    :mod:`.strategies`; a failure is shrunk to a minimal case.

Each item's :class:`~.checks.Outcome` is ``pass``, ``fail`` (with a
reproducer) or ``unsupported`` (the manifest excludes the case and the call
raised the promised polyconv error).  Backends whose every eager call
compiles (:attr:`~.harness.Harness.jit_batches`, JAX) run the value grids
under ``jit`` in batches, one compilation per batch, plus an eager sample;
they draw a quarter of the random cases, at most one batch per random set,
and every other case of the curated grids (with ``thorough``: every case of
the grids, and ten times a quarter of the random cases).

``sample=k`` (``--polyconv-sample k``) keeps about one case in ``k`` of the
grids, of the random sets and of their views (strided, read-only, broadcast,
state, jit), chosen by a fixed seed per group so every run checks the same
cases; the small targeted groups (non-finite, zeros, extremes, large,
precision, bad calls, Hypothesis) stay whole.  polyconv's own development test run uses it for
speed; the complete suite is the default, and ``thorough`` ignores it.

Examples
--------
>>> from polyconv.registry import registry
>>> suite = Suite(registry.load("numpy"))
>>> first = suite.items[0]
>>> first.feature, suite.outcome(first).status
('conv_general_dilated', 'pass')
"""

from __future__ import annotations

import collections
import functools
import time
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from polyconv.backend import Backend

from . import bad_calls, cases, checks, reproduce
from .harness import harness_for

__all__ = ["FEATURES", "Item", "Suite", "items", "case_counts", "load", "sampled"]

#: The features (columns of the matrix), in order.
FEATURES = (
    "conv_general_dilated", "conv_transpose", "patches", "local", "vjp", "autodiff", "jit", "errors", "hypothesis",
)

_BATCH = 64  # cases per compiled batch
_JIT_SAMPLE = 24  # every n-th case of each curated grid runs under the backend's jit
_EAGER_SAMPLE = 16  # for batching backends, every n-th case of each curated grid also runs eagerly
_STATE_SAMPLE = 20  # every n-th case of each curated grid is called repeatedly (state across calls)
_LIFETIME_SAMPLE = 20  # every n-th case of each curated grid keeps the results of same-shape calls
_THREADS_SAMPLE = 80  # every n-th case of each curated grid runs on several threads at once
_KEPT = 3  # same-shape calls whose results are kept alive together (result lifetime)
_THREADS = 3  # threads calling at once (concurrency)
_UNIT = 8  # consecutive cases of a curated grid per pytest test (without a compiled batch)
_ALONE = ("errors", "hypothesis")  # features whose every item is its own test


@dataclass(frozen=True)
class Item:
    """One thing the suite checks on a backend.

    ``build`` makes the :class:`~.checks.Check` (or for ``errors`` the bad
    call is ``case``; for ``hypothesis`` ``build`` is None and ``case`` names
    the op).  Items with the same ``batch`` run together as one compiled
    function.
    """

    feature: str
    id: str
    case: Any
    build: Callable[[Backend, Any], checks.Check] | None = None
    batch: str | None = None  # under the backend's jit, with the other items of the batch
    strided: bool | str = False  # operand views: True (strided), 'readonly', 'broadcast', 'flipped' (make_array)
    repeat: bool = False  # state across calls (:func:`.checks.run_repeated`)
    kept: int = 0  # result lifetime: this many same-shape calls, their results judged together (run_kept)
    threads: int = 0  # concurrency: this many same-shape calls on threads at once (run_threads)
    unit: str | None = None  # items with the same unit are one pytest test (see :func:`_in_units`)

    def __str__(self) -> str:
        return self.id


def case_counts(thorough: bool = False, batched: bool = False) -> dict[str, int]:
    """How many seeded random cases each random set draws: ten times more when
    ``thorough``.  A batching backend compiles every case, so it draws a
    quarter as many, and by default at most one batch (:data:`_BATCH`) per
    set: each further batch costs seconds of compilation."""
    counts = {"conv": 500, "transpose": 500, "patches_local": 300, "vjp": 500, "nd45": 60, "hypothesis": 30}
    if batched:
        counts = {k: (v if k == "hypothesis" else max(v // 4, 15)) for k, v in counts.items()}
        if not thorough:
            return {k: (v if k == "hypothesis" else min(v, _BATCH)) for k, v in counts.items()}
    return {k: v * 10 for k, v in counts.items()} if thorough else counts


_RANDOM_DTYPES = [d for d in cases.DTYPES if d != "bfloat16"]


def _random_convs(count: int, seed: int, dtypes: list[str]) -> list[cases.ConvCase]:
    rng = np.random.default_rng(seed)
    return [cases.random_case(rng, dtype=str(rng.choice(dtypes)), index=i) for i in range(count)]


def load(name: str) -> tuple[Backend | None, str]:
    """``(backend, "")`` for a registered backend that can run here, else
    ``(None, why)``: its unavailability reason, or that nothing has that name."""
    from polyconv.registry import registry

    be = registry.try_load(name)
    if be is not None:
        return be, ""
    rec = registry.records().get(name)
    return None, rec.reason if rec is not None and rec.reason else "not registered"


def _real_float(case: cases.ConvCase) -> bool:
    return case.dtype in ("float16", "bfloat16", "float32", "float64") and case.preferred_element_type is None


def sampled(group: str, group_cases: list[Any], sample: int) -> list[Any]:
    """About one in ``sample`` of ``group_cases``, in their order, the same in every
    run: chosen by a seed made of the group's name (not every k-th case, which can
    miss a whole family of a grid whose period divides k)."""
    if sample <= 1 or not group_cases:
        return group_cases
    rng = np.random.default_rng(zlib.crc32(group.encode()))
    keep = -(-len(group_cases) // sample)
    return [group_cases[i] for i in sorted(rng.choice(len(group_cases), keep, replace=False))]


def items(be: Backend, thorough: bool = False, sample: int = 1) -> list[Item]:
    """Everything the suite checks on ``be`` (see the module docstring); ``sample``
    keeps about one in ``sample`` cases of the large groups (ignored when ``thorough``)."""
    if sample < 1:
        raise ValueError(f"sample must be a positive integer; got {sample!r}")
    sample = 1 if thorough else sample
    batched = harness_for(be).jit_batches
    n = {k: v if k == "hypothesis" else max(1, v // sample) for k, v in case_counts(thorough, batched).items()}
    usable: Callable[[cases.ConvCase], bool] = (lambda c: True) if cases.has_ml_dtypes() else (
        lambda c: "bfloat16" not in (c.dtype, getattr(c, "preferred_element_type", None)))
    grid, dtype_grid = cases.grid(), [c for c in cases.dtype_grid() if usable(c)]
    plain_dtype_grid = [c for c in dtype_grid if c.preferred_element_type is None]
    rng = np.random.default_rng(99)
    nd45 = [cases.random_case(rng, dtype="float64", max_spatial=5, index=i) for i in range(n["nd45"])]
    rng = np.random.default_rng(31)
    transposes = [cases.random_transpose_case(rng, str(rng.choice(_RANDOM_DTYPES)), i)
                  for i in range(n["transpose"])]
    transposes += [cases.TransposeCase(
        name=f"transpose-{nd}d", lhs_shape=(1, *([3] * nd), 2), rhs_shape=(*([2] * nd), 3, 2),
        strides=(2,) * nd, padding="SAME", transpose_kernel=True, seed=nd) for nd in (4, 5)]

    nonfinite = cases.nonfinite_grid()
    large = cases.large_grid()
    precision = [c for c in cases.precision_grid() if usable(c)]
    names_only = [c for c in precision if not str(c.precision).startswith(cases.LAX_PRECISION)]
    transposes_precise = [replace(t, precision=form, name=f"{t.name}-precision={form}", dtype="float32")
                          for t in cases.transpose_grid()[5::96] for form in ("highest", "high", "default")]
    # (feature, group, builder, cases); groups named "grid"/"dtypes" are curated (sampled for jit/eager)
    sets: list[tuple[str, str, Any, list[Any]]] = [
        ("conv_general_dilated", "grid", checks.conv_check, grid),
        ("conv_general_dilated", "dtypes", checks.conv_check, dtype_grid),
        ("conv_general_dilated", "random", checks.conv_check, _random_convs(n["conv"], 1234, _RANDOM_DTYPES)),
        ("conv_general_dilated", "nd45", checks.conv_check, nd45),
        ("conv_general_dilated", "nonfinite", checks.conv_check, nonfinite),
        ("conv_general_dilated", "extremes", checks.conv_check, cases.extremes_grid()),
        ("conv_general_dilated", "zeros", checks.conv_check, cases.nonfinite_zeros_grid()),
        ("conv_general_dilated", "large", checks.conv_check, large),
        ("conv_general_dilated", "precision", checks.conv_check, precision),
        ("conv_transpose", "grid", checks.transpose_check, cases.transpose_grid()),
        ("conv_transpose", "nonfinite", checks.transpose_check, cases.nonfinite_transpose_grid()),
        ("conv_transpose", "dtypes", checks.transpose_check, cases.transpose_dtype_grid()),
        ("conv_transpose", "random", checks.transpose_check, transposes),
        ("conv_transpose", "large", checks.transpose_check, cases.large_transpose_grid()),
        ("conv_transpose", "precision", checks.transpose_check, transposes_precise),
        ("patches", "grid", checks.patches_check, [cases.patches_case_of(c) for c in grid]),
        ("patches", "dtypes", checks.patches_check, [cases.patches_case_of(c) for c in dtype_grid]),
        ("patches", "nonfinite", checks.patches_check,
         [replace(cases.patches_case_of(c), values="nonfinite") for c in nonfinite[::2]]),
        ("patches", "random", checks.patches_check, cases.random_patches_cases(n["patches_local"], seed=41)),
        ("patches", "large", checks.patches_check, [cases.patches_case_of(c) for c in large]),
        ("patches", "precision", checks.patches_check,
         [replace(cases.patches_case_of(c), precision=c.precision, name=f"patches-{c.name}") for c in names_only[::3]]),
        ("local", "grid", checks.local_check, [cases.local_case_of(c) for c in grid]),
        ("local", "dtypes", checks.local_check, [cases.local_case_of(c) for c in plain_dtype_grid]),
        ("local", "nonfinite", checks.local_check,
         [replace(cases.local_case_of(c), values="nonfinite-kernel") for c in nonfinite[1::2]]
         + [replace(cases.local_case_of(c), values="nonfinite", name=f"local-{c.name}-both")
            for c in nonfinite[::4]]),
        ("local", "random", checks.local_check, cases.random_local_cases(n["patches_local"], seed=43)),
        ("local", "large", checks.local_check, [cases.local_case_of(c) for c in large if c.feature_group_count == 1]),
        ("local", "precision", checks.local_check,
         [replace(cases.local_case_of(c), precision=c.precision, name=f"local-{c.name}")
          for c in names_only[1::3] if c.feature_group_count == 1]),
        ("vjp", "grid", checks.vjp_check, grid),
        ("vjp", "dtypes", checks.vjp_check, dtype_grid),
        ("vjp", "random", checks.vjp_check,
         _random_convs(n["vjp"], 47, [d for d in _RANDOM_DTYPES if d != "bool"])),
        ("vjp", "large", checks.vjp_check, large),
        ("vjp", "precision", checks.vjp_check, precision[::2]),
    ]
    if "autodiff" in be.manifest.features:
        sets += [
            ("autodiff", "grid", checks.autodiff_check, [c for c in grid if _real_float(c)]),
            ("autodiff", "dtypes", checks.autodiff_check, [c for c in dtype_grid if _real_float(c)]),
            ("autodiff", "random", checks.autodiff_check, _random_convs(n["vjp"], 47, ["float32", "float64"])),
        ]

    out: list[Item] = []
    for feature, group, build, group_cases in sets:
        prefix = f"{feature}/{group}"
        if batched and not thorough and group in ("grid", "dtypes"):  # each case costs a compilation
            group_cases = group_cases[::2]
        if group in ("grid", "dtypes"):
            group_cases = sampled(prefix, group_cases, sample)
        unit = prefix if group in ("random", "nd45") else None
        for i, case in enumerate(group_cases):
            batch = f"{prefix}/{i // _BATCH}" if batched else None
            out.append(Item(feature, f"{prefix}/{case.name}", case, build, batch, unit=unit))
        if batched and group in ("grid", "dtypes"):
            out += [Item(feature, f"{prefix}/eager/{case.name}", case, build)
                    for case in group_cases[::_EAGER_SAMPLE]]
    thin = 4 if batched and not thorough else 1  # each eager case compiles: a quarter of the samples below
    # state across calls: a sample of each op's curated grid, called twice, then again on changed operands
    out += [Item(feature, f"{feature}/state/{case.name}", case, build, repeat=True)
            for feature, group, build, group_cases in sets if group == "grid"
            for case in sampled(f"{feature}/state", group_cases[:: _STATE_SAMPLE * thin], sample)]
    # result lifetime and concurrency: samples of each op's curated grid, with calls of the same shapes
    out += [Item(feature, f"{feature}/lifetime/{case.name}", case, build, kept=_KEPT)
            for feature, group, build, group_cases in sets if group == "grid"
            for case in sampled(f"{feature}/lifetime", group_cases[5:: _LIFETIME_SAMPLE * thin], sample)]
    out += [Item(feature, f"{feature}/threads/{case.name}", case, build, threads=_THREADS)
            for feature, group, build, group_cases in sets if group == "grid"
            for case in sampled(f"{feature}/threads", group_cases[11:: _THREADS_SAMPLE * thin], sample)]
    # non-contiguous operands: every 4th case of the forward grid on strided views
    out += [Item("conv_general_dilated", f"conv_general_dilated/strided/{case.name}", case, checks.conv_check,
                 f"conv_general_dilated/strided/{i // _BATCH}" if batched else None, strided=True)
            for i, case in enumerate(sampled("strided", grid[::4], sample))]
    # read-only operands (every 8th case), and stride-0 broadcasts of operands constant along an axis
    for view, views in (("readonly", grid[1::8]), ("broadcast", [replace(c, values="broadcast") for c in grid[2::8]]),
                        ("flipped", grid[3::8])):
        views = sampled(view, views, sample)
        out += [Item("conv_general_dilated", f"conv_general_dilated/{view}/{case.name}", case, checks.conv_check,
                     f"conv_general_dilated/{view}/{i // _BATCH}" if batched else None, strided=view)
                for i, case in enumerate(views)]
    if "jit" in be.manifest.features:
        jitted = [(feature, build, case) for feature, group, build, group_cases in sets if group in ("grid", "dtypes")
                  for case in sampled(f"jit/{feature}/{group}", group_cases[::_JIT_SAMPLE], sample)]
        out += [Item("jit", f"jit/{feature}/{case.name}", case, build, f"jit/{feature}")
                for feature, build, case in jitted]
    out += [Item("errors", f"errors/{bad.name}", bad) for bad in bad_calls.BAD_CALLS]
    props = ["conv", "transpose", "patches", "local", "vjp"]
    if "autodiff" in be.manifest.features:
        props.append("autodiff")
    out += [Item("hypothesis", f"hypothesis/{op}", op) for op in props]
    return _in_units(out)


def _in_units(out: list[Item]) -> list[Item]:
    """``out`` with every item in a unit, the items one pytest test runs: a
    seeded random set is one unit, a compiled batch another, and the other
    items of a group (``feature/group/case``) go by runs of :data:`_UNIT`
    (``feature/group/first-last``, the positions in the group); an error or a
    Hypothesis property is a test of its own.  Fewer, longer tests: pytest
    and pytest-xdist spend a few milliseconds on each, more than most cases
    take."""

    def group(item: Item) -> str:
        return item.id.rsplit("/", 1)[0]

    sizes = collections.Counter(group(item) for item in out)
    seen: dict[str, int] = {}
    grouped = []
    for item in out:
        if item.unit is None and item.feature not in _ALONE:
            if item.batch is not None:
                unit = item.batch
            else:
                name = group(item)
                i = seen[name] = seen.get(name, -1) + 1
                start = i - i % _UNIT
                unit = f"{name}/{start}-{min(start + _UNIT, sizes[name]) - 1}"
            item = replace(item, unit=unit)
        grouped.append(item)
    return grouped


class Suite:
    """The items of one backend, and their outcomes (each computed once, a
    batch at a time where items share one).

    Parameters
    ----------
    be
        The backend.
    thorough
        Ten times more random cases and Hypothesis examples (and Hypothesis
        randomised rather than derandomised).
    device
        Where operands are made (:meth:`~polyconv.Backend.from_numpy`); None
        for the framework's default.
    features
        Only the items of these features (all by default).
    sample
        Keep about one in ``sample`` cases of the large groups (:func:`items`).
    """

    def __init__(self, be: Backend, thorough: bool = False, device: str | None = None,
                 features: Collection[str] | None = None, sample: int = 1) -> None:
        self.be = be
        self.thorough = thorough
        self.device = device
        self.items = [i for i in items(be, thorough, sample) if features is None or i.feature in features]
        self._outcomes: dict[str, checks.Outcome] = {}
        self._batches: dict[str, list[Item]] = {}
        for item in self.items:
            if item.batch is not None:
                self._batches.setdefault(item.batch, []).append(item)
        self.seconds = 0.0

    def outcome(self, item: Item) -> checks.Outcome:
        """The outcome of ``item`` (running it, or its whole batch, if not yet run)."""
        if item.id not in self._outcomes:
            start = time.perf_counter()
            with harness_for(self.be).session():
                if item.batch is not None:
                    self._run_batch(self._batches[item.batch])
                else:
                    self._outcomes[item.id] = self._run(item)
            self.seconds += time.perf_counter() - start
        return self._outcomes[item.id]

    def run(self, progress: Callable[[int, int, Item], None] | None = None) -> Iterator[tuple[Item, checks.Outcome]]:
        """Every item with its outcome, in order; ``progress(i, total, item)`` before each."""
        for i, item in enumerate(self.items):
            if progress is not None:
                progress(i, len(self.items), item)
            yield item, self.outcome(item)

    def _run(self, item: Item) -> checks.Outcome:
        if item.feature == "errors":
            return bad_calls.check_bad_call(self.be, item.case, self.device)
        if item.feature == "hypothesis":
            from .properties import check_property

            return check_property(self.be, item.case, self.thorough, self.device)
        assert item.build is not None
        try:
            check = item.build(self.be, item.case)
            if item.repeat:
                other = item.build(self.be, replace(item.case, seed=item.case.seed + reproduce.SEED_STEP))
        except Exception as exc:  # a case the suite cannot even prepare is the suite's bug: say so
            return checks.Outcome("fail", f"preparing the case failed: {exc!r}")
        if item.repeat:
            return checks.run_repeated(self.be, check, other, self.device)
        if item.kept or item.threads:
            try:
                others = [item.build(self.be, replace(item.case, seed=item.case.seed + reproduce.SEED_STEP * k))
                          for k in range(1, item.kept or item.threads)]
            except Exception as exc:
                return checks.Outcome("fail", f"preparing the case failed: {exc!r}")
            if item.kept:
                return checks.run_kept(self.be, [check, *others], self.device)
            return checks.run_threads(self.be, [check, *others], self.device)
        return checks.run(self.be, check, self.device, item.strided)

    def _run_batch(self, batch: list[Item]) -> None:
        prepared = [item.build(self.be, item.case) for item in batch if item.build is not None]
        jit = functools.partial(harness_for(self.be).jit, thorough=self.thorough)
        outcomes = checks.run_batched(self.be, prepared, jit, self.device, batch[0].strided, self.thorough)
        for item, outcome in zip(batch, outcomes):
            self._outcomes[item.id] = outcome
