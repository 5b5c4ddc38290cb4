"""polyconv's public functions as single nodes of ``torch.compile`` graphs."""

from __future__ import annotations

from typing import Any

__all__ = ["allow_in_compiled_graphs"]


def allow_in_compiled_graphs(torch: Any) -> None:
    """Register every public op with ``torch.compiler.allow_in_graph``.

    Dynamo then puts each call into the graph as it stands; AOTAutograd
    traces it with fake tensors, through dispatch and parsing (which run on
    shapes and dtypes only) down to the PyTorch ops, and differentiates those.
    """
    from polyconv import ops

    allow = getattr(getattr(torch, "compiler", None), "allow_in_graph", None)
    if allow is None:  # PyTorch without torch.compiler
        return
    for name in ops.__all__:
        allow(getattr(ops, name))
