"""MLX, imported on first use (never when polyconv or this backend is imported)."""

from __future__ import annotations

from typing import Any

from polyconv import caching

__all__ = ["mlx_core", "dtype", "TRACING"]

#: What MLX says when a value is read while ``mx.compile`` (or ``mx.vmap``) traces.
TRACING = "function transformations"


@caching.lru_cache(None, name="polyconv.backends.mlx.core")
def mlx_core() -> Any:
    """``mlx.core``, imported once."""
    import mlx.core as mx

    return mx


def dtype(name: str) -> Any:
    """MLX's dtype object of the canonical dtype name ``name``."""
    mx = mlx_core()
    return mx.bool_ if name == "bool" else getattr(mx, name)
