"""JAX's results for many test cases at once, for the tests that check the
reference and polyconv against ``jax.lax`` (test_reference_vs_jax.py,
test_reference_ops_vs_jax.py, test_vjp_numpy.py, test_jax_backend.py), and
the case parameters as ``jax.lax`` takes them (:func:`lax_kwargs`).

XLA compiling the cases is most of those files' time.  The cases are jitted
(op by op, JAX would compile every primitive of an op separately),
:data:`CHUNK` of them to one function (XLA's fixed cost per compilation is
most of a small case's time: 2.5x faster than a function per case), on a few
threads (XLA releases the GIL while it compiles), with LLVM's optimisations
off: the same HLO and the same semantics, three times faster to compile
(results differ from the optimised build by a few ulps of summation order,
far inside the tolerances).

XLA's algebraic simplifier is off too: in JAX 0.10 it aborts the process (a
failed CHECK, "Window dimensions do not match RHS shape") when it folds a
kernel reversal into some convolutions in unusual layouts, for example::

    conv_transpose(lhs (6, 1, 2, 1), rhs (4, 2, 1, 2), strides (3, 2),
                   padding ((2, 1), (1, 1)), dimension_numbers
                   ConvDimensionNumbers((3, 1, 2, 0), (2, 1, 0, 3), (0, 3, 2, 1)),
                   transpose_kernel=True, use_consistent_padding=True)

or the lhs gradient of lhs (1, 4, 4, 4) 'CHNW', rhs (2, 4, 1, 3) 'WOIH', out
'HNCW', strides (2, 2), padding ((1, 1), (-3, 0)), lhs_dilation (1, 2),
batch_group_count=2.  Unsimplified, both compile and agree with the reference
(test_jax_backend.py::test_cases_that_crash_xla_algsimp).

Import it after ``pytest.importorskip("jax")``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
import pytest

from polyconv.spec import ConvDimensionNumbers

COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_disable_hlo_passes": "algsimp"}
CHUNK = 32  # cases per compiled function
_WORKERS = max(1, min(4, os.cpu_count() or 1))


def lax_kwargs(kw: dict) -> dict:
    """``kw`` for ``jax.lax``: polyconv's index-tuple dimension numbers as JAX's
    class (JAX takes no plain tuples)."""
    if isinstance(kw.get("dimension_numbers"), ConvDimensionNumbers):
        kw = {**kw, "dimension_numbers": jax.lax.ConvDimensionNumbers(*kw["dimension_numbers"])}
    return kw


def jit(fun):
    """``jax.jit(fun)`` with :data:`COMPILER_OPTIONS`."""
    return jax.jit(fun, compiler_options=COMPILER_OPTIONS)


def results(call, case_list) -> list:
    """JAX's result of every case (NumPy arrays), or the exception it raised.

    ``call(case)`` is ``(function, operands)``.  A chunk whose function raises
    is computed again case by case, so that each case gets its own exception.
    """

    def one(case):
        try:
            fun, operands = call(case)
            return jax.tree_util.tree_map(np.asarray, jit(fun)(*operands))
        except Exception as e:  # noqa: BLE001 - re-raised by the case's own check
            return e

    def chunk(part):
        try:
            calls = [call(case) for case in part]
            outs = jit(lambda args: [fun(*a) for (fun, _), a in zip(calls, args)])([a for _, a in calls])
            return [jax.tree_util.tree_map(np.asarray, out) for out in outs]
        except Exception:  # noqa: BLE001 - found again, case by case
            return [one(case) for case in part]

    with ThreadPoolExecutor(_WORKERS) as pool:
        parts = pool.map(chunk, [case_list[i:i + CHUNK] for i in range(0, len(case_list), CHUNK)])
        return [got for part in parts for got in part]


def result(value):
    """``value``, or the exception :func:`results` gave for it, raised."""
    if isinstance(value, Exception):
        raise value
    return value


def prefetch(request: pytest.FixtureRequest, test_name: str, call) -> dict:
    """:func:`results` for the cases (by name) of the selected ``test_name``
    items of the requesting module, computed together.  Under pytest-xdist
    every worker would compute them for the whole list: mark the module's
    tests with one ``xdist_group``."""
    selected = [
        item.callspec.params["case"] for item in request.session.items
        if getattr(item, "originalname", None) == test_name and getattr(item, "module", None) is request.module
    ]
    return dict(zip((c.name for c in selected), results(call, selected)))
