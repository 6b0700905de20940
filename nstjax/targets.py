"""Content features and style Grams of the target images, computed once per distinct image."""

import functools

import jax
import jax.numpy as jnp

from nstjax import kernels, losses, style_mix, vgg
from nstjax.architecture import LAYER_NAMES


@functools.partial(jax.jit, static_argnames=("layers", "pooling", "dtype", "convolution"))
def content_features(
    params, images, *, layers: tuple[str, ...], pooling: str, dtype: str, convolution: str = "xla"
):
    """Features of a stack of same-shaped content images ``[N, H, W, 3]`` in [0, 1].

    Returns a dict from layer name to ``[N, h, w, C]`` (in ``dtype``).
    """
    return vgg.features(
        params, images, layers, pooling, dtype=jnp.dtype(dtype), convolution=convolution
    )


@functools.partial(jax.jit, static_argnames=("layers", "pooling", "dtype", "convolution"))
def style_grams(
    params, image, *, layers: tuple[str, ...], pooling: str, dtype: str, convolution: str = "xla"
):
    """Gram matrices ``[C, C]`` (float32) of one style image ``[H, W, 3]`` in [0, 1], by layer."""
    feats = vgg.features(
        params, image, layers, pooling, dtype=jnp.dtype(dtype), convolution=convolution
    )
    product = kernels.gram_product(convolution)
    return {name: losses.gram(f, product=product) for name, f in feats.items()}


@functools.partial(jax.jit, static_argnames=("pooling", "dtype", "convolution", "style_losses"))
def style_representations(
    params,
    image,
    *,
    pooling: str,
    dtype: str,
    convolution: str = "xla",
    style_losses: tuple[tuple[str, tuple[str, ...]], ...],
):
    """The targets of the ``(loss name, layers)`` pairs ``style_losses``
    (:mod:`nstjax.style_losses`) for one style image ``[H, W, 3]`` in [0, 1]: loss name -> layer
    name -> representation."""
    layers = tuple(n for n in LAYER_NAMES if any(n in ls for _, ls in style_losses))
    feats = vgg.features(
        params, image, layers, pooling, dtype=jnp.dtype(dtype), convolution=convolution
    )
    return {name: style_mix.targets_of(feats, (name,), ls)[name] for name, ls in style_losses}
