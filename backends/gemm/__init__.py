"""The gather-GEMM convolution, shared by the matrix-product backends.

One implementation of ``conv_general_dilated`` as gathered matrix products,
written against the array API standard: the NumPy backend runs it with
NumPy, the generic ``array_api`` backend with the operands' own namespace
(``array_api_compat.array_namespace``), and a CuPy backend would run it on
cuBLAS by passing CuPy.  :mod:`.gathered` is the algorithm, :mod:`.windows` the
per-axis index tables, :mod:`.accumulation` the accumulation policy.

This package is not a backend: it registers no entry point.
"""

from __future__ import annotations

from .accumulation import GemmDtypes, plan_dtypes
from .gathered import MIN_ROWS, WORKSPACE_BYTES, conv_general_dilated
from .windows import axis_table

__all__ = ["conv_general_dilated", "WORKSPACE_BYTES", "MIN_ROWS", "GemmDtypes", "plan_dtypes", "axis_table"]
