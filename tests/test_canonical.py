"""The canonical problem and its reach (polyconv.spec.canonical) against brute force."""

from __future__ import annotations

import itertools

import pytest

from polyconv.spec import conv_spec
from polyconv.spec.canonical import axis_reach, axis_reads, problem, stuffed_problem


def _brute(size: int, out: int, window: int, stride: int, ld: int, rd: int, low: int) -> dict[int, set[int]]:
    """tap -> the outputs that read an input element through it, by the definition."""
    reads: dict[int, set[int]] = {}
    for k in range(window):
        for y in range(out):
            p = y * stride + k * rd - low
            if p % ld == 0 and 0 <= p // ld < size:
                reads.setdefault(k, set()).add(y)
    return reads


@pytest.mark.parametrize("ld", [1, 2, 3])
def test_reads_and_reach_follow_the_definition(ld: int) -> None:
    for size, window, out, stride, rd, low in itertools.product(range(0, 6), range(1, 4), range(0, 8), range(1, 4),
                                                               range(1, 4), range(-3, 5)):
        want = _brute(size, out, window, stride, ld, rd, low)
        got = axis_reads(size, out, window, stride, ld, rd, low)
        assert {r.tap: set(range(r.out_start, r.out_stop, r.out_step)) for r in got} == want
        for r in got:
            assert [(y * stride + r.tap * rd - low) // ld for y in range(r.out_start, r.out_stop, r.out_step)] == \
                list(range(r.in_start, r.in_stop, r.in_step))
        reach = axis_reach(size, out, window, stride, ld, rd, low)
        if not want:
            assert reach is None
            continue
        assert reach is not None
        live = set().union(*want.values())
        assert reach.taps == (min(want), max(want) + 1)
        assert reach.outputs == (min(live), max(live) + 1)
        if ld == 1:
            assert reach.dead == tuple(y - min(live) for y in range(min(live), max(live) + 1) if y not in live)


def test_the_problem_of_a_grouped_spec() -> None:
    spec = conv_spec((6, 4, 9), (10, 4, 3), "float32", "float32", (2,), [(1, -1)], lhs_dilation=(2,),
                     batch_group_count=2)
    p = problem(spec)
    assert (p.batch, p.groups, p.cg, p.og, p.sizes, p.window, p.low) == (3, 2, 4, 5, (9,), (3,), (1,))
    assert p.out == spec.out_spatial and spec.groups == 2
    assert stuffed_problem(spec).sizes == (17,)
