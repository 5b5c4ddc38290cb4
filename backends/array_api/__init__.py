"""The generic array-API backend: any array-API array that no other backend owns.

Registered as ``array_api`` in the entry-point group ``polyconv.backends``,
with ``fallback=True``: dispatch sends it an array with ``__array_namespace__``
whose type no framework backend owns (``array_api_strict`` arrays, for
instance), and it runs the shared gather-GEMM of
:mod:`polyconv.backends.gemm` with the operands' own namespace
(``array_api_compat.array_namespace``), so results are arrays of the caller's
namespace on the caller's device.  Only functions of the array API standard
touch the arrays; the index tables are NumPy arrays made on the host and
moved to the operands' device with ``xp.asarray(..., device=...)``.

The accumulation dtypes follow :mod:`polyconv.backends.gemm.accumulation`, chosen
among the dtypes the operands' device offers
(``xp.__array_namespace_info__().dtypes(device=...)``).  The standard has no
float16 or bfloat16: the manifest lists only the standard's dtypes.

Importing this module imports no array library beyond NumPy and
array-api-compat, which polyconv's core imports anyway.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from collections.abc import Collection
from typing import Any

import array_api_compat
import numpy as np

from polyconv.backend import Backend, Manifest
from polyconv.errors import BackendUnavailableError, ConvArgumentError, UnsupportedDtypeError
from polyconv.quiet import quiet
from polyconv.spec import ConvSpec, dtype_name

from ..gemm import conv_general_dilated

__all__ = ["ArrayApiBackend", "backend", "STANDARD_DTYPES"]

# array-API libraries built on NumPy (array-api-strict) warn on inf * 0 as NumPy does; polyconv does not
_quiet_gemm = quiet(conv_general_dilated)

#: The dtypes of the array API standard: what this backend computes.
STANDARD_DTYPES = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "complex64", "complex128",
})

_STRICT_DEVICE = re.compile(r"array_api_strict\.Device\('([^']*)'\)")


class ArrayApiBackend(Backend):
    """Runs on any array-API array (one with ``__array_namespace__``), on its device.

    It owns no array type: it is the fallback for arrays nobody else owns,
    and takes any array-API array when asked for by name.  The conformance
    suite feeds it ``array_api_strict`` arrays (:meth:`from_numpy`).

    Examples
    --------
    >>> import array_api_strict as xp, polyconv
    >>> x = xp.reshape(xp.arange(6.0), (1, 1, 6))
    >>> w = xp.reshape(xp.asarray([1.0, -1.0]), (1, 1, 2))
    >>> y = polyconv.conv_general_dilated(x, w, (1,), 'VALID')
    >>> y
    Array([[[-1., -1., -1., -1., -1.]]], dtype=array_api_strict.float64)
    """

    name = "array_api"
    manifest = Manifest(
        dtypes=STANDARD_DTYPES,
        devices=("any",),
        ops=frozenset({"conv_general_dilated"}),
        features=frozenset({"lhs_dilation", "feature_group_count", "batch_group_count", "preferred_element_type"}),
        fallback=True,
        notes=(
            "any array-API array no other backend owns, on any device of its namespace; results stay there",
            "the standard's dtypes only: no float16 or bfloat16",
            "conv_transpose, patches, local and the gradients are derived from the primitive (polyconv.derive)",
            "precision is accepted and ignored: every product is computed at full precision "
            "of the accumulation dtype",
            "integers are exact (modulo their width); the accumulation dtype is chosen among the "
            "dtypes the operands' device offers",
        ),
    )

    def __init__(self) -> None:
        self._device_dtypes: dict[Any, frozenset[str] | None] = {}

    # -- which arrays -----------------------------------------------------------------

    def owns(self, x: Any) -> bool:
        """Never: this backend owns no type (see :meth:`accepts`)."""
        return False

    def accepts(self, x: Any) -> bool:
        """Any array-API array: an object with ``__array_namespace__``."""
        return hasattr(x, "__array_namespace__")

    def device(self, x: Any) -> str:
        return str(array_api_compat.device(x))

    # -- making and reading arrays ------------------------------------------------------

    def asarray(self, x: Any, like: Any = None) -> Any:
        """A Python scalar or nested list as an array of ``like``'s namespace, on its device
        (``array_api_strict`` when there is no ``like``), with the namespace's default dtypes."""
        if like is None:
            return _strict().asarray(x)
        xp = array_api_compat.array_namespace(like)
        return xp.asarray(x, device=array_api_compat.device(like))

    def from_numpy(self, a: Any, device: Any = None) -> Any:
        """A copy of the NumPy array ``a`` as an ``array_api_strict`` array.

        ``device`` is None (the default device), an ``array_api_strict.Device``,
        its name (``'device1'``) or its text (``"array_api_strict.Device('device1')"``,
        as :meth:`device` writes it).  A dtype the standard lacks (float16,
        bfloat16) raises :class:`~polyconv.errors.UnsupportedDtypeError`.
        """
        name = dtype_name(a.dtype)
        if name not in STANDARD_DTYPES:
            raise UnsupportedDtypeError(
                "from_numpy", "a", "has a dtype the array API standard (and array-api-strict) lacks "
                f"(standard: {', '.join(sorted(STANDARD_DTYPES))})", got=name,
            )
        xps = _strict()
        return xps.asarray(np.array(a, copy=True), device=_strict_device(xps, device))

    def to_numpy(self, x: Any) -> Any:
        """A NumPy copy of ``x``, through DLPack (any device array-api-strict
        has), else through ``__array__``."""
        if isinstance(x, np.ndarray):
            return np.array(x, copy=True)
        try:
            return np.array(np.from_dlpack(x), copy=True)
        except (TypeError, ValueError, BufferError, RuntimeError, AttributeError):
            return np.array(x, copy=True)

    def version(self) -> str | None:
        """The version of array-api-compat, through which every namespace is reached."""
        try:
            return "array-api-compat " + importlib.metadata.version("array-api-compat")
        except importlib.metadata.PackageNotFoundError:
            return None

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("array_api_compat") is None:
            return "array-api-compat is not installed (pip install array-api-compat)"
        return None

    # -- the primitive ----------------------------------------------------------------------

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        xp = array_api_compat.array_namespace(lhs, rhs)
        available = self._dtypes_on(xp, array_api_compat.device(lhs))
        if available is not None and spec.out_dtype not in available:
            raise UnsupportedDtypeError(
                "conv_general_dilated", "preferred_element_type",
                f"is a dtype the device {self.device(lhs)} does not offer "
                f"(it offers: {', '.join(sorted(available))})", got=spec.out_dtype,
            )
        return _quiet_gemm(xp, lhs, rhs, spec, available=available)

    def _dtypes_on(self, xp: Any, device: Any) -> frozenset[str] | None:
        """Canonical names of the dtypes ``device`` offers, or None when the
        namespace cannot say (then every dtype is assumed)."""
        try:
            key: Any = (xp, device)
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in self._device_dtypes:
            return self._device_dtypes[key]
        names = _device_dtypes(xp, device)
        if key is not None:
            self._device_dtypes[key] = names
        return names


def _device_dtypes(xp: Any, device: Any) -> frozenset[str] | None:
    info = getattr(xp, "__array_namespace_info__", None)
    if info is None:
        return None
    try:
        dtypes: Collection[str] = info().dtypes(device=device)
    except Exception:  # an inspection API that does not know this device: assume everything
        return None
    return frozenset(dtypes)


def _strict() -> Any:
    """The ``array_api_strict`` module, or a clear error."""
    try:
        import array_api_strict
    except ImportError:
        raise BackendUnavailableError(
            "the 'array_api' backend makes its own arrays (from_numpy, or Python lists with no other "
            "operand) with array-api-strict, which is not installed: pip install array-api-strict"
        ) from None
    return array_api_strict


def _strict_device(xps: Any, device: Any) -> Any:
    if device is None or isinstance(device, xps.Device):
        return device
    if isinstance(device, str):
        match = _STRICT_DEVICE.fullmatch(device)
        try:
            return xps.Device(match.group(1) if match else device)
        except ValueError:
            pass
    names = ", ".join(str(d) for d in xps.__array_namespace_info__().devices())
    raise ConvArgumentError("from_numpy", "device", f"must name an array-api-strict device ({names})", device)


backend = ArrayApiBackend()
