"""The dask backend: lazy, chunked convolutions of ``dask.array`` arrays, on a cluster too.

Registered as ``dask`` in the entry-point group ``polyconv.backends`` (the
``polyconv[dask]`` extra installs ``dask[array,distributed]``).  It owns
``dask.array.Array`` and takes a NumPy or CuPy kernel (or cotangent) next to
one (:meth:`DaskBackend.takes_alongside`).  Every op returns a lazy dask
array: nothing is computed before ``.compute()`` or ``.persist()``, on
whichever scheduler the user has chosen (threads by default, a
``dask.distributed`` cluster once a ``Client`` exists).

How a convolution becomes blocks is in :mod:`.graph` (the graph) and
:mod:`.blocks` (the index arithmetic); each block runs on the backend that
owns the chunk type (:mod:`.tasks`): the NumPy backend for NumPy chunks, the
CuPy backend (cuDNN) for CuPy chunks.  Importing this module imports no dask.

Examples
--------
>>> import numpy as np, dask.array as da, polyconv
>>> x = da.arange(12.0, chunks=5).reshape(1, 1, 12)
>>> y = polyconv.conv_general_dilated(x, np.ones((1, 1, 3)), (2,), 'SAME')
>>> type(y).__name__, y.chunks
('Array', ((1,), (1,), (3, 2, 1)))
>>> y.compute()
array([[[ 3.,  9., 15., 21., 27., 21.]]])
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from polyconv import derive
from polyconv.backend import Backend, Manifest
from polyconv.errors import ConvArgumentError
from polyconv.spec import ConvSpec, LocalSpec, PatchesSpec, dtype_name, vjp_lhs_plan

__all__ = ["DaskBackend", "backend", "chunking"]

_DTYPES = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
})

#: How :meth:`DaskBackend.from_numpy` chunks a NumPy array: a function of the
#: array giving dask ``chunks``, or None for dask's ``'auto'``.
_chunking: contextvars.ContextVar[Callable[[Any], Any] | None] = contextvars.ContextVar(
    "polyconv_dask_chunking", default=None
)


@contextlib.contextmanager
def chunking(policy: Callable[[Any], Any] | None) -> Iterator[None]:
    """Make :meth:`DaskBackend.from_numpy` chunk arrays with ``policy(array)``
    inside the block (the conformance suite chunks at random this way)."""
    token = _chunking.set(policy)
    try:
        yield
    finally:
        _chunking.reset(token)


def _dask_array() -> Any:
    import dask.array as da

    return da


class DaskBackend(Backend):
    """Runs on ``dask.array.Array``: a lazy graph of block convolutions, one
    per output block, each on the backend of the chunks (NumPy, CuPy)."""

    name = "dask"
    distribution = "dask"

    def __init__(self) -> None:
        dtypes = set(_DTYPES)
        if importlib.util.find_spec("ml_dtypes") is not None:
            dtypes.add("bfloat16")
        self.manifest = Manifest(
            dtypes=frozenset(dtypes),
            devices=("cpu", "cuda"),
            ops=frozenset({
                "conv_general_dilated", "conv_general_dilated_patches", "conv_general_dilated_local",
                "conv_general_dilated_vjp",
            }),
            # lazy: an output larger than this machine's memory is allowed (polyconv.output_size)
            features=frozenset({"lhs_dilation", "feature_group_count", "batch_group_count",
                                "preferred_element_type", "lazy"}),
            notes=(
                "results are lazy dask arrays: nothing runs before .compute() or .persist(), on the "
                "scheduler the user chose (threads by default, a dask.distributed Client once one exists)",
                "operands chunked along any axis: blocks planned from the output side with exact halos; "
                "feature chunks that cut a group's contraction give partial sums added in a tree",
                "each block runs on the backend of the chunk type (NumPy, or CuPy with cuDNN); the dtypes "
                "and precision rules are that backend's",
                "the kernel (a NumPy or CuPy array, or a dask array made one chunk) goes whole to each block",
                "conv_transpose is derived; the kernel's cotangent of the VJP is computed block by block",
            ),
        )

    # -- which arrays ---------------------------------------------------------------
    def owns(self, x: Any) -> bool:
        da = sys.modules.get("dask.array")
        return da is not None and isinstance(x, da.Array)

    def takes_alongside(self, x: Any) -> bool:
        """NumPy and CuPy arrays: the chunk types, taken as one-chunk dask arrays."""
        return _chunk_kind(x) is not None

    def device(self, x: Any) -> str:
        """``'cpu'`` for NumPy chunks, ``'cuda'`` for CuPy chunks (a dask array's
        chunks may live on any GPU: the device number is not told)."""
        if self.owns(x):
            x = x._meta
        return "cuda" if _chunk_kind(x) == "cupy" else "cpu"

    # -- making and reading arrays --------------------------------------------------
    def asarray(self, x: Any, like: Any = None) -> Any:
        """A Python scalar or list as a one-chunk dask array, of ``like``'s chunk type."""
        a = np.asarray(x)
        if like is not None and self.device(like) == "cuda":
            import cupy

            a = cupy.asarray(a)
        return _dask_array().from_array(a, chunks=-1)

    def from_numpy(self, a: Any, device: Any = None) -> Any:
        """A dask array of a copy of the NumPy array ``a``, chunked as the active
        :func:`chunking` policy says (dask's ``'auto'`` by default), with NumPy
        chunks (``device`` None or ``'cpu'``) or CuPy chunks (``'cuda'`` or
        ``'cuda:N'``: on CuPy's current device, whatever ``N``)."""
        if device not in (None, "cpu", "cuda") and not str(device).startswith("cuda:"):
            raise ConvArgumentError("from_numpy", "device", "must be None, 'cpu' or 'cuda'", device)
        policy = _chunking.get()
        chunks = "auto" if policy is None else policy(a)
        data: Any = np.array(a, copy=True)
        if device is not None and str(device).startswith("cuda"):
            import cupy

            data = cupy.asarray(data)
        return _dask_array().from_array(data, chunks=chunks)

    def to_numpy(self, x: Any) -> Any:
        """``x`` computed (on the current scheduler), as a NumPy array."""
        if self.owns(x):
            x = x.compute()
        if _chunk_kind(x) == "cupy":
            return x.get()
        return np.array(x, copy=True)

    # -- about ------------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("dask") is None:
            return "dask is not installed (pip install 'polyconv[dask]')"
        if importlib.util.find_spec("toolz") is None:
            return "dask.array's dependencies are not installed (pip install 'polyconv[dask]')"
        return None

    def details(self) -> str | None:
        """The scheduler that ``.compute()`` would use now (``python -m polyconv info``)."""
        return f"scheduler: {scheduler()}; blocks run on the chunks' backend (NumPy, CuPy)"

    # -- the ops --------------------------------------------------------------------
    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        from . import graph

        lhs, rhs = self._lazy(lhs, rhs)
        self._check_chunks(lhs, spec, "conv_general_dilated")
        return graph.conv(lhs, rhs, spec)

    def conv_general_dilated_patches(self, lhs: Any, spec: PatchesSpec) -> Any:
        from . import graph

        # copies of the input's elements, block by block (no identity-kernel products)
        return graph.patches(lhs, spec)

    def conv_general_dilated_local(self, lhs: Any, rhs: Any, spec: LocalSpec) -> Any:
        from . import graph

        lhs, rhs = self._lazy(lhs, rhs)
        dn = spec.dimension_numbers
        # the patches' features in one chunk: each position's product is one block product, not
        # partial products added up; float16 and bfloat16 products accumulate in float32 (the
        # patches are exact copies of the input, so nothing is lost in the cast)
        pat = self.conv_general_dilated_patches(lhs, spec.patches).rechunk({dn.out_spec[1]: -1})
        if spec.patches.conv.dtype in ("float16", "bfloat16"):
            pat = pat.astype("float32")
        # the kernel chunked like the patches' positions, so the products align block by block
        kernel = graph.as_dask(rhs, lhs).rechunk(
            {dn.rhs_spec[0]: -1, dn.rhs_spec[1]: -1,
             **{r: pat.chunks[o] for r, o in zip(dn.rhs_spec[2:], dn.out_spec[2:])}})
        return derive.local(self, lhs, kernel, spec, lambda x, patches_spec: pat, graph.position_products)

    def conv_general_dilated_vjp(self, lhs: Any, rhs: Any, cotangent: Any, spec: ConvSpec) -> tuple[Any, Any]:
        from . import graph

        op = "conv_general_dilated_vjp"
        lhs, rhs, cotangent = self._lazy(lhs, rhs, cotangent)
        self._check_chunks(lhs, spec, op)
        plan = vjp_lhs_plan(spec)
        if plan.conv is not None:
            self._check_chunks(lhs, plan.conv, op)
        lhs_dtype = derive.cotangent_dtype(lhs, cotangent)
        if 0 in rhs.shape or 0 in cotangent.shape:  # no products: zeros (dask cannot reshape empty arrays)
            dlhs = _dask_array().zeros_like(lhs, dtype=lhs_dtype)
        else:
            dlhs = derive.vjp_lhs(self, graph.as_dask(rhs, lhs), graph.as_dask(cotangent, lhs), plan, lhs_dtype)
        drhs = graph.kernel_grad(lhs, rhs, cotangent, spec, dtype_name(derive.cotangent_dtype(rhs, cotangent)))
        return dlhs, drhs

    def _lazy(self, *arrays: Any) -> list[Any]:
        """The operands, with a NumPy or CuPy lhs or cotangent (next to a dask
        kernel, say) taken as a one-chunk dask array; the kernel (index 1) is
        left as it is (the graph takes it whole: :func:`.graph.as_dask`)."""
        like = next(a for a in arrays if self.owns(a))
        out = []
        for i, a in enumerate(arrays):
            if not self.owns(a) and i != 1:  # the kernel (index 1) stays whole: graph.as_dask
                from .graph import as_dask

                a = as_dask(a, like)
            out.append(a)
        return out

    def _check_chunks(self, lhs: Any, spec: ConvSpec, op: str) -> None:
        """The chunk backend must be able to run the blocks: its manifest's rules."""
        from .tasks import chunk_backend

        be = chunk_backend(lhs._meta)
        be.manifest.check(spec, f"{be.name}, of the dask array's chunks,", op)


def _chunk_kind(x: Any) -> str | None:
    """``'numpy'`` or ``'cupy'`` for an array of those, else None (no import)."""
    np_mod = sys.modules.get("numpy")
    if np_mod is not None and isinstance(x, np_mod.ndarray):
        return "numpy"
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(x, cupy.ndarray):
        return "cupy"
    return None


def scheduler() -> str:
    """What ``.compute()`` of a dask array would run on now, in words, in dask's
    own order: the scheduler set in ``dask.config`` (which a ``dask.distributed``
    client sets when it becomes the default), else dask's threads.

    Imports nothing: without dask imported, dask's default is told.

    >>> scheduler().startswith('the ') or scheduler().startswith('dask.distributed')
    True
    """
    default = "the threaded scheduler (dask's default for arrays)"
    if "dask" not in sys.modules:
        return default
    import dask

    name = dask.config.get("scheduler", None)
    if name is None:
        return default
    distributed = sys.modules.get("distributed")
    if name in ("dask.distributed", "distributed") and distributed is not None:
        try:
            client = distributed.default_client()
        except ValueError:  # no client any more
            return f"the {name!r} scheduler (dask.config), with no client"
        workers = len(client.scheduler_info().get("workers", {}))
        return f"dask.distributed at {client.scheduler.address} ({workers} workers)"
    return f"the {name!r} scheduler (dask.config)"


backend = DaskBackend()
