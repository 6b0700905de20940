"""Content features and style-loss targets of the target images, computed once per distinct image."""

import functools

import jax
import jax.numpy as jnp

from nstjax import style_mix, vgg
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


@functools.partial(jax.jit, static_argnames=("program", "pooling", "dtype"))
def style_targets(params, image, *, program: style_mix.StyleProgram, pooling: str, dtype: str):
    """The targets of ``program``'s style losses (:mod:`nstjax.style_losses`; for ``"gram"`` the
    ``[C, C]`` float32 Gram matrices) for one style image ``[H, W, 3]`` in [0, 1]: loss name ->
    layer name -> representation (:func:`nstjax.style_mix.targets_of`)."""
    layers = tuple(n for n in LAYER_NAMES if any(n in ls for ls in program.layers))
    feats = vgg.features(
        params, image, layers, pooling, dtype=jnp.dtype(dtype), convolution=program.convolution
    )
    return style_mix.targets_of(feats, program)
