"""The evaluation protocol: which pixels and which network input each measure sees.

Wang et al.'s measures (official code EndyWon/StyleEval, ``quality_criteria.py``) read 8-bit images
with ``skimage.io.imread`` (0-255, RGB), subtract ``pixel_mean = [103.939, 116.779, 123.680]``
(lines 96, 149 of that file: the Caffe mean in **BGR** order, subtracted from RGB channels) and feed
the result, channels unswapped, to the Caffe VGG-19 (which was trained on BGR). Two protocols:

- ``"official"`` (the default) reproduces that: the image is rounded to 8 bits (as the saved PNG
  the official code reads) and the network sees ``255 x RGB - BGR mean``.
- ``"corrected"``: the float image, through the weights' own input convention (RGB -> BGR, the
  matching mean), and the color histograms over the fixed range [0, 1] (see
  :mod:`nstjax.quality.histogram`).

The loss-based judges (:mod:`nstjax.quality.judges`, :mod:`nstjax.quality.sliced`) always see the
float image through the weights' own convention. The nstjax feature extractor applies
``params["preprocess"]`` itself, so the official input is fed through it as a transformed image
(:func:`official_input`).
"""

import jax
import jax.numpy as jnp

from nstjax.errors import NstjaxError

PROTOCOLS: tuple[str, ...] = ("official", "corrected")
DEFAULT_PROTOCOL = "official"

OFFICIAL_PIXEL_MEAN = (103.939, 116.779, 123.680)
"""``pixel_mean`` of ``quality_criteria.py`` (BGR order), subtracted there from RGB channels."""

POOLING = "avg"
"""Wang et al. build VGG-19 with 2x2 average pooling, no padding (``avg_pooling``, l. 29-30)."""

MIN_SIDE = 24
"""Smallest image side: conv4_1 (1/8 scale) must hold at least one 3x3 patch."""


def quantize(images: jax.Array) -> jax.Array:
    """Images in [0, 1] rounded to 8 bits, as saving them (``nstjax.image.to_uint8``) and reading
    them back does; returned as floats in [0, 1]."""
    return jnp.rint(jnp.clip(images, 0.0, 1.0) * 255.0) / 255.0


def official_input(params, images: jax.Array) -> jax.Array:
    """The image that, through ``params["preprocess"]``, gives the official network input.

    The official network input is ``255 * rgb - OFFICIAL_PIXEL_MEAN`` with the channels unswapped.
    ``nstjax.vgg.preprocess`` computes ``(scale * x[order] - mean[order]) / std[order]``; solving
    for ``x`` gives ``x[order[k]] = (std[order[k]] * target[k] + mean[order[k]]) / scale``. For the
    Caffe weights (BGR order, the ImageNet mean, std 1) this is the image with its channels
    reversed.

    Args:
        params: VGG parameters with their ``"preprocess"`` entry.
        images: RGB in [0, 1], ``[..., 3]``.
    """
    pre = params["preprocess"]
    target = images * 255.0 - jnp.asarray(OFFICIAL_PIXEL_MEAN, images.dtype)
    inverse = jnp.argsort(pre["channel_order"])
    return (pre["std"] * jnp.take(target, inverse, axis=-1) + pre["mean"]) / pre["scale"]


def wang_input(params, images: jax.Array, protocol: str) -> jax.Array:
    """What the feature extractor is given for Wang et al.'s measures under ``protocol``."""
    if protocol == "official":
        return official_input(params, quantize(images))
    return images


def wang_pixels(images: jax.Array, protocol: str) -> jax.Array:
    """The pixels the color histograms are taken of under ``protocol``."""
    return quantize(images) if protocol == "official" else images


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is one of :data:`PROTOCOLS`, else an :class:`NstjaxError`."""
    if protocol not in PROTOCOLS:
        raise NstjaxError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return protocol
