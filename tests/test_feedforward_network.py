"""The transformation network: parameter count from the paper's table, shapes at any size, and
the forward pass against a numpy implementation written from the architecture description."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax.feedforward.network import TransformerNet, count_params


def _shapes(net, size=16):
    return jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, size, size, 3)))


def test_parameter_count_matches_the_papers_table():
    # Johnson et al., supplementary Table 1: c9s1-32, d64, d128, 5 x R128, u64, u32, c9s1-3.
    # A k x k convolution from i to o channels has k*k*i*o weights + o biases; every layer
    # but the last is followed by a normalisation with a scale and a bias per channel.
    c9s1_32 = 9 * 9 * 3 * 32 + 32 + 2 * 32  # 7,872
    d64 = 3 * 3 * 32 * 64 + 64 + 2 * 64  # 18,624
    d128 = 3 * 3 * 64 * 128 + 128 + 2 * 128  # 74,112
    r128 = 2 * (3 * 3 * 128 * 128 + 128 + 2 * 128)  # 295,680 (two 3x3 convs per block)
    u64 = 3 * 3 * 128 * 64 + 64 + 2 * 64  # 73,920
    u32 = 3 * 3 * 64 * 32 + 32 + 2 * 32  # 18,528
    c9s1_3 = 9 * 9 * 32 * 3 + 3  # 7,779 (no normalisation after the output layer)
    total = c9s1_32 + d64 + d128 + 5 * r128 + u64 + u32 + c9s1_3
    assert total == 1_679_235  # also pytorch/examples' TransformerNet's count
    for upsample in ("resize", "transpose"):  # a 3x3 kernel either way
        for norm in ("instance", "batch"):
            shapes = _shapes(TransformerNet(norm=norm, upsample=upsample))
            assert count_params(shapes) == total
    # Batch norm also keeps a running mean and variance per normalised channel.
    stats = _shapes(TransformerNet(norm="batch"))["batch_stats"]
    normalised = 32 + 64 + 128 + 5 * 2 * 128 + 64 + 32
    assert sum(np.prod(s.shape) for s in jax.tree.leaves(stats)) == 2 * normalised


@pytest.mark.parametrize("upsample", ["resize", "transpose"])
def test_any_size_maps_to_the_same_size_in_unit_range(upsample):
    net = TransformerNet(width=2, residual_blocks=1, upsample=upsample)
    variables = jax.jit(net.init)(jax.random.key(0, impl="rbg"), jnp.zeros((1, 8, 8, 3)))
    forward = jax.jit(net.apply)
    for h, w in ((13, 7), (5, 22)):  # neither a multiple of 4
        x = np.random.default_rng(h).random((2, h, w, 3), np.float32)
        y = np.asarray(forward(variables, x))
        assert y.shape == (2, h, w, 3)
        assert np.all((y >= 0) & (y <= 1)) and np.std(y) > 0


def _conv(x, kernel, bias, stride=1):
    """Reflection padding by k // 2 then a VALID convolution, in float64 loops over taps."""
    k = kernel.shape[0]
    p = k // 2
    x = np.pad(x, ((p, p), (p, p), (0, 0)), mode="reflect")
    h = (x.shape[0] - k) // stride + 1
    w = (x.shape[1] - k) // stride + 1
    out = np.zeros((h, w, kernel.shape[-1]))
    for i in range(k):
        for j in range(k):
            patch = x[i : i + stride * h : stride, j : j + stride * w : stride]
            out += patch @ kernel[i, j]
    return out + bias


def _instance_norm(x, p):
    mean = x.mean(axis=(0, 1))
    var = ((x - mean) ** 2).mean(axis=(0, 1))
    return (x - mean) / np.sqrt(var + 1e-5) * p["scale"] + p["bias"]


def _reference(params, image):
    """The network with resize-convolution and instance norm, from the module docstring."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    h, w, _ = image.shape
    x = np.pad(image - 0.5, ((0, -h % 4), (0, -w % 4), (0, 0)), mode="reflect")
    relu = lambda v: np.maximum(v, 0)
    for i, stride in enumerate((1, 2, 2)):
        conv = p[f"ReflectConv_{i}"]["Conv_0"]
        x = _conv(x, conv["kernel"], conv["bias"], stride)
        x = relu(_instance_norm(x, p[f"Norm_{i}"]["InstanceNorm_0"]))
    block = p["ResidualBlock_0"]
    y = _conv(
        x, block["ReflectConv_0"]["Conv_0"]["kernel"], block["ReflectConv_0"]["Conv_0"]["bias"]
    )
    y = relu(_instance_norm(y, block["Norm_0"]["InstanceNorm_0"]))
    y = _conv(
        y, block["ReflectConv_1"]["Conv_0"]["kernel"], block["ReflectConv_1"]["Conv_0"]["bias"]
    )
    x = x + _instance_norm(y, block["Norm_1"]["InstanceNorm_0"])
    for i in range(2):
        x = x.repeat(2, axis=0).repeat(2, axis=1)
        conv = p[f"Upsample_{i}"]["ReflectConv_0"]["Conv_0"]
        x = relu(
            _instance_norm(
                _conv(x, conv["kernel"], conv["bias"]), p[f"Norm_{3 + i}"]["InstanceNorm_0"]
            )
        )
    conv = p["ReflectConv_3"]["Conv_0"]
    x = _conv(x, conv["kernel"], conv["bias"])
    return (np.tanh(x[:h, :w]) + 1) / 2


def test_forward_matches_numpy():
    net = TransformerNet(width=3, residual_blocks=1)
    variables = jax.jit(net.init)(jax.random.key(3, impl="rbg"), jnp.zeros((1, 8, 8, 3)))
    # Random norm scales and biases, so that every parameter matters.
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda a: a + 0.3 * rng.standard_normal(a.shape), variables)
    image = rng.random((10, 14, 3))  # not a multiple of 4: padded and cropped
    out = np.asarray(jax.jit(net.apply)(variables, image[None].astype(np.float32)))[0]
    np.testing.assert_allclose(out, _reference(variables["params"], image), atol=2e-5)
