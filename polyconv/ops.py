"""The public convolution functions: normalise, dispatch, run.

Each function is its op's declaration in :mod:`polyconv.operations` with
``jax.lax``'s signature and documentation: it resolves the backend (which
checks that the operands belong to one framework and one device), turns
Python scalars and lists into that backend's arrays, parses every argument
into a spec (raising polyconv errors before any backend computes anything),
checks it against the backend's manifest, and only then runs the backend's
runner for the spec, else its own method, else the op's derivation from the
primitive: one path for every op (:func:`_call`).
"""

from __future__ import annotations

import logging
import marshal
import sys
from collections.abc import Callable
from typing import Any

from . import caching, quiet
from .algorithm import _mode as _fft_mode_context
from .backend import Backend, is_neutral
from .dispatch import _context as _dispatch_context
from .dispatch import check_devices, check_operands, logger, resolve
from .errors import ConvTypeError, DtypeMismatchError
from .operations import OPERATIONS, Operation, native_method
from .spec import dtype_name

# the key's parts, bound once: the innermost use_backend, the FFT mode, the environment variables
_backend_context, _fft_context = _dispatch_context.get, _fft_mode_context.get
_env, (_ENV_BACKEND, _ENV_BLOCK) = caching.environ_get, caching.ENVIRON_KEYS  # caching.environment(), inline

_CONV, _TRANSPOSE, _PATCHES, _LOCAL, _VJP = (OPERATIONS[name] for name in (
    "conv_general_dilated", "conv_transpose", "conv_general_dilated_patches", "conv_general_dilated_local",
    "conv_general_dilated_vjp"))

#: Whole-call decisions by call signature: the backend, the parsed spec, the runner, and the
#: device check of a repeated call (None where it needs none); see _setup.
calls: caching.BoundedCache[Any, tuple[Backend, Any, Callable[..., Any] | None, Callable[..., bool] | None]] = \
    caching.BoundedCache("polyconv.ops.calls", 4096)
_get = calls.get  # the entries' own dict.get (BoundedCache never replaces its dict)
_dumps = marshal.dumps
#: marshal's format for the arguments in the key: version 2 writes equal values as equal bytes (versions 3
#: and 4 write a repeated object, an interned string, as a reference) and takes 0.1 us less than 4 on them.
_MARSHAL_VERSION = 2

__all__ = [
    "conv_general_dilated",
    "conv_transpose",
    "conv_general_dilated_patches",
    "conv_general_dilated_local",
    "conv_general_dilated_vjp",
]


def conv_general_dilated(
    lhs: Any,
    rhs: Any,
    window_strides: Any,
    padding: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    *,
    backend: str | None = None,
) -> Any:
    """General n-dimensional convolution with dilation, as ``jax.lax.conv_general_dilated``.

    Runs on the backend that owns the operands (NumPy, CuPy, PyTorch, JAX,
    any array-API library) and returns that framework's array, on the
    operands' device.

    Parameters
    ----------
    lhs
        Input, rank ``n + 2``.
    rhs
        Kernel, rank ``n + 2``.
    window_strides
        ``n`` positive integers.
    padding
        ``'SAME'``, ``'SAME_LOWER'``, ``'VALID'`` or ``n`` ``(low, high)``
        pairs; negative pads crop.
    lhs_dilation, rhs_dilation
        None or ``n`` positive integers.  lhs dilation is transposed
        convolution; rhs dilation is atrous convolution.  String padding
        with lhs dilation is an error.
    dimension_numbers
        None (``NC<spatial>``, ``OI<spatial>``, ``NC<spatial>``), a
        :class:`~polyconv.ConvDimensionNumbers`, or three strings such as
        ``('NHWC', 'HWIO', 'NHWC')``.  Strides, dilations and padding follow
        the order of the spatial letters in the rhs string.
    feature_group_count, batch_group_count
        Grouping as in XLA; at most one of them may exceed 1.
    precision
        None, ``'default'``, ``'high'``, ``'highest'``, a
        ``jax.lax.Precision``, or a pair of them (lhs, rhs).
    preferred_element_type
        Accumulation and output dtype, or None for the operands' dtype.
    backend
        Name of the backend to use, overriding every other rule.

    Returns
    -------
    array
        The convolution, of the operands' framework and device.

    Raises
    ------
    polyconv.errors.PolyconvError
        A subclass naming the parameter and value, for any invalid argument,
        before any backend runs.

    Examples
    --------
    >>> import numpy as np, polyconv
    >>> x = np.arange(6.0).reshape(1, 1, 6)      # N, C, W
    >>> w = np.array([1.0, -1.0]).reshape(1, 1, 2)  # O, I, W
    >>> polyconv.conv_general_dilated(x, w, (1,), 'VALID')
    array([[[-1., -1., -1., -1., -1.]]])
    """
    return _call(_CONV, (lhs, rhs), backend, (window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                                             feature_group_count, batch_group_count, precision,
                                             preferred_element_type))


def conv_transpose(
    lhs: Any,
    rhs: Any,
    strides: Any,
    padding: Any,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    transpose_kernel: bool = False,
    precision: Any = None,
    preferred_element_type: Any = None,
    use_consistent_padding: bool = False,
    *,
    backend: str | None = None,
) -> Any:
    """N-d transposed ("fractionally strided") convolution, as ``jax.lax.conv_transpose``.

    Parameters
    ----------
    lhs, rhs
        Input and kernel, rank ``n + 2``.
    strides
        ``n`` positive integers: the fractional stride (the lhs is dilated by it).
    padding
        ``'SAME'`` or ``'VALID'`` (the transpose of the forward convolution
        with that padding: ``'SAME'`` gives ``in * stride`` outputs), or ``n``
        ``(low, high)`` pairs: the padding of the transposed convolution
        itself, or, with ``use_consistent_padding=True``, of the forward
        convolution it transposes (PyTorch's convention).
    rhs_dilation
        None or ``n`` positive integers (atrous kernel).
    dimension_numbers
        As in :func:`conv_general_dilated`; the default is TensorFlow's
        channels-last layout (``'NHWC', 'HWIO', 'NHWC'`` in 2-d), for any
        number of spatial dims (JAX stops at 3).
    transpose_kernel
        Flip the kernel's spatial axes and swap its I and O axes, which makes
        the result the gradient of a forward convolution with the same kernel
        (Keras ``Conv2DTranspose``).
    precision, preferred_element_type
        As in :func:`conv_general_dilated`.
    use_consistent_padding
        Read explicit pairs as the forward convolution's padding.
    backend
        Name of the backend to use.

    Examples
    --------
    >>> import numpy as np, polyconv
    >>> x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1)     # N, W, C
    >>> w = np.array([1.0, 10.0]).reshape(2, 1, 1)         # W, I, O
    >>> polyconv.conv_transpose(x, w, (2,), 'SAME')[0, :, 0]
    array([10.,  1., 20.,  2., 30.,  3.])
    >>> polyconv.conv_transpose(x, w, (2,), 'SAME', transpose_kernel=True)[0, :, 0]
    array([ 1., 10.,  2., 20.,  3., 30.])
    """
    return _call(_TRANSPOSE, (lhs, rhs), backend, (strides, padding, rhs_dilation, dimension_numbers,
                                                  transpose_kernel, precision, preferred_element_type,
                                                  use_consistent_padding))


def conv_general_dilated_patches(
    lhs: Any,
    filter_shape: Any,
    window_strides: Any,
    padding: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    precision: Any = None,
    preferred_element_type: Any = None,
    *,
    backend: str | None = None,
) -> Any:
    """The patches a convolution would see, as ``jax.lax.conv_general_dilated_patches``.

    The output's feature axis holds each window, ordered ``"C"`` then the
    rhs spatial letters (channel-major), of size
    ``lhs.shape[C] * prod(filter_shape)``; ``filter_shape`` is in the order
    of the rhs spec's spatial letters.  Other parameters as in
    :func:`conv_general_dilated`.

    Examples
    --------
    >>> import numpy as np, polyconv
    >>> x = np.arange(4.0).reshape(1, 1, 4)
    >>> polyconv.conv_general_dilated_patches(x, (2,), (1,), 'VALID')[0]
    array([[0., 1., 2.],
           [1., 2., 3.]])
    """
    return _call(_PATCHES, (lhs,), backend, (filter_shape, window_strides, padding, lhs_dilation, rhs_dilation,
                                            dimension_numbers, precision, preferred_element_type))


def conv_general_dilated_local(
    lhs: Any,
    rhs: Any,
    window_strides: Any,
    padding: Any,
    filter_shape: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    precision: Any = None,
    *,
    backend: str | None = None,
) -> Any:
    """Unshared ("locally connected") convolution, as ``jax.lax.conv_general_dilated_local``.

    Each output position has its own kernel: ``rhs``'s spatial axes are the
    output positions, and its I axis is the patch axis of
    :func:`conv_general_dilated_patches` (size ``C * prod(filter_shape)``,
    ordered ``"C"`` then the rhs spatial letters).

    Examples
    --------
    >>> import numpy as np, polyconv
    >>> x = np.arange(4.0).reshape(1, 1, 4)                  # N, C, W
    >>> w = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]).reshape(1, 2, 3)  # O, I=C*2, W_out
    >>> polyconv.conv_general_dilated_local(x, w, (1,), 'VALID', (2,))
    array([[[0., 2., 5.]]])
    """
    return _call(_LOCAL, (lhs, rhs), backend, (window_strides, padding, filter_shape, lhs_dilation, rhs_dilation,
                                              dimension_numbers, precision))


def conv_general_dilated_vjp(
    lhs: Any,
    rhs: Any,
    cotangent: Any,
    window_strides: Any,
    padding: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    *,
    backend: str | None = None,
) -> tuple[Any, Any]:
    """Cotangents of ``conv_general_dilated`` with respect to lhs and rhs.

    For ``out = conv_general_dilated(lhs, rhs, ...)`` and a ``cotangent`` of
    ``out``'s shape and dtype, returns ``(d lhs, d rhs)``: the vector-Jacobian
    products, each computed as one more convolution (the cotangent with the
    flipped kernel, and the lhs with the cotangent), for every combination of
    parameters.  Results have the dtypes of lhs and rhs, except that integer
    or bool operands with a floating cotangent (a floating
    ``preferred_element_type``) get cotangents of the cotangent's dtype.

    Examples
    --------
    >>> import numpy as np, polyconv
    >>> x = np.arange(4.0).reshape(1, 1, 4)
    >>> w = np.array([1.0, 2.0]).reshape(1, 1, 2)
    >>> dx, dw = polyconv.conv_general_dilated_vjp(x, w, np.ones((1, 1, 3)), (1,), 'VALID')
    >>> dx, dw
    (array([[[1., 3., 3., 2.]]]), array([[[3., 6.]]]))
    """
    result: tuple[Any, Any] = _call(
        _VJP, (lhs, rhs, cotangent), backend, (window_strides, padding, lhs_dilation, rhs_dilation,
                                              dimension_numbers, feature_group_count, batch_group_count, precision,
                                              preferred_element_type))
    return result


def _call(operation: Operation, arrays: tuple[Any, ...], backend: str | None, params: tuple[Any, ...]) -> Any:
    """One call of ``operation``: the backend's runner for the spec where it has one, else its
    native method, else the derivation from the primitive (:mod:`polyconv.operations`).

    The repeated call (a hit in :data:`calls`) is spelled out here, the path every call of a
    loop takes: the key, one comparison with the latest hit's key (:attr:`~polyconv.caching.
    BoundedCache.last`; else one look-up), the devices, the runner.  The key fixes every input of
    backend resolution and parsing: the arguments with their types (:mod:`marshal` refuses
    other objects than ints, floats, bools, strings, None and sequences of them, but writes
    any buffer, a NumPy scalar, as bytes: :func:`_setup` stores a call only when its
    arguments survive the round trip), ``backend=``, the ``use_backend`` context, the FFT
    mode, the environment variables, and the operands' types, shapes and dtypes.  Python
    scalars and lists as operands have no ``shape`` (no key); those with one (a NumPy scalar
    is a ``float``) get a key :func:`_setup` never stores, so neither costs a test here."""
    try:
        if len(arrays) == 2:  # the common case, spelled out
            a, b = arrays
            key: Any = (operation.name, _dumps(params, _MARSHAL_VERSION), backend, _backend_context(),
                        _fft_context(), _env(_ENV_BACKEND), _env(_ENV_BLOCK),
                        type(a), a.shape, a.dtype, type(b), b.shape, b.dtype)
        else:
            key = (operation.name, _dumps(params, _MARSHAL_VERSION), backend, _backend_context(), _fft_context(),
                   _env(_ENV_BACKEND), _env(_ENV_BLOCK), *[(type(a), a.shape, a.dtype) for a in arrays])
        last = calls.last
        if key == last[0]:  # the same call as the latest hit: a loop's
            hit = last[1]
        else:
            hit = _get(key)
            if hit is not None:
                calls.last = (key, hit)
    except (ValueError, TypeError, AttributeError):  # lists, arrays, enums as arguments; an unhashable dtype
        key = hit = None
    if hit is not None:
        be, spec, runner, same_device = hit
        if same_device is not None and (len(arrays) != 2 or not same_device(*arrays)):
            _same_devices(be, operation, arrays)  # raises where they differ
        if runner is not None:
            return runner(*arrays)
        prepared: Any = arrays
    else:
        be, prepared, spec, runner = _setup(operation, arrays, backend, params, key)
    if runner is not None:
        return runner(*prepared)
    if operation.derive is None:  # the primitive: every backend has it
        return getattr(be, operation.name)(*prepared, spec)
    native = native_method(be, operation.name)
    if native is not None:
        return native(*prepared, spec)
    return quiet.call(operation.derive, be, *prepared, spec)


def _same_devices(be: Backend, operation: Operation, arrays: tuple[Any, ...]) -> None:
    """The device check of a repeated call beyond :func:`_call`'s two-operand one: raise,
    naming them, unless ``arrays`` share ``be``'s device."""
    if not all(be.same_device(arrays[0], a) for a in arrays[1:]):
        check_devices(be, arrays, operation.operands, operation.name)


def _setup(
    operation: Operation,
    arrays: tuple[Any, ...],
    backend: str | None,
    params: tuple[Any, ...],
    key: Any = None,
) -> tuple[Backend, list[Any], Any, Callable[..., Any] | None]:
    """The backend, the operands as its arrays, the parsed spec, and the
    backend's runner for it (:meth:`Backend.runner`), if it has one.

    Resolves the backend (:func:`_prepare`) and parses the arguments
    (:meth:`Operation.parse`, which raises polyconv errors and checks the
    manifest).  With the call's ``key`` (:func:`_call`, after a miss), the
    decision is stored under it, so that repeated calls with arrays of the
    same types, shapes and dtypes and the same arguments in the same dispatch
    context reuse it (only the device check runs again), unless an operand
    was a Python list or scalar or an argument did not survive :mod:`marshal`.
    """
    op, names = operation.name, operation.operands
    # only here: a call of a masked array raises and one of a np.matrix is not cached, so no hit has one
    checked = check_operands(op, arrays, names, _rank(arrays, params))
    be, prepared = _prepare(op, checked, names, backend)
    try:
        spec = operation.parse(be, prepared, params)
    except DtypeMismatchError as exc:
        _say_which_came_from_python(exc, be, checked, prepared, names)
        raise
    make_runner = getattr(be, "runner", None)  # duck-typed backends may lack it
    runner = make_runner(op, spec) if make_runner is not None else None
    if logger.isEnabledFor(logging.DEBUG):  # the strategy, as polyconv.explain gives it
        from .explanation import _explain

        e = _explain(be, op, spec, runner is not None)
        logger.debug("%s: strategy %r on %r (%s): %s", op, e.strategy, be.name, e.path, e.why)
        for part in e.parts:
            logger.debug("%s: derived via %s: strategy %r: %s", op, part.op, part.strategy, part.why)
    if key is not None and all(c is a and not is_neutral(a) for c, a in zip(checked, arrays)) \
            and _cacheable(key, params):
        # a repeated call checks devices unless the backend has one, or its runner checks them itself
        same_device = None if be.single_device or getattr(runner, "checks_devices", False) else be.same_device
        calls.put(key, (be, spec, runner, same_device))
    return be, prepared, spec, runner


def _say_which_came_from_python(
    exc: DtypeMismatchError, be: Backend, given: tuple[Any, ...], prepared: list[Any], names: tuple[str, ...]
) -> None:
    """Add to a dtype mismatch which operands were Python lists or scalars,
    and the dtype the backend made of each (NumPy makes float64 of floats)."""
    notes = [
        f"{name} was a Python {type(g).__name__}, which the {be.name} backend made a {dtype_name(p.dtype)} array"
        for name, g, p in zip(names, given, prepared) if is_neutral(g)
    ]
    if notes:
        exc.args = (f"{exc.args[0]} ({'; '.join(notes)}: pass it as an array of the dtype you mean)",)


def _rank(arrays: tuple[Any, ...], params: tuple[Any, ...]) -> int:
    """The rank of the call's operands as far as it can be told before parsing
    (for :func:`~polyconv.dispatch.check_operands`): two more than the length
    of the first parameter (every op's first one has an entry per spatial
    dimension), else the rank of an operand of rank above 2, else 2; parsing
    then checks it."""
    first = params[0]
    if not isinstance(first, (str, bytes)):
        try:
            return len(first) + 2
        except TypeError:
            pass
    for a in arrays:  # a matrix is 2-d: another rank is another operand's
        rank = 2 if is_neutral(a) else len(getattr(a, "shape", ()))
        if rank > 2:
            return rank
    return 2


def _cacheable(key: Any, params: tuple[Any, ...]) -> bool:
    """Whether a call may be cached under ``key`` (hashed already: :func:`_call` looked it up):
    its parameters are exactly what marshal wrote (no buffer written as bytes)."""
    try:
        return bool(marshal.loads(key[1]) == params)
    except (TypeError, ValueError):
        return False


def _prepare(
    op: str, arrays: tuple[Any, ...], names: tuple[str, ...], backend: str | None
) -> tuple[Backend, list[Any]]:
    """Resolve the backend, then turn Python scalars and lists into its arrays
    (on the device of the first real array)."""
    be = resolve(arrays, backend, op, params=names)
    like = next((a for a in arrays if not is_neutral(a)), None)
    out = []
    for name, a in zip(names, arrays):
        if is_neutral(a):
            a = _from_python(be, a, like, op, name)
            like = a if like is None else like
        out.append(a)
    return be, out


def _from_python(be: Backend, value: Any, like: Any, op: str, param: str) -> Any:
    """A Python scalar or nested list as the backend's array, or a polyconv error."""
    try:
        return be.asarray(value, like=like)
    except (ValueError, TypeError) as exc:  # ragged lists, strings in lists...
        text = repr(value)
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise ConvTypeError(
            op, param, f"must be an array or a rectangular nested list of numbers ({exc})", got=shown
        ) from None


# torch.compile: with torch imported first, this module's functions are registered with it
# now, at the end, once they all exist (polyconv.backends.autoload lists every point where
# that happens).  Importing this module loads no backend.
if "torch" in sys.modules:
    from .backends.autoload import on_api_import

    on_api_import()
