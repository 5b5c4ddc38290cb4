"""Which path runs each convolution, cuDNN or the gather-GEMM, and running it.

:class:`Paths` decides once per ``(spec, device)``: the gather-GEMM of
:mod:`polyconv.backends.gemm` when :func:`.cudnn_plan.why_not` gives a
reason or the cuDNN engine cannot be loaded, else the first
:func:`.cudnn_plan.cudnn_plans` candidate that the engine builds (the
others, and the gather-GEMM when none builds, are what is left when cuDNN
declines).  A cuDNN plan that fails to run moves its spec to the
gather-GEMM for good, with a warning on the ``polyconv`` logger; no cuDNN
error reaches the caller.

The engine is anything with ``build(plan, device) -> built`` (raising when
cuDNN cannot) and ``execute(built, x, w, y)`` (writing ``y``): the CuPy
backend passes :class:`.cudnn_graph.CudnnEngine`; tests pass a NumPy
implementation of cuDNN's documented semantics, so this logic and the
translation in :mod:`.cudnn_plan` and :mod:`.cudnn_operands` are checked
without a GPU.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from polyconv.algorithm import fft_mode
from polyconv.spec import ConvSpec

from .. import fft, gemm
from . import cudnn_operands
from .cudnn_plan import CudnnPlan, cudnn_plans, why_not

__all__ = ["Engine", "Path", "Paths"]

logger = logging.getLogger("polyconv")

#: Decisions kept per process before the oldest half is forgotten.
MAX_DECISIONS = 4096


def _compute(spec: ConvSpec) -> str:
    """The accumulation dtype of ``spec`` (the gather-GEMM's policy, which cuDNN's plans follow)."""
    return gemm.plan_dtypes(spec, spec.in_features // spec.feature_group_count * math.prod(spec.window)).compute


class Engine(Protocol):
    """What runs a :class:`~.cudnn_plan.CudnnPlan`."""

    def build(self, plan: CudnnPlan, device: Hashable) -> Any: ...

    def execute(self, built: Any, x: Any, w: Any, y: Any) -> None: ...


@dataclass(frozen=True)
class Path:
    """The decision for one ``(spec, device)``.

    ``name`` is ``'cudnn'`` or ``'gemm'``; ``reason`` says which cuDNN node,
    or why not cuDNN; ``plan`` and ``built`` are set for ``'cudnn'``.
    """

    name: str
    reason: str
    plan: CudnnPlan | None = None
    built: Any = None


class Paths:
    """Per-``(spec, device)`` choice between cuDNN and the gather-GEMM.

    ``load_engine`` makes the cuDNN engine on first need (importing the
    frontend); an exception there means "no cuDNN here", recorded in
    :attr:`engine_error`, and every spec takes the gather-GEMM.
    """

    def __init__(self, load_engine: Callable[[], Engine]) -> None:
        self._load_engine = load_engine
        self._engine: Engine | None = None
        self._tried = False
        self._lock = threading.Lock()
        self._decisions: dict[tuple[ConvSpec, Hashable], Path] = {}
        #: Why the engine could not be loaded, once that was tried and failed.
        self.engine_error: str | None = None

    @property
    def engine_loaded(self) -> bool | None:
        """True or False once loading the engine was tried, None before."""
        return None if not self._tried else self._engine is not None

    def engine(self) -> Engine | None:
        """The cuDNN engine, loaded on first call; None when it cannot be."""
        if not self._tried:
            with self._lock:
                if not self._tried:
                    try:
                        self._engine = self._load_engine()
                    except Exception as exc:  # no frontend, no libcudnn, a broken install
                        self.engine_error = f"{type(exc).__name__}: {exc}"
                        logger.info("cupy backend: cuDNN unusable (%s); gather-GEMM on cuBLAS", self.engine_error)
                    self._tried = True
        return self._engine

    def path(self, spec: ConvSpec, device: Hashable) -> Path:
        """The path for ``spec`` on ``device``, decided (and cuDNN's graph built) on first call."""
        key = (spec, device)
        hit = self._decisions.get(key)
        if hit is None:
            hit = self._choose(spec, device)
            self._remember(key, hit)
        return hit

    def conv(self, xp: Any, lhs: Any, rhs: Any, spec: ConvSpec, device: Hashable) -> Any:
        """``conv_general_dilated`` of ``lhs`` and ``rhs`` (namespace ``xp``, on ``device``):
        by FFT (cuFFT, :mod:`polyconv.backends.fft`) where :func:`polyconv.backends.fft.prepare`
        takes it in the current FFT mode and the operands are finite, else as :meth:`path` decides."""
        prepared = fft.prepare(spec, _compute(spec), fft_mode(), "cupy")
        if prepared is not None:
            import array_api_compat

            out = fft.run(array_api_compat.array_namespace(lhs), lhs, rhs, prepared, array_api_compat.device(lhs))
            if out is not None:
                return out
        chosen = self.path(spec, device)
        engine = self._engine
        if chosen.plan is not None and engine is not None:
            x, w = cudnn_operands.operands(xp, chosen.plan, lhs, rhs)
            y = cudnn_operands.output(xp, chosen.plan, lhs)
            try:
                engine.execute(chosen.built, x, w, y)
            except Exception as exc:
                why = f"cuDNN failed to run it ({type(exc).__name__}: {exc})"
                logger.warning("cupy backend: %s; this convolution now runs on the gather-GEMM", why)
                self._remember((spec, device), Path("gemm", why))
            else:
                return cudnn_operands.result(xp, chosen.plan, y)
        return gemm.conv_general_dilated(xp, lhs, rhs, spec)

    def _choose(self, spec: ConvSpec, device: Hashable) -> Path:
        reason = why_not(spec)
        if reason is not None:
            return Path("gemm", reason)
        engine = self.engine()
        if engine is None:
            return Path("gemm", f"cuDNN unusable: {self.engine_error}")
        declined = []
        for plan in cudnn_plans(spec):
            try:
                built = engine.build(plan, device)
            except Exception as exc:  # cudnnGraphNotSupportedError, or an engine-specific refusal
                declined.append(f"{plan.op}{' (asymmetric padding)' if plan.asymmetric else ''}: "
                                f"{type(exc).__name__}: {exc}")
                continue
            return Path("cudnn", f"cuDNN {plan.op}{' (asymmetric padding)' if plan.asymmetric else ''}", plan, built)
        why = "cuDNN declined it: " + "; ".join(declined)
        logger.info("cupy backend: %s; gather-GEMM on cuBLAS", why)
        return Path("gemm", why)

    def _remember(self, key: tuple[ConvSpec, Hashable], decision: Path) -> None:
        if len(self._decisions) >= MAX_DECISIONS:
            with self._lock:
                for old in list(self._decisions)[: MAX_DECISIONS // 2]:
                    self._decisions.pop(old, None)
        self._decisions[key] = decision
