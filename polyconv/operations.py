"""The table of ops: one declaration per public convolution op.

Each :class:`Operation` says everything polyconv knows about an op besides
its documentation: its name (the ``jax.lax`` function's), its operands, the
parser that turns its arguments into a spec (:mod:`polyconv.spec`), the
primitive ``conv_general_dilated`` spec the backend's manifest is checked
against, the output to check for size, any check of the operands beyond
the spec, and how the op is derived from the primitive where a backend has
no method of its own (:mod:`polyconv.derive`).  :mod:`polyconv.ops` builds
the public functions from it (one path for every op: the backend's runner,
else its native method, else the derivation), the reference of the
conformance suite parses its arguments with it, and ``polyconv.__all__``
lists its names.

Examples
--------
>>> [op.name for op in OPERATIONS.values()]  # doctest: +NORMALIZE_WHITESPACE
['conv_general_dilated', 'conv_transpose', 'conv_general_dilated_patches',
 'conv_general_dilated_local', 'conv_general_dilated_vjp']
>>> OPERATIONS["conv_transpose"].operands
('lhs', 'rhs')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import derive
from .backend import Backend
from .errors import ConvShapeError, DtypeMismatchError
from .output_size import check_output
from .spec import (
    ConvSpec,
    conv_spec,
    conv_transpose_spec,
    dtype_name,
    local_spec,
    patches_spec,
    vjp_lhs_plan,
    vjp_rhs_plan,
)

__all__ = ["Operation", "OPERATIONS", "NAMES", "native_method"]


@dataclass(frozen=True)
class Operation:
    """One public op.

    Attributes
    ----------
    name
        The public function's name, and the backend method's (``jax.lax``'s).
    operands
        The array operands' names, in order (errors name them).
    spec_operands
        How many of the operands the spec is parsed from (their shapes and
        dtypes); the others are checked by ``check_operands``.
    make_spec
        ``make_spec(*shapes, *dtypes, *params, op=name)``: the parser of
        :mod:`polyconv.spec`, raising polyconv errors.
    primitive
        The ``conv_general_dilated`` spec of a parsed spec (what the manifest
        checks; for the derivation, what it computes).
    output
        ``(shape, dtype)`` of the result, checked before any backend runs
        (:mod:`polyconv.output_size`), or None.
    derive
        ``derive(backend, *operands, spec)`` where a backend has neither a
        runner nor a method of its own, or None for the primitive, which
        every backend has.
    check_operands
        ``check_operands(spec, operands)``: checks of the operands beyond the
        spec's (the VJP's cotangent), or None.
    """

    name: str
    operands: tuple[str, ...]
    spec_operands: int
    make_spec: Callable[..., Any]
    primitive: Callable[[Any], ConvSpec]
    output: Callable[[Any], tuple[tuple[int, ...], str]] | None
    derive: Callable[..., Any] | None
    check_operands: Callable[[Any, Sequence[Any]], None] | None = None

    def spec(self, arrays: Sequence[Any], params: Sequence[Any]) -> Any:
        """The parsed spec of a call with ``arrays`` (anything with ``shape``
        and ``dtype``) and ``params`` (the op's other arguments, in order)."""
        spec_arrays = arrays[:self.spec_operands]
        return self.make_spec(*(tuple(a.shape) for a in spec_arrays), *(a.dtype for a in spec_arrays), *params,
                              op=self.name)

    def parse(self, be: Backend, arrays: Sequence[Any], params: Sequence[Any]) -> Any:
        """:meth:`spec`, then the operands' own checks, the output's size and
        ``be``'s manifest: every polyconv error of a call, before ``be`` runs."""
        spec = self.spec(arrays, params)
        if self.check_operands is not None:
            self.check_operands(spec, arrays)
        if self.output is not None:
            shape, dtype = self.output(spec)
            check_output(self.name, shape, dtype, lazy="lazy" in be.manifest.features)
        be.manifest.check(self.primitive(spec), be.name, self.name)
        return spec


def _vjp_cotangent(spec: ConvSpec, arrays: Sequence[Any]) -> None:
    cotangent = arrays[2]
    op = "conv_general_dilated_vjp"
    if tuple(cotangent.shape) != spec.out_shape:
        raise ConvShapeError(
            op, "cotangent", f"must have the shape of the convolution's output {spec.out_shape}",
            got=f"shape {tuple(cotangent.shape)}",
        )
    if dtype_name(cotangent.dtype) != spec.out_dtype:
        raise DtypeMismatchError(
            op, "cotangent", f"must have the dtype of the convolution's output ({spec.out_dtype})",
            got=dtype_name(cotangent.dtype), hint=f"Cast the cotangent to {spec.out_dtype} first",
        )


def native_method(be: Backend, name: str) -> Any:
    """The backend's own implementation of op ``name``, if its manifest lists one."""
    return getattr(be, name) if name in be.manifest.ops and hasattr(be, name) else None


def _derive_local(be: Backend, lhs: Any, rhs: Any, spec: Any) -> Any:
    return derive.local(be, lhs, rhs, spec, native_method(be, "conv_general_dilated_patches"))


def _derive_vjp(be: Backend, lhs: Any, rhs: Any, cotangent: Any, spec: ConvSpec) -> tuple[Any, Any]:
    """The two convolutions of the VJP, each checked against the manifest first."""
    lhs_plan, rhs_plan = vjp_lhs_plan(spec), vjp_rhs_plan(spec)
    for plan in (lhs_plan.conv, rhs_plan.conv):
        if plan is not None:
            be.manifest.check(plan, be.name, "conv_general_dilated_vjp")
    return (
        derive.vjp_lhs(be, rhs, cotangent, lhs_plan, derive.cotangent_dtype(lhs, cotangent)),
        derive.vjp_rhs(be, lhs, rhs, cotangent, rhs_plan, derive.cotangent_dtype(rhs, cotangent)),
    )


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation("conv_general_dilated", ("lhs", "rhs"), 2, conv_spec, lambda s: s,
              lambda s: (s.out_shape, s.out_dtype), None),
    Operation("conv_transpose", ("lhs", "rhs"), 2, conv_transpose_spec, lambda s: s.conv,
              lambda s: (s.out_shape, s.conv.out_dtype), derive.conv_transpose),
    Operation("conv_general_dilated_patches", ("lhs",), 1, patches_spec, lambda s: s.conv,
              lambda s: (s.out_shape, s.conv.out_dtype), derive.patches),
    Operation("conv_general_dilated_local", ("lhs", "rhs"), 2, local_spec, lambda s: s.patches.conv,
              lambda s: (s.out_shape, s.patches.conv.out_dtype), _derive_local),
    Operation("conv_general_dilated_vjp", ("lhs", "rhs", "cotangent"), 2, conv_spec, lambda s: s, None,
              _derive_vjp, _vjp_cotangent),
)}

#: The public ops' names, in the table's order.
NAMES: tuple[str, ...] = tuple(OPERATIONS)
