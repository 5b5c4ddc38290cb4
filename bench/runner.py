"""The run: every backend asked for, every shape, each side in a fresh process, into one report."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

from .calls import FRAMEWORK, SIDES, importable
from .isolated import run_pair, run_side
from .shapes import SUITE, Shape

__all__ = ["run"]


def _progress(i: int, total: int, label: str) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    done = width * i // max(total, 1)
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{total} {label[:50]:50s}")
    sys.stderr.flush()
    if i == total:
        sys.stderr.write("\n")


def run(backends: list[str], shapes: tuple[Shape, ...] = SUITE, budget: float = 2.0,
        threads: int | None = None, rounds: int = 1) -> dict[str, Any]:
    """Run the suite; returns the report (what ``--json`` writes).

    Each side of each backend's comparison (:data:`.calls.SIDES`) is timed in
    a fresh process of its own, one after another (:func:`.isolated.run_side`),
    with its framework's matrix-product rate; a native side of polyconv's own
    framework (``torch.nn.functional`` for the torch backend, ``jax.lax`` for
    JAX, ``mlx.core.conv_general`` for MLX) is timed with polyconv's side in
    one process, interleaved (:func:`.isolated.run_pair`; the row's
    ``timing`` says which).  A row compares polyconv's side with one native
    side on one shape.  With ``rounds > 1`` every side's
    process runs that many times, the rounds one after the other (each round
    every side once), and each side keeps, per shape, its fastest round (and
    its highest matrix-product rate): a process that the machine slowed as a
    whole (on a shared virtual machine, by up to 2x) no longer decides a
    ratio, and both sides are treated alike."""
    jobs: list[tuple[str, tuple[str, ...]]] = []
    for backend in backends:
        mine_side, natives = SIDES[backend]
        present = [n for n in natives if importable(FRAMEWORK[n].split()[0])]
        paired = [n for n in present if FRAMEWORK[n] == FRAMEWORK[mine_side]]
        alone = [n for n in present if n not in paired]
        if alone or not present:
            jobs.append((backend, (mine_side,)))
        jobs += [(backend, (n,)) for n in alone]
        jobs += [(backend, (mine_side, n)) for n in paired]
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    # each side's timings, keyed by the sides its process timed (one, or a pair interleaved)
    timed: dict[tuple[str, str, tuple[str, ...]], dict[str, Any]] = {}
    machine_bests: list[float] = []
    total = rounds * len(jobs)
    for r in range(rounds):
        for i, (backend, sides) in enumerate(jobs):
            _progress(r * len(jobs) + i, total, f"round {r + 1}: {backend}: {' with '.join(sides)}")
            if len(sides) == 1:
                these: tuple[dict[str, Any], ...] = (run_side(backend, sides[0], shapes, budget, threads),)
            else:
                these = run_pair(backend, sides[0], sides[1], shapes, budget, threads)
            for side, this in zip(sides, these):
                if "machine_best_gflops" in this:  # every CPU process's own best product, for the spread
                    machine_bests.append(this["machine_best_gflops"])
                kept = timed.get((backend, side, sides))
                timed[(backend, side, sides)] = this if kept is None else _fastest(kept, this)
    _progress(total, total, "done")
    results = []
    for backend in backends:
        mine_side, natives = SIDES[backend]
        for native_side in natives:
            pair = (mine_side, native_side)
            interleaved = (backend, native_side, pair) in timed
            if interleaved:
                mine, native = timed[(backend, mine_side, pair)], timed[(backend, native_side, pair)]
            elif (backend, native_side, (native_side,)) in timed:
                mine, native = timed[(backend, mine_side, (mine_side,))], timed[(backend, native_side, (native_side,))]
            else:
                continue
            for k, shape in enumerate(shapes):
                t_mine, t_native = mine["seconds"][k], native["seconds"][k]
                if t_mine is None or t_native is None:
                    continue
                flops = shape.flops()
                strategies = (_strategy(mine, k), _strategy(native, k))
                results.append({
                    "backend": backend, "shape": shape.name, "native": native_side,
                    "timing": "interleaved" if interleaved else "alone",
                    "polyconv_s": t_mine, "native_s": t_native, "ratio": t_mine / t_native,
                    "polyconv_peak_extra_bytes": mine["peak_extra_bytes"][k],
                    "polyconv_gflops": flops / t_mine / 1e9, "native_gflops": flops / t_native / 1e9,
                    "polyconv_matmul_gflops": mine["matmul_gflops"], "native_matmul_gflops": native["matmul_gflops"],
                    "polyconv_of_matmul": flops / t_mine / 1e9 / mine["matmul_gflops"],
                    "native_of_matmul": flops / t_native / 1e9 / native["matmul_gflops"],
                    "polyconv_strategy": strategies[0], "native_strategy": strategies[1],
                    "polyconv_in_gemm": (mine.get("in_gemm") or [None] * len(shapes))[k],
                    "spec": asdict(shape),
                })
    rates: dict[str, float] = {}
    best: dict[str, float] = {}
    for (_, side, _), t in timed.items():
        framework = FRAMEWORK[side]
        rates[framework] = max(rates.get(framework, 0.0), t["matmul_gflops"])
        best[framework] = max(best.get(framework, 0.0), t.get("matmul_best_gflops", t["matmul_gflops"]))
        if "machine_best_gflops" in t:  # NumPy's product in a CPU side's process, after its timings
            best["numpy"] = max(best.get("numpy", 0.0), t["machine_best_gflops"])
    spread = max(machine_bests) / min(machine_bests) - 1.0 if machine_bests else 0.0
    peak = _check_against_peak(results, best, spread)
    return {"matmul_gflops": rates.get("numpy"), "matmul_gflops_by_framework": rates, "threads": threads,
            "isolated": True, "rounds": rounds, "results": results, "peak_gflops": peak,
            "peak_by_framework": best, "peak_spread": spread,
            "above_peak": [r for r in results if r["polyconv_above_peak"] or r["native_above_peak"]]}


def _strategy(side: dict[str, Any], k: int) -> str | None:
    strategies = side.get("strategies")
    return strategies[k] if strategies else None


#: Strategies that compute fewer operations than the direct convolution's (whose
#: count the GFLOP/s figures use), so that their effective rate may exceed the peak.
FEWER_OPERATIONS = frozenset({"fft"})


def _check_against_peak(results: list[dict[str, Any]], best: dict[str, float], spread: float = 0.0) -> float | None:
    """The machine's float32 peak as this run measured it (the best matrix-product rate of
    any side's framework, :func:`.timing.matmul_rates`, and of NumPy's BLAS in every CPU
    side's process: MLX's CPU build multiplies matrices at a tenth of it), and each row's
    GFLOP/s as a fraction of it (``polyconv_of_peak``, ``native_of_peak``).

    The peak is itself a measurement: every CPU process measures the same product, and
    their best rates differ by ``spread`` (the largest over the smallest, less one: how
    much the machine's speed moved between the run's processes).  A direct computation
    cannot run faster than the machine: a fraction above ``1 + spread`` on a side whose
    strategy is not one of :data:`FEWER_OPERATIONS` (unknown strategies included) is a
    measurement error (``*_above_peak``), never a result; one between 1.0 and
    ``1 + spread`` is within the peak's own uncertainty (``*_within_spread``), and the
    report marks it so.

    >>> rows = [{"polyconv_gflops": 50.0, "native_gflops": 120.0, "polyconv_strategy": "fft",
    ...          "native_strategy": "direct"}, {"polyconv_gflops": 103.0, "native_gflops": 10.0}]
    >>> _check_against_peak(rows, {"numpy": 100.0, "torch": 90.0}, spread=0.05)
    100.0
    >>> rows[0]["polyconv_of_peak"], rows[0]["native_of_peak"], rows[0]["native_above_peak"]
    (0.5, 1.2, True)
    >>> rows[1]["polyconv_above_peak"], rows[1]["polyconv_within_spread"]
    (False, True)
    """
    if not best:
        return None
    peak = max(best.values())
    for r in results:
        for side in ("polyconv", "native"):
            fraction = r[f"{side}_gflops"] / peak
            direct = r.get(f"{side}_strategy") not in FEWER_OPERATIONS
            r[f"{side}_of_peak"] = fraction
            r[f"{side}_above_peak"] = direct and fraction > 1.0 + spread
            r[f"{side}_within_spread"] = direct and 1.0 < fraction <= 1.0 + spread
    return peak


def _fastest(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two rounds of one side combined: per shape the shorter time, the higher
    matrix-product rate (the peak memory is the same in every round: the first).

    >>> _fastest({"seconds": [1.0, None], "peak_extra_bytes": [5, None], "matmul_gflops": 90.0},
    ...          {"seconds": [2.0, None], "peak_extra_bytes": [5, None], "matmul_gflops": 100.0})
    {'seconds': [1.0, None], 'peak_extra_bytes': [5, None], 'matmul_gflops': 100.0}
    """
    seconds = [x if y is None else y if x is None else min(x, y) for x, y in zip(a["seconds"], b["seconds"])]
    out = {"seconds": seconds, "peak_extra_bytes": a["peak_extra_bytes"],
           "matmul_gflops": max(a["matmul_gflops"], b["matmul_gflops"])}
    for key in ("matmul_best_gflops", "machine_best_gflops"):
        if key in a:
            out[key] = max(a[key], b[key])
    if "strategies" in a:
        out["strategies"] = a["strategies"]
    if "in_gemm" in a:  # the share, from the round with the faster call
        out["in_gemm"] = [y if (t_b is not None and (t_a is None or t_b < t_a)) else x
                          for x, y, t_a, t_b in zip(a["in_gemm"], b["in_gemm"], a["seconds"], b["seconds"])]
    return out
