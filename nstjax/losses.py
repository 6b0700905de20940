"""Gatys et al.'s losses as pure functions of ONE image; batch them with ``jax.vmap``.

Normalisation (the convention of jcjohnson/neural-style, neural-style-pt and the PyTorch tutorial):

- ``gram(F) = F^T F / (h w C)`` for features ``F`` of shape ``[h, w, C]``. Dividing by the number of
  positions makes the Gram an average over positions, so a style's Gram does not depend on the size
  of the style image or of the output; dividing also by ``C`` keeps layers of 64 and 512 channels on
  comparable scales, so equal per-layer weights are a sensible default.
- ``content_loss = mean((F - P)^2)`` and each style layer's loss ``mean((G - A)^2)``: means, not sums,
  so the weights that look right at 256 px still look right at 1024 px.
- ``tv_loss = mean over pixels of (dx^2 + dy^2)`` on the image in 0-255 units (the squared total
  variation of jcjohnson/neural-style, averaged instead of summed for the same reason).

Gatys et al.'s ``E_l = 1/(4 N^2 M^2) sum (G_raw - A_raw)^2`` with the unnormalised Gram
``G_raw = M N G`` equals ``N_l^2 / 4 * mean((G - A)^2)`` here (``N_l`` channels): the same quantity
up to a per-layer constant, so only the scale of the style weight differs.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from nstjax.architecture import LAYER_INDEX

Product = Callable[[jax.Array], jax.Array]
"""``f -> f^T f`` for a ``[P, C]`` float32 matrix (:func:`nstjax.kernels.gram_product`)."""


def _product(f: jax.Array) -> jax.Array:
    return jnp.einsum("kc,kd->cd", f, f, preferred_element_type=jnp.float32)


def gram(
    features: jax.Array, mask: jax.Array | None = None, *, product: Product = _product
) -> jax.Array:
    """Normalised Gram matrix ``F^T F / (h w C)`` of one layer's features, in float32.

    Args:
        features: ``[h, w, C]``.
        mask: optional ``[h, w]`` weights (guided Gram of Gatys et al. 2017): the Gram of
            ``mask * F``, normalised by the mask's mass ``sum(mask^2)`` instead of ``h w``.
        product: how ``F^T F`` is computed (default: XLA's dot; the engine passes the kernel
            that goes with its convolution, :func:`nstjax.kernels.gram_product`).

    Returns:
        ``[C, C]`` float32.
    """
    h, w, c = features.shape
    f = features.astype(jnp.float32).reshape(h * w, c)
    if mask is None:
        norm = h * w
    else:
        m = mask.astype(jnp.float32).reshape(h * w, 1)
        f = f * m
        mass = jnp.sum(m * m)
        norm = jnp.where(mass > 0, mass, 1.0)  # an empty region has a zero Gram
    return product(f) / (norm * c)


def content_loss(features: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared difference of a layer's features and the content image's, in float32."""
    diff = features.astype(jnp.float32) - target.astype(jnp.float32)
    return jnp.mean(diff * diff)


def style_layer_loss(gram_matrix: jax.Array, target_gram: jax.Array) -> jax.Array:
    """Mean squared difference of two Gram matrices."""
    diff = gram_matrix - target_gram
    return jnp.mean(diff * diff)


def tv_loss(pixels: jax.Array) -> jax.Array:
    """Squared total variation of an ``[H, W, 3]`` image, mean over pixels (0-255 units)."""
    x = pixels.astype(jnp.float32)
    dy = x[1:, :, :] - x[:-1, :, :]
    dx = x[:, 1:, :] - x[:, :-1, :]
    h, w, _ = x.shape
    return (jnp.sum(dy * dy) + jnp.sum(dx * dx)) / (h * w)


@jax.custom_vjp
def normalized_gradient(x: jax.Array, weight: jax.Array, enabled: jax.Array) -> jax.Array:
    """Identity whose backward pass L1-normalises the gradient, as neural-style's
    ``-normalize_gradients``: ``g -> |weight| g / (|g|_1 + 1e-8)`` where ``enabled`` is true.

    ``weight`` is the loss weight the incoming gradient was scaled by; neural-style applies its
    strength after normalising, so it is put back. ``enabled`` is a traced flag, so runs in one
    batch can differ.
    """
    return x


def _normalized_gradient_fwd(x, weight, enabled):
    return x, (weight, enabled)


def _normalized_gradient_bwd(residuals, g):
    weight, enabled = residuals
    g32 = g.astype(jnp.float32)
    normalised = jnp.abs(weight) * g32 / (jnp.sum(jnp.abs(g32)) + 1e-8)
    return jnp.where(enabled, normalised, g32).astype(g.dtype), None, None


normalized_gradient.defvjp(_normalized_gradient_fwd, _normalized_gradient_bwd)


def _maybe_normalized(features, weight, normalize):
    if normalize is None:
        return features
    return normalized_gradient(features, weight, normalize)


def weighted_content_loss(
    features: dict[str, jax.Array],
    targets: dict[str, jax.Array],
    layer_weights: jax.Array,
    normalize: jax.Array | None = None,
    scale: jax.Array = 1.0,
) -> jax.Array:
    """``sum_l w_l content_loss(F_l, P_l)`` over the layers in ``targets``.

    Args:
        features: layer name to ``[h, w, C]``.
        targets: layer name to the content image's features at that layer.
        layer_weights: ``[16]``, indexed by the layer's position in conv1_1 ... conv5_4.
        normalize: optional traced flag: L1-normalise each layer's gradient
            (:func:`normalized_gradient`).
        scale: the weight this sum will be multiplied by (the content weight), used only to put
            the strength back after normalising.
    """
    total = jnp.float32(0.0)
    for name, target in targets.items():
        w = layer_weights[LAYER_INDEX[name]]
        f = _maybe_normalized(features[name], w * scale, normalize)
        total = total + w * content_loss(f, target)
    return total


def temporal_loss(pixels: jax.Array, warped: jax.Array, reliability: jax.Array) -> jax.Array:
    """Ruder et al.'s temporal loss of an ``[H, W, 3]`` frame (0-255 units), in float32.

    ``sum_j (1/D) sum_k c_jk (x_k - w_jk)^2`` over ``J`` warped earlier (or later) stylised
    frames ``warped`` ``[J, H, W, 3]`` with reliabilities ``reliability`` ``[J, H, W]`` in [0, 1]
    (``D = 3 H W``): the short-term loss for ``J = 1``, the long-term one with exclusive masks.
    """
    diff = pixels.astype(jnp.float32)[None] - warped.astype(jnp.float32)
    weighted = reliability.astype(jnp.float32)[..., None] * diff * diff
    return jnp.sum(weighted) / pixels.size
