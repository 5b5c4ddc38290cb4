"""Deliberately wrong backends: the mutation proof of the conformance suite.

Each mutant is a real :class:`polyconv.Backend` that computes on NumPy arrays
with the NumPy backend's strategies (or, where the bug makes the spec
inconsistent with itself, with :mod:`polyconv.conformance.reference`) but has
exactly one bug, described by the first line of its docstring.  The
:class:`Control` is the same wrapper without a bug: it must pass everything
the mutants fail (``tests/test_mutants.py``).

Mutants take plain ``numpy.ndarray`` operands but own no array type
(``owns`` is False, so dispatch by type never picks them); they run only when
asked for by name (``backend=``, ``use_backend``), which ``accepts`` allows.
They are registered for a test's duration with
:meth:`polyconv.registry.Registry.register`, never through an entry point.

Each class also says how the suite must catch it: ``caught_by`` (the feature
that must fail), ``also`` (other features allowed to fail because they are
derived from the broken op), ``reason`` (a regular expression every failure's
detail must match) and ``probe`` (the ``(feature, group)`` item groups of the
suite the test runs on it: the ones that can see the bug, plus cheap groups
that must still pass).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
from polyconv.backends.numpy import NumpyBackend, strategy

from polyconv import derive
from polyconv.backend import Backend, Manifest
from polyconv.spec import ConvSpec, LocalSpec, TransposeSpec, dtype_kind, vjp_lhs_plan, vjp_rhs_plan
from polyconv.spec.dtypes import numpy_dtype

__all__ = ["Control", "Mutant", "MUTANTS", "CONV_GRID", "CONV_DTYPES", "ERRORS"]

CONV_GRID = ("conv_general_dilated", "grid")
CONV_DTYPES = ("conv_general_dilated", "dtypes")
ERRORS = ("errors", "errors")

_NUMPY_MANIFEST = NumpyBackend().manifest


def _reference(lhs: np.ndarray, rhs: np.ndarray, spec: ConvSpec) -> Any:
    """The reference's value of ``spec`` (which may be inconsistent: its
    ``out_shape`` is kept, whatever the other fields say), in the output dtype."""
    from polyconv.conformance import reference

    return reference.cast_result(reference.conv_from_spec(lhs, rhs, spec), spec.out_dtype)


def _reorder(a: np.ndarray, axis: int, order: list[int]) -> np.ndarray:
    """``a`` with the entries of ``axis`` taken in ``order``."""
    return np.take(a, np.asarray(order, dtype=np.intp), axis=axis)


class Control(Backend):
    """No bug: the NumPy backend's strategies behind the mutants' wrapper."""

    name = "mutant-control"
    #: Native ops besides the primitive (a mutant breaking a derived op implements it).
    native_ops: ClassVar[frozenset[str]] = frozenset()
    caught_by: ClassVar[str] = ""
    also: ClassVar[frozenset[str]] = frozenset()
    reason: ClassVar[str] = ""
    probe: ClassVar[tuple[tuple[str, str], ...]] = (CONV_GRID, CONV_DTYPES, ERRORS)

    def __init__(self) -> None:
        self.manifest = Manifest(
            dtypes=_NUMPY_MANIFEST.dtypes,
            devices=("cpu",),
            ops=frozenset({"conv_general_dilated"}) | self.native_ops,
            features=_NUMPY_MANIFEST.features,
            notes=("a test fixture of tests/test_mutants.py",),
        )

    @classmethod
    def bug(cls) -> str:
        """The one-line description of the bug (the docstring's first line)."""
        return (cls.__doc__ or "").strip().splitlines()[0]

    def owns(self, x: Any) -> bool:
        return False  # never chosen by type: the NumPy backend owns ndarrays

    def accepts(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def asarray(self, x: Any, like: Any = None) -> Any:
        return np.asarray(x)

    def from_numpy(self, a: Any, device: str | None = None) -> Any:
        return np.array(a, copy=True)

    def to_numpy(self, x: Any) -> Any:
        return np.array(x, copy=True)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        return strategy.convolve(lhs, rhs, spec)


class Mutant(Control):
    """Base of the mutants: a :class:`Control` with one bug (see each subclass)."""

    name = "mutant"
    caught_by = "conv_general_dilated"
    also = frozenset({"conv_transpose", "patches", "local", "vjp"})
    reason = r"elements (out of tolerance|differ)"


class PaddingSwapped(Mutant):
    """Applies each axis's (low, high) padding as (high, low)."""

    name = "mutant-padding-swapped"

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        swapped = tuple((hi, lo) for lo, hi in spec.padding)  # same output size, shifted window
        return strategy.convolve(lhs, rhs, replace(spec, padding=swapped))


class KernelFlipped(Mutant):
    """Flips the kernel's spatial axes: true convolution, not jax.lax's cross-correlation."""

    name = "mutant-kernel-flipped"

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        flipped = np.flip(rhs, axis=spec.dimension_numbers.rhs_spec[2:])
        return strategy.convolve(lhs, np.ascontiguousarray(flipped), spec)


class RhsDilationIgnored(Mutant):
    """Ignores rhs_dilation (an undilated kernel), cropping its larger output to the expected shape."""

    name = "mutant-rhs-dilation-ignored"

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        return _reference(lhs, rhs, replace(spec, rhs_dilation=(1,) * spec.nspatial))


class StrideOffByOne(Mutant):
    """Steps windows by stride - 1 (a 0-based stride) for strides above 1, cropping to the expected shape."""

    name = "mutant-stride-off-by-one"

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        strides = tuple(max(s - 1, 1) for s in spec.window_strides)
        return _reference(lhs, rhs, replace(spec, window_strides=strides))


class FeatureGroupsSwapped(Mutant):
    """Pairs feature group g's kernels with the input channels of group G-1-g (groups in reverse order)."""

    name = "mutant-feature-groups-swapped"

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        g = spec.feature_group_count
        if g > 1:
            cg = spec.in_features // g
            order = [(g - 1 - b) * cg + c for b in range(g) for c in range(cg)]
            lhs = _reorder(lhs, spec.dimension_numbers.lhs_spec[1], order)
        return strategy.convolve(lhs, rhs, spec)


class BatchGroupsInterleaved(Mutant):
    """Takes batch group g as batch elements g, g+G, g+2G... (interleaved) instead of a contiguous block."""

    name = "mutant-batch-groups-interleaved"

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        g = spec.batch_group_count
        if g > 1:
            nb = spec.batch // g
            order = [n * g + b for b in range(g) for n in range(nb)]
            lhs = _reorder(lhs, spec.dimension_numbers.lhs_spec[0], order)
        return strategy.convolve(lhs, rhs, spec)


class Float32Upcast(Mutant):
    """Returns float32 results as float64 (computes wide and forgets to cast back)."""

    name = "mutant-float32-upcast"
    also = frozenset({"patches", "local", "vjp", "conv_transpose"})
    reason = r"has dtype float64, expected float32"
    probe = (CONV_DTYPES, ("patches", "dtypes"), ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        out = strategy.convolve(lhs, rhs, spec)
        return out.astype(np.float64) if spec.out_dtype == "float32" else out


class LhsMutated(Mutant):
    """Uses the lhs buffer as scratch space: zeroes the caller's input after computing."""

    name = "mutant-lhs-mutated"
    reason = r"the call modified its (lhs|cotangent) operand"

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        out = strategy.convolve(lhs, rhs, spec)
        if lhs.flags.writeable:
            lhs[...] = 0
        return out


class NegativePaddingValueError(Mutant):
    """Raises a plain ValueError for negative (cropping) padding, a valid jax.lax input."""

    name = "mutant-negative-padding-valueerror"
    reason = r"raised ValueError: negative padding is not supported"

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        if any(p < 0 for pair in spec.padding for p in pair):
            raise ValueError("negative padding is not supported")
        return strategy.convolve(lhs, rhs, spec)


class OutputLayoutMisread(Mutant):
    """Reads the output spec as the lhs spec: writes the result in the input's layout."""

    name = "mutant-output-layout-misread"
    reason = r"has shape \(.*\), expected \(.*\)"

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        dn = spec.dimension_numbers
        canonical = strategy.convolve(lhs, rhs, spec).transpose(dn.out_spec)  # (N, O, *Y)
        return canonical.transpose(np.argsort(dn.lhs_spec))


class TransposeKernelFlipIgnored(Mutant):
    """conv_transpose(transpose_kernel=True) swaps the kernel's I and O axes but forgets the spatial flip.

    (Ignoring ``transpose_kernel`` altogether cannot even give the spec's
    shapes when I != O; a backend whose shapes come out right has at least
    swapped the axes.)
    """

    name = "mutant-transpose-kernel-flip-ignored"
    native_ops = frozenset({"conv_transpose"})
    caught_by = "conv_transpose"
    also = frozenset()
    probe = (("conv_transpose", "grid"), CONV_DTYPES, ERRORS)

    def conv_transpose(self, lhs: Any, rhs: Any, spec: TransposeSpec) -> Any:
        if spec.transpose_kernel:
            rhs_spec = spec.conv.dimension_numbers.rhs_spec
            rhs = np.ascontiguousarray(np.swapaxes(rhs, rhs_spec[0], rhs_spec[1]))
        return self.conv_general_dilated(lhs, rhs, spec.conv)


class LocalWindowOrder(Mutant):
    """conv_general_dilated_local reads the kernel's patch axis spatial-major (tap, channel), not channel-major."""

    name = "mutant-local-window-order"
    native_ops = frozenset({"conv_general_dilated_local"})
    caught_by = "local"
    also = frozenset()
    probe = (("local", "grid"), CONV_DTYPES, ("patches", "dtypes"), ERRORS)

    def conv_general_dilated_local(self, lhs: Any, rhs: Any, spec: LocalSpec) -> Any:
        channels = spec.patches.conv.in_features
        taps = math.prod(spec.patches.filter_shape)
        # correct: patch feature c * taps + t; this backend reads the kernel's t * C + c there
        order = [t * channels + c for c in range(channels) for t in range(taps)]
        rhs = _reorder(rhs, spec.dimension_numbers.rhs_spec[1], order)
        return derive.local(self, lhs, rhs, spec)


class PreferredElementTypeIgnored(Mutant):
    """Declares preferred_element_type but ignores it: results keep the operands' dtype."""

    name = "mutant-preferred-element-type-ignored"
    also = frozenset({"vjp"})
    reason = r"has dtype \w+, expected \w+"
    probe = (CONV_DTYPES, ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        return strategy.convolve(lhs, rhs, replace(spec, preferred_element_type=None))


class ComplexKernelConjugated(Mutant):
    """Conjugates complex kernels (the textbook complex cross-correlation; jax.lax does not)."""

    name = "mutant-complex-kernel-conjugated"
    probe = (CONV_DTYPES, ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        return strategy.convolve(lhs, np.conj(rhs) if rhs.dtype.kind == "c" else rhs, spec)


class _IntegerMutant(Mutant):
    """Base of the mutants whose bug is in integer results: others are computed correctly."""

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        if dtype_kind(spec.out_dtype) not in "iu":
            return strategy.convolve(lhs, rhs, spec)
        return self.integer_conv(lhs, rhs, spec)

    def integer_conv(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        raise NotImplementedError


class IntegersInFloat64(_IntegerMutant):
    """Accumulates integer convolutions in float64, which is inexact beyond 2**53 (no wrap-around)."""

    name = "mutant-integers-in-float64"
    probe = (CONV_DTYPES, ERRORS)

    def integer_conv(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        wide = replace(spec, dtype="float64", preferred_element_type=None)
        out = strategy.convolve(lhs.astype(np.float64), rhs.astype(np.float64), wide)
        with np.errstate(invalid="ignore"):  # out-of-range values: whatever the cast gives
            return out.astype(spec.out_dtype)


class ReturnsList(Mutant):
    """Returns the result as a nested Python list instead of an array."""

    name = "mutant-returns-list"
    reason = r"result( 0)? is a builtins\.list, not an array of the 'mutant-returns-list' backend"
    probe = (CONV_GRID, ("patches", "dtypes"), ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        return strategy.convolve(lhs, rhs, spec).tolist()


class IgnoresStrides(Mutant):
    """Reads its operands in memory order as if they were C-contiguous (ignores strides).

    The suite's own operands are always contiguous, so the ``conv_general_dilated``
    feature cannot see this; the derived ops catch it, because they hand the
    primitive flipped and permuted views.
    """

    name = "mutant-ignores-strides"
    caught_by = "conv_transpose"
    also = frozenset({"patches", "local", "vjp"})
    probe = (("conv_transpose", "grid"), CONV_DTYPES, ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        lhs = lhs.ravel(order="K").reshape(lhs.shape)  # the values in memory order, read as C order
        rhs = rhs.ravel(order="K").reshape(rhs.shape)
        return strategy.convolve(lhs, rhs, spec)


#: Every mutant, in the order of the issue's list, then the extras.
MUTANTS: tuple[type[Mutant], ...] = (
    PaddingSwapped,
    KernelFlipped,
    RhsDilationIgnored,
    StrideOffByOne,
    FeatureGroupsSwapped,
    BatchGroupsInterleaved,
    Float32Upcast,
    LhsMutated,
    NegativePaddingValueError,
    OutputLayoutMisread,
    TransposeKernelFlipIgnored,
    LocalWindowOrder,
    PreferredElementTypeIgnored,
    ComplexKernelConjugated,
    IntegersInFloat64,
    ReturnsList,
    IgnoresStrides,
)


# -- wrong result counts: one result in a tuple, a VJP with one result too many or too few --

class OneTupleTranspose(Mutant):
    """conv_transpose (native) returns its result wrapped in a one-element tuple."""

    name = "mutant-one-tuple-transpose"
    native_ops = frozenset({"conv_transpose"})
    caught_by = "conv_transpose"
    also = frozenset()
    reason = r"builtins\.tuple|\bresults?\b"
    probe = (("conv_transpose", "grid"), ERRORS)

    def conv_transpose(self, lhs: Any, rhs: Any, spec: TransposeSpec) -> Any:
        return (derive.conv_transpose(self, lhs, rhs, spec),)


class VjpExtraResult(Mutant):
    """conv_general_dilated_vjp (native) returns a third result after the two cotangents."""

    name = "mutant-vjp-extra-result"
    native_ops = frozenset({"conv_general_dilated_vjp"})
    caught_by = "vjp"
    also = frozenset()
    reason = r"\bresults?\b"
    probe = (("vjp", "dtypes"), ERRORS)

    def conv_general_dilated_vjp(self, lhs: Any, rhs: Any, cotangent: Any, spec: ConvSpec) -> Any:
        return (*self._cotangents(lhs, rhs, cotangent, spec), np.zeros(()))

    def _cotangents(self, lhs: Any, rhs: Any, cotangent: Any, spec: ConvSpec) -> tuple[Any, Any]:
        """The correct cotangents (polyconv's derivation)."""
        return (
            derive.vjp_lhs(self, rhs, cotangent, vjp_lhs_plan(spec), derive.cotangent_dtype(lhs, cotangent)),
            derive.vjp_rhs(self, lhs, rhs, cotangent, vjp_rhs_plan(spec), derive.cotangent_dtype(rhs, cotangent)),
        )


class VjpMissingResult(VjpExtraResult):
    """conv_general_dilated_vjp (native) returns only the lhs cotangent."""

    name = "mutant-vjp-missing-result"

    def conv_general_dilated_vjp(self, lhs: Any, rhs: Any, cotangent: Any, spec: ConvSpec) -> Any:
        return self._cotangents(lhs, rhs, cotangent, spec)[:1]


# The suite once let these three through (or crashed on them); _verify now counts results.
MUTANTS = (*MUTANTS, OneTupleTranspose, VjpExtraResult, VjpMissingResult)


class ZeroStuffedRhsDilation(Mutant):
    """Dilates the kernel by inserting zeros (one dense kernel), so an infinite input times a zero makes NaN."""

    name = "mutant-zero-stuffed-rhs-dilation"
    probe = (("conv_general_dilated", "nonfinite"), ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        if all(d == 1 for d in spec.rhs_dilation):
            return strategy.convolve(lhs, rhs, spec)
        order = spec.dimension_numbers.rhs_spec
        w = np.asarray(rhs).transpose(order)  # (O, I, *K)
        dense = np.zeros(w.shape[:2] + tuple((k - 1) * d + 1 for k, d in zip(w.shape[2:], spec.rhs_dilation)),
                         w.dtype)
        dense[(slice(None), slice(None), *(slice(None, None, d) for d in spec.rhs_dilation))] = w
        with np.errstate(invalid="ignore"):
            return _reference(lhs, dense.transpose(np.argsort(order)), replace(spec, rhs_dilation=(1,) * spec.nspatial))


class IntegersInFloat32(_IntegerMutant):
    """Accumulates integer convolutions in float32, which is exact only up to 2**24."""

    name = "mutant-integers-in-float32"
    probe = (("conv_general_dilated", "extremes"), ERRORS)

    def integer_conv(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        narrow = replace(spec, dtype="float32", preferred_element_type=None)
        out = strategy.convolve(lhs.astype(np.float32), rhs.astype(np.float32), narrow)
        with np.errstate(invalid="ignore"):  # out-of-range values: wrapped through int64, as exact sums are
            return out.astype(np.float64).astype(np.int64).astype(spec.out_dtype)


class SaturatingSums(_IntegerMutant):
    """Saturates integer results at the output dtype's range instead of wrapping around."""

    name = "mutant-saturating-sums"
    probe = (("conv_general_dilated", "extremes"), ERRORS)

    def integer_conv(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        from polyconv.conformance import reference

        info = np.iinfo(spec.out_dtype)
        exact = reference.conv_from_spec(lhs, rhs, spec)  # int64, itself wrapped modulo 2**64
        return np.clip(exact, max(info.min, -(2**63)), min(info.max, 2**63 - 1)).astype(spec.out_dtype)


class PatchesAliasInput(Mutant):
    """conv_general_dilated_patches returns a view of its input where the patches are the input (a 1x1 window)."""

    name = "mutant-patches-alias-input"
    native_ops = frozenset({"conv_general_dilated_patches"})
    caught_by = "patches"
    also = frozenset()
    reason = r"shares memory with the lhs operand"
    probe = (("patches", "grid"), CONV_DTYPES, ERRORS)

    def conv_general_dilated_patches(self, lhs: Any, spec: Any) -> Any:
        conv = spec.conv
        identity = (math.prod(spec.filter_shape) == 1 and conv.out_shape == lhs.shape
                    and conv.dimension_numbers.lhs_spec == conv.dimension_numbers.out_spec
                    and conv.dtype == conv.out_dtype)
        return lhs if identity else derive.patches(self, lhs, spec)


class KernelCachedPerObject(Mutant):
    """Keeps a packed copy of each kernel array it sees, keyed by the array object, and reuses it."""

    name = "mutant-kernel-cached-per-object"
    reason = r"after its operands were changed in place"
    probe = (("conv_general_dilated", "state"), ERRORS)

    def __init__(self) -> None:
        super().__init__()
        self._packed: dict[int, tuple[Any, np.ndarray]] = {}

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        hit = self._packed.get(id(rhs))
        if hit is None or hit[0] is not rhs:
            hit = self._packed[id(rhs)] = (rhs, np.ascontiguousarray(rhs).copy())
        return strategy.convolve(lhs, hit[1], spec)


class ScalesOperandsInPlace(Mutant):
    """Multiplies its operands by one in place before convolving (harmless, until an operand is read-only)."""

    name = "mutant-scales-operands-in-place"
    reason = r"read-only"
    probe = (("conv_general_dilated", "readonly"), ("conv_general_dilated", "broadcast"), ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        for operand in (lhs, rhs):
            if operand.size and operand.dtype.kind in "fc":
                operand *= 1
        return strategy.convolve(lhs, rhs, spec)


MUTANTS = (*MUTANTS, ZeroStuffedRhsDilation, IntegersInFloat32, SaturatingSums, PatchesAliasInput,
           KernelCachedPerObject, ScalesOperandsInPlace)


# -- the classes of the suite's third edition ------------------------------------------------

class _BufferPerShape(Mutant):
    """Base of the mutants that keep one array per result shape and dtype, shared by every call."""

    def __init__(self) -> None:
        super().__init__()
        self._buffers: dict[tuple[tuple[int, ...], str], np.ndarray] = {}

    def buffer_holding(self, out: np.ndarray) -> np.ndarray:
        """The shared array of ``out``'s shape and dtype, with ``out``'s values written into it."""
        buffer = self._buffers.setdefault((out.shape, out.dtype.str), np.empty_like(out))
        buffer[...] = out
        return buffer


class ResultBufferReused(_BufferPerShape):
    """Hands out one result buffer per shape and dtype (a pool), overwritten by the next call of that shape."""

    name = "mutant-result-buffer-reused"
    reason = r"judged after \d+ later calls?"
    probe = (("conv_general_dilated", "lifetime"), ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        return self.buffer_holding(strategy.convolve(lhs, rhs, spec))


class SharedScratch(_BufferPerShape):
    """Computes into one scratch array per shape shared by every call, and copies the result out of it."""

    name = "mutant-shared-scratch"
    reason = r"threads calling at once"
    probe = (("conv_general_dilated", "threads"), ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        import time

        scratch = self.buffer_holding(strategy.convolve(lhs, rhs, spec))
        time.sleep(0.002)  # more work on the scratch array, during which another thread may write it
        return scratch.copy()


class NegativeStridesInMemoryOrder(Mutant):
    """Reads an operand axis with a negative stride in memory order (as if the view were not flipped)."""

    name = "mutant-negative-strides-in-memory-order"
    probe = (("conv_general_dilated", "flipped"), ("conv_general_dilated", "strided"), ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        def memory_order(a: np.ndarray) -> np.ndarray:
            backwards = tuple(axis for axis, step in enumerate(a.strides) if step < 0)
            return np.flip(a, backwards) if backwards else a

        return strategy.convolve(memory_order(lhs), memory_order(rhs), spec)


class BoolCountsInUint8(Mutant):
    """Counts the true products of a bool convolution in a uint8 accumulator (256 true products wrap to 0)."""

    name = "mutant-bool-counts-in-uint8"
    also = frozenset({"vjp"})
    probe = (("conv_general_dilated", "extremes"), ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        if spec.out_dtype != "bool":  # a wider preferred_element_type gets a wide accumulator
            return strategy.convolve(lhs, rhs, spec)
        counts = strategy.convolve(lhs.astype(np.int64), rhs.astype(np.int64),
                                   replace(spec, dtype="int64", preferred_element_type=None))
        return counts.astype(np.uint8) != 0


class HighestIgnored(Mutant):
    """On its (pretend) accelerator, rounds float32 inputs to bfloat16 at every precision, 'highest' too."""

    name = "mutant-highest-ignored"
    also = frozenset({"vjp", "conv_transpose", "patches", "local"})
    probe = (("conv_general_dilated", "precision"), CONV_DTYPES, ERRORS)

    def __init__(self) -> None:
        super().__init__()
        self.manifest = replace(self.manifest, features=self.manifest.features | {"reduced_precision"})

    def device(self, x: Any) -> str:
        return "accelerator:0"  # reduced-precision tolerances apply off the CPU only

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        if spec.dtype in ("float32", "complex64"):
            import ml_dtypes

            def bfloat16(a: np.ndarray) -> np.ndarray:
                if a.dtype.kind == "c":
                    return (bfloat16(a.real) + 1j * bfloat16(a.imag)).astype(a.dtype)
                return a.astype(ml_dtypes.bfloat16).astype(a.dtype)

            lhs, rhs = bfloat16(lhs), bfloat16(rhs)
        return strategy.convolve(lhs, rhs, spec)


class LastPartialTileDropped(Mutant):
    """Computes outputs in tiles of 64 along each axis and leaves the last partial tile of an axis at zero."""

    name = "mutant-last-partial-tile-dropped"
    probe = (("conv_general_dilated", "large"), ("conv_general_dilated", "state"), ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        out = strategy.convolve(lhs, rhs, spec)
        for axis, size in enumerate(out.shape):
            if size > 64 and size % 64:
                out[(slice(None),) * axis + (slice(size - size % 64, None),)] = 0
        return out


class ZeroTapsSkipped(Mutant):
    """Never multiplies by an exact zero of the kernel (skips zero taps, pairs and rows), so inf * 0 is never NaN."""

    name = "mutant-zero-taps-skipped"
    also = frozenset({"vjp", "conv_transpose", "patches", "local"})
    probe = (("conv_general_dilated", "zeros"), ("conv_general_dilated", "nonfinite"), ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        from polyconv.conformance import reference as ref

        if dtype_kind(spec.dtype) not in "fc" or spec.batch_group_count > 1:
            return strategy.convolve(lhs, rhs, spec)
        # the reference's loop over taps (conformance/reference.py), with the zero products left out
        acc = ref.accumulation_dtype(spec.out_dtype)
        dn = spec.dimension_numbers
        x = ref._canonical(lhs, dn.lhs_spec, acc)
        w = ref._canonical(rhs, dn.rhs_spec, acc)
        xp = ref._padded_dilated(x, spec.lhs_dilation, spec.padding)
        groups = spec.feature_group_count
        og, cg = w.shape[0] // groups, x.shape[1] // groups
        out = np.zeros((x.shape[0], w.shape[0], *spec.out_spatial), acc)
        real = ref._real_positions(spec.lhs_spatial, spec.lhs_dilation, spec.padding)
        with np.errstate(invalid="ignore", over="ignore"):
            for tap in ref._taps(w.shape[2:]):
                window = ref._tap_window(tap, spec.rhs_dilation, spec.window_strides, spec.out_spatial)
                kernel = w[(slice(None), slice(None)) + tap]
                for g in range(groups):
                    k = kernel[g * og:(g + 1) * og]
                    if not k.any():
                        continue  # a zero tap: skipped
                    xs = xp[window][:, g * cg:(g + 1) * cg]  # (N, C, *Y)
                    kk = k.reshape(1, *k.shape, *(1,) * len(spec.out_spatial))  # (1, O, C, 1...)
                    products = np.where(kk != 0, xs[:, None] * kk, 0)
                    out[:, g * og:(g + 1) * og] += ref._drop_structural(products.sum(axis=2), k, real[window])
        return ref.cast_result(ref._from_canonical(out, dn.out_spec), spec.out_dtype)


class Bfloat16ThroughFloat16(Mutant):
    """Converts bfloat16 operands to float16 to compute (beyond 65504 they become inf, below 2**-24 zero)."""

    name = "mutant-bfloat16-through-float16"
    also = frozenset({"vjp", "conv_transpose", "patches", "local"})
    probe = (("conv_general_dilated", "extremes"), ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        if spec.dtype != "bfloat16":
            return strategy.convolve(lhs, rhs, spec)
        with np.errstate(over="ignore"):
            half = replace(spec, dtype="float16")
            out = strategy.convolve(lhs.astype(np.float16), rhs.astype(np.float16), half)
        return out.astype(numpy_dtype(spec.out_dtype))


class HalfSumsInHalf(Mutant):
    """Sums float16 and bfloat16 products in their own type, on the CPU, without declaring half_accumulation."""

    name = "mutant-half-sums-in-half"
    also = frozenset({"vjp", "conv_transpose", "patches", "local"})
    probe = (CONV_DTYPES, ERRORS)

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        if spec.out_dtype not in ("float16", "bfloat16"):
            return strategy.convolve(lhs, rhs, spec)
        # one tap at a time (the others zeroed), each tap's channel sum rounded, then added to a running
        # total rounded to the half type after every tap
        half = numpy_dtype(spec.out_dtype)
        wide = replace(spec, dtype="float32", preferred_element_type=None)
        rhs32 = rhs.astype(np.float32)
        window_axes = [spec.dimension_numbers.rhs_spec[2 + i] for i in range(spec.nspatial)]
        total = np.zeros(spec.out_shape, half)
        with np.errstate(invalid="ignore", over="ignore"):
            for tap in np.ndindex(*spec.window):
                index: list[Any] = [slice(None)] * rhs.ndim
                for axis, t in zip(window_axes, tap):
                    index[axis] = slice(t, t + 1)
                one = np.zeros_like(rhs32)
                one[tuple(index)] = rhs32[tuple(index)]
                part = strategy.convolve(lhs.astype(np.float32), one, wide).astype(half)
                total = (total.astype(np.float32) + part.astype(np.float32)).astype(half)
        return total


class HalfSumsDeclared(HalfSumsInHalf):
    """No bug: the same half-in-half sums, declared with the manifest's half_accumulation feature."""

    name = "mutant-control-half-accumulation"

    def __init__(self) -> None:
        super().__init__()
        self.manifest = replace(self.manifest, features=self.manifest.features | {"half_accumulation"})


class PatchesByIdentityKernel(Mutant):
    """conv_general_dilated_patches is a convolution with an identity kernel (jax.lax's way): inf * 0 makes NaN
    of an infinite input's neighbours."""

    name = "mutant-patches-identity-kernel"
    native_ops = frozenset({"conv_general_dilated_patches"})
    caught_by = "patches"
    also = frozenset({"local"})
    reason = r"got np\.float64\(nan\).*the non-finite rule: the reference is finite here"
    probe = (("patches", "nonfinite"), ("patches", "grid"), CONV_DTYPES, ERRORS)

    def conv_general_dilated_patches(self, lhs: Any, spec: Any) -> Any:
        conv = spec.conv
        taps = math.prod(spec.filter_shape)
        eye = np.broadcast_to(np.eye(taps, dtype=lhs.dtype), (conv.in_features, taps, taps))
        kernel = eye.reshape(conv.in_features * taps, 1, *spec.filter_shape)
        kernel = np.transpose(kernel, np.argsort(conv.dimension_numbers.rhs_spec))
        return strategy.convolve(lhs, kernel, conv)


MUTANTS = (*MUTANTS, ResultBufferReused, SharedScratch, NegativeStridesInMemoryOrder, BoolCountsInUint8,
           HighestIgnored, LastPartialTileDropped, ZeroTapsSkipped, Bfloat16ThroughFloat16, HalfSumsInHalf,
           PatchesByIdentityKernel)
