"""Content features and style Grams of the target images, computed once per distinct image."""

import functools

import jax
import jax.numpy as jnp

from nstjax import losses, vgg


@functools.partial(jax.jit, static_argnames=("layers", "pooling", "dtype"))
def content_features(params, images, *, layers: tuple[str, ...], pooling: str, dtype: str):
    """Features of a stack of same-shaped content images ``[N, H, W, 3]`` in [0, 1].

    Returns a dict from layer name to ``[N, h, w, C]`` (in ``dtype``).
    """
    return vgg.features(params, images, layers, pooling, dtype=jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnames=("layers", "pooling", "dtype"))
def style_grams(params, image, *, layers: tuple[str, ...], pooling: str, dtype: str):
    """Gram matrices ``[C, C]`` (float32) of one style image ``[H, W, 3]`` in [0, 1], by layer."""
    feats = vgg.features(params, image, layers, pooling, dtype=jnp.dtype(dtype))
    return {name: losses.gram(f) for name, f in feats.items()}
