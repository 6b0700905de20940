"""Warping an image along an optical flow: a pure JAX function (bilinear sampling)."""

import jax
import jax.numpy as jnp


def warp(image: jax.Array, flow: jax.Array) -> jax.Array:
    """Samples ``image`` at ``x + flow(x)`` for every pixel ``x``, bilinearly.

    ``out[y, x] = image(x + flow[y, x, 0], y + flow[y, x, 1])``: with ``flow`` the backward flow
    from frame ``i`` to frame ``i - 1`` this brings frame ``i - 1`` onto frame ``i`` (as torch's
    ``image.warp`` in Ruder et al.'s code). Positions outside the image take the nearest border
    pixel; :func:`inside` says where that happened.

    Args:
        image: ``[H, W, C]``.
        flow: ``[H, W, 2]`` displacements ``(dx, dy)`` in pixels.

    Returns:
        ``[H, W, C]`` in ``image``'s dtype.
    """
    h, w = image.shape[:2]
    ys, xs = jnp.meshgrid(
        jnp.arange(h, dtype=flow.dtype), jnp.arange(w, dtype=flow.dtype), indexing="ij"
    )
    x = jnp.clip(xs + flow[..., 0], 0, w - 1)
    y = jnp.clip(ys + flow[..., 1], 0, h - 1)
    x0 = (
        jnp.clip(jnp.floor(x).astype(jnp.int32), 0, w - 2)
        if w > 1
        else jnp.zeros_like(x, jnp.int32)
    )
    y0 = (
        jnp.clip(jnp.floor(y).astype(jnp.int32), 0, h - 2)
        if h > 1
        else jnp.zeros_like(y, jnp.int32)
    )
    x1 = jnp.minimum(x0 + 1, w - 1)
    y1 = jnp.minimum(y0 + 1, h - 1)
    ax = (x - x0)[..., None]
    ay = (y - y0)[..., None]
    top = image[y0, x0] * (1 - ax) + image[y0, x1] * ax
    bottom = image[y1, x0] * (1 - ax) + image[y1, x1] * ax
    return (top * (1 - ay) + bottom * ay).astype(image.dtype)


def inside(flow: jax.Array) -> jax.Array:
    """``[H, W]`` bool: where ``x + flow(x)`` lies within the image (no border clamping)."""
    h, w = flow.shape[:2]
    ys, xs = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
    x = xs + flow[..., 0]
    y = ys + flow[..., 1]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
