"""The judges papers report beside Wang et al.'s measures, at fixed layers with stated
normalisations (all on the float image through the weights' own input convention, VGG-19 with
average pooling):

- ``style_distance``: for each of :data:`STYLE_LAYERS`, the Gram ``G = F^T F / (h w)`` of the
  ``[h, w, C]`` map (a mean over positions, so images of different sizes compare), and the mean
  over the ``C x C`` entries of ``(G_output - G_style)^2``; then the mean over the five layers.
- ``content_distance``: the mean over the ``h x w x C`` entries of ``(F_output - F_content)^2`` at
  :data:`CONTENT_LAYER`.
- ``ssim``: dm-pix's ``ssim`` to the content (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
  data range 1, VALID filtering), averaged over the image and channels.
- ``psnr``: dm-pix's ``psnr`` to the content, dB, data range 1 (infinite for identical images).
"""

import dm_pix as pix
import jax
import jax.numpy as jnp

from nstjax.architecture import CONTENT_LAYER, STYLE_LAYERS  # noqa: F401  (the judges' layers)


def gram(feature: jax.Array) -> jax.Array:
    """``F^T F / (h w)`` of one ``[h, w, C]`` feature map."""
    flat = feature.reshape(-1, feature.shape[-1])
    return jnp.matmul(flat.T, flat, precision=jax.lax.Precision.HIGHEST) / flat.shape[0]


def style_distance(output_features: dict, style_grams: dict) -> jax.Array:
    """The mean over :data:`STYLE_LAYERS` of the mean squared Gram difference to the style."""
    return jnp.mean(
        jnp.stack(
            [jnp.mean((gram(output_features[n]) - style_grams[n]) ** 2) for n in STYLE_LAYERS]
        )
    )


def content_distance(output_features: dict, content_features: dict) -> jax.Array:
    """The mean squared feature difference to the content at :data:`CONTENT_LAYER`."""
    return jnp.mean((output_features[CONTENT_LAYER] - content_features[CONTENT_LAYER]) ** 2)


def ssim(output: jax.Array, content: jax.Array) -> jax.Array:
    """SSIM of one ``[H, W, 3]`` output to its content (dm-pix, data range 1)."""
    return pix.ssim(output, content, max_val=1.0)


def psnr(output: jax.Array, content: jax.Array) -> jax.Array:
    """PSNR of one ``[H, W, 3]`` output to its content in dB (dm-pix, data range 1)."""
    return pix.psnr(output, content)
