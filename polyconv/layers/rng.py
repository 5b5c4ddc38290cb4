"""Random number sources for the layers' initialisers, of any framework.

``layer.init(rng, x)`` takes ``rng`` as

* a non-negative ``int`` seed,
* a ``numpy.random.Generator`` or ``numpy.random.SeedSequence``,
* a JAX PRNG key, typed (``jax.random.key``) or raw (``jax.random.PRNGKey``,
  a ``uint32`` vector),
* a ``torch.Generator`` (``torch.default_generator`` for torch's global seed).

Each parameter gets its own key, which is what the parameter's initialiser
(``kernel_init``, ``bias_init``) receives:

* from a JAX key: the JAX key Flax itself derives for that parameter (the
  root key folded with the SHA-1 hash of the parameter's creation count, 1
  for the kernel, 2 for the bias), so Flax's and JAX's own initialisers give
  exactly ``flax.linen``'s parameters;
* from anything else: a ``numpy.random.Generator`` of its own, spawned from
  a ``numpy.random.SeedSequence`` of the seed (an int), of entropy drawn from
  the generator (a NumPy or torch generator, which therefore advance), or
  of the seed sequence itself.

:func:`generator` turns any of these kinds into a ``numpy.random.Generator``:
polyconv's own initialisers draw with NumPy from whatever key they get.
Frameworks are recognised through ``sys.modules``; none is imported here.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

import numpy as np

from ..errors import ConvArgumentError, ConvTypeError

__all__ = ["param_keys", "generator", "is_jax_key"]

_EXPECTED = (
    "must be a non-negative int seed, a numpy.random.Generator or SeedSequence, "
    "a JAX PRNG key, or a torch.Generator"
)


def is_jax_key(rng: Any) -> bool:
    """Whether ``rng`` is a JAX PRNG key: a typed key array, or a raw ``uint32``
    vector (``jax.random.PRNGKey``) that is a ``jax.Array``."""
    jax = sys.modules.get("jax")
    if jax is None:
        return False
    array = getattr(jax, "Array", None)  # None while jax is still importing
    if array is None or not isinstance(rng, array):
        return False
    if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
        return bool(rng.ndim == 0)
    return str(rng.dtype) == "uint32" and rng.ndim == 1


def _is_torch_generator(rng: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(rng, torch.Generator)


def param_keys(rng: Any, count: int, op: str) -> list[Any]:
    """One key per parameter, in creation order (kernel, then bias), as the
    module docstring describes.

    Examples
    --------
    >>> a, b = param_keys(0, 2, 'Conv')
    >>> float(a.standard_normal()) == float(param_keys(0, 2, 'Conv')[0].standard_normal())
    True
    >>> float(a.standard_normal()) == float(b.standard_normal())
    False
    """
    if is_jax_key(rng):
        return [_flax_param_key(rng, i + 1) for i in range(count)]
    root = _seed_sequence(rng, op)
    return [np.random.default_rng(child) for child in root.spawn(count)]


def generator(key: Any, op: str = "initializer", param: str = "key") -> np.random.Generator:
    """A ``numpy.random.Generator`` from any kind of rng or key.

    A ``numpy.random.Generator`` is returned as it is (drawing from it
    advances it); the other kinds seed a new one.

    Examples
    --------
    >>> g = generator(42)
    >>> float(g.random()) == float(generator(42).random())
    True
    """
    if isinstance(key, np.random.Generator):
        return key
    return np.random.default_rng(_seed_sequence(key, op, param))


def _seed_sequence(rng: Any, op: str, param: str = "rng") -> np.random.SeedSequence:
    if isinstance(rng, np.random.SeedSequence):
        return rng
    if isinstance(rng, np.random.Generator):
        return np.random.SeedSequence(rng.integers(0, 2**32, size=4, dtype=np.uint64).tolist())
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ConvArgumentError(op, param, _EXPECTED, rng)
        return np.random.SeedSequence(int(rng))
    if is_jax_key(rng):
        return np.random.SeedSequence(_jax_key_words(rng, op, param))
    if _is_torch_generator(rng):
        torch = sys.modules["torch"]
        drawn = torch.randint(0, 2**62, (2,), generator=rng, device=rng.device)
        return np.random.SeedSequence([int(v) for v in drawn.tolist()])
    raise ConvTypeError(op, param, _EXPECTED, got=_describe(rng))


def _jax_key_words(key: Any, op: str, param: str) -> list[int]:
    jax = sys.modules["jax"]
    data = key if str(key.dtype) == "uint32" else jax.random.key_data(key)
    try:
        words = np.asarray(data)
    except Exception:  # a tracer: the key's value is not known while tracing
        raise ConvTypeError(
            op, param, "must be a concrete JAX key: polyconv's initialisers draw with NumPy, so they cannot "
            "run on a key traced by jax.jit (initialise outside jit)", got=_describe(key),
        ) from None
    return [int(w) for w in words.ravel()]


def _flax_param_key(rng: Any, count: int) -> Any:
    """Flax's key for the ``count``-th parameter a module creates
    (``flax.core.scope.LazyRng`` folding the counter into the root key)."""
    jax = sys.modules["jax"]
    digest = hashlib.sha1()
    flax = sys.modules.get("flax")
    if flax is not None and getattr(getattr(flax, "config", None), "flax_fix_rng_separator", False):
        digest.update(b"\x00")
    digest.update(count.to_bytes((count.bit_length() + 7) // 8, byteorder="big"))
    return jax.random.fold_in(rng, np.uint32(int.from_bytes(digest.digest()[:4], byteorder="big")))


def _describe(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} (a {type(value).__module__}.{type(value).__qualname__})"
