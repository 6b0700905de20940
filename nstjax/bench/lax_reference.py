"""VGG-19 and the Gram written directly with ``lax`` (no Flax, no vmap, batched natively): the
floor ``scripts/cpu_experiments.py`` compares the engine's formulation against (its ``lax``
variants).
"""

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nstjax import weights
from nstjax.architecture import block_of


def convs(arrays: Mapping[str, np.ndarray], names: Sequence[str]) -> list[tuple]:
    """``(kernel, bias, flipped kernel)`` per layer (a pytree of arrays), RGB input.

    Args:
        arrays: the h5's arrays (:func:`nstjax.weights.read_h5`): BGR, HWIO kernels.
        names: the layers, in order from ``conv1_1``.
    """
    out = []
    for name in names:
        kernel = arrays[f"{name}/kernel"]
        if name == "conv1_1":
            kernel = kernel[:, :, ::-1, :]  # BGR weights take RGB input
        flipped = np.ascontiguousarray(kernel[::-1, ::-1].swapaxes(2, 3))
        bias = jnp.asarray(arrays[f"{name}/bias"])
        out.append((jnp.asarray(kernel.copy()), bias, jnp.asarray(flipped)))
    return out


def network(names: Sequence[str], *, nchw: bool, use_vjp: bool) -> tuple[Callable, Callable]:
    """The network and its Gram.

    Args:
        names: the layers, in order from ``conv1_1`` (as given to :func:`convs`).
        nchw: NCHW activations instead of NHWC.
        use_vjp: a ``custom_vjp`` convolution whose input gradient convolves with the flipped
            kernel prepared once (:func:`convs`) instead of autodiff's per-step reversal.

    Returns:
        ``features(x, convs)`` (``[N, H, W, 3]`` pixels 0-255 -> ``{layer: activation}``, Caffe
        mean subtracted, 2x2 max pooling between blocks) and ``gram(f)`` (``[N, C, C]``,
        normalised by ``h w C``).
    """
    mean = jnp.asarray(weights.CAFFE_PREPROCESS["mean_rgb"], jnp.float32)
    dn = ("NCHW", "HWIO", "NCHW") if nchw else ("NHWC", "HWIO", "NHWC")

    def plain_conv(x, k):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dn)

    @jax.custom_vjp
    def conv(x, k, flipped):
        return plain_conv(x, k)

    def conv_fwd(x, k, flipped):
        return plain_conv(x, k), (k, flipped)

    def conv_bwd(res, g):
        k, flipped = res
        return plain_conv(g, flipped), jnp.zeros_like(k), jnp.zeros_like(flipped)

    conv.defvjp(conv_fwd, conv_bwd)

    def features(x, convs):  # x: [N, H, W, 3] pixels 0-255
        x = x - mean
        if nchw:
            x = jnp.transpose(x, (0, 3, 1, 2))
        out, current = {}, 1
        window = (1, 1, 2, 2) if nchw else (1, 2, 2, 1)
        for name, (k, b, flipped) in zip(names, convs):
            block = block_of(name)
            if block != current:
                x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, window, "VALID")
                current = block
            y = conv(x, k, flipped) if use_vjp else plain_conv(x, k)
            x = out[name] = jax.nn.relu(y + (b[:, None, None] if nchw else b))
        return out

    def gram(f):  # one layer, batched: [N, C, C]
        if nchw:
            n, c, h, w = f.shape
            f = f.reshape(n, c, h * w)
            return jnp.einsum("nck,ndk->ncd", f, f) / (h * w * c)
        n, h, w, c = f.shape
        f = f.reshape(n, h * w, c)
        return jnp.einsum("nkc,nkd->ncd", f, f) / (h * w * c)

    return features, gram
