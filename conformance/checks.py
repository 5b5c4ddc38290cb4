"""One backend, one case: run it and judge it against the reference.

Each ``check_*`` function takes a loaded backend and a plain-data case from
:mod:`.cases`, makes the case's operands with :meth:`Backend.from_numpy`
(optionally on a device), calls the public polyconv function with
``backend=`` the backend's name, and returns an :class:`Outcome`:

* ``pass``: the result is an array the backend owns, on the operands'
  device, of the spec's shape and dtype, sharing no memory with an operand,
  its values match the reference within :mod:`.tolerances`, and the
  operands are unchanged;
* ``unsupported``: the backend's manifest excludes the case (a dtype or
  feature it does not declare) *and* the call raised the polyconv error the
  manifest promises, before computing anything;
* ``fail``: anything else, with a description.

A declared feature that fails is a failure: the manifest decides what may be
unsupported, not the backend's behaviour.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

import polyconv
from polyconv.backend import Backend
from polyconv.errors import UnsupportedDtypeError, UnsupportedFeatureError
from polyconv.spec import (
    conv_spec,
    conv_transpose_spec,
    dtype_kind,
    dtype_name,
    local_spec,
    patches_spec,
    vjp_lhs_plan,
    vjp_rhs_plan,
)

from . import reference, tolerances
from .cases import ConvCase, LocalCase, PatchesCase, TransposeCase, make_operand
from .harness import harness_for
from .reproduce import snippet

__all__ = [
    "Outcome", "Check", "VIEWS", "make_array", "run", "run_batched", "run_repeated", "run_kept", "run_threads",
    "vjp_dtype", "leeway",
    "BUILDERS",
    "conv_check", "transpose_check", "patches_check", "local_check", "vjp_check", "autodiff_check",
    "check_conv", "check_transpose", "check_patches", "check_local", "check_vjp",
]

_UNSUPPORTED = (UnsupportedDtypeError, UnsupportedFeatureError)


@dataclass(frozen=True)
class Outcome:
    """The verdict on one case: ``status`` is ``'pass'``, ``'fail'`` or
    ``'unsupported'``; ``detail`` says why (the mismatch, the error)."""

    status: str
    detail: str = ""
    snippet: str = ""  # for a failure: Python source that reproduces it (see :mod:`.reproduce`)

    def __bool__(self) -> bool:
        return self.status != "fail"

    def report(self) -> str:
        """The detail, and for a failure the snippet that reproduces it."""
        if self.status != "fail" or not self.snippet:
            return self.detail
        return f"{self.detail}\n\nTo reproduce:\n\n{self.snippet}\n"


def leeway(be: Backend, device: str) -> tolerances.Leeway:
    """The rounding ``be``'s manifest allows on ``device``: ``reduced_precision``
    rounds float32 inputs and sums half in half off the CPU only;
    ``half_accumulation`` sums half in half on every device."""
    features = be.manifest.features
    reduced = "reduced_precision" in features and not device.startswith("cpu")
    return tolerances.Leeway(rounded_inputs=reduced, half_sums=reduced or "half_accumulation" in features)


@dataclass(frozen=True)
class Check:
    """One prepared case: NumPy operands, the polyconv call on the backend's
    arrays, the manifest's verdict, the expected ``(shape, dtype)`` of each
    result, and the judge of their values (NumPy results, the manifest's leeway)."""

    operands: tuple[np.ndarray, ...]
    call: Callable[..., Any]
    manifest_check: Callable[[], None]
    expected: tuple[tuple[tuple[int, ...], str], ...]
    judge: Callable[[list[np.ndarray], tolerances.Leeway], str | None]
    kind: str = "conv"  # what :func:`.reproduce.snippet` reruns
    case: Any = None
    backend: str = ""
    expect: Callable[[], Sequence[np.ndarray]] | None = None  # the reference's results, for failure messages

    def promised(self) -> BaseException | None:
        """The polyconv error the manifest promises for this case, or None."""
        try:
            self.manifest_check()
        except _UNSUPPORTED as exc:
            return exc
        return None


def run(be: Backend, check: Check, device: str | None = None, strided: bool | str = False) -> Outcome:
    """Run one prepared case eagerly and judge it.  ``strided``: the operands are
    views (:func:`make_array`: strided, read-only or broadcast)."""
    return _with_snippet(_run(be, check, device, strided), check, device, jit=False, strided=strided)


def _with_snippet(outcome: Outcome, check: Check, device: str | None, jit: bool, strided: bool | str = False,
                  thorough: bool = False, later: int = 0, threads: int = 0) -> Outcome:
    if outcome.status != "fail" or check.case is None:
        return outcome
    return replace(outcome, snippet=snippet(check.kind, check.backend, check.case, device, jit, strided=strided,
                                            thorough=thorough, later=later, threads=threads))


#: The operand views :func:`make_array` makes besides plain arrays (``strided=`` of the runners).
VIEWS = ("strided", "readonly", "broadcast", "flipped")


def make_array(be: Backend, a: np.ndarray, device: str | None, strided: bool | str = False) -> Any:
    """``a`` as an array of ``be``, or a view of one (0-d arrays stay whole):

    ``True`` or ``'strided'``
        taking every other element of the last axis of an array twice as long;
    ``'readonly'``
        the array made read-only, where the framework has the notion
        (NumPy's ``setflags``), else plain;
    ``'broadcast'``
        a stride-0 broadcast (``broadcast_to`` of the array's namespace) of
        its first slice along the first axis ``a`` is constant on (the
        ``'broadcast'`` value pattern of :func:`.cases.make_operand` makes
        such operands); plain if there is none;
    ``'flipped'``
        the array's every axis reversed, then reversed back by the array
        namespace's ``flip``: the same values, read through negative strides
        where the framework's ``flip`` makes views (NumPy, CuPy, dask's
        chunks; torch and JAX copy).
    """
    view = "strided" if strided is True else strided
    if not view or a.ndim == 0:
        return be.from_numpy(a, device)
    if view == "strided":
        return be.from_numpy(np.repeat(a, 2, axis=-1), device)[..., ::2]
    if view == "readonly":
        x = be.from_numpy(a, device)
        if hasattr(x, "setflags"):
            x.setflags(write=False)
        return x
    if view == "flipped":
        import array_api_compat

        backwards = be.from_numpy(np.ascontiguousarray(np.flip(a)), device)
        return array_api_compat.array_namespace(backwards).flip(backwards)
    if view != "broadcast":
        raise ValueError(f"strided must be a bool or one of {VIEWS}; got {strided!r}")
    for axis in range(a.ndim if a.size else 0):
        first = a.take([0], axis=axis)
        if a.shape[axis] > 1 and np.array_equal(a, np.broadcast_to(first, a.shape), equal_nan=True):
            import array_api_compat

            small = be.from_numpy(first, device)
            return array_api_compat.array_namespace(small).broadcast_to(small, a.shape)
    return be.from_numpy(a, device)


def _raised(exc: BaseException) -> str:
    """The exception as one line: its type and message."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _run(be: Backend, check: Check, device: str | None = None, strided: bool | str = False) -> Outcome:
    promised = check.promised()
    if strided:
        try:
            make_array(be, np.zeros((2, 2)), device, strided)
        except TypeError as exc:
            return Outcome("unsupported", f"the backend's arrays have no such views ({strided!r}: {exc})")
    try:
        arrays = [make_array(be, a, device, strided) for a in check.operands]
    except UnsupportedDtypeError as exc:  # the framework cannot even hold these operands
        if isinstance(promised, UnsupportedDtypeError):
            return Outcome("unsupported", f"{promised} (from_numpy: {exc})")
        return Outcome("fail", f"from_numpy raised {exc}, but the manifest declares the case supported")
    try:
        result = check.call(*arrays)
    except Exception as exc:
        if promised is not None and type(exc) is type(promised) and str(exc) == str(promised):
            return Outcome("unsupported", str(exc))
        if promised is not None:
            return Outcome(
                "fail", f"the manifest excludes this case ({promised}), but the call raised "
                f"{type(exc).__name__}: {exc}",
            )
        return Outcome("fail", f"raised {_raised(exc)}")
    if promised is not None:
        return Outcome("fail", f"the manifest excludes this case ({promised}), but the call returned a result")
    return _verify(be, check, arrays, result)


def run_repeated(be: Backend, first: Check, second: Check, device: str | None = None) -> Outcome:
    """State across calls: call ``first`` twice on the same arrays (the results
    must be bit-identical), then write ``second``'s operands (same shapes and
    dtypes, other values) into those arrays in place
    (:meth:`~.harness.Harness.overwrite`; fresh arrays where the framework's
    are immutable) and call again: the result must be ``second``'s.  A backend
    that caches a packed kernel, or anything else, per array object fails."""
    if first.promised() is not None:
        return run(be, first, device)
    outcome, failed = _repeated(be, first, second, device)
    return _with_snippet(outcome, failed, device, jit=False)


def _repeated(be: Backend, first: Check, second: Check, device: str | None) -> tuple[Outcome, Check]:
    """The outcome, and the check whose call it judges (for the reproducer)."""
    try:
        arrays = [make_array(be, a, device) for a in first.operands]
        once = [be.to_numpy(r) for r in _results(first.call(*arrays), len(first.expected))]
        twice = [be.to_numpy(r) for r in _results(first.call(*arrays), len(first.expected))]
    except Exception as exc:
        return Outcome("fail", f"the first call raised {_raised(exc)}"), first
    for i, (a, b) in enumerate(zip(once, twice)):
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
            return Outcome("fail", f"two calls on the same arrays differ: result {i} was {_brief(a)}, then "
                           f"{_brief(b)} (repeated calls must be bit-identical)"), first
    changed = [make_array(be, a, device) for a in second.operands]
    harness = harness_for(be)
    if all(harness.overwrite(x, new) for x, new in zip(arrays, changed)):
        changed = arrays
    try:
        result = second.call(*changed)
    except Exception as exc:
        return Outcome("fail", f"the call after the operands changed raised {_raised(exc)}"), second
    outcome = _verify(be, second, changed, result)
    if outcome:
        return outcome, second
    return replace(outcome, detail="after its operands were changed in place, the call gave: " + outcome.detail), second


def _results(result: Any, count: int) -> list[Any]:
    return list(result) if count > 1 and isinstance(result, (tuple, list)) else [result]


def run_kept(be: Backend, calls: Sequence[Check], device: str | None = None) -> Outcome:
    """Result lifetime: make every call of ``calls`` (the same shapes and
    dtypes, other operand values) in turn, keeping each result as the caller
    got it, and judge them all after the last call.  A backend that hands out
    one buffer per shape (an allocator pool, a cached output) and overwrites
    it at the next call fails: a caller's result must stay what it was."""
    first = calls[0]
    if first.promised() is not None:
        return run(be, first, device)
    kept = []
    for check in calls:
        arrays = [make_array(be, a, device) for a in check.operands]
        try:
            kept.append((check, arrays, check.call(*arrays)))
        except Exception as exc:
            return _with_snippet(Outcome("fail", f"raised {_raised(exc)}"), check, device, jit=False)
    for i, (check, arrays, result) in enumerate(kept):
        outcome = _verify(be, check, arrays, result)
        if not outcome:
            later = len(kept) - 1 - i
            detail = (f"the result of call {i + 1} of {len(kept)} (same shapes, other operands), judged after "
                      f"{later} later call{'s' if later != 1 else ''}: {outcome.detail}")
            return _with_snippet(replace(outcome, detail=detail), check, device, jit=False, later=later)
    return Outcome("pass")


def run_threads(be: Backend, calls: Sequence[Check], device: str | None = None, rounds: int = 2) -> Outcome:
    """Concurrency: each call of ``calls`` (the same shapes, other operand
    values) runs on a thread of its own, all started together, ``rounds``
    times each (results computed in the thread: :meth:`~.harness.Harness.materialize`);
    each thread's first result is judged against the reference, and its later
    ones must equal it bit for bit.  A backend with scratch
    state shared between calls fails, unless its manifest declares it not
    thread-safe (``Manifest.thread_safe``: the item is then unsupported)."""
    import threading

    first = calls[0]
    if first.promised() is not None:
        return run(be, first, device)
    if not be.manifest.thread_safe:
        return Outcome("unsupported", f"the {be.name!r} backend's manifest declares it not thread-safe")
    harness = harness_for(be)
    operands = [[make_array(be, a, device) for a in check.operands] for check in calls]
    start = threading.Barrier(len(calls))
    got: list[list[Any]] = [[] for _ in calls]
    errors: list[str] = []

    def work(i: int) -> None:
        try:
            start.wait(timeout=60)
            for _ in range(rounds):
                result = calls[i].call(*operands[i])
                harness.materialize(_results(result, len(calls[i].expected)))
                got[i].append(result)
        except Exception as exc:
            errors.append(f"thread {i} raised {_raised(exc)}")

    threads = [threading.Thread(target=work, args=(i,), name=f"polyconv-conformance-{i}") for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        return Outcome("fail", f"with {len(calls)} threads calling at once: {errors[0]}")
    at_once = f"with {len(calls)} threads calling at once (same shapes, other operands), "
    for i, (check, results) in enumerate(zip(calls, got)):
        outcome = _verify(be, check, operands[i], results[0])
        if outcome:  # the thread's later calls, on the same operands, must give the same values
            once = [be.to_numpy(r) for r in harness.materialize(_results(results[0], len(check.expected)))]
            for k, result in enumerate(results[1:], 2):
                again = [be.to_numpy(r) for r in harness.materialize(_results(result, len(check.expected)))]
                if not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(once, again)):
                    outcome = Outcome("fail", f"thread {i}'s call {k} differs from its first on the same operands: "
                                      f"{_brief(once[0])}, then {_brief(again[0])}")
                    break
        if not outcome:
            detail = at_once + f"thread {i}: {outcome.detail}"
            return _with_snippet(replace(outcome, detail=detail), check, device, jit=False, threads=len(calls))
    return Outcome("pass")


def run_batched(
    be: Backend, checks: Sequence[Check], transform: Callable[[Callable[..., Any]], Callable[..., Any]],
    device: str | None = None, strided: bool | str = False, thorough: bool = False,
) -> list[Outcome]:
    """Run many prepared cases as one function, wrapped by ``transform``
    (``jax.jit``: one compilation for the whole batch), and judge each
    (``strided``: on strided views, see :func:`run`; ``thorough``: ``transform``
    is the harness's ``jit`` of the long tier, which a reproducer then calls).

    Cases the manifest excludes run eagerly (they must raise).  If the batch
    as a whole fails, every case runs eagerly, so the failure is pinned on
    its case.
    """
    outcomes: list[Outcome | None] = [None] * len(checks)
    live = []
    for i, check in enumerate(checks):
        if check.promised() is not None:
            outcomes[i] = run(be, check, device, strided)
        else:
            live.append(i)
    try:
        arrays = [[make_array(be, a, device, strided) for a in checks[i].operands] for i in live]

        def everything(*groups: Any) -> list[Any]:
            return [checks[i].call(*group) for i, group in zip(live, groups)]

        results = transform(everything)(*arrays)
    except Exception:
        return [o if o is not None else run(be, c, device, strided) for o, c in zip(outcomes, checks)]
    for i, group, result in zip(live, arrays, results):
        outcome = _verify(be, checks[i], group, result)
        if not outcome:  # the eager call shows whether only the compiled one is wrong
            eager = _run(be, checks[i], device, strided)
            jit_only = bool(eager)
            outcome = replace(outcome if jit_only else eager,
                              detail=("under jit only (the eager call passes): " if jit_only else "")
                              + (outcome if jit_only else eager).detail)
            outcome = _with_snippet(outcome, checks[i], device, jit=jit_only, strided=strided, thorough=thorough)
        outcomes[i] = outcome
    return [o for o in outcomes if o is not None]


def _verify(be: Backend, check: Check, arrays: Sequence[Any], result: Any) -> Outcome:
    results = _results(result, len(check.expected))
    if len(results) != len(check.expected):
        return Outcome("fail", f"returned {len(results)} results, expected {len(check.expected)}")
    harness = harness_for(be)
    computed = harness.materialize([*arrays, *results])  # once, together (dask: one graph)
    operands, outs = computed[:len(arrays)], computed[len(arrays):]
    for name, before, after in zip(("lhs", "rhs", "cotangent"), check.operands, operands):
        if not np.array_equal(be.to_numpy(after), before, equal_nan=True):
            return Outcome("fail", f"the call modified its {name} operand")
    device_in = be.device(arrays[0])
    for i, (out, (shape, dtype)) in enumerate(zip(results, check.expected)):
        what = f"result {i}" if len(results) > 1 else "result"
        if not be.accepts(out):  # owns, or for a fallback backend: takes
            return Outcome("fail", f"{what} is a {type(out).__module__}.{type(out).__qualname__}, "
                           f"not an array of the {be.name!r} backend")
        if be.device(out) != device_in:
            return Outcome("fail", f"{what} is on device {be.device(out)!r}, the operands on {device_in!r}")
        if tuple(out.shape) != tuple(shape):
            return Outcome("fail", f"{what} has shape {tuple(out.shape)}, expected {tuple(shape)}")
        if dtype_name(out.dtype) != dtype:
            return Outcome("fail", f"{what} has dtype {dtype_name(out.dtype)}, expected {dtype}")
        for name, operand in zip(("lhs", "rhs", "cotangent"), operands):
            if harness.shares_memory(outs[i], operand):
                return Outcome("fail", f"{what} shares memory with the {name} operand (a view, not a new array)")
    received = [be.to_numpy(r) for r in outs]
    problem = check.judge(received, leeway(be, device_in))
    if not problem:
        return Outcome("pass")
    if check.expect is not None:
        expected = check.expect()
        for i, (got, want) in enumerate(zip(received, expected)):
            what = f"result {i}" if len(received) > 1 else "result"
            problem += f"\nreceived {what}: {_brief(got)}\nexpected {what}: {_brief(want)}"
    return Outcome("fail", problem)


def _brief(a: np.ndarray) -> str:
    """A few values of ``a``, on one line."""
    return np.array2string(np.asarray(a), threshold=12, edgeitems=3, precision=6, max_line_width=10**6).replace(
        "\n", "")


def conv_check(be: Backend, case: ConvCase) -> Check:
    """``conv_general_dilated`` on ``case``."""
    lhs, rhs = case.operands()
    kw = case.kwargs()
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **kw)
    return Check(
        (lhs, rhs), lambda x, w: polyconv.conv_general_dilated(x, w, **kw, backend=be.name),
        lambda: be.manifest.check(spec, be.name, "conv_general_dilated"),
        ((spec.out_shape, spec.out_dtype),),
        lambda out, reduced: tolerances.check_close(out[0], lhs, rhs, spec, reduced),
        "conv", case, be.name, lambda: [reference.conv_from_spec(lhs, rhs, spec)],
    )


def transpose_check(be: Backend, case: TransposeCase) -> Check:
    """``conv_transpose`` on ``case``."""
    lhs, rhs = case.operands()
    kw = case.kwargs()
    spec = conv_transpose_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **kw)
    return Check(
        (lhs, rhs), lambda x, w: polyconv.conv_transpose(x, w, **kw, backend=be.name),
        lambda: be.manifest.check(spec.conv, be.name, "conv_transpose"),
        ((spec.conv.out_shape, spec.conv.out_dtype),),
        lambda out, reduced: tolerances.check_transpose_close(out[0], lhs, rhs, spec, reduced),
        "transpose", case, be.name, lambda: [reference.transpose_from_spec(lhs, rhs, spec)],
    )


def patches_check(be: Backend, case: PatchesCase) -> Check:
    """``conv_general_dilated_patches`` on ``case``."""
    (lhs,) = case.operands()
    kw = case.kwargs()
    spec = patches_spec(lhs.shape, lhs.dtype, **kw)
    return Check(
        (lhs,), lambda x: polyconv.conv_general_dilated_patches(x, **kw, backend=be.name),
        lambda: be.manifest.check(spec.conv, be.name, "conv_general_dilated_patches"),
        ((spec.conv.out_shape, spec.conv.out_dtype),),
        lambda out, reduced: tolerances.check_patches_close(out[0], lhs, spec, reduced),
        "patches", case, be.name, lambda: [reference.patches_from_spec(lhs, spec)],
    )


def local_check(be: Backend, case: LocalCase) -> Check:
    """``conv_general_dilated_local`` on ``case``."""
    lhs, rhs = case.operands()
    kw = case.kwargs()
    spec = local_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **kw)
    return Check(
        (lhs, rhs), lambda x, w: polyconv.conv_general_dilated_local(x, w, **kw, backend=be.name),
        lambda: be.manifest.check(spec.patches.conv, be.name, "conv_general_dilated_local"),
        ((spec.out_shape, spec.patches.conv.dtype),),
        lambda out, reduced: tolerances.check_local_close(out[0], lhs, rhs, spec, reduced),
        "local", case, be.name, lambda: [reference.local_from_spec(lhs, rhs, spec)],
    )


def vjp_dtype(case: ConvCase) -> str:
    """The dtype of both cotangents: the operands', except that integer and
    bool operands with a floating output keep the floating dtype."""
    spec = conv_spec(case.lhs_shape, case.rhs_shape, case.dtype, case.dtype, **case.kwargs())
    if dtype_kind(spec.dtype) in "biu" and dtype_kind(spec.out_dtype) in "fc":
        return spec.out_dtype
    return spec.dtype


def vjp_check(be: Backend, case: ConvCase) -> Check:
    """``conv_general_dilated_vjp`` on ``case``, with a seeded random cotangent."""
    lhs, rhs = case.operands()
    kw = case.kwargs()
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **kw)
    g = make_operand(np.random.default_rng(case.seed + 5), spec.out_shape, spec.out_dtype)
    dtype = vjp_dtype(case)

    def manifest_check() -> None:
        be.manifest.check(spec, be.name, "conv_general_dilated_vjp")
        if "conv_general_dilated_vjp" not in be.manifest.ops:  # derived: two more convolutions
            for plan in (vjp_lhs_plan(spec).conv, vjp_rhs_plan(spec).conv):
                if plan is not None:
                    be.manifest.check(plan, be.name, "conv_general_dilated_vjp")

    def judge(out: list[np.ndarray], reduced: tolerances.Leeway) -> str | None:
        return tolerances.check_vjp_close(out[0], out[1], lhs, rhs, g, spec, reduced, out_dtype=dtype)

    return Check(
        (lhs, rhs, g), lambda x, w, ct: polyconv.conv_general_dilated_vjp(x, w, ct, **kw, backend=be.name),
        manifest_check, ((lhs.shape, dtype), (rhs.shape, dtype)), judge,
        "vjp", case, be.name, lambda: reference.vjp_from_spec(lhs, rhs, g, spec),
    )


def autodiff_check(be: Backend, case: ConvCase) -> Check:
    """The backend's own autodiff (:meth:`~.harness.Harness.vjp`) of ``conv_general_dilated``
    on ``case`` (real floating operands), against the reference VJP.  A backend
    that does not declare ``'autodiff'`` has it unsupported."""
    lhs, rhs = case.operands()
    kw = case.kwargs()
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **kw)
    g = make_operand(np.random.default_rng(case.seed + 5), spec.out_shape, spec.out_dtype)

    def manifest_check() -> None:
        if "autodiff" not in be.manifest.features:
            raise UnsupportedFeatureError(f"the {be.name!r} backend does not declare autodiff")
        be.manifest.check(spec, be.name, "conv_general_dilated")

    def forward(x: Any, w: Any) -> Any:
        return polyconv.conv_general_dilated(x, w, **kw, backend=be.name)

    def judge(out: list[np.ndarray], reduced: tolerances.Leeway) -> str | None:
        return tolerances.check_vjp_close(out[0], out[1], lhs, rhs, g, spec, reduced, out_dtype=spec.dtype)

    # autodiff gives each primal's cotangent in the primal's dtype (the output cotangent is in the output's)
    return Check(
        (lhs, rhs, g), lambda x, w, ct: harness_for(be).vjp(forward, (x, w), ct), manifest_check,
        ((lhs.shape, spec.dtype), (rhs.shape, spec.dtype)), judge,
        "autodiff", case, be.name, lambda: reference.vjp_from_spec(lhs, rhs, g, spec),
    )


def check_conv(be: Backend, case: ConvCase, device: str | None = None) -> Outcome:
    """Run :func:`conv_check` eagerly."""
    return run(be, conv_check(be, case), device)


def check_transpose(be: Backend, case: TransposeCase, device: str | None = None) -> Outcome:
    """Run :func:`transpose_check` eagerly."""
    return run(be, transpose_check(be, case), device)


def check_patches(be: Backend, case: PatchesCase, device: str | None = None) -> Outcome:
    """Run :func:`patches_check` eagerly."""
    return run(be, patches_check(be, case), device)


def check_local(be: Backend, case: LocalCase, device: str | None = None) -> Outcome:
    """Run :func:`local_check` eagerly."""
    return run(be, local_check(be, case), device)


def check_vjp(be: Backend, case: ConvCase, device: str | None = None) -> Outcome:
    """Run :func:`vjp_check` eagerly."""
    return run(be, vjp_check(be, case), device)


#: The check builder of each kind of case a reproducer reruns (:data:`.reproduce.KINDS`).
BUILDERS: dict[str, Callable[[Backend, Any], Check]] = {
    "conv": conv_check, "transpose": transpose_check, "patches": patches_check, "local": local_check,
    "vjp": vjp_check, "autodiff": autodiff_check,
}
