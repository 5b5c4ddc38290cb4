"""polyconv's public functions as single nodes of ``torch.compile`` graphs.

The registration itself lives in :mod:`polyconv.backends.autoload`, with the
list of the points where it happens; this is the torch backend's way in.
"""

from __future__ import annotations

from polyconv.backends.autoload import try_register

__all__ = ["allow_in_compiled_graphs"]


def allow_in_compiled_graphs() -> bool:
    """Register every public op with ``torch.compiler.allow_in_graph``, if
    torch and :mod:`polyconv.ops` are imported (imports neither: with
    :mod:`polyconv.ops` imported later, its own import registers them).

    Dynamo then puts each call into the graph as it stands; AOTAutograd
    traces it with fake tensors, through dispatch and parsing (which run on
    shapes and dtypes only) down to the PyTorch ops, and differentiates those.
    Returns whether they are registered; a failure is a warning.
    """
    return try_register("as the torch backend loaded")
