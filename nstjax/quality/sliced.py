"""Sliced Wasserstein-2 distance between the output's and the style's feature distributions.

For each of :data:`LAYERS`, the ``h x w`` feature vectors of a map are a sample in ``R^C``. They
are projected on :data:`PROJECTIONS` fixed unit directions (drawn once from ``jax.random.normal``
with key ``PRNGKey(SEED)`` folded with the layer's index, then normalised), and along each
direction the 1-D W2 distance is computed from sorted samples: the output's ``n`` sorted values
are compared with the style's quantile function at the output's mid-quantiles ``(i + 1/2) / n``,
read from the style's ``m`` sorted values by linear interpolation at position
``(i + 1/2) m / n - 1/2`` (clamped to ``[0, m - 1]``; for ``m = n`` it is exactly the ``i``-th value,
so equal sample counts pair sorted values one to one). Per layer the distance is
``sqrt(mean over directions and quantiles of the squared difference)``; ``sliced_wasserstein`` is its
mean over the layers.
"""

import jax
import jax.numpy as jnp

from nstjax.architecture import LAYER_INDEX, STYLE_LAYERS

LAYERS: tuple[str, ...] = STYLE_LAYERS
PROJECTIONS = 64
SEED = 0


def directions(layer: str, channels: int) -> jax.Array:
    """The fixed ``[channels, PROJECTIONS]`` unit directions of ``layer``."""
    key = jax.random.fold_in(jax.random.PRNGKey(SEED), LAYER_INDEX[layer])
    d = jax.random.normal(key, (channels, PROJECTIONS), jnp.float32)
    return d / jnp.linalg.norm(d, axis=0, keepdims=True)


def sorted_projections(feature: jax.Array, layer: str) -> jax.Array:
    """``[PROJECTIONS, h w]``: the map's feature vectors projected on each direction, sorted."""
    flat = feature.reshape(-1, feature.shape[-1])
    projected = jnp.matmul(
        flat, directions(layer, flat.shape[-1]), precision=jax.lax.Precision.HIGHEST
    )
    return jnp.sort(projected.T, axis=-1)


def quantiles_at(sorted_values: jax.Array, count: int) -> jax.Array:
    """Each row's quantile function at the mid-quantiles of ``count`` samples (linear
    interpolation between sorted values)."""
    m = sorted_values.shape[-1]
    position = jnp.clip((jnp.arange(count) + 0.5) * m / count - 0.5, 0.0, m - 1)
    low = jnp.floor(position).astype(jnp.int32)
    high = jnp.minimum(low + 1, m - 1)
    frac = position - low
    return sorted_values[:, low] * (1.0 - frac) + sorted_values[:, high] * frac


def layer_distance(output_feature: jax.Array, style_sorted: jax.Array, layer: str) -> jax.Array:
    """Sliced W2 at one layer between the output's map and the style's sorted projections."""
    output_sorted = sorted_projections(output_feature, layer)
    style_quantiles = quantiles_at(style_sorted, output_sorted.shape[-1])
    return jnp.sqrt(jnp.mean((output_sorted - style_quantiles) ** 2))


def sliced_wasserstein(output_features: dict, style_sorted: dict) -> jax.Array:
    """The mean over :data:`LAYERS` of :func:`layer_distance`."""
    return jnp.mean(
        jnp.stack([layer_distance(output_features[n], style_sorted[n], n) for n in LAYERS])
    )
