"""Johnson et al.'s image transformation network as a Flax module.

``c9s1-32, d64, d128, R128 x 5, u64, u32, c9s1-3`` (Johnson, Alahi, Fei-Fei 2016, supplementary
Table 1), laid out as pytorch/examples ``fast_neural_style/transformer_net.py`` lays it out:
every convolution reflection-padded by ``kernel // 2`` ("SAME" size, no border artefacts), a
normalisation and ReLU after every convolution but the last, residual blocks
``x + norm(conv(relu(norm(conv(x)))))``. Options:

- ``norm``: ``"instance"`` (Ulyanov et al. 2016, the default; the same at training and test
  time) or ``"batch"`` (the paper's; running averages at test time).
- ``upsample``: ``"resize"`` (nearest-neighbour x2 then a 3x3 convolution, Odena et al.'s
  resize-convolution, no checkerboard artefacts; pytorch/examples' choice) or ``"transpose"``
  (the paper's fractionally strided 3x3 convolution, stride 2).

The output is Johnson et al.'s scaled tanh, mapped to [0, 1]: ``(tanh(y) + 1) / 2``. The network
is fully convolutional: an ``H x W`` input of any size is reflection-padded up to multiples of 4
(two stride-2 stages) and the output cropped back, so the output is ``H x W`` too.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

NORMS = ("instance", "batch")
UPSAMPLES = ("resize", "transpose")
DOWNSCALE = 4  # two stride-2 convolutions
INSTANCE_NORM_EPSILON = 1e-5  # torch.nn.InstanceNorm2d's, as the reference implementations


def reflect_pad(x: jax.Array, before: tuple[int, int], after: tuple[int, int]) -> jax.Array:
    """Reflection padding of ``[N, H, W, C]`` (``torch.nn.ReflectionPad2d``'s)."""
    return jnp.pad(x, ((0, 0), (before[0], after[0]), (before[1], after[1]), (0, 0)), "reflect")


class ReflectConv(nn.Module):
    """``kernel x kernel`` convolution with ``stride`` on a reflection-padded input."""

    features: int
    kernel: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        p = self.kernel // 2
        x = reflect_pad(x, (p, p), (p, p))
        conv = nn.Conv(self.features, (self.kernel,) * 2, (self.stride,) * 2, padding="VALID")
        return conv(x)


class InstanceNorm(nn.Module):
    """Each image's channels normalised over its own pixels, then a learned scale and bias
    (``torch.nn.InstanceNorm2d(affine=True)``): ``(x - mean) / sqrt(var + eps) * scale + bias``
    with the biased variance, computed in two passes."""

    epsilon: float = INSTANCE_NORM_EPSILON

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones_init(), (c,))
        bias = self.param("bias", nn.initializers.zeros_init(), (c,))
        centred = x - jnp.mean(x, axis=(-3, -2), keepdims=True)
        var = jnp.mean(centred * centred, axis=(-3, -2), keepdims=True)
        return centred * jax.lax.rsqrt(var + self.epsilon) * scale + bias


class Norm(nn.Module):
    """Instance or batch normalisation over the channels, with a learned scale and bias."""

    kind: str

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.kind == "instance":
            return InstanceNorm()(x)
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)


class ResidualBlock(nn.Module):
    """``x + norm(conv3x3(relu(norm(conv3x3(x)))))`` with as many channels in as out."""

    norm: str

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c = x.shape[-1]
        y = nn.relu(Norm(self.norm)(ReflectConv(c, 3)(x), train))
        return x + Norm(self.norm)(ReflectConv(c, 3)(y), train)


class Upsample(nn.Module):
    """x2 upsampling to ``features`` channels: resize-convolution or a transposed convolution."""

    features: int
    kind: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.kind == "resize":
            x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nearest neighbour
            return ReflectConv(self.features, 3)(x)
        # torch's ConvTranspose2d(k=3, s=2, padding=1, output_padding=1): exactly 2H x 2W out
        return nn.ConvTranspose(self.features, (3, 3), (2, 2), padding=((1, 2), (1, 2)))(x)


class TransformerNet(nn.Module):
    """The image transformation network.

    Attributes:
        norm: ``"instance"`` or ``"batch"``.
        upsample: ``"resize"`` or ``"transpose"``.
        width: channels of the first convolution (32); the later stages have 2x and 4x.
        residual_blocks: number of residual blocks (5).
    """

    norm: str = "instance"
    upsample: str = "resize"
    width: int = 32
    residual_blocks: int = 5

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        """Stylises ``[N, H, W, 3]`` RGB in [0, 1] (any ``H``, ``W``); returns the same shape.

        Args:
            images: the content images.
            train: batch norm uses the batch's statistics (and updates its running averages,
                collection ``"batch_stats"``, which must then be mutable); no effect with
                instance norm.
        """
        n, h, w, _ = images.shape
        ph, pw = -h % DOWNSCALE, -w % DOWNSCALE
        x = reflect_pad(images - 0.5, (0, 0), (ph, pw))
        c = self.width
        for features, kernel, stride in ((c, 9, 1), (2 * c, 3, 2), (4 * c, 3, 2)):
            x = nn.relu(Norm(self.norm)(ReflectConv(features, kernel, stride)(x), train))
        for _ in range(self.residual_blocks):
            x = ResidualBlock(self.norm)(x, train)
        for features in (2 * c, c):
            x = nn.relu(Norm(self.norm)(Upsample(features, self.upsample)(x), train))
        x = ReflectConv(3, 9)(x)
        return (jnp.tanh(x[:, :h, :w]) + 1.0) / 2.0


def init_variables(net: TransformerNet, key: jax.Array, size: int = 16) -> dict[str, Any]:
    """Fresh variables (``"params"``, and ``"batch_stats"`` with batch norm) of ``net``.

    Args:
        net: the module.
        key: a PRNG key.
        size: side of the dummy input used to trace shapes (the result does not depend on it).
    """
    return dict(net.init(key, jnp.zeros((1, size, size, 3), jnp.float32)))


def count_params(variables: dict[str, Any]) -> int:
    """Number of trained parameters (the ``"params"`` collection; not batch norm's averages)."""
    return sum(math.prod(p.shape) for p in jax.tree.leaves(variables["params"]))
