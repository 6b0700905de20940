"""The color half of Wang et al.'s global effects: per-channel 128-bin histograms and their cosine.

The official code (``quality_criteria.py``, ``main``, l. 277-287) calls matplotlib's
``plt.hist(channel.flatten(), bins=128)`` on the 0-255 style and output images, which bins each
image's channel over **its own** min-max range (``numpy.histogram``; a constant channel gets the
range ``[v - 0.5, v + 0.5]``, so all its pixels fall in bin 64), then takes the cosine of the two
count vectors and averages it over R, G, B. Under the ``"official"`` protocol this is reproduced
exactly on the 8-bit values (integer arithmetic, so no bin edge is rounded); under
``"corrected"`` the bins cover the fixed range [0, 1], so equal colors fall in equal bins in both
images.
"""

import jax
import jax.numpy as jnp

BINS = 128


def _own_range_bins(channel: jax.Array) -> jax.Array:
    """numpy.histogram's bin of each 8-bit value over the channel's own min-max range."""
    values = jnp.rint(channel * 255.0).astype(jnp.int32)
    low, high = values.min(), values.max()
    span = jnp.maximum(high - low, 1)
    bins = jnp.minimum((values - low) * BINS // span, BINS - 1)
    return jnp.where(high == low, BINS // 2, bins)


def _fixed_range_bins(channel: jax.Array) -> jax.Array:
    return jnp.clip(jnp.floor(channel * BINS), 0, BINS - 1).astype(jnp.int32)


def channel_histograms(image: jax.Array, protocol: str) -> jax.Array:
    """``[3, 128]`` pixel counts of each RGB channel of one image ``[H, W, 3]`` in [0, 1].

    Args:
        image: under ``"official"``, already rounded to 8 bits
            (:func:`nstjax.quality.protocol.wang_pixels`).
        protocol: ``"official"`` (each channel's own min-max range) or ``"corrected"`` ([0, 1]).
    """
    bin_of = _own_range_bins if protocol == "official" else _fixed_range_bins
    channels = jnp.moveaxis(image.reshape(-1, 3), -1, 0)
    return jnp.stack([jnp.bincount(bin_of(c), length=BINS).astype(jnp.float32) for c in channels])


def color_similarity(output_histograms: jax.Array, style_histograms: jax.Array) -> jax.Array:
    """The mean over R, G, B of the cosine between the two images' ``[3, 128]`` counts."""
    norm = lambda h: h / jnp.linalg.norm(h, axis=-1, keepdims=True)
    return jnp.mean(jnp.sum(norm(output_histograms) * norm(style_histograms), axis=-1))
