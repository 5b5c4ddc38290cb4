"""Train a two-layer convolutional model with polyconv's layers, in PyTorch and in JAX.

The same two layer definitions (``polyconv.layers.Conv``) are trained for a
few steps of gradient descent to imitate a fixed "teacher" network:

* in PyTorch through :func:`polyconv.layers.torch_module` (``nn.Parameter``\\ s,
  ``torch.optim.SGD``, autograd through polyconv's torch backend);
* in JAX with ``jax.value_and_grad`` and ``jax.jit`` through ``layer.apply``
  (polyconv's JAX backend lowers to ``jax.lax``).

Run ``python docs/examples/train_two_layer.py [--steps N]``; it prints the
loss of every step for both frameworks.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from polyconv.layers import Conv, torch_module

# the model: 3x3 circular convolution to 8 features, ReLU, 3x3 convolution to 1 feature
LAYERS = (Conv(8, (3, 3), padding="CIRCULAR"), Conv(1, (3, 3), padding="CIRCULAR"))


def data(n: int = 16, size: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(n, size, size, 1)`` and the targets a teacher network of the same shape gives."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, size, size, 1)).astype(np.float32)
    first = LAYERS[0].init(seed + 1, x)
    hidden = np.maximum(LAYERS[0].apply(first, x), 0)
    return x, LAYERS[1].apply(LAYERS[1].init(seed + 2, hidden), hidden)


def train_torch(steps: int = 20, lr: float = 0.05) -> list[float]:
    """SGD on the torch modules; the losses, one per step."""
    import torch

    torch.manual_seed(0)  # the lazy modules draw their parameters from torch's global generator
    model = torch.nn.Sequential(torch_module(LAYERS[0]), torch.nn.ReLU(), torch_module(LAYERS[1]))
    x, y = (torch.from_numpy(a) for a in data())
    model(x)  # the first call makes the lazy parameters (in_features from the input)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train_jax(steps: int = 20, lr: float = 0.05) -> list[float]:
    """Gradient descent with ``jax.value_and_grad`` through the layers; the losses, one per step."""
    import jax
    import jax.numpy as jnp

    x, y = (jnp.asarray(a) for a in data())
    keys = jax.random.split(jax.random.key(0))
    hidden = jnp.zeros(LAYERS[0].output_shape(x.shape), x.dtype)
    params = [LAYERS[0].init(keys[0], x), LAYERS[1].init(keys[1], hidden)]

    def loss_fn(params: Any) -> Any:
        h = jax.nn.relu(LAYERS[0].apply(params[0], x))
        return jnp.mean((LAYERS[1].apply(params[1], h) - y) ** 2)

    @jax.jit
    def step(params: Any) -> tuple[Any, Any]:
        loss, grads = jax.value_and_grad(loss_fn)(params)
        return loss, jax.tree.map(lambda p, g: p - lr * g, params, grads)

    losses = []
    for _ in range(steps):
        loss, params = step(params)
        losses.append(float(loss))
    return losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    for name, train in (("torch", train_torch), ("jax", train_jax)):
        losses = train(args.steps)
        print(f"{name}: " + " ".join(f"{loss:.4f}" for loss in losses))


if __name__ == "__main__":
    main()
