"""The JAX backend: every op computed with ``jax.lax``.

Registered as ``jax`` in the entry-point group ``polyconv.backends``.

The convolutions call the ``jax.lax`` function of the same name with the
arguments polyconv has already parsed and validated (explicit padding pairs, canonical
strides and dilations, :class:`jax.lax.ConvDimensionNumbers`, precision and
``preferred_element_type`` mapped to JAX's), so every error is polyconv's and
the computation is exactly JAX's.  Nothing converts to NumPy or branches on
array values: the backend is transparent under ``jax.jit``, ``jax.grad``,
``jax.vmap``, ``jax.checkpoint`` and with sharded inputs.

Departures from a bare pass-through, each computing the documented result
with ``jax.lax`` operations: integer and bool gradients (``jax.vjp`` refuses
them) go through :mod:`polyconv.derive`; complex64 operands accumulated in
complex128 are converted first (XLA:CPU accumulates them in complex64);
parameters XLA should not be handed as they are (a pad, stride or dilation
past 2**31, or a padded, dilated input far larger than the input and the
output, such as a padding of 2**62 cropped back: JAX's shape arithmetic
overflows int64) are computed tap by tap, one strided slice and one 1x1
convolution per kernel tap that reaches the input
(:func:`._lowering.conv_by_taps`); patches are copies of the input
(:func:`polyconv.gather.patches`: strided slices, zeros, a stack), not XLA's
identity-kernel convolution, which turns the neighbours of an infinite or NaN
input into NaN, and local convolutions are ``jax.lax``'s batched
``dot_general`` on those patches; on the CPU, some convolutions take faster
lowerings (``docs/jax-backend.md``).

Importing this module does not import JAX; JAX is imported the first time a
method needs it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from polyconv import derive
from polyconv.backend import Backend, Manifest
from polyconv.caching import BoundedCache, IdentityCache
from polyconv.errors import ConvArgumentError, UnsupportedDtypeError
from polyconv.spec import (
    ConvSpec,
    LocalSpec,
    PatchesSpec,
    TransposeSpec,
    dtype_kind,
    dtype_name,
    vjp_lhs_plan,
    vjp_rhs_plan,
)

from ._lowering import jax_modules, lax_conv_args, local_args, make_runner, patches_args, transpose_args

__all__ = ["JaxBackend", "backend", "AnyDevice"]

_DTYPES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
)

_OPS = (
    "conv_general_dilated",
    "conv_transpose",
    "conv_general_dilated_patches",
    "conv_general_dilated_local",
    "conv_general_dilated_vjp",
)


Run = Callable[..., Any]


def _always(run: Run | None) -> Run:
    assert run is not None, "a lax function was expected"
    return run


class AnyDevice(str):
    """The device name of an array that JAX places where the computation runs.

    Tracers (inside ``jit``, ``grad``, ``vmap``...) have no device of their
    own, and uncommitted arrays (made without ``jax.device_put``) are moved by
    JAX to the device of the committed operands, so neither can be on the
    "wrong" device.  Their name compares equal to every device name, so
    polyconv's check that all operands share one device only ever compares
    committed arrays, exactly the arrays JAX itself refuses to mix.  The text
    is the array's current device (or ``'traced'``), for messages.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str)

    def __ne__(self, other: object) -> bool:
        return not isinstance(other, str)

    __hash__ = str.__hash__


_TRACED = AnyDevice("traced")


class JaxBackend(Backend):
    """Runs on ``jax.Array`` (concrete arrays, sharded arrays and tracers) on
    every JAX device, through ``jax.lax``."""

    name = "jax"
    distribution = "jax"

    def __init__(self) -> None:
        self.manifest = Manifest(
            dtypes=frozenset(_DTYPES),
            devices=("cpu", "gpu", "tpu"),
            ops=frozenset(_OPS),
            features=frozenset({
                "lhs_dilation", "feature_group_count", "batch_group_count", "preferred_element_type",
                "autodiff", "jit", "vmap",
            }),
            notes=(
                "every op is jax.lax's own function; precision is passed to XLA as jax.lax.Precision",
                "64-bit dtypes need jax_enable_x64 (with it off, JAX arrays are never 64-bit)",
                "tracers and uncommitted arrays go where JAX places them; committed arrays on two "
                "devices are a MixedArraysError",
                "gradients of integer and bool operands (which jax.vjp refuses) are computed as two "
                "more jax.lax convolutions (polyconv.derive)",
                "complex64 operands with preferred_element_type complex128 are converted to complex128 "
                "first: XLA:CPU would accumulate them in complex64",
                "patches are copies of the input (slices, polyconv.gather), not XLA's identity-kernel "
                "convolution, which turns the neighbours of inf or NaN into NaN; local convolutions are "
                "jax.lax's dot_general on them",
                "large kernels go by FFT (jnp.fft, float64 transforms) where the FFT decision says so, "
                "with the error rule computed under jit and lax.cond taking the direct path where it fails",
                "pads, strides and dilations past 2**31, or a padded input far larger than the input and "
                "output (a padding of 2**62 cropped back), are computed tap by tap: one strided slice and "
                "one 1x1 jax.lax convolution per kernel tap that reaches the input",
            ),
        )
        # runners per spec object (specs come from polyconv's parse cache: equal calls share one)
        self._conv: IdentityCache[Run] = IdentityCache("polyconv.backends.jax.conv", self._conv_runner)
        self.direct: IdentityCache[Run] = IdentityCache("polyconv.backends.jax.direct", lambda s: _always(
            make_runner(lax_conv_args(s), s.preferred_element_type, "conv_general_dilated")))
        self._transpose: IdentityCache[Run] = IdentityCache("polyconv.backends.jax.transpose", lambda s: _always(
            make_runner(transpose_args(s), s.conv.preferred_element_type, "conv_transpose")))
        self._patches: IdentityCache[Run] = IdentityCache("polyconv.backends.jax.patches", lambda s: _always(
            make_runner(patches_args(s), s.conv.preferred_element_type, "conv_general_dilated_patches")))
        self._local: IdentityCache[Run] = IdentityCache("polyconv.backends.jax.local", lambda s: _always(
            make_runner(local_args(s), None, "conv_general_dilated_local")))
        self._vjp: IdentityCache[Run] = IdentityCache("polyconv.backends.jax.vjp", self._vjp_runner)
        self._devices: BoundedCache[int, tuple[Any, str, AnyDevice]] = BoundedCache(
            "polyconv.backends.jax.devices", 1024)
        self._device_names: BoundedCache[Any, tuple[str, AnyDevice]] = BoundedCache(
            "polyconv.backends.jax.device_names", 256)

    # -- arrays ------------------------------------------------------------------

    def owns(self, x: Any) -> bool:
        jax = sys.modules.get("jax")
        if jax is None:
            return False
        array = getattr(jax, "Array", None)  # None while jax is still importing
        return array is not None and isinstance(x, array)

    def asarray(self, x: Any, like: Any = None) -> Any:
        """``jax.numpy.asarray(x)``, put on ``like``'s device when ``like`` is
        committed to one device (else JAX places it, as it would the operand)."""
        jax, _, jnp = jax_modules()
        arr = jnp.asarray(x)
        sharding = getattr(like, "sharding", None)  # None for tracers
        if sharding is not None and _committed(like) and len(sharding.device_set) == 1:
            arr = jax.device_put(arr, next(iter(sharding.device_set)))
        return arr

    def from_numpy(self, a: Any, device: str | None = None) -> Any:
        import numpy as np

        jax, _, _ = jax_modules()
        name = dtype_name(a.dtype)
        if jax.dtypes.canonicalize_dtype(a.dtype) != a.dtype:
            raise UnsupportedDtypeError(
                "from_numpy", "a", "has a 64-bit dtype, which JAX holds only with jax_enable_x64 on "
                "(jax.config.update('jax_enable_x64', True))", got=name,
            )
        # device_put of a private copy: no computation, so nothing compiles (jnp.array
        # would compile a conversion for every new shape and dtype)
        copy = np.array(a, copy=True)
        return jax.device_put(copy) if device is None else jax.device_put(copy, _jax_device(jax, device))

    def to_numpy(self, x: Any) -> Any:
        import numpy as np

        return np.array(x, copy=True)

    def device(self, x: Any) -> str:
        """``'cpu:0'``, ``'gpu:1'``..., or for an array sharded over several
        devices their names joined by commas; tracers and uncommitted arrays
        get an :class:`AnyDevice` name (see there)."""
        try:
            sharding = x.sharding
        except (AttributeError, TypeError):  # a tracer has no sharding of its own
            return _TRACED
        # keyed on the sharding object's identity (the entry keeps it alive), so
        # the usual call does not run JAX's Python-level sharding hash
        hit = self._devices.get(id(sharding))
        if hit is None or hit[0] is not sharding:
            hit = self._device_entry(x, sharding)
        return hit[1] if _committed(x) else hit[2]

    def _device_entry(self, x: Any, sharding: Any) -> tuple[Any, str, AnyDevice]:
        names = self._device_names.get(sharding)  # equal shardings share their names
        if names is None:
            name = ",".join(f"{d.platform}:{d.id}" for d in sorted(x.devices(), key=lambda d: (d.platform, d.id)))
            names = (name, AnyDevice(name))
            self._device_names.put(sharding, names)
        entry = (sharding, *names)
        self._devices.put(id(sharding), entry)
        return entry

    def version(self) -> str | None:
        """The imported JAX's own version where JAX is imported, else the distribution's."""
        jax = sys.modules.get("jax")
        if jax is not None and hasattr(jax, "__version__"):
            return str(jax.__version__)
        return super().version()

    def unavailable_reason(self) -> str | None:
        for module in ("jax", "jaxlib"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install jax)"
        return None

    # -- the ops -------------------------------------------------------------------

    def explain(self, op: str, spec: Any) -> Any:
        from polyconv.explanation import Strategy

        from ._lowering import beyond_xla, tight

        if op in ("conv_general_dilated_patches", "conv_general_dilated_local"):
            product = "" if op == "conv_general_dilated_patches" else \
                ", then one lax.dot_general per output position over the patch axis"
            return Strategy("gather", "the patches as copies of the input (strided lax slices spread and bordered "
                            "by zeros, stacked; not XLA's identity-kernel convolution, which makes inf * 0)"
                            + product)
        conv = spec.conv if op == "conv_transpose" else spec
        if beyond_xla(conv):
            return Strategy("taps", "parameters XLA should not be handed as they are (a stride, dilation or pad "
                            "past 2**31, or a padded input far larger than the input and the output): "
                            "tap by tap, with jax.lax operations")
        from . import cpu_lowering, fft_lowering

        decisions: tuple[Any, ...] = ()
        if op in ("conv_general_dilated", "conv_general_dilated_vjp"):
            compute = fft_lowering.compute_dtype(conv)
            if compute is not None:
                from polyconv.algorithm import fft_mode

                decision = fft_lowering.decision(conv, compute, fft_mode())
                decisions = (decision,)
                if fft_lowering.prepared(conv, fft_mode()) is not None:
                    return Strategy("fft", f"{decision.why}: jnp.fft in float64, the error rule computed with it "
                                    "(under jit, lax.cond takes the direct path where it fails)", decisions)
        fast = cpu_lowering.lowering(conv, jax_modules()[0].default_backend()) \
            if op in ("conv_general_dilated", "conv_general_dilated_vjp") else None
        if fast == "depthwise":
            return Strategy("depthwise", "on the CPU, a depthwise convolution as shifted multiply-adds "
                            "(lax.pad, one strided lax.slice per tap), which XLA fuses into one loop", decisions)
        if fast == "pointwise":
            return Strategy("pointwise", "on the CPU, single-tap windows as one lax.dot_general over the channels",
                            decisions)
        if fast == "shifted":
            what = "small groups" if conv.groups > 1 else "few channels"
            how = {"stacked": "the stacked lowering", "folded": "the folded lowering"}.get(
                cpu_lowering.shifted_derivative(conv), "jax.lax.conv_general_dilated")
            return Strategy("shifted", f"on the CPU, {what} as shifted multiply-adds (one strided lax.slice "
                            "per tap and input channel of a group), which XLA fuses into one loop; differentiated "
                            f"as {how} (a jax.custom_jvp)", decisions)
        if fast == "folded":
            return Strategy("folded", "on the CPU, a convolution of one spatial axis fewer, computed as this backend "
                            "computes it: the first axis' outputs in the batch, its taps' windows stacked along "
                            "the channels (lax.concatenate), its taps' weights in the kernel's input channels",
                            decisions)
        if fast == "stacked":
            return Strategy("stacked", "on the CPU, one lax.dot_general per group: the windows of the inner axes' taps "
                            "stacked into the contraction, the first axis' taps into the product's rows, "
                            "summed shifted", decisions)
        if tight(conv) is not None:
            return Strategy("lax", "jax.lax.conv_general_dilated (XLA, cuDNN on GPU) on the input cropped where the "
                            "first output that reads it starts, the outputs that read padding alone left out and "
                            "put back as zeros: XLA:CPU computes a negative low pad with a positive high one "
                            "wrongly, and JAX's gradients make such pads from low pads past the window",
                            decisions)
        return Strategy("lax", f"jax.lax.{op} (XLA, cuDNN on GPU), the parameters as parsed", decisions)

    def runner(self, op: str, spec: Any) -> Callable[..., Any] | None:
        """The ``jax.lax`` call of ``op`` for ``spec``, as a function of the operands alone."""
        if op == "conv_general_dilated":
            return self._conv(spec)
        if op == "conv_transpose":
            return self._transpose(spec)
        if op == "conv_general_dilated_patches":
            return self._patches(spec)
        if op == "conv_general_dilated_local":
            return self._local(spec)
        if op == "conv_general_dilated_vjp":
            return self._vjp(spec)
        return None

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        """``jax.lax.conv_general_dilated`` with the parsed arguments."""
        return self._conv(spec)(lhs, rhs)

    def conv_transpose(self, lhs: Any, rhs: Any, spec: TransposeSpec) -> Any:
        """``jax.lax.conv_transpose`` with the parsed padding (both conventions
        arrive as the transposed convolution's own explicit pads)."""
        return self._transpose(spec)(lhs, rhs)

    def conv_general_dilated_patches(self, lhs: Any, spec: PatchesSpec) -> Any:
        """The patches as copies of the input (:func:`polyconv.gather.patches`,
        with ``jax.lax`` slicing), not XLA's identity-kernel convolution, which
        makes the neighbours of an infinite or NaN input NaN."""
        return self._patches(spec)(lhs)

    def conv_general_dilated_local(self, lhs: Any, rhs: Any, spec: LocalSpec) -> Any:
        """``jax.lax.conv_general_dilated_local``'s batched ``lax.dot_general``
        on the copied patches (:meth:`conv_general_dilated_patches`)."""
        return self._local(spec)(lhs, rhs)

    def conv_general_dilated_vjp(self, lhs: Any, rhs: Any, cotangent: Any, spec: ConvSpec) -> tuple[Any, Any]:
        """Both cotangents from ``jax.vjp`` of ``jax.lax.conv_general_dilated``.

        Integer and bool operands, which JAX does not differentiate, get the
        same transposed convolutions through :mod:`polyconv.derive`, with the
        dtypes :func:`polyconv.conv_general_dilated_vjp` documents."""
        result: tuple[Any, Any] = self._vjp(spec)(lhs, rhs, cotangent)
        return result

    def _conv_runner(self, spec: ConvSpec) -> Run:
        """``conv_general_dilated`` of ``spec``: by FFT where the FFT decision says so
        when it is called or traced (:mod:`.fft_lowering`), else the direct lowering."""
        direct = self.direct(spec)
        if self.beyond_xla(spec):
            return direct
        from .fft_lowering import fft_runner

        return fft_runner(spec, direct, self) or direct

    @staticmethod
    def beyond_xla(spec: ConvSpec) -> bool:
        """Whether ``spec`` is computed tap by tap (:func:`._lowering.beyond_xla`)."""
        from ._lowering import beyond_xla

        return beyond_xla(spec)

    def _vjp_runner(self, spec: ConvSpec) -> Callable[..., tuple[Any, Any]]:
        forward = self._conv(spec)
        if dtype_kind(spec.dtype) in "fc":
            jax = jax_modules()[0]

            def vjp(lhs: Any, rhs: Any, cotangent: Any) -> tuple[Any, Any]:
                _, pullback = jax.vjp(forward, lhs, rhs)
                lhs_ct, rhs_ct = pullback(cotangent)
                return lhs_ct, rhs_ct

            # jitted: an eager call compiles the two transposed convolutions once, as one
            # function, and skips the forward convolution that jax.vjp would compute and drop
            jitted: Callable[..., tuple[Any, Any]] = jax.jit(vjp)
            return jitted
        lhs_plan, rhs_plan = vjp_lhs_plan(spec), vjp_rhs_plan(spec)
        floating = dtype_kind(spec.out_dtype) in "fc"  # a floating cotangent keeps its dtype

        def derived(lhs: Any, rhs: Any, cotangent: Any) -> tuple[Any, Any]:
            return (
                derive.vjp_lhs(self, rhs, cotangent, lhs_plan, cotangent.dtype if floating else lhs.dtype),
                derive.vjp_rhs(self, lhs, rhs, cotangent, rhs_plan, cotangent.dtype if floating else rhs.dtype),
            )

        return derived


def _jax_device(jax: Any, device: Any) -> Any:
    """A ``jax.Device`` from a device or a name such as ``'cpu'``, ``'gpu:1'``."""
    if not isinstance(device, str):
        return device
    platform, _, index = device.partition(":")
    try:
        return jax.devices(platform)[int(index or 0)]
    except (RuntimeError, ValueError, IndexError):
        raise ConvArgumentError(
            "from_numpy", "device", f"must name a JAX device ({', '.join(map(str, jax.devices()))})", device
        ) from None


backend = JaxBackend()


def _committed(x: Any) -> bool:
    """Whether JAX array ``x`` is committed to its devices (``.committed``, public
    from JAX 0.4.21; ``._committed`` before)."""
    committed = getattr(x, "committed", None)
    return bool(x._committed if committed is None else committed)
