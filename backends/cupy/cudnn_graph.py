"""cuDNN through NVIDIA's cuDNN frontend (``nvidia-cudnn-frontend``, module ``cudnn``).

The only code of the CuPy backend that talks to cuDNN, kept to the graph
API calls themselves: :meth:`CudnnEngine.build` turns a
:class:`~.cudnn_plan.CudnnPlan` into a built ``cudnn.pygraph`` (one
convolution node; heuristics A then FALLBACK; engines carrying the plan's
numerical notes deselected), and :meth:`CudnnEngine.execute` runs it on
CuPy arrays, on the handle of the calling thread and current device, with
that handle set to CuPy's current stream, and a workspace from CuPy's
memory pool (stream-ordered like every CuPy allocation).

Needs a GPU: nothing here runs in the test suite of a machine without one.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from .cudnn_plan import CUDNN_DATA_TYPES, CudnnPlan

__all__ = ["CudnnEngine", "Built"]

#: cuDNN's tensor descriptors promise this alignment of every operand.
ALIGNMENT = 16


@dataclass(frozen=True)
class Built:
    """A built graph, its three tensors, and the workspace it needs in bytes."""

    graph: Any
    x: Any
    w: Any
    y: Any
    workspace: int


class CudnnEngine:
    """Builds and runs :class:`~.cudnn_plan.CudnnPlan` graphs.

    Construction imports the frontend and asks cuDNN its version, so a
    missing ``libcudnn`` shows up here (the caller records the error and
    uses the gather-GEMM), not at the first convolution.
    """

    def __init__(self) -> None:
        import cudnn
        import cupy

        self._cudnn = cudnn
        self._cupy = cupy
        self._local = threading.local()
        version = int(cudnn.backend_version())
        #: ``'nvidia-cudnn-frontend X, cuDNN M.m.p'``.
        self.version = (
            f"nvidia-cudnn-frontend {getattr(cudnn, '__version__', '?')}, "
            f"cuDNN {version // 10000}.{version % 10000 // 100}.{version % 100}"
        )

    def _type(self, name: str) -> Any:
        return getattr(self._cudnn.data_type, CUDNN_DATA_TYPES[name])

    def _handle(self) -> Any:
        """This thread's cuDNN handle for the current device (cuDNN handles
        are per device, and not to be shared between threads)."""
        handles = self._local.__dict__.setdefault("handles", {})
        device = self._cupy.cuda.runtime.getDevice()
        handle = handles.get(device)
        if handle is None:
            handle = handles[device] = self._cudnn.create_handle()
        return handle

    def build(self, plan: CudnnPlan, device: Hashable) -> Built:
        """The built graph of ``plan`` for the current device (``device`` names it
        for the caller's cache); raises when cuDNN has no engine for it."""
        cudnn = self._cudnn
        io, compute = self._type(plan.io_dtype), self._type(plan.compute_dtype)
        graph = cudnn.pygraph(
            handle=self._handle(), io_data_type=io, intermediate_data_type=io, compute_data_type=compute
        )
        x = graph.tensor(name="x", dim=list(plan.x_dims), stride=list(plan.x_strides), data_type=io)
        w = graph.tensor(name="w", dim=list(plan.w_dims), stride=list(plan.w_strides), data_type=io)
        attributes = {
            "pre_padding": list(plan.pre_padding), "post_padding": list(plan.post_padding),
            "stride": list(plan.stride), "dilation": list(plan.dilation),
            "compute_data_type": compute, "name": "conv",
        }
        if plan.op == "fprop":
            y = graph.conv_fprop(image=x, weight=w, **attributes)
        else:
            y = graph.conv_dgrad(loss=x, filter=w, **attributes)
        y.set_output(True).set_data_type(io).set_dim(list(plan.y_dims)).set_stride(list(plan.y_strides))
        graph.validate()
        graph.build_operation_graph()
        graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        notes = [getattr(cudnn.numerical_note, n) for n in plan.avoid_notes if hasattr(cudnn.numerical_note, n)]
        if notes:
            graph.deselect_numeric_notes(notes)
        graph.check_support()
        graph.build_plans()
        return Built(graph, x, w, y, int(graph.get_workspace_size()))

    def execute(self, built: Built, x: Any, w: Any, y: Any) -> None:
        """Run ``built`` on CuPy arrays: ``y`` is written, on CuPy's current stream."""
        cupy = self._cupy
        handle = self._handle()
        self._cudnn.set_stream(handle, cupy.cuda.get_current_stream().ptr)
        workspace = cupy.empty((built.workspace,), dtype=cupy.uint8)
        built.graph.execute({built.x: _ready(x), built.w: _ready(w), built.y: y}, workspace, handle=handle)


def _ready(a: Any) -> Any:
    """``a`` C-contiguous and aligned as cuDNN's descriptors promise (a copy when it is not)."""
    if a.flags.c_contiguous and a.data.ptr % ALIGNMENT == 0:
        return a
    return a.copy(order="C")
