"""Self-contained Python snippets that reproduce one conformance case.

Every failure the suite reports carries one: the case as plain data (its
operands are drawn from its seed, signed values), the exact polyconv call on
the backend's arrays (inside the harness's session, as in the suite: JAX's
64-bit types, the dask backend's random chunks; under the backend's ``jit``
or through its ``vjp`` when that is what failed), the reference's result, and both printed with their
dtypes (the reference's cast to the dtype the result must have: integers
wrapped), then the suite's verdict: the worst error beside the allowed one,
and, where JAX is installed, the same call's value on ``jax.lax``.  Pasting it
into a Python prompt where polyconv and the backend are installed shows the
failure without the test suite.

Examples
--------
>>> from polyconv.conformance import cases
>>> case = cases.ConvCase("tiny", (1, 1, 4), (1, 1, 2), (1,), "VALID", seed=3)
>>> print(snippet("conv", "numpy", case))  # doctest: +ELLIPSIS
import numpy as np
import polyconv
from polyconv.conformance import cases, checks, reference
from polyconv.conformance.harness import harness_for
from polyconv.registry import registry
from polyconv.spec import ConvDimensionNumbers, conv_spec
<BLANKLINE>
np.set_printoptions(precision=17, threshold=200)
be = registry.load('numpy')
harness = harness_for(be)  # what the suite switches on, the framework's compiler and autodiff
session = harness.session()  # JAX: 64-bit types; dask: the suite's random chunks
session.__enter__()
case = cases.ConvCase(name='tiny', lhs_shape=(1, 1, 4), ...)
operands = case.operands()  # NumPy arrays, drawn from the case's seed
args = [be.from_numpy(a, None) for a in operands]
kw = case.kwargs()
...
"""

from __future__ import annotations

from typing import Any

__all__ = ["snippet", "KINDS"]

# kind -> (the polyconv call on ``args``, the reference's expected value on ``operands``)
_CALLS = {
    "conv": ("polyconv.conv_general_dilated(*args, **kw, backend={be!r})",
             "reference.conv_general_dilated(*operands, **kw)"),
    "transpose": ("polyconv.conv_transpose(*args, **kw, backend={be!r})",
                  "reference.conv_transpose(*operands, **kw)"),
    "patches": ("polyconv.conv_general_dilated_patches(*args, **kw, backend={be!r})",
                "reference.conv_general_dilated_patches(*operands, **kw)"),
    "local": ("polyconv.conv_general_dilated_local(*args, **kw, backend={be!r})",
              "reference.conv_general_dilated_local(*operands, **kw)"),
    "vjp": ("polyconv.conv_general_dilated_vjp(*args, **kw, backend={be!r})",
            "reference.conv_general_dilated_vjp(*operands, **kw)"),
}
#: The kinds of case a snippet can reproduce: the ops, and ``'autodiff'`` (the
#: backend's own autodiff of ``conv_general_dilated``).
KINDS = (*_CALLS, "autodiff")


def _compiled(thorough: bool) -> str:
    return "harness.jit(call, thorough=True)" if thorough else "harness.jit(call)"


#: The seed step between the operands of the same-shape calls of the result-lifetime and
#: concurrency checks (call ``k`` draws its operands from the case's seed plus ``k`` steps).
SEED_STEP = 7919


_LAX_CALLS = {
    "conv": "jax.lax.conv_general_dilated(*operands, **lax_kw)",
    "transpose": "jax.lax.conv_transpose(*operands, **lax_kw)",
    "patches": "jax.lax.conv_general_dilated_patches(*operands, **lax_kw)",
    "local": "jax.lax.conv_general_dilated_local(*operands, **lax_kw)",
    "vjp": "jax.vjp(lambda x, w: jax.lax.conv_general_dilated(x, w, **lax_kw), *operands[:2])[1](operands[2])",
}


def _other_operands(kind: str, count: int) -> list[str]:
    """Lines making ``others``: ``count`` checks of the case's shapes on other operands
    (the seeds the suite's result-lifetime and concurrency checks use)."""
    build = f"checks.BUILDERS[{kind!r}](be, dataclasses.replace(case, seed=case.seed + {SEED_STEP} * k))"
    return ["import dataclasses",
            f"others = [{build}",
            f"          for k in range(1, {count + 1})]  # the same shapes, other operands"]


def _lax_lines(kind: str) -> list[str]:
    """The same call on ``jax.lax``, printed for comparison where JAX is installed."""
    call = _LAX_CALLS["vjp" if kind == "autodiff" else kind]
    return [
        "# the same call on jax.lax, for comparison, where JAX is installed (64-bit types on)",
        "from polyconv.conformance.plugin import disable_xla_algsimp",
        "disable_xla_algsimp()  # as the suite runs JAX: XLA's simplifier crashes on a few valid cases",
        "try:",
        "    import jax",
        "except ImportError:",
        "    jax = None",
        "if jax is not None:",
        "    jax.config.update('jax_enable_x64', True)",
        "    lax_kw = dict(kw)",
        "    if isinstance(lax_kw.get('dimension_numbers'), ConvDimensionNumbers):",
        "        lax_kw['dimension_numbers'] = jax.lax.ConvDimensionNumbers(*lax_kw['dimension_numbers'])",
        "    try:",
        f"        lax_result = {call}",
        "    except Exception as exc:",
        "        print('jax.lax raised', type(exc).__name__, exc)",
        "    else:",
        "        for r in (lax_result if isinstance(lax_result, (tuple, list)) else (lax_result,)):",
        "            print('jax.lax:', np.asarray(r).dtype, repr(np.asarray(r)), sep='\\n')",
    ]


def snippet(kind: str, backend: str, case: Any, device: str | None = None, jit: bool = False,
            cotangent_seed: int | None = None, strided: bool | str = False, thorough: bool = False,
            later: int = 0, threads: int = 0) -> str:
    """The Python source that reruns ``case`` of ``kind`` on ``backend`` and
    prints the received and expected values.

    ``jit``: call through the harness's ``jit`` (its long-tier compiler when
    ``thorough``).  ``strided``: the operands
    are views (strided: every other element of a longer last axis; or
    ``'readonly'``, ``'broadcast'``: :func:`.checks.make_array`).
    ``cotangent_seed``: for
    ``'vjp'`` and ``'autodiff'``, the seed the output cotangent is drawn from
    (the suite uses the case's seed plus 5).  ``later``: that many calls of
    the same shapes on other operands follow while the result is kept (the
    result-lifetime check).  ``threads``: the call runs on that many threads at
    once, each on its own operands (the concurrency check; a race may need a
    few runs to show).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    lines = [
        "import numpy as np",
        "import polyconv",
        "from polyconv.conformance import cases, checks, reference",
        "from polyconv.conformance.harness import harness_for",
        "from polyconv.registry import registry",
        "from polyconv.spec import ConvDimensionNumbers, conv_spec",
        "",
        "np.set_printoptions(precision=17, threshold=200)",
        f"be = registry.load({backend!r})",
        "harness = harness_for(be)  # what the suite switches on, the framework's compiler and autodiff",
        "session = harness.session()  # JAX: 64-bit types; dask: the suite's random chunks",
        "session.__enter__()",
        f"case = cases.{case!r}",
        "operands = case.operands()  # NumPy arrays, drawn from the case's seed",
    ]
    if kind in ("vjp", "autodiff"):
        seed = case.seed + 5 if cotangent_seed is None else cotangent_seed
        lines += [
            "lhs, rhs = operands",
            "spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **case.kwargs())",
            f"cotangent = cases.make_operand(np.random.default_rng({seed}), spec.out_shape, spec.out_dtype)",
            "operands = (*operands, cotangent)",
        ]
    if strided is True or strided == "strided":
        lines.append(f"args = [be.from_numpy(np.repeat(a, 2, axis=-1), {device!r})[..., ::2] if a.ndim else "
                     f"be.from_numpy(a, {device!r}) for a in operands]  # strided views")
    elif strided:
        lines += ["from polyconv.conformance.checks import make_array",
                  f"args = [make_array(be, a, {device!r}, {strided!r}) for a in operands]  # {strided} views"]
    else:
        lines.append(f"args = [be.from_numpy(a, {device!r}) for a in operands]")
    lines += [
        "kw = case.kwargs()",
    ]
    if kind == "autodiff":
        lines += [
            f"f = lambda x, w: polyconv.conv_general_dilated(x, w, **kw, backend={backend!r})",
            "call = lambda x, w, ct: harness.vjp(f, (x, w), ct)",
        ]
        expected = "reference.conv_general_dilated_vjp(*operands, **kw)"
    else:
        call, expected = _CALLS[kind]
        lines.append(f"call = lambda *args: {call.format(be=backend)}")
    if threads:
        lines += [*_other_operands(kind, threads - 1), "import threading",
                  f"every_args = [args] + [[be.from_numpy(a, {device!r}) for a in o.operands] for o in others]",
                  f"barrier, firsts = threading.Barrier({threads}), [None] * {threads}",
                  "def work(i):",
                  "    barrier.wait()",
                  "    for round in range(2):",
                  "        r = call(*every_args[i])",
                  "        harness.materialize(list(r) if isinstance(r, (tuple, list)) else [r])",
                  "        firsts[i] = r if round == 0 else firsts[i]",
                  "",
                  f"workers = [threading.Thread(target=work, args=(i,)) for i in range({threads})]",
                  "[t.start() for t in workers]",
                  "[t.join() for t in workers]",
                  "result = firsts[0]  # the first result of the thread that ran this case"]
    else:
        lines.append(f"result = {_compiled(thorough) if jit else 'call'}(*args)")
    if later:
        lines += [*_other_operands(kind, later),
                  "for o in others:  # later calls while the result is kept",
                  f"    call(*[be.from_numpy(a, {device!r}) for a in o.operands])"]
    lines += [
        "results = [be.to_numpy(r) for r in (result if isinstance(result, (tuple, list)) else (result,))]",
        f"expected = {expected}",
        "expected = expected if isinstance(expected, tuple) else (expected,)",
        f"check = checks.BUILDERS[{kind!r}](be, case)  # the suite's judge, and the dtypes it expects",
        "for got, want, (_, dtype) in zip(results, expected, check.expected):",
        "    print('received:', got.dtype, repr(got), sep='\\n')",
        "    print('expected (the reference, in ' + dtype + '):', reference.cast_result(want, dtype).dtype,",
        "          repr(reference.cast_result(want, dtype)), sep='\\n')",
    ]
    if kind not in ("vjp", "autodiff") or cotangent_seed is None:  # the judge draws the suite's cotangent
        lines.append("print('verdict:', check.judge(results, checks.leeway(be, be.device(result if not "
                     "isinstance(result, (tuple, list)) else result[0]))) or 'within tolerance')")
    lines.append("session.__exit__(None, None, None)")
    lines += _lax_lines(kind)
    return "\n".join(lines)
