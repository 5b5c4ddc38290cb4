"""The torch adapter (polyconv.layers.torch_module) and the end-to-end training example."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import polyconv
from polyconv import layers as L

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the torch adapter needs it")

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "train_two_layer.py"


def _x(shape: tuple[int, ...], seed: int = 0) -> Any:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_eager_module_registers_parameters() -> None:
    layer = L.Conv(8, (3, 3), feature_group_count=2, padding="CIRCULAR")
    m = L.torch_module(layer, in_features=4, rng=0)
    assert [(n, tuple(p.shape), p.requires_grad) for n, p in m.named_parameters()] == [
        ("kernel", (3, 3, 2, 8), True), ("bias", (8,), True),
    ]
    assert list(m.state_dict()) == ["kernel", "bias"]
    # the parameters are the layer's init(rng=0): the same as on any other framework
    np.testing.assert_array_equal(m.kernel.detach().numpy(), layer.init(0, np.zeros((1, 1, 1, 4)))["kernel"])
    x = _x((2, 3, 6, 6, 4))
    np.testing.assert_array_equal(
        m(x).detach().numpy(), layer.apply({"kernel": m.kernel.detach(), "bias": m.bias.detach()}, x).numpy()
    )
    assert "Conv(features=8" in repr(m)


def test_lazy_module_takes_shape_and_device_from_the_first_input() -> None:
    m = L.torch_module(L.ConvLocal(3, (3,), strides=2))
    assert m.has_uninitialized_params()
    y = m(_x((9, 2)))  # unbatched: ConvLocal's kernel depends on the spatial shape
    assert tuple(y.shape) == (5, 3)
    assert {n: tuple(p.shape) for n, p in m.named_parameters()} == {"kernel": (5, 6, 3), "bias": (5, 3)}
    assert not m.has_uninitialized_params() and isinstance(m.kernel, torch.nn.Parameter)


def test_lazy_module_honours_to_before_the_first_call() -> None:
    m = L.torch_module(L.ConvTranspose(3, (3, 3), strides=2)).to(torch.float64)
    y = m(_x((1, 4, 4, 2)).double())
    assert m.kernel.dtype == torch.float64 and y.dtype == torch.float64 and tuple(y.shape) == (1, 8, 8, 3)


def test_no_bias_and_param_dtype() -> None:
    m = L.torch_module(L.Conv(4, (3,), use_bias=False, param_dtype="bfloat16"), in_features=2, rng=1)
    assert m.bias is None and [n for n, _ in m.named_parameters()] == ["kernel"]
    assert m.kernel.dtype == torch.bfloat16
    lazy = L.torch_module(L.Conv(4, (3,), use_bias=False, param_dtype="float64"))
    lazy(_x((1, 5, 2)))
    assert lazy.bias is None and lazy.kernel.dtype == torch.float64


def test_conv_local_needs_the_input_shape() -> None:
    with pytest.raises(polyconv.ConvArgumentError, match="input_shape"):
        L.torch_module(L.ConvLocal(3, (3, 3)), in_features=2)
    m = L.torch_module(L.ConvLocal(3, (3, 3)), input_shape=(1, 5, 5, 2), rng=0)
    assert tuple(m.kernel.shape) == (5, 5, 18, 3)
    with pytest.raises(polyconv.ConvTypeError, match="layer"):
        L.torch_module("Conv")  # type: ignore[arg-type]


def test_global_seed_reproduces_and_reset_redraws() -> None:
    torch.manual_seed(3)
    a = L.torch_module(L.Conv(4, (3, 3)), in_features=2)
    torch.manual_seed(3)
    b = L.torch_module(L.Conv(4, (3, 3)), in_features=2)
    torch.testing.assert_close(a.kernel, b.kernel, rtol=0, atol=0)
    before = a.kernel.detach().clone()
    a.reset_parameters()
    assert not torch.equal(before, a.kernel)


def test_state_dict_round_trip_into_a_lazy_module() -> None:
    source = L.torch_module(L.Conv(4, (3, 3), padding="REFLECT"), in_features=2, rng=0)
    target = L.torch_module(L.Conv(4, (3, 3), padding="REFLECT"))
    target.load_state_dict(source.state_dict())
    x = _x((2, 5, 5, 2))
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_whole_module_saves_and_loads() -> None:
    import io

    m = L.torch_module(L.Conv(4, (3, 3), padding="CIRCULAR"), in_features=2, rng=0)
    buffer = io.BytesIO()
    torch.save(m, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    x = _x((1, 5, 5, 2))
    torch.testing.assert_close(loaded(x), m(x), rtol=0, atol=0)


def test_optimizer_step_and_gradients_match_jax() -> None:
    jax = pytest.importorskip("jax", reason="JAX is not installed: the gradients are compared with jax.grad")
    mask = np.tril(np.ones((18, 4), np.float32)).reshape(3, 3, 2, 4)
    layer = L.Conv(4, (3, 3), padding="CIRCULAR", strides=(1, 2), mask=mask)
    m = L.torch_module(layer, in_features=2, rng=0)
    x = _x((2, 5, 6, 2))
    loss = (m(x) ** 2).sum()
    loss.backward()
    params = {n: jax.numpy.asarray(p.detach().numpy()) for n, p in m.named_parameters()}
    expected = jax.grad(lambda p: (layer.apply(p, jax.numpy.asarray(x.numpy())) ** 2).sum())(params)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), np.asarray(expected[name]), rtol=1e-4, atol=1e-4)
    before = m.kernel.detach().clone()
    torch.optim.SGD(m.parameters(), lr=0.01).step()
    assert not torch.equal(before, m.kernel)


def test_module_matches_flax_with_its_state_dict() -> None:
    nn = pytest.importorskip("flax.linen", reason="flax is not installed")
    jnp = pytest.importorskip("jax.numpy", reason="JAX is not installed (pip install 'polyconv[jax]')")
    fields = dict(features=3, kernel_size=(4,), strides=2, padding="CIRCULAR", transpose_kernel=True)
    m = L.torch_module(L.ConvTranspose(**fields), in_features=2, rng=0)
    x = _x((2, 5, 2))
    flax_params = {k: jnp.asarray(v.numpy()) for k, v in m.state_dict().items()}  # the same names and shapes
    expected = nn.ConvTranspose(**fields).apply({"params": flax_params}, jnp.asarray(x.numpy()))
    np.testing.assert_allclose(m(x).detach().numpy(), np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_training_example_lowers_the_loss() -> None:
    pytest.importorskip("jax", reason="JAX is not installed: the example trains with JAX too")
    spec = importlib.util.spec_from_file_location("train_two_layer", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    for train in (example.train_torch, example.train_jax):
        losses = train(steps=4)
        assert len(losses) == 4 and all(np.isfinite(losses))
        assert losses[-1] < losses[0] and all(b < a for a, b in zip(losses, losses[1:])), losses


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: device placement is checked on the CPU only")
def test_parameters_follow_the_inputs_device() -> None:
    x = _x((2, 6, 6, 3)).cuda()
    mask = np.ones((3, 3, 3, 4), np.float32)  # a NumPy constant: put on the inputs' device by the layer
    params = L.Conv(4, (3, 3), padding="CIRCULAR", mask=mask).init(0, x)
    assert all(p.device == x.device for p in params.values())
    assert L.Conv(4, (3, 3), padding="CIRCULAR", mask=mask).apply(params, x).device == x.device
    lazy = L.torch_module(L.ConvTranspose(4, (3, 3), strides=2, padding="CIRCULAR")).cuda()
    assert lazy(x).device == x.device and lazy.kernel.device == x.device
    eager = L.torch_module(L.Conv(4, (3, 3)), in_features=3, device="cuda")
    assert eager.kernel.is_cuda and eager(x).is_cuda
    cpu = eager.to("cpu")
    assert not cpu(x.cpu()).is_cuda
