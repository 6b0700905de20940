"""Wang et al. 2021's content fidelity and the Gram half of global effects, on VGG-19 features.

From the official code (EndyWon/StyleEval ``quality_criteria.py``):

- ``CONTENT_LAYERS = ['4_1','5_1']`` (l. 17); content fidelity is, per layer, the cosine between
  the whole flattened feature maps of the output and of the content (l. 243-251), averaged over
  the layers (l. 253).
- ``GLOBAL_STYLE_LAYERS = ['2_1','3_1','4_1','5_1']`` (l. 19); per layer the unnormalised Gram
  ``F^T F`` of the output and of the style (l. 118-123, 258-263), the cosine of the flattened
  Grams (l. 265-272), averaged over the layers and halved, plus half the color similarity
  (l. 274-275; :mod:`nstjax.quality.histogram`).
"""

import jax
import jax.numpy as jnp

CONTENT_LAYERS: tuple[str, ...] = ("conv4_1", "conv5_1")
GLOBAL_LAYERS: tuple[str, ...] = ("conv2_1", "conv3_1", "conv4_1", "conv5_1")


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    """The cosine between two arrays of the same shape, each flattened."""
    a, b = a.ravel(), b.ravel()
    return jnp.dot(a / jnp.linalg.norm(a), b / jnp.linalg.norm(b))


def raw_gram(feature: jax.Array) -> jax.Array:
    """``F^T F`` of one ``[h, w, C]`` feature map (unnormalised, as the official code)."""
    flat = feature.reshape(-1, feature.shape[-1])
    return jnp.matmul(flat.T, flat, precision=jax.lax.Precision.HIGHEST)


def content_fidelity(output_features: dict, content_features: dict) -> jax.Array:
    """CF: the mean over :data:`CONTENT_LAYERS` of the output/content feature cosine."""
    return jnp.mean(
        jnp.stack([cosine(output_features[n], content_features[n]) for n in CONTENT_LAYERS])
    )


def gram_similarity(output_features: dict, style_grams: dict) -> jax.Array:
    """GE's Gram half: the mean over :data:`GLOBAL_LAYERS` of the Gram cosine to the style."""
    return jnp.mean(
        jnp.stack([cosine(raw_gram(output_features[n]), style_grams[n]) for n in GLOBAL_LAYERS])
    )


def global_effects(gram_part: jax.Array, color_part: jax.Array) -> jax.Array:
    """GE = 1/2 Gram similarity + 1/2 color similarity (``weight_of_gram = 0.5``, l. 274)."""
    return 0.5 * gram_part + 0.5 * color_part
